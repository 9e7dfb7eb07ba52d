/*
 * penemu's flash: the pen's non-volatile storage, kept in SQLite so that
 * --flash FILE survives restarts (and kills) with every committed write.
 *
 * Session records are read with incremental blob I/O straight into the
 * endpoint's chunk buffer: a download never copies a whole record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "penemu.h"

struct flash {
	sqlite3 *db;
	sqlite3_stmt *get;   /* one session's metadata by id */
	sqlite3_stmt *next;  /* the first session after an id */
	sqlite3_blob *blob;  /* open on blob_id's record, or NULL */
	uint32_t blob_id;
	/* The last session looked up by id, as a firmware keeps its session
	 * table in RAM: a download asks for it with every chunk.  Forgotten
	 * with the blob, by every write to the flash. */
	bool have_last;
	struct pl_session_info last;
};

static const char schema[] =
    "CREATE TABLE meta ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  serial TEXT NOT NULL,"
    "  preset_revision INTEGER NOT NULL,"
    "  next_seq INTEGER NOT NULL,"
    "  rtc_set INTEGER NOT NULL,"
    "  rtc_offset_ms INTEGER NOT NULL,"
    "  total_strokes INTEGER NOT NULL,"
    "  motor_seconds INTEGER NOT NULL);"
    "CREATE TABLE presets ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  depth_um INTEGER NOT NULL,"
    "  speed_level INTEGER NOT NULL,"
    "  area INTEGER NOT NULL,"
    "  needle_count INTEGER NOT NULL,"
    "  max_duration_s INTEGER NOT NULL);"
    "CREATE TABLE sessions ("
    "  id INTEGER PRIMARY KEY,"
    "  uuid BLOB NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  sha256 BLOB NOT NULL,"
    "  start_ms INTEGER NOT NULL,"
    "  end_ms INTEGER NOT NULL,"
    "  rtc INTEGER NOT NULL,"
    "  archived INTEGER NOT NULL DEFAULT 0,"
    "  record BLOB NOT NULL);";

/* A new pen ships with these (revision 1): valid for the emulated limits
 * (250..2500 um in 250 um steps, slow lock from 2000 um). */
static const struct pl_fw_preset default_presets[] = {
	{1, "Forehead fine", 500, 4, 1, 12, 600},
	{2, "Cheek standard", 1000, 3, 5, 24, 900},
	{3, "Scar deep", 2000, 1, 13, 36, 1200},
};

static int db_fail(struct flash *f, const char *what)
{
	fprintf(stderr, "penemu: flash: %s: %s\n", what, sqlite3_errmsg(f->db));
	return -1;
}

/* Prepares sql into *st: 0, or -1 after saying what failed. */
static int prepare(struct flash *f, const char *sql, sqlite3_stmt **st,
                   const char *what)
{
	if (sqlite3_prepare_v2(f->db, sql, -1, st, NULL) != SQLITE_OK)
		return db_fail(f, what);
	return 0;
}

/* Runs a statement that returns no rows, then finalizes it: 0, or -1
 * after saying what failed. */
static int step_done(struct flash *f, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(f, what);

	sqlite3_finalize(st);
	return rc;
}

/* Before any write: the open record and the remembered session may be
 * about to change. */
static void drop_blob(struct flash *f)
{
	f->have_last = false;
	if (f->blob) {
		sqlite3_blob_close(f->blob);
		f->blob = NULL;
	}
}

