/* Opening a pen (handshake), negotiated parameters, ping, device info,
 * clock, and unsolicited frames. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "pen.h"

#define HELLO_INTERVAL_MS 200
#define MIN_FRAME 256u              /* room for every small request */
#define MAX_FRAME (16u << 20)       /* decoder buffer we are willing to hold */
#define PROTOCOL_MIN 1u
#define PROTOCOL_MAX 1u

void pl_open_options_init(struct pl_open_options *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof *o);
	o->timeout_ms = 1000;
	o->retries = 2;
	o->handshake_ms = 5000;
	o->max_frame = 65536;
	o->max_in_flight = 16;
}

/* Zero fields take their defaults, so a caller that forgot
 * pl_open_options_init() still gets sane behaviour. */
static int check_options(const struct pl_open_options *in,
                         struct pl_open_options *o)
{
	pl_open_options_init(o);
	if (!in)
		return PL_OK;
	if (in->timeout_ms < 0 || in->retries < 0 || in->handshake_ms < 0)
		return pl__fail(PL_ERR_ARG, "timeouts and retries must not be negative");
	if (in->max_frame && (in->max_frame < MIN_FRAME || in->max_frame > MAX_FRAME))
		return pl__fail(PL_ERR_ARG, "max_frame %u is outside %u..%u",
		                in->max_frame, MIN_FRAME, MAX_FRAME);
	if (in->timeout_ms)
		o->timeout_ms = in->timeout_ms;
	o->retries = in->retries;
	if (in->handshake_ms)
		o->handshake_ms = in->handshake_ms;
	if (in->max_frame)
		o->max_frame = in->max_frame;
	if (in->max_in_flight)
		o->max_in_flight = in->max_in_flight;
	o->frame_log = in->frame_log;
	o->frame_log_ud = in->frame_log_ud;
	return PL_OK;
}

static void on_event(void *ud, const Pl__Envelope *env)
{
	struct pl_pen *pen = ud;
	if (!pen->ev)
		return;
	struct pl_event ev = {0};
	if (env->body_case == PL__ENVELOPE__BODY_TRACE_LINE) {
		ev.kind = PL_EVENT_TRACE;
		ev.uptime_ms = env->trace_line->uptime_ms;
		ev.level = env->trace_line->level;
		ev.text = env->trace_line->text ? env->trace_line->text : "";
	} else {
		const Pl__StateEvent *s = env->state_event;
		ev.kind = PL_EVENT_STATE;
		ev.uptime_ms = s->uptime_ms;
		ev.state = ((int)s->kind >= 0 && (int)s->kind <= (int)PL_STATE_ERROR)
		               ? (enum pl_state_kind)s->kind
		               : PL_STATE_UNSPECIFIED;
		ev.value = s->value;
		ev.text = s->detail ? s->detail : "";
	}
	pen->ev(pen->ev_ud, &ev);
}

