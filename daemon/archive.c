/*
 * The session archive (archive.h): one SQLite database.
 *
 * Files.  PATH is the database, created 0600 by us before SQLite opens it,
 * whatever the umask (SQLite gives PATH-wal and PATH-shm the database's own
 * mode, fchmod'ing them past the umask, so they are 0600 too).  0600, not
 * 0640: the daemon's group is, by default, also the control socket's group,
 * i.e. everyone allowed to talk to the daemon at all; a group-readable file
 * would let each of them read every session log straight from the disk,
 * past the logs_group check and its audit trail.  Readers go through the
 * socket; backups run as root or as the daemon's user.  An existing
 * database keeps the mode its administrator gave it (a warning if other
 * users can read it).  PATH.lock (0600) holds the one-daemon-per-database
 * lock (flock) and the owner's pid.  The lock is on a separate file, not on
 * PATH itself, because closing any descriptor of PATH would drop the POSIX
 * locks SQLite holds on it in this process; the lock file is never removed,
 * since unlinking a lock file races with the next daemon opening it.
 *
 * Durability.  The database runs in WAL mode.  Commits that let a pen
 * reclaim data (archive_commit_session) and audit entries use
 * synchronous=FULL: they are on disk when COMMIT returns.  Partial
 * downloads use synchronous=NORMAL: in WAL mode that survives the daemon's
 * death (kill -9) and never corrupts the database; only a power cut may
 * lose the last appends, which merely makes the download resume from an
 * earlier offset - the pen still holds the record, because it is told to
 * reclaim only after a FULL commit, and that commit's WAL sync also makes
 * every earlier append durable.
 *
 * Memory.  Downloads in progress are rows of chunks, so an append never
 * rewrites earlier data and never holds more than the appended piece.
 * Committing streams the chunks, one at a time, into the SHA-256 digest
 * and then into the record's row through the incremental blob API
 * (sqlite3_blob_write into a zeroblob): the record is never whole in
 * memory.  Only a record of at most PEN_DECODE_MAX bytes (pen_budget.h) is
 * also gathered for decoding its event and telemetry rows; a larger one is
 * archived byte for byte with a decode error naming that budget, and is
 * never loaded whole afterwards either (exports give its archive columns).
 * Reads and exports handle one session at a time.
 *
 * CSV export (archive_export_*, penctl sessions export --format csv).
 * RFC 4180: CRLF line ends, a header line, fields containing a comma, a
 * double quote, CR or LF are quoted and their double quotes doubled.
 * Columns:
 *   serial         pen serial number
 *   uuid           session UUID, 8-4-4-4-12
 *   seq            the pen's sequence number for the session
 *   start_utc      ISO-8601 UTC with milliseconds (2023-11-14T22:13:20.000Z);
 *   end_utc        empty when time_source is "uptime" (the pen's clock was
 *                  not set, so there is no UTC time)
 *   time_source    "rtc" or "uptime"
 *   duration_s     end - start, seconds with 3 decimals
 *   preset_id      preset in force at the start
 *   preset_name
 *   depth_mm       preset depth, mm, exact (0.5, 1.25)
 *   speed_level
 *   area           forehead, glabella, ... (empty if unspecified)
 *   needle_count   the preset's needle count (0 = nano)
 *   cartridge_lot
 *   run_time_s     motor running time
 *   strokes
 *   max_depth_mm   deepest depth reached, mm, exact
 *   errors         error count from the pen's summary
 *   events         number of events
 *   samples        number of telemetry samples
 *   size           record size in bytes
 *   sha256         record digest, hex
 *   archived_utc   when this daemon committed it, ISO-8601 UTC
 * The columns from preset_id to samples are empty for a record the daemon
 * could not decode (it is archived anyway: the raw bytes are the truth).
 *
 * JSON export: "[", then one object per session separated by ",", then
 * "]".  Each object is pl_record_to_json() without samples plus
 * "archived_utc_ms" (integer) and "sha256" (hex).  For a record that does
 * not decode: "uuid", "serial", "seq", "start_utc_ms", "end_utc_ms",
 * "time_source", "archived_utc_ms", "sha256" from the archive's own columns
 * and "decode_error" (the reason).
 *
 * Sessions and exports are ordered by start time (start_ms), then by
 * archive order.  A session whose pen clock was not set has an uptime there,
 * so a since_ms filter above 0 leaves such sessions out.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "archive.h"
#include "log.h"
#include "penlink_audit.h"
#include "penlink_export.h"
#include "pen_budget.h"

/* Milliseconds SQLite waits for a lock held by another program (an
 * administrator's sqlite3 shell): short, because the daemon's loop waits
 * with it. */
#define BUSY_TIMEOUT_MS 200
/* After a checkpoint the WAL is cut back to this size. */
#define WAL_SIZE_LIMIT (4 * 1024 * 1024)
/* Page cache (KiB); the daemon's memory target is 32 MB for 127 pens. */
#define CACHE_KIB 2048
/* Bytes per sqlite3_blob_write/read call (the API takes int). */
#define BLOB_PIECE (1024 * 1024)

struct archive {
	sqlite3 *db;
	char *path;
	int lock_fd;
	int version;
	int sync_full;     /* synchronous mode now set: 1 FULL, 0 NORMAL, -1 unknown */
	/* The parsed record of the session archive_decode_step() is working
	 * through (0/NULL: none), so each step does not parse it again.  One
	 * record at most, whatever the backlog. */
	int64_t dec_id;
	struct pl_record *dec_rec;
	char err[1024];
};

struct export_cursor {
	struct archive *a;
	enum export_format fmt;
	char serial[64];       /* "" = all */
	int64_t since_ms;
	int64_t max_id;        /* sessions committed after begin are not exported */
	int64_t last_start, last_id;
	bool per_session;      /* one complete document per session */
	enum { EXP_HEAD, EXP_ROWS, EXP_DONE } state;
	unsigned long rows;
};

/* ------------------------------------------------------------------ schema */

/*
 * Migration i takes the schema from version i to i + 1; each runs in its
 * own transaction with the new PRAGMA user_version.  Only ever append.
 *
 * The record BLOB is the last column of sessions: SQLite reaches a column
 * stored after a multi-megabyte value only by walking its overflow pages,
 * and listing sessions must not read records.
 */
static int chain_audit_rows(struct archive *a);

/* The audit trail's and the annotations' append-only triggers: for every
 * writer that goes through SQL, an administrator's sqlite3 shell included;
 * only dropping them gets round them, which needs write access to the
 * file anyway, and the audit trail's hash chain shows what that changed. */
#define APPEND_ONLY(table, what)                                           \
	"CREATE TRIGGER " table "_no_update BEFORE UPDATE ON " table " BEGIN\n" \
	"  SELECT RAISE(ABORT, '" what " are append-only');\n"                  \
	"END;\n"                                                               \
	"CREATE TRIGGER " table "_no_delete BEFORE DELETE ON " table " BEGIN\n" \
	"  SELECT RAISE(ABORT, '" what " are append-only');\n"                  \
	"END;\n"

static const struct {
	const char *what;
	const char *sql;
	/* Run after sql, in the same transaction (NULL: nothing). */
	int (*step)(struct archive *a);
} migrations[] = {
    {"create the archive tables (schema 1)",
     "CREATE TABLE sessions (\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  serial TEXT NOT NULL,\n"
     "  uuid BLOB NOT NULL CHECK (length(uuid) = 16),\n"
     "  seq INTEGER NOT NULL,\n"
     "  size INTEGER NOT NULL,\n"
     "  sha256 BLOB NOT NULL CHECK (length(sha256) = 32),\n"
     "  start_ms INTEGER NOT NULL,\n"
     "  end_ms INTEGER NOT NULL,\n"
     "  rtc_time INTEGER NOT NULL,\n"
     "  archived_ms INTEGER NOT NULL,\n"
     "  sample_interval_us INTEGER,\n"   /* NULL: not decoded */
     "  decode_error TEXT,\n"            /* NULL: events, samples decoded */
     /* Unused since schema 2: see sample_progress. */
     "  samples_next INTEGER,\n"
     "  record BLOB NOT NULL,\n"
     "  UNIQUE (serial, uuid)\n"
     ");\n"
     "CREATE INDEX sessions_start ON sessions (start_ms);\n"
     "CREATE INDEX sessions_serial_start ON sessions (serial, start_ms);\n"
     "CREATE INDEX sessions_uuid ON sessions (uuid);\n"
     "CREATE INDEX sessions_samples_pending ON sessions (id)\n"
     "  WHERE samples_next IS NOT NULL;\n"
     "CREATE TABLE events (\n"
     "  session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,\n"
     "  idx INTEGER NOT NULL,\n"
     "  offset_ms INTEGER NOT NULL,\n"
     "  kind INTEGER NOT NULL,\n"
     "  value INTEGER NOT NULL,\n"
     "  PRIMARY KEY (session_id, idx)\n"
     ") WITHOUT ROWID;\n"
     /* One row per telemetry sample: hundreds of thousands per session.
      * The rowid is session_id << 32 | idx, so rows arrive in key order
      * and SQLite appends them without a b-tree search each (a keyed
      * WITHOUT ROWID table cost an index seek per sample and made commits
      * the daemon's bottleneck).  Query through the view, or by key range
      * for one session: key BETWEEN id << 32 AND (id << 32) | 0xffffffff. */
     "CREATE TABLE sample_data (\n"
     "  key INTEGER PRIMARY KEY,\n"
     "  depth_um INTEGER NOT NULL,\n"
     "  current_ma INTEGER NOT NULL,\n"
     "  battery_mv INTEGER NOT NULL\n"
     ");\n"
     "CREATE VIEW samples AS SELECT key >> 32 AS session_id,\n"
     "  key & 4294967295 AS idx, depth_um, current_ma, battery_mv\n"
     "  FROM sample_data;\n"
     "CREATE TABLE partials (\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  serial TEXT NOT NULL,\n"
     "  uuid BLOB NOT NULL CHECK (length(uuid) = 16),\n"
     "  size INTEGER NOT NULL,\n"
     "  sha256 BLOB NOT NULL CHECK (length(sha256) = 32),\n"
     "  received INTEGER NOT NULL DEFAULT 0,\n"
     "  updated_ms INTEGER NOT NULL,\n"
     "  UNIQUE (serial, uuid)\n"
     ");\n"
     "CREATE TABLE partial_chunks (\n"
     "  partial_id INTEGER NOT NULL REFERENCES partials (id) ON DELETE CASCADE,\n"
     "  offset INTEGER NOT NULL,\n"
     "  data BLOB NOT NULL,\n"
     "  PRIMARY KEY (partial_id, offset)\n"
     ");\n"
     "CREATE TABLE audit (\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  utc_ms INTEGER NOT NULL,\n"
     "  uid INTEGER NOT NULL,\n"
     "  user TEXT NOT NULL,\n"
     "  pen TEXT NOT NULL,\n"
     "  action TEXT NOT NULL,\n"
     "  old_value TEXT NOT NULL,\n"
     "  new_value TEXT NOT NULL,\n"
     "  result TEXT NOT NULL\n"
     ");\n"
     "CREATE INDEX audit_time ON audit (utc_ms);\n"
     /* Append-only for every writer that goes through SQL, including an
      * administrator's sqlite3 shell; only dropping the triggers gets
      * round it, which needs write access to the file anyway. */
     "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN\n"
     "  SELECT RAISE(ABORT, 'the audit trail is append-only');\n"
     "END;\n"
     "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN\n"
     "  SELECT RAISE(ABORT, 'the audit trail is append-only');\n"
     "END;\n",
     NULL},
    /* Sample rows are derived data, inserted after the commit by
     * archive_decode_step() so that a commit does not hold the daemon's
     * loop for a hundred thousand inserts.  A row here means the session's
     * samples from `next` on are still to be inserted.  Schema 1 kept
     * `next` in sessions.samples_next, but SQLite rewrites a whole row,
     * overflow pages and all, to change one column, so every decode step
     * rewrote the multi-megabyte record beside it.  The old column stays,
     * always NULL: dropping it would rewrite every record. */
    {"keep sample decode progress apart from the records (schema 2)",
     "CREATE TABLE sample_progress (\n"
     "  session_id INTEGER PRIMARY KEY\n"
     "    REFERENCES sessions (id) ON DELETE CASCADE,\n"
     "  next INTEGER NOT NULL\n"
     ");\n"
     "INSERT INTO sample_progress (session_id, next)\n"
     "  SELECT id, samples_next FROM sessions WHERE samples_next IS NOT NULL;\n"
     "UPDATE sessions SET samples_next = NULL WHERE samples_next IS NOT NULL;\n"
     "DROP INDEX sessions_samples_pending;\n",
     NULL},
    /* The audit trail becomes a hash chain (control/penlink_audit.h): each
     * row keeps the hash of the row before it and its own.  The rows
     * already there are chained in id order by chain_audit_rows(), which
     * lifts the no-update trigger for that moment only, within this
     * transaction.  Annotations: a session's client reference, operator and
     * notes, append-only (a correction is a new row). */
    {"hash-chain the audit trail, add session annotations (schema 3)",
     "ALTER TABLE audit ADD COLUMN prev_hash TEXT;\n"
     "ALTER TABLE audit ADD COLUMN hash TEXT;\n"
     "CREATE TABLE annotations (\n"
     "  id INTEGER PRIMARY KEY,\n"
     "  session_id INTEGER NOT NULL REFERENCES sessions (id),\n"
     "  utc_ms INTEGER NOT NULL,\n"
     "  uid INTEGER NOT NULL,\n"
     "  user TEXT NOT NULL,\n"
     "  client_ref TEXT NOT NULL,\n"
     "  operator TEXT NOT NULL,\n"
     "  note TEXT NOT NULL\n"
     ");\n"
     "CREATE INDEX annotations_session ON annotations (session_id, id);\n"
     "CREATE INDEX annotations_client ON annotations (client_ref)\n"
     "  WHERE client_ref <> '';\n"
     APPEND_ONLY("annotations", "the session annotations"),
     chain_audit_rows},
    /* The pens as last seen (their info at attach), so exports can name a
     * session's pen model and hardware revision: a record holds only the
     * serial and the firmware version. */
    {"remember each pen's model and hardware revision (schema 4)",
     "CREATE TABLE pens (\n"
     "  serial TEXT PRIMARY KEY,\n"
     "  model TEXT NOT NULL,\n"
     "  hw_revision TEXT NOT NULL,\n"
     "  fw_version TEXT NOT NULL,\n"
     "  seen_ms INTEGER NOT NULL\n"
     ");\n",
     NULL},
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* ------------------------------------------------------------------ errors */

static int fail(struct archive *a, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct archive *a, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->err, sizeof a->err, fmt, ap);
	va_end(ap);
	return code;
}

