#include <stdlib.h>
#include <string.h>

#include "describe.h"
#include "engine.h"
#include "penlink_wire.h"
#include "internal.h"

/* Large reads keep syscalls per byte low on fast links; a bounded number of
 * rounds per call keeps one busy pen from starving others in the daemon. */
#define RX_CHUNK 65536
#define RX_ROUNDS 16
#define LOG_TEXT 1024

struct req {
	struct req *next;
	uint32_t id;
	Pl__Envelope__BodyCase sent, expect;
	int timeout_ms;
	int retries;
	int attempts;       /* times queued for sending so far */
	int early_resends;  /* of those, sent again by resend_lost() */
	int64_t deadline;
	/* Value of out_queued just after our latest copy was queued: while
	 * out_written is below it, that copy has not fully left, so a retry
	 * must not queue another (keeps the out queue bounded). */
	uint64_t out_end;
	/* Order of our latest copy among everything sent, and the input
	 * losses counted when it was queued: see resend_lost(). */
	uint64_t send_seq, losses_at_send;
	pl__reply_fn cb;
	void *ud;
	size_t len;
	uint8_t payload[]; /* the packed envelope, kept for re-sends */
};

struct pl__engine {
	struct pl_transport *t;
	int timeout_ms, retries;
	uint32_t send_max; /* largest envelope the pen accepts */
	uint32_t window;
	uint32_t next_id;
	pl_frame_log_fn log;
	void *log_ud;
	pl__event_fn ev;
	void *ev_ud;

	struct pl_frame_decoder dec;
	uint8_t *dec_buf;
	uint8_t *rx;

	uint8_t *out;
	size_t out_start, out_len, out_cap;
	uint64_t out_queued, out_written;

	struct req *flight; /* sent, awaiting a reply */
	unsigned n_flight;
	struct req *pend_head, *pend_tail; /* waiting for room in the window */
	unsigned n_pend;

	struct pl_link_stats st;
	uint64_t bad_envelopes;
	uint64_t send_seq;
	uint64_t unsolicited, unknown_ids, replies, bytes_at_frame;
	/* The reply being completed, as it came (pl__engine_reply_wire). */
	const uint8_t *reply_wire;
	size_t reply_wire_len;
	bool ids_wrapped;       /* every id has been used: none is "unknown" */
	int dead;
	char dead_msg[256];
};

const char *pl__body_name(Pl__Envelope__BodyCase c)
{
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
	    &pl__envelope__descriptor, (unsigned)c);
	if (c == PL__ENVELOPE__BODY__NOT_SET || !f)
		return "an empty message";
	return f->name;
}

/* ------------------------------------------------------------------ output */

static int reserve(struct pl__engine *e, size_t need)
{
	if (e->out_cap - e->out_start - e->out_len >= need)
		return PL_OK;
	if (e->out_start) {
		memmove(e->out, e->out + e->out_start, e->out_len);
		e->out_start = 0;
		if (e->out_cap - e->out_len >= need)
			return PL_OK;
	}
	size_t cap = e->out_cap ? e->out_cap : 4096;
	while (cap - e->out_len < need)
		cap *= 2;
	uint8_t *p = realloc(e->out, cap);
	if (!p)
		return pl__fail(PL_ERR_MEM, "out of memory queueing a frame");
	e->out = p;
	e->out_cap = cap;
	return PL_OK;
}

static void log_frame(struct pl__engine *e, enum pl_frame_dir dir,
                      const uint8_t *payload, size_t len)
{
	char text[LOG_TEXT];
	pl__describe_envelope(payload, len, text, sizeof text);
	e->log(e->log_ud, dir, text, len);
}

static uint64_t frames_dropped(const struct pl__engine *e)
{
	uint64_t n = 0;
	for (int i = 0; i < PL_FRAME_DROP_COUNT; i++)
		n += e->dec.stats.dropped[i];
	return n;
}

