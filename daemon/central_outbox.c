/*
 * The outbox of the central replication (central.h), in the archive's own
 * database file but through a connection of its own, so archive.c knows
 * nothing of it.
 *
 * Tables (all prefixed central_, created here, never by archive.c):
 *   central_outbox   one row per archived session: pending until central
 *                    confirms it (then confirmed), or conflict/refused.
 *                    A session is "cleared" from the outbox by leaving the
 *                    pending state; the row stays (a few bytes) so that a
 *                    later backfill knows it was sent.
 *   central_state    key/value: the last audit entry (audit_sent) and the
 *                    last annotation (annotations_sent) central confirmed.
 *   central_pens_sent each pen as central last confirmed it.
 * Trigger central_outbox_enqueue: AFTER INSERT ON sessions, so a session
 * enters the outbox in the very transaction that commits it to the
 * archive; nothing archived can miss the outbox, whatever happens after.
 * Backfill, at every start: each session without an outbox row (all of
 * them when central is first enabled, and any committed while the trigger
 * did not exist) is queued.
 *
 * Records are read through SQLite's incremental blob API straight into the
 * batch's buffer, one at a time, and a batch holds at most max_bytes of them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "central.h"
#include "log.h"

#define BUSY_TIMEOUT_MS 5000

struct outbox {
	sqlite3 *db;
	char *path;
	int64_t data_version;
};

static const char setup_sql[] =
    "CREATE TABLE IF NOT EXISTS central_outbox (\n"
    "  session_id INTEGER PRIMARY KEY,\n" /* sessions.id */
    "  state INTEGER NOT NULL DEFAULT 0,\n"
    "  queued_ms INTEGER NOT NULL,\n"
    "  done_ms INTEGER,\n"
    "  note TEXT\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS central_outbox_pending\n"
    "  ON central_outbox (session_id) WHERE state = 0;\n"
    "CREATE TABLE IF NOT EXISTS central_state (\n"
    "  key TEXT PRIMARY KEY,\n"
    "  value INTEGER NOT NULL\n"
    ");\n"
    /* What central last confirmed of each pen: a pen is sent again when
     * its model, hardware or firmware differ from this. */
    "CREATE TABLE IF NOT EXISTS central_pens_sent (\n"
    "  serial TEXT PRIMARY KEY,\n"
    "  model TEXT NOT NULL,\n"
    "  hw_revision TEXT NOT NULL,\n"
    "  fw_version TEXT NOT NULL,\n"
    "  seen_ms INTEGER NOT NULL\n"
    ");\n"
    "CREATE TRIGGER IF NOT EXISTS central_outbox_enqueue\n"
    "  AFTER INSERT ON sessions BEGIN\n"
    "  INSERT OR IGNORE INTO central_outbox (session_id, state, queued_ms)\n"
    "  VALUES (NEW.id, 0,\n"
    "    CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));\n"
    "END;\n";

static const char backfill_sql[] =
    "INSERT INTO central_outbox (session_id, state, queued_ms)\n"
    "  SELECT id, 0, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)\n"
    "  FROM sessions WHERE id NOT IN (SELECT session_id FROM central_outbox)";

/* The pens (alias p) whose model, hardware or firmware central has not
 * confirmed. */
#define PENS_UNSENT                                                         \
	"LEFT JOIN central_pens_sent c ON c.serial = p.serial "                \
	"WHERE c.serial IS NULL OR c.model IS NOT p.model "                    \
	"OR c.hw_revision IS NOT p.hw_revision OR c.fw_version IS NOT p.fw_version"

static int db_fail(struct outbox *o, const char *doing)
{
	int code = sqlite3_extended_errcode(o->db);
	int e = (code & 0xff) == SQLITE_BUSY     ? PL_ERR_BUSY
	        : (code & 0xff) == SQLITE_NOMEM  ? PL_ERR_MEM
	        : (code & 0xff) == SQLITE_PERM ||
	                  (code & 0xff) == SQLITE_READONLY ||
	                  (code & 0xff) == SQLITE_CANTOPEN
	            ? PL_ERR_ACCESS
	            : PL_ERR_IO;
	return pl_error_set(e, "central outbox in %s: cannot %s: %s", o->path, doing,
	                    sqlite3_errmsg(o->db));
}

