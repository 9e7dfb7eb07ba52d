/* penctl info, penctl ping */
#include <inttypes.h>
#include <string.h>

#include "penctl.h"

static const struct {
	uint32_t bit;
	const char *name;
} caps[] = {
	{PL_CAP_RTC, "rtc"},
	{PL_CAP_TRACE, "trace"},
	{PL_CAP_TELEMETRY, "telemetry"},
	{PL_CAP_CARTRIDGE_UID, "cartridge-uid"},
};

static void caps_text(uint32_t bits, char *out, size_t cap)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		if (!(bits & caps[i].bit))
			continue;
		n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s",
		                      n ? ", " : "", caps[i].name);
		bits &= ~caps[i].bit;
	}
	if (bits)
		n += (size_t)snprintf(out + n, n < cap ? cap - n : 0,
		                      "%sunknown 0x%x", n ? ", " : "", bits);
	if (n == 0)
		snprintf(out, cap, "none");
}

static json_object *caps_json(const void *info)
{
	const struct pl_device_info *in = info;
	json_object *cl = json_object_new_array();
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
		if (in->capabilities & caps[i].bit)
			json_object_array_add(cl, json_object_new_string(caps[i].name));
	return cl;
}

static json_object *rates_json(const void *info)
{
	const struct pl_device_info *in = info;
	json_object *rates = json_object_new_array();
	for (uint32_t i = 0; i < in->speed_levels && i < PL_MAX_SPEED_LEVELS; i++)
		json_object_array_add(rates, json_object_new_int64(in->stroke_rate_hz[i]));
	return rates;
}

#define INFO(group, key, kind, member) \
	JF(group, key, kind, struct pl_device_info, member)
/* penctl --json info after "serial" and "handshake_serial" (and before
 * "link"). */
static const struct json_field info_fields[] = {
	INFO(NULL, "model", JK_CHARS, model),
	INFO(NULL, "hw_revision", JK_CHARS, hw_revision),
	INFO(NULL, "fw_version", JK_CHARS, fw_version),
	INFO(NULL, "protocol_version", JK_U32, protocol_version),
	JF_MAKE(NULL, "capabilities", caps_json),
	INFO(NULL, "capability_bits", JK_U32, capabilities),
	INFO("limits", "depth_min_mm", JK_MM, depth_min_um),
	INFO("limits", "depth_max_mm", JK_MM, depth_max_um),
	INFO("limits", "depth_step_mm", JK_MM, depth_step_um),
	INFO("limits", "slow_lock_depth_mm", JK_MM, slow_lock_depth_um),
	INFO("limits", "speed_levels", JK_U32, speed_levels),
	JF_MAKE("limits", "stroke_rate_hz", rates_json),
	INFO("limits", "max_presets", JK_U32, max_presets),
	INFO("counters", "total_strokes", JK_U64, total_strokes),
	INFO("counters", "motor_seconds", JK_U64, motor_seconds),
	INFO("battery", "percent", JK_U32, battery_percent),
	INFO("battery", "mv", JK_U32, battery_mv),
	INFO("battery", "charging", JK_BOOL, charging),
};
#undef INFO

static json_object *link_stats_json(const void *link)
{
	return json_link_stats(&((const struct link_info *)link)->stats);
}

static const struct json_field link_fields[] = {
	JF(NULL, "protocol_version", JK_U32, struct link_info, protocol_version),
	JF(NULL, "max_frame", JK_U32, struct link_info, max_frame),
	JF(NULL, "max_in_flight", JK_U32, struct link_info, max_in_flight),
	JF_MAKE(NULL, "stats", link_stats_json),
};

static json_object *info_json(const char *serial, const struct pl_device_info *in,
                              const struct link_info *ln)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "serial", json_object_new_string(in->serial));
	json_object_object_add(o, "handshake_serial", json_object_new_string(serial));
	json_add_fields(o, in, info_fields, sizeof info_fields / sizeof *info_fields);

	/* Through penlinkd there is no link of penctl's own: null. */
	json_object *lk = NULL;
	if (ln) {
		lk = json_object_new_object();
		json_add_fields(lk, ln, link_fields,
		                sizeof link_fields / sizeof *link_fields);
	}
	json_object_object_add(o, "link", lk);
	return o;
}

