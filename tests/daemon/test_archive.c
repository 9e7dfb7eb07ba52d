/* The session archive (daemon/archive.c) on real SQLite files. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <sqlite3.h>

#include "archive.h"
#include "penlink.h"
#include "penlink_audit.h"
#include "record.pb-c.h"

/* ------------------------------------------------------------------ records */

/* A record as a pen would log it, with n telemetry samples. */
struct rec {
	Pl__SessionRecord rec;
	Pl__Preset preset;
	Pl__Cartridge cart;
	Pl__Summary sum;
	Pl__Telemetry tel;
	Pl__Event ev[6];
	Pl__Event *evp[6];
	uint8_t uuid[16];
	uint32_t *depth, *current, *battery;
	uint8_t *bytes;
	size_t len;
	struct pl_session_info info;
};

#define START_MS 1700000000000LL /* 2023-11-14T22:13:20Z */

static void rec_build(struct rec *f, uint8_t uuid_byte, const char *serial,
                      int64_t start_ms, size_t n, const char *preset_name)
{
	static const struct {
		uint32_t off;
		int kind;
		int32_t value;
	} evs[6] = {
	    {0, PL__EVENT_KIND__EVENT_KIND_START, 3},
	    {12345, PL__EVENT_KIND__EVENT_KIND_DEPTH_CHANGE, 750},
	    {61001, PL__EVENT_KIND__EVENT_KIND_AREA_CHANGE, PL__AREA__AREA_CHEEK},
	    {62000, PL__EVENT_KIND__EVENT_KIND_BATTERY_LOW, 3400},
	    {75123, 77, 5}, /* a kind from a newer pen */
	    {3723456, PL__EVENT_KIND__EVENT_KIND_STOP, 0},
	};

	memset(f, 0, sizeof *f);
	pl__session_record__init(&f->rec);
	pl__preset__init(&f->preset);
	pl__cartridge__init(&f->cart);
	pl__summary__init(&f->sum);
	pl__telemetry__init(&f->tel);
	for (int i = 0; i < 16; i++)
		f->uuid[i] = (uint8_t)(uuid_byte + i * 7);
	f->rec.format = 1;
	f->rec.uuid.data = f->uuid;
	f->rec.uuid.len = 16;
	f->rec.seq = uuid_byte;
	f->rec.serial = (char *)serial;
	f->rec.fw_version = "1.2.0";
	f->rec.start_ms = start_ms;
	f->rec.end_ms = start_ms + 3723500;
	f->rec.time_source = PL__TIME_SOURCE__TIME_SOURCE_RTC;
	f->preset.id = 3;
	f->preset.name = (char *)preset_name;
	f->preset.depth_um = 500;
	f->preset.speed_level = 3;
	f->preset.area = PL__AREA__AREA_FOREHEAD;
	f->preset.needle_count = 12;
	f->preset.max_duration_s = 600;
	f->rec.preset = &f->preset;
	f->rec.preset_revision = 5;
	f->cart.needle_count = 12;
	f->cart.needle_length_um = 1500;
	f->cart.lot = "L2309-14";
	f->rec.cartridge = &f->cart;
	for (int i = 0; i < 6; i++) {
		pl__event__init(&f->ev[i]);
		f->ev[i].offset_ms = evs[i].off;
		f->ev[i].kind = (Pl__EventKind)evs[i].kind;
		f->ev[i].value = evs[i].value;
		f->evp[i] = &f->ev[i];
	}
	f->rec.n_events = 6;
	f->rec.events = f->evp;
	f->depth = calloc(n + 1, sizeof *f->depth);
	f->current = calloc(n + 1, sizeof *f->current);
	f->battery = calloc(n + 1, sizeof *f->battery);
	assert_non_null(f->depth);
	assert_non_null(f->current);
	assert_non_null(f->battery);
	for (size_t i = 0; i < n; i++) {
		f->depth[i] = 480 + (uint32_t)(i % 41);
		f->current[i] = 180 + (uint32_t)(i % 120);
		f->battery[i] = 4100 - (uint32_t)(i % 400);
	}
	f->tel.interval_us = 10000;
	f->tel.n_depth_um = f->tel.n_current_ma = f->tel.n_battery_mv = n;
	f->tel.depth_um = f->depth;
	f->tel.current_ma = f->current;
	f->tel.battery_mv = f->battery;
	f->rec.telemetry = &f->tel;
	f->sum.run_time_s = 1513;
	f->sum.strokes = 151300;
	f->sum.max_depth_um = 750;
	f->sum.errors = 1;
	f->rec.summary = &f->sum;

	f->len = pl__session_record__get_packed_size(&f->rec);
	f->bytes = malloc(f->len);
	assert_non_null(f->bytes);
	pl__session_record__pack(&f->rec, f->bytes);

	f->info.id = uuid_byte;
	memcpy(f->info.uuid, f->uuid, 16);
	f->info.seq = uuid_byte;
	f->info.size = f->len;
	pl_sha256(f->bytes, f->len, f->info.sha256);
	f->info.start_ms = f->rec.start_ms;
	f->info.end_ms = f->rec.end_ms;
	f->info.rtc_time = true;
}

static void rec_free(struct rec *f)
{
	free(f->depth);
	free(f->current);
	free(f->battery);
	free(f->bytes);
}

/* The name of f's session as archived from serial. */
static struct pl_session_key key_of(const char *serial, const struct rec *f)
{
	struct pl_session_key k;

	memset(&k, 0, sizeof k);
	snprintf(k.serial, sizeof k.serial, "%s", serial);
	memcpy(k.uuid, f->uuid, 16);
	return k;
}

/* ------------------------------------------------------------------ files */

struct ctx {
	char dir[64];
	char db[128];
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof *c);

	if (!c)
		return -1;
	snprintf(c->dir, sizeof c->dir, "%s", "/tmp/pl-archive-XXXXXX");
	if (!mkdtemp(c->dir))
		return -1;
	snprintf(c->db, sizeof c->db, "%s/archive.db", c->dir);
	umask(022);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	static const char *const suffix[] = {"", "-wal", "-shm", ".lock",
	                                     "-journal"};
	char p[160];

	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		snprintf(p, sizeof p, "%s%s", c->db, suffix[i]);
		unlink(p);
	}
	snprintf(p, sizeof p, "%s/tiny", c->dir);   /* test_disk_full's mount point */
	rmdir(p);
	rmdir(c->dir);
	free(c);
	return 0;
}

static struct archive *open_ok(const char *path)
{
	struct archive *a = NULL;
	int e = archive_open(path, &a);

	if (e != PL_OK)
		fail_msg("archive_open: %d %s", e, archive_errmsg(a));
	assert_non_null(a);
	return a;
}

static void append_all(struct archive *a, const char *serial,
                       const struct rec *f, size_t piece)
{
	for (size_t off = 0; off < f->len; off += piece) {
		size_t n = f->len - off < piece ? f->len - off : piece;
		int e = archive_partial_append(a, serial, &f->info, off,
		                               f->bytes + off, n);
		if (e != PL_OK)
			fail_msg("append: %d %s", e, archive_errmsg(a));
	}
}

static void store(struct archive *a, const char *serial, const struct rec *f)
{
	int e;

	append_all(a, serial, f, 4096);
	e = archive_commit_session(a, serial, &f->info);
	if (e != PL_OK)
		fail_msg("commit: %d %s", e, archive_errmsg(a));
}

/* Runs archive_decode_step until nothing is pending; returns the calls. */
static int decode_all(struct archive *a, size_t max_rows)
{
	bool more = true;
	int calls = 0;

	while (more) {
		int e = archive_decode_step(a, max_rows, &more);
		if (e != PL_OK)
			fail_msg("decode: %d %s", e, archive_errmsg(a));
		assert_true(++calls < 100000);
	}
	return calls;
}

/* One integer from the database through a connection of the test's own. */
static int64_t query_int(const char *db, const char *sql)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	int64_t v = -1;

	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL),
	                 SQLITE_OK);
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(h));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

/* Runs sql; returns the SQLite result and copies the message. */
static int exec_sql(const char *db, const char *sql, char *msg, size_t len)
{
	sqlite3 *h;
	char *err = NULL;
	int rc;

	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE |
	                                             SQLITE_OPEN_CREATE, NULL),
	                 SQLITE_OK);
	rc = sqlite3_exec(h, sql, NULL, NULL, &err);
	if (msg)
		snprintf(msg, len, "%s", err ? err : "");
	sqlite3_free(err);
	sqlite3_close(h);
	return rc;
}

/* ------------------------------------------------------------------ open, lock */

static void test_open_mode_and_lock(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db), *b = NULL;
	struct stat st;
	char p[160], want[64];
	struct rec f;

	assert_int_equal(archive_schema_version(a), 4);
	assert_int_equal(stat(c->db, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* Some data so the WAL has content. */
	rec_build(&f, 1, "PEN-1", START_MS, 10, "Fine");
	append_all(a, "PEN-1", &f, 100);
	snprintf(p, sizeof p, "%s-wal", c->db);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0007, 0);
	snprintf(p, sizeof p, "%s-shm", c->db);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0007, 0);
	snprintf(p, sizeof p, "%s.lock", c->db);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0007, 0);

	/* A second daemon on the same file. */
	assert_int_equal(archive_open(c->db, &b), PL_ERR_PORT_BUSY);
	assert_non_null(strstr(archive_errmsg(b), "in use by another penlinkd"));
	assert_non_null(strstr(archive_errmsg(b), c->db));
	snprintf(want, sizeof want, "(pid %ld)", (long)getpid());
	assert_non_null(strstr(archive_errmsg(b), want));
	archive_close(b);

	archive_close(a);
	/* The lock went with the first. */
	a = open_ok(c->db);
	archive_close(a);
	rec_free(&f);
}

/* ------------------------------------------------------------------ downloads */

struct listed {
	int n;
	struct archived_session s[8];
	int stop_after;
};

