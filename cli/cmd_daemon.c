/* Commands that exist only through penlinkd: list, monitor, attach, detach,
 * audit. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "penctl.h"

const char *trace_level_name(uint32_t level)
{
	static const char *const n[] = {"error", "warn", "info", "debug"};
	return level < 4 ? n[level] : "trace";
}

/* ------------------------------------------------------------------ list */

static json_object *pen_json(const Plctl__Pen *p)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "serial", json_str(p->serial));
	json_object_object_add(o, "port", json_str(p->port));
	json_object_object_add(o, "usb", json_object_new_boolean(p->usb));
	json_object_object_add(o, "state",
	                       json_object_new_string(plc_pen_state_name(p->state)));
	json_object_object_add(o, "model", json_str(p->model));
	json_object_object_add(o, "fw_version", json_str(p->fw_version));
	json_object_object_add(o, "sessions_on_pen",
	                       json_object_new_int64(p->sessions_on_pen));
	json_object_object_add(o, "sessions_pending",
	                       json_object_new_int64(p->sessions_pending));
	json_object_object_add(o, "download_done",
	                       json_object_new_uint64(p->download_done));
	json_object_object_add(o, "download_total",
	                       json_object_new_uint64(p->download_total));
	json_object_object_add(o, "last_error", json_str(p->last_error));
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
	default: return "unknown";
	}
}

static void monitor_event(struct ctl *c, const Plctl__Event *ev)
{
	bool have_uuid = ev->uuid.len == 16;
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "utc_ms", json_object_new_int64(ev->utc_ms));
		json_object_object_add(o, "kind",
		                       json_object_new_string(event_kind_name(ev->kind)));
		json_object_object_add(o, "serial", json_str(ev->serial));
		json_object_object_add(o, "port", json_str(ev->port));
		json_object_object_add(o, "uuid",
		                       have_uuid ? json_uuid(ev->uuid.data) : NULL);
		json_object_object_add(o, "done", json_object_new_uint64(ev->done));
		json_object_object_add(o, "total", json_object_new_uint64(ev->total));
		json_object_object_add(o, "message", json_str(ev->message));
		json_object_object_add(
		    o, "state",
		    ev->state != PLCTL__PEN_STATE__PEN_STATE_UNSPECIFIED
		        ? json_object_new_string(plc_pen_state_name(ev->state))
		        : NULL);
		if (ev->kind == PLCTL__EVENT_KIND__EVENT_KIND_TRACE)
			json_object_object_add(o, "level", json_object_new_int64(ev->level));
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
 * then connects to penlinkd. */
static int path_arg(struct ctl *c, struct opt_iter *it, bool serial_will_do,
                    const char *none_msg, char abs[PATH_MAX])
{
	const char *cmd = it->spec->name, *path = NULL, *v;
	int id;
	while ((id = opt_next(c, it, &v)) != OPT_END) {
		if (id == OPT_BAD)
			return PX_USAGE;
		if (path)
			return ctl_usage(c, "%s takes one PATH (got '%.40s' and "
			                 "'%.40s')", cmd, path, v);
		path = v;
	}
	bool none = !path || !*path;
	if (none && !(serial_will_do && c->serial))
		return ctl_usage(c, "%s", none_msg);
	int rc = ctl_need_daemon(c, cmd);
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

static int attach_run(struct ctl *c, struct opt_iter *it)
{
	char abs[PATH_MAX];
	int rc = path_arg(c, it, false,
	                  "attach needs the PATH of a pen's port (e.g. the pty "
	                  "penemu printed)", abs);
	if (rc != PX_OK)
		return rc;
	Plctl__Attach a = PLCTL__ATTACH__INIT;
	a.path = abs;
	return ack_run(c, &DC_REQUEST(ATTACH, attach, &a), "attached", abs);
}

static int detach_run(struct ctl *c, struct opt_iter *it)
{
	char abs[PATH_MAX];
	int rc = path_arg(c, it, true, "detach needs a pen's PATH or -s SERIAL",
	                  abs);
	if (rc != PX_OK)
		return rc;
	Plctl__Detach dt = PLCTL__DETACH__INIT;
	dt.path = abs;
	dt.serial = (char *)(c->serial ? c->serial : "");
	return ack_run(c, &DC_REQUEST(DETACH, detach, &dt), "detached",
	               abs[0] ? abs : c->serial);
}

/* ------------------------------------------------------------------ audit */

enum { A_SINCE = 1, A_LIMIT };

static const struct optdef audit_opts[] = {
	{"--since", 0, "DATE", A_SINCE, "entries at or after DATE"},
	{"--limit", 'n', "N", A_LIMIT, "at most N entries (default 100)"},
	{NULL, 0, NULL, 0, NULL},
};

static int audit_print(struct ctl *c, const Plctl__AuditEntry **all, size_t n);

static int audit_run(struct ctl *c, struct opt_iter *it)
{
	int64_t since = 0;
	uint32_t limit = 0;
	const char *v;
	int id;
	while ((id = opt_next_flag(c, it, &v)) != OPT_END) {
		if (id == OPT_BAD)
			return PX_USAGE;
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

static int audit_print(struct ctl *c, const Plctl__AuditEntry **all, size_t n)
{
	if (c->json) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			const Plctl__AuditEntry *en = all[i];
			json_object *o = json_object_new_object();
			json_object_object_add(o, "utc_ms", json_object_new_int64(en->utc_ms));
			json_object_object_add(o, "uid", json_object_new_int64(en->uid));
			json_object_object_add(o, "user", json_str(en->user));
			json_object_object_add(o, "pen", json_str(en->pen));
			json_object_object_add(o, "action", json_str(en->action));
			json_object_object_add(o, "old_value", json_str(en->old_value));
			json_object_object_add(o, "new_value", json_str(en->new_value));
			json_object_object_add(o, "result", json_str(en->result));
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
	static const char *const hdr[] = {"time", "user", "pen", "action", "result"};
	struct table *t = table_new(5, hdr, NULL);
	for (size_t i = 0; t && i < n; i++) {
		const Plctl__AuditEntry *en = all[i];
		char when[PL_TIME_TEXT_MAX], uid[32];
		pl_time_format_local(en->utc_ms, when);
		snprintf(uid, sizeof uid, "uid %u", en->uid);
		const char *row[] = {when, en->user && *en->user ? en->user : uid,
		                     en->pen && *en->pen ? en->pen : "-", en->action,
		                     en->result};
		table_row(t, row);
	}
	table_print(t, stdout, "");
	table_free(t);
	return PX_OK;
}

CMD_SINGLE(list, "list", NULL, "the pens penlinkd serves and their state",
           CMD_DAEMON, NULL, NULL, list_run);
CMD_SINGLE(monitor, "monitor", NULL, "print penlinkd's events until Ctrl-C",
           CMD_DAEMON, NULL, NULL, monitor_run);
CMD_SINGLE(attach, "attach", "PATH", "serve a pen that is not on USB (a pty)",
           CMD_DAEMON, NULL,
           "A relative PATH is made absolute first (the daemon runs "
           "elsewhere).\n",
           attach_run);
CMD_SINGLE(detach, "detach", "PATH | -s SERIAL", "stop serving a pen",
           CMD_DAEMON, NULL, NULL, detach_run);
CMD_SINGLE(audit, "audit", "[--since DATE] [--limit N]",
           "the audit trail, newest first", CMD_DAEMON, audit_opts,
           "Reading it needs penlinkd's log-reading permission.\n",
           audit_run);
