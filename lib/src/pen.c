/* Asynchronous operations and the loop that drives them, opening a pen
 * (handshake), negotiated parameters, ping, device info, clock, and
 * unsolicited frames. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convert.h"
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
	o->size = sizeof *o;
	o->timeout_ms = 1000;
	o->retries = 2;
	o->handshake_ms = 5000;
	o->max_frame = 65536;
	o->max_in_flight = 16;
}

/* Zero fields take their defaults, so a caller that forgot
 * pl_open_options_init() still gets sane behaviour. */
static int check_options(const struct pl_open_options *caller,
                         struct pl_open_options *o)
{
	pl_open_options_init(o);
	if (!caller)
		return PL_OK;
	struct pl_open_options known;
	pl_open_options_init(&known);
	pl__options_copy(&known, sizeof known, caller);
	const struct pl_open_options *in = &known;
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
	if (!pen->ev || pen->closing)
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

/* ------------------------------------------------------------------ operations */

static const char *pen_name(const struct pl_pen *pen)
{
	return pl_transport_name(pen->t);
}

int pl__op_new(struct pl_pen *pen, size_t size, pl_done_fn done, void *ud,
               void *out)
{
	*(struct pl__op **)out = NULL;
	if (!pen)
		return pl__fail(PL_ERR_ARG, "no pen");
	if (pen->closing)
		return pl__fail(PL_ERR_ARG, "the pen on %s is being closed",
		                pen_name(pen));
	struct pl__op *op = calloc(1, size);
	if (!op)
		return pl__fail(PL_ERR_MEM, "out of memory");
	op->pen = pen;
	op->done = done;
	op->ud = ud;
	op->next = pen->ops;
	if (pen->ops)
		pen->ops->prev = op;
	pen->ops = op;
	pen->n_ops++;
	*(struct pl__op **)out = op;
	return PL_OK;
}

bool pl__op_refused(struct pl__op *op)
{
	const struct pl_pen *pen = op->pen;
	if (pen->state == PL__PEN_OPEN)
		return false;
	if (pen->state == PL__PEN_OPENING)
		pl__fail(PL_ERR_ARG, "the handshake with the pen on %s has not "
		                     "finished yet; wait for its callback",
		         pen_name(pen));
	else
		pl__fail(PL_ERR_ARG, "the handshake with the pen on %s failed; "
		                     "close it and open it again",
		         pen_name(pen));
	pl__op_finish(op, PL_ERR_ARG);
	return true;
}

static bool op_reply(void *ud, int status, Pl__Envelope *reply)
{
	struct pl__op *op = ud;
	op->req_id = 0;
	/* A pen closed from inside a callback keeps its memory until the
	 * outermost pl_pen_handle_events() returns; until then replies that
	 * are still in the engine's input are dropped here. */
	if (!op->finished && !op->pen->closing)
		op->step(op, status, reply);
	return false;
}

int pl__op_submit(struct pl__op *op, Pl__Envelope *req,
                  Pl__Envelope__BodyCase expect, int timeout_ms, int retries,
                  pl__op_step_fn step)
{
	op->step = step;
	return pl__engine_submit(op->pen->e, req, expect, timeout_ms, retries,
	                         op_reply, op, &op->req_id);
}

void pl__op_send(struct pl__op *op, Pl__Envelope *req,
                 Pl__Envelope__BodyCase expect, pl__op_step_fn step)
{
	int rc = pl__op_submit(op, req, expect, -1, -1, step);
	if (rc)
		pl__op_finish(op, rc);
}

int pl__op_submit_query(struct pl__op *op, Pl__Envelope__BodyCase query,
                        pl__op_step_fn step)
{
	/* Each query is an empty message. */
	Pl__GetInfo gi = PL__GET_INFO__INIT;
	Pl__GetClock gc = PL__GET_CLOCK__INIT;
	Pl__GetPresets gp = PL__GET_PRESETS__INIT;
	Pl__Envelope req = PL__ENVELOPE__INIT;
	Pl__Envelope__BodyCase reply;
	switch (query) {
	case PL__ENVELOPE__BODY_GET_INFO:
		req.get_info = &gi;
		reply = PL__ENVELOPE__BODY_DEVICE_INFO;
		break;
	case PL__ENVELOPE__BODY_GET_CLOCK:
		req.get_clock = &gc;
		reply = PL__ENVELOPE__BODY_CLOCK;
		break;
	case PL__ENVELOPE__BODY_GET_PRESETS:
		req.get_presets = &gp;
		reply = PL__ENVELOPE__BODY_PRESET_SET;
		break;
	default:
		return pl__fail(PL_ERR_ARG, "request %d is not a query", (int)query);
	}
	req.body_case = query;
	return pl__op_submit(op, &req, reply, -1, -1, step);
}

void pl__op_send_query(struct pl__op *op, Pl__Envelope__BodyCase query,
                       pl__op_step_fn step)
{
	int rc = pl__op_submit_query(op, query, step);
	if (rc)
		pl__op_finish(op, rc);
}

void pl__op_finish(struct pl__op *op, int status)
{
	if (op->finished)
		return;
	struct pl_pen *pen = op->pen;
	op->finished = true;
	op->status = status;
	if (status)
		snprintf(op->msg, sizeof op->msg, "%s", pl_error_message());
	/* Give the window back at once: other calls may be waiting for it. */
	if (op->req_id) {
		pl__engine_cancel(pen->e, op->req_id);
		op->req_id = 0;
	}
	if (op->release)
		op->release(op);
	if (pen->done_tail)
		pen->done_tail->done_next = op;
	else
		pen->done_head = op;
	pen->done_tail = op;
}

void pl__op_step_finish(struct pl__op *op, int status, Pl__Envelope *reply)
{
	(void)reply;
	pl__op_finish(op, status);
}

static void unlink_op(struct pl_pen *pen, struct pl__op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		pen->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	pen->n_ops--;
}

/* Runs the callbacks of finished calls, oldest first. */
static void drain(struct pl_pen *pen)
{
	while (pen->done_head && !pen->closing) {
		struct pl__op *op = pen->done_head;
		pen->done_head = op->done_next;
		if (!pen->done_head)
			pen->done_tail = NULL;
		unlink_op(pen, op);
		pl_done_fn done = op->done;
		void *ud = op->ud;
		int status = op->status;
		if (status)
			pl__fail(status, "%s", op->msg);
		free(op);
		if (done)
			done(ud, status);
	}
}

static void destroy(struct pl_pen *pen)
{
	for (struct pl__op *op = pen->ops, *next; op; op = next) {
		next = op->next;
		if (!op->finished && op->release)
			op->release(op);
		free(op);
	}
	pl__engine_free(pen->e);
	pl_transport_close(pen->t);
	free(pen);
}

static void leave(struct pl_pen *pen)
{
	if (--pen->depth == 0 && pen->closing)
		destroy(pen);
}

/* ------------------------------------------------------------------ event loop */

int pl_pen_fd(const struct pl_pen *pen)
{
	return pen ? pl__engine_fd(pen->e) : -1;
}

bool pl_pen_want_write(const struct pl_pen *pen)
{
	return pen && !pen->closing && !pl__engine_dead(pen->e) &&
	       pl__engine_want_write(pen->e);
}

int pl_pen_next_timeout(const struct pl_pen *pen)
{
	if (!pen || pen->closing)
		return -1;
	if (pen->done_head)
		return 0; /* callbacks are due */
	int64_t dl = pl__engine_next_deadline(pen->e);
	if (dl < 0)
		return -1;
	int64_t d = dl - pl_time_monotonic_ms();
	return d < 0 ? 0 : d > INT_MAX ? INT_MAX : (int)d;
}

unsigned pl_pen_outstanding(const struct pl_pen *pen)
{
	return pen ? pen->n_ops : 0;
}

int pl_pen_handle_events(struct pl_pen *pen, int mask)
{
	if (!pen)
		return pl__fail(PL_ERR_ARG, "pl_pen_handle_events: no pen");
	if (pen->closing)
		return pl__fail(PL_ERR_ARG, "the pen on %s is being closed",
		                pen_name(pen));
	pen->depth++;
	drain(pen);
	int rc = PL_OK;
	if (!pen->closing) {
		rc = pl__engine_handle_io(pen->e, mask);
		char msg[PL__MSG_MAX];
		if (rc)
			snprintf(msg, sizeof msg, "%s", pl_error_message());
		drain(pen);
		if (rc)
			pl__fail(rc, "%s", msg);
	}
	leave(pen);
	return rc;
}

/*
 * One round of the blocking calls' loop: wait for the transport no longer
 * than the pen's next deadline (nor past until, if >= 0), then handle what
 * it reported.  Queued output goes first, so a peer that the wait itself
 * drives (the memory transport's pump) sees our requests.
 */
static int wait_round(struct pl_pen *pen, int64_t until)
{
	pl__engine_flush(pen->e);
	int timeout = pl_pen_next_timeout(pen);
	if (until >= 0) {
		int64_t d = until - pl_time_monotonic_ms();
		int left = d < 0 ? 0 : d > INT_MAX ? INT_MAX : (int)d;
		if (timeout < 0 || left < timeout)
			timeout = left;
	}
	int mask = 0;
	if (!pl__engine_dead(pen->e)) {
		mask = pl_transport_wait(pen->t, pl__engine_want_write(pen->e), timeout);
		if (mask < 0) {
			pl__engine_kill(pen->e, mask);
			mask = 0;
		}
	}
	return pl_pen_handle_events(pen, mask);
}

static int reentered(void)
{
	return pl__fail(PL_ERR_ARG, "a pen function was called from inside a "
	                            "libpenlink callback; call it after the callback returns");
}

int pl__wait_begin(struct pl_pen *pen, struct pl__waiter *w, const char *fn)
{
	memset(w, 0, sizeof *w);
	if (!pen)
		return pl__fail(PL_ERR_ARG, "%s: no pen", fn);
	if (pen->depth)
		return reentered();
	return PL_OK;
}

void pl__waiter_done(void *ud, int status)
{
	struct pl__waiter *w = ud;
	w->done = true;
	w->status = status;
	if (status)
		snprintf(w->msg, sizeof w->msg, "%s", pl_error_message());
}

/* Drops the call a waiter waits for, without its callback. */
static void forget_waiter(struct pl_pen *pen, struct pl__waiter *w)
{
	for (struct pl__op *op = pen->ops; op; op = op->next) {
		if (op->ud != w || op->done != pl__waiter_done || op->finished)
			continue;
		if (op->req_id)
			pl__engine_cancel(pen->e, op->req_id);
		if (op->release)
			op->release(op);
		unlink_op(pen, op);
		free(op);
		return;
	}
}

int pl__wait(struct pl_pen *pen, struct pl__waiter *w, int start_rc)
{
	if (start_rc)
		return start_rc;
	pen->depth++;
	bool stuck = false;
	while (!w->done && !pen->closing) {
		if (!pen->done_head && !pl__engine_outstanding(pen->e)) {
			/* Nothing left that could finish the call: a bug, but
			 * never a hang. */
			forget_waiter(pen, w);
			stuck = true;
			break;
		}
		wait_round(pen, -1);
	}
	bool closed = pen->closing;
	leave(pen);
	if (w->done) {
		if (w->status)
			return pl__fail(w->status, "%s", w->msg);
		return PL_OK;
	}
	if (closed && !stuck)
		return pl__fail(PL_ERR_CANCELLED, "the pen was closed during the call");
	return pl__fail(PL_ERR_ARG, "internal: waiting with no request outstanding");
}

/* ------------------------------------------------------------------ opening */

static void hello_step(struct pl__op *op, int status, Pl__Envelope *rep)
{
	struct pl_pen *pen = op->pen;
	const struct pl_open_options *o = &pen->opts;
	if (status == PL_ERR_TIMEOUT)
		status = pl__fail(status,
		                  "the pen on %s did not answer the handshake within "
		                  "%d ms; is it powered and running penlink firmware?",
		                  pen_name(pen), o->handshake_ms);
	if (!status) {
		const Pl__HelloReply *hr = rep->hello_reply;
		if (hr->version < PROTOCOL_MIN || hr->version > PROTOCOL_MAX) {
			status = pl__fail(PL_ERR_VERSION,
			                  "the pen on %s speaks protocol version %u; this "
			                  "library speaks %u to %u (update one of them)",
			                  pen_name(pen), hr->version, PROTOCOL_MIN,
			                  PROTOCOL_MAX);
		} else if (hr->max_frame < MIN_FRAME) {
			status = pl__fail(PL_ERR_PROTOCOL,
			                  "the pen on %s accepts frames of only %u bytes; at "
			                  "least %u are needed",
			                  pen_name(pen), hr->max_frame, MIN_FRAME);
		} else {
			pen->version = hr->version;
			pen->max_frame = hr->max_frame < o->max_frame ? hr->max_frame
			                                              : o->max_frame;
			uint32_t w = hr->max_in_flight ? hr->max_in_flight : 1;
			pen->max_in_flight = w < o->max_in_flight ? w : o->max_in_flight;
			pen->caps = hr->capabilities;
			pl__copy_text(pen->serial, sizeof pen->serial, hr->serial);
			pl__engine_set_limits(pen->e, pen->max_frame, pen->max_in_flight);
		}
	}
	pen->state = status ? PL__PEN_FAILED : PL__PEN_OPEN;
	pl__op_finish(op, status);
}

/* Hello goes out every `interval` with the same id (the engine's retries),
 * so its deadline is the handshake timer the caller's loop sees through
 * pl_pen_next_timeout(), until handshake_ms. */
static int start_handshake(struct pl__op *op)
{
	struct pl_pen *pen = op->pen;
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
	return pl__op_submit(op, &req, PL__ENVELOPE__BODY_HELLO_REPLY, interval,
	                     (int)(tries - 1), hello_step);
}

int pl_pen_open_async(struct pl_transport *t, const struct pl_open_options *opts,
                      pl_done_fn done, void *ud, struct pl_pen **out)
{
	if (out)
		*out = NULL;
	if (!t || !out) {
		pl_transport_close(t);
		return pl__fail(PL_ERR_ARG, "pl_pen_open_async: missing transport or result");
	}
	struct pl_pen *pen = calloc(1, sizeof *pen);
	if (!pen) {
		pl_transport_close(t);
		return pl__fail(PL_ERR_MEM, "out of memory");
	}
	pen->t = t;
	pen->state = PL__PEN_OPENING;
	/* Bad options are reported through done like any other failure; the
	 * pen is built with the defaults meanwhile. */
	char bad_msg[PL__MSG_MAX] = "";
	int bad = check_options(opts, &pen->opts);
	if (bad) {
		snprintf(bad_msg, sizeof bad_msg, "%s", pl_error_message());
		pl_open_options_init(&pen->opts);
	}
	struct pl__engine_config cfg = {
	    .timeout_ms = pen->opts.timeout_ms,
	    .retries = pen->opts.retries,
	    .max_frame = pen->opts.max_frame,
	    .max_in_flight = pen->opts.max_in_flight,
	    .frame_log = pen->opts.frame_log,
	    .frame_log_ud = pen->opts.frame_log_ud,
	};
	int rc = pl__engine_new(t, &cfg, &pen->e);
	if (rc) {
		pl_transport_close(t);
		free(pen);
		return rc;
	}
	pl__engine_set_event_handler(pen->e, on_event, pen);
	struct pl__op *op;
	rc = pl__op_new(pen, sizeof *op, done, ud, &op);
	if (rc) {
		destroy(pen);
		return rc;
	}
	if (bad)
		rc = pl__fail(bad, "%s", bad_msg);
	else
		rc = start_handshake(op);
	if (rc) {
		pen->state = PL__PEN_FAILED;
		pl__op_finish(op, rc);
	}
	*out = pen;
	return PL_OK;
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
	struct pl_pen *pen = NULL;
	struct pl__waiter w;
	memset(&w, 0, sizeof w);
	int rc = pl_pen_open_async(t, opts, pl__waiter_done, &w, &pen);
	rc = pl__wait(pen, &w, rc);
	if (rc) {
		char msg[PL__MSG_MAX];
		snprintf(msg, sizeof msg, "%s", pl_error_message());
		pl_pen_close(pen);
		return pl__fail(rc, "%s", msg);
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
	pen->closing = true;
	pen->ev = NULL;
	if (!pen->depth)
		destroy(pen);
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

/* ------------------------------------------------------------------ ping */

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct ping_op {
	struct pl__op base;
	uint64_t t0;
	uint8_t payload[8];
	uint32_t *rtt_us;
};

static void ping_step(struct pl__op *op, int status, Pl__Envelope *rep)
{
	struct ping_op *p = (struct ping_op *)op;
	if (!status) {
		uint64_t t1 = now_us();
		const ProtobufCBinaryData *got = &rep->pong->payload;
		if (got->len != sizeof p->payload ||
		    memcmp(got->data, p->payload, sizeof p->payload))
			status = pl__fail(PL_ERR_PROTOCOL,
			                  "the pen on %s answered a ping with a different payload",
			                  pen_name(op->pen));
		else if (p->rtt_us)
			*p->rtt_us = t1 - p->t0 > UINT32_MAX ? UINT32_MAX
			                                      : (uint32_t)(t1 - p->t0);
	}
	pl__op_finish(op, status);
}

static int ping_async(struct pl_pen *pen, uint32_t *rtt_us, pl_done_fn done,
                      void *ud)
{
	struct ping_op *p;
	int rc = pl__op_new(pen, sizeof *p, done, ud, &p);
	if (rc || pl__op_refused(&p->base))
		return rc;
	p->rtt_us = rtt_us;
	p->t0 = now_us();
	memcpy(p->payload, &p->t0, sizeof p->payload);
	Pl__Ping ping = PL__PING__INIT;
	ping.payload.data = p->payload;
	ping.payload.len = sizeof p->payload;
	Pl__Envelope req = PL__ENVELOPE__INIT;
	req.body_case = PL__ENVELOPE__BODY_PING;
	req.ping = &ping;
	pl__op_send(&p->base, &req, PL__ENVELOPE__BODY_PONG, ping_step);
	return PL_OK;
}

int pl_pen_ping(struct pl_pen *pen, uint32_t *rtt_us)
{
	PL__BLOCKING(pen, "pl_pen_ping",
	             ping_async(pen, rtt_us, PL__WAITER));
}

/* ------------------------------------------------------------------ info */

void pl__pen_store_info(struct pl_pen *pen, const Pl__DeviceInfo *d)
{
	pl__device_info_from_pb(d, &pen->info);
	pen->have_info = true;
}

struct info_op {
	struct pl__op base;
	struct pl_device_info *out;
};

static void info_step(struct pl__op *op, int status, Pl__Envelope *rep)
{
	struct info_op *io = (struct info_op *)op;
	if (!status) {
		pl__pen_store_info(op->pen, rep->device_info);
		if (io->out)
			*io->out = op->pen->info;
	}
	pl__op_finish(op, status);
}

int pl_pen_get_info_async(struct pl_pen *pen, struct pl_device_info *out,
                      pl_done_fn done, void *ud)
{
	struct info_op *io;
	int rc = pl__op_new(pen, sizeof *io, done, ud, &io);
	if (rc || pl__op_refused(&io->base))
		return rc;
	io->out = out;
	pl__op_send_query(&io->base, PL__ENVELOPE__BODY_GET_INFO, info_step);
	return PL_OK;
}

int pl_pen_get_info(struct pl_pen *pen, struct pl_device_info *out)
{
	PL__BLOCKING(pen, "pl_pen_get_info",
	             pl_pen_get_info_async(pen, out, PL__WAITER));
}

/* ------------------------------------------------------------------ clock */

struct clock_get_op {
	struct pl__op base;
	int64_t *utc_ms;
	bool *rtc_set;
	uint64_t *uptime_ms;
};

static void clock_get_step(struct pl__op *op, int status, Pl__Envelope *rep)
{
	struct clock_get_op *c = (struct clock_get_op *)op;
	if (!status) {
		if (c->utc_ms)
			*c->utc_ms = rep->clock->utc_ms;
		if (c->rtc_set)
			*c->rtc_set = rep->clock->source == PL__TIME_SOURCE__TIME_SOURCE_RTC;
		if (c->uptime_ms)
			*c->uptime_ms = rep->clock->uptime_ms;
	}
	pl__op_finish(op, status);
}

static int clock_get_async(struct pl_pen *pen, int64_t *utc_ms, bool *rtc_set,
                           uint64_t *uptime_ms, pl_done_fn done, void *ud)
{
	struct clock_get_op *c;
	int rc = pl__op_new(pen, sizeof *c, done, ud, &c);
	if (rc || pl__op_refused(&c->base))
		return rc;
	c->utc_ms = utc_ms;
	c->rtc_set = rtc_set;
	c->uptime_ms = uptime_ms;
	pl__op_send_query(&c->base, PL__ENVELOPE__BODY_GET_CLOCK, clock_get_step);
	return PL_OK;
}

int pl_pen_clock_get(struct pl_pen *pen, int64_t *utc_ms, bool *rtc_set,
                 uint64_t *uptime_ms)
{
	PL__BLOCKING(pen, "pl_pen_clock_get",
	             clock_get_async(pen, utc_ms, rtc_set, uptime_ms, PL__WAITER));
}

struct clock_sync_op {
	struct pl__op base;
	int64_t *offset_ms;
	int64_t offset;
};

static void clock_set_step(struct pl__op *op, int status, Pl__Envelope *rep)
{
	struct clock_sync_op *c = (struct clock_sync_op *)op;
	(void)rep;
	if (!status && c->offset_ms)
		*c->offset_ms = c->offset;
	pl__op_finish(op, status);
}

static void clock_read_step(struct pl__op *op, int status, Pl__Envelope *rep)
{
	struct clock_sync_op *c = (struct clock_sync_op *)op;
	if (status) {
		pl__op_finish(op, status);
		return;
	}
	bool rtc = rep->clock->source == PL__TIME_SOURCE__TIME_SOURCE_RTC;
	c->offset = rtc ? rep->clock->utc_ms - pl_time_utc_ms() : 0;

	Pl__SetClock sc = PL__SET_CLOCK__INIT;
	sc.utc_ms = pl_time_utc_ms();
	Pl__Envelope req = PL__ENVELOPE__INIT;
	req.body_case = PL__ENVELOPE__BODY_SET_CLOCK;
	req.set_clock = &sc;
	pl__op_send(op, &req, PL__ENVELOPE__BODY_CLOCK, clock_set_step);
}

int pl_pen_clock_sync_async(struct pl_pen *pen, int64_t *offset_ms,
                        pl_done_fn done, void *ud)
{
	struct clock_sync_op *c;
	int rc = pl__op_new(pen, sizeof *c, done, ud, &c);
	if (rc || pl__op_refused(&c->base))
		return rc;
	c->offset_ms = offset_ms;
	pl__op_send_query(&c->base, PL__ENVELOPE__BODY_GET_CLOCK, clock_read_step);
	return PL_OK;
}

int pl_pen_clock_sync(struct pl_pen *pen, int64_t *offset_ms)
{
	PL__BLOCKING(pen, "pl_pen_clock_sync",
	             pl_pen_clock_sync_async(pen, offset_ms, PL__WAITER));
}

/* ------------------------------------------------------------------ unsolicited */

void pl_pen_set_event_handler(struct pl_pen *pen, pl_event_fn fn, void *ud)
{
	if (!pen || pen->closing)
		return;
	pen->ev = fn;
	pen->ev_ud = ud;
}

int pl_pen_trace_subscribe_async(struct pl_pen *pen, bool enable, uint32_t level,
                             pl_done_fn done, void *ud)
{
	struct pl__op *op;
	int rc = pl__op_new(pen, sizeof *op, done, ud, &op);
	if (rc || pl__op_refused(op))
		return rc;
	if (level > 3) {
		pl__op_finish(op, pl__fail(PL_ERR_ARG, "trace level %u; levels run "
		                                       "from 0 (errors) to 3 (debug)",
		                           level));
		return PL_OK;
	}
	Pl__SubscribeTrace st = PL__SUBSCRIBE_TRACE__INIT;
	st.enable = enable;
	st.level = level;
	Pl__Envelope req = PL__ENVELOPE__INIT;
	req.body_case = PL__ENVELOPE__BODY_SUBSCRIBE_TRACE;
	req.subscribe_trace = &st;
	pl__op_send(op, &req, PL__ENVELOPE__BODY_ACK, pl__op_step_finish);
	return PL_OK;
}

int pl_pen_trace_subscribe(struct pl_pen *pen, bool enable, uint32_t level)
{
	PL__BLOCKING(pen, "pl_pen_trace_subscribe",
	             pl_pen_trace_subscribe_async(pen, enable, level, PL__WAITER));
}

int pl_pen_poll(struct pl_pen *pen, int timeout_ms)
{
	struct pl__waiter unused;
	int rc = pl__wait_begin(pen, &unused, "pl_pen_poll");
	if (rc)
		return rc;
	int64_t until = timeout_ms < 0 ? -1 : pl_time_monotonic_ms() + timeout_ms;
	uint64_t before = pl__engine_frames_in(pen->e);
	pen->depth++;
	for (;;) {
		rc = wait_round(pen, until);
		if (rc || pen->closing)
			break;
		if (pl__engine_frames_in(pen->e) != before)
			break;
		if (until >= 0 && pl_time_monotonic_ms() >= until)
			break;
	}
	leave(pen);
	return rc;
}