static int collect(void *ud, const struct archived_session *s)
{
	struct listed *l = ud;

	if (l->n < 8)
		l->s[l->n] = *s;
	l->n++;
	return l->stop_after && l->n >= l->stop_after;
}

static void test_append_commit_read_back(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct rec f;
	struct pl_session_key k;
	struct listed l = {0};
	uint64_t off = 99, size = 0;
	uint8_t sha[32], *back;
	size_t got, total = 0;
	char sql[200];
	const size_t cuts[] = {1, 700, 5000};

	rec_build(&f, 10, "PEN-1", START_MS, 3000, "Forehead fine");
	assert_true(f.len > 10000);
	assert_int_equal(archive_partial_offset(a, "PEN-1", &f.info, &off), PL_OK);
	assert_int_equal(off, 0);
	/* Uneven pieces; the stored offset follows each one. */
	for (size_t i = 0, pos = 0; pos < f.len; i++) {
		size_t n = i < 3 ? cuts[i] : f.len - pos;
		assert_int_equal(archive_partial_append(a, "PEN-1", &f.info, pos,
		                                        f.bytes + pos, n),
		                 PL_OK);
		pos += n;
		assert_int_equal(archive_partial_offset(a, "PEN-1", &f.info, &off),
		                 PL_OK);
		assert_int_equal(off, pos);
	}
	/* Out of order data is refused, not stored. */
	assert_int_equal(archive_partial_append(a, "PEN-1", &f.info, 0, f.bytes, 1),
	                 PL_ERR_CONFLICT);
	assert_false(archive_has_session(a, "PEN-1", f.uuid, NULL));

	assert_int_equal(archive_commit_session(a, "PEN-1", &f.info), PL_OK);
	assert_true(archive_has_session(a, "PEN-1", f.uuid, sha));
	assert_memory_equal(sha, f.info.sha256, 32);
	assert_false(archive_has_session(a, "PEN-2", f.uuid, NULL));

	assert_int_equal(archive_list(a, NULL, 0, collect, &l), PL_OK);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.s[0].serial, "PEN-1");
	assert_memory_equal(l.s[0].uuid, f.uuid, 16);
	assert_int_equal(l.s[0].summary.seq, 10);
	assert_int_equal(l.s[0].summary.size, f.len);
	assert_memory_equal(l.s[0].summary.sha256, f.info.sha256, 32);
	assert_int_equal(l.s[0].summary.start_ms, START_MS);
	assert_int_equal(l.s[0].summary.end_ms, START_MS + 3723500);
	assert_true(l.s[0].summary.rtc_time);
	assert_true(l.s[0].summary.archived_ms > START_MS);

	/* Read back in pieces: byte for byte what the pen served. */
	back = malloc(f.len);
	assert_non_null(back);
	k = key_of("PEN-1", &f);
	do {
		assert_int_equal(archive_read_record(a, &k, total, back + total,
		                                     1000, &got, &size),
		                 PL_OK);
		assert_int_equal(size, f.len);
		total += got;
	} while (got > 0);
	assert_int_equal(total, f.len);
	assert_memory_equal(back, f.bytes, f.len);
	free(back);
	assert_int_equal(archive_read_record(a, &k, f.len + 5, NULL, 0, &got,
	                                     &size),
	                 PL_OK);
	assert_int_equal(got, 0);
	k.uuid[0] ^= 0xff;
	assert_int_equal(archive_read_record(a, &k, 0, NULL, 0, &got, &size),
	                 PL_ERR_NOT_FOUND);
	/* The same UUID from another pen is another session. */
	k = key_of("PEN-2", &f);
	assert_int_equal(archive_read_record(a, &k, 0, NULL, 0, &got, &size),
	                 PL_ERR_NOT_FOUND);

	/* Decoded rows, and nothing left of the partial.  Sample rows come
	 * later, from archive_decode_step(): none yet, all 3000 pending. */
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM events"), 6);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"), 0);
	assert_int_equal(query_int(c->db, "SELECT next FROM sample_progress"), 0);
	/* 1000 rows a call: 1000, 2000, 3000 (done, nothing more pending). */
	assert_int_equal(decode_all(a, 1000), 3);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"), 3000);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM sample_progress"),
	                 0);
	assert_int_equal(query_int(c->db, "SELECT min(idx) * 10000 + max(idx) "
	                                  "FROM samples"),
	                 2999);
	assert_int_equal(query_int(c->db, "SELECT value FROM events WHERE idx = 1"),
	                 750);
	assert_int_equal(query_int(c->db, "SELECT kind FROM events WHERE idx = 4"),
	                 77);
	snprintf(sql, sizeof sql,
	         "SELECT depth_um * 1000000 + current_ma * 1000 + battery_mv / 10 "
	         "FROM samples WHERE idx = 2999");
	assert_int_equal(query_int(c->db, sql),
	                 (int64_t)f.depth[2999] * 1000000 + f.current[2999] * 1000 +
	                     f.battery[2999] / 10);
	assert_int_equal(query_int(c->db, "SELECT sample_interval_us FROM sessions"),
	                 10000);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM partials"), 0);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM partial_chunks"), 0);

	archive_close(a);
	rec_free(&f);
}

/* The getters this archive added to libpenlink. */
static void test_record_event_getters(void **state)
{
	struct rec f;
	struct pl_record *r = NULL;
	struct pl_event_row ev[3];

	(void)state;
	rec_build(&f, 11, "PEN-1", START_MS, 5, "x");
	assert_int_equal(pl_record_parse(f.bytes, f.len, &r), PL_OK);
	assert_int_equal(pl_record_events(r, NULL, 0), 6);
	assert_int_equal(pl_record_events(r, ev, 3), 6);
	assert_int_equal(ev[1].offset_ms, 12345);
	assert_int_equal(ev[1].kind, PL__EVENT_KIND__EVENT_KIND_DEPTH_CHANGE);
	assert_int_equal(ev[1].value, 750);
	assert_string_equal(pl_record_event_kind_name(ev[1].kind), "depth_change");
	assert_string_equal(pl_record_event_kind_name(PL__EVENT_KIND__EVENT_KIND_CARTRIDGE_OUT),
	                    "cartridge_out");
	assert_string_equal(pl_record_event_kind_name(0), "unspecified");
	assert_null(pl_record_event_kind_name(77));
	assert_int_equal(pl_record_events(NULL, ev, 3), 0);
	pl_record_free(r);
	rec_free(&f);
}

static void test_wrong_digest_discards(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct rec f;
	uint64_t off = 1;

	rec_build(&f, 20, "PEN-1", START_MS, 100, "Fine");
	/* The pen's digest and the bytes disagree: one byte flipped in transit. */
	f.bytes[f.len / 2] ^= 0x01;
	append_all(a, "PEN-1", &f, 333);
	assert_int_equal(archive_commit_session(a, "PEN-1", &f.info), PL_ERR_DIGEST);
	assert_non_null(strstr(archive_errmsg(a), "discarded"));
	assert_false(archive_has_session(a, "PEN-1", f.uuid, NULL));
	assert_int_equal(archive_partial_offset(a, "PEN-1", &f.info, &off), PL_OK);
	assert_int_equal(off, 0);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM partial_chunks"), 0);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM sessions"), 0);

	/* Too short is a digest failure as well. */
	f.bytes[f.len / 2] ^= 0x01;
	assert_int_equal(archive_partial_append(a, "PEN-1", &f.info, 0, f.bytes, 10),
	                 PL_OK);
	assert_int_equal(archive_commit_session(a, "PEN-1", &f.info), PL_ERR_DIGEST);
	assert_int_equal(archive_partial_offset(a, "PEN-1", &f.info, &off), PL_OK);
	assert_int_equal(off, 0);

	/* Nothing downloaded at all. */
	assert_int_equal(archive_commit_session(a, "PEN-1", &f.info),
	                 PL_ERR_NOT_FOUND);

	/* And the good bytes go in after that. */
	store(a, "PEN-1", &f);
	assert_true(archive_has_session(a, "PEN-1", f.uuid, NULL));
	archive_close(a);
	rec_free(&f);
}

/*
 * Sample rows are decoded after the commit, oldest session first, in steps
 * that stop at max_rows and at the end of a session, and resume after the
 * archive is closed mid-way (the progress mark is stored with the rows).
 */
static void test_decode_steps_and_resume(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct rec f, g, z;
	bool more = true;
	char sql[300];

	rec_build(&f, 40, "PEN-1", START_MS, 2500, "Fine");
	rec_build(&z, 41, "PEN-1", START_MS + 1, 0, "Empty");
	rec_build(&g, 42, "PEN-2", START_MS - 5, 300, "Fine");
	/* Nothing archived: nothing pending, and no rows made up. */
	assert_int_equal(archive_decode_step(a, 100, &more), PL_OK);
	assert_false(more);
	store(a, "PEN-1", &f);
	store(a, "PEN-1", &z);   /* no samples: never pending */
	store(a, "PEN-2", &g);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM sample_progress"),
	                 2);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM events"), 18);

	/* max_rows 0 only asks. */
	assert_int_equal(archive_decode_step(a, 0, &more), PL_OK);
	assert_true(more);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"), 0);

	/* Smaller than the session: the oldest archived (f) goes first. */
	assert_int_equal(archive_decode_step(a, 1000, &more), PL_OK);
	assert_true(more);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"), 1000);
	assert_int_equal(query_int(c->db, "SELECT max(idx) FROM samples"), 999);
	assert_int_equal(query_int(c->db, "SELECT next FROM sample_progress "
	                                  "JOIN sessions ON id = session_id "
	                                  "WHERE seq = 40"),
	                 1000);

	/* Closed and opened again mid-way: it picks up at 1000. */
	archive_close(a);
	a = open_ok(c->db);
	assert_int_equal(archive_decode_step(a, 1000, &more), PL_OK);
	assert_true(more);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"), 2000);
	/* The rest of f (500 of 1000 allowed): one session per call. */
	assert_int_equal(archive_decode_step(a, 1000, &more), PL_OK);
	assert_true(more);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"), 2500);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM sample_progress"),
	                 1);
	assert_int_equal(archive_decode_step(a, 1000, &more), PL_OK);
	assert_false(more);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"), 2800);
	assert_int_equal(archive_decode_step(a, 1000, &more), PL_OK);
	assert_false(more);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"), 2800);

	/* Every value where it belongs, none twice. */
	assert_int_equal(query_int(c->db, "SELECT count(DISTINCT session_id * 100000 "
	                                  "+ idx) FROM samples"),
	                 2800);
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM samples JOIN sessions ON id = session_id "
	         "WHERE depth_um != 480 + idx %% 41 OR current_ma != 180 + idx %% 120 "
	         "OR battery_mv != 4100 - idx %% 400 OR idx >= CASE seq WHEN 40 "
	         "THEN 2500 WHEN 42 THEN 300 ELSE 0 END");
	assert_int_equal(query_int(c->db, sql), 0);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples JOIN "
	                                  "sessions ON id = session_id WHERE seq = 42"),
	                 300);

	/* A session committed now is decoded as well, in one call. */
	archive_close(a);
	a = open_ok(c->db);
	rec_free(&z);
	rec_build(&z, 43, "PEN-3", START_MS, 77, "Fine");
	store(a, "PEN-3", &z);
	assert_int_equal(decode_all(a, 4000), 1);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"), 2877);
	archive_close(a);
	rec_free(&f);
	rec_free(&g);
	rec_free(&z);
}