static int handshake(struct pl_pen *pen)
{
	const struct pl_open_options *o = &pen->opts;
	int interval = o->timeout_ms < HELLO_INTERVAL_MS ? o->timeout_ms
	                                                 : HELLO_INTERVAL_MS;
	int64_t tries = ((int64_t)o->handshake_ms + interval - 1) / interval;
	if (tries < 1)
		tries = 1;
	if (tries > INT_MAX)
		tries = INT_MAX;

	/* A lone delimiter makes the pen discard whatever half frame it holds
	 * from an earlier program, so our first Hello is not glued to it. */
	static const uint8_t flush_byte = 0;
	int rc = pl__engine_send_raw(pen->e, &flush_byte, 1);
	if (rc)
		return rc;

	Pl__Hello h = PL__HELLO__INIT;
	h.version_min = PROTOCOL_MIN;
	h.version_max = PROTOCOL_MAX;
	h.max_frame = o->max_frame;
	h.max_in_flight = o->max_in_flight;
	h.capabilities = 0;
	h.host = (char *)"libpenlink " PL_VERSION_STRING;
	Pl__Envelope req = PL__ENVELOPE__INIT;
	req.body_case = PL__ENVELOPE__BODY_HELLO;
	req.hello = &h;

	Pl__Envelope *rep = NULL;
	rc = pl__engine_call_ex(pen->e, &req, PL__ENVELOPE__BODY_HELLO_REPLY,
	                        interval, (int)(tries - 1), &rep);
	if (rc == PL_ERR_TIMEOUT)
		return pl__fail(rc,
		                "the pen on %s did not answer the handshake within "
		                "%d ms; is it powered and running penlink firmware?",
		                pl_transport_name(pen->t), o->handshake_ms);
	if (rc)
		return rc;

	const Pl__HelloReply *hr = rep->hello_reply;
	if (hr->version < PROTOCOL_MIN || hr->version > PROTOCOL_MAX) {
		rc = pl__fail(PL_ERR_VERSION,
		              "the pen on %s speaks protocol version %u; this "
		              "library speaks %u to %u (update one of them)",
		              pl_transport_name(pen->t), hr->version, PROTOCOL_MIN,
		              PROTOCOL_MAX);
	} else if (hr->max_frame < MIN_FRAME) {
		rc = pl__fail(PL_ERR_PROTOCOL,
		              "the pen on %s accepts frames of only %u bytes; at "
		              "least %u are needed",
		              pl_transport_name(pen->t), hr->max_frame, MIN_FRAME);
	} else {
		pen->version = hr->version;
		pen->max_frame = hr->max_frame < o->max_frame ? hr->max_frame : o->max_frame;
		uint32_t w = hr->max_in_flight ? hr->max_in_flight : 1;
		pen->max_in_flight = w < o->max_in_flight ? w : o->max_in_flight;
		pen->caps = hr->capabilities;
		pl__copy_text(pen->serial, sizeof pen->serial, hr->serial);
		pl__engine_set_limits(pen->e, pen->max_frame, pen->max_in_flight);
	}
	pl__envelope__free_unpacked(rep, NULL);
	return rc;
}

int pl_pen_open_transport(struct pl_transport *t,
                          const struct pl_open_options *opts,
                          struct pl_pen **out)
{
	if (out)
		*out = NULL;
	if (!t || !out) {
		pl_transport_close(t);
		return pl__fail(PL_ERR_ARG, "pl_pen_open_transport: missing transport or result");
	}
	struct pl_pen *pen = calloc(1, sizeof *pen);
	if (!pen) {
		pl_transport_close(t);
		return pl__fail(PL_ERR_MEM, "out of memory");
	}
	pen->t = t;
	int rc = check_options(opts, &pen->opts);
	if (!rc) {
		struct pl__engine_config cfg = {
		    .timeout_ms = pen->opts.timeout_ms,
		    .retries = pen->opts.retries,
		    .max_frame = pen->opts.max_frame,
		    .max_in_flight = pen->opts.max_in_flight,
		    .frame_log = pen->opts.frame_log,
		    .frame_log_ud = pen->opts.frame_log_ud,
		};
		rc = pl__engine_new(t, &cfg, &pen->e);
	}
	if (!rc) {
		pl__engine_set_event_handler(pen->e, on_event, pen);
		rc = handshake(pen);
	}
	if (rc) {
		pl_pen_close(pen);
		return rc;
	}
	*out = pen;
	return PL_OK;
}

int pl_pen_open(const char *path, const struct pl_open_options *opts,
                struct pl_pen **out)
{
	if (out)
		*out = NULL;
	if (!path || !out)
		return pl__fail(PL_ERR_ARG, "pl_pen_open: missing path or result");
	struct pl_transport *t = NULL;
	int rc = pl_transport_open(path, &t);
	if (rc)
		return rc;
	return pl_pen_open_transport(t, opts, out);
}

void pl_pen_close(struct pl_pen *pen)
{
	if (!pen)
		return;
	pl__engine_free(pen->e);
	pl_transport_close(pen->t);
	free(pen);
}

const char *pl_pen_serial(const struct pl_pen *pen)
{
	return pen ? pen->serial : "";
}

uint32_t pl_pen_protocol_version(const struct pl_pen *pen)
{
	return pen ? pen->version : 0;
}

uint32_t pl_pen_max_frame(const struct pl_pen *pen)
{
	return pen ? pen->max_frame : 0;
}

uint32_t pl_pen_max_in_flight(const struct pl_pen *pen)
{
	return pen ? pen->max_in_flight : 0;
}