static int exec(struct flash *f, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(f->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "penemu: flash: %s\n", err ? err : "failed");
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

static int store_presets_locked(struct flash *f, const struct pl_fw_preset *p,
                                size_t count)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (exec(f, "DELETE FROM presets") != 0)
		return -1;
	if (prepare(f,
	            "INSERT INTO presets (id, name, depth_um, speed_level,"
	            " area, needle_count, max_duration_s)"
	            " VALUES (?, ?, ?, ?, ?, ?, ?)",
	            &st, "insert preset") != 0)
		return -1;
	for (size_t i = 0; i < count; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, p[i].id);
		sqlite3_bind_text(st, 2, p[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, p[i].depth_um);
		sqlite3_bind_int64(st, 4, p[i].speed_level);
		sqlite3_bind_int64(st, 5, p[i].area);
		sqlite3_bind_int64(st, 6, p[i].needle_count);
		sqlite3_bind_int64(st, 7, p[i].max_duration_s);
		if (sqlite3_step(st) != SQLITE_DONE) {
			db_fail(f, "insert preset");
			goto out;
		}
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

static int create(struct flash *f, const char *serial)
{
	sqlite3_stmt *st = NULL;

	if (exec(f, "BEGIN") != 0)
		return -1;
	if (exec(f, schema) != 0)
		goto fail;
	if (prepare(f, "INSERT INTO meta VALUES (1, ?, 1, 1, 0, 0, 0, 0)", &st,
	            "create") != 0)
		goto fail;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	if (step_done(f, st, "create") != 0)
		goto fail;
	if (store_presets_locked(f, default_presets,
	                         sizeof default_presets / sizeof default_presets[0]) != 0)
		goto fail;
	return exec(f, "COMMIT");
fail:
	exec(f, "ROLLBACK");
	return -1;
}

int flash_open(const char *path, const char *serial, struct flash **out,
               bool *created)
{
	struct flash *f = calloc(1, sizeof *f);
	sqlite3_stmt *st = NULL;
	int has_meta;

	*out = NULL;
	*created = false;
	if (!f) {
		fprintf(stderr, "penemu: out of memory\n");
		return -1;
	}
	if (sqlite3_open_v2(path ? path : ":memory:", &f->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		fprintf(stderr, "penemu: cannot open flash %s: %s\n",
		        path ? path : ":memory:",
		        f->db ? sqlite3_errmsg(f->db) : "out of memory");
		goto fail;
	}
	/* One pen per flash: hold the file lock for the whole run, so a
	 * second penemu on the same file fails at once instead of two pens
	 * sharing sessions. */
	if (exec(f, "PRAGMA locking_mode = EXCLUSIVE") != 0)
		goto fail;
	/* A pen reads its flash by address, not by system call: mapped reads
	 * keep the virtual pen's chunk turnaround close to a real one (a
	 * pread per page costs as much as the USB transfer in a slow VM). */
	if (exec(f, "PRAGMA mmap_size = 268435456") != 0)
		goto fail;
	if (sqlite3_exec(f->db, "BEGIN EXCLUSIVE; COMMIT", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		if (sqlite3_errcode(f->db) == SQLITE_BUSY)
			fprintf(stderr, "penemu: flash %s is in use by another penemu\n",
			        path ? path : ":memory:");
		else
			fprintf(stderr, "penemu: flash %s: %s\n",
			        path ? path : ":memory:", sqlite3_errmsg(f->db));
		goto fail;
	}
	if (prepare(f, "SELECT count(*) FROM sqlite_master WHERE name = 'meta'",
	            &st, "is this a penemu flash file?") != 0)
		goto fail;
	if (sqlite3_step(st) != SQLITE_ROW) {
		db_fail(f, "is this a penemu flash file?");
		sqlite3_finalize(st);
		goto fail;
	}
	has_meta = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (!has_meta) {
		if (create(f, serial) != 0)
			goto fail;
		*created = true;
	}
	if (prepare(f,
	            "SELECT id, uuid, seq, size, sha256, start_ms, end_ms,"
	            " rtc, archived FROM sessions WHERE id = ?",
	            &f->get, "not a penemu flash file") != 0 ||
	    prepare(f,
	            "SELECT id, uuid, seq, size, sha256, start_ms, end_ms,"
	            " rtc, archived FROM sessions WHERE id > ?"
	            " ORDER BY id LIMIT 1",
	            &f->next, "not a penemu flash file") != 0)
		goto fail;
	*out = f;
	return 0;
fail:
	flash_close(f);
	return -1;
}

void flash_close(struct flash *f)
{
	if (!f)
		return;
	drop_blob(f);
	sqlite3_finalize(f->get);
	sqlite3_finalize(f->next);
	sqlite3_close(f->db);
	free(f);
}

int flash_meta(struct flash *f, struct flash_meta *m)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	memset(m, 0, sizeof *m);
	if (prepare(f,
	            "SELECT serial, preset_revision, next_seq, rtc_set,"
	            " rtc_offset_ms, total_strokes, motor_seconds"
	            " FROM meta WHERE id = 1",
	            &st, "read meta") != 0)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *s = sqlite3_column_text(st, 0);
		snprintf(m->serial, sizeof m->serial, "%s", s ? (const char *)s : "");
		m->preset_revision = (uint32_t)sqlite3_column_int64(st, 1);
		m->next_seq = (uint32_t)sqlite3_column_int64(st, 2);
		m->rtc_set = sqlite3_column_int(st, 3) != 0;
		m->rtc_offset_ms = sqlite3_column_int64(st, 4);
		m->total_strokes = (uint64_t)sqlite3_column_int64(st, 5);
		m->motor_seconds = (uint64_t)sqlite3_column_int64(st, 6);
		rc = 0;
	} else {
		db_fail(f, "read meta");
	}
	sqlite3_finalize(st);
	return rc;
}

int flash_rtc_set(struct flash *f, int64_t offset_ms)
{
	sqlite3_stmt *st = NULL;

	drop_blob(f);
	if (prepare(f, "UPDATE meta SET rtc_set = 1, rtc_offset_ms = ? WHERE id = 1",
	            &st, "set clock") != 0)
		return -1;
	sqlite3_bind_int64(st, 1, offset_ms);
	return step_done(f, st, "set clock");
}

int flash_presets_load(struct flash *f, struct pl_fw_preset *out, size_t max,
                       size_t *count, uint32_t *revision)
{
	struct flash_meta m;
	sqlite3_stmt *st = NULL;
	size_t n = 0;
	int rc;

	if (flash_meta(f, &m) != 0)
		return PL_FW_INTERNAL;
	if (prepare(f,
	            "SELECT id, name, depth_um, speed_level, area,"
	            " needle_count, max_duration_s FROM presets ORDER BY id",
	            &st, "read presets") != 0)
		return PL_FW_INTERNAL;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *name = sqlite3_column_text(st, 1);
		if (n == max) {
			fprintf(stderr, "penemu: flash holds more presets than %lu\n",
			        (unsigned long)max);
			sqlite3_finalize(st);
			return PL_FW_INTERNAL;
		}
		memset(&out[n], 0, sizeof out[n]);
		out[n].id = (uint32_t)sqlite3_column_int64(st, 0);
		snprintf(out[n].name, sizeof out[n].name, "%s",
		         name ? (const char *)name : "");
		out[n].depth_um = (uint32_t)sqlite3_column_int64(st, 2);
		out[n].speed_level = (uint32_t)sqlite3_column_int64(st, 3);
		out[n].area = (uint32_t)sqlite3_column_int64(st, 4);
		out[n].needle_count = (uint32_t)sqlite3_column_int64(st, 5);
		out[n].max_duration_s = (uint32_t)sqlite3_column_int64(st, 6);
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		db_fail(f, "read presets");
		return PL_FW_INTERNAL;
	}
	*count = n;
	*revision = m.preset_revision;
	return PL_FW_OK;
}

int flash_presets_store(struct flash *f, const struct pl_fw_preset *p,
                        size_t count, uint32_t revision)
{
	sqlite3_stmt *st = NULL;

	drop_blob(f);
	if (exec(f, "BEGIN IMMEDIATE") != 0)
		return PL_FW_INTERNAL;
	if (store_presets_locked(f, p, count) != 0)
		goto fail;
	if (prepare(f, "UPDATE meta SET preset_revision = ? WHERE id = 1", &st,
	            "store presets") != 0)
		goto fail;
	sqlite3_bind_int64(st, 1, revision);
	if (step_done(f, st, "store presets") != 0)
		goto fail;
	if (exec(f, "COMMIT") != 0)
		goto fail;
	return PL_FW_OK;
fail:
	exec(f, "ROLLBACK");
	return PL_FW_INTERNAL;
}

static void row_to_session(sqlite3_stmt *st, struct pl_session_info *out)
{
	const void *uuid = sqlite3_column_blob(st, 1);
	int uuid_len = sqlite3_column_bytes(st, 1);
	const void *sha = sqlite3_column_blob(st, 4);
	int sha_len = sqlite3_column_bytes(st, 4);

	memset(out, 0, sizeof *out);
	out->id = (uint32_t)sqlite3_column_int64(st, 0);
	if (uuid && uuid_len == (int)sizeof out->uuid)
		memcpy(out->uuid, uuid, sizeof out->uuid);
	out->seq = (uint32_t)sqlite3_column_int64(st, 2);
	out->size = (uint64_t)sqlite3_column_int64(st, 3);
	if (sha && sha_len == (int)sizeof out->sha256)
		memcpy(out->sha256, sha, sizeof out->sha256);
	out->start_ms = sqlite3_column_int64(st, 5);
	out->end_ms = sqlite3_column_int64(st, 6);
	out->rtc_time = sqlite3_column_int(st, 7) != 0;
	out->archived = sqlite3_column_int(st, 8) != 0;
}

static int one_session(struct flash *f, sqlite3_stmt *st, uint32_t key,
                       struct pl_session_info *out)
{
	int rc;

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row_to_session(st, out);
		sqlite3_reset(st);
		return PL_FW_OK;
	}
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return PL_FW_NOT_FOUND;
	db_fail(f, "read session");
	return PL_FW_INTERNAL;
}

