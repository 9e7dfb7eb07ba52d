/*
 * The session archive: one SQLite database (WAL, versioned schema with
 * migrations, created 0600).  A session is named by (pen serial, UUID),
 * never by its UUID alone (two pens may record sessions with equal UUIDs),
 * and is kept byte for byte as the pen served it, plus decoded rows (events,
 * telemetry samples) for queries; sample rows are filled in after the
 * commit, in steps (archive_decode_step).  Downloads in progress are stored as
 * they arrive, so a download cut by an unplug or by the daemon's death
 * resumes from the stored offset.  The audit trail is append-only.
 *
 * Every function returns PL_OK or a negative enum pl_return (penlink.h);
 * archive_errmsg() then says what went wrong.  Single-threaded use.
 */
#ifndef PLD_ARCHIVE_H
#define PLD_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <penlink.h>

#include "penlink_export.h"

struct archive;

/*
 * Opens (creating with mode 0600) and migrates the database, and takes an
 * exclusive lock on it for this process: a second daemon on the same file
 * gets PL_ERR_PORT_BUSY ("... is in use by another penlinkd (pid N)").
 * 0600, not 0640: the daemon's group is by default the control socket's,
 * i.e. everyone who may talk to the daemon at all, and a group-readable
 * file would hand them every session log past the logs_group check and its
 * audit trail.  An existing database keeps the mode its administrator gave
 * it.
 */
int archive_open(const char *path, struct archive **out);
void archive_close(struct archive *a);
const char *archive_errmsg(const struct archive *a);
/* Schema version after migration. */
int archive_schema_version(const struct archive *a);

/* ---- downloads in progress */

/* Bytes of this session already stored (0 if none).  A partial download
 * whose size or digest differs from s (the pen changed the record) is
 * discarded and 0 returned. */
int archive_partial_offset(struct archive *a, const char *serial,
                           const struct pl_session_info *s, uint64_t *offset);
/* Appends bytes at offset (must equal the stored length) durably, in one
 * transaction.  Callers batch (e.g. 256 KiB) to keep transactions few. */
int archive_partial_append(struct archive *a, const char *serial,
                           const struct pl_session_info *s, uint64_t offset,
                           const uint8_t *data, size_t len);
/*
 * Completes a download: checks that the stored bytes are s->size long and
 * that their SHA-256 equals s->sha256 (else PL_ERR_DIGEST, the partial data
 * is discarded), decodes the record, stores it and its event rows, marks
 * its telemetry samples as pending for archive_decode_step() and removes
 * the partial data, in one durable transaction (synchronous=FULL).  Only
 * after PL_OK may the pen be told to reclaim it: the raw bytes are the
 * truth, sample rows are derived from them later.
 * Already archived with the same digest: PL_OK (idempotent); with another
 * digest: PL_ERR_CONFLICT.  A record that does not decode is still stored
 * (raw bytes are the truth) with no rows, and logged; so is a record over
 * PEN_DECODE_MAX (pen_budget.h), which is not decoded at all.  The record
 * is streamed from the stored chunks into the digest and its row, never
 * held whole in memory (only a record to decode is, up to PEN_DECODE_MAX).
 */
int archive_commit_session(struct archive *a, const char *serial,
                           const struct pl_session_info *s);
/*
 * Inserts up to max_rows pending telemetry sample rows (oldest session
 * first, at most one session's per call), in one transaction.  *more:
 * whether rows remain (in this session or another).  Safe to call any
 * time; after a restart it picks up where it stopped, since the progress
 * mark is stored with the rows.  max_rows 0 inserts nothing and only sets
 * *more.  The parsed record of the session being decoded is kept between
 * calls (one at most) and freed when its rows are done or on
 * archive_close().  Callers run it in small steps (a few thousand rows)
 * so other work interleaves with a large backlog.
 */
int archive_decode_step(struct archive *a, size_t max_rows, bool *more);

/* Is (serial, uuid) archived?  If so and sha256_out is not NULL, its digest. */
bool archive_has_session(struct archive *a, const char *serial,
                         const uint8_t uuid[16], uint8_t sha256_out[32]);

/* ---- queries */

/*
 * Remembers a pen's model, hardware and firmware revision (its info at
 * attach), so exports can name the pen of a session; a later call for the
 * same serial replaces them.  Strings may be NULL ("").  PL_OK or an error
 * with archive_errmsg().
 */
int archive_pen_seen(struct archive *a, const char *serial, const char *model,
                     const char *hw_revision, const char *fw_version);

struct archived_session {
	char serial[64];
	uint8_t uuid[16];
	struct plc_session_summary summary;
};

/* Sessions of serial ("" or NULL: all) that started at or after since_ms,
 * oldest first.  cb returns 0 to go on, non-zero to stop. */
