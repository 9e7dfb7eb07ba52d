/* Session records: listing, pipelined download, download to a file with
 * resume and verification, archiving. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "pen.h"

/* Envelope fields around a chunk's data: id, body tag and length, session
 * id, offset, data tag and length, eof.  Generous so no pen's reply
 * overruns its frame limit. */
#define CHUNK_OVERHEAD 64u
/* A pen cannot hold more; stops a pen that pages forever. */
#define MAX_SESSIONS 1000000u

/* ------------------------------------------------------------------ list */

static int meta_from_wire(const struct pl_pen *pen, const Pl__SessionMeta *m,
                          struct pl_session_info *o)
{
	if (m->uuid.len != 16 || m->sha256.len != 32)
		return pl__fail(PL_ERR_PROTOCOL,
		                "the pen on %s listed session %u with a %zu-byte uuid "
		                "and a %zu-byte digest (expected 16 and 32)",
		                pl_transport_name(pen->t), m->id, m->uuid.len,
		                m->sha256.len);
	memset(o, 0, sizeof *o);
	o->id = m->id;
	memcpy(o->uuid, m->uuid.data, 16);
	o->seq = m->seq;
	o->size = m->size;
	memcpy(o->sha256, m->sha256.data, 32);
	o->start_ms = m->start_ms;
	o->end_ms = m->end_ms;
	o->rtc_time = m->time_source == PL__TIME_SOURCE__TIME_SOURCE_RTC;
	o->archived = m->archived;
	return PL_OK;
}

/*
 * Appends one page, at most limit entries in all; ids must rise so paging
 * always ends.  *cut: entries of the page were left out for the limit.
 * over_limit_fails: more than limit entries is the pen's fault (the whole
 * list was asked for), not a stretch to stop at.
 */
static int add_page(struct pl_pen *pen, const Pl__SessionList *l,
                    uint32_t *after, struct pl_session_info **arr, size_t *n,
                    size_t *cap, size_t limit, bool over_limit_fails,
                    bool *cut)
{
	size_t take = l->n_sessions;

	*cut = false;
	if (l->more && !l->n_sessions)
		return pl__fail(PL_ERR_PROTOCOL,
		                "the pen on %s sent an empty page of sessions that "
		                "claims more follow",
		                pl_transport_name(pen->t));
	if (take > limit - *n) {
		if (over_limit_fails)
			return pl__fail(PL_ERR_PROTOCOL,
			                "the pen on %s lists more than %zu sessions",
			                pl_transport_name(pen->t), limit);
		take = limit - *n;
		*cut = true;
	}
	if (*n + take > *cap) {
		size_t c = *cap ? *cap : 16;
		while (c < *n + take)
			c *= 2;
		if (c > limit)
			c = limit;
		struct pl_session_info *p = realloc(*arr, c * sizeof *p);
		if (!p)
			return pl__fail(PL_ERR_MEM, "out of memory listing sessions");
		*arr = p;
		*cap = c;
	}
	for (size_t i = 0; i < take; i++) {
		const Pl__SessionMeta *m = l->sessions[i];
		if ((*n || *after) && m->id <= *after)
			return pl__fail(PL_ERR_PROTOCOL,
			                "the pen on %s listed session %u after %u; ids must rise",
			                pl_transport_name(pen->t), m->id, *after);
		int rc = meta_from_wire(pen, m, &(*arr)[*n]);
		if (rc)
			return rc;
		(*n)++;
		*after = m->id;
	}
	return PL_OK;
}

struct list_op {
	struct pl__op base;
	struct pl_session_info **out;
	size_t *count;
	bool whole;          /* the whole list was asked for: no *more */
	bool *more;
	struct pl_session_info *arr;
	size_t n, cap, limit;
	uint32_t after;
};

static void list_release(struct pl__op *op)
{
	struct list_op *l = (struct list_op *)op;
	free(l->arr);
	l->arr = NULL;
}

static void list_send(struct list_op *l);

