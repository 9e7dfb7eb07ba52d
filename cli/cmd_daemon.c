/* Commands that exist only through penlinkd: list, monitor, attach, detach,
 * audit. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "penctl.h"
#include "penlink_audit.h"

const char *trace_level_name(uint32_t level)
{
	static const char *const n[] = {"error", "warn", "info", "debug"};
	return level < 4 ? n[level] : "trace";
}

/* ------------------------------------------------------------------ list */

static json_object *pen_state_json(const void *pen)
{
	const Plctl__Pen *p = pen;
	return json_object_new_string(plc_pen_state_name(p->state));
}

static const struct json_field pen_fields[] = {
	JF(NULL, "serial", JK_STR, Plctl__Pen, serial),
	JF(NULL, "port", JK_STR, Plctl__Pen, port),
	JF(NULL, "usb", JK_PBOOL, Plctl__Pen, usb),
	JF_MAKE(NULL, "state", pen_state_json),
	JF(NULL, "model", JK_STR, Plctl__Pen, model),
	JF(NULL, "fw_version", JK_STR, Plctl__Pen, fw_version),
	JF(NULL, "sessions_on_pen", JK_U32, Plctl__Pen, sessions_on_pen),
	JF(NULL, "sessions_pending", JK_U32, Plctl__Pen, sessions_pending),
	JF(NULL, "download_done", JK_U64, Plctl__Pen, download_done),
	JF(NULL, "download_total", JK_U64, Plctl__Pen, download_total),
	JF(NULL, "last_error", JK_STR, Plctl__Pen, last_error),
};

static json_object *pen_json(const Plctl__Pen *p)
{
	json_object *o = json_object_new_object();
	json_add_fields(o, p, pen_fields, sizeof pen_fields / sizeof *pen_fields);
	return o;
}

static const char *fmt_download(char *buf, size_t cap, uint64_t done,
                                uint64_t total)
{
	if (!total) {
		snprintf(buf, cap, "-");
		return buf;
	}
	char d[FMT_BUF], t[FMT_BUF];
	unsigned pct = done >= total ? 100 : (unsigned)(done * 100 / total);
	snprintf(buf, cap, "%u%% %s/%s", pct, fmt_bytes(d, done),
	         fmt_bytes(t, total));
	return buf;
}

static int list_run(struct ctl *c, struct opt_iter *it)
{
	int rc = cmd_start(c, it);
	if (rc != PX_OK)
		return rc;
	Plctl__Response *r;
	int e = dc_list_pens(c, &r);
	if (e != PL_OK)
		return ctl_fail_pl(c, e);
	size_t n = r->pens ? r->pens->n_pens : 0;
	if (c->json) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(a, pen_json(r->pens->pens[i]));
		json_object *o = json_object_new_object();
		json_object_object_add(o, "pens", a);
		dc_free(r);
		central_list_note(c, o); /* "central": its replication, if any */
		return ctl_emit_json(c, o);
	}
	if (n == 0) {
		ctl_say("no pens attached to penlinkd");
		dc_free(r);
		central_list_note(c, NULL);
		return PX_OK;
	}
	static const char *const hdr[] = {"serial", "port", "via", "state",
	                                  "model", "firmware", "sessions",
	                                  "pending", "download", "last error"};
	struct table *t = table_new(10, hdr, "llllllrrll");
	for (size_t i = 0; t && i < n; i++) {
		const Plctl__Pen *p = r->pens->pens[i];
		char on[16], pend[16], dl[3 * FMT_BUF];
		snprintf(on, sizeof on, "%u", p->sessions_on_pen);
		snprintf(pend, sizeof pend, "%u", p->sessions_pending);
		const char *row[] = {
		    p->serial,
		    p->port,
		    p->usb ? "usb" : "manual",
		    plc_pen_state_name(p->state),
		    p->model,
		    p->fw_version,
		    on,
		    pend,
		    fmt_download(dl, sizeof dl, p->download_done, p->download_total),
		    p->last_error && *p->last_error ? p->last_error : "-",
		};
		table_row(t, row);
	}
	table_print(t, stdout, "");
	table_free(t);
	dc_free(r);
	central_list_note(c, NULL);
	return PX_OK;
}

/* ------------------------------------------------------------------ monitor */

static const char *event_kind_name(Plctl__EventKind k)
{
	switch (k) {
	case PLCTL__EVENT_KIND__EVENT_KIND_PEN_ATTACHED: return "attached";
	case PLCTL__EVENT_KIND__EVENT_KIND_PEN_DETACHED: return "detached";
	case PLCTL__EVENT_KIND__EVENT_KIND_DOWNLOAD_PROGRESS:
		return "download_progress";
	case PLCTL__EVENT_KIND__EVENT_KIND_SESSION_ARCHIVED:
		return "session_archived";
	case PLCTL__EVENT_KIND__EVENT_KIND_PRESETS_CHANGED:
		return "presets_changed";
	case PLCTL__EVENT_KIND__EVENT_KIND_ERROR: return "error";
	case PLCTL__EVENT_KIND__EVENT_KIND_TRACE: return "trace";
	case PLCTL__EVENT_KIND__EVENT_KIND_PEN_STATE: return "state";
	case PLCTL__EVENT_KIND__EVENT_KIND_PEN_EVENT: return "pen_event";
	default: return "unknown";
	}
}