static void test_commit_idempotent_and_conflict(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct rec f, g;
	struct listed l = {0};

	rec_build(&f, 30, "PEN-1", START_MS, 100, "Fine");
	store(a, "PEN-1", &f);
	/* Again, as after a crash between COMMIT and telling the pen. */
	assert_int_equal(archive_commit_session(a, "PEN-1", &f.info), PL_OK);
	assert_int_equal(archive_list(a, "", 0, collect, &l), PL_OK);
	assert_int_equal(l.n, 1);

	/* Same uuid, other content: refused, the archived one kept. */
	rec_build(&g, 30, "PEN-1", START_MS, 101, "Fine");
	assert_memory_not_equal(g.info.sha256, f.info.sha256, 32);
	assert_int_equal(archive_commit_session(a, "PEN-1", &g.info),
	                 PL_ERR_CONFLICT);
	assert_non_null(strstr(archive_errmsg(a), "another digest"));
	append_all(a, "PEN-1", &g, 1000);
	assert_int_equal(archive_commit_session(a, "PEN-1", &g.info),
	                 PL_ERR_CONFLICT);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM partials"), 0);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM sessions"), 1);
	assert_int_equal(decode_all(a, 4000), 1);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"), 100);

	/* The same uuid from another pen is another session. */
	rec_free(&g);
	rec_build(&g, 30, "PEN-2", START_MS, 100, "Fine");
	store(a, "PEN-2", &g);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM sessions"), 2);
	archive_close(a);
	rec_free(&f);
	rec_free(&g);
}

static void test_partial_survives_reopen(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct rec f;
	struct pl_session_key k;
	uint64_t off = 0, size;
	uint8_t *back;
	size_t got;
	size_t half;

	rec_build(&f, 40, "PEN-1", START_MS, 2000, "Fine");
	half = f.len / 2;
	assert_int_equal(archive_partial_append(a, "PEN-1", &f.info, 0, f.bytes,
	                                        half),
	                 PL_OK);
	/* The daemon dies: no commit, the handle just goes. */
	archive_close(a);

	a = open_ok(c->db);
	assert_int_equal(archive_partial_offset(a, "PEN-1", &f.info, &off), PL_OK);
	assert_int_equal(off, half);
	assert_int_equal(archive_partial_append(a, "PEN-1", &f.info, off,
	                                        f.bytes + off, f.len - off),
	                 PL_OK);
	assert_int_equal(archive_commit_session(a, "PEN-1", &f.info), PL_OK);
	back = malloc(f.len);
	assert_non_null(back);
	k = key_of("PEN-1", &f);
	assert_int_equal(archive_read_record(a, &k, 0, back, f.len, &got,
	                                     &size),
	                 PL_OK);
	assert_int_equal(got, f.len);
	assert_memory_equal(back, f.bytes, f.len);
	free(back);
	archive_close(a);
	rec_free(&f);
}

static void test_partial_of_changed_record(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct rec f, g;
	uint64_t off = 0;

	rec_build(&f, 50, "PEN-1", START_MS, 500, "Fine");
	rec_build(&g, 50, "PEN-1", START_MS, 900, "Fine"); /* same uuid, bigger */
	assert_int_equal(archive_partial_append(a, "PEN-1", &f.info, 0, f.bytes,
	                                        1000),
	                 PL_OK);
	/* Appending under another size before asking is refused. */
	assert_int_equal(archive_partial_append(a, "PEN-1", &g.info, 1000,
	                                        g.bytes + 1000, 10),
	                 PL_ERR_CONFLICT);
	assert_int_equal(archive_partial_offset(a, "PEN-1", &f.info, &off), PL_OK);
	assert_int_equal(off, 1000);
	/* The pen now says g: the old bytes go, the download restarts. */
	assert_int_equal(archive_partial_offset(a, "PEN-1", &g.info, &off), PL_OK);
	assert_int_equal(off, 0);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM partial_chunks"), 0);
	assert_int_equal(archive_partial_offset(a, "PEN-1", &f.info, &off), PL_OK);
	assert_int_equal(off, 0);
	/* Past the end of the record. */
	assert_int_equal(archive_partial_append(a, "PEN-1", &g.info, 0, g.bytes,
	                                        g.len + 1),
	                 PL_ERR_ARG);
	store(a, "PEN-1", &g);
	archive_close(a);
	rec_free(&f);
	rec_free(&g);
}

static void test_list_filters(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct rec r[4];
	struct listed l;

	/* Committed out of start order. */
	rec_build(&r[0], 60, "PEN-A", START_MS + 3000, 10, "x");
	rec_build(&r[1], 61, "PEN-B", START_MS + 1000, 10, "x");
	rec_build(&r[2], 62, "PEN-A", START_MS + 2000, 10, "x");
	rec_build(&r[3], 63, "PEN-A", START_MS, 10, "x");
	for (int i = 0; i < 4; i++)
		store(a, r[i].rec.serial, &r[i]);

	memset(&l, 0, sizeof l);
	assert_int_equal(archive_list(a, NULL, 0, collect, &l), PL_OK);
	assert_int_equal(l.n, 4);
	assert_int_equal(l.s[0].summary.seq, 63);
	assert_int_equal(l.s[1].summary.seq, 61);
	assert_int_equal(l.s[2].summary.seq, 62);
	assert_int_equal(l.s[3].summary.seq, 60);

	memset(&l, 0, sizeof l);
	assert_int_equal(archive_list(a, "PEN-A", 0, collect, &l), PL_OK);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.s[0].summary.seq, 63);
	assert_int_equal(l.s[1].summary.seq, 62);
	assert_int_equal(l.s[2].summary.seq, 60);

	memset(&l, 0, sizeof l);
	assert_int_equal(archive_list(a, NULL, START_MS + 1000, collect, &l), PL_OK);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.s[0].summary.seq, 61);

	memset(&l, 0, sizeof l);
	assert_int_equal(archive_list(a, "PEN-A", START_MS + 1001, collect, &l),
	                 PL_OK);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.s[0].summary.seq, 62);

	memset(&l, 0, sizeof l);
	assert_int_equal(archive_list(a, "PEN-C", 0, collect, &l), PL_OK);
	assert_int_equal(l.n, 0);

	/* The callback stops the listing. */
	memset(&l, 0, sizeof l);
	l.stop_after = 2;
	assert_int_equal(archive_list(a, NULL, 0, collect, &l), PL_OK);
	assert_int_equal(l.n, 2);

	archive_close(a);
	for (int i = 0; i < 4; i++)
		rec_free(&r[i]);
}

/* ------------------------------------------------------------------ export */

/* The whole export, and how many pieces it came in. */
static char *export_all(struct archive *a, enum export_format f,
                        const char *serial, int64_t since, int *pieces)
{
	struct export_cursor *cur = NULL;
	char *all = NULL, *d;
	size_t len = 0, n;
	int e;

	e = archive_export_begin(a, f, serial, since, false, &cur);
	if (e != PL_OK)
		fail_msg("export_begin: %d %s", e, archive_errmsg(a));
	*pieces = 0;
	for (;;) {
		e = archive_export_next(cur, &d, &n, NULL);
		if (e != PL_OK)
			fail_msg("export_next: %d %s", e, archive_errmsg(a));
		if (!d) {
			assert_int_equal(n, 0);
			break;
		}
		(*pieces)++;
		all = realloc(all, len + n + 1);
		assert_non_null(all);
		memcpy(all + len, d, n);
		len += n;
		all[len] = '\0';
		free(d);
	}
	/* Stays at the end. */
	assert_int_equal(archive_export_next(cur, &d, &n, NULL), PL_OK);
	assert_null(d);
	archive_export_end(cur);
	return all;
}

/* RFC 4180 reader for the test: rows of fields, CRLF line ends. */
#define MAXF 32
#define MAXR 8
struct csv {
	int rows;
	int nf[MAXR];
	char *f[MAXR][MAXF];
};

