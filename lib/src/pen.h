/* The pen handle and its operations, shared by pen.c, pen_presets.c and
 * pen_sessions.c. */
#ifndef PL_PEN_H
#define PL_PEN_H

#include "engine.h"
#include "penlink.h"

/* Room for the longest message an operation keeps for its callback (the
 * pen's own words are at most 256 + 96 bytes, plus our framing). */
#define PL__MSG_MAX 640

enum pl__pen_state {
	PL__PEN_OPENING, /* handshake under way */
	PL__PEN_OPEN,
	PL__PEN_FAILED,  /* handshake failed: only pl_pen_close() is left */
};

struct pl__op;

/* One reply (or the failure of its request) for an operation's step;
 * reply is freed by the caller after the step returns. */
typedef void (*pl__op_step_fn)(struct pl__op *op, int status,
                               Pl__Envelope *reply);
/* Stops whatever an operation still has under way (requests in the
 * engine, memory it holds) when it ends or its pen is closed; the op's own
 * allocation is freed by the caller. */
typedef void (*pl__op_release_fn)(struct pl__op *op);

/*
 * One asynchronous call.  Every operation is a state machine of these:
 * each step sends the next request with pl__op_send() or ends the call
 * with pl__op_finish().  Completion is always queued and the callback runs
 * from pl_pen_handle_events() after the engine is done dispatching, so a
 * callback never runs inside the _async call that started it nor in the
 * middle of the engine's input.  Op-specific state embeds this first.
 */
struct pl__op {
	struct pl__op *prev, *next; /* pen->ops: started, callback not yet run */
	struct pl__op *done_next;   /* pen->done_head: finished, callback due */
	struct pl_pen *pen;
	pl_done_fn done;
	void *ud;
	pl__op_step_fn step;
	pl__op_release_fn release;
	uint32_t req_id; /* the request pl__op_send() has in flight, or 0 */
	bool finished;
	int status;
	char msg[PL__MSG_MAX];
};

struct pl_pen {
	struct pl_transport *t;
	struct pl__engine *e;
	struct pl_open_options opts;
	enum pl__pen_state state;
	char serial[64];
	uint32_t version, max_frame, max_in_flight, caps;
	bool have_info; /* info holds the pen's limits */
	struct pl_device_info info;
	pl_event_fn ev;
	void *ev_ud;

	struct pl__op *ops; /* outstanding calls */
	unsigned n_ops;
	struct pl__op *done_head, *done_tail;
	/* Nesting of pl_pen_handle_events() and blocking calls: while it is
	 * above zero a callback is or may be running, so pl_pen_close() only
	 * marks the pen closing and the outermost level frees it. */
	unsigned depth;
	bool closing;
};

/*
 * Starts an operation: allocates size bytes (a struct embedding struct
 * pl__op first) and links it to the pen.  Returns PL_ERR_ARG (no pen, or a
 * pen being closed) or PL_ERR_MEM without an op: the _async call returns
 * that code and done is never called.
 */
int pl__op_new(struct pl_pen *pen, size_t size, pl_done_fn done, void *ud,
               void *out);
/* For operations that need an open pen: if it is not (handshake still
 * under way or failed), finishes op with the reason and returns true. */
bool pl__op_refused(struct pl__op *op);
/* Submits req (copied by the engine) with step as its continuation.
 * timeout_ms / retries < 0 take the pen's defaults.  Returns PL_OK or the
 * engine's error; the op is left running either way. */
int pl__op_submit(struct pl__op *op, Pl__Envelope *req,
                  Pl__Envelope__BodyCase expect, int timeout_ms, int retries,
                  pl__op_step_fn step);
/* pl__op_submit() with the defaults, finishing op if the request cannot be
 * sent. */
void pl__op_send(struct pl__op *op, Pl__Envelope *req,
                 Pl__Envelope__BodyCase expect, pl__op_step_fn step);
/* The requests that carry nothing, GetInfo, GetClock and GetPresets (query:
 * their PL__ENVELOPE__BODY_GET_*), submitted as pl__op_submit() does with
 * the defaults, expecting the reply that answers each. */
int pl__op_submit_query(struct pl__op *op, Pl__Envelope__BodyCase query,
                        pl__op_step_fn step);
/* pl__op_submit_query(), finishing op if the request cannot be sent. */
void pl__op_send_query(struct pl__op *op, Pl__Envelope__BodyCase query,
                       pl__op_step_fn step);
/* Ends op: status PL_OK, or a negative code whose detail is the current
 * pl_error_message().  Releases what the op holds and queues its
 * callback for pl_pen_handle_events().  Later calls are ignored. */
void pl__op_finish(struct pl__op *op, int status);
/* A step for requests answered by a bare Ack: ends the op with status. */
void pl__op_step_finish(struct pl__op *op, int status, Pl__Envelope *reply);

/*
 * Blocking calls are the asynchronous ones plus this wait (PL__BLOCKING).
 */
struct pl__waiter {
	bool done;
	int status;
	char msg[PL__MSG_MAX];
};
/* Readies w; refuses a missing pen ("fn: no pen"), and a blocking call
 * from inside a callback of the same pen. */
int pl__wait_begin(struct pl_pen *pen, struct pl__waiter *w, const char *fn);
void pl__waiter_done(void *ud, int status);
/* start_rc is what the _async call returned; on PL_OK runs the pen until
 * the waiter's callback ran and returns its status with its message. */
int pl__wait(struct pl_pen *pen, struct pl__waiter *w, int start_rc);

/*
 * The body of a blocking call: `PL__BLOCKING(pen, "pl_pen_get_info",
 * pl_pen_get_info_async(pen, out, PL__WAITER));` starts the asynchronous
 * call with the waiter as its completion and returns its status.
 */
#define PL__WAITER pl__waiter_done, &pl__w
#define PL__BLOCKING(pen, fn, async_call)                                    \
	do {                                                                 \
		struct pl__waiter pl__w;                                     \
		int pl__rc = pl__wait_begin((pen), &pl__w, (fn));            \
		return pl__rc ? pl__rc : pl__wait((pen), &pl__w, (async_call)); \
	} while (0)

/* Stores the pen's device info (and so its limits for validation). */
void pl__pen_store_info(struct pl_pen *pen, const Pl__DeviceInfo *d);

/* Copies a string from the pen, truncating to cap and replacing control
 * bytes, so nothing a pen sends can garble a terminal or overflow. */
void pl__copy_text(char *dst, size_t cap, const char *src);

#endif