uint32_t pl_pen_capabilities(const struct pl_pen *pen)
{
	return pen ? pen->caps : 0;
}

void pl_pen_set_timeout(struct pl_pen *pen, int timeout_ms)
{
	if (!pen || timeout_ms <= 0)
		return;
	pen->opts.timeout_ms = timeout_ms;
	pl__engine_set_timeout(pen->e, timeout_ms);
}

void pl_pen_link_stats(const struct pl_pen *pen, struct pl_link_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof *out);
	if (pen)
		pl__engine_stats(pen->e, out);
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int pl_ping(struct pl_pen *pen, uint32_t *rtt_us)
{
	if (!pen)
		return pl__fail(PL_ERR_ARG, "pl_ping: no pen");
	uint64_t t0 = now_us();
	uint8_t payload[8];
	memcpy(payload, &t0, sizeof payload);
	Pl__Ping ping = PL__PING__INIT;
	ping.payload.data = payload;
	ping.payload.len = sizeof payload;
	Pl__Envelope req = PL__ENVELOPE__INIT;
	req.body_case = PL__ENVELOPE__BODY_PING;
	req.ping = &ping;
	Pl__Envelope *rep = NULL;
	int rc = pl__engine_call(pen->e, &req, PL__ENVELOPE__BODY_PONG, &rep);
	if (rc)
		return rc;
	uint64_t t1 = now_us();
	const ProtobufCBinaryData *p = &rep->pong->payload;
	if (p->len != sizeof payload || memcmp(p->data, payload, sizeof payload))
		rc = pl__fail(PL_ERR_PROTOCOL,
		              "the pen on %s answered a ping with a different payload",
		              pl_transport_name(pen->t));
	pl__envelope__free_unpacked(rep, NULL);
	if (!rc && rtt_us)
		*rtt_us = t1 - t0 > UINT32_MAX ? UINT32_MAX : (uint32_t)(t1 - t0);
	return rc;
}

/* ------------------------------------------------------------------ info */

static void info_from_wire(const Pl__DeviceInfo *d, struct pl_device_info *o)
{
	memset(o, 0, sizeof *o);
	pl__copy_text(o->serial, sizeof o->serial, d->serial);
	pl__copy_text(o->model, sizeof o->model, d->model);
	pl__copy_text(o->hw_revision, sizeof o->hw_revision, d->hw_revision);
	pl__copy_text(o->fw_version, sizeof o->fw_version, d->fw_version);
	o->protocol_version = d->protocol_version;
	o->capabilities = d->capabilities;
	o->depth_min_um = d->depth_min_um;
	o->depth_max_um = d->depth_max_um;
	o->depth_step_um = d->depth_step_um;
	o->speed_levels = d->speed_levels;
	for (size_t i = 0; i < d->n_stroke_rate_hz && i < PL_MAX_SPEED_LEVELS; i++)
		o->stroke_rate_hz[i] = d->stroke_rate_hz[i];
	o->slow_lock_depth_um = d->slow_lock_depth_um;
	o->max_presets = d->max_presets;
	o->total_strokes = d->total_strokes;
	o->motor_seconds = d->motor_seconds;
	if (d->battery) {
		o->battery_percent = d->battery->percent;
		o->battery_mv = d->battery->millivolts;
		o->charging = d->battery->charging;
	}
}

int pl_get_info(struct pl_pen *pen, struct pl_device_info *out)
{
	if (!pen)
		return pl__fail(PL_ERR_ARG, "pl_get_info: no pen");
	Pl__GetInfo gi = PL__GET_INFO__INIT;
	Pl__Envelope req = PL__ENVELOPE__INIT;
	req.body_case = PL__ENVELOPE__BODY_GET_INFO;
	req.get_info = &gi;
	Pl__Envelope *rep = NULL;
	int rc = pl__engine_call(pen->e, &req, PL__ENVELOPE__BODY_DEVICE_INFO, &rep);
	if (rc)
		return rc;
	info_from_wire(rep->device_info, &pen->info);
	pen->have_info = true;
	pl__envelope__free_unpacked(rep, NULL);
	if (out)
		*out = pen->info;
	return PL_OK;
}

