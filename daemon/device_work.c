/*
 * What the daemon does with each pen on its own: read its info, set its
 * clock, list its sessions, then download every session the archive lacks
 * (one at a time per pen, pipelined inside; pens run side by side), commit
 * it, and only then tell the pen it may reclaim it.
 *
 * The durability rule everything here serves: pl_pen_archive_session_async() is
 * called for a session only after archive_commit_session() returned PL_OK
 * for it (or the archive already held it with the same digest).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "central.h"
#include "device.h"
#include "log.h"
#include "pen_budget.h"

/* Download buffers and bytes in flight: PEN_BUF_* and PEN_INFLIGHT_BUDGET
 * (pen_budget.h). */
#define CHUNK_MIN 4096u
/* Progress events per pen: at most one per this many ms. */
#define PROGRESS_MS 250
/* Telemetry sample rows inserted per turn of the loop: a few ms of work, so
 * the pens' I/O is never held up long by the decoding backlog. */
#define DECODE_ROWS 4000
/* While pens download, a turn of decoding every DECODE_BUSY_MS at most:
 * derived rows can wait, downloads cannot (at one turn per loop iteration,
 * 127 pens downloading together slowed to a twentieth once the first
 * sessions were committed and their samples queued for decoding). */
#define DECODE_BUSY_MS 100

static void step_list(struct pen *p);
static void step_next(struct pen *p);

static struct archive *arc(const struct pen *p)
{
	return p->d->archive;
}

static const char *uuid_str(const uint8_t uuid[16], char out[37])
{
	pl_uuid_format(uuid, out);
	return out;
}

static void release_buffer(struct pen *p)
{
	if (!p->buf)
		return;
	free(p->buf);
	p->ps->buf_bytes -= p->buf_cap;
	p->buf = NULL;
	p->buf_cap = p->buf_len = 0;
	p->ps->downloading--;
}

static bool ensure_buffer(struct pen *p)
{
	if (p->buf)
		return true;
	size_t left = p->ps->buf_bytes < PEN_BUF_BUDGET ? PEN_BUF_BUDGET - p->ps->buf_bytes : 0;
	size_t cap = PEN_BUF_BUDGET / (p->ps->downloading + 1);
	if (cap > left)
		cap = left;
	if (cap > PEN_BUF_MAX)
		cap = PEN_BUF_MAX;
	if (cap < PEN_BUF_MIN)
		cap = PEN_BUF_MIN;
	p->buf = malloc(cap);
	if (!p->buf)
		return false;
	p->buf_cap = cap;
	p->buf_len = 0;
	p->ps->buf_bytes += cap;
	p->ps->downloading++;
	return true;
}

static void round_end(struct pen *p)
{
	release_buffer(p);
	if (p->round_failed) {
		log_warn("pen %s on %s: %zu of %zu sessions archived; the others failed "
		         "(see above) and stay on the pen",
		         p->serial, p->port, p->round_done, p->round_listed);
		pen_enter(p, PHASE_FAILED, "sessions failed");
	} else {
		log_info("pen %s on %s: all %zu session%s archived", p->serial, p->port,
		         p->round_listed, p->round_listed == 1 ? "" : "s");
		pen_enter(p, PHASE_IDLE, "all sessions archived");
	}
}

