/*
 * The fault campaign's judge: compares penlinkd's archive with the pens'
 * flash files (penemu --flash) byte for byte.
 *
 *   campaign_check final ARCHIVE.db [?]FLASH...
 *       Every session on every pen must be in the archive exactly once,
 *       under the pen's serial, with the pen's exact record bytes, and both
 *       stored digests must equal the SHA-256 recomputed here.  A session a
 *       pen marks archived (the pen may reclaim it) that is not committed
 *       intact in the archive is "wrongly reclaimed".  An archive row no
 *       pen recorded is "phantom".  A flash named with a leading '?' is a
 *       pen the daemon need not archive (a hostile pen): its sessions may
 *       be missing, but what is there must be intact and there once, and
 *       nothing it reclaimed may be missing.  Prints one line per finding,
 *       then
 *         sessions N lost L duplicated D altered A reclaimed R phantom P
 *         unreclaimed U
 *       and exits 0 when all counts but U are 0, 1 otherwise, 2 on errors.
 *       U counts sessions the archive holds intact that the pen was never
 *       told it may reclaim: safe, but the pen's storage fills up.
 *       Derived data is checked too, counted as "derived": the event rows
 *       of every intact session must be the record's events, and its
 *       telemetry rows (filled in batches after the commit, and after a
 *       crash from where the filling stopped) exactly the record's first
 *       sample_progress.next samples, or all of them once the session has
 *       no sample_progress row.
 *       A record penemu wrote always decodes, so a decode_error is
 *       "derived" too.  The line then ends "derived D pending P" (P:
 *       sessions whose samples are still being filled in).
 *
 *   campaign_check reclaimed ARCHIVE.db SERIAL UUID [SERIAL UUID...]
 *       The mid-run invariant, checked while the daemon is down: each named
 *       session (one a pen listed as archived) must have a committed row.
 *       Prints the ones that do not, then "reclaimed-missing N"; exit 1 if
 *       N > 0.
 *
 * Both files are opened read-write (never created, never written): a flash
 * left by a killed penemu may hold a hot journal SQLite must roll back
 * before it can be read, and the archive's WAL may need recovery.  Neither
 * program may be running on them.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include <penlink.h>

struct pen_session {
	char serial[256];
	uint8_t uuid[16];
	uint8_t sha[32];        /* the digest the pen stores */
	uint8_t real[32];       /* SHA-256 of the pen's record bytes */
	unsigned char *record;
	size_t size;
	bool archived;
	bool optional;          /* from a '?' flash: may be missing */
	int matched;            /* archive rows with this serial and uuid */
};

static struct pen_session *pens;
static size_t n_pens, cap_pens;

static void die(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "campaign_check: ");
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	exit(2);
}

static sqlite3 *open_db(const char *path)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		die("cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned len = 32;

	if (!EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) || len != 32)
		die("%s%s", "SHA-256 failed", "");
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

static void uuid_text(const uint8_t u[16], char out[37])
{
	char h[33];

	hex(u, 16, h);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16,
	         h + 20);
}

static bool parse_uuid(const char *s, uint8_t out[16])
{
	int k = 0;

	for (; *s && k < 32; s++) {
		int v;
		if (*s == '-')
			continue;
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			v = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			v = *s - 'A' + 10;
		else
			return false;
		if (k % 2 == 0)
			out[k / 2] = (uint8_t)(v << 4);
		else
			out[k / 2] |= (uint8_t)v;
		k++;
	}
	return k == 32 && !*s;
}