static json_object *event_kind_json(const void *event)
{
	const Plctl__Event *ev = event;
	return json_object_new_string(event_kind_name(ev->kind));
}

static json_object *event_uuid_json(const void *event)
{
	const Plctl__Event *ev = event;
	return ev->uuid.len == 16 ? json_uuid(ev->uuid.data) : NULL;
}

static json_object *event_state_json(const void *event)
{
	const Plctl__Event *ev = event;
	return ev->state != PLCTL__PEN_STATE__PEN_STATE_UNSPECIFIED
	           ? json_object_new_string(plc_pen_state_name(ev->state))
	           : NULL;
}

/* An event's JSON line (and "level" after these for a trace line). */
static const struct json_field event_fields[] = {
	JF(NULL, "utc_ms", JK_I64, Plctl__Event, utc_ms),
	JF(NULL, "utc", JK_UTC, Plctl__Event, utc_ms),
	JF_MAKE(NULL, "kind", event_kind_json),
	JF(NULL, "serial", JK_STR, Plctl__Event, serial),
	JF(NULL, "port", JK_STR, Plctl__Event, port),
	JF_MAKE(NULL, "uuid", event_uuid_json),
	JF(NULL, "done", JK_U64, Plctl__Event, done),
	JF(NULL, "total", JK_U64, Plctl__Event, total),
	JF(NULL, "message", JK_STR, Plctl__Event, message),
	JF_MAKE(NULL, "state", event_state_json),
};

static void monitor_event(struct ctl *c, const Plctl__Event *ev)
{
	bool have_uuid = ev->uuid.len == 16;
	if (c->json) {
		json_object *o = json_object_new_object();
		json_add_fields(o, ev, event_fields,
		                sizeof event_fields / sizeof *event_fields);
		if (ev->kind == PLCTL__EVENT_KIND__EVENT_KIND_TRACE)
			json_object_object_add(o, "level", json_object_new_int64(ev->level));
		if (ev->kind == PLCTL__EVENT_KIND__EVENT_KIND_PEN_EVENT) {
			json_object_object_add(o, "pen_state", json_object_new_string(
			                           pen_state_kind_name(ev->pen_event)));
			json_object_object_add(o, "value", json_object_new_int64(ev->value));
			json_object_object_add(o, "pen_uptime_ms",
			                       json_object_new_uint64(ev->pen_uptime_ms));
		}
		ctl_emit_json_line(o);
		return;
	}
	char when[PL_TIME_TEXT_MAX], what[1024], uuid[37] = "?", a[FMT_BUF],
	    b[FMT_BUF];
	const char *serial = ev->serial ? ev->serial : "";
	const char *port = ev->port && *ev->port ? ev->port : "?";
	const char *msg = ev->message ? ev->message : "";
	if (have_uuid)
		pl_uuid_format(ev->uuid.data, uuid);
	const char *sep = msg[0] ? ": " : "";
	switch (ev->kind) {
	case PLCTL__EVENT_KIND__EVENT_KIND_PEN_ATTACHED:
		snprintf(what, sizeof what, "attached on %s", port);
		break;
	case PLCTL__EVENT_KIND__EVENT_KIND_PEN_DETACHED:
		snprintf(what, sizeof what, "detached%s%s", sep, msg);
		break;
	case PLCTL__EVENT_KIND__EVENT_KIND_DOWNLOAD_PROGRESS: {
		unsigned pct = ev->total ? (ev->done >= ev->total
		                                ? 100
		                                : (unsigned)(ev->done * 100 / ev->total))
		                         : 0;
		snprintf(what, sizeof what, "downloading %u%% %s/%s", pct,
		         fmt_bytes(a, ev->done), fmt_bytes(b, ev->total));
		break;
	}
	case PLCTL__EVENT_KIND__EVENT_KIND_SESSION_ARCHIVED:
		snprintf(what, sizeof what, "archived session %s%s%s%s", uuid,
		         msg[0] ? " (" : "", msg, msg[0] ? ")" : "");
		break;
	case PLCTL__EVENT_KIND__EVENT_KIND_PRESETS_CHANGED:
		snprintf(what, sizeof what, "presets changed%s%s", sep, msg);
		break;
	case PLCTL__EVENT_KIND__EVENT_KIND_ERROR:
		snprintf(what, sizeof what, "error: %s", msg[0] ? msg : "(no detail)");
		break;
	case PLCTL__EVENT_KIND__EVENT_KIND_TRACE:
		snprintf(what, sizeof what, "trace %s: %s",
		         trace_level_name(ev->level), msg);
		break;
	case PLCTL__EVENT_KIND__EVENT_KIND_PEN_STATE:
		snprintf(what, sizeof what, "state %s%s%s",
		         plc_pen_state_name(ev->state), sep, msg);
		break;
	case PLCTL__EVENT_KIND__EVENT_KIND_PEN_EVENT:
		snprintf(what, sizeof what, "pen %s value=%u%s%s",
		         pen_state_kind_name(ev->pen_event), ev->value, sep, msg);
		break;
	default:
		snprintf(what, sizeof what, "event %d%s%s", (int)ev->kind, sep, msg);
		break;
	}
	ctl_say("%s %s %s", fmt_time_of_day(when, ev->utc_ms, false),
	        serial[0] ? serial : "pen", what);
	fflush(stdout);
}

