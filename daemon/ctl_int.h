/*
 * Shared by ctl.c (socket, clients, framing, queues) and ctl_ops.c (request
 * handlers) only.
 */
#ifndef PLD_CTL_INT_H
#define PLD_CTL_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <penlink.h>
#include <penlink_control.h>

#include "access.h"
#include "daemon.h"
#include "penlink_audit.h"

/*
 * Budgets: every quantity a control-socket client controls, with what
 * happens past it.  Together they keep what clients can make penlinkd hold
 * to about CTL_PARTIAL_ALL_MAX + CTL_MAX_CLIENTS * CTL_MAX_REQUEST (request
 * buffers) + CTL_QUEUE_ALL_MAX (output), some 28 MiB, inside penlinkd's
 * documented 64 MB bound with room for the pens' own budgets.  Each
 * refusal is logged naming its budget (client_budget_kill()).
 */

/* Largest request payload a client may send.  The largest real request, a
 * push of PL_MAX_PRESETS (64) presets, is under 6 KiB, and an attach path
 * is under 256 bytes: 64 KiB is ten times the need.  A frame over it is
 * dropped as it arrives (never buffered) and answered with an error; it
 * also bounds what one client's unfinished request can hold. */
#define CTL_MAX_REQUEST (64u << 10)
/* Unfinished requests of all clients together.  A real request arrives in
 * one or two reads, so this is only ever approached by clients holding
 * requests they do not finish; 4 MiB is 64 maximal ones at once.  The
 * client whose bytes take the total past it is dropped. */
#define CTL_PARTIAL_ALL_MAX (4u << 20)
/* Clients connected at once.  A clinic runs a few penctl commands, a
 * monitor or two and perhaps a GUI; 128 is far above that, and with up to
 * 127 pens (the scale benchmark) and the database it keeps the daemon well
 * inside the default 1024 descriptors.  Further connections are closed as
 * they are accepted. */
#define CTL_MAX_CLIENTS 128u
/* Clients one user may have connected, so that one local user cannot take
 * every connection from the others; root and the daemon's own user are
 * trusted with the whole CTL_MAX_CLIENTS. */
#define CTL_MAX_CLIENTS_PER_USER 32u
/* Bound of a client's outgoing queue: a client whose queue would grow past
 * it does not read and is disconnected.  An audit read queues up to 2 MiB
 * at once (CTL_AUDIT_BUDGET in ctl_ops.c), streams far less. */
#define CTL_QUEUE_MAX (4u << 20)
/* Outgoing queues of all clients together.  Clients that read keep their
 * queue near CTL_LOW_WATER; 16 MiB is a dozen busy streams or several
 * audit reads at once.  A response that would pass it first drops the
 * client with the largest queue (one that does not read, as a rule), until
 * the response fits or its own client was the largest. */
#define CTL_QUEUE_ALL_MAX (16u << 20)
/* Streams produce their next piece only while the queue is below this, so a
 * reading client's queue stays far under CTL_QUEUE_MAX. */
#define CTL_LOW_WATER (512u << 10)
/* Payload of one RecordChunk / ExportChunk. */
#define CTL_CHUNK (256u << 10)
/* Largest one-session document a per-session export sends in one
 * ExportChunk: a response, less room for the session's identity. */
#define CTL_DOC_MAX (PLC_MAX_MESSAGE - (64u << 10))
/* Sessions per SessionList response. */
#define CTL_LIST_PAGE 1024u
/* Work one client may have outstanding: requests waiting on pens, open
 * streams, trace subscriptions.  More is answered PL_ERR_BUSY. */
#define CTL_MAX_PENDING 64u
#define CTL_MAX_STREAMS 16u
#define CTL_MAX_TRACES 16u
/* Frames dropped (CRC, COBS, ...) forgiven before each further one counts
 * as an offence; offences answered with an error before disconnecting. */
#define CTL_DROPS_FORGIVEN 16u
#define CTL_MAX_OFFENCES 8u
/* A client with output queued that the socket has taken none of for this
 * long is dropped ("not reading"): a stream would otherwise hold resources
 * (an export keeps a database snapshot open) forever while staying under
 * the queue bound, and a monitor or trace subscriber that stopped reading
 * would hold its queue.  Measured from the last byte the client took, so it
 * fires at this limit, not up to twice it.  PENLINKD_CLIENT_STALL_MS in the
 * environment shortens it for tests. */
#define CTL_STALL_MS 30000
#define CTL_STALL_ENV "PENLINKD_CLIENT_STALL_MS"
/* Refusals of one connection written to the audit trail; a client looping
 * on a refused call must not fill the disk. */
#define CTL_MAX_DENIALS_AUDITED 32u
/* Connections refused for a budget are logged at most once a second, with
 * a count of those not logged, so a flood of connections cannot flood the
 * log. */
#define CTL_REFUSAL_LOG_MS 1000

enum stream_kind { STREAM_SHOW, STREAM_EXPORT, STREAM_LIST };