int flash_session_next(struct flash *f, uint32_t after_id,
                       struct pl_session_info *out)
{
	return one_session(f, f->next, after_id, out);
}

int flash_session_get(struct flash *f, uint32_t id, struct pl_session_info *out)
{
	int rc;

	if (f->have_last && f->last.id == id) {
		*out = f->last;
		return PL_FW_OK;
	}
	rc = one_session(f, f->get, id, out);
	if (rc == PL_FW_OK) {
		f->last = *out;
		f->have_last = true;
	}
	return rc;
}

int flash_session_read(struct flash *f, uint32_t id, uint64_t offset,
                       uint8_t *buf, size_t len)
{
	int rc;

	if (offset > (uint64_t)INT32_MAX || len > (size_t)INT32_MAX ||
	    offset + len > (uint64_t)INT32_MAX)
		return PL_FW_INTERNAL; /* SQLite blobs stop below 2 GiB */
	for (int attempt = 0; attempt < 2; attempt++) {
		if (f->blob && f->blob_id != id) {
			if (sqlite3_blob_reopen(f->blob, id) == SQLITE_OK)
				f->blob_id = id;
			else
				drop_blob(f);
		}
		if (!f->blob) {
			if (sqlite3_blob_open(f->db, "main", "sessions", "record", id,
			                      0, &f->blob) != SQLITE_OK) {
				f->blob = NULL; /* an error still hands back a handle */
				db_fail(f, "open session record");
				return PL_FW_INTERNAL;
			}
			f->blob_id = id;
		}
		rc = sqlite3_blob_read(f->blob, buf, (int)len, (int)offset);
		if (rc == SQLITE_OK)
			return PL_FW_OK;
		/* SQLITE_ABORT: the row changed since the handle was opened;
		 * open it again once. */
		drop_blob(f);
		if (rc != SQLITE_ABORT)
			break;
	}
	db_fail(f, "read session record");
	return PL_FW_INTERNAL;
}

