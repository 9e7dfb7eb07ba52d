/* penctl trace: the pen's trace lines and state events, until Ctrl-C. */
#include <signal.h>

#include "penctl.h"

const char *pen_state_kind_name(uint32_t k)
{
	switch (k) {
	case PL_STATE_IDLE: return "idle";
	case PL_STATE_TREATING: return "treating";
	case PL_STATE_SESSION_RECORDED: return "session-recorded";
	case PL_STATE_BATTERY_LOW: return "battery-low";
	case PL_STATE_CARTRIDGE: return "cartridge";
	case PL_STATE_ERROR: return "error";
	default: return "unknown";
	}
}

#define level_name trace_level_name

struct trace_ctx {
	struct ctl *c;
	uint64_t events;
};

static void on_event(void *ud, const struct pl_event *ev)
{
	struct trace_ctx *tc = ud;
	tc->events++;
	const char *text = ev->text ? ev->text : "";
	if (tc->c->json) {
		/* A stream has no end to wait for: one JSON object per line. */
		json_object *o = json_object_new_object();
		json_object_object_add(o, "uptime_ms", json_object_new_uint64(ev->uptime_ms));
		if (ev->kind == PL_EVENT_TRACE) {
			json_object_object_add(o, "type", json_object_new_string("trace"));
			json_object_object_add(o, "level", json_object_new_int64(ev->level));
			json_object_object_add(o, "level_name",
			                       json_object_new_string(level_name(ev->level)));
			json_object_object_add(o, "text", json_object_new_string(text));
		} else {
			json_object_object_add(o, "type", json_object_new_string("state"));
			json_object_object_add(o, "state",
			                       json_object_new_string(pen_state_kind_name(ev->state)));
			json_object_object_add(o, "value", json_object_new_int64(ev->value));
			json_object_object_add(o, "detail", json_object_new_string(text));
		}
		ctl_emit_json_line(o);
		return;
	}
	unsigned long long s = ev->uptime_ms / 1000, ms = ev->uptime_ms % 1000;
	if (ev->kind == PL_EVENT_TRACE)
		ctl_say("[%8llu.%03llu] %-5s %s", s, ms, level_name(ev->level), text);
	else
		ctl_say("[%8llu.%03llu] state %s value=%u%s%s", s, ms,
		        pen_state_kind_name(ev->state), ev->value, *text ? " " : "", text);
	fflush(stdout);
}

/* ------------------------------------------------------------------ penlinkd */

/* The daemon stamps lines with the host's UTC time, so they are shown with
 * the local time of day; a state event also carries the pen's uptime. */
static void daemon_line(struct ctl *c, const Plctl__Event *ev)
{
	const char *text = ev->message ? ev->message : "";
	char when[PL_TIME_TEXT_MAX];
	if (ev->kind == PLCTL__EVENT_KIND__EVENT_KIND_PEN_EVENT) {
		if (c->json) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "utc_ms", json_object_new_int64(ev->utc_ms));
			json_object_object_add(o, "utc", json_utc(true, ev->utc_ms));
			json_object_object_add(o, "uptime_ms",
			                       json_object_new_uint64(ev->pen_uptime_ms));
			json_object_object_add(o, "type", json_object_new_string("state"));
			json_object_object_add(o, "state", json_object_new_string(
			                                       pen_state_kind_name(ev->pen_event)));
			json_object_object_add(o, "value", json_object_new_int64(ev->value));
			json_object_object_add(o, "detail", json_object_new_string(text));
			ctl_emit_json_line(o);
			return;
		}
		ctl_say("[%s] state %s value=%u%s%s", fmt_time_of_day(when, ev->utc_ms, true),
		        pen_state_kind_name(ev->pen_event), ev->value, *text ? " " : "",
		        text);
		fflush(stdout);
		return;
	}
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "utc_ms", json_object_new_int64(ev->utc_ms));
		json_object_object_add(o, "utc", json_utc(true, ev->utc_ms));
		json_object_object_add(o, "type", json_object_new_string("trace"));
		json_object_object_add(o, "level", json_object_new_int64(ev->level));
		json_object_object_add(o, "level_name",
		                       json_object_new_string(level_name(ev->level)));
		json_object_object_add(o, "text", json_object_new_string(text));
		ctl_emit_json_line(o);
		return;
	}
	ctl_say("[%s] %-5s %s", fmt_time_of_day(when, ev->utc_ms, true),
	        level_name(ev->level), text);
	fflush(stdout);
}

