/*
 * Private to device.c (the registry of pens, their descriptors and timers,
 * client operations) and device_work.c (what the daemon itself does with
 * each pen: sync, download, archive).
 *
 * Where a pen is in its life is its phase (phase.h), moved only by
 * pen_enter().  Every library callback for a pen runs inside
 * pl_pen_handle_events(), called from pen_pump(); the pen is never freed
 * there.  A detach asked for meanwhile puts it in PHASE_DETACHING and is
 * carried out once pl_pen_handle_events() returned.  Callbacks that the
 * library runs from pl_pen_close() find the pen dropped or gone and do
 * nothing.
 */
#ifndef PLD_DEVICE_H
#define PLD_DEVICE_H

#include "daemon.h"
#include "phase.h"

enum sess_state { SESS_TODO, SESS_DONE, SESS_FAILED };

struct op;

/* A leaky bucket: what a pen did, draining at a steady rate; a pen that
 * fills it faster than it drains is over budget (device.c, health). */
struct budget {
	double level;
	int64_t last;    /* when level was last drained */
	int64_t since;   /* when it last filled up from empty */
	uint64_t n;      /* added since then */
};

/* What the daemon watches to tell a hostile pen from a noisy line. */
struct pen_health {
	struct pl_link_stats link; /* the link's counters at the last look */
	struct budget oversize, malformed, unsolicited;
	/* state events passed on to clients (a flood is not passed on) */
	struct budget pen_events;
	/* replies to ids never issued since the last reply that matched */
	uint64_t unknown_ids;
	int64_t unknown_since;
	/* Input that is not finishing a frame: since when, till when, how much */
	int64_t trickle_since, trickle_last;
	uint64_t trickle_bytes;
	unsigned trickle_reads;
};

struct pens {
	struct daemon *d;
	struct pen *head;
	unsigned count;
	unsigned downloading; /* pens with a download buffer, to share memory */
	size_t buf_bytes;     /* their buffers' sizes, summed */
	/* Reading shared by bytes among downloading pens (device.c, "fair
	 * reading"): the round under way, when it began, its timer. */
	uint64_t rr_round;
	int64_t rr_round_at;
	uint64_t rr_timer;
	uint64_t decode_timer; /* the sample decoding task's timer; 0: none */
};

struct pen {
	struct pens *ps;
	struct daemon *d;
	struct pen *next;

	char port[256];
	/* The booleans left in here are facts the phase does not hold: each
	 * can be true or false in the same phase. */
	bool usb;            /* found by hotplug, else attached by path */
	char usb_serial[64];
	char serial[64];     /* from the handshake; "" before */

	struct pl_pen *pp;   /* NULL once dropped (USB pens stay listed) */
	int fd;
	unsigned fd_events;
	uint64_t timer;
	int64_t timer_at;
	unsigned hup_spins;  /* hang-ups the library did not turn into an error */

	enum pen_phase phase; /* written by pen_enter() only */
	/* PEN_ATTACHED went out: clients know the pen and hear of its state.
	 * A pen can be dropped or detached with or without it. */
	bool announced;
	char last_error[256];
	int in_events;       /* depth of pl_pen_handle_events() calls */
	char detach_why[256];
	unsigned timeouts;   /* consecutive requests that timed out */
	/* Fair reading (device.c): bytes the pen may still be read in the
	 * round rr_round (negative: it overdrew an earlier one), the link's
	 * byte count when last charged, and whether its input is parked
	 * until the next round. */
	int64_t rr_credit;
	uint64_t rr_round;
	uint64_t rr_seen;
	bool rr_parked;
	bool rr_charge;      /* the pump under way reads on the pen's credit */
	struct pen_health health;

	struct pl_device_info info;
	/* info is filled in: by the round, or by a client's request in any
	 * phase; it stays valid after the round failed on something else. */
	bool have_info;
	struct pl_device_info info_tmp;
	int64_t clock_offset;
	/* This daemon set the pen's clock, by its round or for a client. */
	bool clock_synced;

	/* --- the daemon's own work (device_work.c) */
	/* The pen recorded a session during the round's current step: list
	 * again once it is done, whichever step it is. */
	bool relist;
	struct pl_session_info *list_tmp;
	size_t n_list_tmp;
	bool list_more_tmp;
	/* The window of the pen's list being worked through: at most
	 * PEN_LIST_WINDOW sessions (pen_budget.h) */
	struct pl_session_info *sessions;
	uint8_t *sstate;     /* enum sess_state per session */
	uint8_t *stries;     /* digest retries per session */
	size_t n_sessions;
	size_t cur;
	bool list_more;      /* the pen lists sessions after this window */
	uint32_t list_after; /* the window lists sessions after this id */
	/* The round so far, all windows: sessions listed, archived, failed,
	 * and those failed on the pen's side (PEN_FAILED_MAX). */
	size_t round_listed, round_done, round_failed;
	unsigned round_pen_failed;

	struct pl_session_info dl_s;   /* the session being downloaded */
	struct pl_download_options dlo;
	uint8_t *buf;        /* bytes not yet appended to the archive */
	size_t buf_cap, buf_len;
	uint64_t buf_off;    /* record offset of buf[0] */
	uint64_t dl_done;
	int64_t progress_at;

	/* --- client operations and trace */
	struct op *ops;
	unsigned trace_refs;
	uint32_t trace_level;
};

/* device.c, for device_work.c */
/*
 * Moves the pen to phase `to` if the table allows it (phase.c): logs the
 * move and why at debug level, and tells clients when its PenState
 * changes.  False, with the phase unchanged, if the move is not allowed:
 * expected of a pen that is leaving (it starts nothing new), a bug
 * otherwise, and logged as one.
 */
bool pen_enter(struct pen *p, enum pen_phase to, const char *why);
/* Logs at level, keeps msg as last_error and sends an ERROR event. */
void pen_report(struct pen *p, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Detaches now, or once pl_pen_handle_events() returned. */
void pen_request_detach(struct pen *p, const char *why);
/*
 * Looks at a failed request's status: true if the link is gone or the pen
 * stopped answering (the pen is then being detached; stop), false if the
 * pen is still usable.  Resets the timeout count on PL_OK.
 */
bool pen_link_failed(struct pen *p, int status);
/* Re-arms the pen's descriptor and timer after new requests were queued
 * outside pl_pen_handle_events(). */
void pen_kick(struct pen *p);
void pen_broadcast(struct pen *p, Plctl__Event *ev);

/* device_work.c */
void work_start(struct pen *p);               /* after the handshake */
void work_session_recorded(struct pen *p);
/* Keeps what was downloaded (the archive holds it) before the pen goes. */
void work_stop(struct pen *p);
/* Sessions of this round not archived (yet), and listed so far (the
 * pen's list is taken a window at a time). */
unsigned work_pending(const struct pen *p);
size_t work_listed(const struct pen *p);
/* Makes sure the archive's pending telemetry sample rows get decoded, in
 * small steps between the pens' I/O (archive_decode_step); pending: true
 * to schedule without asking the archive first. */
void work_decode_kick(struct pens *ps, bool pending);
void work_decode_stop(struct pens *ps);

#endif