static int monitor_run(struct ctl *c, struct opt_iter *it)
{
	int rc = cmd_start(c, it);
	if (rc != PX_OK)
		return rc;
	ctl_catch_signals();
	c->stream = true;
	Plctl__Monitor m = PLCTL__MONITOR__INIT;
	Plctl__Request req = DC_REQUEST(MONITOR, monitor, &m);
	int e = dc_send(c, &req);
	if (e != PL_OK)
		return ctl_fail_pl(c, e);
	if (!c->json)
		ctl_note("monitoring penlinkd at %s; Ctrl-C to stop",
		         ctl_socket_path(c));
	for (;;) {
		Plctl__Response *r;
		/* No timeout: a quiet clinic sends nothing for hours. */
		e = dc_next(c, req.id, -1, &r);
		if (e == PL_ERR_CANCELLED)
			return PX_OK;
		if (e == PX_ERR_DAEMON)
			return ctl_fail_code(c, e, "penlinkd at %s went away",
			                     ctl_socket_path(c));
		if (e != PL_OK)
			return ctl_fail_pl(c, e);
		bool last = r->last;
		if (r->body_case == PLCTL__RESPONSE__BODY_EVENT && r->event)
			monitor_event(c, r->event);
		dc_free(r);
		if (last)
			return PX_OK;
	}
}

/* ------------------------------------------------------------------ attach/detach */

/* penlinkd runs in another directory: send it an absolute path. */
static int absolute_path(struct ctl *c, const char *in, char *out, size_t cap)
{
	if (in[0] == '/') {
		if (strlen(in) >= cap)
			return ctl_usage(c, "path too long: %.60s...", in);
		snprintf(out, cap, "%s", in);
		return PX_OK;
	}
	char buf[PATH_MAX];
	if (realpath(in, buf)) {
		snprintf(out, cap, "%s", buf);
		return PX_OK;
	}
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd))
		return ctl_fail_errno(c, errno, "getcwd");
	int n = snprintf(out, cap, "%s/%s", cwd, in);
	if (n < 0 || (size_t)n >= cap)
		return ctl_usage(c, "path too long: %.60s...", in);
	return PX_OK;
}

/* The one PATH attach and detach take, made absolute in abs ("" for none;
 * a usage error, none_msg, unless -s names the pen and serial_will_do),
 * and the command's options in *a (NULL: it has none), then connects to
 * penlinkd. */
enum { A_NO_WAIT = 1 };

struct attach_args {
	bool no_wait;
};

static const struct optdef attach_opts[] = {
	OPT("--no-wait", 0, NULL, A_NO_WAIT,
	    "only ask penlinkd to attach; do not wait for the pen's handshake",
	    OPT_FLAG, struct attach_args, no_wait),
	OPT_TABLE_END,
};

static int path_arg(struct ctl *c, struct opt_iter *it, bool serial_will_do,
                    const char *none_msg, char abs[PATH_MAX],
                    struct attach_args *a)
{
	const char *cmd = it->spec->name, *path = NULL;
	struct opt_args args = {"PATH", 1, &path, 0};
	int rc = opt_parse(c, it, a, &args);
	if (rc != PX_OK)
		return rc;
	bool none = !path || !*path;
	if (none && !(serial_will_do && c->serial))
		return ctl_usage(c, "%s", none_msg);
	rc = ctl_need_daemon(c, cmd);
	abs[0] = '\0';
	if (rc == PX_OK && !none)
		rc = absolute_path(c, path, abs, PATH_MAX);
	if (rc == PX_OK)
		rc = ctl_connect(c);
	return rc;
}

