/* Choosing and opening the backend; the direct (libpenlink on --port) one.
 * penlinkd's is in daemon.c. */
#include <stdlib.h>
#include <string.h>

#include "penctl.h"

int ctl_connect(struct ctl *c)
{
	if (c->be.ops)
		return PX_OK;
	if (c->port && c->socket)
		return ctl_usage(c, "--port and --socket exclude each other: "
		                 "--port talks to a pen directly, --socket to "
		                 "penlinkd");
	if (!c->port) {
		/* -s is passed on with every request; penlinkd resolves it. */
		return daemon_open(c, &c->be);
	}
	int rc = direct_open(c, &c->be);
	if (rc != PX_OK)
		return rc;
	if (c->serial) {
		const char *have = c->be.ops->serial(c->be.ctx);
		if (strcmp(have, c->serial) != 0)
			return ctl_fail_code(c, PL_ERR_NOT_FOUND,
			                     "the pen on %s is %s, not %s",
			                     c->be.ops->where(c->be.ctx), have,
			                     c->serial);
	}
	return PX_OK;
}

void ctl_disconnect(struct ctl *c)
{
	if (c->be.ops) {
		c->be.ops->close(c->be.ctx);
		c->be.ops = NULL;
		c->be.ctx = NULL;
	}
}

/* ------------------------------------------------------------------ direct */

struct direct {
	struct pl_pen *pen;
	char where[256];
};

static const char *d_serial(void *ctx)
{
	return pl_pen_serial(((struct direct *)ctx)->pen);
}

static const char *d_where(void *ctx)
{
	return ((struct direct *)ctx)->where;
}

static int d_info(void *ctx, struct pl_device_info *out)
{
	return pl_pen_get_info(((struct direct *)ctx)->pen, out);
}

static int d_link(void *ctx, struct link_info *out)
{
	struct pl_pen *pen = ((struct direct *)ctx)->pen;
	out->protocol_version = pl_pen_protocol_version(pen);
	out->max_frame = pl_pen_max_frame(pen);
	out->max_in_flight = pl_pen_max_in_flight(pen);
	out->capabilities = pl_pen_capabilities(pen);
	pl_pen_link_stats(pen, &out->stats);
	return PL_OK;
}

static int d_get_presets(void *ctx, struct pl_preset_set *out)
{
	return pl_pen_get_presets(((struct direct *)ctx)->pen, out);
}

static int d_put_presets(void *ctx, const struct pl_preset_set *set,
                         bool unchecked, bool confirm,
                         struct pl_preset_set *result)
{
	/* penctl applied the --confirm policy itself; the pen has none. */
	(void)confirm;
	struct pl_pen *pen = ((struct direct *)ctx)->pen;
	if (unchecked)
		return pl_pen_put_presets_unchecked(pen, set, result);
	return pl_pen_put_presets(pen, set, result);
}

static int d_clock_get(void *ctx, int64_t *utc_ms, bool *rtc_set,
                       uint64_t *uptime_ms)
{
	return pl_pen_clock_get(((struct direct *)ctx)->pen, utc_ms, rtc_set,
	                    uptime_ms);
}

static int d_clock_sync(void *ctx, int64_t *offset_ms, int *rtc_was_set)
{
	*rtc_was_set = -1;
	return pl_pen_clock_sync(((struct direct *)ctx)->pen, offset_ms);
}

static int d_list_sessions(void *ctx, struct pl_session_info **out,
                           size_t *count)
{
	return pl_pen_list_sessions(((struct direct *)ctx)->pen, out, count);
}

static int d_download(void *ctx, const struct pl_session_info *s,
                      const char *path, pl_progress_fn progress, void *ud)
{
	return pl_pen_download_session_to_file(((struct direct *)ctx)->pen, s, path,
	                                   progress, ud);
}

static int d_archive(void *ctx, uint32_t id, const uint8_t sha256[32])
{
	return pl_pen_archive_session(((struct direct *)ctx)->pen, id, sha256);
}

static int d_ping(void *ctx, uint32_t *rtt_us)
{
	return pl_pen_ping(((struct direct *)ctx)->pen, rtt_us);
}

static int d_trace(void *ctx, bool enable, uint32_t level)
{
	return pl_pen_trace_subscribe(((struct direct *)ctx)->pen, enable, level);
}

static void d_set_event_handler(void *ctx, pl_event_fn fn, void *ud)
{
	pl_pen_set_event_handler(((struct direct *)ctx)->pen, fn, ud);
}

static int d_poll(void *ctx, int timeout_ms)
{
	return pl_pen_poll(((struct direct *)ctx)->pen, timeout_ms);
}

static void d_close(void *ctx)
{
	struct direct *d = ctx;
	pl_pen_close(d->pen);
	free(d);
}

static const struct backend_ops direct_ops = {
	.serial = d_serial,
	.where = d_where,
	.info = d_info,
	.link = d_link,
	.get_presets = d_get_presets,
	.put_presets = d_put_presets,
	.clock_get = d_clock_get,
	.clock_sync = d_clock_sync,
	.list_sessions = d_list_sessions,
	.download_to_file = d_download,
	.archive = d_archive,
	.ping = d_ping,
	.trace = d_trace,
	.set_event_handler = d_set_event_handler,
	.poll = d_poll,
	.close = d_close,
};

int direct_open(struct ctl *c, struct backend *out)
{
	struct pl_open_options o;
	pl_open_options_init(&o);
	if (c->timeout_ms > 0) {
		o.timeout_ms = c->timeout_ms;
		/* A patient user also waits longer for a pen that is booting. */
		if (o.handshake_ms < c->timeout_ms)
			o.handshake_ms = c->timeout_ms;
	}
	if (c->dump_frames) {
		o.frame_log = frame_log_stderr;
		o.frame_log_ud = NULL;
	}
	struct direct *d = calloc(1, sizeof *d);
	if (!d)
		return ctl_fail_code(c, PL_ERR_MEM, "out of memory");
	snprintf(d->where, sizeof d->where, "%s", c->port);
	int rc = pl_pen_open(c->port, &o, &d->pen);
	if (rc != PL_OK) {
		free(d);
		return ctl_fail_pl(c, rc);
	}
	if (c->timeout_ms > 0)
		pl_pen_set_timeout(d->pen, c->timeout_ms);
	out->ops = &direct_ops;
	out->ctx = d;
	return PX_OK;
}