static int trace_daemon(struct ctl *c, uint32_t level)
{
	int rc = ctl_connect(c);
	if (rc != PX_OK)
		return rc;
	const char *serial;
	int e = dc_pen(c, &serial);
	if (e != PL_OK)
		return ctl_fail_pl(c, e);
	ctl_catch_signals();
	c->stream = true;
	Plctl__Trace tr = PLCTL__TRACE__INIT;
	tr.serial = (char *)serial;
	tr.level = level;
	Plctl__Request req = DC_REQUEST(TRACE, trace, &tr);
	e = dc_send(c, &req);
	if (e != PL_OK)
		return ctl_fail_pl(c, e);
	uint64_t lines = 0;
	bool told = c->json;
	for (;;) {
		Plctl__Response *r;
		/* No timeout: a pen may have nothing to say for a long time. */
		e = dc_next(c, req.id, -1, &r);
		if (e == PL_ERR_CANCELLED)
			return PX_OK; /* closing the connection ends the subscription */
		if (e == PX_ERR_DAEMON)
			return ctl_fail_code(c, e, "penlinkd at %s went away (%llu lines "
			                     "received)", ctl_socket_path(c),
			                     (unsigned long long)lines);
		if (e != PL_OK)
			return ctl_fail_pl(c, e);
		bool last = r->last;
		/* penlinkd acknowledges the subscription (or refuses it) first. */
		if (!told) {
			ctl_note("tracing %s at level %u (%s) through penlinkd; Ctrl-C "
			         "to stop", serial[0] ? serial : "the pen", level,
			         level_name(level));
			told = true;
		}
		if (r->body_case == PLCTL__RESPONSE__BODY_EVENT && r->event &&
		    (r->event->kind == PLCTL__EVENT_KIND__EVENT_KIND_TRACE ||
		     r->event->kind == PLCTL__EVENT_KIND__EVENT_KIND_PEN_EVENT)) {
			lines++;
			daemon_line(c, r->event);
		}
		dc_free(r);
		if (last)
			return ctl_fail_code(c, PL_ERR_UNPLUGGED,
			                     "the pen went away (%llu lines received)",
			                     (unsigned long long)lines);
	}
}

struct trace_args {
	uint32_t level;
};

static const struct optdef trace_opts[] = {
	OPT("--level", 'l', "N", 1, "0 error, 1 warn, 2 info (default), 3 debug",
	    OPT_U32, struct trace_args, level, .min = 0, .max = 3),
	OPT_TABLE_END,
};

static int trace_run(struct ctl *c, struct opt_iter *it)
{
	struct trace_args a = {.level = 2};
	if (opt_parse(c, it, &a, NULL) != PX_OK)
		return PX_USAGE;
	uint32_t level = a.level;
	if (ctl_daemon_mode(c))
		return trace_daemon(c, level);
	int rc = ctl_connect(c);
	if (rc != PX_OK)
		return rc;

	struct trace_ctx tc = {.c = c};
	c->be.ops->set_event_handler(c->be.ctx, on_event, &tc);
	ctl_catch_signals();
	c->stream = true;

	int e = c->be.ops->trace(c->be.ctx, true, level);
	if (e != PL_OK)
		return ctl_fail_pl(c, e);
	if (!c->json)
		ctl_note("tracing %s at level %u (%s); Ctrl-C to stop",
		         c->be.ops->serial(c->be.ctx), level, level_name(level));
	while (!ctl_interrupted) {
		/* Bounded wait so Ctrl-C is noticed even if the library resumes
		 * its wait after EINTR. */
		e = c->be.ops->poll(c->be.ctx, 250);
		if (e != PL_OK)
			break;
	}
	if (ctl_interrupted) {
		/* Best effort: the pen also stops tracing when the link closes. */
		signal(SIGINT, SIG_DFL);
		c->be.ops->trace(c->be.ctx, false, level);
		return PX_OK;
	}
	if (e == PL_ERR_UNPLUGGED)
		return ctl_fail_code(c, e, "the pen went away (%llu events received)",
		                     (unsigned long long)tc.events);
	return ctl_fail_pl(c, e);
}

CMD_SINGLE(trace, "trace", "[--level N]", "stream the pen's trace until Ctrl-C",
           CMD_BOTH, trace_opts,
           "With --port: trace lines and state events with the pen's "
           "uptime; through\npenlinkd: the same with the host's time "
           "of day (state events keep the pen's\nuptime too).\n",
           trace_run);