static int code_of_sqlite(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return PL_ERR_MEM;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return PL_ERR_ACCESS;
	case SQLITE_CONSTRAINT:
		return PL_ERR_CONFLICT;
	case SQLITE_TOOBIG:
		return PL_ERR_ARG;
	default:
		/* full disk, read-only, I/O error, damaged file, locked */
		return PL_ERR_IO;
	}
}

/* "cannot WHAT in PATH: sqlite's message (why)". */
static int db_fail(struct archive *a, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int db_fail(struct archive *a, int rc, const char *fmt, ...)
{
	char what[512], sys[160] = "";
	const char *hint = "";
	int serr = a->db ? sqlite3_system_errno(a->db) : 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	switch (rc & 0xff) {
	case SQLITE_FULL:
		hint = "; free some space on the disk";
		break;
	case SQLITE_READONLY:
		hint = "; the database must be writable by penlinkd";
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		hint = "; the file is damaged or not a penlinkd archive";
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		hint = "; another program holds a lock on the database";
		break;
	case SQLITE_IOERR:
		/* ENOSPC is SQLITE_FULL; other failed writes (EFBIG, EIO)
		 * come here, errno not always kept. */
		hint = "; check that the disk has space and works";
		/* fall through */
	case SQLITE_CANTOPEN:
		if (serr)
			snprintf(sys, sizeof sys, " (%s)", strerror(serr));
		break;
	default:
		break;
	}
	/* SQLite's own message when it is about this error (it names the
	 * constraint, the trigger's text...), else the generic one. */
	return fail(a, code_of_sqlite(rc), "cannot %s in %s: %s%s%s", what,
	            a->path,
	            a->db && (sqlite3_errcode(a->db) & 0xff) == (rc & 0xff)
	                ? sqlite3_errmsg(a->db)
	                : sqlite3_errstr(rc),
	            sys, hint);
}

const char *archive_errmsg(const struct archive *a)
{
	return a ? a->err : "no archive";
}

int archive_schema_version(const struct archive *a)
{
	return a ? a->version : 0;
}

/* ------------------------------------------------------------------ helpers */

static int prepare(struct archive *a, sqlite3_stmt **st, const char *sql,
                   const char *what)
{
	int rc = sqlite3_prepare_v2(a->db, sql, -1, st, NULL);

	if (rc != SQLITE_OK) {
		*st = NULL;
		return db_fail(a, rc, "%s", what);
	}
	return PL_OK;
}

/*
 * Binds parameters 1, 2, ... by a type string: 't' text (const char *,
 * NULL binds NULL), 'b' blob (const void *, size_t), 'i' int64_t,
 * anything else NULL (consuming no argument).
 */
static int vbind(struct archive *a, sqlite3_stmt *st, const char *what,
                 const char *types, va_list ap)
{
	int rc = SQLITE_OK;

	for (int i = 1; types[i - 1] && rc == SQLITE_OK; i++) {
		switch (types[i - 1]) {
		case 't': {
			const char *s = va_arg(ap, const char *);
			rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(st, i);
			break;
		}
		case 'b': {
			const void *p = va_arg(ap, const void *);
			size_t n = va_arg(ap, size_t);
			/* A zero-length blob is still a blob, not NULL. */
			rc = sqlite3_bind_blob64(st, i, p ? p : "", n, SQLITE_TRANSIENT);
			break;
		}
		case 'i':
			rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
			break;
		default:
			rc = sqlite3_bind_null(st, i);
			break;
		}
	}
	return rc == SQLITE_OK ? PL_OK : db_fail(a, rc, "%s", what);
}

static int bind(struct archive *a, sqlite3_stmt *st, const char *what,
                const char *types, ...)
{
	va_list ap;
	int e;

	va_start(ap, types);
	e = vbind(a, st, what, types, ap);
	va_end(ap);
	return e;
}

/* Runs a statement that returns no rows and resets it for reuse. */
static int step_done(struct archive *a, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE) {
		int e = db_fail(a, rc, "%s", what);
		sqlite3_reset(st);
		return e;
	}
	sqlite3_reset(st);
	return PL_OK;
}

/* One statement that returns no rows, its parameters bound as bind() does:
 * prepared, run and finalized. */
static int run(struct archive *a, const char *what, const char *sql,
               const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int e = prepare(a, &st, sql, what);

	if (e != PL_OK)
		return e;
	va_start(ap, types);
	e = vbind(a, st, what, types, ap);
	va_end(ap);
	if (e == PL_OK)
		e = step_done(a, st, what);
	sqlite3_finalize(st);
	return e;
}

/*
 * Hands each row of a query (its parameters bound as bind() does) to row.
 * row's non-zero return stops it; a negative one (a pl_return code) is
 * the result, said to have stopped while `doing`.
 */
static int each_row(struct archive *a, const char *what, const char *doing,
                    int (*row)(sqlite3_stmt *st, void *ctx), void *ctx,
                    const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc = SQLITE_DONE, stop = 0, e = prepare(a, &st, sql, what);

	if (e != PL_OK)
		return e;
	va_start(ap, types);
	e = vbind(a, st, what, types, ap);
	va_end(ap);
	/* A row function may say itself why it stopped (fail()). */
	a->err[0] = '\0';
	while (e == PL_OK && !stop && (rc = sqlite3_step(st)) == SQLITE_ROW)
		stop = row(st, ctx);
	if (stop < 0 && !a->err[0])
		e = fail(a, stop, "%s stopped: %s", doing, pl_error_name(stop));
	else if (stop < 0)
		e = stop;
	else if (e == PL_OK && !stop && rc != SQLITE_DONE)
		e = db_fail(a, rc, "%s", what);
	sqlite3_finalize(st);
	return e;
}

/* A caller's callback for the rows of a listing and its data: the ctx of
 * each_row()'s row functions that hand each row to the caller. */
struct row_cb {
	struct archive *a;
	union {
		int (*session)(void *ud, const struct archived_session *s);
		int (*audit)(void *ud, const struct audit_entry *e);
		int (*annotation)(void *ud, const struct annotation *an);
	} cb;
	void *ud;
};

static int exec(struct archive *a, const char *sql, const char *what)
{
	int rc = sqlite3_exec(a->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? PL_OK : db_fail(a, rc, "%s", what);
}

static void rollback(struct archive *a)
{
	/* After some errors (full disk) SQLite has already rolled back. */
	if (!sqlite3_get_autocommit(a->db))
		sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Starts a write transaction.  The synchronous mode can only change
 * outside a transaction, so it is set here. */
static int begin(struct archive *a, bool full, const char *what)
{
	int e;

	if (a->sync_full != (int)full) {
		e = exec(a, full ? "PRAGMA synchronous = FULL"
		                 : "PRAGMA synchronous = NORMAL",
		         "set the synchronous mode");
		if (e != PL_OK)
			return e;
		a->sync_full = full;
	}
	return exec(a, "BEGIN IMMEDIATE", what);
}

/* The one place a transaction becomes durable: PL_OK only if COMMIT said so. */
static int commit(struct archive *a, const char *what)
{
	int rc = sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL);

	if (rc != SQLITE_OK) {
		int e = db_fail(a, rc, "%s", what);
		rollback(a);
		return e;
	}
	return PL_OK;
}

/* Ends the transaction a step of it left at e: commits after PL_OK, else
 * rolls back and keeps e. */
static int end_tx(struct archive *a, int e, const char *what)
{
	if (e == PL_OK)
		return commit(a, what);
	rollback(a);
	return e;
}

static int check_serial(struct archive *a, const char *serial, const char *fn)
{
	if (!serial || !*serial)
		return fail(a, PL_ERR_ARG, "%s: no pen serial", fn);
	if (strlen(serial) >= sizeof ((struct archived_session *)0)->serial)
		return fail(a, PL_ERR_ARG, "%s: pen serial \"%.70s...\" is too long",
		            fn, serial);
	return PL_OK;
}

/* A text column, NULL as "": valid until the statement steps again. */
static const char *col_text(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return t ? (const char *)t : "";
}

static void copy_str(char *dst, size_t cap, const unsigned char *src)
{
	snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

static void copy_blob(void *dst, size_t n, sqlite3_stmt *st, int col)
{
	const void *p = sqlite3_column_blob(st, col);

	memset(dst, 0, n);
	if (p && (size_t)sqlite3_column_bytes(st, col) == n)
		memcpy(dst, p, n);
}

/* ------------------------------------------------------------------ open */

/* The lock file: flock for exclusion, the owner's pid for the message. */
static int take_lock(struct archive *a)
{
	size_t n = strlen(a->path) + sizeof ".lock";
	char *lock_path = malloc(n), text[32];
	int fd;

	if (!lock_path)
		return fail(a, PL_ERR_MEM, "out of memory opening %s", a->path);
	snprintf(lock_path, n, "%s.lock", a->path);
	fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		int err = errno;
		int e = fail(a, err == EACCES || err == EPERM ? PL_ERR_ACCESS : PL_ERR_IO,
		             "cannot open the lock file %s: %s", lock_path,
		             strerror(err));
		free(lock_path);
		return e;
	}
	free(lock_path);
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int err = errno;
		ssize_t got;
		long pid = 0;

		if (err != EWOULDBLOCK) {
			close(fd);
			return fail(a, PL_ERR_IO, "cannot lock %s.lock: %s", a->path,
			            strerror(err));
		}
		got = pread(fd, text, sizeof text - 1, 0);
		close(fd);
		if (got > 0) {
			text[got] = '\0';
			pid = strtol(text, NULL, 10);
		}
		if (pid > 0)
			return fail(a, PL_ERR_PORT_BUSY,
			            "database %s is in use by another penlinkd (pid %ld)",
			            a->path, pid);
		return fail(a, PL_ERR_PORT_BUSY,
		            "database %s is in use by another penlinkd", a->path);
	}
	n = (size_t)snprintf(text, sizeof text, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, text, n, 0) != (ssize_t)n) {
		/* The pid is only for the message; the lock is what counts. */
		log_warn("cannot write the pid into %s.lock: %s", a->path,
		         strerror(errno));
	}
	a->lock_fd = fd;
	return PL_OK;
}