/* Frames that arrived damaged or undecodable: any of them may have been a
 * reply (see resend_lost()). */
static uint64_t input_losses(const struct pl__engine *e)
{
	return frames_dropped(e) + e->bad_envelopes;
}

static int queue_frame(struct pl__engine *e, struct req *r)
{
	size_t need = PL_FRAME_ENCODED_MAX(r->len);
	int rc = reserve(e, need);
	if (rc)
		return rc;
	size_t n = pl_frame_encode(r->payload, r->len, 0,
	                           e->out + e->out_start + e->out_len, need);
	if (!n)
		return pl__fail(PL_ERR_ARG, "a frame of %zu bytes could not be encoded",
		                r->len);
	e->out_len += n;
	e->out_queued += n;
	r->out_end = e->out_queued;
	r->send_seq = ++e->send_seq;
	r->losses_at_send = input_losses(e);
	e->st.frames_out++;
	if (e->log)
		log_frame(e, PL_FRAME_OUT, r->payload, r->len);
	return PL_OK;
}

int pl__engine_send_raw(struct pl__engine *e, const void *data, size_t len)
{
	int rc = reserve(e, len);
	if (rc)
		return rc;
	memcpy(e->out + e->out_start + e->out_len, data, len);
	e->out_len += len;
	e->out_queued += len;
	return PL_OK;
}

/* ------------------------------------------------------------------ failure */

/* Every request fails with the link's sticky error; the message is set
 * again before each callback because a callback may overwrite it. */
static void fail_all(struct pl__engine *e)
{
	for (;;) {
		struct req *r = e->flight;
		if (r) {
			e->flight = r->next;
			e->n_flight--;
		} else if ((r = e->pend_head)) {
			e->pend_head = r->next;
			if (!e->pend_head)
				e->pend_tail = NULL;
			e->n_pend--;
		} else {
			break;
		}
		pl__fail(e->dead, "%s", e->dead_msg);
		r->cb(r->ud, e->dead, NULL);
		free(r);
	}
	pl__fail(e->dead, "%s", e->dead_msg);
}

static int kill_link(struct pl__engine *e, int code)
{
	if (e->dead)
		return e->dead;
	if (code == PL_ERR_UNPLUGGED)
		snprintf(e->dead_msg, sizeof e->dead_msg,
		         "the pen on %s went away (unplugged or reset)",
		         pl_transport_name(e->t));
	else
		snprintf(e->dead_msg, sizeof e->dead_msg, "%s",
		         pl_error_message());
	e->dead = code;
	fail_all(e);
	return code;
}

static int flush(struct pl__engine *e)
{
	while (e->out_len && !e->dead) {
		int n = pl_transport_write(e->t, e->out + e->out_start, e->out_len);
		if (n < 0)
			return kill_link(e, n);
		if (n == 0)
			break;
		e->out_start += (size_t)n;
		e->out_len -= (size_t)n;
		e->out_written += (uint64_t)n;
		e->st.bytes_out += (uint64_t)n;
	}
	if (!e->out_len)
		e->out_start = 0;
	return e->dead;
}

/* ------------------------------------------------------------------ window */

/* Sends r for the first time and puts it in the window. */
static int launch(struct pl__engine *e, struct req *r)
{
	int rc = queue_frame(e, r);
	if (rc)
		return rc;
	r->attempts = 1;
	r->deadline = pl_time_monotonic_ms() + r->timeout_ms;
	r->next = e->flight;
	e->flight = r;
	e->n_flight++;
	return PL_OK;
}

static void promote(struct pl__engine *e)
{
	while (!e->dead && e->pend_head && e->n_flight < e->window) {
		struct req *r = e->pend_head;
		e->pend_head = r->next;
		if (!e->pend_head)
			e->pend_tail = NULL;
		e->n_pend--;
		int rc = launch(e, r);
		if (rc) {
			r->cb(r->ud, rc, NULL);
			free(r);
		}
	}
}