/* Sends attach or detach and reports it done, as "attached WHAT". */
static int ack_run(struct ctl *c, Plctl__Request *req, const char *done,
                   const char *what)
{
	Plctl__Response *r;
	int e = dc_call(c, req, PLCTL__RESPONSE__BODY_ACK, &r);
	if (e != PL_OK)
		return ctl_fail_pl(c, e);
	dc_free(r);
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, done, json_object_new_string(what));
		return ctl_emit_json(c, o);
	}
	ctl_say("%s %s", done, what);
	return PX_OK;
}

/*
 * After penlinkd took the attach: its monitor stream (subscribed before the
 * attach was sent, so nothing is missed) tells how the pen's handshake
 * ended: PEN_ATTACHED on path (*serial set), or PEN_DETACHED on path with
 * the reason the daemon gave the pen up.  Waits at most --timeout (default
 * 10 s, above penlinkd's default handshake timeout of 5 s).
 */
static int await_handshake(struct ctl *c, uint32_t monitor_id, const char *path,
                           char *serial, size_t cap)
{
	int limit = dc_timeout(c);
	int64_t deadline = pl_time_monotonic_ms() + limit;
	for (;;) {
		int64_t left = deadline - pl_time_monotonic_ms();
		Plctl__Response *r = NULL;
		int e = left > 0 ? dc_next(c, monitor_id, (int)left, &r)
		                 : PL_ERR_TIMEOUT;
		if (e == PL_ERR_TIMEOUT)
			return ctl_fail_code(c, PL_ERR_TIMEOUT,
			                     "penlinkd is still waiting for the "
			                     "handshake of the pen on %s after %d ms "
			                     "(its handshake_timeout_ms may be longer: "
			                     "raise --timeout, or see penctl list)",
			                     path, limit);
		if (e != PL_OK)
			return ctl_fail_pl(c, e);
		const Plctl__Event *ev =
		    r->body_case == PLCTL__RESPONSE__BODY_EVENT ? r->event : NULL;
		if (ev && ev->port && strcmp(ev->port, path) == 0) {
			if (ev->kind == PLCTL__EVENT_KIND__EVENT_KIND_PEN_ATTACHED) {
				snprintf(serial, cap, "%s", ev->serial ? ev->serial : "");
				dc_free(r);
				return PX_OK;
			}
			if (ev->kind == PLCTL__EVENT_KIND__EVENT_KIND_PEN_DETACHED) {
				int rc = ctl_fail_code(c, PL_ERR_IO, "attach %s: %s", path,
				                       ev->message && *ev->message
				                           ? ev->message
				                           : "penlinkd gave the pen up");
				dc_free(r);
				return rc;
			}
		}
		dc_free(r);
	}
}

static int attach_run(struct ctl *c, struct opt_iter *it)
{
	char abs[PATH_MAX];
	struct attach_args opts = {false};
	int rc = path_arg(c, it, false,
	                  "attach needs the PATH of a pen's port (e.g. the pty "
	                  "penemu printed)", abs, &opts);
	if (rc != PX_OK)
		return rc;
	Plctl__Attach a = PLCTL__ATTACH__INIT;
	a.path = abs;
	if (opts.no_wait)
		return ack_run(c, &DC_REQUEST(ATTACH, attach, &a), "attached", abs);

	/* The monitor stream first, subscribed before the attach is sent, on
	 * this connection; the attach goes on a second one, so that no event
	 * about the pen is read (and dropped) while waiting for the attach's
	 * own answer, whichever the daemon sends first. */
	Plctl__Monitor m = PLCTL__MONITOR__INIT;
	Plctl__Request mreq = DC_REQUEST(MONITOR, monitor, &m);
	Plctl__Response *r;
	int e = dc_send(c, &mreq);
	if (e == PL_OK)
		e = dc_next(c, mreq.id, dc_timeout(c), &r);
	if (e != PL_OK)
		return ctl_fail_pl(c, e);
	dc_free(r);
	struct dconn *mon = c->dc;
	struct backend second;
	c->dc = NULL;
	rc = daemon_open(c, &second);
	if (rc != PX_OK) {
		c->dc = mon;
		return rc;
	}
	e = dc_call(c, &DC_REQUEST(ATTACH, attach, &a), PLCTL__RESPONSE__BODY_ACK,
	            &r);
	dc_free(r);
	second.ops->close(second.ctx);
	c->dc = mon;
	if (e != PL_OK)
		return ctl_fail_pl(c, e);
	char serial[256];
	rc = await_handshake(c, mreq.id, abs, serial, sizeof serial);
	if (rc != PX_OK)
		return rc;
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "attached", json_object_new_string(abs));
		json_object_object_add(o, "serial", json_object_new_string(serial));
		return ctl_emit_json(c, o);
	}
	ctl_say("attached %s on %s", serial, abs);
	return PX_OK;
}