/* Creates the file ourselves so its mode is 0600 whatever SQLite's default
 * (0644 less the umask) and whatever the umask (see Files, above). */
static int create_db_file(struct archive *a)
{
	struct stat st;
	int fd = open(a->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY,
	              0600);

	if (fd < 0) {
		int err = errno;
		int code = err == EACCES || err == EPERM ? PL_ERR_ACCESS
		           : err == ENOENT              ? PL_ERR_NOT_FOUND
		                                        : PL_ERR_IO;
		return fail(a, code, "cannot open the database %s: %s%s", a->path,
		            strerror(err),
		            err == EROFS || err == EACCES
		                ? " (penlinkd needs to write to it)"
		                : "");
	}
	if (fstat(fd, &st) == 0) {
		if (st.st_size == 0 && (st.st_mode & 077) && fchmod(fd, 0600) != 0)
			log_warn("cannot make the new database %s private (0600): %s",
			         a->path, strerror(errno));
		else if (st.st_size > 0 && (st.st_mode & 007))
			log_warn("the database %s is readable or writable by every "
			         "user (mode %03o); every session log in it is "
			         "exposed: chmod 600 it",
			         a->path, (unsigned)(st.st_mode & 0777));
	}
	/* No POSIX locks are held on it yet, so closing is harmless. */
	close(fd);
	return PL_OK;
}

static int read_user_version(struct archive *a, int *version)
{
	sqlite3_stmt *st;
	int rc, e = prepare(a, &st, "PRAGMA user_version", "read the schema version");

	if (e != PL_OK)
		return e;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int(st, 0);
	else
		e = db_fail(a, rc, "read the schema version");
	sqlite3_finalize(st);
	return e;
}

static int migrate(struct archive *a)
{
	int v = 0, e = read_user_version(a, &v);
	int from;

	if (e != PL_OK)
		return e;
	if (v > SCHEMA_VERSION || v < 0)
		return fail(a, PL_ERR_VERSION,
		            "database %s has schema version %d, newer than this "
		            "penlinkd knows (%d); update penlinkd or use another "
		            "database",
		            a->path, v, SCHEMA_VERSION);
	/* A new archive is created, not migrated: no notice for that. */
	from = v;
	for (; v < SCHEMA_VERSION; v++) {
		char set[64];

		e = begin(a, true, migrations[v].what);
		if (e != PL_OK)
			return e;
		e = exec(a, migrations[v].sql, migrations[v].what);
		if (e == PL_OK && migrations[v].step)
			e = migrations[v].step(a);
		snprintf(set, sizeof set, "PRAGMA user_version = %d", v + 1);
		if (e == PL_OK)
			e = exec(a, set, "record the schema version");
		e = end_tx(a, e, migrations[v].what);
		if (e != PL_OK)
			return e;
		if (from > 0)
			log_notice("archive %s migrated to schema version %d", a->path,
			           v + 1);
	}
	a->version = v;
	return PL_OK;
}

static int configure(struct archive *a)
{
	char sql[160];
	sqlite3_stmt *st;
	int rc, e;

	sqlite3_extended_result_codes(a->db, 1);
	sqlite3_busy_timeout(a->db, BUSY_TIMEOUT_MS);
	/* No writable_schema tricks through this connection. */
	sqlite3_db_config(a->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);

	/* The first statement that reads the file: a file that is not a
	 * database fails here. */
	e = prepare(a, &st, "PRAGMA journal_mode = WAL", "switch to WAL mode");
	if (e != PL_OK)
		return e;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		e = db_fail(a, rc, "switch to WAL mode");
	} else {
		const unsigned char *mode = sqlite3_column_text(st, 0);
		if (!mode || strcmp((const char *)mode, "wal") != 0)
			e = fail(a, PL_ERR_IO,
			         "cannot switch %s to WAL mode (it stays in \"%s\" "
			         "mode); is the file on a network file system?",
			         a->path, mode ? (const char *)mode : "?");
	}
	sqlite3_finalize(st);
	if (e != PL_OK)
		return e;
	snprintf(sql, sizeof sql,
	         "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; "
	         "PRAGMA journal_size_limit = %d; PRAGMA cache_size = -%d",
	         WAL_SIZE_LIMIT, CACHE_KIB);
	e = exec(a, sql, "configure the database");
	a->sync_full = 0;
	return e;
}

/* Lets go of the database and the lock, keeping the message. */
static void release(struct archive *a)
{
	if (a->db && sqlite3_close(a->db) != SQLITE_OK) {
		log_err("closing the archive %s: %s", a->path, sqlite3_errmsg(a->db));
		sqlite3_close_v2(a->db);
	}
	a->db = NULL;
	/* Unlocked only once SQLite has let go of the file. */
	if (a->lock_fd >= 0)
		close(a->lock_fd);
	a->lock_fd = -1;
}

/*
 * On failure *out is still set (unless out is NULL or memory ran out) to a
 * handle that holds only the message: the caller reads archive_errmsg()
 * and archive_close()s it.  It holds no lock and no database.
 */
int archive_open(const char *path, struct archive **out)
{
	struct archive *a;
	int rc, e;

	if (!out)
		return PL_ERR_ARG;
	*out = NULL;
	a = calloc(1, sizeof *a);
	if (!a)
		return PL_ERR_MEM;
	a->lock_fd = -1;
	a->sync_full = -1;
	*out = a;
	if (!path || !*path)
		return fail(a, PL_ERR_ARG, "no database path");
	a->path = strdup(path);
	if (!a->path)
		return fail(a, PL_ERR_MEM, "out of memory opening %s", path);

	e = take_lock(a);
	if (e == PL_OK)
		e = create_db_file(a);
	if (e == PL_OK) {
		/* No SQLITE_OPEN_CREATE: the file exists with our mode.
		 * NOMUTEX: one thread uses the archive. */
		rc = sqlite3_open_v2(path, &a->db,
		                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
		                     NULL);
		if (rc != SQLITE_OK)
			e = db_fail(a, rc, "open the database");
	}
	if (e == PL_OK)
		e = configure(a);
	if (e == PL_OK)
		e = migrate(a);
	if (e != PL_OK)
		release(a);
	return e;
}

void archive_close(struct archive *a)
{
	if (!a)
		return;
	pl_record_free(a->dec_rec);
	release(a);
	free(a->path);
	free(a);
}

/* ------------------------------------------------------------------ partials */

/* The arguments naming a session for fn, checked; uuid gets its text for
 * messages. */
static int check_info(struct archive *a, const char *serial,
                      const struct pl_session_info *s, const char *fn,
                      char uuid[37])
{
	int e;

	if (!a)
		return PL_ERR_ARG;
	e = check_serial(a, serial, fn);
	if (e != PL_OK)
		return e;
	if (!s)
		return fail(a, PL_ERR_ARG, "%s: no session", fn);
	/* SQLite keeps a value of at most SQLITE_LIMIT_LENGTH bytes in a row. */
	if (s->size > (uint64_t)sqlite3_limit(a->db, SQLITE_LIMIT_LENGTH, -1))
		return fail(a, PL_ERR_ARG,
		            "session of %s: %" PRIu64 " bytes is more than the "
		            "archive can hold in one record (%d)",
		            serial, s->size, sqlite3_limit(a->db, SQLITE_LIMIT_LENGTH, -1));
	pl_uuid_format(s->uuid, uuid);
	return PL_OK;
}

struct partial {
	bool found;
	int64_t id;
	uint64_t size, received;
	uint8_t sha256[32];
};

static int find_partial(struct archive *a, const char *serial,
                        const uint8_t uuid[16], struct partial *p)
{
	sqlite3_stmt *st;
	int rc, e;

	memset(p, 0, sizeof *p);
	e = prepare(a, &st,
	            "SELECT id, size, sha256, received FROM partials "
	            "WHERE serial = ?1 AND uuid = ?2",
	            "look up a partial download");
	if (e != PL_OK)
		return e;
	e = bind(a, st, "look up a partial download", "tb", serial, uuid,
	         (size_t)16);
	if (e == PL_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			p->found = true;
			p->id = sqlite3_column_int64(st, 0);
			p->size = (uint64_t)sqlite3_column_int64(st, 1);
			copy_blob(p->sha256, 32, st, 2);
			p->received = (uint64_t)sqlite3_column_int64(st, 3);
		} else if (rc != SQLITE_DONE) {
			e = db_fail(a, rc, "look up a partial download");
		}
	}
	sqlite3_finalize(st);
	return e;
}

/* Inside a transaction. */
static int delete_partial(struct archive *a, int64_t id)
{
	static const char what[] = "discard a partial download";
	/* Chunks first and explicitly: no reliance on the foreign_keys
	 * pragma for cleaning up. */
	int e = run(a, what, "DELETE FROM partial_chunks WHERE partial_id = ?1",
	            "i", id);

	return e != PL_OK ? e : run(a, what, "DELETE FROM partials WHERE id = ?1",
	                            "i", id);
}

static bool partial_matches(const struct partial *p,
                            const struct pl_session_info *s)
{
	return p->size == s->size && memcmp(p->sha256, s->sha256, 32) == 0 &&
	       p->received <= p->size;
}

