/*
 * The request engine: ids, deadlines, retries, a window of requests in
 * flight, and dispatch of replies and unsolicited frames.
 *
 * Like libusb, everything above it is non-blocking and callback-driven: the
 * pen layer (pen.c) builds each operation as a state machine over these
 * requests, and its blocking calls are one loop that waits on the transport
 * and feeds pl__engine_handle_io() until the operation's callback ran.  A
 * program with its own poll loop polls pl__engine_fd() for input (and for
 * output while pl__engine_want_write()), sleeps no longer than
 * pl__engine_next_deadline(), and calls pl__engine_handle_io() with what
 * poll reported.
 *
 * Callbacks run from pl__engine_handle_io() (or pl__engine_kill()) and may
 * submit or cancel requests; they must not destroy the engine.
 */
#ifndef PL_ENGINE_H
#define PL_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "penlink.h"
#include "penlink.pb-c.h"

struct pl__engine;

/*
 * Completion of one request.  status is PL_OK with reply of the expected
 * type, or a negative code with pl_error_message() already set; reply
 * is then the pen's Error envelope if it sent one, else NULL.  Return true
 * to keep reply (free it later with pl__envelope__free_unpacked(r, NULL)),
 * false to let the engine free it.
 */
typedef bool (*pl__reply_fn)(void *ud, int status, Pl__Envelope *reply);

/* An unsolicited (id 0) frame; env is valid during the call only. */
typedef void (*pl__event_fn)(void *ud, const Pl__Envelope *env);

struct pl__engine_config {
	int timeout_ms;         /* default per-attempt timeout */
	int retries;            /* default re-sends after a timeout */
	uint32_t max_frame;     /* largest envelope we accept (decoder limit) */
	uint32_t max_in_flight; /* our side of the window */
	pl_frame_log_fn frame_log;
	void *frame_log_ud;
};

/* The engine does not own t. */
int pl__engine_new(struct pl_transport *t, const struct pl__engine_config *cfg,
                   struct pl__engine **out);
/* Drops outstanding requests without calling their callbacks. */
void pl__engine_free(struct pl__engine *e);

/* After the handshake: what the pen accepts and how many requests it
 * allows outstanding (both already min'ed with our own limits). */
void pl__engine_set_limits(struct pl__engine *e, uint32_t send_max_frame,
                           uint32_t window);
void pl__engine_set_timeout(struct pl__engine *e, int timeout_ms);
void pl__engine_set_event_handler(struct pl__engine *e, pl__event_fn fn,
                                  void *ud);
const char *pl__engine_name(const struct pl__engine *e);
void pl__engine_stats(const struct pl__engine *e, struct pl_link_stats *out);

/* Queues raw bytes outside any frame (the 0x00 that opens a connection). */
int pl__engine_send_raw(struct pl__engine *e, const void *data, size_t len);

/*
 * Queues req (its id is assigned here; the engine packs it, so the caller
 * keeps ownership of req).  expect is the reply body the request wants.
 * timeout_ms / retries < 0 take the defaults.  Nothing is written until
 * the engine next handles I/O.  On failure the callback is never called.
 * *id_out (may be NULL) receives the id, for pl__engine_cancel().
 */
int pl__engine_submit(struct pl__engine *e, Pl__Envelope *req,
                      Pl__Envelope__BodyCase expect, int timeout_ms,
                      int retries, pl__reply_fn cb, void *ud,
                      uint32_t *id_out);

/* Forgets a request without calling its callback; a late reply to it is
 * then counted as stray.  Unknown ids are ignored. */
void pl__engine_cancel(struct pl__engine *e, uint32_t id);

/* Requests submitted and not yet completed. */
unsigned pl__engine_outstanding(const struct pl__engine *e);

/*
 * The wire bytes (a packed pl.Envelope, *len bytes) the reply being handed
 * to a pl__reply_fn was unpacked from, for a second reading through a view
 * message: protobuf-c ends a `string` at its first NUL, so only the bytes
 * tell a name's length on the wire (convert.c).  NULL (and *len 0) outside
 * such a callback; valid until it returns.
 */
const uint8_t *pl__engine_reply_wire(const struct pl__engine *e, size_t *len);

/* --- driving the engine from a poll loop */
int pl__engine_fd(const struct pl__engine *e);
bool pl__engine_want_write(const struct pl__engine *e);
/* Earliest request deadline (pl__now_ms() clock), or -1 if none. */
int64_t pl__engine_next_deadline(const struct pl__engine *e);
/*
 * Reads what is there (mask & PL_WAIT_READABLE), writes what is queued,
 * and expires deadlines.  Returns PL_OK, or the sticky error that killed
 * the link (every outstanding request has then been failed with it).
 */
int pl__engine_handle_io(struct pl__engine *e, int mask);
/* Kills the link with code (the message is pl_error_message()): what
 * the transport's wait reported, e.g. a hang-up.  Every outstanding request
 * fails with it.  Returns code (or the earlier sticky error). */
int pl__engine_kill(struct pl__engine *e, int code);
/* Writes what is queued, as far as the transport takes it now.  Returns
 * PL_OK or the sticky error. */
int pl__engine_flush(struct pl__engine *e);
/* The sticky error of a dead link (PL_ERR_UNPLUGGED, PL_ERR_IO), or 0. */
int pl__engine_dead(const struct pl__engine *e);
/* Good frames received so far (lets pl_pen_poll notice activity). */
uint64_t pl__engine_frames_in(const struct pl__engine *e);

/* "read_session", "pong"...: the name of a body case, for messages. */
const char *pl__body_name(Pl__Envelope__BodyCase c);

#endif