static void csv_parse(const char *s, struct csv *c)
{
	memset(c, 0, sizeof *c);
	while (*s) {
		int r = c->rows++;
		assert_true(r < MAXR);
		for (;;) {
			char buf[512];
			size_t n = 0;
			assert_true(c->nf[r] < MAXF);
			if (*s == '"') {
				for (s++;; s++) {
					assert_true(*s != '\0');   /* unterminated quote */
					if (*s == '"' && s[1] == '"') {
						buf[n++] = '"';
						s++;
					} else if (*s == '"') {
						s++;
						break;
					} else {
						buf[n++] = *s;
					}
					assert_true(n < sizeof buf);
				}
			} else {
				while (*s && *s != ',' && *s != '\r' && *s != '\n') {
					assert_true(*s != '"');   /* bare quote */
					buf[n++] = *s++;
					assert_true(n < sizeof buf);
				}
			}
			buf[n] = '\0';
			c->f[r][c->nf[r]++] = strdup(buf);
			if (*s == ',') {
				s++;
				continue;
			}
			assert_true(s[0] == '\r' && s[1] == '\n');
			s += 2;
			break;
		}
	}
}

static void csv_free(struct csv *c)
{
	for (int r = 0; r < c->rows; r++)
		for (int i = 0; i < c->nf[r]; i++)
			free(c->f[r][i]);
}

static const char *col(const struct csv *c, int row, const char *name)
{
	for (int i = 0; i < c->nf[0]; i++)
		if (strcmp(c->f[0][i], name) == 0) {
			assert_int_equal(c->nf[row], c->nf[0]);
			return c->f[row][i];
		}
	fail_msg("no column %s", name);
	return NULL;
}

/* A record that does not decode, stored with a matching digest. */
static void store_garbage(struct archive *a, const char *serial,
                          uint8_t uuid_byte, int64_t start_ms,
                          struct pl_session_info *info)
{
	uint8_t junk[300];

	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)(0xff - i);
	memset(info, 0, sizeof *info);
	memset(info->uuid, uuid_byte, 16);
	info->seq = uuid_byte;
	info->size = sizeof junk;
	pl_sha256(junk, sizeof junk, info->sha256);
	info->start_ms = start_ms;
	info->end_ms = start_ms + 1500;
	info->rtc_time = false;
	assert_int_equal(archive_partial_append(a, serial, info, 0, junk,
	                                        sizeof junk),
	                 PL_OK);
	assert_int_equal(archive_commit_session(a, serial, info), PL_OK);
}

static void test_export_csv(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct rec f, g;
	struct pl_session_info junk;
	struct csv csv;
	char *out, uuid[37], hex[65];
	int pieces;

	rec_build(&f, 70, "PEN-1", START_MS, 250, "Cheek, \"deep\"");
	rec_build(&g, 71, "PEN-2", START_MS + 5000, 10, "Other");
	store(a, "PEN-1", &f);
	store(a, "PEN-2", &g);
	store_garbage(a, "PEN-1", 72, 42, &junk);   /* uptime start 42 ms */
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM sessions "
	                                  "WHERE decode_error IS NOT NULL"),
	                 1);
	/* The pen as last seen at attach: its model reaches the export. */
	assert_int_equal(archive_pen_seen(a, "PEN-1", "MN-1", "=rev B", "1.0.0"), PL_OK);
	assert_int_equal(archive_pen_seen(a, "PEN-1", "MN-2", "=rev C", "1.1.0"), PL_OK);

	out = export_all(a, EXPORT_CSV, NULL, 0, &pieces);
	assert_int_equal(pieces, 4);   /* header + one piece per session */
	/* The quoting itself, as RFC 4180 has it. */
	assert_non_null(strstr(out, ",\"Cheek, \"\"deep\"\"\","));
	csv_parse(out, &csv);
	free(out);
	assert_int_equal(csv.rows, 4);
	assert_int_equal(csv.nf[0], 32);
	assert_string_equal(csv.f[0][0], "serial");
	assert_string_equal(csv.f[0][22], "archived_utc");
	assert_string_equal(csv.f[0][23], "client_ref");
	assert_string_equal(csv.f[0][24], "operator");
	assert_string_equal(csv.f[0][25], "notes");

	/* Oldest first: the uptime session (start 42) leads. */
	assert_string_equal(col(&csv, 1, "serial"), "PEN-1");
	assert_string_equal(col(&csv, 1, "seq"), "72");
	assert_string_equal(col(&csv, 1, "time_source"), "uptime");
	assert_string_equal(col(&csv, 1, "start_utc"), "");
	assert_string_equal(col(&csv, 1, "duration_s"), "1.500");
	assert_string_equal(col(&csv, 1, "preset_name"), "");
	assert_string_equal(col(&csv, 1, "events"), "");
	assert_string_equal(col(&csv, 1, "size"), "300");

	pl_uuid_format(f.uuid, uuid);
	pl_hex_format(f.info.sha256, 32, hex);
	assert_string_equal(col(&csv, 2, "serial"), "PEN-1");
	assert_string_equal(col(&csv, 2, "uuid"), uuid);
	assert_string_equal(col(&csv, 2, "seq"), "70");
	assert_string_equal(col(&csv, 2, "start_utc"), "2023-11-14T22:13:20.000Z");
	assert_string_equal(col(&csv, 2, "end_utc"), "2023-11-14T23:15:23.500Z");
	assert_string_equal(col(&csv, 2, "time_source"), "rtc");
	assert_string_equal(col(&csv, 2, "duration_s"), "3723.500");
	assert_string_equal(col(&csv, 2, "preset_id"), "3");
	assert_string_equal(col(&csv, 2, "preset_name"), "Cheek, \"deep\"");
	assert_string_equal(col(&csv, 2, "depth_mm"), "0.5");
	assert_string_equal(col(&csv, 2, "speed_level"), "3");
	assert_string_equal(col(&csv, 2, "area"), "forehead");
	assert_string_equal(col(&csv, 2, "needle_count"), "12");
	assert_string_equal(col(&csv, 2, "cartridge_lot"), "L2309-14");
	assert_string_equal(col(&csv, 2, "run_time_s"), "1513");
	assert_string_equal(col(&csv, 2, "strokes"), "151300");
	assert_string_equal(col(&csv, 2, "max_depth_mm"), "0.75");
	assert_string_equal(col(&csv, 2, "errors"), "1");
	assert_string_equal(col(&csv, 2, "events"), "6");
	assert_string_equal(col(&csv, 2, "samples"), "250");
	assert_int_equal(strtoull(col(&csv, 2, "size"), NULL, 10), f.len);
	assert_string_equal(col(&csv, 2, "sha256"), hex);
	/* 20YY-MM-DDTHH:MM:SS.mmmZ */
	assert_int_equal(strlen(col(&csv, 2, "archived_utc")), 24);
	assert_int_equal(col(&csv, 2, "archived_utc")[23], 'Z');
	assert_string_equal(col(&csv, 3, "serial"), "PEN-2");
	assert_string_equal(col(&csv, 2, "model"), "MN-2");
	/* Pen text in a spreadsheet: the formula guard. */
	assert_string_equal(col(&csv, 2, "hw_revision"), "'=rev C");
	assert_string_equal(col(&csv, 3, "model"), "");   /* never seen */
	assert_string_equal(col(&csv, 2, "areas"), "forehead;cheek");
	assert_string_equal(col(&csv, 2, "paused_s"), "0.000");
	assert_string_equal(col(&csv, 2, "error_codes"), "");
	assert_string_equal(col(&csv, 1, "paused_s"), "");  /* no record */
	csv_free(&csv);

	/* Filters, as archive_list. */
	out = export_all(a, EXPORT_CSV, "PEN-2", 0, &pieces);
	csv_parse(out, &csv);
	assert_int_equal(csv.rows, 2);
	assert_string_equal(col(&csv, 1, "seq"), "71");
	csv_free(&csv);
	free(out);
	out = export_all(a, EXPORT_CSV, "PEN-1", START_MS, &pieces);
	csv_parse(out, &csv);
	assert_int_equal(csv.rows, 2);
	assert_string_equal(col(&csv, 1, "seq"), "70");
	csv_free(&csv);
	free(out);

	archive_close(a);
	rec_free(&f);
	rec_free(&g);
}

static void test_export_json(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct export_cursor *cur;
	struct pl_session_info junk;
	struct rec f;
	json_object *root, *o, *v;
	char *out, *d, uuid[37], hex[65];
	size_t n;
	int pieces;

	/* Empty archive: still a valid, empty array. */
	out = export_all(a, EXPORT_JSON, NULL, 0, &pieces);
	root = json_tokener_parse(out);
	assert_non_null(root);
	assert_int_equal(json_object_array_length(root), 0);
	json_object_put(root);
	free(out);

	rec_build(&f, 80, "PEN-1", START_MS, 300, "Cheek, \"deep\"");
	store(a, "PEN-1", &f);
	store_garbage(a, "PEN-1", 81, START_MS + 10, &junk);

	/* A session committed after the export began is not part of it. */
	assert_int_equal(archive_export_begin(a, EXPORT_JSON, NULL, 0, false, &cur), PL_OK);
	{
		struct rec late;
		rec_build(&late, 82, "PEN-1", START_MS + 20, 5, "x");
		store(a, "PEN-1", &late);
		rec_free(&late);
	}
	pieces = 0;
	out = NULL;
	for (size_t len = 0;; pieces++) {
		assert_int_equal(archive_export_next(cur, &d, &n, NULL), PL_OK);
		if (!d)
			break;
		out = realloc(out, len + n + 1);
		memcpy(out + len, d, n);
		len += n;
		out[len] = '\0';
		free(d);
	}
	archive_export_end(cur);
	assert_int_equal(pieces, 4);   /* "[", two sessions, "]" */

	root = json_tokener_parse(out);
	if (!root)
		fail_msg("not JSON: %s", out);
	free(out);
	assert_true(json_object_is_type(root, json_type_array));
	assert_int_equal(json_object_array_length(root), 2);

	o = json_object_array_get_idx(root, 0);
	pl_uuid_format(f.uuid, uuid);
	pl_hex_format(f.info.sha256, 32, hex);
	assert_true(json_object_object_get_ex(o, "uuid", &v));
	assert_string_equal(json_object_get_string(v), uuid);
	assert_true(json_object_object_get_ex(o, "serial", &v));
	assert_string_equal(json_object_get_string(v), "PEN-1");
	assert_true(json_object_object_get_ex(o, "sha256", &v));
	assert_string_equal(json_object_get_string(v), hex);
	assert_true(json_object_object_get_ex(o, "archived_utc_ms", &v));
	assert_true(json_object_is_type(v, json_type_int));
	assert_true(json_object_get_int64(v) > START_MS);
	assert_true(json_object_object_get_ex(o, "start_utc_ms", &v));
	assert_int_equal(json_object_get_int64(v), START_MS);
	assert_true(json_object_object_get_ex(o, "preset", &v));
	assert_true(json_object_object_get_ex(v, "name", &v));
	assert_string_equal(json_object_get_string(v), "Cheek, \"deep\"");
	assert_true(json_object_object_get_ex(o, "events", &v));
	assert_int_equal(json_object_array_length(v), 6);
	assert_true(json_object_object_get_ex(o, "telemetry", &v));
	assert_false(json_object_object_get_ex(v, "samples", NULL));
	assert_true(json_object_object_get_ex(v, "count", &v));
	assert_int_equal(json_object_get_int64(v), 300);

	o = json_object_array_get_idx(root, 1);
	assert_true(json_object_object_get_ex(o, "decode_error", &v));
	assert_true(strlen(json_object_get_string(v)) > 0);
	assert_true(json_object_object_get_ex(o, "seq", &v));
	assert_int_equal(json_object_get_int64(v), 81);
	assert_true(json_object_object_get_ex(o, "time_source", &v));
	assert_string_equal(json_object_get_string(v), "uptime");
	assert_true(json_object_object_get_ex(o, "sha256", &v));
	json_object_put(root);

	archive_close(a);
	rec_free(&f);
}