int archive_partial_offset(struct archive *a, const char *serial,
                           const struct pl_session_info *s, uint64_t *offset)
{
	struct partial p;
	char uuid[37];
	int e;

	if (!a)
		return PL_ERR_ARG;
	if (!offset)
		return fail(a, PL_ERR_ARG, "archive_partial_offset: offset is NULL");
	*offset = 0;
	e = check_info(a, serial, s, "archive_partial_offset", uuid);
	if (e == PL_OK)
		e = find_partial(a, serial, s->uuid, &p);
	if (e != PL_OK || !p.found)
		return e;
	if (partial_matches(&p, s)) {
		*offset = p.received;
		return PL_OK;
	}
	/* The pen now serves different bytes under this uuid: what we hold
	 * belongs to a record that no longer exists. */
	log_notice("session %s of %s changed on the pen (%" PRIu64 " -> %" PRIu64
	           " bytes or another digest): restarting its download",
	           uuid, serial, p.size, s->size);
	e = begin(a, false, "discard a stale partial download");
	if (e != PL_OK)
		return e;
	e = delete_partial(a, p.id);
	return end_tx(a, e, "discard a stale partial download");
}

int archive_partial_append(struct archive *a, const char *serial,
                           const struct pl_session_info *s, uint64_t offset,
                           const uint8_t *data, size_t len)
{
	static const char what[] = "store downloaded data";
	struct partial p;
	char uuid[37];
	int e;

	e = check_info(a, serial, s, "archive_partial_append", uuid);
	if (e != PL_OK)
		return e;
	if (!data && len > 0)
		return fail(a, PL_ERR_ARG, "archive_partial_append: data is NULL");
	if (offset > s->size || len > s->size - offset)
		return fail(a, PL_ERR_ARG,
		            "session %s of %s: %zu bytes at offset %" PRIu64
		            " run past its size of %" PRIu64 " bytes",
		            uuid, serial, len, offset, s->size);
	if (len == 0)
		return PL_OK;

	e = begin(a, false, what);
	if (e != PL_OK)
		return e;
	e = find_partial(a, serial, s->uuid, &p);
	if (e != PL_OK)
		goto out;
	if (p.found && !partial_matches(&p, s)) {
		e = fail(a, PL_ERR_CONFLICT,
		         "session %s of %s: the stored partial download is of a "
		         "different record (%" PRIu64 " bytes or another digest); "
		         "ask archive_partial_offset() first",
		         uuid, serial, p.size);
		goto out;
	}
	if ((p.found ? p.received : 0) != offset) {
		e = fail(a, PL_ERR_CONFLICT,
		         "session %s of %s: data for offset %" PRIu64
		         " but %" PRIu64 " bytes are stored",
		         uuid, serial, offset, p.found ? p.received : 0);
		goto out;
	}
	if (!p.found) {
		e = run(a, what,
		        "INSERT INTO partials (serial, uuid, size, sha256, "
		        "received, updated_ms) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
		        "tbibi", serial, s->uuid, (size_t)16, (int64_t)s->size,
		        s->sha256, (size_t)32, pl_time_utc_ms());
		if (e != PL_OK)
			goto out;
		p.id = sqlite3_last_insert_rowid(a->db);
	}
	e = run(a, what,
	        "INSERT INTO partial_chunks (partial_id, offset, data) "
	        "VALUES (?1, ?2, ?3)",
	        "iib", p.id, (int64_t)offset, data, len);
	if (e != PL_OK)
		goto out;
	e = run(a, what,
	        "UPDATE partials SET received = received + ?2, "
	        "updated_ms = ?3 WHERE id = ?1",
	        "iii", p.id, (int64_t)len, pl_time_utc_ms());
	if (e == PL_OK)
		return commit(a, what);
out:
	rollback(a);
	return e;
}

/* ------------------------------------------------------------------ commit */

/*
 * The stored chunks of a partial download, handed to a callback one at a
 * time in record order, checking that they follow each other exactly and
 * end at size.  The digest is fed from a first walk and, for a record
 * too large to keep for decoding, the record's blob from a second one: no
 * more than a chunk is in memory.
 */
struct chunk_walk {
	struct archive *a;
	uint64_t size, pos;
	char *reason;              /* set (and the walk stopped) on a gap */
	size_t reason_len;
	/* PL_OK to go on; else a pl_return code, with a->err set */
	int (*piece)(void *ctx, uint64_t off, const uint8_t *d, size_t n);
	void *ctx;
	int failed;                /* the piece callback's code */
	char *msg;                 /* and its message (sizeof a->err) */
};

static int chunk_row(sqlite3_stmt *st, void *ctx)
{
	struct chunk_walk *w = ctx;
	int64_t off = sqlite3_column_int64(st, 0);
	const void *d = sqlite3_column_blob(st, 1);
	size_t n = (size_t)sqlite3_column_bytes(st, 1);

	if (off < 0 || (uint64_t)off != w->pos) {
		snprintf(w->reason, w->reason_len,
		         "the stored data has a gap or overlap at byte %" PRIu64, w->pos);
		return 1;
	}
	if (n > w->size - w->pos) {
		snprintf(w->reason, w->reason_len,
		         "the stored data is longer than the record's %" PRIu64 " bytes",
		         w->size);
		return 1;
	}
	if (n > 0) {
		w->failed = d ? w->piece(w->ctx, w->pos, d, n)
		              : db_fail(w->a, SQLITE_NOMEM, "read a downloaded session");
		if (w->failed != PL_OK) {
			snprintf(w->msg, sizeof w->a->err, "%s", w->a->err);
			return w->failed;
		}
	}
	w->pos += n;
	return 0;
}

/* Walks partial_id's chunks (see struct chunk_walk).  PL_OK with
 * w->reason set when the chunks are not exactly w->size bytes. */
static int walk_chunks(struct archive *a, int64_t partial_id, struct chunk_walk *w)
{
	char msg[sizeof a->err];
	int e;

	w->a = a;
	w->pos = 0;
	w->failed = PL_OK;
	w->msg = msg;
	w->reason[0] = '\0';
	e = each_row(a, "read a downloaded session", "reading a downloaded session",
	             chunk_row, w,
	             "SELECT offset, data FROM partial_chunks WHERE partial_id = ?1 "
	             "ORDER BY offset",
	             "i", partial_id);
	if (w->failed != PL_OK) {
		/* The callback's own message, not each_row's summary of it. */
		snprintf(a->err, sizeof a->err, "%s", msg);
		return w->failed;
	}
	if (e == PL_OK && !w->reason[0] && w->pos != w->size)
		snprintf(w->reason, w->reason_len,
		         "%" PRIu64 " bytes are stored, the record has %" PRIu64, w->pos,
		         w->size);
	return e;
}

/* The first pass of a commit: the digest, and a copy to decode (buf, when
 * not NULL: a record of at most PEN_DECODE_MAX bytes). */
struct digest_pass {
	struct archive *a;
	EVP_MD_CTX *md;
	uint8_t *buf;
};

static int digest_piece(void *ctx, uint64_t off, const uint8_t *d, size_t n)
{
	struct digest_pass *dp = ctx;

	if (EVP_DigestUpdate(dp->md, d, n) != 1)
		return fail(dp->a, PL_ERR_MEM, "SHA-256 digest failed (OpenSSL)");
	if (dp->buf)
		memcpy(dp->buf + off, d, n);
	return PL_OK;
}

/* The stored chunks' SHA-256, and in *buf (malloc'd) the record itself
 * when it is at most PEN_DECODE_MAX bytes (else *buf NULL).  reason is set
 * (and *buf NULL) when the bytes are not exactly size long. */
static int digest_chunks(struct archive *a, int64_t partial_id, uint64_t size,
                         uint8_t **buf, uint8_t sha256[32], char *reason,
                         size_t reason_len)
{
	struct digest_pass dp = {a, EVP_MD_CTX_new(), NULL};
	struct chunk_walk w = {
	    .size = size, .reason = reason, .reason_len = reason_len,
	    .piece = digest_piece, .ctx = &dp};
	unsigned mdlen = 0;
	int e = PL_OK;

	*buf = NULL;
	/* malloc(0) may return NULL; a 0-byte record still gets a buffer. */
	if (size <= PEN_DECODE_MAX)
		dp.buf = malloc(size ? (size_t)size : 1);
	if (!dp.md || (size <= PEN_DECODE_MAX && !dp.buf)) {
		e = fail(a, PL_ERR_MEM, "out of memory reading a record of %" PRIu64
		         " bytes", size);
		goto out;
	}
	if (EVP_DigestInit_ex(dp.md, EVP_sha256(), NULL) != 1) {
		e = fail(a, PL_ERR_MEM, "cannot start a SHA-256 digest (OpenSSL)");
		goto out;
	}
	if (partial_id)
		e = walk_chunks(a, partial_id, &w);
	else
		reason[0] = '\0';   /* a 0-byte record has no chunks */
	if (e != PL_OK || reason[0])
		goto out;           /* PL_OK, no buffer: the caller discards */
	if (EVP_DigestFinal_ex(dp.md, sha256, &mdlen) != 1 || mdlen != 32) {
		e = fail(a, PL_ERR_MEM, "SHA-256 digest failed (OpenSSL)");
		goto out;
	}
	*buf = dp.buf;
	dp.buf = NULL;
out:
	EVP_MD_CTX_free(dp.md);
	free(dp.buf);
	return e;
}

static int insert_events(struct archive *a, int64_t session_id,
                       const struct pl_record *r)
{
	static const char what[] = "store a session's events";
	struct pl_event_row ev[64], *all;
	sqlite3_stmt *st;
	size_t total, i;
	int e;

	e = prepare(a, &st, "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5)", what);
	if (e != PL_OK)
		return e;
	total = pl_record_events(r, NULL, 0);
	/* Events number in the hundreds; the stack takes the usual case. */
	all = total <= sizeof ev / sizeof ev[0] ? ev : malloc(total * sizeof *all);
	if (!all) {
		sqlite3_finalize(st);
		return fail(a, PL_ERR_MEM, "out of memory for %zu events", total);
	}
	pl_record_events(r, all, total);
	for (i = 0; i < total && e == PL_OK; i++) {
		e = bind(a, st, what, "iiiii", session_id, (int64_t)i,
		         (int64_t)all[i].offset_ms, (int64_t)all[i].kind,
		         (int64_t)all[i].value);
		if (e == PL_OK)
			e = step_done(a, st, what);
	}
	if (all != ev)
		free(all);
	sqlite3_finalize(st);
	if (e != PL_OK)
		return e;

	return PL_OK;
}

struct blob_pass {
	struct archive *a;
	sqlite3_blob *blob;
};

static int blob_piece(void *ctx, uint64_t off, const uint8_t *d, size_t n)
{
	struct blob_pass *bp = ctx;
	int rc = SQLITE_OK;

	/* Record offsets fit an int: records are under SQLITE_LIMIT_LENGTH. */
	for (size_t done = 0; done < n && rc == SQLITE_OK;) {
		int k = n - done > BLOB_PIECE ? BLOB_PIECE : (int)(n - done);
		rc = sqlite3_blob_write(bp->blob, d + done, k, (int)(off + done));
		done += (size_t)k;
	}
	return rc == SQLITE_OK ? PL_OK
	                       : db_fail(bp->a, rc, "store a session record");
}

/* Fills the zero-filled record column of the new row: from buf, or (buf
 * NULL) from the partial download's chunks, one chunk at a time. */
static int write_record(struct archive *a, int64_t session_id,
                        const uint8_t *buf, uint64_t size, int64_t partial_id)
{
	static const char what[] = "store a session record";
	struct blob_pass bp = {a, NULL};
	char reason[160];
	int e, rc = sqlite3_blob_open(a->db, "main", "sessions", "record",
	                              session_id, 1, &bp.blob);

	if (rc != SQLITE_OK)
		return db_fail(a, rc, "%s", what);
	if (buf) {
		e = size ? blob_piece(&bp, 0, buf, (size_t)size) : PL_OK;
	} else {
		struct chunk_walk w = {
		    .size = size, .reason = reason, .reason_len = sizeof reason,
		    .piece = blob_piece, .ctx = &bp};
		e = walk_chunks(a, partial_id, &w);
		/* The first pass found them whole, in this transaction. */
		if (e == PL_OK && reason[0])
			e = fail(a, PL_ERR_IO, "cannot %s in %s: the downloaded data "
			         "changed while it was stored (%s)", what, a->path, reason);
	}
	rc = sqlite3_blob_close(bp.blob);
	if (e == PL_OK && rc != SQLITE_OK)
		e = db_fail(a, rc, "%s", what);
	return e;
}

