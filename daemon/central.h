/*
 * Replication of the local archive to the clinic's central PostgreSQL
 * archive (issue 12), when penlinkd.conf has a [central] section.
 *
 * Store and forward: the local SQLite archive stays the first commit.  The
 * outbox (central_outbox.c) lives in the same database file, kept by its own
 * SQLite connection: a table of the sessions central has not confirmed yet,
 * filled by a trigger on the archive's sessions table in the same
 * transaction as each commit (and, when central is first enabled, with
 * every session archived before).  The replicator (central.c) runs in
 * penlinkd's loop on libpq's non-blocking API and sends the outbox in
 * batches, one transaction each; only when COMMIT is confirmed and central's
 * digest of every session checked is an entry cleared.  Then the sessions'
 * annotations, the audit trail (with each row's hashes in the site's
 * chain) and the pens' model, hardware and firmware follow, each from a
 * cursor or a record of what central confirmed, the same way.  A different record
 * under a key central already holds is a conflict: refused, logged, kept
 * locally and marked, never retried and never overwriting central.
 */
#ifndef PLD_CENTRAL_H
#define PLD_CENTRAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <penlink.h>

#include "penlink_export.h"

struct daemon;
struct central;

/*
 * Starts replicating when d->cfg has a central url (returns NULL at once
 * otherwise, touching nothing).  Needs d->loop and the archive open (the
 * database file and its sessions table exist).  Opens the outbox (creating
 * it, its trigger and the backfill on first use) and starts connecting.
 * NULL with pl_error_message() set if the outbox cannot be set up: the
 * daemon then refuses to start, since sessions would silently stop
 * reaching central.
 */
int central_start(struct daemon *d, struct central **out);
void central_stop(struct central *c);
/* A session was just committed locally (its outbox entry with it): send it
 * now rather than at the next look (c may be NULL: no [central]).  Never
 * blocks; the send starts from the loop. */
void central_wake(struct central *c);

struct central_status {
	char site[64];
	char target[256];        /* where url points, without secrets */
	bool connected;          /* a ready connection to central */
	uint64_t pending;        /* sessions not yet confirmed by central */
	uint64_t conflicts;      /* refused: central holds another record */
	uint64_t refused;        /* central refused the data itself (see log) */
	uint64_t confirmed;      /* confirmed by central, ever */
	uint64_t audit_pending;  /* audit entries not yet in central */
	uint64_t annotations_pending; /* annotations not yet in central */
	uint64_t pens_pending;   /* pens whose model etc. central lacks */
	int64_t last_sync_ms;    /* UTC ms of the last confirmed batch, 0: none */
	int64_t last_error_ms;   /* UTC ms of last_error, 0: none */
	char last_error[512];    /* "" if none since the last success */
	int64_t next_attempt_ms; /* UTC ms of the next connection attempt, 0: none due */
};
/* PL_OK, or an error reading the outbox (message in pl_error_message()). */
int central_get_status(struct central *c, struct central_status *out);

/* ---- the outbox (central_outbox.c), used by central.c */

struct outbox;

enum outbox_state {
	OUTBOX_PENDING = 0,
	OUTBOX_CONFIRMED = 1,  /* central holds it with the same digest */
	OUTBOX_CONFLICT = 2,   /* central holds another record under the key */
	OUTBOX_REFUSED = 3,    /* central refused the data; note says why */
};

struct outbox_item {
	int64_t id;              /* sessions.id in the local archive */
	struct pl_session_key key;
	struct plc_session_summary summary;
	uint8_t *record;         /* summary.size bytes, malloc'd */
};

struct outbox_audit {
	int64_t id;
	int64_t utc_ms;
	int64_t uid;
	char *user, *pen, *action, *old_value, *new_value, *result;
	char prev_hash[65], hash[65]; /* the row in the site's chain ("": none) */
};

struct outbox_annot {
	int64_t id;              /* annotations.id in the local archive */
	struct pl_session_key key;
	int64_t utc_ms;
	int64_t uid;
	char *user, *client_ref, *operator_name, *note;
	/* false: its session is in conflict or refused, so central does not
	 * hold the site's record: the annotation stays local (skipped). */
	bool send;
};

struct outbox_pen {
	char serial[128], model[128], hw_revision[128], fw_version[128];
	int64_t seen_ms;
};

/* Opens path (the archive's database, already created and migrated by
 * archive.c) and sets the outbox up.  *backfilled: sessions queued now
 * that had never been. */
int outbox_open(const char *path, struct outbox **out, uint64_t *backfilled);
void outbox_close(struct outbox *o);
/*
 * The oldest pending sessions, records loaded: at most max_items, and
 * records of at most max_bytes together, but always one when any is
 * pending (a record larger than max_bytes goes alone).  *n = 0 (and
 * *items NULL): none.
 * Free with outbox_items_free.
 */
int outbox_next(struct outbox *o, size_t max_items, uint64_t max_bytes,
                struct outbox_item **items, size_t *n);
void outbox_items_free(struct outbox_item *items, size_t n);
/* Sets the state (and note, may be NULL) of each id, in one transaction. */
int outbox_mark(struct outbox *o, const int64_t *ids, const int *states,
                const char *const *notes, size_t n);
/*
 * What central has not confirmed besides the sessions, each listed and
 * confirmed the same way (outbox_list), sent in this order:
 */
enum outbox_list {
	/* struct outbox_annot: annotations after the last one central
	 * confirmed, up to (not including) the first whose session central has
	 * not confirmed yet: an annotation follows its session. */
	OUTBOX_ANNOTS,
	/* struct outbox_pen: the pens whose model, hardware revision or
	 * firmware central has not confirmed (new pens included). */
	OUTBOX_PENS,
	/* struct outbox_audit: audit entries after the last one central
	 * confirmed. */
	OUTBOX_AUDIT,
	OUTBOX_LISTS /* how many */
};
/* Up to max rows of list, oldest first, as an array of its struct; *n = 0
 * (and *rows NULL): none.  Free with outbox_list_free. */
int outbox_list(struct outbox *o, enum outbox_list list, size_t max,
                void **rows, size_t *n);
void outbox_list_free(enum outbox_list list, void *rows, size_t n);
/* What a listing's rows are, in messages ("audit entries"). */
const char *outbox_list_what(enum outbox_list list);
/* Central confirmed (or the site skipped) the first n rows of a listing:
 * the cursor moves past them (annotations, audit entries), or they are
 * what central has (pens). */
int outbox_list_done(struct outbox *o, enum outbox_list list, const void *rows,
                     size_t n);
struct outbox_counts {
	uint64_t pending, confirmed, conflicts, refused, audit_pending;
	uint64_t annotations_pending, pens_pending;
};
int outbox_counts(struct outbox *o, struct outbox_counts *out);
/* Has any connection committed to the database since the last call?
 * (PRAGMA data_version: cheap, no I/O beyond the WAL index.) */
bool outbox_changed(struct outbox *o);

#endif