static void list_step(struct pl__op *op, int status, Pl__Envelope *rep)
{
	struct list_op *l = (struct list_op *)op;
	bool cut = false;
	if (!status)
		status = add_page(op->pen, rep->session_list, &l->after, &l->arr,
		                  &l->n, &l->cap, l->limit, l->whole, &cut);
	if (status) {
		pl__op_finish(op, status);
		return;
	}
	bool more = cut || rep->session_list->more;
	if (more && l->n < l->limit) {
		list_send(l);
		return;
	}
	*l->out = l->arr;
	*l->count = l->n;
	if (!l->whole)
		*l->more = more;
	l->arr = NULL;
	pl__op_finish(op, PL_OK);
}

static void list_send(struct list_op *l)
{
	Pl__ListSessions ls = PL__LIST_SESSIONS__INIT;
	ls.start_after_id = l->after;
	Pl__Envelope req = PL__ENVELOPE__INIT;
	req.body_case = PL__ENVELOPE__BODY_LIST_SESSIONS;
	req.list_sessions = &ls;
	pl__op_send(&l->base, &req, PL__ENVELOPE__BODY_SESSION_LIST, list_step);
}

static int list_start(struct pl_pen *pen, uint32_t after_id, size_t limit,
                      bool whole, struct pl_session_info **out, size_t *count,
                      bool *more, pl_done_fn done, void *ud, const char *fn)
{
	struct list_op *l;
	int rc = pl__op_new(pen, sizeof *l, done, ud, &l);
	if (rc || pl__op_refused(&l->base))
		return rc;
	if (!out || !count || (!whole && !more)) {
		pl__op_finish(&l->base, pl__fail(PL_ERR_ARG, "%s: missing argument", fn));
		return PL_OK;
	}
	if (limit == 0 || limit > MAX_SESSIONS) {
		pl__op_finish(&l->base, pl__fail(PL_ERR_ARG, "%s: max %zu is not 1..%u",
		                                 fn, limit, MAX_SESSIONS));
		return PL_OK;
	}
	l->out = out;
	l->count = count;
	l->whole = whole;
	l->more = more;
	l->limit = limit;
	l->after = after_id;
	l->base.release = list_release;
	list_send(l);
	return PL_OK;
}

int pl_pen_list_sessions_async(struct pl_pen *pen, struct pl_session_info **out,
                           size_t *count, pl_done_fn done, void *ud)
{
	return list_start(pen, 0, MAX_SESSIONS, true, out, count, NULL, done, ud,
	                  "pl_pen_list_sessions");
}

int pl_pen_list_sessions(struct pl_pen *pen, struct pl_session_info **out,
                     size_t *count)
{
	if (out)
		*out = NULL;
	if (count)
		*count = 0;
	PL__BLOCKING(pen, "pl_pen_list_sessions",
	             pl_pen_list_sessions_async(pen, out, count, PL__WAITER));
}

int pl_pen_list_sessions_from_async(struct pl_pen *pen, uint32_t after_id,
                                    size_t max, struct pl_session_info **out,
                                    size_t *count, bool *more, pl_done_fn done,
                                    void *ud)
{
	return list_start(pen, after_id, max, false, out, count, more, done, ud,
	                  "pl_pen_list_sessions_from");
}

int pl_pen_list_sessions_from(struct pl_pen *pen, uint32_t after_id, size_t max,
                              struct pl_session_info **out, size_t *count,
                              bool *more)
{
	if (out)
		*out = NULL;
	if (count)
		*count = 0;
	if (more)
		*more = false;
	PL__BLOCKING(pen, "pl_pen_list_sessions_from",
	             pl_pen_list_sessions_from_async(pen, after_id, max, out, count,
	                                             more, PL__WAITER));
}

/* ------------------------------------------------------------------ download */

struct dl;

/* One request of the window; slot k % window holds chunk k until it is
 * delivered, which bounds what is held to window * chunk bytes. */
struct slot {
	struct dl *d;
	uint32_t req_id; /* 0: no request outstanding */
	uint64_t off;
	uint32_t len;
	Pl__Envelope *reply; /* arrived early, waiting for its turn */
};