/* ------------------------------------------------------------------ audit */

struct audits {
	int n;
	int64_t t[8];
	char action[8][32];
	char user[8][32];
	char old_value[8][64];
};

static int collect_audit(void *ud, const struct audit_entry *e)
{
	struct audits *l = ud;

	if (l->n < 8) {
		l->t[l->n] = e->utc_ms;
		snprintf(l->action[l->n], 32, "%s", e->action);
		snprintf(l->user[l->n], 32, "%s", e->user);
		snprintf(l->old_value[l->n], 64, "%s", e->old_value);
	}
	l->n++;
	return 0;
}

static void test_audit(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct audits l;
	char msg[256];
	struct audit_entry e = {
	    .utc_ms = 1000, .uid = 1001, .user = "alice", .pen = "PEN-1",
	    .action = "presets.push", .old_value = "{\"presets\":[]}",
	    .new_value = "{\"presets\":[{\"id\":1}]}", .result = "ok",
	};

	assert_int_equal(archive_audit_add(a, &e), PL_OK);
	e.utc_ms = 3000;
	e.action = "denied:presets.push";
	e.user = NULL;   /* no login name: the uid */
	e.result = "permission denied: not in group penlink-tech";
	assert_int_equal(archive_audit_add(a, &e), PL_OK);
	e.utc_ms = 2000;
	e.action = "attach";
	e.user = "root";
	e.old_value = NULL;
	assert_int_equal(archive_audit_add(a, &e), PL_OK);
	e.action = NULL;
	assert_int_equal(archive_audit_add(a, &e), PL_ERR_ARG);

	memset(&l, 0, sizeof l);
	assert_int_equal(archive_audit_list(a, 0, 0, collect_audit, &l), PL_OK);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.t[0], 3000);
	assert_string_equal(l.action[0], "denied:presets.push");
	assert_string_equal(l.user[0], "1001");
	assert_int_equal(l.t[1], 2000);
	assert_string_equal(l.old_value[1], "");
	assert_int_equal(l.t[2], 1000);
	assert_string_equal(l.user[2], "alice");
	assert_string_equal(l.old_value[2], "{\"presets\":[]}");

	memset(&l, 0, sizeof l);
	assert_int_equal(archive_audit_list(a, 0, 2, collect_audit, &l), PL_OK);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.t[1], 2000);
	memset(&l, 0, sizeof l);
	assert_int_equal(archive_audit_list(a, 2000, 0, collect_audit, &l), PL_OK);
	assert_int_equal(l.n, 2);

	/* Append-only even for SQL written by hand. */
	assert_int_not_equal(exec_sql(c->db, "UPDATE audit SET result = 'ok'", msg,
	                              sizeof msg),
	                     SQLITE_OK);
	assert_non_null(strstr(msg, "append-only"));
	assert_int_not_equal(exec_sql(c->db, "DELETE FROM audit", msg, sizeof msg),
	                     SQLITE_OK);
	assert_non_null(strstr(msg, "append-only"));
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM audit"), 3);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM audit "
	                                  "WHERE result = 'ok'"),
	                 1);
	archive_close(a);
}

/* ------------------------------------------------------------------ audit chain */

static void add_audit(struct archive *a, int i)
{
	char nv[64];
	snprintf(nv, sizeof nv, "{\"n\": %d}", i);
	struct audit_entry e = {
	    .utc_ms = 1000 + i, .uid = 1000, .user = "alice", .pen = "PEN-1",
	    .action = "clock.sync", .old_value = "", .new_value = nv,
	    .result = "ok",
	};
	assert_int_equal(archive_audit_add(a, &e), PL_OK);
}

/* Verifies the chain as penlinkd does; returns the first bad row (0 when
 * intact) and its reason in why. */
static int64_t verify(struct archive *a, const char *anchor, char *why,
                      size_t len)
{
	struct plc_audit_chain ch;
	assert_int_equal(archive_audit_verify(a, anchor, &ch), PL_OK);
	snprintf(why, len, "%s", ch.reason);
	if (!ch.broken)
		return 0;
	return ch.bad_id ? ch.bad_id : -1;
}

/* Behind the archive's back, as someone with the file would: the
 * triggers go first. */
static void tamper(const char *db, const char *sql)
{
	char msg[256], all[1024];
	snprintf(all, sizeof all,
	         "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; %s",
	         sql);
	if (exec_sql(db, all, msg, sizeof msg) != SQLITE_OK)
		fail_msg("tamper: %s", msg);
}

static void copy_file(const char *from, const char *to)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
	assert_int_equal(system(cmd), 0);
}

static void test_audit_chain(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	char why[256], head[PLC_AUDIT_HASH_TEXT], p[200];

	for (int i = 1; i <= 6; i++)
		add_audit(a, i);
	assert_int_equal(verify(a, NULL, why, sizeof why), 0);
	/* Each row names the one before; values are stored compact. */
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM audit a JOIN "
	                                  "audit b ON b.id = a.id - 1 "
	                                  "WHERE a.prev_hash = b.hash"),
	                 5);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM audit WHERE "
	                                  "new_value LIKE '{\"n\":%}'"),
	                 6);
	struct plc_audit_chain ch;
	assert_int_equal(archive_audit_verify(a, NULL, &ch), PL_OK);
	assert_int_equal(ch.rows, 6);
	snprintf(head, sizeof head, "%s", ch.prev);
	assert_int_equal(verify(a, head, why, sizeof why), 0);
	archive_close(a);

	/* Each tampering on a copy of its own. */
	static const struct {
		const char *sql;
		int64_t bad;
		const char *says;
	} cases[] = {
	    {"DELETE FROM audit WHERE id = 3;", 4, "row 3 was removed"},
	    {"DELETE FROM audit WHERE id IN (2, 3);", 4, "rows 2-3 were removed"},
	    {"DELETE FROM audit WHERE id = 1;", 2, "does not start the chain"},
	    {"UPDATE audit SET result = 'refused' WHERE id = 5;", 5, "changed"},
	    {"UPDATE audit SET new_value = '{\"n\":99}' WHERE id = 2;", 2,
	     "changed"},
	    {"UPDATE audit SET hash = NULL WHERE id = 4;", 4, "no valid hash"},
	    /* Two rows swapped, whole (hashes too) but for the id... */
	    {"CREATE TEMP TABLE t AS SELECT * FROM audit WHERE id IN (3, 4);"
	     "UPDATE audit SET (utc_ms, uid, user, pen, action, old_value, "
	     "new_value, result, prev_hash, hash) = (SELECT utc_ms, uid, user, "
	     "pen, action, old_value, new_value, result, prev_hash, hash FROM t "
	     "WHERE t.id = 7 - audit.id) WHERE id IN (3, 4);",
	     3, "changed"},
	    /* ...and by id, each row intact in itself. */
	    {"UPDATE audit SET id = -id WHERE id IN (3, 4);"
	     "UPDATE audit SET id = 4 WHERE id = -3;"
	     "UPDATE audit SET id = 3 WHERE id = -4;",
	     3, "changed"},
	    /* A row inserted with a made-up hash. */
	    {"INSERT INTO audit (id, utc_ms, uid, user, pen, action, old_value, "
	     "new_value, result, prev_hash, hash) SELECT 7, 9999, 0, 'mallory', "
	     "'', 'x', '', '', 'ok', hash, hash FROM audit WHERE id = 6;",
	     7, "changed"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(p, sizeof p, "%s/copy%zu.db", c->dir, i);
		copy_file(c->db, p);
		tamper(p, cases[i].sql);
		a = open_ok(p);
		int64_t bad = verify(a, NULL, why, sizeof why);
		if (bad != cases[i].bad || !strstr(why, cases[i].says))
			fail_msg("case %zu: bad row %" PRId64 " (%s), expected %" PRId64
			         " (%s)", i, bad, why, cases[i].bad, cases[i].says);
		archive_close(a);
		unlink(p);
		strcat(p, ".lock");
		unlink(p);
	}

	/* The last row removed: the chain alone is whole, the anchor is not. */
	snprintf(p, sizeof p, "%s/tail.db", c->dir);
	copy_file(c->db, p);
	tamper(p, "DELETE FROM audit WHERE id = 6;");
	a = open_ok(p);
	assert_int_equal(verify(a, NULL, why, sizeof why), 0);
	assert_int_equal(verify(a, head, why, sizeof why), -1);
	assert_non_null(strstr(why, "not in the chain"));
	/* Appending after tampering chains on from what is there. */
	add_audit(a, 7);
	assert_int_equal(verify(a, NULL, why, sizeof why), 0);
	archive_close(a);
	unlink(p);
	strcat(p, ".lock");
	unlink(p);
}