/* Samples of session id from next on are still to be inserted; next < 0:
 * none are. */
static int set_sample_progress(struct archive *a, int64_t id, int64_t next,
                               const char *what)
{
	if (next < 0)
		return run(a, what, "DELETE FROM sample_progress WHERE session_id = ?1",
		           "i", id);
	return run(a, what,
	           "INSERT OR REPLACE INTO sample_progress (session_id, next) "
	           "VALUES (?1, ?2)",
	           "ii", id, next);
}

/* Inside the commit's transaction: the session row, its record (from buf,
 * or streamed from partial_id's chunks), its rows. */
static int insert_session(struct archive *a, const char *serial,
                          const struct pl_session_info *s, const uint8_t *buf,
                          int64_t partial_id, const struct pl_record *r,
                          const char *decode_error, int64_t *id_out)
{
	static const char what[] = "store a session";
	struct pl_telemetry t;
	sqlite3_stmt *st;
	int64_t id;
	int e;

	pl_record_telemetry(r, &t);   /* zeroes for r NULL */
	if (t.count > UINT32_MAX)
		return fail(a, PL_ERR_PARSE, "%zu telemetry samples is more than "
		            "the archive stores for one session", t.count);
	e = prepare(a, &st,
	            "INSERT INTO sessions (serial, uuid, seq, size, sha256, "
	            "start_ms, end_ms, rtc_time, archived_ms, sample_interval_us, "
	            "decode_error, samples_next, record) "
	            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	            what);
	if (e != PL_OK)
		return e;
	e = bind(a, st, what, "tbiibiiii", serial, s->uuid, (size_t)16,
	         (int64_t)s->seq, (int64_t)s->size, s->sha256, (size_t)32,
	         s->start_ms, s->end_ms, (int64_t)s->rtc_time, pl_time_utc_ms());
	if (e == PL_OK) {
		int rc = r ? sqlite3_bind_int64(st, 10, t.interval_us)
		           : sqlite3_bind_null(st, 10);
		if (rc == SQLITE_OK)
			rc = decode_error ? sqlite3_bind_text(st, 11, decode_error, -1,
			                                      SQLITE_TRANSIENT)
			                  : sqlite3_bind_null(st, 11);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_null(st, 12);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_zeroblob64(st, 13, s->size);
		if (rc != SQLITE_OK)
			e = db_fail(a, rc, "%s", what);
	}
	if (e == PL_OK)
		e = step_done(a, st, what);
	sqlite3_finalize(st);
	if (e != PL_OK)
		return e;
	id = sqlite3_last_insert_rowid(a->db);
	if (id_out)
		*id_out = id;
	e = write_record(a, id, buf, s->size, partial_id);
	if (e == PL_OK && r)
		e = insert_events(a, id, r);
	if (e == PL_OK && t.count > 0)
		e = set_sample_progress(a, id, 0, what);
	return e;
}

/* The archived digest of (serial, uuid); *found false if not archived. */
static int find_session(struct archive *a, const char *serial,
                        const uint8_t uuid[16], bool *found,
                        uint8_t sha256[32])
{
	static const char what[] = "look up an archived session";
	sqlite3_stmt *st;
	int rc, e;

	*found = false;
	e = prepare(a, &st,
	            "SELECT sha256 FROM sessions WHERE serial = ?1 AND uuid = ?2",
	            what);
	if (e != PL_OK)
		return e;
	e = bind(a, st, what, "tb", serial, uuid, (size_t)16);
	if (e == PL_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*found = true;
			if (sha256)
				copy_blob(sha256, 32, st, 0);
		} else if (rc != SQLITE_DONE) {
			e = db_fail(a, rc, "%s", what);
		}
	}
	sqlite3_finalize(st);
	return e;
}

int archive_commit_session(struct archive *a, const char *serial,
                           const struct pl_session_info *s)
{
	struct partial p;
	struct pl_record *rec = NULL;
	uint8_t *buf = NULL, digest[32], have[32];
	char uuid[37], what[160], reason[160], hex1[65], hex2[65];
	char *decode_error = NULL;
	int64_t id = 0;
	bool found;
	int e;

	e = check_info(a, serial, s, "archive_commit_session", uuid);
	if (e != PL_OK)
		return e;
	snprintf(what, sizeof what, "archive session %s of %s", uuid, serial);

	e = begin(a, true, what);
	if (e != PL_OK)
		return e;
	e = find_session(a, serial, s->uuid, &found, have);
	if (e == PL_OK)
		e = find_partial(a, serial, s->uuid, &p);
	if (e != PL_OK)
		goto fail;

	if (found) {
		/* Stale data downloaded again after the commit can never be
		 * used: it goes either way. */
		if (p.found)
			e = delete_partial(a, p.id);
		e = end_tx(a, e, what);
		if (e != PL_OK)
			return e;
		if (memcmp(have, s->sha256, 32) != 0) {
			pl_hex_format(have, 32, hex1);
			pl_hex_format(s->sha256, 32, hex2);
			return fail(a, PL_ERR_CONFLICT,
			            "session %s of %s is already archived with another "
			            "digest (archived %s, the pen says %s)",
			            uuid, serial, hex1, hex2);
		}
		return PL_OK;
	}
	if (!p.found && s->size > 0) {
		e = fail(a, PL_ERR_NOT_FOUND,
		         "session %s of %s: nothing was downloaded to archive", uuid,
		         serial);
		goto fail;
	}
	reason[0] = '\0';
	if (p.found && p.received != s->size)
		snprintf(reason, sizeof reason,
		         "%" PRIu64 " bytes are stored, the record has %" PRIu64,
		         p.received, s->size);
	else
		/* A 0-byte record has nothing to download, so no partial row
		 * (archive_partial_append stores nothing for 0 bytes).  It is
		 * archived like any other, or the pen could never reclaim it. */
		e = digest_chunks(a, p.found ? p.id : 0, s->size, &buf, digest, reason,
		                  sizeof reason);
	if (e != PL_OK)
		goto fail;
	if (!reason[0] && memcmp(digest, s->sha256, 32) != 0) {
		pl_hex_format(digest, 32, hex1);
		pl_hex_format(s->sha256, 32, hex2);
		snprintf(reason, sizeof reason, "SHA-256 %.16s... instead of %.16s...",
		         hex1, hex2);
	}
	if (reason[0]) {
		/* Discarding is the whole point of this transaction now; the
		 * digest failure is reported even if discarding fails. */
		char derr[sizeof a->err] = "";
		free(buf);
		e = p.found ? delete_partial(a, p.id) : PL_OK;
		e = end_tx(a, e, "discard a damaged download");
		if (e != PL_OK)
			snprintf(derr, sizeof derr, " (and it could not be discarded: %.900s)",
			         a->err);
		return fail(a, PL_ERR_DIGEST,
		            "session %s of %s: the downloaded data does not match its "
		            "digest (%s); it was discarded and will be downloaded "
		            "again%.600s",
		            uuid, serial, reason, derr);
	}

	if (!buf) {
		/* Over the decode budget: kept raw, streamed into its row. */
		char msg[200];
		snprintf(msg, sizeof msg, "not decoded: %" PRIu64 " bytes is over the "
		         "decode budget of %u bytes (PEN_DECODE_MAX); archived byte "
		         "for byte", s->size, (unsigned)PEN_DECODE_MAX);
		decode_error = strdup(msg);
		if (!decode_error) {
			e = fail(a, PL_ERR_MEM, "out of memory archiving %s", uuid);
			goto fail;
		}
	} else if (pl_record_parse(buf, (size_t)s->size, &rec) != PL_OK) {
		/* Still archived: the pen's bytes are the truth, and a newer
		 * format may be readable by a newer penlink. */
		decode_error = strdup(pl_error_message());
		if (!decode_error) {
			e = fail(a, PL_ERR_MEM, "out of memory archiving %s", uuid);
			goto fail;
		}
	} else {
		uint8_t ru[16];
		pl_record_uuid(rec, ru);
		if (memcmp(ru, s->uuid, 16) != 0 ||
		    strcmp(pl_record_serial(rec), serial) != 0)
			log_warn("session %s of %s: the record itself names pen %s "
			         "and another uuid or serial; archived as the pen "
			         "listed it",
			         uuid, serial, pl_record_serial(rec));
	}
	e = insert_session(a, serial, s, buf, p.found ? p.id : 0, rec, decode_error,
	                   &id);
	free(buf);
	buf = NULL;
	if (e == PL_OK && p.found)
		e = delete_partial(a, p.id);
	if (e != PL_OK)
		goto fail;
	/* PL_OK only when this COMMIT succeeded: the pen may reclaim then. */
	e = commit(a, what);
	if (e == PL_OK && decode_error)
		log_warn("session %s of %s is archived but does not decode: %s", uuid,
		         serial, decode_error);
	if (e == PL_OK && rec && !a->dec_rec) {
		/* The decoder's next session is usually this one: spare it
		 * reading and parsing the record again. */
		struct pl_telemetry t;
		pl_record_telemetry(rec, &t);
		if (t.count > 0) {
			a->dec_id = id;
			a->dec_rec = rec;
			rec = NULL;
		}
	}
	pl_record_free(rec);
	free(decode_error);
	return e;

fail:
	rollback(a);
	free(buf);
	pl_record_free(rec);
	free(decode_error);
	return e;
}

/* A database error leaves false and the message in archive_errmsg(). */
bool archive_has_session(struct archive *a, const char *serial,
                         const uint8_t uuid[16], uint8_t sha256_out[32])
{
	bool found = false;

	if (!a || !uuid || check_serial(a, serial, "archive_has_session") != PL_OK)
		return false;
	if (find_session(a, serial, uuid, &found, sha256_out) != PL_OK)
		return false;
	return found;
}

/* ------------------------------------------------------------------ decoding */

static void decode_forget(struct archive *a)
{
	pl_record_free(a->dec_rec);
	a->dec_rec = NULL;
	a->dec_id = 0;
}

static int decode_next_row(sqlite3_stmt *st, void *ctx)
{
	int64_t *v = ctx;

	v[0] = sqlite3_column_int64(st, 0);
	v[1] = sqlite3_column_int64(st, 1);
	return 1;
}

/* The oldest session with sample rows to insert: *id 0 if none. */
static int decode_next(struct archive *a, int64_t *id, int64_t *next)
{
	int64_t v[2] = {0, 0};
	int e = each_row(a, "look for sessions to decode", "looking for sessions to decode",
	                 decode_next_row, v,
	                 "SELECT session_id, next FROM sample_progress "
	                 "ORDER BY session_id LIMIT 1",
	                 "");

	*id = v[0];
	*next = v[1];
	return e;
}

/* Reads and parses session id's record into the cache.  A record that no
 * longer parses (it did at commit, so only a damaged file does that) gives
 * PL_OK with no cached record: the caller gives up on its rows. */
