/*
 * The table of a pen's phases: each one's name for the logs, the PenState
 * clients see, and where it may go next.  Everything that moves a pen goes
 * through pen_enter(), which asks here first.
 */
#include "phase.h"

#define TO(ph) (1u << (ph))
/* A pen can be dropped (USB, misbehaving) or detached from any live phase. */
#define LEAVE (TO(PHASE_DROPPED) | TO(PHASE_DETACHING))
/* Where a round goes after a session: the next one, a reclaim, a new
 * listing (the pen recorded a session meanwhile), or its end. */
#define ROUND (TO(PHASE_DOWNLOAD) | TO(PHASE_COMMIT) | TO(PHASE_LIST) | \
               TO(PHASE_IDLE) | TO(PHASE_FAILED))

static const struct {
	const char *name;
	Plctl__PenState state;
	unsigned next; /* TO() of every phase it may enter */
} phases[PHASE_COUNT] = {
	[PHASE_HANDSHAKE] = {"handshake", PLCTL__PEN_STATE__PEN_STATE_CONNECTING,
	                     TO(PHASE_INFO) | LEAVE},
	/* Info is needed for everything after it; the clock is not, so only
	 * info can fail the round. */
	[PHASE_INFO] = {"info", PLCTL__PEN_STATE__PEN_STATE_SYNCING,
	                TO(PHASE_CLOCK) | TO(PHASE_FAILED) | LEAVE},
	[PHASE_CLOCK] = {"clock", PLCTL__PEN_STATE__PEN_STATE_SYNCING,
	                 TO(PHASE_LIST) | LEAVE},
	/* Sessions the archive held already are reclaimed without leaving
	 * the listing, hence no commit. */
	[PHASE_LIST] = {"list", PLCTL__PEN_STATE__PEN_STATE_SYNCING,
	                (ROUND & ~TO(PHASE_COMMIT)) | LEAVE},
	[PHASE_DOWNLOAD] = {"download", PLCTL__PEN_STATE__PEN_STATE_DOWNLOADING,
	                    ROUND | TO(PHASE_STORE_FAILED) | LEAVE},
	[PHASE_STORE_FAILED] = {"store-failed", PLCTL__PEN_STATE__PEN_STATE_DOWNLOADING,
	                        ROUND | LEAVE},
	[PHASE_COMMIT] = {"commit", PLCTL__PEN_STATE__PEN_STATE_DOWNLOADING,
	                  ROUND | LEAVE},
	/* A new round starts with a listing: what the pen holds may have
	 * changed since the last one, so neither downloads straight away. */
	[PHASE_IDLE] = {"idle", PLCTL__PEN_STATE__PEN_STATE_IDLE,
	                TO(PHASE_LIST) | LEAVE},
	[PHASE_FAILED] = {"failed", PLCTL__PEN_STATE__PEN_STATE_FAILED,
	                  TO(PHASE_LIST) | LEAVE},
	/* Its port is closed: only the unplug is left. */
	[PHASE_DROPPED] = {"dropped", PLCTL__PEN_STATE__PEN_STATE_FAILED,
	                   TO(PHASE_DETACHING)},
	[PHASE_DETACHING] = {"detaching", PLCTL__PEN_STATE__PEN_STATE_UNSPECIFIED,
	                     TO(PHASE_GONE)},
	[PHASE_GONE] = {"gone", PLCTL__PEN_STATE__PEN_STATE_UNSPECIFIED, 0},
};

static bool valid(enum pen_phase ph)
{
	return (unsigned)ph < PHASE_COUNT;
}

const char *phase_name(enum pen_phase ph)
{
	return valid(ph) ? phases[ph].name : "?";
}

bool phase_may_enter(enum pen_phase from, enum pen_phase to)
{
	return valid(from) && valid(to) && (phases[from].next & TO(to));
}

Plctl__PenState phase_pen_state(enum pen_phase ph)
{
	return valid(ph) ? phases[ph].state : PLCTL__PEN_STATE__PEN_STATE_UNSPECIFIED;
}