/* Rows written before schema 3 are chained in id order by the migration,
 * which records that it did. */
static void test_audit_chain_migration(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	char why[256];
	for (int i = 1; i <= 3; i++)
		add_audit(a, i);
	archive_close(a);
	/* Back to schema 2, with the three rows unchained. */
	assert_int_equal(exec_sql(c->db,
	                          "DROP TABLE pens;"
	                          "DROP TABLE annotations;"
	                          "ALTER TABLE audit DROP COLUMN prev_hash;"
	                          "ALTER TABLE audit DROP COLUMN hash;"
	                          "PRAGMA user_version = 2;",
	                          NULL, 0),
	                 SQLITE_OK);
	a = open_ok(c->db);
	assert_int_equal(archive_schema_version(a), 4);
	assert_int_equal(verify(a, NULL, why, sizeof why), 0);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM audit"), 4);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM audit WHERE "
	                                  "action = 'audit.chain' AND new_value = "
	                                  "'{\"schema\":3,\"rows_chained\":3}'"),
	                 1);
	/* The no-update trigger is back. */
	char msg[256];
	assert_int_not_equal(exec_sql(c->db, "UPDATE audit SET result = 'x'", msg,
	                              sizeof msg),
	                     SQLITE_OK);
	assert_non_null(strstr(msg, "append-only"));
	archive_close(a);
}

/* Old and new values are JSON objects, one line each. */
static void test_audit_values(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct audit_entry e = {
	    .uid = 0, .user = "root", .pen = "", .action = "attach",
	    .old_value = "{\n  \"presets\": [\n    { \"id\": 1 }\n  ]\n}",
	    .new_value = "/dev/pts/3", .result = "ok",
	};
	assert_int_equal(archive_audit_add(a, &e), PL_OK);
	e.old_value = "[1, 2]";
	e.new_value = "{\"a\": 1} trailing";
	assert_int_equal(archive_audit_add(a, &e), PL_OK);
	archive_close(a);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM audit WHERE id = 1 "
	                                  "AND old_value = '{\"presets\":[{\"id\":1}]}' "
	                                  "AND new_value = '{\"value\":\"/dev/pts/3\"}'"),
	                 1);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM audit WHERE id = 2 "
	                                  "AND old_value = '{\"value\":\"[1, 2]\"}' "
	                                  "AND new_value = "
	                                  "'{\"value\":\"{\"\"a\"\": 1} trailing\"}'"),
	                 0);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM audit WHERE id = 2 "
	                                  "AND old_value = '{\"value\":\"[1, 2]\"}' "
	                                  "AND json_extract(new_value, '$.value') = "
	                                  "'{\"a\": 1} trailing'"),
	                 1);
}

/* ------------------------------------------------------------------ annotations */

struct notes {
	int n;
	char client[4][80], oper[4][80], note[4][80], user[4][32];
};

static int collect_note(void *ud, const struct annotation *an)
{
	struct notes *l = ud;
	if (l->n < 4) {
		snprintf(l->client[l->n], 80, "%s", an->client_ref);
		snprintf(l->oper[l->n], 80, "%s", an->operator_name);
		snprintf(l->note[l->n], 80, "%s", an->note);
		snprintf(l->user[l->n], 32, "%s", an->user);
	}
	l->n++;
	return 0;
}

static int count_session(void *ud, const struct archived_session *s)
{
	(void)s;
	(*(int *)ud)++;
	return 0;
}

static void test_annotations(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct rec f, g;
	struct notes l;
	char msg[256], big[PLC_ANNOT_NOTE_MAX + 2];
	rec_build(&f, 1, "PEN-1", START_MS, 10, "Fine");
	rec_build(&g, 2, "PEN-1", START_MS + 10, 10, "Fine");
	store(a, "PEN-1", &f);
	store(a, "PEN-1", &g);
	struct pl_session_key kf = key_of("PEN-1", &f), kg = key_of("PEN-1", &g);
	struct pl_session_key none = key_of("PEN-9", &f);

	struct annotation an = {.uid = 1000, .user = "alice",
	                        .client_ref = "C-1", .operator_name = "Dr. A",
	                        .note = "first=1+2"};
	int64_t id = 0;
	assert_int_equal(archive_annotate(a, &kf, &an, &id), PL_OK);
	assert_int_equal(id, 1);
	/* A correction: a new client reference, no operator. */
	an.client_ref = "C-2";
	an.operator_name = "";
	an.note = "line\nbreak, \"quoted\"";
	assert_int_equal(archive_annotate(a, &kf, &an, NULL), PL_OK);
	an.client_ref = "C-1";
	an.note = "";
	assert_int_equal(archive_annotate(a, &kg, &an, NULL), PL_OK);
	assert_int_equal(archive_annotate(a, &none, &an, NULL), PL_ERR_NOT_FOUND);
	an.client_ref = an.operator_name = an.note = "";
	assert_int_equal(archive_annotate(a, &kf, &an, NULL), PL_ERR_ARG);
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	an.note = big;
	assert_int_equal(archive_annotate(a, &kf, &an, NULL), PL_ERR_VALIDATION);
	assert_non_null(strstr(archive_errmsg(a), "2000"));

	memset(&l, 0, sizeof l);
	assert_int_equal(archive_annotations(a, &kf, collect_note, &l), PL_OK);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.client[0], "C-1");
	assert_string_equal(l.oper[0], "Dr. A");
	assert_string_equal(l.client[1], "C-2");
	assert_string_equal(l.user[1], "alice");
	assert_int_equal(archive_annotations(a, &none, collect_note, &l),
	                 PL_ERR_NOT_FOUND);

	/* The current client reference is the latest one given. */
	int n = 0;
	assert_int_equal(archive_list_client(a, NULL, 0, "C-1", count_session, &n),
	                 PL_OK);
	assert_int_equal(n, 1);   /* g only: f was corrected to C-2 */
	n = 0;
	assert_int_equal(archive_list_client(a, "PEN-1", 0, "C-2", count_session,
	                                     &n),
	                 PL_OK);
	assert_int_equal(n, 1);
	n = 0;
	assert_int_equal(archive_list_client(a, "PEN-2", 0, "C-2", count_session,
	                                     &n),
	                 PL_OK);
	assert_int_equal(n, 0);
	n = 0;
	assert_int_equal(archive_list_client(a, NULL, 0, "", count_session, &n),
	                 PL_OK);
	assert_int_equal(n, 2);

	/* Exports carry them: CSV the current ones and every note, JSON all. */
	int pieces;
	char *out = export_all(a, EXPORT_CSV, NULL, 0, &pieces);
	struct csv csv;
	csv_parse(out, &csv);
	assert_string_equal(col(&csv, 1, "client_ref"), "C-2");
	assert_string_equal(col(&csv, 1, "operator"), "Dr. A");
	/* Cleaned for a spreadsheet: the line break escaped, no formula. */
	assert_string_equal(col(&csv, 1, "notes"),
	                    "first=1+2 | line\\x0abreak, \"quoted\"");
	assert_string_equal(col(&csv, 2, "client_ref"), "C-1");
	assert_string_equal(col(&csv, 2, "notes"), "");
	csv_free(&csv);
	free(out);
	out = export_all(a, EXPORT_JSON, NULL, 0, &pieces);
	json_object *arr = json_tokener_parse(out), *v;
	assert_non_null(arr);
	json_object *s0 = json_object_array_get_idx(arr, 0);
	assert_true(json_object_object_get_ex(s0, "annotations", &v));
	assert_int_equal(json_object_array_length(v), 2);
	json_object *a1 = json_object_array_get_idx(v, 1), *t;
	assert_true(json_object_object_get_ex(a1, "note", &t));
	assert_string_equal(json_object_get_string(t), "line\nbreak, \"quoted\"");
	assert_true(json_object_object_get_ex(a1, "user", &t));
	assert_string_equal(json_object_get_string(t), "alice");
	json_object_put(arr);
	free(out);

	/* Append-only for SQL by hand too. */
	assert_int_not_equal(exec_sql(c->db, "UPDATE annotations SET note = ''",
	                              msg, sizeof msg),
	                     SQLITE_OK);
	assert_non_null(strstr(msg, "append-only"));
	assert_int_not_equal(exec_sql(c->db, "DELETE FROM annotations", msg,
	                              sizeof msg),
	                     SQLITE_OK);
	assert_non_null(strstr(msg, "append-only"));
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM annotations"), 3);

	/* At most PLC_ANNOT_PER_SESSION_MAX per session (g has one). */
	an.note = "again";
	for (unsigned i = 1; i < PLC_ANNOT_PER_SESSION_MAX; i++)
		assert_int_equal(archive_annotate(a, &kg, &an, NULL), PL_OK);
	assert_int_equal(archive_annotate(a, &kg, &an, NULL), PL_ERR_VALIDATION);
	archive_close(a);
	rec_free(&f);
	rec_free(&g);
}

/*
 * Two pens that record sessions with equal UUIDs (cloned firmware does;
 * penemu --uuid-serial plays it): both sessions are archived, and each is
 * read, listed and exported as itself.  The archive used to look records up
 * by UUID alone and served the first pen's record for the second pen's name.
 */