static void load_flash(const char *path)
{
	bool optional = path[0] == '?';
	sqlite3 *db;

	if (optional)
		path++;
	db = open_db(path);
	sqlite3_stmt *st;
	char serial[256] = "";

	if (sqlite3_prepare_v2(db, "SELECT serial FROM meta WHERE id = 1", -1, &st,
	                       NULL) != SQLITE_OK)
		die("%s is not a penemu flash: %s", path, sqlite3_errmsg(db));
	if (sqlite3_step(st) != SQLITE_ROW)
		die("%s has no serial (meta row): %s", path, sqlite3_errmsg(db));
	snprintf(serial, sizeof serial, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db,
	                       "SELECT uuid, sha256, archived, record FROM sessions"
	                       " ORDER BY id",
	                       -1, &st, NULL) != SQLITE_OK)
		die("%s: cannot read sessions: %s", path, sqlite3_errmsg(db));
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct pen_session *s;
		const void *rec = sqlite3_column_blob(st, 3);
		int n = sqlite3_column_bytes(st, 3);

		if (n_pens == cap_pens) {
			cap_pens = cap_pens ? 2 * cap_pens : 64;
			pens = realloc(pens, cap_pens * sizeof *pens);
			if (!pens)
				die("%s%s", "out of memory", "");
		}
		s = &pens[n_pens++];
		memset(s, 0, sizeof *s);
		snprintf(s->serial, sizeof s->serial, "%s", serial);
		if (sqlite3_column_bytes(st, 0) != 16 || sqlite3_column_bytes(st, 1) != 32)
			die("%s: a session row with a bad uuid or digest%s", path, "");
		memcpy(s->uuid, sqlite3_column_blob(st, 0), 16);
		memcpy(s->sha, sqlite3_column_blob(st, 1), 32);
		s->archived = sqlite3_column_int(st, 2) != 0;
		s->optional = optional;
		s->size = (size_t)n;
		s->record = malloc(n ? (size_t)n : 1);
		if (!s->record)
			die("%s%s", "out of memory", "");
		memcpy(s->record, rec ? rec : "", (size_t)n);
		sha256(s->record, s->size, s->real);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static struct pen_session *find_pen(const char *serial, const uint8_t uuid[16])
{
	for (size_t i = 0; i < n_pens; i++)
		if (!memcmp(pens[i].uuid, uuid, 16) && !strcmp(pens[i].serial, serial))
			return &pens[i];
	return NULL;
}

/* The events and sample rows of archive session id against its record;
 * prints and returns the number of problems (0 or 1). */
static int check_derived(sqlite3 *db, int64_t id, const char *serial,
                         const char *u, const uint8_t *rec, size_t n,
                         bool *pending)
{
	struct pl_record *r = NULL;
	struct pl_telemetry t;
	struct pl_event_row *ev = NULL;
	sqlite3_stmt *st = NULL;
	size_t nev, i = 0;
	int64_t next = -1, interval = -1;
	int bad = 0;
	char why[200] = "";

	*pending = false;
	if (sqlite3_prepare_v2(db,
	                       "SELECT decode_error, next, sample_interval_us"
	                       " FROM sessions LEFT JOIN sample_progress"
	                       " ON session_id = id WHERE id = ?",
	                       -1, &st, NULL) != SQLITE_OK)
		die("cannot read sessions: %s%s", sqlite3_errmsg(db), "");
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW)
		die("session row vanished%s%s", "", "");
	if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
		snprintf(why, sizeof why, "marked undecodable (%s)",
		         (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		goto out;
	}
	if (sqlite3_column_type(st, 1) != SQLITE_NULL)
		next = sqlite3_column_int64(st, 1);
	if (sqlite3_column_type(st, 2) != SQLITE_NULL)
		interval = sqlite3_column_int64(st, 2);
	sqlite3_finalize(st);
	if (pl_record_parse(rec, n, &r) != PL_OK) {
		snprintf(why, sizeof why, "the record does not decode: %s",
		         pl_error_message());
		goto out;
	}
	pl_record_telemetry(r, &t);
	if (interval != (int64_t)t.interval_us) {
		snprintf(why, sizeof why, "sample interval %lld, record %u",
		         (long long)interval, t.interval_us);
		goto out;
	}
	/* Events: inserted with the commit, all of them. */
	nev = pl_record_events(r, NULL, 0);
	ev = calloc(nev ? nev : 1, sizeof *ev);
	if (!ev)
		die("%s%s", "out of memory", "");
	pl_record_events(r, ev, nev);
	if (sqlite3_prepare_v2(db,
	                       "SELECT idx, offset_ms, kind, value FROM events"
	                       " WHERE session_id = ? ORDER BY idx",
	                       -1, &st, NULL) != SQLITE_OK)
		die("cannot read events: %s%s", sqlite3_errmsg(db), "");
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (i >= nev || sqlite3_column_int64(st, 0) != (int64_t)i ||
		    sqlite3_column_int64(st, 1) != ev[i].offset_ms ||
		    sqlite3_column_int64(st, 2) != ev[i].kind ||
		    sqlite3_column_int64(st, 3) != ev[i].value) {
			snprintf(why, sizeof why, "event row %zu differs from the record",
			         i);
			break;
		}
		i++;
	}
	sqlite3_finalize(st);
	if (!why[0] && i != nev)
		snprintf(why, sizeof why, "%zu event rows, the record has %zu", i, nev);
	if (why[0])
		goto out;
	/* Samples: exactly the first `next` (all with no progress row). */
	*pending = next >= 0;
	if (next > (int64_t)t.count) {
		snprintf(why, sizeof why, "sample progress %lld beyond %zu samples",
		         (long long)next, t.count);
		goto out;
	}
	if (sqlite3_prepare_v2(db,
	                       "SELECT key & 4294967295, depth_um, current_ma,"
	                       " battery_mv FROM sample_data WHERE key BETWEEN"
	                       " ?1 << 32 AND (?1 << 32) | 4294967295 ORDER BY key",
	                       -1, &st, NULL) != SQLITE_OK)
		die("cannot read samples: %s%s", sqlite3_errmsg(db), "");
	sqlite3_bind_int64(st, 1, id);
	i = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (i >= t.count || sqlite3_column_int64(st, 0) != (int64_t)i ||
		    sqlite3_column_int64(st, 1) != t.depth_um[i] ||
		    sqlite3_column_int64(st, 2) != t.current_ma[i] ||
		    sqlite3_column_int64(st, 3) != t.battery_mv[i]) {
			snprintf(why, sizeof why, "sample row %zu differs from the record",
			         i);
			break;
		}
		i++;
	}
	sqlite3_finalize(st);
	if (!why[0] && i != (next >= 0 ? (size_t)next : t.count))
		snprintf(why, sizeof why, "%zu sample rows; %lld expected (%zu in the "
		         "record, sample progress %lld)", i,
		         (long long)(next >= 0 ? next : (int64_t)t.count), t.count,
		         (long long)next);