int archive_list(struct archive *a, const char *serial, int64_t since_ms,
                 int (*cb)(void *ud, const struct archived_session *s),
                 void *ud);
/* As archive_list, only the sessions whose current client reference (that
 * of their latest annotation giving one) is client_ref ("" or NULL: every
 * session). */
int archive_list_client(struct archive *a, const char *serial,
                        int64_t since_ms, const char *client_ref,
                        int (*cb)(void *ud, const struct archived_session *s),
                        void *ud);
/* Reads up to len bytes of the record of key (serial and UUID) at offset;
 * *got = bytes read (0 at the end), *size = record size.
 * PL_ERR_NOT_FOUND when (serial, uuid) is not archived. */
int archive_read_record(struct archive *a, const struct pl_session_key *key,
                        uint64_t offset, uint8_t *buf, size_t len,
                        size_t *got, uint64_t *size);

/* ---- export (streamed: one session per call, so memory stays bounded) */

enum export_format { EXPORT_CSV, EXPORT_JSON };
struct export_cursor;
/* Starts an export of the sessions archive_list() would give. */
int archive_export_begin(struct archive *a, enum export_format f,
                         const char *serial, int64_t since_ms, bool per_session,
                         struct export_cursor **out);
/*
 * Next piece of output (CSV: the header first, then one row per session;
 * JSON: "[", then one object per session (pl_record_to_json without
 * samples, plus "archived_utc_ms", "sha256" and "annotations"), then "]").
 * CSV's last columns are the session's annotations: client_ref and
 * operator (the latest annotation giving one) and notes (every note,
 * oldest first, joined by " | "); JSON's "annotations" is every annotation,
 * oldest first: {"utc_ms", "utc", "user", "client_ref", "operator",
 * "note"}.  per_session:
 * one piece per session instead, each a complete document (CSV: the header
 * and the session's row; JSON: its object, as in the array form).  Pen text
 * is cleaned for the format (PL_TEXT_CSV, PL_TEXT_JSON).  *data is
 * malloc'd; *len 0 and *data NULL at the end.  who (may be NULL) receives
 * the session a row or object belongs to.
 */
int archive_export_next(struct export_cursor *c, char **data, size_t *len,
                        struct archived_session *who);
void archive_export_end(struct export_cursor *c);

/* ---- audit (append-only: there is no update or delete; hash-chained,
 * control/penlink_audit.h) */

struct audit_entry {
	int64_t utc_ms;
	uint32_t uid;
	const char *user;       /* login name, or the uid as text */
	const char *pen;        /* serial or "" */
	const char *action;     /* "presets.push", "attach", "denied:logs.read", ... */
	/* A JSON object or "" (none).  archive_audit_add stores an object
	 * text compact (one line) and any other text as {"value": text}. */
	const char *old_value;
	const char *new_value;
	const char *result;     /* "ok" or the error message */
	/* Set by archive_audit_list (ignored by archive_audit_add). */
	int64_t id;
	const char *hash;       /* the row's hash, hex */
};
/* Appends e as the next row of the chain, durably (synchronous=FULL). */
int archive_audit_add(struct archive *a, const struct audit_entry *e);
/* Newest first, at most limit (0 = 100), at or after since_ms. */
int archive_audit_list(struct archive *a, int64_t since_ms, unsigned limit,
                       int (*cb)(void *ud, const struct audit_entry *e),
                       void *ud);
struct plc_audit_chain;
/*
 * Recomputes the whole chain in id order (anchor: a row hash that must be
 * in it, or NULL).  PL_OK when it could be read; then out->broken says
 * whether a row is bad (out->bad_id, out->reason), out->rows how many
 * were checked.  Reads every row in one go (a few microseconds each).
 */
int archive_audit_verify(struct archive *a, const char *anchor,
                         struct plc_audit_chain *out);

/* ---- annotations (append-only: a correction is a new annotation) */

struct annotation {
	int64_t id;             /* set when read */
	int64_t utc_ms;         /* 0: now */
	uint32_t uid;
	const char *user;
	/* Untrusted text, stored as given (bounded: PLC_ANNOT_*_MAX in
	 * penlink_audit.h; at least one of the three not empty); every output
	 * cleans it. */
	const char *client_ref;
	const char *operator_name;
	const char *note;
};
/* Adds an annotation to the session key names, durably.  PL_ERR_NOT_FOUND
 * (no such session), PL_ERR_VALIDATION (a field over its limit),
 * PL_ERR_ARG (all three empty). */
int archive_annotate(struct archive *a, const struct pl_session_key *key,
                     const struct annotation *an, int64_t *id_out);
/* The session's annotations, oldest first; PL_ERR_NOT_FOUND when there is
 * no such session.  cb as in archive_list. */
int archive_annotations(struct archive *a, const struct pl_session_key *key,
                        int (*cb)(void *ud, const struct annotation *an),
                        void *ud);

#endif