int flash_session_archive(struct flash *f, uint32_t id)
{
	sqlite3_stmt *st = NULL;

	drop_blob(f);
	if (prepare(f, "UPDATE sessions SET archived = 1 WHERE id = ?", &st,
	            "archive session") != 0)
		return PL_FW_INTERNAL;
	sqlite3_bind_int64(st, 1, id);
	if (step_done(f, st, "archive session") != 0)
		return PL_FW_INTERNAL;
	return sqlite3_changes(f->db) == 1 ? PL_FW_OK : PL_FW_NOT_FOUND;
}

int flash_session_count(struct flash *f, size_t *count)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (prepare(f, "SELECT count(*) FROM sessions", &st, "count sessions") != 0)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*count = (size_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		db_fail(f, "count sessions");
	}
	sqlite3_finalize(st);
	return rc;
}

int flash_session_add(struct flash *f, struct pl_session_info *meta,
                      const uint8_t *record, size_t len, uint64_t strokes,
                      uint64_t run_seconds)
{
	sqlite3_stmt *st = NULL;

	drop_blob(f);
	if (exec(f, "BEGIN IMMEDIATE") != 0)
		return -1;
	if (prepare(f,
	            "INSERT INTO sessions (uuid, seq, size, sha256, start_ms,"
	            " end_ms, rtc, archived, record)"
	            " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
	            &st, "add session") != 0)
		goto fail;
	sqlite3_bind_blob(st, 1, meta->uuid, sizeof meta->uuid, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, meta->seq);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)len);
	sqlite3_bind_blob(st, 4, meta->sha256, sizeof meta->sha256, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, meta->start_ms);
	sqlite3_bind_int64(st, 6, meta->end_ms);
	sqlite3_bind_int(st, 7, meta->rtc_time ? 1 : 0);
	sqlite3_bind_blob64(st, 8, record, len, SQLITE_STATIC);
	if (step_done(f, st, "add session") != 0)
		goto fail;
	meta->id = (uint32_t)sqlite3_last_insert_rowid(f->db);
	meta->size = len;
	meta->archived = false;
	if (prepare(f,
	            "UPDATE meta SET next_seq = max(next_seq, ? + 1),"
	            " total_strokes = total_strokes + ?,"
	            " motor_seconds = motor_seconds + ? WHERE id = 1",
	            &st, "add session") != 0)
		goto fail;
	sqlite3_bind_int64(st, 1, meta->seq);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)strokes);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)run_seconds);
	if (step_done(f, st, "add session") != 0)
		goto fail;
	return exec(f, "COMMIT");
fail:
	exec(f, "ROLLBACK");
	return -1;
}
