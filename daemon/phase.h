/*
 * A pen's life in penlinkd as named phases, in the manner of usbmuxd's
 * device states: one enum, one table of the moves allowed between phases
 * (phase.c), one writer (pen_enter, device.c), and the control protocol's
 * PenState derived from the phase alone.
 *
 * The moves, all of them in the table:
 *   handshake -> info -> clock -> list: syncing;
 *   list -> download -> commit -> download ... -> idle or failed, with a
 *   new list whenever the pen recorded a session meanwhile;
 *   idle or failed -> list when the pen records a session: a new round;
 *   a live phase -> dropped (USB pens); any phase -> detaching -> gone.
 */
#ifndef PLD_PHASE_H
#define PLD_PHASE_H

#include <stdbool.h>

#include "ctl.pb-c.h"

/* The order matters: the predicates below are ranges of it. */
enum pen_phase {
	/* Port open; the library repeats its Hello until the pen answers.
	 * First, so that a zeroed pen starts here. */
	PHASE_HANDSHAKE,
	PHASE_INFO,         /* reading the device info */
	PHASE_CLOCK,        /* setting the pen's clock */
	/* Listing the pen's sessions, then telling it which of them the
	 * archive already held before this round downloaded anything: that
	 * is still syncing with the archive, not downloading. */
	PHASE_LIST,
	PHASE_DOWNLOAD,     /* a session's bytes are arriving */
	/* The archive refused this session's bytes; the library is calling
	 * the download off.  Unlike a line that failed, nothing is kept and
	 * the pen is not blamed. */
	PHASE_STORE_FAILED,
	/* A session is stored: telling the pen it may reclaim it, or one
	 * the archive held already, once this round has downloaded. */
	PHASE_COMMIT,
	PHASE_IDLE,         /* everything archived; waits for a new session */
	/* The round gave up on a step or a session; the link stays up and
	 * a session the pen records starts a new round. */
	PHASE_FAILED,
	/* A USB pen whose handshake failed or that misbehaved: its port is
	 * let go, and it stays listed as failed until it is unplugged, so it
	 * is never re-attached in a loop. */
	PHASE_DROPPED,
	/* Asked to go from inside the library's callbacks; carried out once
	 * pl_pen_handle_events() returned.  Starts nothing new. */
	PHASE_DETACHING,
	/* Being freed: the callbacks pl_pen_close() runs do nothing. */
	PHASE_GONE,
};
#define PHASE_COUNT (PHASE_GONE + 1)

const char *phase_name(enum pen_phase ph);
/* Whether the table allows a move; a phase moves to itself only where
 * that is a next step (the next session, a new listing). */
bool phase_may_enter(enum pen_phase from, enum pen_phase to);
/* What clients see; PEN_STATE_UNSPECIFIED for a pen on its way out,
 * which they learn from PEN_DETACHED instead. */
Plctl__PenState phase_pen_state(enum pen_phase ph);

/* A sync / download round is under way. */
static inline bool phase_working(enum pen_phase ph)
{
	return ph >= PHASE_INFO && ph <= PHASE_COMMIT;
}

/* Past the handshake with a link that takes requests. */
static inline bool phase_usable(enum pen_phase ph)
{
	return ph >= PHASE_INFO && ph <= PHASE_FAILED;
}

/* Starts nothing new: its requests' callbacks stop where they are. */
static inline bool phase_leaving(enum pen_phase ph)
{
	return ph >= PHASE_DROPPED;
}

/* Its port is being let go, or is: what the library calls back from
 * pl_pen_close() is no news.  (A detaching pen's callbacks still deliver
 * what the pen answered.) */
static inline bool phase_closing(enum pen_phase ph)
{
	return ph == PHASE_DROPPED || ph == PHASE_GONE;
}

#endif
