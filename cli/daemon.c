/* penctl's penlinkd client: the control socket (proto/ctl.proto, framed
 * like the wire protocol) and the daemon backend for the pen commands. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <penlink_wire.h>

#include "backend.h"

struct dconn {
	struct penless penless; /* first: the refusals of what only a pen does */
	struct ctl *c;
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint32_t next_id;
	struct pl_frame_decoder dec;
	uint8_t *decbuf;
	/* Responses decoded but not yet taken, oldest first. */
	Plctl__Response **q;
	size_t qhead, qlen, qcap;
	bool eof;
	/* The stream is reliable, so a frame that does not decode means the
	 * two ends disagree: fail the waiting request at once instead of
	 * letting it time out. */
	char broken[160];
	/* The pen the pen commands act on, resolved once so that info, read
	 * and write of one `preset push` go to the same pen. */
	char pen[64];
	bool pen_resolved;
	uint8_t rbuf[64 * 1024];
};

volatile sig_atomic_t ctl_interrupted;

static void on_signal(int sig)
{
	(void)sig;
	ctl_interrupted = 1;
}

void ctl_catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

bool ctl_daemon_mode(const struct ctl *c)
{
	return c->port == NULL;
}

const char *ctl_socket_path(const struct ctl *c)
{
	if (c->socket)
		return c->socket;
	const char *env = getenv("PENLINK_SOCKET");
	if (env && *env)
		return env;
	return PLC_DEFAULT_SOCKET;
}

int ctl_need_daemon(struct ctl *c, const char *what)
{
	if (!ctl_daemon_mode(c))
		return ctl_usage(c, "%s works through penlinkd; drop --port (and "
		                 "give --socket PATH if penlinkd is not at its "
		                 "default socket)", what);
	return PX_OK;
}

int dc_timeout(const struct ctl *c)
{
	return c->timeout_ms > 0 ? c->timeout_ms : DAEMON_DEFAULT_TIMEOUT_MS;
}

/* ------------------------------------------------------------------ framing */

static void on_frame(void *ud, uint8_t flags, const uint8_t *payload,
                     size_t len)
{
	(void)flags;
	struct dconn *d = ud;
	Plctl__Response *r = plctl__response__unpack(NULL, len, payload);
	if (!r) {
		if (!d->broken[0])
			snprintf(d->broken, sizeof d->broken,
			         "penlinkd sent a %zu-byte response penctl cannot "
			         "decode (a different version?)", len);
		return;
	}
	if (d->qlen == d->qcap) {
		size_t cap = d->qcap ? d->qcap * 2 : 16;
		Plctl__Response **n = realloc(d->q, cap * sizeof *n);
		if (!n) {
			plctl__response__free_unpacked(r, NULL);
			snprintf(d->broken, sizeof d->broken, "out of memory");
			return;
		}
		d->q = n;
		d->qcap = cap;
	}
	d->q[d->qlen++] = r;
}

static void on_drop(void *ud, enum pl_frame_drop why, size_t len)
{
	struct dconn *d = ud;
	if (!d->broken[0])
		snprintf(d->broken, sizeof d->broken,
		         "penlinkd sent a frame penctl dropped (%s, %zu bytes)",
		         pl_frame_drop_name(why), len);
}

static int gone(struct dconn *d)
{
	return pl_error_set(PX_ERR_DAEMON,
	                "penlinkd at %s closed the connection (it stopped, "
	                "restarted or dropped this client)", d->path);
}