static void info_human(const char *serial, const struct pl_device_info *in,
                       const struct link_info *ln)
{
	char a[FMT_BUF], b[FMT_BUF], s[PL_MM_TEXT_MAX], text[256];
	struct table *t = table_new(2, NULL, NULL);
#define ROW(k, ...)                                                    \
	do {                                                               \
		snprintf(text, sizeof text, __VA_ARGS__);                      \
		const char *row_[] = {k, text};                                \
		table_row(t, row_);                                            \
	} while (0)
	ROW("serial", "%s", in->serial);
	if (strcmp(serial, in->serial) != 0)
		ROW("  (handshake)", "%s", serial);
	ROW("model", "%s", in->model);
	ROW("hardware", "%s", in->hw_revision);
	ROW("firmware", "%s", in->fw_version);
	ROW("protocol", "%u", in->protocol_version);
	caps_text(in->capabilities, text, sizeof text);
	{
		const char *row_[] = {"capabilities", text};
		table_row(t, row_);
	}
	ROW("depth", "%s to %s mm in steps of %s mm",
	    pl_depth_format_mm(in->depth_min_um, PL_MM_FIXED, a),
	    pl_depth_format_mm(in->depth_max_um, PL_MM_FIXED, b),
	    pl_depth_format_mm(in->depth_step_um, PL_MM_FIXED, s));
	ROW("slow lock", "at or above %s mm only speed level 1",
	    pl_depth_format_mm(in->slow_lock_depth_um, PL_MM_FIXED, a));
	ROW("speed levels", "%u", in->speed_levels);
	for (uint32_t i = 0; i < in->speed_levels && i < PL_MAX_SPEED_LEVELS; i++) {
		char k[32];
		snprintf(k, sizeof k, "  level %u", i + 1);
		ROW(k, "%u strokes/s", in->stroke_rate_hz[i]);
	}
	ROW("max presets", "%u", in->max_presets);
	ROW("total strokes", "%" PRIu64, in->total_strokes);
	ROW("motor time", "%s (%.1f h)",
	    fmt_duration(a, (int64_t)(in->motor_seconds > INT64_MAX / 1000
	                                  ? INT64_MAX / 1000
	                                  : in->motor_seconds) * 1000),
	    (double)in->motor_seconds / 3600.0);
	ROW("battery", "%u %% (%u mV)%s", in->battery_percent, in->battery_mv,
	    in->charging ? ", charging" : "");
	if (ln) {
		ROW("link", "protocol %u, max frame %u B, %u requests in flight",
		    ln->protocol_version, ln->max_frame, ln->max_in_flight);
		const struct pl_link_stats *st = &ln->stats;
		ROW("frames", "%" PRIu64 " in (%s), %" PRIu64 " out (%s)",
		    st->frames_in, fmt_bytes(a, st->bytes_in), st->frames_out,
		    fmt_bytes(b, st->bytes_out));
		ROW("dropped", "crc %" PRIu64 ", oversize %" PRIu64
		    ", short %" PRIu64 ", cobs %" PRIu64 ", version %" PRIu64,
		    st->dropped_crc, st->dropped_oversize, st->dropped_short,
		    st->dropped_cobs, st->dropped_version);
		ROW("requests", "%" PRIu64 " timeouts, %" PRIu64 " retries, %" PRIu64
		    " stray replies, %" PRIu64 " undecodable",
		    st->timeouts, st->retries, st->stray_replies, st->bad_envelopes);
	} else {
		ROW("link", "through penlinkd");
	}
#undef ROW
	table_print(t, stdout, "");
	table_free(t);
}

static int info_run(struct ctl *c, struct opt_iter *it)
{
	int rc = cmd_start(c, it);
	if (rc != PX_OK)
		return rc;
	struct pl_device_info in;
	rc = c->be.ops->info(c->be.ctx, &in);
	if (rc != PL_OK)
		return ctl_fail_pl(c, rc);
	struct link_info ln;
	const struct link_info *lnp = &ln;
	rc = c->be.ops->link(c->be.ctx, &ln);
	if (rc == PL_ERR_UNSUPPORTED)
		lnp = NULL;
	else if (rc != PL_OK)
		return ctl_fail_pl(c, rc);
	const char *serial = c->be.ops->serial(c->be.ctx);
	if (c->json)
		return ctl_emit_json(c, info_json(serial, &in, lnp));
	info_human(serial, &in, lnp);
	return PX_OK;
}

/* ------------------------------------------------------------------ ping */

struct ping_args {
	uint32_t count;
};

static const struct optdef ping_opts[] = {
	OPT("--count", 'c', "N", 1, "round trips to time (default 4)", OPT_U32,
	    struct ping_args, count, .min = 1, .max = 100000),
	OPT_TABLE_END,
};

static int ping_run(struct ctl *c, struct opt_iter *it)
{
	struct ping_args a = {.count = 4};
	if (opt_parse(c, it, &a, NULL) != PX_OK)
		return PX_USAGE;
	uint32_t count = a.count;
	/* penlinkd has no ping: its round trip would time the daemon, not the
	 * link. */
	if (ctl_daemon_mode(c))
		return ctl_usage(c, "ping needs --port: it times the link to one pen "
		                 "directly, without penlinkd");
	int rc = ctl_connect(c);
	if (rc != PX_OK)
		return rc;
	const char *serial = c->be.ops->serial(c->be.ctx);
	json_object *rtts = c->json ? json_object_new_array() : NULL;
	uint64_t sum = 0;
	uint32_t min = UINT32_MAX, max = 0;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t rtt;
		rc = c->be.ops->ping(c->be.ctx, &rtt);
		if (rc != PL_OK) {
			if (rtts)
				ctl_partial(c, "rtt_us", rtts);
			return ctl_fail_pl(c, rc);
		}
		sum += rtt;
		if (rtt < min)
			min = rtt;
		if (rtt > max)
			max = rtt;
		if (rtts)
			json_object_array_add(rtts, json_object_new_int64(rtt));
		else
			printf("reply from %s: seq=%u time=%.3f ms\n", serial, i + 1,
			       rtt / 1000.0);
	}
	double avg = (double)sum / count;
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "serial", json_object_new_string(serial));
		json_object_object_add(o, "count", json_object_new_int64(count));
		json_object_object_add(o, "rtt_us", rtts);
		json_object_object_add(o, "min_us", json_object_new_int64(min));
		json_object_object_add(o, "avg_us",
		                       json_object_new_int64((int64_t)(avg + 0.5)));
		json_object_object_add(o, "max_us", json_object_new_int64(max));
		return ctl_emit_json(c, o);
	}
	printf("%u ping%s: min %.3f ms, avg %.3f ms, max %.3f ms\n", count,
	       count == 1 ? "" : "s", min / 1000.0, avg / 1000.0, max / 1000.0);
	return PX_OK;
}

CMD_SINGLE(info, "info", NULL, "device info, limits, counters, battery, link",
           CMD_BOTH, NULL,
           "Through penlinkd there is no link of penctl's own: the table "
           "says\n'link  through penlinkd' and the JSON has \"link\": "
           "null.\n",
           info_run);
CMD_SINGLE(ping, "ping", "[--count N]", "round-trip time to the pen",
           CMD_DIRECT, ping_opts, NULL, ping_run);