struct dl {
	struct pl__op base;
	struct pl_session_info s;        /* copies: the caller's may go */
	struct pl_download_options o;
	uint32_t chunk, window;
	uint64_t issued;    /* next offset to request */
	uint64_t delivered; /* next offset the sink expects */
	uint64_t first;     /* index of the chunk at `delivered` */
	uint64_t next_k;    /* index of the chunk at `issued` */
	struct slot slots[];
};

/* Whatever ended the download, none of its requests may stay in the
 * window, and held chunks are freed. */
static void dl_release(struct pl__op *op)
{
	struct dl *d = (struct dl *)op;
	for (uint32_t i = 0; i < d->window; i++) {
		struct slot *sl = &d->slots[i];
		if (sl->req_id)
			pl__engine_cancel(op->pen->e, sl->req_id);
		sl->req_id = 0;
		if (sl->reply)
			pl__envelope__free_unpacked(sl->reply, NULL);
		sl->reply = NULL;
	}
}

static bool dl_on_reply(void *ud, int status, Pl__Envelope *reply);

static void dl_issue(struct dl *d)
{
	while (!d->base.finished && !d->base.pen->closing && d->issued < d->s.size &&
	       d->next_k - d->first < d->window) {
		struct slot *sl = &d->slots[d->next_k % d->window];
		uint64_t left = d->s.size - d->issued;
		sl->off = d->issued;
		sl->len = left < d->chunk ? (uint32_t)left : d->chunk;
		Pl__ReadSession rs = PL__READ_SESSION__INIT;
		rs.id = d->s.id;
		rs.offset = sl->off;
		rs.length = sl->len;
		Pl__Envelope req = PL__ENVELOPE__INIT;
		req.body_case = PL__ENVELOPE__BODY_READ_SESSION;
		req.read_session = &rs;
		int rc = pl__engine_submit(d->base.pen->e, &req,
		                           PL__ENVELOPE__BODY_SESSION_CHUNK, -1, -1,
		                           dl_on_reply, sl, &sl->req_id);
		if (rc) {
			pl__op_finish(&d->base, rc);
			return;
		}
		d->issued += sl->len;
		d->next_k++;
	}
}

static int dl_check(const struct dl *d, const struct slot *sl,
                    const Pl__SessionChunk *c)
{
	const char *port = pl_transport_name(d->base.pen->t);
	if (c->id != d->s.id || c->offset != sl->off)
		return pl__fail(PL_ERR_PROTOCOL,
		                "the pen on %s answered a read of record %u at offset "
		                "%llu with record %u at offset %llu",
		                port, d->s.id, (unsigned long long)sl->off, c->id,
		                (unsigned long long)c->offset);
	if (c->data.len != sl->len)
		return pl__fail(PL_ERR_PROTOCOL,
		                "the pen on %s sent %zu bytes of record %u at offset "
		                "%llu where %u were asked (the record has %llu bytes)",
		                port, c->data.len, d->s.id, (unsigned long long)sl->off,
		                sl->len, (unsigned long long)d->s.size);
	if (c->eof != (sl->off + sl->len == d->s.size))
		return pl__fail(PL_ERR_PROTOCOL,
		                "the pen on %s %s the end of record %u at offset %llu, "
		                "but the listing says it has %llu bytes",
		                port, c->eof ? "signalled" : "did not signal", d->s.id,
		                (unsigned long long)(sl->off + sl->len),
		                (unsigned long long)d->s.size);
	return PL_OK;
}