static int write_all(struct dconn *d, const uint8_t *p, size_t len,
                     int timeout_ms)
{
	int64_t deadline = pl_time_monotonic_ms() + timeout_ms;
	while (len) {
		ssize_t n = send(d->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return gone(d);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return pl_error_set(PL_ERR_IO, "writing to penlinkd at %s: %s",
			                d->path, strerror(errno));
		int64_t left = deadline - pl_time_monotonic_ms();
		if (left <= 0)
			return pl_error_set(PL_ERR_TIMEOUT,
			                "penlinkd at %s did not take a request within "
			                "%d ms", d->path, timeout_ms);
		struct pollfd pfd = {.fd = d->fd, .events = POLLOUT};
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return pl_error_set(PL_ERR_IO, "poll: %s", strerror(errno));
	}
	return PL_OK;
}

int dc_send(struct ctl *c, Plctl__Request *req)
{
	if (c->cc) /* --central: answered from PostgreSQL */
		return central_ctl_send(c, req);
	struct dconn *d = c->dc;
	if (!d)
		return pl_error_set(PL_ERR_ARG, "not connected to penlinkd");
	/* Ids are never 0 (the contract) and never reused in a run, so a late
	 * answer to an abandoned request cannot be mistaken for a new one. */
	if (++d->next_id == 0)
		d->next_id = 1;
	req->id = d->next_id;
	uint8_t *frame;
	size_t len;
	int rc = plc_frame_message(&req->base, &frame, &len);
	if (rc != PL_OK)
		return rc;
	rc = write_all(d, frame, len, dc_timeout(c));
	free(frame);
	return rc;
}

void dc_free(Plctl__Response *rep)
{
	if (rep)
		plctl__response__free_unpacked(rep, NULL);
}

/* An Error body as the code and message it carries. */
static int error_body(struct dconn *d, const Plctl__Error *e)
{
	const char *msg = e && e->message ? e->message : "";
	int code = e ? e->code : 0;
	/* Only codes libpenlink defines; anything else is a daemon bug, but
	 * still a failure. */
	if (code >= 0 || code < PL_ERR_POLICY)
		return pl_error_set(PL_ERR_DEVICE, "penlinkd at %s failed (code %d): "
		                    "%s", d->path, code, msg[0] ? msg : "no message");
	if (!msg[0])
		return pl_error_set(code, "%s (from penlinkd)", pl_error_name(code));
	return pl_error_set(code, "%s", msg);
}

int dc_next(struct ctl *c, uint32_t id, int timeout_ms, Plctl__Response **rep)
{
	if (c->cc)
		return central_ctl_next(c, id, rep);
	struct dconn *d = c->dc;
	*rep = NULL;
	if (!d)
		return pl_error_set(PL_ERR_ARG, "not connected to penlinkd");
	int64_t deadline = timeout_ms >= 0 ? pl_time_monotonic_ms() + timeout_ms : -1;
	for (;;) {
		while (d->qhead < d->qlen) {
			Plctl__Response *r = d->q[d->qhead++];
			if (r->id != id) {
				/* An answer to something abandoned: not ours. */
				dc_free(r);
				continue;
			}
			if (r->body_case == PLCTL__RESPONSE__BODY_ERROR) {
				int rc = error_body(d, r->error);
				dc_free(r);
				return rc;
			}
			*rep = r;
			return PL_OK;
		}
		d->qhead = d->qlen = 0;
		if (d->broken[0])
			return pl_error_set(PL_ERR_PROTOCOL, "%s", d->broken);
		if (d->eof)
			return gone(d);
		if (ctl_interrupted)
			return pl_error_set(PL_ERR_CANCELLED, "interrupted");
		int wait = -1;
		if (deadline >= 0) {
			int64_t left = deadline - pl_time_monotonic_ms();
			if (left <= 0)
				return pl_error_set(PL_ERR_TIMEOUT,
				                "no answer from penlinkd at %s within %d ms",
				                d->path, timeout_ms);
			wait = left > 3600000 ? 3600000 : (int)left;
		}
		struct pollfd pfd = {.fd = d->fd, .events = POLLIN};
		int pr = poll(&pfd, 1, wait);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			return pl_error_set(PL_ERR_IO, "poll: %s", strerror(errno));
		}
		if (pr == 0)
			continue;
		ssize_t n = read(d->fd, d->rbuf, sizeof d->rbuf);
		if (n == 0) {
			d->eof = true;
			continue;
		}
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			if (errno == ECONNRESET) {
				d->eof = true;
				continue;
			}
			return pl_error_set(PL_ERR_IO, "reading from penlinkd at %s: %s",
			                d->path, strerror(errno));
		}
		pl_frame_decoder_feed(&d->dec, d->rbuf, (size_t)n);
	}
}