out:
	if (why[0]) {
		printf("derived: %s %s: %s\n", serial, u, why);
		bad = 1;
	}
	free(ev);
	pl_record_free(r);
	return bad;
}

static int cmd_final(const char *archive, int nflash, char **flash)
{
	unsigned long lost = 0, dup = 0, altered = 0, reclaimed = 0, phantom = 0;
	unsigned long unreclaimed = 0, derived = 0, pending = 0;
	size_t counted = 0;
	sqlite3 *db;
	sqlite3_stmt *st;
	char u[37], h1[65], h2[65];

	for (int i = 0; i < nflash; i++)
		load_flash(flash[i]);
	for (size_t i = 0; i < n_pens; i++) {
		if (memcmp(pens[i].sha, pens[i].real, 32) != 0) {
			/* The pen's own record does not match its digest: penemu's
			 * fault, not the daemon's, but nothing below would mean much. */
			uuid_text(pens[i].uuid, u);
			die("pen %s session %s: the flash's digest does not match its "
			    "record", pens[i].serial, u);
		}
	}

	db = open_db(archive);
	if (sqlite3_prepare_v2(db,
	                       "SELECT serial, uuid, size, sha256, record, id"
	                       " FROM sessions ORDER BY id",
	                       -1, &st, NULL) != SQLITE_OK)
		die("%s is not a penlinkd archive: %s", archive, sqlite3_errmsg(db));
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *serial = (const char *)sqlite3_column_text(st, 0);
		const void *rec = sqlite3_column_blob(st, 4);
		size_t n = (size_t)sqlite3_column_bytes(st, 4);
		uint8_t uuid[16] = {0}, sha[32] = {0}, real[32];
		struct pen_session *p;

		if (sqlite3_column_bytes(st, 1) == 16)
			memcpy(uuid, sqlite3_column_blob(st, 1), 16);
		if (sqlite3_column_bytes(st, 3) == 32)
			memcpy(sha, sqlite3_column_blob(st, 3), 32);
		uuid_text(uuid, u);
		p = find_pen(serial ? serial : "", uuid);
		if (!p) {
			printf("phantom: archive holds %s %s, which no pen recorded\n",
			       serial ? serial : "?", u);
			phantom++;
			continue;
		}
		if (++p->matched > 1) {
			printf("duplicated: %s %s is in the archive %d times\n", p->serial,
			       u, p->matched);
			dup++;
			continue;
		}
		sha256(rec ? rec : "", n, real);
		if (n != p->size || (uint64_t)sqlite3_column_int64(st, 2) != p->size ||
		    (n && memcmp(rec, p->record, n) != 0) || memcmp(sha, p->sha, 32) ||
		    memcmp(real, p->real, 32)) {
			hex(real, 32, h1);
			hex(p->real, 32, h2);
			printf("altered: %s %s: archive %zu bytes (stored size %lld) "
			       "sha256 %s, pen %zu bytes sha256 %s\n",
			       p->serial, u, n, (long long)sqlite3_column_int64(st, 2), h1,
			       p->size, h2);
			altered++;
			/* An altered copy is no reason to reclaim either. */
			p->matched = -1000;
		} else {
			bool pend;
			derived += (unsigned long)check_derived(
			    db, sqlite3_column_int64(st, 5), p->serial, u, rec, n, &pend);
			pending += pend;
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);

	for (size_t i = 0; i < n_pens; i++) {
		struct pen_session *p = &pens[i];
		uuid_text(p->uuid, u);
		if (p->matched == 0 && !p->optional) {
			printf("lost: %s %s (%zu bytes%s) is not in the archive\n",
			       p->serial, u, p->size,
			       p->archived ? ", and the pen was told to reclaim it" : "");
			lost++;
		}
		/* Safe but wasteful: the pen keeps a session the archive has
		 * (its storage fills up).  Reported, not a failure. */
		if (!p->archived && p->matched == 1) {
			printf("unreclaimed: %s %s is in the archive but the pen was "
			       "never told it may reclaim it\n", p->serial, u);
			unreclaimed++;
		}
		if (p->archived && p->matched != 1) {
			printf("reclaimed: %s %s is marked archived on the pen but is "
			       "not intact in the archive\n", p->serial, u);
			reclaimed++;
		}
	}
	for (size_t i = 0; i < n_pens; i++)
		counted += !pens[i].optional || pens[i].matched != 0;
	/* "sessions": the ones that had to be there, plus optional ones that
	 * were archived (and so were checked). */
	printf("sessions %zu lost %lu duplicated %lu altered %lu reclaimed %lu "
	       "phantom %lu unreclaimed %lu derived %lu pending %lu\n",
	       counted, lost, dup, altered, reclaimed, phantom, unreclaimed,
	       derived, pending);
	for (size_t i = 0; i < n_pens; i++)
		free(pens[i].record);
	free(pens);
	return lost || dup || altered || reclaimed || phantom || derived ? 1 : 0;
}