static struct req *take(struct req **list, unsigned *n, uint32_t id)
{
	for (struct req **pp = list; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			struct req *r = *pp;
			*pp = r->next;
			(*n)--;
			return r;
		}
	}
	return NULL;
}

int pl__engine_submit(struct pl__engine *e, Pl__Envelope *req,
                      Pl__Envelope__BodyCase expect, int timeout_ms,
                      int retries, pl__reply_fn cb, void *ud,
                      uint32_t *id_out)
{
	if (!e || !req || !cb)
		return pl__fail(PL_ERR_ARG, "invalid request");
	if (e->dead)
		return pl__fail(e->dead, "%s", e->dead_msg);
	uint32_t id = e->next_id++;
	if (!e->next_id) {
		e->next_id = 1; /* 0 is reserved for unsolicited frames */
		e->ids_wrapped = true;
	}
	req->id = id;
	size_t len = pl__envelope__get_packed_size(req);
	if (len > e->send_max)
		return pl__fail(PL_ERR_ARG,
		                "a %s request of %zu bytes is larger than the pen "
		                "accepts (%u bytes)",
		                pl__body_name(req->body_case), len, e->send_max);
	struct req *r = malloc(sizeof *r + len);
	if (!r)
		return pl__fail(PL_ERR_MEM, "out of memory");
	memset(r, 0, sizeof *r);
	r->len = pl__envelope__pack(req, r->payload);
	r->id = id;
	r->sent = req->body_case;
	r->expect = expect;
	r->timeout_ms = timeout_ms < 0 ? e->timeout_ms : timeout_ms;
	r->retries = retries < 0 ? e->retries : retries;
	r->cb = cb;
	r->ud = ud;
	if (!e->pend_head && e->n_flight < e->window) {
		/* Straight into the window, so a failure here is the caller's to
		 * see and no callback runs inside submit. */
		int rc = launch(e, r);
		if (rc) {
			free(r);
			return rc;
		}
	} else {
		if (e->pend_tail)
			e->pend_tail->next = r;
		else
			e->pend_head = r;
		e->pend_tail = r;
		e->n_pend++;
	}
	if (id_out)
		*id_out = id;
	return PL_OK;
}

void pl__engine_cancel(struct pl__engine *e, uint32_t id)
{
	struct req *r = take(&e->flight, &e->n_flight, id);
	if (!r) {
		r = take(&e->pend_head, &e->n_pend, id);
		if (r) {
			e->pend_tail = NULL;
			for (struct req *p = e->pend_head; p; p = p->next)
				e->pend_tail = p;
		}
	}
	if (!r)
		return;
	free(r);
	promote(e);
}

unsigned pl__engine_outstanding(const struct pl__engine *e)
{
	return e->n_flight + e->n_pend;
}

/* ------------------------------------------------------------------ input */