static int decode_load(struct archive *a, int64_t id)
{
	static const char what[] = "read a session record to decode";
	sqlite3_blob *blob;
	uint8_t *buf;
	int n, rc;

	decode_forget(a);
	rc = sqlite3_blob_open(a->db, "main", "sessions", "record", id, 0, &blob);
	if (rc != SQLITE_OK)
		return db_fail(a, rc, "%s", what);
	n = sqlite3_blob_bytes(blob);
	if ((uint64_t)n > PEN_DECODE_MAX) {
		/* Only an archive from before the decode budget has sample rows
		 * pending for such a record: they stay undecoded. */
		sqlite3_blob_close(blob);
		log_warn("archive %s: session %" PRId64 " (%d bytes) is over the decode "
		         "budget of %u bytes; its telemetry sample rows are not filled in",
		         a->path, id, n, (unsigned)PEN_DECODE_MAX);
		return PL_OK;
	}
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (!buf) {
		sqlite3_blob_close(blob);
		return fail(a, PL_ERR_MEM, "out of memory reading a record of %d bytes",
		            n);
	}
	for (int off = 0; off < n && rc == SQLITE_OK;) {
		int k = n - off > BLOB_PIECE ? BLOB_PIECE : n - off;
		rc = sqlite3_blob_read(blob, buf + off, k, off);
		off += k;
	}
	sqlite3_blob_close(blob);
	if (rc != SQLITE_OK) {
		free(buf);
		return db_fail(a, rc, "%s", what);
	}
	if (pl_record_parse(buf, (size_t)n, &a->dec_rec) != PL_OK) {
		log_err("archive %s: session %" PRId64 " no longer decodes (%s); its "
		        "telemetry sample rows stay incomplete",
		        a->path, id, pl_error_message());
		a->dec_rec = NULL;
	} else {
		a->dec_id = id;
	}
	free(buf);
	return PL_OK;
}

static int decode_any_pending(struct archive *a, bool *more)
{
	int64_t id, next;
	int e = decode_next(a, &id, &next);

	*more = e == PL_OK && id != 0;
	return e;
}

int archive_decode_step(struct archive *a, size_t max_rows, bool *more)
{
	static const char what[] = "store telemetry sample rows";
	struct pl_telemetry t = {0};
	sqlite3_stmt *st = NULL;
	int64_t id, next, end;
	int rc = SQLITE_OK, e;

	if (!a)
		return PL_ERR_ARG;
	if (!more)
		return fail(a, PL_ERR_ARG, "archive_decode_step: more is NULL");
	*more = false;
	if (!a->db)
		return fail(a, PL_ERR_ARG, "archive_decode_step: the archive is not open");
	if (max_rows == 0)
		return decode_any_pending(a, more);

	e = begin(a, false, what);
	if (e != PL_OK)
		return e;
	/* Looked up inside the transaction, so nothing changes under us. */
	e = decode_next(a, &id, &next);
	if (e != PL_OK || id == 0)
		goto out;
	if (a->dec_id != id) {
		e = decode_load(a, id);
		if (e != PL_OK)
			goto out;
	}
	if (a->dec_rec)
		pl_record_telemetry(a->dec_rec, &t);
	if (next < 0 || (uint64_t)next > t.count) {
		/* Damaged record or column: nothing sensible to insert. */
		if (a->dec_rec)
			log_err("archive %s: session %" PRId64 " says sample %" PRId64
			        " is next of %zu; its sample rows stay as they are",
			        a->path, id, next, t.count);
		next = (int64_t)t.count;
	}
	end = (uint64_t)(t.count - (size_t)next) > max_rows
	          ? next + (int64_t)max_rows
	          : (int64_t)t.count;

	if (end > next) {
		e = prepare(a, &st, "INSERT INTO sample_data VALUES (?1, ?2, ?3, ?4)",
		            what);
		if (e != PL_OK)
			goto out;
		/* The hot loop: bind directly, no varargs per value.  Keys
		 * ascend, so SQLite appends without searching the b-tree. */
		for (int64_t i = next; i < end && rc == SQLITE_OK; i++) {
			sqlite3_bind_int64(st, 1, (int64_t)(((uint64_t)id << 32) | (uint64_t)i));
			sqlite3_bind_int64(st, 2, t.depth_um[i]);
			sqlite3_bind_int64(st, 3, t.current_ma[i]);
			sqlite3_bind_int64(st, 4, t.battery_mv[i]);
			rc = sqlite3_step(st);
			if (rc == SQLITE_DONE)
				rc = sqlite3_reset(st);
		}
		sqlite3_finalize(st);
		st = NULL;
		if (rc != SQLITE_OK) {
			e = db_fail(a, rc, "%s", what);
			goto out;
		}
	}
	e = set_sample_progress(a, id, end < (int64_t)t.count ? end : -1, what);
	if (e != PL_OK)
		goto out;
	/* NORMAL is enough: the rows and their progress mark are lost or kept
	 * together, and the record they come from is already durable. */
	e = commit(a, what);
	if (e != PL_OK)
		return e;   /* the stored mark did not move: redone next time */
	if (end >= (int64_t)t.count) {
		decode_forget(a);
		return decode_any_pending(a, more);
	}
	*more = true;
	return PL_OK;
out:
	rollback(a);
	return e;
}

/* ------------------------------------------------------------------ queries */

#define SESSION_COLUMNS \
	"id, serial, uuid, seq, size, sha256, start_ms, end_ms, rtc_time, " \
	"archived_ms, decode_error"

/* A row with numbers outside the model's ranges (altered by hand) is an
 * error naming it, not a value wrapped into range. */
static int session_from_row(struct archive *a, sqlite3_stmt *st,
                            struct archived_session *s)
{
	memset(s, 0, sizeof *s);
	copy_str(s->serial, sizeof s->serial, sqlite3_column_text(st, 1));
	copy_blob(s->uuid, 16, st, 2);
	if (plc_session_summary_numbers(&s->summary, sqlite3_column_int64(st, 3),
	                                sqlite3_column_int64(st, 4)) != PL_OK) {
		struct pl_session_key key;
		char name[160];
		snprintf(key.serial, sizeof key.serial, "%s", s->serial);
		memcpy(key.uuid, s->uuid, 16);
		pl_session_key_format(&key, PL_TEXT_LOG, name, sizeof name);
		return fail(a, PL_ERR_PROTOCOL, "session %s (row %" PRId64 ") in %s: "
		            "%s", name, (int64_t)sqlite3_column_int64(st, 0), a->path,
		            pl_error_message());
	}
	copy_blob(s->summary.sha256, 32, st, 5);
	s->summary.start_ms = sqlite3_column_int64(st, 6);
	s->summary.end_ms = sqlite3_column_int64(st, 7);
	s->summary.rtc_time = sqlite3_column_int(st, 8) != 0;
	s->summary.archived_ms = sqlite3_column_int64(st, 9);
	return PL_OK;
}

static int session_row(sqlite3_stmt *st, void *ctx)
{
	const struct row_cb *r = ctx;
	struct archived_session s;
	int e = session_from_row(r->a, st, &s);
	return e != PL_OK ? e : r->cb.session(r->ud, &s);
}

/* A session's client reference: the latest annotation that gives one. */
#define CURRENT_CLIENT                                                      \
	"(SELECT client_ref FROM annotations WHERE session_id = sessions.id " \
	"AND client_ref <> '' ORDER BY id DESC LIMIT 1)"

/* cb's non-zero return stops the listing; a negative one (a pl_return
 * code) is returned, a positive one gives PL_OK. */
int archive_list_client(struct archive *a, const char *serial,
                        int64_t since_ms, const char *client_ref,
                        int (*cb)(void *ud, const struct archived_session *s),
                        void *ud)
{
	bool all = !serial || !*serial;
	struct row_cb r = {.a = a, .cb.session = cb, .ud = ud};

	if (!a)
		return PL_ERR_ARG;
	if (!cb)
		return fail(a, PL_ERR_ARG, "archive_list: no callback");
	if (client_ref && *client_ref)
		return each_row(a, "list sessions", "listing sessions", session_row,
		                &r,
		                "SELECT " SESSION_COLUMNS " FROM sessions "
		                "WHERE start_ms >= ?1 AND (?2 = '' OR serial = ?2) "
		                "AND " CURRENT_CLIENT " = ?3 ORDER BY start_ms, id",
		                "itt", since_ms, all ? "" : serial, client_ref);
	return each_row(a, "list sessions", "listing sessions", session_row, &r,
	                all ? "SELECT " SESSION_COLUMNS " FROM sessions "
	                      "WHERE start_ms >= ?1 ORDER BY start_ms, id"
	                    : "SELECT " SESSION_COLUMNS " FROM sessions "
	                      "WHERE start_ms >= ?1 AND serial = ?2 "
	                      "ORDER BY start_ms, id",
	                all ? "i" : "it", since_ms, serial);
}

int archive_list(struct archive *a, const char *serial, int64_t since_ms,
                 int (*cb)(void *ud, const struct archived_session *s),
                 void *ud)
{
	return archive_list_client(a, serial, since_ms, NULL, cb, ud);
}

/* The archive's id of a session, or PL_ERR_NOT_FOUND.  Two pens may record
 * sessions with equal UUIDs: the serial is half of the name. */
static int session_id_of(struct archive *a, const struct pl_session_key *key,
                         const char *what, int64_t *id)
{
	sqlite3_stmt *st;
	char text[160];
	int e = prepare(a, &st,
	                "SELECT id FROM sessions WHERE serial = ?1 AND uuid = ?2",
	                what);
	if (e != PL_OK)
		return e;
	e = bind(a, st, what, "tb", key->serial, key->uuid, (size_t)16);
	if (e == PL_OK) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*id = sqlite3_column_int64(st, 0);
		} else if (rc == SQLITE_DONE) {
			pl_session_key_format(key, PL_TEXT_LOG, text, sizeof text);
			e = fail(a, PL_ERR_NOT_FOUND, "no session %s in the archive", text);
		} else {
			e = db_fail(a, rc, "%s", what);
		}
	}
	sqlite3_finalize(st);
	return e;
}

int archive_read_record(struct archive *a, const struct pl_session_key *key,
                        uint64_t offset, uint8_t *buf, size_t len,
                        size_t *got, uint64_t *size)
{
	static const char what[] = "read a session record";
	sqlite3_blob *blob = NULL;
	int64_t id = 0;
	uint64_t bytes;
	size_t n;
	int rc, e;

	if (!a)
		return PL_ERR_ARG;
	if (!key || !got || !size || (!buf && len > 0))
		return fail(a, PL_ERR_ARG, "archive_read_record: missing argument");
	*got = 0;
	*size = 0;
	e = session_id_of(a, key, what, &id);
	if (e != PL_OK)
		return e;
	/* Only the requested range is read, however large the record. */
	rc = sqlite3_blob_open(a->db, "main", "sessions", "record", id, 0, &blob);
	if (rc != SQLITE_OK)
		return db_fail(a, rc, "%s", what);
	bytes = (uint64_t)sqlite3_blob_bytes(blob);
	*size = bytes;
	if (offset < bytes && len > 0) {
		n = bytes - offset < len ? (size_t)(bytes - offset) : len;
		if (n > INT_MAX)
			n = INT_MAX;
		rc = sqlite3_blob_read(blob, buf, (int)n, (int)offset);
		if (rc != SQLITE_OK)
			e = db_fail(a, rc, "%s", what);
		else
			*got = n;
	}
	sqlite3_blob_close(blob);
	return e;
}

/* ------------------------------------------------------------------ pens */