static int detach_run(struct ctl *c, struct opt_iter *it)
{
	char abs[PATH_MAX];
	int rc = path_arg(c, it, true, "detach needs a pen's PATH or -s SERIAL",
	                  abs, NULL);
	if (rc != PX_OK)
		return rc;
	Plctl__Detach dt = PLCTL__DETACH__INIT;
	dt.path = abs;
	dt.serial = (char *)(c->serial ? c->serial : "");
	return ack_run(c, &DC_REQUEST(DETACH, detach, &dt), "detached",
	               abs[0] ? abs : c->serial);
}

/* ------------------------------------------------------------------ audit */

enum { A_SINCE = 1, A_LIMIT, A_HEAD, A_DB };

/* audit parses its own: a first argument "verify" is its subcommand. */
static const struct optdef audit_opts[] = {
	OPT_ID("--since", 0, "DATE", A_SINCE, "entries at or after DATE"),
	OPT_ID("--limit", 'n', "N", A_LIMIT, "at most N entries (default 100)"),
	OPT_TABLE_END,
};

struct verify_args {
	const char *head, *db;
};

static const struct optdef verify_opts[] = {
	OPT("--head", 0, "HASH", A_HEAD,
	    "a row hash noted earlier that must still be in the chain", OPT_TEXT,
	    struct verify_args, head),
	OPT("--db", 0, "FILE", A_DB,
	    "verify this archive file directly, without penlinkd", OPT_TEXT,
	    struct verify_args, db),
	OPT_TABLE_END,
};

static int audit_print(struct ctl *c, const Plctl__AuditEntry **all, size_t n);
static int verify_run(struct ctl *c, struct opt_iter *it);
extern const struct cmd_group audit_cmds;

static int audit_run(struct ctl *c, struct opt_iter *it)
{
	int64_t since = 0;
	uint32_t limit = 0;
	bool any = false;
	const char *v;
	int id;
	while ((id = opt_next(c, it, &v)) != OPT_END) {
		if (id == OPT_BAD)
			return PX_USAGE;
		if (id == OPT_ARG) {
			if (strcmp(v, "verify") != 0 || any)
				return ctl_usage(c, "audit takes no argument but 'verify' "
				                 "(got '%.40s')", v);
			it->spec = &audit_cmds.cmds[1];
			return verify_run(c, it);
		}
		any = true;
		if (id == A_SINCE) {
			if (parse_date(c, "--since", v, &since) != PX_OK)
				return PX_USAGE;
		} else if (parse_u32(c, "--limit", v, 1, 1000000, &limit) != PX_OK) {
			return PX_USAGE;
		}
	}
	int rc = cmd_connect(c, it);
	if (rc != PX_OK)
		return rc;
	Plctl__Audit au = PLCTL__AUDIT__INIT;
	au.since_ms = since;
	au.limit = limit;
	struct dc_pages pages;
	int e = dc_collect(c, &DC_REQUEST(AUDIT, audit, &au),
	                   PLCTL__RESPONSE__BODY_AUDIT, &pages);
	if (e != PL_OK)
		return ctl_fail_pl(c, e);
	/* The entries of every piece, in order (newest first). */
	size_t n = 0;
	for (size_t p = 0; p < pages.n; p++)
		n += pages.v[p]->audit ? pages.v[p]->audit->n_entries : 0;
	const Plctl__AuditEntry **all = calloc(n ? n : 1, sizeof *all);
	if (!all) {
		dc_pages_free(&pages);
		return ctl_fail_code(c, PL_ERR_MEM, "out of memory");
	}
	n = 0;
	for (size_t p = 0; p < pages.n; p++) {
		const Plctl__AuditList *al = pages.v[p]->audit;
		for (size_t i = 0; al && i < al->n_entries; i++)
			all[n++] = al->entries[i];
	}
	rc = audit_print(c, all, n);
	free(all);
	dc_pages_free(&pages);
	return rc;
}

/* An old or new value: the JSON object it holds, or NULL for none. */
static json_object *audit_value(const char *text)
{
	if (!text || !*text)
		return NULL;
	json_object *o = json_tokener_parse(text);
	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	if (!o) {
		/* A row from before values were objects: kept as text. */
		o = json_object_new_object();
		json_object_object_add(o, "value", json_object_new_string(text));
	}
	return o;
}

/* ---- what changed, for people */

struct change {
	char *p;
	size_t len, cap;
};

static void ch_add(struct change *c, const char *fmt, ...) PX_PRINTF(2, 3);

static void ch_add(struct change *c, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t add = strlen(buf) + (c->len ? 2 : 0);
	if (c->len + add + 1 > c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		while (cap < c->len + add + 1)
			cap *= 2;
		char *p = realloc(c->p, cap);
		if (!p)
			return;
		c->p = p;
		c->cap = cap;
	}
	c->len += (size_t)snprintf(c->p + c->len, c->cap - c->len, "%s%s",
	                           c->len ? "; " : "", buf);
}