static void test_same_uuid_two_pens(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct rec f, g;
	struct pl_session_key ka, kb;
	struct listed l = {0};
	uint8_t *back;
	size_t got;
	uint64_t size;
	struct csv csv;
	char *out;
	int pieces;

	rec_build(&f, 90, "PEN-A", START_MS, 200, "Alpha");
	rec_build(&g, 90, "PEN-B", START_MS + 1000, 300, "Beta");
	assert_memory_equal(f.uuid, g.uuid, 16);
	store(a, "PEN-A", &f);
	store(a, "PEN-B", &g);
	assert_true(archive_has_session(a, "PEN-A", f.uuid, NULL));
	assert_true(archive_has_session(a, "PEN-B", g.uuid, NULL));
	assert_int_equal(archive_list(a, NULL, 0, collect, &l), PL_OK);
	assert_int_equal(l.n, 2);

	ka = key_of("PEN-A", &f);
	kb = key_of("PEN-B", &g);
	back = malloc(g.len);
	assert_non_null(back);
	assert_int_equal(archive_read_record(a, &kb, 0, back, g.len, &got, &size),
	                 PL_OK);
	assert_int_equal(size, g.len);
	assert_int_equal(got, g.len);
	assert_memory_equal(back, g.bytes, g.len);
	assert_int_equal(archive_read_record(a, &ka, 0, back, f.len, &got, &size),
	                 PL_OK);
	assert_int_equal(size, f.len);
	assert_memory_equal(back, f.bytes, f.len);
	free(back);

	out = export_all(a, EXPORT_CSV, "PEN-B", 0, &pieces);
	csv_parse(out, &csv);
	assert_int_equal(csv.rows, 2);
	assert_string_equal(col(&csv, 1, "serial"), "PEN-B");
	assert_string_equal(col(&csv, 1, "preset_name"), "Beta");
	csv_free(&csv);
	free(out);
	out = export_all(a, EXPORT_CSV, NULL, 0, &pieces);
	csv_parse(out, &csv);
	assert_int_equal(csv.rows, 3);
	assert_string_equal(col(&csv, 1, "serial"), "PEN-A");
	assert_string_equal(col(&csv, 1, "preset_name"), "Alpha");
	assert_string_equal(col(&csv, 2, "serial"), "PEN-B");
	assert_string_equal(col(&csv, 2, "preset_name"), "Beta");
	csv_free(&csv);
	free(out);
	archive_close(a);
	rec_free(&f);
	rec_free(&g);
}

/*
 * Per session, each piece is one session's complete document, and says
 * whose it is: CSV with its header, JSON the object as the array has it.
 */
static void test_export_per_session(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct rec f, g;
	struct export_cursor *cur = NULL;
	struct archived_session who;
	struct csv csv;
	char *d, *array;
	size_t n;
	int pieces;

	rec_build(&f, 95, "PEN-A", START_MS, 20, "Alpha");
	rec_build(&g, 95, "PEN-B", START_MS + 1000, 30, "Beta");
	store(a, "PEN-A", &f);
	store(a, "PEN-B", &g);

	assert_int_equal(archive_export_begin(a, EXPORT_CSV, NULL, 0, true, &cur),
	                 PL_OK);
	for (int i = 0; i < 2; i++) {
		memset(&who, 0, sizeof who);
		assert_int_equal(archive_export_next(cur, &d, &n, &who), PL_OK);
		assert_non_null(d);
		assert_int_equal(strlen(d), n);
		assert_string_equal(who.serial, i ? "PEN-B" : "PEN-A");
		assert_memory_equal(who.uuid, f.uuid, 16);
		csv_parse(d, &csv);
		assert_int_equal(csv.rows, 2);
		assert_string_equal(col(&csv, 1, "serial"), who.serial);
		assert_string_equal(col(&csv, 1, "preset_name"),
		                    i ? "Beta" : "Alpha");
		csv_free(&csv);
		free(d);
	}
	assert_int_equal(archive_export_next(cur, &d, &n, &who), PL_OK);
	assert_null(d);
	assert_int_equal(n, 0);
	archive_export_end(cur);

	/* JSON: each piece is the very text of its element in the array. */
	array = export_all(a, EXPORT_JSON, NULL, 0, &pieces);
	assert_int_equal(archive_export_begin(a, EXPORT_JSON, NULL, 0, true, &cur),
	                 PL_OK);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(archive_export_next(cur, &d, &n, &who), PL_OK);
		assert_non_null(d);
		assert_int_equal(d[0], '{');
		assert_int_equal(d[n - 1], '}');
		assert_non_null(strstr(array, d));
		assert_non_null(strstr(d, i ? "\"Beta\"" : "\"Alpha\""));
		assert_string_equal(who.serial, i ? "PEN-B" : "PEN-A");
		free(d);
	}
	assert_int_equal(archive_export_next(cur, &d, &n, &who), PL_OK);
	assert_null(d);
	archive_export_end(cur);
	free(array);
	archive_close(a);
	rec_free(&f);
	rec_free(&g);
}

/* ------------------------------------------------------------------ schema */

static void test_migrate_from_version_0(void **state)
{
	struct ctx *c = *state;
	struct archive *a;
	int fd;

	/* An SQLite database at version 0 with something else in it. */
	assert_int_equal(exec_sql(c->db, "CREATE TABLE notes (t TEXT);", NULL, 0),
	                 SQLITE_OK);
	assert_int_equal(query_int(c->db, "PRAGMA user_version"), 0);
	a = open_ok(c->db);
	assert_int_equal(archive_schema_version(a), 4);
	archive_close(a);
	assert_int_equal(query_int(c->db, "PRAGMA user_version"), 4);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM sqlite_master "
	                                  "WHERE name IN ('sessions', 'events', "
	                                  "'samples', 'partials', "
	                                  "'partial_chunks', 'audit', "
	                                  "'sample_progress', 'annotations')"),
	                 8);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM sqlite_master "
	                                  "WHERE type = 'trigger'"),
	                 4);
	/* Opening again changes nothing. */
	a = open_ok(c->db);
	assert_int_equal(archive_schema_version(a), 4);
	archive_close(a);

	/* An empty file (as left by a crash at creation) is version 0 too. */
	teardown(state);
	setup(state);
	c = *state;
	fd = open(c->db, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	a = open_ok(c->db);
	assert_int_equal(archive_schema_version(a), 4);
	archive_close(a);
}

/* Schema 1 kept decode progress in sessions.samples_next; schema 2 moves
 * it to sample_progress and decoding goes on from where it stood. */
static void test_migrate_from_version_1(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct rec f, g;
	bool more;

	rec_build(&f, 40, "PEN-1", START_MS, 1000, "Fine");
	rec_build(&g, 41, "PEN-1", START_MS + 10, 300, "Fine");
	store(a, "PEN-1", &f);
	store(a, "PEN-1", &g);
	assert_int_equal(archive_decode_step(a, 400, &more), PL_OK);
	assert_true(more);
	archive_close(a);
	/* Back to what schema 1 left on disk: f 400 samples in, g untouched
	 * (and nothing of schema 3). */
	assert_int_equal(
	    exec_sql(c->db,
	             "DROP TABLE pens;"
	             "DROP TABLE annotations;"
	             "ALTER TABLE audit DROP COLUMN prev_hash;"
	             "ALTER TABLE audit DROP COLUMN hash;"
	             "UPDATE sessions SET samples_next = (SELECT next FROM "
	             "  sample_progress WHERE session_id = id);"
	             "DROP TABLE sample_progress;"
	             "CREATE INDEX sessions_samples_pending ON sessions (id)"
	             "  WHERE samples_next IS NOT NULL;"
	             "PRAGMA user_version = 1;",
	             NULL, 0),
	    SQLITE_OK);
	assert_int_equal(query_int(c->db, "SELECT sum(samples_next) FROM sessions"),
	                 400);

	a = open_ok(c->db);
	assert_int_equal(archive_schema_version(a), 4);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM sessions "
	                                  "WHERE samples_next IS NOT NULL"),
	                 0);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM sqlite_master "
	                                  "WHERE name = 'sessions_samples_pending'"),
	                 0);
	assert_int_equal(query_int(c->db, "SELECT next FROM sample_progress "
	                                  "JOIN sessions ON id = session_id "
	                                  "WHERE seq = 40"),
	                 400);
	assert_int_equal(query_int(c->db, "SELECT next FROM sample_progress "
	                                  "JOIN sessions ON id = session_id "
	                                  "WHERE seq = 41"),
	                 0);
	/* Picks up at 400: no sample twice, none missing. */
	assert_int_equal(decode_all(a, 1000), 2);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"), 1300);
	assert_int_equal(query_int(c->db, "SELECT count(DISTINCT session_id * "
	                                  "100000 + idx) FROM samples"),
	                 1300);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM sample_progress"),
	                 0);
	archive_close(a);
	rec_free(&f);
	rec_free(&g);
}

static void test_newer_schema_refused(void **state)
{
	struct ctx *c = *state;
	struct archive *a = NULL;
	int fd;

	assert_int_equal(exec_sql(c->db, "PRAGMA user_version = 999;", NULL, 0),
	                 SQLITE_OK);
	assert_int_equal(archive_open(c->db, &a), PL_ERR_VERSION);
	assert_non_null(strstr(archive_errmsg(a), "999"));
	assert_non_null(strstr(archive_errmsg(a), "(4)"));
	assert_non_null(strstr(archive_errmsg(a), c->db));
	archive_close(a);
	/* Untouched, and the failed open left no lock behind. */
	assert_int_equal(query_int(c->db, "PRAGMA user_version"), 999);
	assert_int_equal(archive_open(c->db, &a), PL_ERR_VERSION);
	archive_close(a);

	/* Not a database at all. */
	unlink(c->db);
	fd = open(c->db, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "this is not an SQLite database, just text.....",
	                       46),
	                 46);
	for (int i = 0; i < 100; i++)
		assert_int_equal(write(fd, "................................", 32), 32);
	close(fd);
	a = NULL;
	assert_int_equal(archive_open(c->db, &a), PL_ERR_IO);
	assert_non_null(strstr(archive_errmsg(a), "not a database"));
	archive_close(a);

	assert_int_equal(archive_open(NULL, &a), PL_ERR_ARG);
	archive_close(a);
	assert_int_equal(archive_open("/nonexistent-dir/x.db", &a), PL_ERR_IO);
	assert_non_null(strstr(archive_errmsg(a), "/nonexistent-dir/x.db"));
	archive_close(a);
}