int pl__pen_limits(struct pl_pen *pen, const struct pl_device_info **out)
{
	if (!pen->have_info) {
		int rc = pl_get_info(pen, NULL);
		if (rc)
			return rc;
	}
	*out = &pen->info;
	return PL_OK;
}

/* ------------------------------------------------------------------ clock */

static int64_t host_utc_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int clock_call(struct pl_pen *pen, Pl__Envelope *req, int64_t *utc_ms,
                      bool *rtc_set, uint64_t *uptime_ms)
{
	Pl__Envelope *rep = NULL;
	int rc = pl__engine_call(pen->e, req, PL__ENVELOPE__BODY_CLOCK, &rep);
	if (rc)
		return rc;
	if (utc_ms)
		*utc_ms = rep->clock->utc_ms;
	if (rtc_set)
		*rtc_set = rep->clock->source == PL__TIME_SOURCE__TIME_SOURCE_RTC;
	if (uptime_ms)
		*uptime_ms = rep->clock->uptime_ms;
	pl__envelope__free_unpacked(rep, NULL);
	return PL_OK;
}

int pl_clock_get(struct pl_pen *pen, int64_t *utc_ms, bool *rtc_set,
                 uint64_t *uptime_ms)
{
	if (!pen)
		return pl__fail(PL_ERR_ARG, "pl_clock_get: no pen");
	Pl__GetClock gc = PL__GET_CLOCK__INIT;
	Pl__Envelope req = PL__ENVELOPE__INIT;
	req.body_case = PL__ENVELOPE__BODY_GET_CLOCK;
	req.get_clock = &gc;
	return clock_call(pen, &req, utc_ms, rtc_set, uptime_ms);
}

int pl_clock_sync(struct pl_pen *pen, int64_t *offset_ms)
{
	int64_t pen_utc = 0;
	bool rtc = false;
	int rc = pl_clock_get(pen, &pen_utc, &rtc, NULL);
	if (rc)
		return rc;
	if (offset_ms)
		*offset_ms = rtc ? pen_utc - host_utc_ms() : 0;

	Pl__SetClock sc = PL__SET_CLOCK__INIT;
	sc.utc_ms = host_utc_ms();
	Pl__Envelope req = PL__ENVELOPE__INIT;
	req.body_case = PL__ENVELOPE__BODY_SET_CLOCK;
	req.set_clock = &sc;
	return clock_call(pen, &req, NULL, NULL, NULL);
}

/* ------------------------------------------------------------------ unsolicited */

void pl_pen_set_event_handler(struct pl_pen *pen, pl_event_fn fn, void *ud)
{
	if (!pen)
		return;
	pen->ev = fn;
	pen->ev_ud = ud;
}

int pl_trace_subscribe(struct pl_pen *pen, bool enable, uint32_t level)
{
	if (!pen)
		return pl__fail(PL_ERR_ARG, "pl_trace_subscribe: no pen");
	if (level > 3)
		return pl__fail(PL_ERR_ARG, "trace level %u; levels run from 0 (errors) to 3 (debug)",
		                level);
	Pl__SubscribeTrace st = PL__SUBSCRIBE_TRACE__INIT;
	st.enable = enable;
	st.level = level;
	Pl__Envelope req = PL__ENVELOPE__INIT;
	req.body_case = PL__ENVELOPE__BODY_SUBSCRIBE_TRACE;
	req.subscribe_trace = &st;
	return pl__engine_call(pen->e, &req, PL__ENVELOPE__BODY_ACK, NULL);
}

int pl_pen_poll(struct pl_pen *pen, int timeout_ms)
{
	if (!pen)
		return pl__fail(PL_ERR_ARG, "pl_pen_poll: no pen");
	int64_t until = timeout_ms < 0 ? -1 : pl__now_ms() + timeout_ms;
	uint64_t before = pl__engine_frames_in(pen->e);
	for (;;) {
		int left = -1;
		if (until >= 0) {
			int64_t d = until - pl__now_ms();
			left = d < 0 ? 0 : (int)d;
		}
		int rc = pl__engine_poll_once(pen->e, left);
		if (rc)
			return rc;
		if (pl__engine_frames_in(pen->e) != before)
			return PL_OK;
		if (until >= 0 && pl__now_ms() >= until)
			return PL_OK;
	}
}