static int map_error(const struct req *r, const Pl__Error *er)
{
	static const struct {
		int code;
		const char *word;
	} map[] = {
	    [PL__ERROR_CODE__ERROR_CODE_UNSPECIFIED] = {PL_ERR_DEVICE, "unspecified error"},
	    [PL__ERROR_CODE__ERROR_CODE_BAD_REQUEST] = {PL_ERR_BAD_REQUEST, "bad request"},
	    [PL__ERROR_CODE__ERROR_CODE_VALIDATION] = {PL_ERR_VALIDATION, "validation"},
	    [PL__ERROR_CODE__ERROR_CODE_CONFLICT] = {PL_ERR_CONFLICT, "conflict"},
	    [PL__ERROR_CODE__ERROR_CODE_BUSY] = {PL_ERR_BUSY, "busy"},
	    [PL__ERROR_CODE__ERROR_CODE_NOT_FOUND] = {PL_ERR_NOT_FOUND, "not found"},
	    [PL__ERROR_CODE__ERROR_CODE_INTERNAL] = {PL_ERR_DEVICE, "pen failure"},
	    [PL__ERROR_CODE__ERROR_CODE_UNSUPPORTED] = {PL_ERR_UNSUPPORTED, "unsupported"},
	};
	unsigned c = (unsigned)er->code;
	if (c >= sizeof map / sizeof map[0])
		c = PL__ERROR_CODE__ERROR_CODE_UNSPECIFIED;

	/* The pen's words go to a terminal: keep control bytes out. */
	char msg[256];
	size_t n = 0;
	for (const char *s = er->message ? er->message : ""; *s && n < sizeof msg - 1; s++)
		msg[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	msg[n] = 0;
	char field[96];
	n = 0;
	for (const char *s = er->field ? er->field : ""; *s && n < sizeof field - 1; s++)
		field[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	field[n] = 0;

	if (field[0])
		return pl__fail(map[c].code, "the pen refused %s = %lld: %s (%s)",
		                field, (long long)er->value,
		                msg[0] ? msg : "no reason given", map[c].word);
	return pl__fail(map[c].code, "the pen refused %s: %s (%s)",
	                pl__body_name(r->sent), msg[0] ? msg : "no reason given",
	                map[c].word);
}

/*
 * A pen answers in order.  So when the reply to `answered` comes while a
 * request sent before it still waits, and since that request went out a
 * frame was lost on the way in (a bad CRC, a broken COBS run, an
 * undecodable envelope), the lost frame was almost surely its reply: send
 * it again now rather than a whole request timeout later.  Retries are safe
 * (every request is idempotent); a pen that does reorder costs at most a
 * spare retry, and only after a loss.  These re-sends come out of a budget
 * of their own: a pen that reboots mid-download loses frames and answers
 * again, and must still get every timed retry before it counts as silent.
 */
static void resend_lost(struct pl__engine *e, const struct req *answered)
{
	int64_t now = 0;
	uint64_t losses = input_losses(e);
	for (struct req *r = e->flight; r; r = r->next) {
		if (r->send_seq > answered->send_seq || r->losses_at_send == losses ||
		    r->early_resends >= r->retries || r->out_end > e->out_written)
			continue; /* (the last condition: not even fully sent yet) */
		if (!now)
			now = pl_time_monotonic_ms();
		if (queue_frame(e, r) != PL_OK)
			continue; /* no memory now: the deadline still stands */
		r->early_resends++;
		r->deadline = now + r->timeout_ms;
		e->st.retries++;
	}
}

static void complete(struct pl__engine *e, struct req *r, Pl__Envelope *env)
{
	int status = PL_OK;
	Pl__Envelope *give = env;
	if (env->body_case == r->expect) {
		status = PL_OK;
	} else if (env->body_case == PL__ENVELOPE__BODY_ERROR) {
		status = map_error(r, env->error);
	} else {
		status = pl__fail(PL_ERR_PROTOCOL, "the pen answered %s with %s",
		                  pl__body_name(r->sent), pl__body_name(env->body_case));
		give = NULL;
	}
	bool keep = r->cb(r->ud, status, give);
	if (!keep || !give)
		pl__envelope__free_unpacked(env, NULL);
	free(r);
	promote(e);
}

static void on_frame(void *ctx, uint8_t flags, const uint8_t *payload,
                     size_t len)
{
	struct pl__engine *e = ctx;
	(void)flags;
	if (e->dead)
		return;
	if (e->log)
		log_frame(e, PL_FRAME_IN, payload, len);
	e->bytes_at_frame = e->st.bytes_in;
	Pl__Envelope *env = pl__envelope__unpack(NULL, len, payload);
	if (!env) {
		e->bad_envelopes++;
		return;
	}
	if (env->id == 0) {
		e->unsolicited++;
		if (e->ev && (env->body_case == PL__ENVELOPE__BODY_TRACE_LINE ||
		              env->body_case == PL__ENVELOPE__BODY_STATE_EVENT))
			e->ev(e->ev_ud, env);
		pl__envelope__free_unpacked(env, NULL);
		return;
	}
	struct req *r = take(&e->flight, &e->n_flight, env->id);
	if (!r) {
		e->st.stray_replies++;
		/* A late or repeated reply carries an id we did use; one we
		 * never used is a pen that does not echo ids. */
		if (!e->ids_wrapped && env->id >= e->next_id)
			e->unknown_ids++;
		pl__envelope__free_unpacked(env, NULL);
		return;
	}
	e->replies++;
	resend_lost(e, r);
	const uint8_t *outer = e->reply_wire;
	size_t outer_len = e->reply_wire_len;
	e->reply_wire = payload;
	e->reply_wire_len = len;
	complete(e, r, env);
	e->reply_wire = outer;
	e->reply_wire_len = outer_len;
}

const uint8_t *pl__engine_reply_wire(const struct pl__engine *e, size_t *len)
{
	*len = e->reply_wire ? e->reply_wire_len : 0;
	return e->reply_wire;
}

static void on_drop(void *ctx, enum pl_frame_drop why, size_t len)
{
	struct pl__engine *e = ctx;
	if (e->log)
		e->log(e->log_ud, PL_FRAME_DROPPED, pl_frame_drop_name(why), len);
}

static int do_read(struct pl__engine *e)
{
	for (int i = 0; i < RX_ROUNDS && !e->dead; i++) {
		int n = pl_transport_read(e->t, e->rx, RX_CHUNK);
		if (n < 0)
			return kill_link(e, n);
		if (n == 0)
			break;
		e->st.bytes_in += (uint64_t)n;
		pl_frame_decoder_feed(&e->dec, e->rx, (size_t)n);
		/* Keep reading after a short read: a pty hands out at most its
		 * 4 KiB line-discipline buffer per read(), so "short" does not
		 * mean drained, and another read is cheaper than a poll(). */
	}
	return e->dead;
}

/* ------------------------------------------------------------------ deadlines */

static void resend(struct pl__engine *e, struct req *r, int64_t now)
{
	r->attempts++;
	r->deadline = now + r->timeout_ms;
	e->st.retries++;
	if (r->out_end > e->out_written)
		return; /* the previous copy is still queued; it will go out */
	if (queue_frame(e, r))
		r->attempts--; /* no memory now; the next deadline tries again */
}

static void expire(struct pl__engine *e)
{
	int64_t now = pl_time_monotonic_ms();
restart:
	for (struct req *r = e->flight; r && !e->dead; r = r->next) {
		if (r->deadline > now)
			continue;
		e->st.timeouts++;
		if (r->attempts <= r->retries) {
			resend(e, r, now);
			continue;
		}
		take(&e->flight, &e->n_flight, r->id);
		pl__fail(PL_ERR_TIMEOUT,
		         "no answer from the pen on %s within %d ms (%d attempt%s)",
		         pl_transport_name(e->t), r->timeout_ms, r->attempts,
		         r->attempts == 1 ? "" : "s");
		r->cb(r->ud, PL_ERR_TIMEOUT, NULL);
		free(r);
		promote(e);
		/* The callback may have cancelled or added requests. */
		goto restart;
	}
}

int64_t pl__engine_next_deadline(const struct pl__engine *e)
{
	int64_t best = -1;
	for (const struct req *r = e->flight; r; r = r->next)
		if (best < 0 || r->deadline < best)
			best = r->deadline;
	return best;
}

/* ------------------------------------------------------------------ driving */

int pl__engine_fd(const struct pl__engine *e)
{
	return pl_transport_fd(e->t);
}

bool pl__engine_want_write(const struct pl__engine *e)
{
	return e->out_len > 0;
}

int pl__engine_dead(const struct pl__engine *e)
{
	return e->dead;
}

uint64_t pl__engine_frames_in(const struct pl__engine *e)
{
	return e->dec.stats.frames;
}

int pl__engine_handle_io(struct pl__engine *e, int mask)
{
	if (e->dead)
		return pl__fail(e->dead, "%s", e->dead_msg);
	if (mask & PL_WAIT_READABLE)
		do_read(e);
	if (!e->dead)
		flush(e);
	if (!e->dead)
		expire(e);
	if (!e->dead)
		flush(e);
	return e->dead;
}

int pl__engine_kill(struct pl__engine *e, int code)
{
	return kill_link(e, code);
}

int pl__engine_flush(struct pl__engine *e)
{
	if (e->dead)
		return e->dead;
	return flush(e);
}

/* ------------------------------------------------------------------ lifecycle */

int pl__engine_new(struct pl_transport *t, const struct pl__engine_config *cfg,
                   struct pl__engine **out)
{
	*out = NULL;
	struct pl__engine *e = calloc(1, sizeof *e);
	if (!e)
		return pl__fail(PL_ERR_MEM, "out of memory");
	size_t dec_len = PL_FRAME_RAW_LEN((size_t)cfg->max_frame);
	e->dec_buf = malloc(dec_len);
	e->rx = malloc(RX_CHUNK);
	if (!e->dec_buf || !e->rx) {
		free(e->dec_buf);
		free(e->rx);
		free(e);
		return pl__fail(PL_ERR_MEM, "out of memory");
	}
	e->t = t;
	e->timeout_ms = cfg->timeout_ms;
	e->retries = cfg->retries;
	/* Before the handshake only Hello goes out; it is far smaller than any
	 * pen's limit. */
	e->send_max = cfg->max_frame;
	e->window = 1;
	e->next_id = 1;
	e->log = cfg->frame_log;
	e->log_ud = cfg->frame_log_ud;
	pl_frame_decoder_init(&e->dec, e->dec_buf, dec_len, on_frame, on_drop, e);
	pl_frame_decoder_set_limit(&e->dec, cfg->max_frame);
	*out = e;
	return PL_OK;
}

void pl__engine_free(struct pl__engine *e)
{
	if (!e)
		return;
	for (struct req *r = e->flight, *n; r; r = n) {
		n = r->next;
		free(r);
	}
	for (struct req *r = e->pend_head, *n; r; r = n) {
		n = r->next;
		free(r);
	}
	free(e->out);
	free(e->dec_buf);
	free(e->rx);
	free(e);
}

void pl__engine_set_limits(struct pl__engine *e, uint32_t send_max_frame,
                           uint32_t window)
{
	e->send_max = send_max_frame;
	e->window = window ? window : 1;
	promote(e);
}

void pl__engine_set_timeout(struct pl__engine *e, int timeout_ms)
{
	e->timeout_ms = timeout_ms;
}

void pl__engine_set_event_handler(struct pl__engine *e, pl__event_fn fn,
                                  void *ud)
{
	e->ev = fn;
	e->ev_ud = ud;
}

const char *pl__engine_name(const struct pl__engine *e)
{
	return pl_transport_name(e->t);
}

void pl__engine_stats(const struct pl__engine *e, struct pl_link_stats *out)
{
	*out = e->st;
	out->frames_in = e->dec.stats.frames;
	out->dropped_crc = e->dec.stats.dropped[PL_FRAME_DROP_CRC];
	out->dropped_oversize = e->dec.stats.dropped[PL_FRAME_DROP_OVERSIZE];
	out->dropped_short = e->dec.stats.dropped[PL_FRAME_DROP_SHORT];
	out->dropped_cobs = e->dec.stats.dropped[PL_FRAME_DROP_COBS];
	out->dropped_version = e->dec.stats.dropped[PL_FRAME_DROP_VERSION];
	out->bad_envelopes = e->bad_envelopes;
	out->unsolicited = e->unsolicited;
	out->unknown_ids = e->unknown_ids;
	out->replies = e->replies;
	out->frames_ended = e->dec.stats.frames + frames_dropped(e);
	out->bytes_at_frame = e->bytes_at_frame;
	out->outstanding = e->n_flight + e->n_pend;
}