static void work_fail(struct pen *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void work_fail(struct pen *p, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	pen_report(p, LOG_ERR, "%s", msg);
	release_buffer(p);
	pen_enter(p, PHASE_FAILED, msg);
}

unsigned work_pending(const struct pen *p)
{
	size_t n = p->round_listed - p->round_done;
	return n > UINT32_MAX ? UINT32_MAX : (unsigned)n;
}

size_t work_listed(const struct pen *p)
{
	return p->round_listed;
}

/* ------------------------------------------------------------------ info, clock */

static void step_info(struct pen *p);
static void step_clock(struct pen *p);

/* Whether the answer to a step that is asked again after a timeout is one
 * its caller goes on with: not when the link failed or the step was asked
 * again. */
static bool answered(struct pen *p, int status, void (*again)(struct pen *))
{
	if (pen_link_failed(p, status))
		return false;
	if (status == PL_ERR_TIMEOUT) {
		again(p);
		return false;
	}
	return true;
}

/* A step's request under way (rc PL_OK), or answered at once with the
 * error that kept it from starting. */
static void started(struct pen *p, int rc, void (*on_answer)(void *, int))
{
	if (rc)
		on_answer(p, rc);
	else
		pen_kick(p);
}

static void on_info(void *ud, int status)
{
	struct pen *p = ud;
	if (!answered(p, status, step_info))
		return;
	if (status) {
		work_fail(p, "cannot read the device info: %s", pl_error_message());
		return;
	}
	p->info = p->info_tmp;
	p->have_info = true;
	/* Exports name a session's pen model and hardware from this; failing
	 * to store it costs only that, never the download. */
	if (archive_pen_seen(p->d->archive, p->serial, p->info.model,
	                     p->info.hw_revision, p->info.fw_version) != PL_OK)
		log_warn("pen %s: cannot remember its model in the archive: %s",
		         p->serial, archive_errmsg(p->d->archive));
	log_info("pen %s on %s: %s, hardware %s, firmware %s", p->serial, p->port,
	         p->info.model, p->info.hw_revision, p->info.fw_version);
	pen_enter(p, PHASE_CLOCK, "info read");
	step_clock(p);
}

static void step_info(struct pen *p)
{
	started(p, pl_pen_get_info_async(p->pp, &p->info_tmp, on_info, p), on_info);
}

static void on_clock(void *ud, int status)
{
	struct pen *p = ud;
	if (!answered(p, status, step_clock))
		return;
	/* The daemon's own sync at attach changes the pen as penctl's does:
	 * the audit trail has it too, with how far off the clock was. */
	char oldv[64] = "", newv[64], why[256];
	snprintf(why, sizeof why, "%s", status ? pl_error_message() : "ok");
	if (!status)
		snprintf(oldv, sizeof oldv, "{\"offset_ms\":%lld}",
		         (long long)p->clock_offset);
	snprintf(newv, sizeof newv, "{\"utc_ms\":%lld}", (long long)pl_time_utc_ms());
	ctl_audit(p->d, (uint32_t)geteuid(), "penlinkd", p->serial, "clock.sync",
	          oldv, newv, why);
	if (status) {
		/* Not fatal: the pen's records then carry uptime instead of
		 * UTC, which the archive keeps as such. */
		log_warn("pen %s on %s: cannot set its clock: %s", p->serial, p->port,
		         why);
	} else {
		p->clock_synced = true;
		if (p->clock_offset)
			log_info("pen %s on %s: clock set (it was %lld ms %s)", p->serial,
			         p->port, (long long)llabs(p->clock_offset),
			         p->clock_offset > 0 ? "ahead" : "behind");
		else
			log_info("pen %s on %s: clock set", p->serial, p->port);
	}
	step_list(p);
}

static void step_clock(struct pen *p)
{
	started(p, pl_pen_clock_sync_async(p->pp, &p->clock_offset, on_clock, p),
	        on_clock);
}

void work_start(struct pen *p)
{
	pen_enter(p, PHASE_INFO, "handshake done");
	step_info(p);
}

/* ------------------------------------------------------------------ listing */

static void list_window(struct pen *p);

static void on_list(void *ud, int status)
{
	struct pen *p = ud;
	if (status == PL_OK && phase_leaving(p->phase)) {
		free(p->list_tmp);
		p->list_tmp = NULL;
	}
	if (!answered(p, status, list_window))
		return;
	if (status) {
		work_fail(p, "cannot list its sessions: %s", pl_error_message());
		return;
	}
	size_t n = p->n_list_tmp;
	uint8_t *st = calloc(n ? n : 1, 1), *tries = calloc(n ? n : 1, 1);
	if (!st || !tries) {
		free(st);
		free(tries);
		free(p->list_tmp);
		p->list_tmp = NULL;
		work_fail(p, "out of memory for its list of %zu sessions", n);
		return;
	}
	free(p->sessions);
	free(p->sstate);
	free(p->stries);
	p->sessions = p->list_tmp;
	p->list_tmp = NULL;
	p->n_sessions = n;
	p->sstate = st;
	p->stries = tries;
	p->cur = 0;
	p->list_more = p->list_more_tmp;
	if (p->list_more && !p->list_after)
		log_notice("pen %s on %s lists more than %u sessions (the session list "
		           "budget): archiving them %u at a time", p->serial, p->port,
		           PEN_LIST_WINDOW, PEN_LIST_WINDOW);
	if (p->list_after)
		log_info("pen %s on %s holds %zu more session%s after session %u",
		         p->serial, p->port, n, n == 1 ? "" : "s", p->list_after);
	else
		log_info("pen %s on %s holds %s%zu session%s", p->serial, p->port,
		         p->list_more ? "more than " : "", n, n == 1 ? "" : "s");
	p->round_listed += n;
	step_next(p);
}

/* Lists the next window of the pen's sessions: those after list_after. */
static void list_window(struct pen *p)
{
	/* Refused to a pen that is leaving: its next attach lists. */
	if (!pen_enter(p, PHASE_LIST, "listing sessions"))
		return;
	started(p, pl_pen_list_sessions_from_async(p->pp, p->list_after, PEN_LIST_WINDOW,
	                                           &p->list_tmp, &p->n_list_tmp,
	                                           &p->list_more_tmp, on_list, p),
	        on_list);
}

/* A new round: the pen's list from its first session. */
static void step_list(struct pen *p)
{
	if (!phase_usable(p->phase))
		return;
	p->relist = false;
	p->list_after = 0;
	p->round_listed = p->round_done = p->round_failed = 0;
	p->round_pen_failed = 0;
	list_window(p);
}

void work_session_recorded(struct pen *p)
{
	if (phase_working(p->phase))
		p->relist = true; /* after the step under way */
	else if (phase_usable(p->phase))
		step_list(p);
	/* else it is leaving: its next attach lists the session */
}

/* ------------------------------------------------------------------ download */

/* Session i stays on the pen.  pen_side: the pen did not serve what it
 * listed, which counts against PEN_FAILED_MAX (the pen is then detached);
 * the archive's own failures (disk full) do not. */
static void session_failed(struct pen *p, size_t i, bool pen_side)
{
	p->sstate[i] = SESS_FAILED;
	p->round_failed++;
	if (pen_side && ++p->round_pen_failed >= PEN_FAILED_MAX) {
		char why[200];
		snprintf(why, sizeof why, "%u of the sessions it listed could not be "
		         "archived this round (the failed-session budget is %u a round; "
		         "%zu listed so far)",
		         p->round_pen_failed, PEN_FAILED_MAX, p->round_listed);
		pen_request_detach(p, why);
	}
}

static void session_done(struct pen *p, size_t i)
{
	p->sstate[i] = SESS_DONE;
	p->round_done++;
}

/*
 * Appends the buffered bytes to the archive's partial download.  Bytes the
 * archive refused are dropped: the pen still has them, and the next try
 * resumes where the archive stopped.  So buf_len is never more than the
 * bytes of the download under way still to store, whatever the phase.
 */
static int flush(struct pen *p)
{
	if (!p->buf_len)
		return PL_OK;
	int rc = archive_partial_append(arc(p), p->serial, &p->dl_s, p->buf_off, p->buf,
	                                p->buf_len);
	if (rc == PL_OK)
		p->buf_off += p->buf_len;
	p->buf_len = 0;
	return rc;
}

static int on_sink(void *ud, uint64_t offset, const uint8_t *data, size_t len)
{
	struct pen *p = ud;
	if (phase_closing(p->phase))
		return pl_error_set(PL_ERR_CANCELLED, "the pen is being detached");
	if (offset != p->buf_off + p->buf_len)
		return pl_error_set(PL_ERR_PROTOCOL, "bytes of session %u arrived for offset "
		                "%llu where %llu was expected",
		                p->dl_s.id, (unsigned long long)offset,
		                (unsigned long long)(p->buf_off + p->buf_len));
	while (len) {
		size_t n = p->buf_cap - p->buf_len;
		if (n > len)
			n = len;
		memcpy(p->buf + p->buf_len, data, n);
		p->buf_len += n;
		data += n;
		len -= n;
		if (p->buf_len == p->buf_cap) {
			int rc = flush(p);
			if (rc) {
				pen_enter(p, PHASE_STORE_FAILED, archive_errmsg(arc(p)));
				return pl_error_set(rc, "%s", archive_errmsg(arc(p)));
			}
		}
	}
	return PL_OK;
}

static void on_progress(void *ud, uint64_t done, uint64_t total)
{
	struct pen *p = ud;
	p->dl_done = done;
	p->timeouts = 0; /* it answers */
	/* Throttled by the clock when progress arrives, not by a timer: a
	 * stalled download costs nothing. */
	int64_t now = pl_time_monotonic_ms();
	if (done != total && now - p->progress_at < PROGRESS_MS)
		return;
	p->progress_at = now;
	Plctl__Event ev;
	event_init(&ev, PLCTL__EVENT_KIND__EVENT_KIND_DOWNLOAD_PROGRESS, p->serial);
	ev.uuid.data = p->dl_s.uuid;
	ev.uuid.len = 16;
	ev.done = done;
	ev.total = total;
	pen_broadcast(p, &ev);
}

static void download_finished(struct pen *p, int status);

static void on_downloaded(void *ud, int status)
{
	struct pen *p = ud;
	if (phase_closing(p->phase))
		return; /* work_stop kept what had arrived */
	download_finished(p, status);
}

/* Window and chunk size for a download starting now (see PEN_INFLIGHT_BUDGET). */
static void pace(const struct pen *p, struct pl_download_options *o)
{
	/* Pens still syncing will download soon: counting them keeps the
	 * first pens of a batch attached together from taking windows that
	 * would hold everyone's requests past the timeout once the rest
	 * start. */
	unsigned n = 0;
	for (const struct pen *q = p->ps->head; q; q = q->next)
		n += phase_working(q->phase);
	if (n < p->ps->downloading)
		n = p->ps->downloading;
	uint32_t share = PEN_INFLIGHT_BUDGET / (n ? n : 1);
	uint32_t frame = pl_pen_max_frame(p->pp);
	/* The largest chunk the library would use, give or take its envelope
	 * overhead. */
	uint32_t big = frame > 2048 ? frame - 1024 : frame / 2;
	if (big && share >= 2 * big) {
		o->chunk = 0;
		o->window = share / big;
	} else {
		o->chunk = share / 2 > CHUNK_MIN ? share / 2 : CHUNK_MIN;
		if (big && o->chunk > big)
			o->chunk = big;
		o->window = 2;
	}
	uint32_t cfg = (uint32_t)p->d->cfg.window;
	if (cfg && o->window > cfg)
		o->window = cfg;
}

/* Starts (or resumes) session i; false if it could not start (then marked
 * failed), true if it did or the pen is leaving. */
static bool start_download(struct pen *p, size_t i)
{
	char u[37];
	p->dl_s = p->sessions[i];
	uuid_str(p->dl_s.uuid, u);
	uint64_t off = 0;
	int rc = archive_partial_offset(arc(p), p->serial, &p->dl_s, &off);
	if (rc) {
		pen_report(p, LOG_ERR, "session %u (%s): cannot read the archive: %s",
		           p->dl_s.id, u, archive_errmsg(arc(p)));
		session_failed(p, i, false);
		return false;
	}
	if (!ensure_buffer(p)) {
		pen_report(p, LOG_ERR, "session %u (%s): out of memory", p->dl_s.id, u);
		session_failed(p, i, false);
		return false;
	}
	if (!pen_enter(p, PHASE_DOWNLOAD, off ? "resuming a session" : "downloading a session"))
		return true;
	p->buf_off = off;
	p->buf_len = 0;
	p->dl_done = off;
	p->progress_at = 0;
	if (off)
		log_notice("pen %s on %s: resuming session %u (%s) at offset %llu of %llu bytes",
		           p->serial, p->port, p->dl_s.id, u, (unsigned long long)off,
		           (unsigned long long)p->dl_s.size);
	else
		log_info("pen %s on %s: downloading session %u (%s), %llu bytes from offset 0",
		         p->serial, p->port, p->dl_s.id, u, (unsigned long long)p->dl_s.size);
	if (off >= p->dl_s.size) {
		/* Everything arrived before the daemon stopped short of the
		 * commit: commit now. */
		download_finished(p, PL_OK);
		return true;
	}
	p->dlo = (struct pl_download_options){
	    .sink = on_sink,
	    .progress = on_progress,
	    .ud = p,
	};
	pace(p, &p->dlo);
	rc = pl_pen_download_session_async(p->pp, &p->dl_s, off, &p->dlo, on_downloaded, p);
	if (rc)
		download_finished(p, rc);
	else
		pen_kick(p);
	return true;
}

static void on_reclaimed(void *ud, int status)
{
	struct pen *p = ud;
	if (pen_link_failed(p, status))
		return;
	if (status) {
		char u[37];
		/* Harmless: the next attach finds it archived and tells it again. */
		log_warn("pen %s on %s did not take note that session %u (%s) is "
		         "archived: %s", p->serial, p->port, p->sessions[p->cur].id,
		         uuid_str(p->sessions[p->cur].uuid, u), pl_error_message());
	}
	p->cur++;
	step_next(p);
}

/* Tells the pen session i is stored; true if the request is under way or
 * the pen is leaving (its next attach tells it). */
static bool reclaim(struct pen *p, size_t i)
{
	const struct pl_session_info *s = &p->sessions[i];
	/* While listing, this is syncing with the archive (phase.h). */
	if (p->phase != PHASE_LIST &&
	    !pen_enter(p, PHASE_COMMIT, "telling the pen a session is archived"))
		return true;
	int rc = pl_pen_archive_session_async(p->pp, s->id, s->sha256, on_reclaimed, p);
	if (rc) {
		char u[37];
		log_warn("pen %s on %s: cannot mark session %u (%s) archived: %s",
		         p->serial, p->port, s->id, uuid_str(s->uuid, u),
		         pl_error_message());
		return false;
	}
	pen_kick(p);
	return true;
}

static void committed(struct pen *p, size_t i)
{
	char u[37];
	uuid_str(p->dl_s.uuid, u);
	session_done(p, i);
	p->dl_done = p->dl_s.size;
	log_notice("pen %s on %s: session %u (%s) archived, %llu bytes, SHA-256 verified",
	           p->serial, p->port, p->dl_s.id, u, (unsigned long long)p->dl_s.size);
	Plctl__Event ev;
	event_init(&ev, PLCTL__EVENT_KIND__EVENT_KIND_SESSION_ARCHIVED, p->serial);
	ev.uuid.data = p->dl_s.uuid;
	ev.uuid.len = 16;
	ev.done = ev.total = p->dl_s.size;
	pen_broadcast(p, &ev);
}

static void download_finished(struct pen *p, int status)
{
	size_t i = p->cur;
	char u[37], msg[512];
	uuid_str(p->dl_s.uuid, u);
	snprintf(msg, sizeof msg, "%s", pl_error_message());
	if (status == PL_OK) {
		int rc = flush(p);
		if (!rc)
			rc = archive_commit_session(arc(p), p->serial, &p->dl_s);
		if (rc == PL_OK) {
			work_decode_kick(p->ps, true);
			central_wake(p->d->central);
			committed(p, i);
			/* Only now may the pen reclaim it. */
			if (!p->dl_s.archived && reclaim(p, i))
				return;
		} else if (rc == PL_ERR_DIGEST && p->stries[i] == 0) {
			p->stries[i]++;
			log_warn("pen %s on %s: session %u (%s) does not match its SHA-256 "
			         "(%s); downloading it again from the start",
			         p->serial, p->port, p->dl_s.id, u, archive_errmsg(arc(p)));
			if (start_download(p, i))
				return;
		} else if (rc == PL_ERR_DIGEST) {
			pen_report(p, LOG_ERR, "session %u (%s) failed its SHA-256 check "
			           "twice; it stays on the pen", p->dl_s.id, u);
			session_failed(p, i, true);
		} else {
			/* Disk full, read-only database...: the pen keeps the
			 * session, and is not told otherwise. */
			pen_report(p, LOG_ERR, "cannot store session %u (%s): %s; it stays "
			           "on the pen", p->dl_s.id, u, archive_errmsg(arc(p)));
			session_failed(p, i, false);
		}
	} else if (p->phase == PHASE_STORE_FAILED) {
		pen_report(p, LOG_ERR, "cannot store session %u (%s): %s; it stays on "
		           "the pen", p->dl_s.id, u, msg);
		session_failed(p, i, false);
	} else {
		/* Keep what arrived: the next attempt resumes after it. */
		if (flush(p))
			log_err("pen %s on %s: cannot keep the partial download of session "
			        "%u (%s): %s", p->serial, p->port, p->dl_s.id, u,
			        archive_errmsg(arc(p)));
		pl_error_set(status, "%s", msg);
		if (pen_link_failed(p, status))
			return;
		if (status == PL_ERR_TIMEOUT) {
			log_warn("pen %s on %s: session %u (%s) stalled at byte %llu (%s); "
			         "resuming", p->serial, p->port, p->dl_s.id, u,
			         (unsigned long long)p->dl_done, msg);
			if (start_download(p, i))
				return;
		} else {
			pen_report(p, LOG_ERR, "download of session %u (%s) failed at byte "
			           "%llu: %s", p->dl_s.id, u, (unsigned long long)p->dl_done,
			           msg);
			session_failed(p, i, true);
		}
	}
	p->cur++;
	step_next(p);
}

/* Moves on to the next session that needs something, listing the next
 * window of the pen's sessions once this one is done. */
static void step_next(struct pen *p)
{
	/* Detached meanwhile (PEN_FAILED_MAX): nothing more for it. */
	if (phase_leaving(p->phase))
		return;
	if (p->relist) {
		step_list(p);
		return;
	}
	while (p->cur < p->n_sessions) {
		size_t i = p->cur;
		const struct pl_session_info *s = &p->sessions[i];
		if (p->sstate[i] != SESS_TODO) {
			p->cur++;
			continue;
		}
		if (phase_leaving(p->phase))
			return;
		if (s->size > PEN_RECORD_MAX) {
			char u[37];
			pen_report(p, LOG_ERR, "session %u (%s): its record of %llu bytes is "
			           "over the record size budget (%llu bytes); it stays on "
			           "the pen", s->id, uuid_str(s->uuid, u),
			           (unsigned long long)s->size, PEN_RECORD_MAX);
			session_failed(p, i, true);
			p->cur++;
			continue;
		}
		uint8_t sha[32];
		if (archive_has_session(arc(p), p->serial, s->uuid, sha)) {
			char u[37];
			if (memcmp(sha, s->sha256, 32)) {
				pen_report(p, LOG_ERR, "session %u (%s): the archive holds a "
				           "different record with this UUID; it stays on the pen",
				           s->id, uuid_str(s->uuid, u));
				session_failed(p, i, true);
				p->cur++;
				continue;
			}
			session_done(p, i);
			/* Stored before, but the pen never heard (the daemon
			 * stopped in between): tell it now. */
			if (!s->archived && reclaim(p, i))
				return;
			p->cur++;
			continue;
		}
		if (start_download(p, i))
			return;
		p->cur++;
	}
	if (phase_leaving(p->phase))
		return;
	if (p->list_more && p->n_sessions) {
		p->list_after = p->sessions[p->n_sessions - 1].id;
		list_window(p);
		return;
	}
	round_end(p);
}

void work_stop(struct pen *p)
{
	/* Only a download under way leaves bytes to store (flush). */
	if (p->buf_len) {
		char u[37];
		int rc = flush(p);
		if (rc)
			log_err("pen %s on %s: cannot keep the partial download of session "
			        "%u (%s): %s", p->serial, p->port, p->dl_s.id,
			        uuid_str(p->dl_s.uuid, u), archive_errmsg(arc(p)));
		else
			log_info("pen %s on %s: kept %llu bytes of session %u (%s)", p->serial,
			         p->port, (unsigned long long)p->buf_off, p->dl_s.id,
			         uuid_str(p->dl_s.uuid, u));
	}
	release_buffer(p);
}

/* ------------------------------------------------------------------ decoding */

static void decode_tick(void *ud)
{
	struct pens *ps = ud;
	bool more = false;
	int rc;

	ps->decode_timer = 0;
	rc = archive_decode_step(ps->d->archive, DECODE_ROWS, &more);
	if (rc != PL_OK) {
		/* The records are safe; their sample rows wait for the next
		 * commit (or start) to try again. */
		log_err("cannot decode archived telemetry samples: %s",
		        archive_errmsg(ps->d->archive));
		return;
	}
	if (more)
		work_decode_kick(ps, true);
}

void work_decode_kick(struct pens *ps, bool pending)
{
	struct daemon *d = ps->d;
	bool more = pending;

	if (ps->decode_timer || !d->archive || !d->loop)
		return;
	if (!more && archive_decode_step(d->archive, 0, &more) != PL_OK) {
		log_err("cannot look for telemetry samples to decode: %s",
		        archive_errmsg(d->archive));
		return;
	}
	if (!more)
		return;   /* no timer at all when idle */
	/* 0 ms: runs after the I/O ready now, so pens interleave with it;
	 * later while pens download. */
	ps->decode_timer = loop_add_timer(d->loop, ps->downloading ? DECODE_BUSY_MS : 0,
	                                  decode_tick, ps);
	if (!ps->decode_timer)
		log_err("out of memory scheduling telemetry sample decoding");
}

void work_decode_stop(struct pens *ps)
{
	if (ps->decode_timer)
		loop_cancel_timer(ps->d->loop, ps->decode_timer);
	ps->decode_timer = 0;
}