/* A value as a person reads it: strings without quotes. */
static const char *plain(json_object *v)
{
	if (!v)
		return "(none)";
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
	                                             JSON_C_TO_STRING_NOSLASHESCAPE);
}

static bool same(json_object *a, json_object *b)
{
	return strcmp(plain(a), plain(b)) == 0;
}

static json_object *get(json_object *o, const char *k)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

/* Millimetres as the tables print them ("1.25"). */
static const char *mm(json_object *v, char buf[PL_MM_TEXT_MAX])
{
	double d = v ? json_object_get_double(v) : 0;
	long um = (long)(d * 1000.0 + (d >= 0 ? 0.5 : -0.5));
	return pl_depth_format_mm(um < 0 ? 0 : (uint32_t)um, PL_MM_FIXED, buf);
}

static json_object *preset_by_id(json_object *arr, int64_t id)
{
	size_t n = arr ? json_object_array_length(arr) : 0;
	for (size_t i = 0; i < n; i++) {
		json_object *p = json_object_array_get_idx(arr, i);
		json_object *pid = get(p, "id");
		if (pid && json_object_get_int64(pid) == id)
			return p;
	}
	return NULL;
}

/* "preset 3 depth 1.00 → 1.25 mm; preset 4 added (...); preset 2 removed". */
static void preset_changes(struct change *c, json_object *olds,
                           json_object *news)
{
	static const char *const fields[] = {"name", "depth_mm", "speed", "area",
	                                     "needles", "max_duration_s"};
	size_t before = c->len;
	size_t n = news ? json_object_array_length(news) : 0;
	for (size_t i = 0; i < n; i++) {
		json_object *np = json_object_array_get_idx(news, i);
		int64_t id = json_object_get_int64(get(np, "id"));
		json_object *op = preset_by_id(olds, id);
		char a[PL_MM_TEXT_MAX], b[PL_MM_TEXT_MAX];
		if (!op) {
			ch_add(c, "preset %lld added (%s, %s mm, speed %s)", (long long)id,
			       plain(get(np, "name")), mm(get(np, "depth_mm"), a),
			       plain(get(np, "speed")));
			continue;
		}
		for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
			json_object *ov = get(op, fields[f]), *nv = get(np, fields[f]);
			if (same(ov, nv))
				continue;
			if (f == 1)
				ch_add(c, "preset %lld depth %s \u2192 %s mm", (long long)id,
				       mm(ov, a), mm(nv, b));
			else if (f == 5)
				ch_add(c, "preset %lld max duration %s \u2192 %s s",
				       (long long)id, plain(ov), plain(nv));
			else
				ch_add(c, "preset %lld %s %s \u2192 %s", (long long)id,
				       fields[f], plain(ov), plain(nv));
		}
	}
	size_t m = olds ? json_object_array_length(olds) : 0;
	for (size_t i = 0; i < m; i++) {
		json_object *op = json_object_array_get_idx(olds, i);
		int64_t id = json_object_get_int64(get(op, "id"));
		if (!preset_by_id(news, id))
			ch_add(c, "preset %lld removed", (long long)id);
	}
	if (c->len == before)
		ch_add(c, "presets unchanged");
}

/* Keys of new that differ from old, then keys only old has. */
static void generic_changes(struct change *c, json_object *o, json_object *n)
{
	if (n && !o && json_object_object_length(n) == 1 && get(n, "value")) {
		ch_add(c, "%s", plain(get(n, "value")));
		return;
	}
	if (n) {
		json_object_object_foreach(n, k, nv) {
			json_object *ov = get(o, k);
			if (!o || !ov)
				ch_add(c, "%s %s", k, plain(nv));
			else if (!same(ov, nv))
				ch_add(c, "%s %s \u2192 %s", k, plain(ov), plain(nv));
		}
	}
	if (o) {
		json_object_object_foreach(o, k, ov) {
			if (!get(n, k))
				ch_add(c, "%s %s \u2192 (none)", k, plain(ov));
		}
	}
}