/* Hands over every chunk that is next in order. */
static void dl_deliver(struct dl *d)
{
	while (!d->base.finished && !d->base.pen->closing && d->first < d->next_k) {
		struct slot *sl = &d->slots[d->first % d->window];
		if (!sl->reply)
			return;
		const ProtobufCBinaryData *data = &sl->reply->session_chunk->data;
		int rc = d->o.sink(d->o.ud, sl->off, data->data, data->len);
		pl__envelope__free_unpacked(sl->reply, NULL);
		sl->reply = NULL;
		if (rc) {
			if (rc > 0)
				rc = PL_ERR_CANCELLED;
			if (rc == PL_ERR_CANCELLED)
				pl__fail(rc, "the download of record %u was cancelled at byte %llu",
				         d->s.id, (unsigned long long)sl->off);
			pl__op_finish(&d->base, rc);
			return;
		}
		d->delivered = sl->off + sl->len;
		d->first++;
		if (d->o.progress)
			d->o.progress(d->o.ud, d->delivered, d->s.size);
	}
	if (d->delivered == d->s.size)
		pl__op_finish(&d->base, PL_OK);
}

static bool dl_on_reply(void *ud, int status, Pl__Envelope *reply)
{
	struct slot *sl = ud;
	struct dl *d = sl->d;
	sl->req_id = 0;
	if (d->base.finished || d->base.pen->closing)
		return false;
	if (status) {
		pl__op_finish(&d->base, status);
		return false;
	}
	int rc = dl_check(d, sl, reply->session_chunk);
	if (rc) {
		pl__op_finish(&d->base, rc);
		return false;
	}
	/* From here the reply is ours: delivered and freed in order, or freed
	 * by dl_release. */
	sl->reply = reply;
	dl_deliver(d);
	dl_issue(d);
	return true;
}

void pl_download_options_init(struct pl_download_options *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof *o);
	o->size = sizeof *o;
}

int pl_pen_download_session_async(struct pl_pen *pen,
                              const struct pl_session_info *s, uint64_t offset,
                              const struct pl_download_options *o,
                              pl_done_fn done, void *ud)
{
	/* More than the pen allows in flight would only queue inside the
	 * engine while holding reorder memory. */
	uint32_t window = pen ? pen->max_in_flight : 1;
	if (o && o->window && o->window < window)
		window = o->window;
	if (!window)
		window = 1;
	struct dl *d;
	int rc = pl__op_new(pen, sizeof *d + window * sizeof d->slots[0], done, ud, &d);
	if (rc || pl__op_refused(&d->base))
		return rc;
	if (!s || !o || !o->sink) {
		pl__op_finish(&d->base, pl__fail(PL_ERR_ARG, "pl_pen_download_session: missing argument"));
		return PL_OK;
	}
	if (offset > s->size) {
		pl__op_finish(&d->base,
		              pl__fail(PL_ERR_ARG,
		                       "cannot resume record %u at byte %llu; it has only %llu bytes",
		                       s->id, (unsigned long long)offset,
		                       (unsigned long long)s->size));
		return PL_OK;
	}
	d->s = *s;
	pl_download_options_init(&d->o);
	pl__options_copy(&d->o, sizeof d->o, o);
	d->issued = d->delivered = offset;
	uint32_t room = pen->max_frame - CHUNK_OVERHEAD;
	d->chunk = o->chunk && o->chunk < room ? o->chunk : room;
	d->window = window;
	for (uint32_t i = 0; i < window; i++)
		d->slots[i].d = d;
	d->base.release = dl_release;
	if (offset == s->size)
		pl__op_finish(&d->base, PL_OK);
	else
		dl_issue(d);
	return PL_OK;
}

int pl_pen_download_session(struct pl_pen *pen, const struct pl_session_info *s,
                        uint64_t offset, const struct pl_download_options *o)
{
	PL__BLOCKING(pen, "pl_pen_download_session",
	             pl_pen_download_session_async(pen, s, offset, o, PL__WAITER));
}

/* ------------------------------------------------------------------ to a file */

struct file_sink {
	int fd;
	const char *path;
	pl_progress_fn progress;
	void *ud;
};