/* ------------------------------------------------------------------ faults */

static void set_fsize(rlim_t soft)
{
	struct rlimit rl;

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
	rl.rlim_cur = soft == RLIM_INFINITY ? rl.rlim_max : soft;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

/*
 * A write that fails like a full disk.  RLIMIT_FSIZE makes every write past
 * the limit fail (EFBIG) for root too, which chmod does not; the daemon's
 * real ENOSPC takes the same path in SQLite (a failed write, a rolled-back
 * transaction).
 */
static void test_failed_commit_is_an_error(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct audit_entry ae = {.uid = 0, .user = "root", .action = "attach",
	                         .result = "ok"};
	struct rec f;
	uint64_t off = 0;
	int e;

	rec_build(&f, 90, "PEN-1", START_MS, 40000, "Fine");
	assert_true(f.len > 100000);
	append_all(a, "PEN-1", &f, 65536);

	signal(SIGXFSZ, SIG_IGN);
	set_fsize(4096);
	e = archive_commit_session(a, "PEN-1", &f.info);
	set_fsize(RLIM_INFINITY);
	assert_int_equal(e, PL_ERR_IO);
	assert_non_null(strstr(archive_errmsg(a), "archive session"));
	assert_non_null(strstr(archive_errmsg(a), "disk has space"));
	assert_non_null(strstr(archive_errmsg(a), c->db));

	/* Nothing half-written: not archived, the download still whole. */
	assert_false(archive_has_session(a, "PEN-1", f.uuid, NULL));
	assert_int_equal(archive_partial_offset(a, "PEN-1", &f.info, &off), PL_OK);
	assert_int_equal(off, f.len);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM sessions"), 0);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"), 0);

	set_fsize(4096);
	e = archive_audit_add(a, &ae);
	set_fsize(RLIM_INFINITY);
	assert_int_equal(e, PL_ERR_IO);

	/* Space again: the same commit goes through. */
	assert_int_equal(archive_commit_session(a, "PEN-1", &f.info), PL_OK);
	assert_true(archive_has_session(a, "PEN-1", f.uuid, NULL));
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"), 0);

	/* Decoding fails the same way and leaves its progress mark alone:
	 * the rows are done again, whole, once there is space. */
	{
		bool more = false;
		assert_int_equal(archive_decode_step(a, 10000, &more), PL_OK);
		assert_true(more);
		set_fsize(4096);
		e = archive_decode_step(a, 30000, &more);
		set_fsize(RLIM_INFINITY);
		assert_int_equal(e, PL_ERR_IO);
		assert_non_null(strstr(archive_errmsg(a), "telemetry sample rows"));
		assert_int_equal(query_int(c->db, "SELECT next FROM sample_progress"),
		                 10000);
		assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"),
		                 10000);
	}
	assert_int_equal(decode_all(a, 30000), 1);
	assert_int_equal(query_int(c->db, "SELECT count(*) FROM samples"), 40000);
	assert_int_equal(query_int(c->db, "SELECT sum(depth_um) FROM samples"),
	                 query_int(c->db, "SELECT sum(480 + idx % 41) FROM samples"));
	assert_int_equal(archive_audit_add(a, &ae), PL_OK);
	signal(SIGXFSZ, SIG_DFL);
	archive_close(a);
	rec_free(&f);
}

/*
 * The rest run in a child process: one drops root to see a database it may
 * not write, one mounts a tiny tmpfs in a mount namespace of its own (gone
 * with the child) for a real ENOSPC.  The child reports by exit status:
 * 0 passed, 77 cannot run here (skipped), else failed (reason on stderr).
 */
#define CHILD_SKIP 77
#define CHECK(cond)                                                         \
	do {                                                                    \
		if (!(cond)) {                                                      \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,         \
			        __LINE__, #cond);                                       \
			_exit(1);                                                       \
		}                                                                   \
	} while (0)

static void run_child(void (*fn)(struct ctx *), struct ctx *c)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fn(c);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == CHILD_SKIP)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void read_only_child(struct ctx *c)
{
	struct archive *a = NULL;
	int e;

	if (getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
		_exit(CHILD_SKIP);
	e = archive_open(c->db, &a);
	fprintf(stderr, "  read-only database: %d %s\n", e, archive_errmsg(a));
	CHECK(e == PL_ERR_ACCESS);
	CHECK(strstr(archive_errmsg(a), "Permission denied"));
	CHECK(strstr(archive_errmsg(a), c->db));
	archive_close(a);
}

/* A database the daemon may read but not write is refused at open. */
static void test_read_only_database(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	char lock[160];

	archive_close(a);
	snprintf(lock, sizeof lock, "%s.lock", c->db);
	assert_int_equal(chmod(c->db, 0440), 0);
	if (getuid() == 0) {
		/* Root writes anything: try as nobody, who owns the files
		 * but has no write permission on the database. */
		assert_int_equal(chmod(c->dir, 0755), 0);
		assert_int_equal(chown(c->db, 65534, 65534), 0);
		assert_int_equal(chown(lock, 65534, 65534), 0);
	}
	run_child(read_only_child, c);
}

static void disk_full_child(struct ctx *c)
{
	char dir[160], db[200], filler[200];
	struct archive *a = NULL;
	struct rec f;
	uint64_t off = 0;
	static char block[65536];
	int fd, e;

	snprintf(dir, sizeof dir, "%s/tiny", c->dir);
	snprintf(db, sizeof db, "%s/archive.db", dir);
	snprintf(filler, sizeof filler, "%s/filler", dir);
	if (mkdir(dir, 0700) != 0 || unshare(CLONE_NEWNS) != 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", dir, "tmpfs", 0, "size=4m") != 0)
		_exit(CHILD_SKIP);

	rec_build(&f, 99, "PEN-1", START_MS, 30000, "Fine");
	CHECK(archive_open(db, &a) == PL_OK);
	for (size_t pos = 0; pos < f.len; pos += 65536) {
		size_t n = f.len - pos < 65536 ? f.len - pos : 65536;
		CHECK(archive_partial_append(a, "PEN-1", &f.info, pos, f.bytes + pos,
		                             n) == PL_OK);
	}
	/* Fill the disk to the last block. */
	fd = open(filler, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0);
	while (write(fd, block, sizeof block) > 0)
		;
	while (write(fd, block, 1) > 0)
		;
	CHECK(errno == ENOSPC);
	close(fd);

	e = archive_commit_session(a, "PEN-1", &f.info);
	fprintf(stderr, "  disk full: %d %s\n", e, archive_errmsg(a));
	CHECK(e == PL_ERR_IO);
	CHECK(strstr(archive_errmsg(a), "full"));
	CHECK(!archive_has_session(a, "PEN-1", f.uuid, NULL));
	CHECK(archive_partial_offset(a, "PEN-1", &f.info, &off) == PL_OK);
	CHECK(off == f.len);

	/* Space again: the same commit goes through. */
	CHECK(unlink(filler) == 0);
	e = archive_commit_session(a, "PEN-1", &f.info);
	if (e != PL_OK)
		fprintf(stderr, "  after freeing space: %s\n", archive_errmsg(a));
	CHECK(e == PL_OK);
	CHECK(archive_has_session(a, "PEN-1", f.uuid, NULL));
	archive_close(a);
	rec_free(&f);
	umount(dir);
}

/* A real full disk, where the system lets the test mount one. */
static void test_disk_full(void **state)
{
	run_child(disk_full_child, *state);
}

static void test_bad_arguments(void **state)
{
	struct ctx *c = *state;
	struct archive *a = open_ok(c->db);
	struct rec f;
	uint64_t off;
	char long_serial[100];

	rec_build(&f, 95, "PEN-1", START_MS, 5, "x");
	memset(long_serial, 'S', sizeof long_serial - 1);
	long_serial[sizeof long_serial - 1] = '\0';
	assert_int_equal(archive_partial_offset(a, NULL, &f.info, &off), PL_ERR_ARG);
	assert_int_equal(archive_partial_offset(a, "", &f.info, &off), PL_ERR_ARG);
	assert_int_equal(archive_partial_append(a, long_serial, &f.info, 0, f.bytes,
	                                        1),
	                 PL_ERR_ARG);
	assert_int_equal(archive_partial_append(a, "PEN-1", NULL, 0, f.bytes, 1),
	                 PL_ERR_ARG);
	assert_int_equal(archive_partial_append(a, "PEN-1", &f.info, 0, NULL, 1),
	                 PL_ERR_ARG);
	assert_int_equal(archive_commit_session(a, "PEN-1", NULL), PL_ERR_ARG);
	assert_false(archive_has_session(a, NULL, f.uuid, NULL));
	assert_int_equal(archive_list(a, NULL, 0, NULL, NULL), PL_ERR_ARG);
	assert_int_equal(archive_export_begin(a, (enum export_format)7, NULL, 0,
	                                      false,
	                                      &(struct export_cursor *){NULL}),
	                 PL_ERR_ARG);
	assert_true(strlen(archive_errmsg(a)) > 0);
	archive_close(a);
	rec_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_mode_and_lock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_append_commit_read_back, setup,
	                                    teardown),
	    cmocka_unit_test(test_record_event_getters),
	    cmocka_unit_test_setup_teardown(test_wrong_digest_discards, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_decode_steps_and_resume, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_commit_idempotent_and_conflict,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_partial_survives_reopen, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_partial_of_changed_record, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_export_csv, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_export_json, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_same_uuid_two_pens, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_export_per_session, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_from_version_0, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_from_version_1, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_audit_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audit_chain_migration, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_audit_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_annotations, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_failed_commit_is_an_error, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_read_only_database, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