static char *describe_change(const char *action, const char *oldt,
                             const char *newt)
{
	struct change c = {0};
	json_object *o = audit_value(oldt), *n = audit_value(newt);
	const char *act = strchr(action, ':') ? strchr(action, ':') + 1 : action;
	json_object *op = get(o, "presets"), *np = get(n, "presets");
	char when[PL_TIME_TEXT_MAX], sz[FMT_BUF];
	if (np && json_object_is_type(np, json_type_array)) {
		preset_changes(&c, op, np);
	} else if (strcmp(act, "clock.sync") == 0) {
		json_object *set = get(o, "rtc_set"), *off = get(o, "offset_ms");
		if (set && !json_object_get_boolean(set))
			ch_add(&c, "clock was not set");
		else if (off)
			ch_add(&c, "clock was off by %+.3f s",
			       (double)json_object_get_int64(off) / 1000.0);
		if (get(n, "utc_ms"))
			ch_add(&c, "set to %s",
			       pl_time_format_local(json_object_get_int64(get(n, "utc_ms")),
			                            when));
	} else if (strcmp(act, "sessions.show") == 0 ||
	           strcmp(act, "sessions.pull") == 0) {
		ch_add(&c, "session %s, %s of %s sent", plain(get(n, "uuid")),
		       fmt_bytes(sz, (uint64_t)json_object_get_int64(get(n, "bytes"))),
		       fmt_bytes(when, (uint64_t)json_object_get_int64(get(n, "size"))));
	} else if (strcmp(act, "sessions.export") == 0) {
		const char *ser = plain(get(n, "serial"));
		ch_add(&c, "%s, %s session%s, %s%s%s", plain(get(n, "format")),
		       plain(get(n, "sessions")),
		       json_object_get_int64(get(n, "sessions")) == 1 ? "" : "s",
		       fmt_bytes(sz, (uint64_t)json_object_get_int64(get(n, "bytes"))),
		       *ser ? " of " : "", ser);
	} else if (strcmp(act, "sessions.annotate") == 0) {
		ch_add(&c, "session %s", plain(get(n, "uuid")));
		static const char *const k[] = {"client_ref", "operator", "note"};
		for (int i = 0; i < 3; i++) {
			const char *t = plain(get(n, k[i]));
			if (get(n, k[i]) && *t)
				ch_add(&c, "%s \"%.60s%s\"", k[i], t,
				       strlen(t) > 60 ? "..." : "");
		}
	} else {
		generic_changes(&c, o, n);
	}
	json_object_put(o);
	json_object_put(n);
	return c.p ? c.p : strdup("");
}

static int audit_print(struct ctl *c, const Plctl__AuditEntry **all, size_t n)
{
	if (c->json) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			const Plctl__AuditEntry *en = all[i];
			json_object *o = json_object_new_object();
			json_object_object_add(o, "id", json_object_new_int64(en->id));
			json_object_object_add(o, "utc_ms", json_object_new_int64(en->utc_ms));
			json_object_object_add(o, "utc", json_utc(true, en->utc_ms));
			json_object_object_add(o, "uid", json_object_new_int64(en->uid));
			json_object_object_add(o, "user", json_str(en->user));
			json_object_object_add(o, "pen", json_str(en->pen));
			json_object_object_add(o, "action", json_str(en->action));
			json_object_object_add(o, "old_value", audit_value(en->old_value));
			json_object_object_add(o, "new_value", audit_value(en->new_value));
			json_object_object_add(o, "result", json_str(en->result));
			json_object_object_add(o, "hash", json_str(en->hash));
			json_object_array_add(a, o);
		}
		json_object *o = json_object_new_object();
		json_object_object_add(o, "entries", a);
		return ctl_emit_json(c, o);
	}
	if (n == 0) {
		ctl_say("no audit entries");
		return PX_OK;
	}
	static const char *const hdr[] = {"time", "user", "pen", "action",
	                                  "change", "result"};
	struct table *t = table_new(6, hdr, NULL);
	for (size_t i = 0; t && i < n; i++) {
		const Plctl__AuditEntry *en = all[i];
		char when[PL_TIME_TEXT_MAX], uid[32];
		pl_time_format_local(en->utc_ms, when);
		snprintf(uid, sizeof uid, "uid %u", en->uid);
		char *change = describe_change(en->action ? en->action : "",
		                               en->old_value, en->new_value);
		const char *row[] = {when, en->user && *en->user ? en->user : uid,
		                     en->pen && *en->pen ? en->pen : "-", en->action,
		                     change && *change ? change : "-", en->result};
		table_row(t, row);
		free(change);
	}
	table_print(t, stdout, "");
	table_free(t);
	return PX_OK;
}

/* ---- audit verify */

/* The chain of an archive file, read-only, without penlinkd. */
static int verify_file(struct ctl *c, const char *path, const char *head,
                       struct plc_audit_chain *ch)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char uri[PATH_MAX + 32];
	if (access(path, R_OK) != 0)
		return ctl_fail_errno(c, errno, "%s", path);
	snprintf(uri, sizeof uri, "file:%s?mode=ro", path);
	int rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI,
	                         NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, PLC_AUDIT_VERIFY_SQL, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		int code = ctl_fail_code(c, PL_ERR_IO, "%s: cannot read its audit "
		                         "trail: %s", path,
		                         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return code;
	}
	plc_audit_chain_init(ch, head);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!plc_audit_chain_step_row(ch, st)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	int code = PX_OK;
	if (rc != SQLITE_DONE)
		code = ctl_fail_code(c, PL_ERR_IO, "%s: reading its audit trail: %s",
		                     path, sqlite3_errmsg(db));
	else
		plc_audit_chain_end(ch);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return code;
}