static int file_write(void *ud, uint64_t offset, const uint8_t *data, size_t len)
{
	struct file_sink *f = ud;
	(void)offset; /* O_APPEND: the engine delivers in order */
	while (len) {
		ssize_t n = write(f->fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pl__fail(PL_ERR_IO,
			                "cannot write %s: %s", f->path, strerror(errno));
		data += n;
		len -= (size_t)n;
	}
	return PL_OK;
}

static void file_progress(void *ud, uint64_t done, uint64_t total)
{
	struct file_sink *f = ud;
	if (f->progress)
		f->progress(f->ud, done, total);
}

static int open_resumable(const struct pl_session_info *s, const char *path,
                          int *fd_out, uint64_t *have)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return pl__fail(errno == EACCES ? PL_ERR_ACCESS : PL_ERR_IO,
		                "cannot open %s for writing: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int err = errno;
		close(fd);
		return pl__fail(PL_ERR_IO, "cannot stat %s: %s", path, strerror(err));
	}
	if ((uint64_t)st.st_size > s->size) {
		/* Not a prefix of this record: start over. */
		if (ftruncate(fd, 0) < 0) {
			int err = errno;
			close(fd);
			return pl__fail(PL_ERR_IO, "cannot truncate %s: %s", path,
			                strerror(err));
		}
		st.st_size = 0;
	}
	*fd_out = fd;
	*have = (uint64_t)st.st_size;
	return PL_OK;
}

int pl_pen_download_session_to_file(struct pl_pen *pen,
                                const struct pl_session_info *s,
                                const char *path, pl_progress_fn progress,
                                void *ud)
{
	if (!pen || !s || !path)
		return pl__fail(PL_ERR_ARG, "pl_pen_download_session_to_file: missing argument");
	int fd = -1;
	uint64_t have = 0;
	int rc = open_resumable(s, path, &fd, &have);
	if (rc)
		return rc;
	struct file_sink f = {.fd = fd, .path = path, .progress = progress, .ud = ud};
	struct pl_download_options o;
	pl_download_options_init(&o);
	o.sink = file_write;
	o.progress = file_progress;
	o.ud = &f;
	if (progress)
		progress(ud, have, s->size);
	rc = pl_pen_download_session(pen, s, have, &o);
	if (!rc && fsync(fd) < 0)
		rc = pl__fail(PL_ERR_IO, "cannot flush %s to disk: %s", path, strerror(errno));
	if (close(fd) < 0 && !rc)
		rc = pl__fail(PL_ERR_IO, "cannot close %s: %s", path, strerror(errno));
	if (rc)
		return rc; /* what is there is a good prefix: keep it to resume */

	/* Re-read rather than trust the bytes we wrote: this is what will
	 * be archived, and the pen reclaims the record on our word. */
	uint8_t digest[32];
	rc = pl_sha256_file(path, digest);
	if (rc)
		return rc;
	if (memcmp(digest, s->sha256, 32)) {
		unlink(path);
		return pl__fail(PL_ERR_DIGEST,
		                "record %u downloaded but its SHA-256 does not match; "
		                "the partial file was discarded",
		                s->id);
	}
	return PL_OK;
}

/* ------------------------------------------------------------------ archive */

int pl_pen_archive_session_async(struct pl_pen *pen, uint32_t id,
                             const uint8_t sha256[32], pl_done_fn done,
                             void *ud)
{
	struct pl__op *op;
	int rc = pl__op_new(pen, sizeof *op, done, ud, &op);
	if (rc || pl__op_refused(op))
		return rc;
	if (!sha256) {
		pl__op_finish(op, pl__fail(PL_ERR_ARG, "pl_pen_archive_session: missing digest"));
		return PL_OK;
	}
	Pl__ArchiveSession as = PL__ARCHIVE_SESSION__INIT;
	as.id = id;
	as.sha256.data = (uint8_t *)sha256;
	as.sha256.len = 32;
	Pl__Envelope req = PL__ENVELOPE__INIT;
	req.body_case = PL__ENVELOPE__BODY_ARCHIVE_SESSION;
	req.archive_session = &as;
	pl__op_send(op, &req, PL__ENVELOPE__BODY_ACK, pl__op_step_finish);
	return PL_OK;
}

int pl_pen_archive_session(struct pl_pen *pen, uint32_t id, const uint8_t sha256[32])
{
	PL__BLOCKING(pen, "pl_pen_archive_session",
	             pl_pen_archive_session_async(pen, id, sha256, PL__WAITER));
}