int dc_call(struct ctl *c, Plctl__Request *req, Plctl__Response__BodyCase want,
            Plctl__Response **rep)
{
	*rep = NULL;
	int rc = dc_send(c, req);
	if (rc != PL_OK)
		return rc;
	Plctl__Response *r;
	rc = dc_next(c, req->id, dc_timeout(c), &r);
	if (rc != PL_OK)
		return rc;
	if (r->body_case != want) {
		int got = r->body_case;
		dc_free(r);
		return pl_error_set(PL_ERR_PROTOCOL,
		                "penlinkd answered with response body %d where "
		                "penctl expected %d", got, (int)want);
	}
	*rep = r;
	return PL_OK;
}

/* More pieces than any archive penctl can list in memory is a daemon gone
 * wrong. */
#define DC_MAX_PIECES 65536u

int dc_collect(struct ctl *c, Plctl__Request *req,
               Plctl__Response__BodyCase want, struct dc_pages *out)
{
	out->v = NULL;
	out->n = 0;
	int rc = dc_send(c, req);
	size_t cap = 0;
	while (rc == PL_OK) {
		Plctl__Response *r;
		/* Each piece gets the whole timeout: a long list is slow, not
		 * stuck. */
		rc = dc_next(c, req->id, dc_timeout(c), &r);
		if (rc != PL_OK)
			break;
		if (r->body_case != want) {
			int got = r->body_case;
			dc_free(r);
			rc = pl_error_set(PL_ERR_PROTOCOL,
			              "penlinkd answered with response body %d where "
			              "penctl expected %d", got, (int)want);
			break;
		}
		if (out->n == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			Plctl__Response **nv = ncap <= DC_MAX_PIECES
			                           ? realloc(out->v, ncap * sizeof *nv)
			                           : NULL;
			if (!nv) {
				dc_free(r);
				rc = pl_error_set(ncap <= DC_MAX_PIECES ? PL_ERR_MEM
				                                    : PL_ERR_PROTOCOL,
				              "penlinkd sent more than %u pieces",
				              DC_MAX_PIECES);
				break;
			}
			out->v = nv;
			cap = ncap;
		}
		out->v[out->n++] = r;
		if (r->last)
			return PL_OK;
	}
	dc_pages_free(out);
	return rc;
}

void dc_pages_free(struct dc_pages *p)
{
	for (size_t i = 0; i < p->n; i++)
		dc_free(p->v[i]);
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

/* ------------------------------------------------------------------ connect */

static int dm_unsupported(const char *what)
{
	return pl_error_set(PL_ERR_UNSUPPORTED, "%s goes to the pen directly; use "
	                "--port PATH", what);
}

static void dconn_free(struct dconn *d)
{
	if (!d)
		return;
	if (d->fd >= 0)
		close(d->fd);
	while (d->qhead < d->qlen)
		dc_free(d->q[d->qhead++]);
	free(d->q);
	free(d->decbuf);
	free(d);
}

/* Who may connect, as the socket says: its group is the one to join (the
 * daemon's configuration chooses it, so it is not always "penlink"). */
static const char *access_hint(const char *path, char *buf, size_t len)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		snprintf(buf, len, "a folder on the way to it is closed to you");
		return buf;
	}
	struct group *g = getgrgid(st.st_gid);
	if (g && (st.st_mode & S_IWGRP))
		snprintf(buf, len, "ask to be added to group %s", g->gr_name);
	else if (st.st_mode & S_IWGRP)
		snprintf(buf, len, "ask to be added to group %u", (unsigned)st.st_gid);
	else
		snprintf(buf, len, "its mode %03o lets no group in", (unsigned)(st.st_mode & 0777));
	return buf;
}

