/* penctl clock sync */
#include "penctl.h"

static int clock_sync(struct ctl *c, struct opt_iter *it)
{
	int rc = cmd_start(c, it);
	if (rc != PX_OK)
		return rc;
	/* pl_pen_clock_sync reports offset 0 for a pen that never had the time, so
	 * ask first whether it had (penlinkd says so in its answer instead,
	 * and knows no uptime). */
	int64_t pen_utc = 0;
	bool rtc_set = false, known = false, uptime_known = false;
	uint64_t uptime = 0;
	int e = c->be.ops->clock_get(c->be.ctx, &pen_utc, &rtc_set, &uptime);
	if (e == PL_OK)
		known = uptime_known = true;
	else if (e != PL_ERR_UNSUPPORTED)
		return ctl_fail_pl(c, e);
	int64_t offset = 0;
	int was_set = -1;
	e = c->be.ops->clock_sync(c->be.ctx, &offset, &was_set);
	if (e != PL_OK)
		return ctl_fail_pl(c, e);
	if (!known && was_set >= 0) {
		known = true;
		rtc_set = was_set == 1;
	}
	int64_t now = pl_time_utc_ms();
	const char *serial = c->be.ops->serial(c->be.ctx);
	bool had_time = !known || rtc_set;
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "serial", json_object_new_string(serial));
		json_object_object_add(o, "rtc_was_set",
		                       known ? json_object_new_boolean(rtc_set) : NULL);
		json_object_object_add(o, "offset_ms",
		                       had_time ? json_object_new_int64(offset) : NULL);
		json_object_object_add(o, "pen_uptime_ms",
		                       uptime_known ? json_object_new_uint64(uptime)
		                                    : NULL);
		json_object_object_add(o, "host_utc_ms", json_object_new_int64(now));
		json_object_object_add(o, "host_utc", json_utc(true, now));
		return ctl_emit_json(c, o);
	}
	char when[PL_TIME_TEXT_MAX], up[FMT_BUF];
	pl_time_format_local(now, when);
	if (!had_time && !uptime_known) {
		ctl_say("%s: clock was not set; now set to %s", serial, when);
	} else if (!had_time) {
		ctl_say("%s: clock was not set (pen up %s); now set to %s", serial,
		       fmt_duration(up, (int64_t)(uptime > INT64_MAX / 2 ? INT64_MAX / 2
		                                                          : uptime)),
		       when);
	} else {
		int64_t mag = offset < 0 ? -offset : offset;
		ctl_say("%s: clock was %lld.%03lld s %s the host; now set to %s",
		       serial, (long long)(mag / 1000), (long long)(mag % 1000),
		       offset < 0 ? "behind" : "ahead of", when);
	}
	return PX_OK;
}

static const struct cmd_spec clock_specs[] = {
	{"clock sync", NULL, "set the pen's clock to this host's time", CMD_BOTH,
	 NULL,
	 "Says how far off the pen's clock was, or that it had no time yet.\n",
	 clock_sync},
	{NULL, NULL, NULL, CMD_BOTH, NULL, NULL, NULL},
};
const struct cmd_group clock_cmds = {"clock", NULL, clock_specs};
