/*
 * penlink_audit.h — the audit trail's hash chain and the limits of session
 * annotations, shared by penlinkd (which writes and verifies its archive's
 * trail) and penctl (`penctl audit verify --db FILE` reads a database file
 * directly), so that both compute the one chain.
 *
 * The chain.  Each row of the archive's `audit` table stores `prev_hash`,
 * the `hash` of the row before it (by id; 64 '0' for the first row), and
 * its own `hash`: the lowercase hex SHA-256 of
 *
 *     prev_hash (64 hex characters)
 *     "\npenlink-audit-1"
 *     then for each field, in this order:
 *       id, utc_ms, uid, user, pen, action, old_value, new_value, result
 *     "\n" <the field's length in bytes, decimal> ":" <the field's bytes>
 *
 * (integers as decimal text, "-" for a negative one; text fields exactly as
 * stored).  Length prefixes make the encoding unambiguous whatever the text
 * holds.  A row removed, changed, inserted or moved breaks the chain at
 * that row or the one after it, which verification names.  A chain
 * rewritten from some row to its end by someone who has the file is again
 * consistent: only an anchor kept elsewhere shows it (a hash noted earlier,
 * `penctl audit verify --head HASH`, or the copy in the central archive).
 */
#ifndef PENLINK_AUDIT_H
#define PENLINK_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Hex SHA-256 and its NUL. */
#define PLC_AUDIT_HASH_TEXT 65
/* The prev_hash of the first row. */
#define PLC_AUDIT_GENESIS \
	"0000000000000000000000000000000000000000000000000000000000000000"

/* Annotation fields, bytes (UTF-8 is not required: they are untrusted
 * text, cleaned at every output).  A NUL is refused. */
#define PLC_ANNOT_CLIENT_MAX 64u
#define PLC_ANNOT_OPERATOR_MAX 64u
#define PLC_ANNOT_NOTE_MAX 2000u
/* Annotations one session may have (corrections included): all of them fit
 * one control-socket response. */
#define PLC_ANNOT_PER_SESSION_MAX 256u

/* Every row of an archive's trail in chain order, with the columns
 * plc_audit_chain_step takes: id, utc_ms, uid, user, pen, action,
 * old_value, new_value, result, prev_hash, hash. */
#define PLC_AUDIT_VERIFY_SQL                                                \
	"SELECT id, utc_ms, uid, user, pen, action, old_value, new_value, "    \
	"result, prev_hash, hash FROM audit ORDER BY id"

struct plc_audit_row {
	int64_t id;
	int64_t utc_ms;
	int64_t uid;
	const char *user, *pen, *action, *old_value, *new_value, *result;
};

/* The hash of row r after prev_hex (NULL: the genesis) into out.  PL_OK or
 * PL_ERR_MEM. */
int plc_audit_hash(const char *prev_hex, const struct plc_audit_row *r,
                   char out[PLC_AUDIT_HASH_TEXT]);

/* A verification in progress: feed every row in id order. */
struct plc_audit_chain {
	uint64_t rows;            /* rows checked */
	char prev[PLC_AUDIT_HASH_TEXT];  /* hash of the last good row */
	int64_t prev_id;          /* its id (0: none yet) */
	bool broken;
	int64_t bad_id;           /* the first bad row (when broken) */
	char reason[256];         /* why it is bad */
	char anchor[PLC_AUDIT_HASH_TEXT]; /* "" or a hash that must be found */
	bool anchor_found;
};

/* anchor: a row hash that must be in the chain (NULL or "": none). */
void plc_audit_chain_init(struct plc_audit_chain *c, const char *anchor);
/*
 * The next row, with its stored prev_hash and hash (NULL when the column is
 * NULL).  Returns true while the chain holds; false from the first bad row
 * on (c->bad_id, c->reason), or when out of memory (reason says so).
 */
bool plc_audit_chain_step(struct plc_audit_chain *c,
                          const struct plc_audit_row *r, const char *prev_hash,
                          const char *hash);
/*
 * The row an SQLite statement is on, when it selects the columns of
 * PLC_AUDIT_VERIFY_SQL (one home for reading them, whoever opened the
 * database): columns 0-8 into *r (NULL text as ""; the strings are the
 * statement's, valid until it steps again), then plc_audit_chain_step()
 * with columns 9 and 10.  plc_audit_row_read() only reads columns 0-8, for
 * statements that select those first.
 */
struct sqlite3_stmt;
void plc_audit_row_read(struct sqlite3_stmt *st, struct plc_audit_row *r);
bool plc_audit_chain_step_row(struct plc_audit_chain *c,
                              struct sqlite3_stmt *st);
/* After the last row: checks the anchor.  true when the chain is intact
 * (and the anchor, if any, was found). */
bool plc_audit_chain_end(struct plc_audit_chain *c);

#ifdef __cplusplus
}
#endif

#endif