static int dconn_connect(struct ctl *c, struct dconn **out)
{
	const char *path = ctl_socket_path(c);
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (!*path)
		return ctl_usage(c, "--socket needs a path");
	if (strlen(path) >= sizeof sa.sun_path)
		return ctl_usage(c, "socket path is %zu bytes; a Unix socket path "
		                 "has at most %zu: %.60s...", strlen(path),
		                 sizeof sa.sun_path - 1, path);
	memcpy(sa.sun_path, path, strlen(path) + 1);

	struct dconn *d = calloc(1, sizeof *d);
	if (!d)
		return ctl_fail_code(c, PL_ERR_MEM, "out of memory");
	d->penless.refuse = dm_unsupported;
	d->c = c;
	d->fd = -1;
	memcpy(d->path, path, strlen(path) + 1);
	size_t buflen = PL_FRAME_RAW_LEN(PLC_MAX_MESSAGE);
	d->decbuf = malloc(buflen);
	if (!d->decbuf) {
		dconn_free(d);
		return ctl_fail_code(c, PL_ERR_MEM, "out of memory");
	}
	pl_frame_decoder_init(&d->dec, d->decbuf, buflen, on_frame, on_drop, d);

	d->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (d->fd < 0) {
		int e = errno;
		dconn_free(d);
		return ctl_fail_errno(c, e, "socket");
	}
	int rc;
	while ((rc = connect(d->fd, (struct sockaddr *)&sa, sizeof sa)) != 0 &&
	       errno == EINTR)
		;
	if (rc != 0) {
		int e = errno;
		dconn_free(d);
		switch (e) {
		case ENOENT:
		case ENOTDIR:
			pl_error_set(PX_ERR_DAEMON,
			         "penlinkd is not running (no socket at %s); start it, "
			         "or use --port PATH to talk to a pen directly", path);
			return ctl_fail_pl(c, PX_ERR_DAEMON);
		case ECONNREFUSED:
			pl_error_set(PX_ERR_DAEMON,
			         "penlinkd is not running (no socket at %s: nothing "
			         "listens there); start it, or use --port PATH to talk "
			         "to a pen directly", path);
			return ctl_fail_pl(c, PX_ERR_DAEMON);
		case EACCES:
		case EPERM: {
			char hint[160];
			pl_error_set(PL_ERR_ACCESS, "permission denied: cannot connect to %s (%s)",
			         path, access_hint(path, hint, sizeof hint));
			return ctl_fail_pl(c, PL_ERR_ACCESS);
		}
		default:
			pl_error_set(PL_ERR_IO, "cannot connect to penlinkd at %s: %s", path,
			         strerror(e));
			return ctl_fail_pl(c, PL_ERR_IO);
		}
	}
	int fl = fcntl(d->fd, F_GETFL);
	if (fl < 0 || fcntl(d->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int e = errno;
		dconn_free(d);
		return ctl_fail_errno(c, e, "fcntl");
	}
	*out = d;
	return PX_OK;
}

static int hello(struct ctl *c)
{
	Plctl__Hello h = PLCTL__HELLO__INIT;
	h.version = 1;
	h.client = (char *)"penctl " PL_VERSION_STRING;
	Plctl__Response *r;
	int rc = dc_call(c, &DC_REQUEST(HELLO, hello, &h),
	                 PLCTL__RESPONSE__BODY_HELLO_REPLY, &r);
	if (rc != PL_OK)
		return rc;
	/* The permissions it reports are for display only; every request is
	 * decided by the daemon. */
	if (r->hello_reply && r->hello_reply->version != 1)
		ctl_warn("penlinkd speaks control protocol version %u; penctl "
		         "speaks 1", r->hello_reply->version);
	dc_free(r);
	return PL_OK;
}

/* ------------------------------------------------------------------ backend */

int dc_list_pens(struct ctl *c, Plctl__Response **rep)
{
	Plctl__ListPens lp = PLCTL__LIST_PENS__INIT;
	return dc_call(c, &DC_REQUEST(LIST_PENS, list_pens, &lp),
	               PLCTL__RESPONSE__BODY_PENS, rep);
}

/* The pen a pen command acts on: -s, else the only pen attached. */
static int resolve_pen(struct dconn *d)
{
	if (d->pen_resolved)
		return PL_OK;
	if (d->c->serial) {
		snprintf(d->pen, sizeof d->pen, "%s", d->c->serial);
		d->pen_resolved = true;
		return PL_OK;
	}
	Plctl__Response *r;
	int rc = dc_list_pens(d->c, &r);
	if (rc != PL_OK)
		return rc;
	size_t n = r->pens ? r->pens->n_pens : 0;
	if (n == 1) {
		/* Raw, as penlinkd knows the pen: it is sent back in requests. */
		const char *s = r->pens->pens[0]->serial;
		snprintf(d->pen, sizeof d->pen, "%s", s ? s : "");
		d->pen_resolved = true;
		dc_free(r);
		return PL_OK;
	}
	if (n == 0) {
		dc_free(r);
		return pl_error_set(PL_ERR_NOT_FOUND, "no pen is attached to penlinkd "
		                "at %s", d->path);
	}
	char names[256] = "";
	size_t len = 0;
	for (size_t i = 0; i < n && len < sizeof names - 1; i++) {
		const char *s = r->pens->pens[i]->serial;
		len += (size_t)snprintf(names + len, sizeof names - len, "%s%s",
		                        i ? ", " : "", s ? s : "");
	}
	dc_free(r);
	return pl_error_set(PL_ERR_NOT_FOUND, "%zu pens are attached (%s); name one "
	                "with -s SERIAL", n, names);
}

int dc_pen(struct ctl *c, const char **serial)
{
	*serial = "";
	if (!c->dc)
		return pl_error_set(PL_ERR_ARG, "not connected to penlinkd");
	int rc = resolve_pen(c->dc);
	if (rc == PL_OK)
		*serial = c->dc->pen;
	return rc;
}

static const char *dm_serial(void *ctx)
{
	struct dconn *d = ctx;
	return d->pen_resolved && d->pen[0] ? d->pen : "(the pen)";
}

static const char *dm_where(void *ctx)
{
	return ((struct dconn *)ctx)->path;
}

/* Sends req, a request for the pen, once the pen is resolved and its serial
 * stands in *serial (a field of req's op); as dc_call() otherwise. */
static int pen_call(struct dconn *d, Plctl__Request *req, char **serial,
                    Plctl__Response__BodyCase want, Plctl__Response **rep)
{
	*rep = NULL;
	int rc = resolve_pen(d);
	if (rc != PL_OK)
		return rc;
	*serial = d->pen;
	return dc_call(d->c, req, want, rep);
}

static int dm_info(void *ctx, struct pl_device_info *out)
{
	Plctl__GetInfo gi = PLCTL__GET_INFO__INIT;
	Plctl__Response *r;
	int rc = pen_call(ctx, &DC_REQUEST(GET_INFO, get_info, &gi), &gi.serial,
	                  PLCTL__RESPONSE__BODY_INFO, &r);
	if (rc == PL_OK)
		rc = plc_device_info_from_pb(r->info, out);
	dc_free(r);
	return rc;
}

static int dm_link(void *ctx, struct link_info *out)
{
	(void)ctx;
	memset(out, 0, sizeof *out);
	return pl_error_set(PL_ERR_UNSUPPORTED, "penlinkd does not report the link");
}

static int dm_get_presets(void *ctx, struct pl_preset_set *out)
{
	Plctl__GetPresets gp = PLCTL__GET_PRESETS__INIT;
	Plctl__Response *r;
	int rc = pen_call(ctx, &DC_REQUEST(GET_PRESETS, get_presets, &gp),
	                  &gp.serial, PLCTL__RESPONSE__BODY_PRESETS, &r);
	if (rc == PL_OK)
		rc = plc_preset_set_from_pb(r->presets, out);
	dc_free(r);
	return rc;
}

static int dm_put_presets(void *ctx, const struct pl_preset_set *cur,
                          const struct pl_preset_set *next,
                          const struct push_flags *flags,
                          struct pl_preset_set *result,
                          struct pl_preset_diff *diff)
{
	/* The daemon decides (the --replace rule, its policy) and computes
	 * the diff against the pen's set; penctl passes the flags on. */
	(void)cur;
	Pl__PresetSet *set;
	int rc = plc_preset_set_to_pb(next, &set);
	if (rc != PL_OK)
		return rc;
	Plctl__PushPresets pp = PLCTL__PUSH_PRESETS__INIT;
	pp.expected_revision = next->revision;
	pp.n_presets = set->n_presets;
	pp.presets = set->presets;
	pp.confirm = flags->confirm;
	pp.replace = flags->replace;
	pp.dry_run = flags->dry_run;
	Plctl__Response *r;
	rc = pen_call(ctx, &DC_REQUEST(PUSH_PRESETS, push_presets, &pp),
	              &pp.serial, PLCTL__RESPONSE__BODY_PUSHED, &r);
	plc_preset_set_pb_free(set);
	if (rc != PL_OK)
		return rc;
	if (!r->pushed)
		rc = pl_error_set(PL_ERR_PROTOCOL, "penlinkd sent an empty answer");
	else if (r->pushed->dry_run != flags->dry_run)
		/* A penlinkd older than dry runs ignores the flag and writes. */
		rc = pl_error_set(PL_ERR_PROTOCOL,
		                  "penlinkd %s a dry run; check the presets",
		                  flags->dry_run ? "wrote instead of doing"
		                                 : "answered a push as");
	if (rc == PL_OK)
		rc = plc_preset_set_from_pb(r->pushed->presets, result);
	if (rc == PL_OK)
		rc = plc_preset_diff_from_pb(r->pushed->diff, r->pushed->n_diff, diff);
	dc_free(r);
	return rc;
}

static int dm_clock_get(void *ctx, int64_t *utc_ms, bool *rtc_set,
                        uint64_t *uptime_ms)
{
	(void)ctx;
	(void)utc_ms;
	(void)rtc_set;
	(void)uptime_ms;
	return pl_error_set(PL_ERR_UNSUPPORTED, "penlinkd does not read the clock");
}

static int dm_clock_sync(void *ctx, int64_t *offset_ms, int *rtc_was_set)
{
	*rtc_was_set = -1;
	Plctl__ClockSync cs = PLCTL__CLOCK_SYNC__INIT;
	Plctl__Response *r;
	int rc = pen_call(ctx, &DC_REQUEST(CLOCK_SYNC, clock_sync, &cs),
	                  &cs.serial, PLCTL__RESPONSE__BODY_CLOCK, &r);
	if (rc != PL_OK)
		return rc;
	if (r->clock) {
		*offset_ms = r->clock->offset_ms;
		*rtc_was_set = r->clock->rtc_was_set ? 1 : 0;
	}
	dc_free(r);
	return PL_OK;
}

/* ---- the archive's sessions */

int dc_list_sessions(struct ctl *c, int64_t since, const char *client_ref,
                     struct session_entry **out, size_t *count)
{
	*out = NULL;
	*count = 0;
	Plctl__ListSessions ls = PLCTL__LIST_SESSIONS__INIT;
	ls.serial = (char *)(c->serial ? c->serial : "");
	ls.since_ms = since;
	ls.client_ref = (char *)(client_ref ? client_ref : "");
	struct dc_pages pages;
	int rc = dc_collect(c, &DC_REQUEST(LIST_SESSIONS, list_sessions, &ls),
	                    PLCTL__RESPONSE__BODY_SESSIONS, &pages);
	if (rc != PL_OK)
		return rc;
	size_t total = 0;
	for (size_t p = 0; p < pages.n; p++)
		total += pages.v[p]->sessions ? pages.v[p]->sessions->n_sessions : 0;
	struct session_entry *v = calloc(total ? total : 1, sizeof *v);
	if (!v) {
		dc_pages_free(&pages);
		return pl_error_set(PL_ERR_MEM, "out of memory");
	}
	size_t n = 0;
	for (size_t p = 0; p < pages.n && rc == PL_OK; p++) {
		const Plctl__SessionList *sl = pages.v[p]->sessions;
		for (size_t i = 0; sl && i < sl->n_sessions && rc == PL_OK; i++, n++)
			rc = plc_session_from_pb(sl->sessions[i], &v[n].key, &v[n].info,
			                         &v[n].archived_ms);
	}
	dc_pages_free(&pages);
	if (rc != PL_OK) {
		free(v);
		return rc;
	}
	*out = v;
	*count = n;
	return PL_OK;
}

static int dm_list_sessions(void *ctx, int64_t since,
                            struct session_entry **out, size_t *count)
{
	struct dconn *d = ctx;
	return dc_list_sessions(d->c, since, NULL, out, count);
}

/* Receives one archived record's bytes in order (RecordChunk stream). */
typedef int (*record_sink)(void *ud, const uint8_t *data, size_t len,
                           uint64_t done, uint64_t total);

/* purpose: what the daemon's audit trail records, "sessions.show" or
 * "sessions.pull". */
static int fetch_record(struct dconn *d, const struct pl_session_key *key,
                        const char *purpose, uint64_t max, record_sink sink,
                        void *ud)
{
	char uuid[37], name[160];
	pl_uuid_format(key->uuid, uuid);
	pl_session_key_format(key, PL_TEXT_LOG, name, sizeof name);
	Plctl__ShowSession ss = PLCTL__SHOW_SESSION__INIT;
	ss.uuid = uuid;
	ss.serial = (char *)key->serial;
	ss.purpose = (char *)purpose;
	Plctl__Request req = DC_REQUEST(SHOW_SESSION, show_session, &ss);
	int e = dc_send(d->c, &req);
	if (e != PL_OK)
		return e;
	uint64_t got = 0, size = 0;
	bool sized = false;
	unsigned empty = 0;
	for (;;) {
		Plctl__Response *r;
		/* The timeout bounds each piece, not the whole record. */
		e = dc_next(d->c, req.id, dc_timeout(d->c), &r);
		if (e != PL_OK)
			return e;
		const Plctl__RecordChunk *ch =
		    r->body_case == PLCTL__RESPONSE__BODY_RECORD ? r->record : NULL;
		bool last = r->last;
		if (!ch) {
			dc_free(r);
			return pl_error_set(PL_ERR_PROTOCOL, "penlinkd answered show "
			                    "with something other than the record");
		}
		if (!sized) {
			size = ch->size;
			sized = true;
			if (size > max) {
				dc_free(r);
				return pl_error_set(PL_ERR_PARSE, "session %s is %llu bytes; "
				                    "penctl shows records up to %llu bytes",
				                    name, (unsigned long long)size,
				                    (unsigned long long)max);
			}
		}
		if (ch->size != size || ch->offset != got ||
		    ch->data.len > size - got) {
			dc_free(r);
			return pl_error_set(PL_ERR_PROTOCOL, "penlinkd sent bytes "
			                    "%llu+%zu of a %llu-byte record after %llu "
			                    "bytes", (unsigned long long)ch->offset,
			                    ch->data.len, (unsigned long long)ch->size,
			                    (unsigned long long)got);
		}
		/* A stream of empty pieces would never end. */
		if (!ch->data.len && !last && ++empty > 1000) {
			dc_free(r);
			return pl_error_set(PL_ERR_PROTOCOL, "penlinkd sends empty "
			                    "pieces of session %s", name);
		}
		if (ch->data.len) {
			e = sink(ud, ch->data.data, ch->data.len, got + ch->data.len, size);
			got += ch->data.len;
		}
		dc_free(r);
		if (e != PL_OK)
			return e;
		if (last)
			break;
	}
	if (got != size)
		return pl_error_set(PL_ERR_PROTOCOL, "penlinkd ended session %s after "
		                    "%llu of %llu bytes", name, (unsigned long long)got,
		                    (unsigned long long)size);
	return PL_OK;
}

/* A pull: the record streamed from penlinkd into the file being made. */
struct file_sink {
	struct dconn *d;
	const struct session_entry *s;
	const char *path;
	int fd;
	pl_progress_fn progress;
	void *ud;
};

static int to_file(void *ud, const uint8_t *data, size_t len, uint64_t done,
                   uint64_t total)
{
	struct file_sink *f = ud;
	int e = fd_write_all(f->fd, f->path, data, len);
	if (e == PL_OK && f->progress)
		f->progress(f->ud, done, total);
	return e;
}

static int fill_file(void *ud, int fd)
{
	struct file_sink *f = ud;
	f->fd = fd;
	return fetch_record(f->d, &f->s->key, "sessions.pull", UINT64_MAX,
	                    to_file, f);
}

static int dm_fetch_to_file(void *ctx, const struct session_entry *s,
                            const char *path, pl_progress_fn progress, void *ud)
{
	struct file_sink f = {.d = ctx, .s = s, .path = path, .fd = -1,
	                      .progress = progress, .ud = ud};
	return archive_copy_to_file(path, s->info.sha256, fill_file, &f);
}

struct mem_sink {
	uint8_t *buf;
	size_t len, cap;
};

static int to_memory(void *ud, const uint8_t *data, size_t len, uint64_t done,
                     uint64_t total)
{
	(void)done;
	struct mem_sink *m = ud;
	if (!m->buf) {
		/* total is bounded by the caller's max and every piece by it. */
		m->cap = total ? (size_t)total : 1;
		m->buf = malloc(m->cap);
		if (!m->buf)
			return pl_error_set(PL_ERR_MEM, "out of memory for a %llu-byte "
			                    "record", (unsigned long long)total);
	}
	if (len > m->cap - m->len)
		return pl_error_set(PL_ERR_PROTOCOL, "record longer than announced");
	memcpy(m->buf + m->len, data, len);
	m->len += len;
	return PL_OK;
}

static int dm_read_record(void *ctx, const struct pl_session_key *key,
                          uint64_t max, uint8_t **data, size_t *len)
{
	struct mem_sink m = {0};
	int e = fetch_record(ctx, key, "sessions.show", max, to_memory, &m);
	if (e != PL_OK) {
		free(m.buf);
		*data = NULL;
		*len = 0;
		return e;
	}
	*data = m.buf;
	*len = m.len;
	return PL_OK;
}

static void dm_close(void *ctx)
{
	struct dconn *d = ctx;
	if (d && d->c && d->c->dc == d)
		d->c->dc = NULL;
	dconn_free(d);
}

static const struct backend_ops daemon_ops = {
	.direct = false,
	.serial = dm_serial,
	.where = dm_where,
	.info = dm_info,
	.link = dm_link,
	.get_presets = dm_get_presets,
	.put_presets = dm_put_presets,
	.clock_get = dm_clock_get,
	.clock_sync = dm_clock_sync,
	.list_sessions = dm_list_sessions,
	.fetch_to_file = dm_fetch_to_file,
	.resume_point = penless_resume_point,
	.read_record = dm_read_record,
	.release = NULL, /* penlinkd tells pens to reclaim, not penctl */
	/* what only a pen does: refused through dm_unsupported() */
	.ping = penless_ping,
	.trace = penless_trace,
	.set_event_handler = penless_set_event_handler,
	.poll = penless_poll,
	.close = dm_close,
};

int daemon_open(struct ctl *c, struct backend *out)
{
	struct dconn *d = NULL;
	int rc = dconn_connect(c, &d);
	if (rc != PX_OK)
		return rc;
	c->dc = d;
	int e = hello(c);
	if (e != PL_OK) {
		c->dc = NULL;
		dconn_free(d);
		return ctl_fail_pl(c, e);
	}
	out->ops = &daemon_ops;
	out->ctx = d;
	return PX_OK;
}