int archive_pen_seen(struct archive *a, const char *serial, const char *model,
                     const char *hw_revision, const char *fw_version)
{
	static const char what[] = "remember a pen";
	if (!a)
		return PL_ERR_ARG;
	int e = check_serial(a, serial, "archive_pen_seen");
	if (e != PL_OK)
		return e;
	return run(a, what,
	           "INSERT INTO pens (serial, model, hw_revision, fw_version, seen_ms) "
	           "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (serial) DO UPDATE SET "
	           "model = excluded.model, hw_revision = excluded.hw_revision, "
	           "fw_version = excluded.fw_version, seen_ms = excluded.seen_ms",
	           "tttti", serial, model ? model : "", hw_revision ? hw_revision : "",
	           fw_version ? fw_version : "", pl_time_utc_ms());
}

/* The pen's model and hardware revision as last seen ("" if never). */
static int pen_of(struct archive *a, const char *serial, char *model,
                  size_t model_cap, char *hw, size_t hw_cap)
{
	static const char what[] = "look up a pen";
	sqlite3_stmt *st;
	int e = prepare(a, &st, "SELECT model, hw_revision FROM pens WHERE serial = ?1",
	                what);
	if (e != PL_OK)
		return e;
	e = bind(a, st, what, "t", serial);
	if (e == PL_OK) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			copy_str(model, model_cap, sqlite3_column_text(st, 0));
			copy_str(hw, hw_cap, sqlite3_column_text(st, 1));
		} else if (rc != SQLITE_DONE) {
			e = db_fail(a, rc, "%s", what);
		}
	}
	sqlite3_finalize(st);
	return e;
}

/* ------------------------------------------------------------------ export */

static int annotations_by_id(struct archive *a, int64_t sid,
                             int (*cb)(void *ud, const struct annotation *an),
                             void *ud);

/* A session's annotations into the export's accumulator
 * (control/penlink_export.h decides how a row shows them). */
static int annot_collect(void *ud, const struct annotation *an)
{
	struct plc_export_annots *acc = ud;
	plc_export_annots_add(acc, an->utc_ms, an->user, an->client_ref,
	                      an->operator_name, an->note);
	return acc->oom ? PL_ERR_MEM : 0;
}

int archive_export_begin(struct archive *a, enum export_format f,
                         const char *serial, int64_t since_ms, bool per_session,
                         struct export_cursor **out)
{
	struct export_cursor *c;
	sqlite3_stmt *st;
	int rc, e;

	if (!a)
		return PL_ERR_ARG;
	if (!out)
		return fail(a, PL_ERR_ARG, "archive_export_begin: out is NULL");
	*out = NULL;
	if (f != EXPORT_CSV && f != EXPORT_JSON)
		return fail(a, PL_ERR_ARG, "unknown export format %d", (int)f);
	if (serial && *serial && (e = check_serial(a, serial, "export")) != PL_OK)
		return e;
	c = calloc(1, sizeof *c);
	if (!c)
		return fail(a, PL_ERR_MEM, "out of memory starting an export");
	c->a = a;
	c->fmt = f;
	c->per_session = per_session;
	snprintf(c->serial, sizeof c->serial, "%s", serial ? serial : "");
	c->since_ms = since_ms;
	c->last_start = INT64_MIN;
	c->last_id = INT64_MIN;
	e = prepare(a, &st, "SELECT COALESCE(MAX(id), 0) FROM sessions",
	            "start an export");
	if (e == PL_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			c->max_id = sqlite3_column_int64(st, 0);
		else
			e = db_fail(a, rc, "start an export");
		sqlite3_finalize(st);
	}
	if (e != PL_OK) {
		free(c);
		return e;
	}
	*out = c;
	return PL_OK;
}

/*
 * The next session after the cursor's position, its row or object after
 * `before` in b, and who it is in *who.  Each call is its own query (keyset
 * paging): no statement stays open between calls, so an export that a slow
 * client drains over minutes holds no read transaction that would stop WAL
 * checkpoints.
 */
static int export_row(struct export_cursor *c, const char *before,
                      struct plc_buf *b, bool *end, struct archived_session *who)
{
	static const char what[] = "export sessions";
	struct archive *a = c->a;
	bool all = !c->serial[0];
	struct archived_session s;
	struct pl_record *r = NULL;
	json_object *j = NULL;
	char *text = NULL, *why = NULL;
	struct plc_export_annots an;
	plc_export_annots_init(&an, c->fmt == EXPORT_JSON);
	sqlite3_stmt *st;
	int rc, e;

	*end = false;
	e = prepare(a, &st,
	            /* The record only when it decoded at commit: one that did
	             * not may be over the decode budget, and is not read. */
	            all ? "SELECT " SESSION_COLUMNS ", CASE WHEN decode_error IS "
	                  "NULL THEN record END FROM sessions "
	                  "WHERE start_ms >= ?1 AND id <= ?2 "
	                  "AND (start_ms, id) > (?3, ?4) "
	                  "ORDER BY start_ms, id LIMIT 1"
	                : "SELECT " SESSION_COLUMNS ", CASE WHEN decode_error IS "
	                  "NULL THEN record END FROM sessions "
	                  "WHERE start_ms >= ?1 AND id <= ?2 "
	                  "AND (start_ms, id) > (?3, ?4) AND serial = ?5 "
	                  "ORDER BY start_ms, id LIMIT 1",
	            what);
	if (e != PL_OK)
		return e;
	e = all ? bind(a, st, what, "iiii", c->since_ms, c->max_id, c->last_start,
	               c->last_id)
	        : bind(a, st, what, "iiiit", c->since_ms, c->max_id, c->last_start,
	               c->last_id, c->serial);
	if (e != PL_OK)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		*end = true;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		e = db_fail(a, rc, "%s", what);
		goto out;
	}
	e = session_from_row(a, st, &s);
	if (e != PL_OK)
		goto out;
	c->last_start = s.summary.start_ms;
	c->last_id = sqlite3_column_int64(st, 0);
	if (sqlite3_column_type(st, 10) != SQLITE_NULL) {
		why = strdup((const char *)sqlite3_column_text(st, 10));
	} else {
		/* Parsed straight from SQLite's copy of the blob. */
		const void *rec = sqlite3_column_blob(st, 11);
		size_t n = (size_t)sqlite3_column_bytes(st, 11);
		if (pl_record_parse(rec, n, &r) == PL_OK) {
			text = pl_record_to_json(r, false);
			if (!text) {
				e = fail(a, PL_ERR_MEM, "out of memory exporting a session");
				goto out;
			}
			j = json_tokener_parse(text);
			if (!j) {
				e = fail(a, PL_ERR_MEM, "out of memory exporting a session");
				goto out;
			}
		} else {
			why = strdup(pl_error_message());
		}
	}
	/* SQLite's copy of the record is freed here, before formatting. */
	sqlite3_finalize(st);
	st = NULL;
	e = annotations_by_id(a, c->last_id, annot_collect, &an);
	if (e == PL_OK && (an.oom || an.notes.oom))
		e = fail(a, PL_ERR_MEM, "out of memory exporting a session");
	if (e != PL_OK)
		goto out;
	*who = s;
	char model[64] = "", hw[64] = "";
	e = pen_of(a, s.serial, model, sizeof model, hw, sizeof hw);
	if (e != PL_OK)
		goto out;
	struct plc_export_session row = {
	    .serial = s.serial, .summary = s.summary, .model = model,
	    .hw_revision = hw, .decode_error = why,
	};
	memcpy(row.uuid, s.uuid, sizeof row.uuid);
	plc_export_annots_fill(&an, &row); /* out of memory was checked above */
	plc_buf_str(b, before);
	if (c->fmt == EXPORT_CSV) {
		plc_export_csv_row(b, &row, j);
	} else {
		e = plc_export_json_row(b, &row, j);
		j = NULL; /* taken over */
		if (e != PL_OK) {
			e = fail(a, PL_ERR_MEM, "out of memory exporting a session");
			goto out;
		}
	}
	c->rows++;
out:
	sqlite3_finalize(st);
	json_object_put(j);
	plc_export_annots_free(&an);
	free(text);
	free(why);
	pl_record_free(r);
	return e;
}

int archive_export_next(struct export_cursor *c, char **data, size_t *len,
                        struct archived_session *who)
{
	struct plc_buf b = {0};
	struct archived_session unused;
	const char *before;
	bool end = false, csv;
	int e = PL_OK;

	if (!c || !data || !len)
		return c ? fail(c->a, PL_ERR_ARG, "archive_export_next: missing argument")
		         : PL_ERR_ARG;
	*data = NULL;
	*len = 0;
	csv = c->fmt == EXPORT_CSV;
	/* Per session, each piece stands alone: the header with its one row,
	 * or the one object exactly as the array form has it. */
	before = c->per_session ? (csv ? plc_export_csv_header : "")
	         : csv ? "" : c->rows ? ",\n" : "\n";
	switch (c->state) {
	case EXP_HEAD:
		c->state = EXP_ROWS;
		if (!c->per_session) {
			plc_buf_str(&b, csv ? plc_export_csv_header : "[");
			break;
		}
		/* A per-session export has no head of its own. */
		/* fall through */
	case EXP_ROWS:
		e = export_row(c, before, &b, &end, who ? who : &unused);
		if (e == PL_OK && end) {
			c->state = EXP_DONE;
			if (!c->per_session && !csv)
				plc_buf_str(&b, "\n]\n");
		}
		break;
	case EXP_DONE:
		break;
	}
	if (e == PL_OK && b.oom)
		e = fail(c->a, PL_ERR_MEM, "out of memory exporting sessions");
	if (e != PL_OK) {
		plc_buf_free(&b);
		return e;
	}
	*data = b.p;
	*len = b.len;
	return PL_OK;
}

void archive_export_end(struct export_cursor *c)
{
	free(c);
}

/* ------------------------------------------------------------------ audit */

/*
 * An old or new value as the trail stores it: a JSON object, compact (one
 * line), or "" for none.  A JSON object text is re-written compact (a preset
 * set arrives pretty-printed); any other text is kept as {"value": text}.
 * NULL only when out of memory.
 */
static char *audit_value(const char *v)
{
	if (!v || !*v)
		return strdup("");
	size_t len = strlen(v);
	json_tokener *tok = json_tokener_new();
	json_object *o = tok ? json_tokener_parse_ex(tok, v, (int)len) : NULL;
	bool whole = false;
	if (o && json_tokener_get_error(tok) == json_tokener_success) {
		size_t end = json_tokener_get_parse_end(tok);
		while (end < len && strchr(" \t\r\n", v[end]))
			end++;
		whole = end == len;
	}
	json_tokener_free(tok);
	if (!o || !whole || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = json_object_new_object();
		if (!o || json_object_object_add(o, "value", json_object_new_string(v))) {
			json_object_put(o);
			return NULL;
		}
	}
	const char *text = json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	char *out = text ? strdup(text) : NULL;
	json_object_put(o);
	return out;
}

/* The id and hash of the trail's last row (0 and the genesis when empty). */
static int audit_tail(struct archive *a, int64_t *id,
                      char hash[PLC_AUDIT_HASH_TEXT])
{
	static const char what[] = "read the end of the audit trail";
	sqlite3_stmt *st;
	int e = prepare(a, &st, "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1",
	                what);
	if (e != PL_OK)
		return e;
	*id = 0;
	snprintf(hash, PLC_AUDIT_HASH_TEXT, "%s", PLC_AUDIT_GENESIS);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		const unsigned char *h = sqlite3_column_text(st, 1);
		/* A row without a hash breaks the chain there, which
		 * verification reports; later rows chain on from the genesis. */
		if (h && strlen((const char *)h) == 64)
			snprintf(hash, PLC_AUDIT_HASH_TEXT, "%s", (const char *)h);
	} else if (rc != SQLITE_DONE) {
		e = db_fail(a, rc, "%s", what);
	}
	sqlite3_finalize(st);
	return e;
}