static int verify_run(struct ctl *c, struct opt_iter *it)
{
	struct verify_args a = {.head = ""};
	int rc = opt_parse(c, it, &a, NULL);
	if (rc != PX_OK)
		return rc;
	const char *head = a.head, *db = a.db;
	if (*head && strlen(head) != 64)
		return ctl_usage(c, "--head takes a row's hash: 64 hex digits "
		                 "(penctl --json audit shows them)");
	struct plc_audit_chain ch;
	if (db) {
		rc = verify_file(c, db, head, &ch);
		if (rc != PX_OK)
			return rc;
	} else {
		rc = cmd_connect(c, it);
		if (rc != PX_OK)
			return rc;
		Plctl__AuditVerify av = PLCTL__AUDIT_VERIFY__INIT;
		av.head = (char *)head;
		Plctl__Response *r;
		int e = dc_call(c, &DC_REQUEST(AUDIT_VERIFY, audit_verify, &av),
		                PLCTL__RESPONSE__BODY_AUDIT_VERIFIED, &r);
		if (e != PL_OK)
			return ctl_fail_pl(c, e);
		const Plctl__AuditVerified *av2 = r->audit_verified;
		plc_audit_chain_init(&ch, head);
		ch.rows = av2->rows;
		ch.broken = !av2->intact;
		ch.bad_id = av2->bad_id;
		snprintf(ch.reason, sizeof ch.reason, "%s", av2->reason ? av2->reason : "");
		snprintf(ch.prev, sizeof ch.prev, "%s", av2->head ? av2->head : "");
		ch.anchor_found = av2->head_found;
		dc_free(r);
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "rows", json_object_new_uint64(ch.rows));
	json_object_object_add(o, "intact", json_object_new_boolean(!ch.broken));
	json_object_object_add(o, "bad_row",
	                       ch.broken && ch.bad_id
	                           ? json_object_new_int64(ch.bad_id)
	                           : NULL);
	json_object_object_add(o, "reason", ch.broken ? json_str(ch.reason) : NULL);
	json_object_object_add(o, "head", json_str(ch.prev));
	if (!ch.broken) {
		if (c->json)
			return ctl_emit_json(c, o);
		json_object_put(o);
		ctl_say("%llu rows, chain intact (head %s)",
		        (unsigned long long)ch.rows, ch.prev);
		return PX_OK;
	}
	ctl_partial(c, "verify", o);
	if (ch.bad_id)
		return ctl_fail_exit(c, PX_INTEGRITY, "integrity", "audit trail",
		                     "first bad row %lld: %s",
		                     (long long)ch.bad_id, ch.reason);
	return ctl_fail_exit(c, PX_INTEGRITY, "integrity", "audit trail", "%s",
	                     ch.reason);
}

CMD_SINGLE(list, "list", NULL, "the pens penlinkd serves and their state",
           CMD_DAEMON, NULL, NULL, list_run);
CMD_SINGLE(monitor, "monitor", NULL, "print penlinkd's events until Ctrl-C",
           CMD_DAEMON, NULL, NULL, monitor_run);
CMD_SINGLE(attach, "attach", "PATH [--no-wait]",
           "serve a pen that is not on USB (a pty)", CMD_DAEMON, attach_opts,
           "A relative PATH is made absolute first (the daemon runs "
           "elsewhere).\n"
           "Waits for the pen's handshake: prints \"attached SERIAL on "
           "PATH\", or exits\n"
           "6 with the reason penlinkd gave the pen up.  The wait is "
           "--timeout\n"
           "(default 10000 ms, above penlinkd's default handshake timeout "
           "of 5000 ms).\n",
           attach_run);
CMD_SINGLE(detach, "detach", "PATH | -s SERIAL", "stop serving a pen",
           CMD_DAEMON, NULL, NULL, detach_run);
static const struct cmd_spec audit_specs[] = {
	{"audit", "[--since DATE] [--limit N]",
	 "the audit trail, newest first, with what each entry changed",
	 CMD_DAEMON | CMD_CENTRAL, audit_opts,
	 "Reading it needs penlinkd's log-reading permission.\n", audit_run},
	{"audit verify", "[--head HASH] [--db FILE]",
	 "recompute the audit trail's hash chain; name the first bad row",
	 CMD_DAEMON | CMD_CENTRAL, verify_opts,
	 "Exit 0: \"N rows, chain intact\"; exit 8 naming the first row that\n"
	 "was removed, changed or moved.  --db FILE reads an archive file\n"
	 "directly (read-only; no penlinkd needed).\n",
	 verify_run},
	{NULL, NULL, NULL, CMD_BOTH, NULL, NULL, NULL},
};
const struct cmd_group audit_cmds = {"audit", NULL, audit_specs};