struct stream {
	struct stream *next;
	uint32_t id;
	enum stream_kind kind;
	/* show */
	struct pl_session_key key;
	uint64_t offset;
	/* export */
	struct export_cursor *cur;
	bool per_session;
	char *piece;
	size_t piece_len, piece_off;
	/* list: resumes at since_ms, skipping the sessions of that exact start
	 * time already sent */
	char serial[64];
	int64_t since_ms;
	uint64_t skip;
	char client[PLC_ANNOT_CLIENT_MAX + 1]; /* "" = every session */
	/* show, export: records leaving the archive are audited once the
	 * stream ends, whether it finished, failed or its client left
	 * (action "" for streams that are not audited). */
	struct daemon *d;
	uint32_t uid;
	char user[64];
	char action[32];
	char *what;               /* export: its request, a JSON object */
	uint64_t sent, size;      /* bytes sent; show: the record's size */
	uint64_t docs;            /* export: sessions sent */
	bool audited;
};

struct trace_sub {
	struct trace_sub *next;
	uint32_t id;
	uint32_t level;
	char serial[64];
};

struct client {
	struct client *next;
	struct ctl *ctl;
	int fd;
	bool dead;
	struct caller who;
	struct pl_frame_decoder dec;
	uint8_t *dec_buf;
	unsigned drops, offences;
	unsigned denials;      /* refusals so far (audited up to a bound) */
	/* outgoing bytes [out_off, out_len) of out */
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	bool polling_out;
	uint64_t written;         /* bytes the socket took, ever */
	int64_t progress_ms;      /* when the socket last took bytes, or the
	                           * queue last became non-empty */
	uint64_t stall_timer;
	size_t partial;           /* bytes of an unfinished request buffered
	                           * (counted in ctl->partial_all) */
	bool monitoring;
	uint32_t monitor_id;
	struct trace_sub *traces;
	unsigned n_traces;
	struct stream *streams;
	unsigned n_streams;
	unsigned n_pending;
	/* The bytes of the request being handled (ctl_ops_handle), which a
	 * PushPresets is read from: see plc_push_presets_decode. */
	const uint8_t *rq_wire;
	size_t rq_wire_len;
};

/* A request waiting on a pen.  It outlives its client (cl goes NULL when the
 * client leaves) and even the control server (ctl goes NULL): the pen's
 * callback always comes, and then frees it. */
struct ctl_req {
	struct ctl_req *prev, *next;
	struct ctl *ctl;
	struct daemon *d;
	struct client *cl;
	uint32_t id;
	Plctl__Request__OpCase op;
	char serial[64];
	uint32_t uid;
	char user[64];
	/* PushPresets: the policy runs once the pen's current set is known,
	 * when the client may be gone, so it keeps its own caller copy. */
	struct caller who;
	bool confirm;
	bool replace;  /* the push may remove presets */
	bool dry_run;  /* check and diff only: nothing written or audited */
	uint32_t expected_revision;
	bool have_old;
	struct pl_preset_set old_set, new_set;
};

struct ctl {
	struct daemon *d;
	struct loop *loop;
	int lfd;
	char path[256];
	dev_t dev;
	ino_t ino;
	struct access_policy policy;
	struct client *clients;
	unsigned n_clients;
	struct client *graveyard;
	uint64_t reap_timer;
	bool listen_paused;
	uint64_t resume_timer;
	uint64_t evict_timer;     /* evict_largest() pending */
	struct ctl_req *reqs;
	int stall_ms;             /* CTL_STALL_MS; tests shorten it */
	size_t partial_all;       /* sum of the clients' partial */
	size_t queued_all;        /* sum of the clients' queued output */
	int64_t refusal_logged_ms;
	unsigned refusals_unlogged;
};

/*
 * One control operation: everything the daemon knows about it is its entry
 * in ctl_ops.c's table, indexed by the Request's op case.  Dispatch, the
 * access check and the audit of a refusal all read it.
 */
struct ctl_op {
	const char *name;           /* for the audit trail: "presets.push" */
	enum access_right right;    /* what the caller needs */
	const char *purpose;        /* for a refusal: "change presets" */
	void (*handle)(struct client *cl, const Plctl__Request *rq);
	/* What a refused caller tried, for the audit trail (malloc'd, or NULL
	 * for nothing); NULL when the request carries nothing worth keeping. */
	char *(*tried)(const struct client *cl, const Plctl__Request *rq);
};

/* ctl.c */
/* Queues one response to request id, its body msg of the kind body names;
 * false if the client was disconnected instead (queue bound) or was already
 * gone. */
bool client_send(struct client *cl, uint32_t id, bool last,
                 Plctl__Response__BodyCase body, const void *msg);
bool client_error(struct client *cl, uint32_t id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void client_kill(struct client *cl, const char *why);
/* Streams may have something to send: produce while below the low-water
 * mark. */
void client_pump(struct client *cl);
struct ctl_req *ctl_req_new(struct client *cl, uint32_t id,
                            Plctl__Request__OpCase op);
void ctl_req_free(struct ctl_req *r);

/* ctl_ops.c */
/* The operation of an op case; NULL for one this daemon does not know. */
const struct ctl_op *ctl_op_of(Plctl__Request__OpCase op);
/* Checks the caller's right and runs the operation (rq's op is known);
 * wire, len: the bytes rq was unpacked from. */
void ctl_ops_handle(struct client *cl, const Plctl__Request *rq,
                    const uint8_t *wire, size_t len);
/* Produces one piece of s; true when s has finished (sent its last). */
bool ctl_ops_stream_step(struct client *cl, struct stream *s);
void ctl_ops_stream_free(struct stream *s);
/* The message of the last failure: pl_error_message(), or the code's
 * name when the library left no detail. */
const char *ctl_errmsg(int code);

#endif