/* Appends one row to the chain; inside a transaction. */
static int audit_insert(struct archive *a, const struct plc_audit_row *r)
{
	static const char what[] = "add to the audit trail";
	int64_t last = 0;
	char prev[PLC_AUDIT_HASH_TEXT], hash[PLC_AUDIT_HASH_TEXT];
	int e = audit_tail(a, &last, prev);
	if (e != PL_OK)
		return e;
	struct plc_audit_row row = *r;
	row.id = last + 1;
	if (plc_audit_hash(prev, &row, hash) != PL_OK)
		return fail(a, PL_ERR_MEM, "out of memory adding to the audit trail");
	return run(a, what,
	           "INSERT INTO audit (id, utc_ms, uid, user, pen, action, "
	           "old_value, new_value, result, prev_hash, hash) "
	           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	           "iiitttttttt", row.id, row.utc_ms, row.uid, row.user, row.pen,
	           row.action, row.old_value, row.new_value, row.result, prev,
	           hash);
}

/* Schema 3: chains the rows written before the chain existed, in id order,
 * and records that it did.  Runs inside the migration's transaction. */
static int chain_audit_rows(struct archive *a)
{
	static const char what[] = "chain the audit trail";
	sqlite3_stmt *sel = NULL, *upd = NULL;
	char prev[PLC_AUDIT_HASH_TEXT] = PLC_AUDIT_GENESIS,
	     hash[PLC_AUDIT_HASH_TEXT];
	int64_t id = 0, rows = 0;
	int e = exec(a, "DROP TRIGGER audit_no_update", what);
	if (e == PL_OK)
		e = prepare(a, &sel,
		            "SELECT id, utc_ms, uid, user, pen, action, old_value, "
		            "new_value, result FROM audit WHERE id > ?1 "
		            "ORDER BY id LIMIT 1",
		            what);
	if (e == PL_OK)
		e = prepare(a, &upd,
		            "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE id = ?3",
		            what);
	while (e == PL_OK) {
		sqlite3_reset(sel);
		e = bind(a, sel, what, "i", id);
		if (e != PL_OK)
			break;
		int rc = sqlite3_step(sel);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			e = db_fail(a, rc, "%s", what);
			break;
		}
		struct plc_audit_row r;
		plc_audit_row_read(sel, &r);
		id = r.id;
		if (plc_audit_hash(prev, &r, hash) != PL_OK) {
			e = fail(a, PL_ERR_MEM, "out of memory chaining the audit trail");
			break;
		}
		e = bind(a, upd, what, "tti", prev, hash, id);
		if (e == PL_OK)
			e = step_done(a, upd, what);
		memcpy(prev, hash, sizeof prev);
		rows++;
	}
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	if (e == PL_OK)
		e = exec(a,
		         "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN\n"
		         "  SELECT RAISE(ABORT, 'the audit trail is append-only');\n"
		         "END;",
		         what);
	if (e == PL_OK && rows > 0) {
		char nv[96];
		snprintf(nv, sizeof nv, "{\"schema\":3,\"rows_chained\":%" PRId64 "}",
		         rows);
		struct plc_audit_row r = {
		    .utc_ms = pl_time_utc_ms(), .uid = (int64_t)getuid(),
		    .user = "penlinkd", .pen = "", .action = "audit.chain",
		    .old_value = "", .new_value = nv, .result = "ok",
		};
		e = audit_insert(a, &r);
	}
	return e;
}

/* e->utc_ms 0 stamps the entry now; NULL strings are stored as "". */
int archive_audit_add(struct archive *a, const struct audit_entry *e)
{
	static const char what[] = "add to the audit trail";
	char uid_text[16];
	int err;

	if (!a)
		return PL_ERR_ARG;
	if (!e || !e->action || !*e->action)
		return fail(a, PL_ERR_ARG, "archive_audit_add: no action");
	snprintf(uid_text, sizeof uid_text, "%" PRIu32, e->uid);
	char *oldv = audit_value(e->old_value), *newv = audit_value(e->new_value);
	if (!oldv || !newv) {
		free(oldv);
		free(newv);
		return fail(a, PL_ERR_MEM, "out of memory adding to the audit trail");
	}
	struct plc_audit_row r = {
	    .utc_ms = e->utc_ms ? e->utc_ms : pl_time_utc_ms(),
	    .uid = (int64_t)e->uid,
	    .user = e->user && *e->user ? e->user : uid_text,
	    .pen = e->pen ? e->pen : "",
	    .action = e->action,
	    .old_value = oldv,
	    .new_value = newv,
	    .result = e->result ? e->result : "",
	};
	/* FULL: a refused or applied change is on disk once reported.  The
	 * tail is read and the row written in one write transaction, so two
	 * writers (the daemon and an administrator's shell) cannot both chain
	 * onto the same row. */
	err = begin(a, true, what);
	if (err == PL_OK)
		err = audit_insert(a, &r);
	free(oldv);
	free(newv);
	return end_tx(a, err, what);
}

static int audit_row(sqlite3_stmt *st, void *ctx)
{
	const struct row_cb *r = ctx;
	struct plc_audit_row row;
	plc_audit_row_read(st, &row);
	struct audit_entry en = {
	    .utc_ms = row.utc_ms, .uid = (uint32_t)row.uid, .user = row.user,
	    .pen = row.pen, .action = row.action, .old_value = row.old_value,
	    .new_value = row.new_value, .result = row.result, .id = row.id,
	    .hash = col_text(st, 9),
	};
	return r->cb.audit(r->ud, &en);
}

/* cb's return as in archive_list(). */
int archive_audit_list(struct archive *a, int64_t since_ms, unsigned limit,
                       int (*cb)(void *ud, const struct audit_entry *e),
                       void *ud)
{
	struct row_cb r = {.a = a, .cb.audit = cb, .ud = ud};

	if (!a)
		return PL_ERR_ARG;
	if (!cb)
		return fail(a, PL_ERR_ARG, "archive_audit_list: no callback");
	return each_row(a, "read the audit trail", "reading the audit trail",
	                audit_row, &r,
	                "SELECT id, utc_ms, uid, user, pen, action, old_value, "
	                "new_value, result, hash FROM audit WHERE utc_ms >= ?1 "
	                "ORDER BY utc_ms DESC, id DESC LIMIT ?2",
	                "ii", since_ms, (int64_t)(limit ? limit : 100));
}

static int verify_row(sqlite3_stmt *st, void *ctx)
{
	return plc_audit_chain_step_row(ctx, st) ? 0 : 1;
}

int archive_audit_verify(struct archive *a, const char *anchor,
                         struct plc_audit_chain *out)
{
	if (!a)
		return PL_ERR_ARG;
	if (!out)
		return fail(a, PL_ERR_ARG, "archive_audit_verify: out is NULL");
	plc_audit_chain_init(out, anchor);
	int e = each_row(a, "verify the audit trail", "verifying the audit trail",
	                 verify_row, out, PLC_AUDIT_VERIFY_SQL, "");
	if (e == PL_OK)
		plc_audit_chain_end(out);
	return e;
}

/* ------------------------------------------------------------------ annotations */

static int check_annotation(struct archive *a, const struct annotation *an)
{
	static const struct {
		const char *name;
		size_t max;
	} lim[3] = {{"client reference", PLC_ANNOT_CLIENT_MAX},
	            {"operator", PLC_ANNOT_OPERATOR_MAX},
	            {"note", PLC_ANNOT_NOTE_MAX}};
	const char *v[3] = {an->client_ref, an->operator_name, an->note};
	bool any = false;
	for (int i = 0; i < 3; i++) {
		size_t n = v[i] ? strlen(v[i]) : 0;
		if (n > lim[i].max)
			return fail(a, PL_ERR_VALIDATION,
			            "the %s is %zu bytes long; at most %zu are kept",
			            lim[i].name, n, lim[i].max);
		any |= n > 0;
	}
	if (!any)
		return fail(a, PL_ERR_ARG,
		            "an annotation needs a client reference, an operator or "
		            "a note");
	return PL_OK;
}

int archive_annotate(struct archive *a, const struct pl_session_key *key,
                     const struct annotation *an, int64_t *id_out)
{
	static const char what[] = "annotate a session";
	int64_t sid = 0;
	if (!a)
		return PL_ERR_ARG;
	if (!key || !an)
		return fail(a, PL_ERR_ARG, "archive_annotate: missing argument");
	int e = check_annotation(a, an);
	if (e != PL_OK)
		return e;
	e = begin(a, true, what);
	if (e == PL_OK)
		e = session_id_of(a, key, "find a session", &sid);
	if (e == PL_OK) {
		sqlite3_stmt *st;
		e = prepare(a, &st,
		            "SELECT count(*) FROM annotations WHERE session_id = ?1",
		            what);
		if (e == PL_OK && (e = bind(a, st, what, "i", sid)) == PL_OK &&
		    sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_int64(st, 0) >= PLC_ANNOT_PER_SESSION_MAX)
			e = fail(a, PL_ERR_VALIDATION,
			         "the session has %u annotations, the most kept",
			         PLC_ANNOT_PER_SESSION_MAX);
		sqlite3_finalize(st);
	}
	if (e == PL_OK)
		e = run(a, what,
		        "INSERT INTO annotations (session_id, utc_ms, uid, user, "
		        "client_ref, operator, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
		        "iiitttt", sid, an->utc_ms ? an->utc_ms : pl_time_utc_ms(),
		        (int64_t)an->uid, an->user ? an->user : "",
		        an->client_ref ? an->client_ref : "",
		        an->operator_name ? an->operator_name : "",
		        an->note ? an->note : "");
	if (e == PL_OK && id_out)
		*id_out = sqlite3_last_insert_rowid(a->db);
	return end_tx(a, e, what);
}

static int annotation_row(sqlite3_stmt *st, void *ctx)
{
	const struct row_cb *r = ctx;
	struct annotation an = {
	    .id = sqlite3_column_int64(st, 0),
	    .utc_ms = sqlite3_column_int64(st, 1),
	    .uid = (uint32_t)sqlite3_column_int64(st, 2),
	    .user = col_text(st, 3),
	    .client_ref = col_text(st, 4),
	    .operator_name = col_text(st, 5),
	    .note = col_text(st, 6),
	};
	return r->cb.annotation(r->ud, &an);
}

static int annotations_by_id(struct archive *a, int64_t sid,
                             int (*cb)(void *ud, const struct annotation *an),
                             void *ud)
{
	struct row_cb r = {.a = a, .cb.annotation = cb, .ud = ud};
	return each_row(a, "read annotations", "reading annotations",
	                annotation_row, &r,
	                "SELECT id, utc_ms, uid, user, client_ref, operator, note "
	                "FROM annotations WHERE session_id = ?1 ORDER BY id",
	                "i", sid);
}

int archive_annotations(struct archive *a, const struct pl_session_key *key,
                        int (*cb)(void *ud, const struct annotation *an),
                        void *ud)
{
	int64_t sid = 0;
	if (!a)
		return PL_ERR_ARG;
	if (!key || !cb)
		return fail(a, PL_ERR_ARG, "archive_annotations: missing argument");
	int e = session_id_of(a, key, "find a session", &sid);
	return e == PL_OK ? annotations_by_id(a, sid, cb, ud) : e;
}