static int exec(struct outbox *o, const char *sql, const char *doing)
{
	return sqlite3_exec(o->db, sql, NULL, NULL, NULL) == SQLITE_OK
	           ? PL_OK
	           : db_fail(o, doing);
}

static void rollback(struct outbox *o)
{
	if (!sqlite3_get_autocommit(o->db))
		sqlite3_exec(o->db, "ROLLBACK", NULL, NULL, NULL);
}

static int prepare(struct outbox *o, sqlite3_stmt **st, const char *sql,
                   const char *doing)
{
	return sqlite3_prepare_v2(o->db, sql, -1, st, NULL) == SQLITE_OK
	           ? PL_OK
	           : db_fail(o, doing);
}

/* A single-integer query. */
static int scalar(struct outbox *o, const char *sql, const char *doing,
                  int64_t *out)
{
	sqlite3_stmt *st;
	int e = prepare(o, &st, sql, doing);
	if (e)
		return e;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		e = db_fail(o, doing);
	sqlite3_finalize(st);
	return e;
}

int outbox_open(const char *path, struct outbox **out, uint64_t *backfilled)
{
	*out = NULL;
	*backfilled = 0;
	struct outbox *o = calloc(1, sizeof *o);
	if (!o || !(o->path = strdup(path))) {
		free(o);
		return pl_error_set(PL_ERR_MEM, "out of memory opening the central outbox");
	}
	/* No CREATE: archive.c made the file (0600) and its tables. */
	int rc = sqlite3_open_v2(path, &o->db,
	                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	int e = PL_OK;
	if (rc != SQLITE_OK) {
		e = o->db ? db_fail(o, "open the database")
		          : pl_error_set(PL_ERR_MEM, "out of memory opening %s", path);
		outbox_close(o);
		return e;
	}
	sqlite3_extended_result_codes(o->db, 1);
	sqlite3_busy_timeout(o->db, BUSY_TIMEOUT_MS);
	sqlite3_db_config(o->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	/* The archive put the file in WAL mode (persistent); say so if not, as
	 * readers here would then block its commits. */
	int64_t sessions = 0;
	sqlite3_stmt *st;
	e = prepare(o, &st, "PRAGMA journal_mode", "read the journal mode");
	if (!e) {
		if (sqlite3_step(st) != SQLITE_ROW)
			e = db_fail(o, "read the journal mode");
		else if (strcmp((const char *)sqlite3_column_text(st, 0), "wal"))
			e = pl_error_set(PL_ERR_IO,
			                 "central outbox: %s is in \"%s\" journal mode, "
			                 "not WAL", path,
			                 (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	}
	/* Same settings as the archive's own connection: a crash never loses
	 * a confirmation that is not also resent (and then found already in
	 * central) at the next start. */
	if (!e)
		e = exec(o, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON",
		         "configure the connection");
	if (!e)
		e = scalar(o, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
		           "AND name = 'sessions'", "look for the sessions table",
		           &sessions);
	if (!e && !sessions)
		e = pl_error_set(PL_ERR_IO, "central outbox: %s has no sessions table",
		                 path);
	if (!e)
		e = exec(o, "BEGIN IMMEDIATE", "begin setting up the outbox");
	if (!e)
		e = exec(o, setup_sql, "create the outbox");
	if (!e)
		e = exec(o, backfill_sql, "queue the sessions archived before");
	if (!e)
		*backfilled = (uint64_t)sqlite3_changes(o->db);
	if (!e)
		e = exec(o, "COMMIT", "commit the outbox set-up");
	if (e) {
		rollback(o);
		outbox_close(o);
		return e;
	}
	outbox_changed(o);
	*out = o;
	return PL_OK;
}

void outbox_close(struct outbox *o)
{
	if (!o)
		return;
	if (o->db && sqlite3_close(o->db) != SQLITE_OK) {
		log_err("closing the central outbox %s: %s", o->path, sqlite3_errmsg(o->db));
		sqlite3_close_v2(o->db);
	}
	free(o->path);
	free(o);
}

void outbox_items_free(struct outbox_item *items, size_t n)
{
	for (size_t i = 0; items && i < n; i++)
		free(items[i].record);
	free(items);
}

static void copy_fixed(uint8_t *dst, size_t len, sqlite3_stmt *st, int col)
{
	memset(dst, 0, len);
	if ((size_t)sqlite3_column_bytes(st, col) == len)
		memcpy(dst, sqlite3_column_blob(st, col), len);
}

/* A session's key from its serial (col) and uuid (col + 1) columns. */
static void copy_key(struct pl_session_key *key, sqlite3_stmt *st, int col)
{
	const char *serial = (const char *)sqlite3_column_text(st, col);
	snprintf(key->serial, sizeof key->serial, "%s", serial ? serial : "");
	copy_fixed(key->uuid, 16, st, col + 1);
}

/* Reads the record of item into a buffer of exactly its size. */
static int read_record(struct outbox *o, struct outbox_item *it)
{
	sqlite3_blob *blob = NULL;
	if (sqlite3_blob_open(o->db, "main", "sessions", "record", it->id, 0,
	                      &blob) != SQLITE_OK) {
		int e = db_fail(o, "open a session's record");
		sqlite3_blob_close(blob);
		return e;
	}
	int len = sqlite3_blob_bytes(blob);
	int e = PL_OK;
	if (len < 0 || (uint64_t)len != it->summary.size) {
		char k[128];
		pl_session_key_format(&it->key, PL_TEXT_LOG, k, sizeof k);
		e = pl_error_set(PL_ERR_IO,
		                 "central outbox: the archived record of %s is %d "
		                 "bytes, not the %" PRIu64 " its row says",
		                 k, len, it->summary.size);
	} else if (!(it->record = malloc(len ? (size_t)len : 1))) {
		e = pl_error_set(PL_ERR_MEM, "out of memory reading a record of %d bytes",
		                 len);
	} else if (len && sqlite3_blob_read(blob, it->record, len, 0) != SQLITE_OK) {
		e = db_fail(o, "read a session's record");
	}
	sqlite3_blob_close(blob);
	return e;
}

int outbox_next(struct outbox *o, size_t max_items, uint64_t max_bytes,
                struct outbox_item **items, size_t *n)
{
	*items = NULL;
	*n = 0;
	if (!max_items)
		return PL_OK;
	struct outbox_item *v = calloc(max_items, sizeof *v);
	if (!v)
		return pl_error_set(PL_ERR_MEM, "out of memory");
	/* Each pass marks up to 8 bad rows refused; a bound on the passes
	 * keeps one call short whatever the archive holds. */
	int passes = 0;
again:;
	sqlite3_stmt *st;
	/* Metadata only: the record column is not read here. */
	int e = prepare(o, &st,
	                "SELECT s.id, s.serial, s.uuid, s.seq, s.size, s.sha256, "
	                "s.start_ms, s.end_ms, s.rtc_time, s.archived_ms "
	                "FROM central_outbox o JOIN sessions s ON s.id = o.session_id "
	                "WHERE o.state = 0 ORDER BY o.session_id LIMIT ?1",
	                "list the pending sessions");
	if (e) {
		free(v);
		return e;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)max_items);
	uint64_t bytes = 0;
	size_t k = 0;
	/* Rows whose numbers no session can have (altered by hand): refused
	 * here, with the reason, instead of sent wrapped into range. */
	int64_t bad_ids[8];
	char bad_why[8][160];
	size_t n_bad = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct plc_session_summary checked;
		if (plc_session_summary_numbers(&checked, sqlite3_column_int64(st, 3),
		                                sqlite3_column_int64(st, 4)) != PL_OK) {
			if (n_bad == sizeof bad_ids / sizeof bad_ids[0])
				break;
			bad_ids[n_bad] = sqlite3_column_int64(st, 0);
			snprintf(bad_why[n_bad++], sizeof bad_why[0],
			         "not sent: %s", pl_error_message());
			continue;
		}
		uint64_t size = checked.size;
		if (k && bytes + size > max_bytes)
			break;
		struct outbox_item *it = &v[k++];
		it->id = sqlite3_column_int64(st, 0);
		copy_key(&it->key, st, 1);
		struct plc_session_summary *sum = &it->summary;
		sum->seq = checked.seq;
		sum->size = size;
		copy_fixed(sum->sha256, 32, st, 5);
		sum->start_ms = sqlite3_column_int64(st, 6);
		sum->end_ms = sqlite3_column_int64(st, 7);
		sum->rtc_time = sqlite3_column_int(st, 8) != 0;
		sum->archived_ms = sqlite3_column_int64(st, 9);
		bytes += size;
		if (bytes >= max_bytes)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		e = db_fail(o, "list the pending sessions");
	/* Reset before reading blobs: no read snapshot is held longer than
	 * needed, so the archive's checkpoints are never held up. */
	sqlite3_finalize(st);
	if (!e && n_bad) {
		int states[8];
		const char *notes[8];
		for (size_t i = 0; i < n_bad; i++) {
			states[i] = OUTBOX_REFUSED;
			notes[i] = bad_why[i];
			log_err("central outbox in %s: session row %" PRId64 " %s; it "
			        "stays in the local archive, marked refused", o->path,
			        bad_ids[i], bad_why[i]);
		}
		e = outbox_mark(o, bad_ids, states, notes, n_bad);
		if (!e && !k && ++passes < 64)
			goto again; /* they are out of the way now */
	}
	for (size_t i = 0; !e && i < k; i++)
		e = read_record(o, &v[i]);
	if (e || !k) {
		outbox_items_free(v, k);
		return e;
	}
	*items = v;
	*n = k;
	return PL_OK;
}

/* Runs sql once for each of n rows, in one transaction: bind(st, i, ud)
 * binds row i's parameters.  doing: what it does, for errors. */
static int per_row(struct outbox *o, const char *sql, const char *doing,
                   size_t n, void (*bind)(sqlite3_stmt *st, size_t i,
                                          const void *ud),
                   const void *ud)
{
	if (!n)
		return PL_OK;
	sqlite3_stmt *st = NULL;
	int e = exec(o, "BEGIN IMMEDIATE", doing);
	if (!e)
		e = prepare(o, &st, sql, doing);
	for (size_t i = 0; !e && i < n; i++) {
		bind(st, i, ud);
		if (sqlite3_step(st) != SQLITE_DONE)
			e = db_fail(o, doing);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (!e)
		e = exec(o, "COMMIT", doing);
	if (e)
		rollback(o);
	return e;
}

struct marks {
	const int64_t *ids;
	const int *states;
	const char *const *notes;
};

static void bind_mark(sqlite3_stmt *st, size_t i, const void *ud)
{
	const struct marks *m = ud;
	sqlite3_bind_int64(st, 1, m->ids[i]);
	sqlite3_bind_int(st, 2, m->states[i]);
	if (m->notes && m->notes[i])
		sqlite3_bind_text(st, 3, m->notes[i], -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, 3);
}

int outbox_mark(struct outbox *o, const int64_t *ids, const int *states,
                const char *const *notes, size_t n)
{
	struct marks m = {ids, states, notes};
	return per_row(o,
	               "UPDATE central_outbox SET state = ?2, note = ?3, done_ms = "
	               "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) "
	               "WHERE session_id = ?1",
	               "update the outbox", n, bind_mark, &m);
}

static char *dup_col(sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);
	return strdup(s ? s : "");
}

/* A hash column as text ("" when NULL or not a hash's length). */
static void copy_hash(char out[65], sqlite3_stmt *st, int col)
{
	const char *h = (const char *)sqlite3_column_text(st, col);
	snprintf(out, 65, "%s", h && strlen(h) == 64 ? h : "");
}

/* ---- listings of what central has not confirmed: audit entries and
 * annotations after their cursor, pens against their record */

/* Returned by a listing's row function: the listing ends before this row. */
#define ROW_STOP 1

/* A text column of a listing's rows, copied into the element's char *
 * member at byte offset member. */
struct text_col {
	size_t member;
	int col;
};

/*
 * What a listing reads: sql (?1 its LIMIT) gives rows that row() turns
 * into elements of elem_size bytes (PL_OK or ROW_STOP), and whose texts
 * columns are copied into the element's strings, freed with the list.
 * What central confirmed is recorded by moving a cursor, the central_state
 * key cursor (its elements then begin with their id), or else by done.
 */
struct listing {
	const char *sql;
	const char *doing;
	const char *what;      /* in messages */
	size_t elem_size;
	int (*row)(sqlite3_stmt *st, void *elem);
	const struct text_col *texts;
	size_t n_texts;
	const char *cursor;
	int (*done)(struct outbox *o, const void *rows, size_t n);
};

#define TEXTS(t) .texts = (t), .n_texts = sizeof(t) / sizeof((t)[0])

/* The id central confirmed everything up to, under a central_state key
 * (0: nothing yet). */
#define CURSOR(key) \
	"coalesce((SELECT value FROM central_state WHERE key = '" key "'), 0)"

/* The cursor of a central_state key moves forward only. */
static int cursor_set(struct outbox *o, const char *key, int64_t id,
                      const char *doing)
{
	sqlite3_stmt *st;
	int e = prepare(o, &st,
	                "INSERT INTO central_state (key, value) VALUES (?1, ?2) "
	                "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
	                doing);
	if (e)
		return e;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		e = db_fail(o, doing);
	sqlite3_finalize(st);
	return e;
}

/* ---- audit */

static int audit_row(sqlite3_stmt *st, void *elem)
{
	struct outbox_audit *a = elem;
	a->id = sqlite3_column_int64(st, 0);
	a->utc_ms = sqlite3_column_int64(st, 1);
	a->uid = sqlite3_column_int64(st, 2);
	copy_hash(a->prev_hash, st, 9);
	copy_hash(a->hash, st, 10);
	return PL_OK;
}

static const struct text_col audit_texts[] = {
	{offsetof(struct outbox_audit, user), 3},
	{offsetof(struct outbox_audit, pen), 4},
	{offsetof(struct outbox_audit, action), 5},
	{offsetof(struct outbox_audit, old_value), 6},
	{offsetof(struct outbox_audit, new_value), 7},
	{offsetof(struct outbox_audit, result), 8},
};

/* ---- annotations */

static int annot_row(sqlite3_stmt *st, void *elem)
{
	/* The session's outbox state: NULL (no row yet) or pending ends the
	 * list, so an annotation never reaches central before its session. */
	if (sqlite3_column_type(st, 9) == SQLITE_NULL ||
	    sqlite3_column_int(st, 9) == OUTBOX_PENDING)
		return ROW_STOP;
	struct outbox_annot *a = elem;
	a->id = sqlite3_column_int64(st, 0);
	copy_key(&a->key, st, 1);
	a->utc_ms = sqlite3_column_int64(st, 3);
	a->uid = sqlite3_column_int64(st, 4);
	a->send = sqlite3_column_int(st, 9) == OUTBOX_CONFIRMED;
	return PL_OK;
}

static const struct text_col annot_texts[] = {
	{offsetof(struct outbox_annot, user), 5},
	{offsetof(struct outbox_annot, client_ref), 6},
	{offsetof(struct outbox_annot, operator_name), 7},
	{offsetof(struct outbox_annot, note), 8},
};

/* ---- pens */

static int pen_row(sqlite3_stmt *st, void *elem)
{
	struct outbox_pen *p = elem;
	const char *f[4];
	for (int i = 0; i < 4; i++) {
		f[i] = (const char *)sqlite3_column_text(st, i);
		if (!f[i])
			f[i] = "";
	}
	snprintf(p->serial, sizeof p->serial, "%s", f[0]);
	snprintf(p->model, sizeof p->model, "%s", f[1]);
	snprintf(p->hw_revision, sizeof p->hw_revision, "%s", f[2]);
	snprintf(p->fw_version, sizeof p->fw_version, "%s", f[3]);
	p->seen_ms = sqlite3_column_int64(st, 4);
	return PL_OK;
}

static void bind_pen(sqlite3_stmt *st, size_t i, const void *ud)
{
	const struct outbox_pen *p = (const struct outbox_pen *)ud + i;
	sqlite3_bind_text(st, 1, p->serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, p->model, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, p->hw_revision, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, p->fw_version, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, p->seen_ms);
}

static int pens_done(struct outbox *o, const void *rows, size_t n)
{
	return per_row(o,
	               "INSERT OR REPLACE INTO central_pens_sent (serial, model, "
	               "hw_revision, fw_version, seen_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
	               "record the pens central has", n, bind_pen, rows);
}

static const struct listing listings[] = {
    [OUTBOX_ANNOTS] = {
        .sql = "SELECT a.id, s.serial, s.uuid, a.utc_ms, a.uid, a.user, "
               "a.client_ref, a.operator, a.note, o.state "
               "FROM annotations a JOIN sessions s ON s.id = a.session_id "
               "LEFT JOIN central_outbox o ON o.session_id = a.session_id "
               "WHERE a.id > " CURSOR("annotations_sent")
               " ORDER BY a.id LIMIT ?1",
        .doing = "list the annotations to send",
        .what = "annotations",
        .elem_size = sizeof(struct outbox_annot),
        .row = annot_row,
        TEXTS(annot_texts),
        .cursor = "annotations_sent",
    },
    [OUTBOX_PENS] = {
        .sql = "SELECT p.serial, p.model, p.hw_revision, p.fw_version, "
               "p.seen_ms FROM pens p " PENS_UNSENT " ORDER BY p.serial LIMIT ?1",
        .doing = "list the pens to send",
        .what = "pens",
        .elem_size = sizeof(struct outbox_pen),
        .row = pen_row,
        .done = pens_done,
    },
    [OUTBOX_AUDIT] = {
        .sql = "SELECT id, utc_ms, uid, user, pen, action, old_value, "
               "new_value, result, prev_hash, hash FROM audit WHERE id > "
               CURSOR("audit_sent") " ORDER BY id LIMIT ?1",
        .doing = "list the audit entries to send",
        .what = "audit entries",
        .elem_size = sizeof(struct outbox_audit),
        .row = audit_row,
        TEXTS(audit_texts),
        .cursor = "audit_sent",
    },
};

void outbox_list_free(enum outbox_list list, void *rows, size_t n)
{
	const struct listing *l = &listings[list];
	unsigned char *v = rows;
	for (size_t i = 0; v && i < n; i++)
		for (size_t t = 0; t < l->n_texts; t++) {
			char *text;
			memcpy(&text, v + i * l->elem_size + l->texts[t].member,
			       sizeof text);
			free(text);
		}
	free(rows);
}

/* Copies row st's text columns into elem; an error when out of memory,
 * the copies made so far left for outbox_list_free. */
static int copy_texts(const struct listing *l, sqlite3_stmt *st,
                      unsigned char *elem)
{
	for (size_t t = 0; t < l->n_texts; t++) {
		char *text = dup_col(st, l->texts[t].col);
		if (!text)
			return pl_error_set(PL_ERR_MEM, "out of memory");
		memcpy(elem + l->texts[t].member, &text, sizeof text);
	}
	return PL_OK;
}

int outbox_list(struct outbox *o, enum outbox_list list, size_t max,
                void **rows, size_t *n)
{
	const struct listing *l = &listings[list];
	*rows = NULL;
	*n = 0;
	unsigned char *v = calloc(max ? max : 1, l->elem_size);
	if (!v)
		return pl_error_set(PL_ERR_MEM, "out of memory");
	sqlite3_stmt *st;
	int e = prepare(o, &st, l->sql, l->doing);
	if (e) {
		free(v);
		return e;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)max);
	size_t k = 0;
	int rc = SQLITE_DONE;
	while (k < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		unsigned char *elem = v + k * l->elem_size;
		if (l->row(st, elem) == ROW_STOP) {
			rc = SQLITE_DONE;
			break;
		}
		k++;
		if ((e = copy_texts(l, st, elem)) != PL_OK)
			break;
	}
	if (!e && rc != SQLITE_DONE && rc != SQLITE_ROW)
		e = db_fail(o, l->doing);
	sqlite3_finalize(st);
	if (e || !k) {
		outbox_list_free(list, v, k);
		return e;
	}
	*rows = v;
	*n = k;
	return PL_OK;
}

_Static_assert(offsetof(struct outbox_audit, id) == 0 &&
                   offsetof(struct outbox_annot, id) == 0,
               "the rows of a listing after a cursor begin with their id");

const char *outbox_list_what(enum outbox_list list)
{
	return listings[list].what;
}

int outbox_list_done(struct outbox *o, enum outbox_list list, const void *rows,
                     size_t n)
{
	const struct listing *l = &listings[list];
	if (!n)
		return PL_OK;
	if (!l->cursor)
		return l->done(o, rows, n);
	const unsigned char *last = (const unsigned char *)rows +
	                            (n - 1) * l->elem_size;
	int64_t id;
	memcpy(&id, last, sizeof id);
	char doing[96];
	snprintf(doing, sizeof doing, "record the %s central confirmed", l->what);
	return cursor_set(o, l->cursor, id, doing);
}

int outbox_counts(struct outbox *o, struct outbox_counts *out)
{
	memset(out, 0, sizeof *out);
	sqlite3_stmt *st;
	int e = prepare(o, &st,
	                "SELECT state, count(*) FROM central_outbox GROUP BY state",
	                "count the outbox");
	if (e)
		return e;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t k = (uint64_t)sqlite3_column_int64(st, 1);
		switch (sqlite3_column_int(st, 0)) {
		case OUTBOX_PENDING: out->pending = k; break;
		case OUTBOX_CONFIRMED: out->confirmed = k; break;
		case OUTBOX_CONFLICT: out->conflicts = k; break;
		default: out->refused += k; break;
		}
	}
	if (rc != SQLITE_DONE)
		e = db_fail(o, "count the outbox");
	sqlite3_finalize(st);
	int64_t audit = 0;
	if (!e)
		e = scalar(o,
		           "SELECT count(*) FROM audit WHERE id > " CURSOR("audit_sent"),
		           "count the audit entries to send", &audit);
	out->audit_pending = (uint64_t)audit;
	int64_t annots = 0, pens = 0;
	if (!e)
		e = scalar(o,
		           "SELECT count(*) FROM annotations WHERE id > "
		           CURSOR("annotations_sent"),
		           "count the annotations to send", &annots);
	if (!e)
		e = scalar(o, "SELECT count(*) FROM pens p " PENS_UNSENT,
		           "count the pens to send", &pens);
	out->annotations_pending = (uint64_t)annots;
	out->pens_pending = (uint64_t)pens;
	return e;
}

bool outbox_changed(struct outbox *o)
{
	int64_t v = 0;
	if (scalar(o, "PRAGMA data_version", "read the data version", &v) != PL_OK)
		return true; /* look anyway: the caller's read will say what is wrong */
	bool changed = v != o->data_version;
	o->data_version = v;
	return changed;
}