static int cmd_reclaimed(const char *archive, int n, char **args)
{
	sqlite3 *db = open_db(archive);
	sqlite3_stmt *st;
	unsigned long missing = 0;

	if (n % 2)
		die("%s%s", "reclaimed needs SERIAL UUID pairs", "");
	if (sqlite3_prepare_v2(db,
	                       "SELECT count(*) FROM sessions WHERE serial = ? AND uuid = ?",
	                       -1, &st, NULL) != SQLITE_OK)
		die("%s is not a penlinkd archive: %s", archive, sqlite3_errmsg(db));
	for (int i = 0; i < n; i += 2) {
		uint8_t uuid[16];
		if (!parse_uuid(args[i + 1], uuid))
			die("'%s' is not a UUID%s", args[i + 1], "");
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, args[i], -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, uuid, 16, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_ROW)
			die("%s: %s", archive, sqlite3_errmsg(db));
		if (sqlite3_column_int(st, 0) != 1) {
			printf("reclaimed: %s %s is archived on the pen but has %d rows "
			       "in the archive\n",
			       args[i], args[i + 1], sqlite3_column_int(st, 0));
			missing++;
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	printf("reclaimed-missing %lu\n", missing);
	return missing ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "final"))
		return cmd_final(argv[2], argc - 3, argv + 3);
	if (argc >= 3 && !strcmp(argv[1], "reclaimed"))
		return cmd_reclaimed(argv[2], argc - 3, argv + 3);
	fprintf(stderr,
	        "usage: campaign_check final ARCHIVE.db [?]FLASH...\n"
	        "       campaign_check reclaimed ARCHIVE.db [SERIAL UUID]...\n");
	return 2;
}
