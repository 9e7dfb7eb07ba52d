/*
 * The replicator (central.h): sends the outbox to the central PostgreSQL
 * archive from inside penlinkd's loop, on libpq's non-blocking API only.
 *
 * One connection, always in pipeline mode, its socket watched by the loop
 * (PQconnectStart/PQconnectPoll while connecting, then PQsendPrepare,
 * PQsendQueryPrepared or PQsendQueryParams, PQflush,
 * PQconsumeInput/PQisBusy/PQgetResult).  Each exchange is a list of
 * queries closed by a sync point:
 *   check:    SELECT the schema version and prepare the statements the
 *             batches below run (once per connection);
 *   sessions: BEGIN; per session an INSERT ... ON CONFLICT (serial, uuid)
 *             DO NOTHING (with its event rows) and a SELECT of the digest
 *             central then holds (recording a conflict row when it
 *             differs); COMMIT;
 *   annotations: BEGIN; per annotation of a session central confirmed an
 *             INSERT ... ON CONFLICT (site, local_id) DO NOTHING; COMMIT
 *             (from a cursor, as the audit entries; an annotation waits
 *             for its session, and one of a session in conflict or refused
 *             stays local);
 *   pens:     BEGIN; per pen whose model, hardware or firmware central has
 *             not confirmed an INSERT into the history penlink.pens;
 *             COMMIT;
 *   audit:    BEGIN; per entry an INSERT ... ON CONFLICT DO NOTHING, with
 *             the row's prev_hash and hash in the site's chain; COMMIT.
 * Only after COMMIT answered "COMMIT" are outbox entries cleared, each by
 * its digest: equal, confirmed; different, a conflict (logged with both
 * digests, kept locally, not retried, central untouched).
 *
 * Failures: a lost or refused connection is retried with exponential
 * backoff and jitter (250 ms doubling up to [central] retry_max_s).  A
 * batch that central refuses for its data (SQLSTATE classes 22, 23, 54) is
 * resent one session at a time, and the one session central refuses alone
 * is marked refused with the reason; the others go through.  Pens are
 * archived locally meanwhile, whatever central does.
 *
 * New work: a session commit wakes the replicator at once (central_wake,
 * from device_work.c); anything else (audit entries) is noticed by a look
 * every 5 s at SQLite's data_version (a counter in the WAL index, no disk
 * I/O) while the connection is idle.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "central.h"
#include "daemon.h"
#include "log.h"
#include "penlink_central.h"
#include "penlink_export.h"

#define BATCH_ITEMS 64
#define AUDIT_BATCH 256
#define ANNOT_BATCH 256
#define PENS_BATCH 128
#define BACKOFF_MIN_MS 250
#define CONNECT_TIMEOUT_MS 15000
#define EXCHANGE_TIMEOUT_MS 120000
/* While idle: a look at the outbox for what no wake announced (audit
 * entries; a commit's wake comes at once, central_wake). */
#define POLL_MS 5000
/* Records larger than this are sent raw with a decode_error, not decoded
 * in the loop (the archive's own decode budget, issue 10). */
#define DECODE_MAX_BYTES (8u << 20)

enum phase {
	PH_DOWN,       /* no connection; a retry timer runs */
	PH_CONNECTING, /* PQconnectPoll */
	PH_CHECK,      /* schema version query in flight */
	PH_IDLE,       /* connected, nothing in flight; poll timer runs */
	PH_BATCH,      /* a batch in flight */
};

struct digest {
	bool found;
	char sha256[65];
	char site[64];
};

struct central {
	struct daemon *d;
	struct loop *loop;
	struct outbox *ob;
	char url[1024];
	char site[64];
	char target[256];
	uint64_t batch_bytes;
	int retry_max_ms;

	PGconn *conn;
	int fd;               /* watched, -1 if none */
	unsigned events;
	bool flushing;        /* PQflush wants to write more */
	enum phase ph;
	uint64_t timer;
	int backoff_ms;
	int64_t next_attempt_ms;
	uint64_t rng;
	bool dirty;           /* look at the outbox at the next poll, changed or not */

	/* The exchange in flight. */
	int nq;               /* queries sent */
	int qi;               /* index of the query whose results come next */
	bool await_null;
	bool failed;
	int fail_q;
	char fail_state[6];
	char fail_msg[512];
	bool commit_ok;
	int version;          /* check: the schema version found */
	/* The batch: sessions (items, each with its digest) or, when there
	 * are none, the rows of a listing (central.h). */
	struct outbox_item *items;
	size_t n_items;
	struct digest *digests;
	enum outbox_list list;
	void *rows;
	size_t n_rows;
	size_t isolate;       /* > 0: send one at a time, this many more */

	/* Status. */
	int64_t last_sync_ms;
	int64_t last_error_ms;
	char last_error[512];
	unsigned failures;    /* in a row */
};

static void kick(struct central *c);
static void wake_timer(void *ud);
static void start_connect(void *ud);
static void on_io(void *ud, int fd, unsigned events);

/* ------------------------------------------------------------------ errors */

static void set_error(struct central *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records why central is not being fed; logs it the first time (a retry
 * that fails the same way only at debug level, so an outage of hours is
 * not thousands of lines). */
static void set_error(struct central *c, const char *fmt, ...)
{
	char raw[1024], msg[sizeof c->last_error];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	pl_text_clean(PL_TEXT_LOG, raw, msg, sizeof msg);
	c->failures++;
	if (strcmp(msg, c->last_error))
		log_err("central %s: %s", c->target, msg);
	else
		log_debug("central %s: still: %s (attempt %u)", c->target, msg,
		          c->failures);
	snprintf(c->last_error, sizeof c->last_error, "%s", msg);
	c->last_error_ms = pl_time_utc_ms();
}

static void clear_error(struct central *c)
{
	if (c->failures && c->last_error[0])
		log_notice("central %s: working again after %u failed attempt%s",
		           c->target, c->failures, c->failures == 1 ? "" : "s");
	c->failures = 0;
	c->last_error[0] = '\0';
	c->last_error_ms = 0;
	c->backoff_ms = BACKOFF_MIN_MS;
}

static void pq_message(struct central *c, const PGresult *res, char *out,
                       size_t cap)
{
	pc_one_line(res ? PQresultErrorMessage(res)
	                : c->conn ? PQerrorMessage(c->conn) : "no connection",
	            out, cap);
}

/* libpq's notices (and the "terminating connection" message that arrives
 * while idle) go to the debug log, not to stderr as libpq would. */
static void on_notice(void *ud, const char *message)
{
	struct central *c = ud;
	char line[512];
	pc_one_line(message, line, sizeof line);
	log_debug("central %s: %s", c->target, line);
}

/* ------------------------------------------------------------------ timers and the socket */

static void set_timer(struct central *c, int64_t ms, loop_timer_fn fn)
{
	loop_cancel_timer(c->loop, c->timer);
	c->timer = fn ? loop_add_timer(c->loop, ms, fn, c) : 0;
	if (fn && !c->timer)
		log_err("central: cannot set a timer (out of memory)");
}

/* Watches the connection's current socket for events (LOOP_IN|LOOP_OUT);
 * libpq may change sockets while connecting (several hosts). */
static bool watch(struct central *c, unsigned events)
{
	int fd = c->conn ? PQsocket(c->conn) : -1;
	if (fd != c->fd) {
		if (c->fd >= 0)
			loop_del_fd(c->loop, c->fd);
		c->fd = -1;
		if (fd < 0)
			return true;
		int rc = loop_add_fd(c->loop, fd, events, on_io, c);
		if (rc < 0) {
			set_error(c, "cannot watch the connection's socket: %s",
			          strerror(-rc));
			return false;
		}
		c->fd = fd;
		c->events = events;
	} else if (fd >= 0 && events != c->events) {
		int rc = loop_mod_fd(c->loop, fd, events);
		if (rc < 0) {
			set_error(c, "cannot watch the connection's socket: %s",
			          strerror(-rc));
			return false;
		}
		c->events = events;
	}
	return true;
}

static void free_batch(struct central *c)
{
	outbox_items_free(c->items, c->n_items);
	c->items = NULL;
	c->n_items = 0;
	free(c->digests);
	c->digests = NULL;
	outbox_list_free(c->list, c->rows, c->n_rows);
	c->rows = NULL;
	c->n_rows = 0;
}

/* Closes the connection (a transaction in flight is rolled back by the
 * server: nothing was cleared for it). */
static void drop(struct central *c)
{
	set_timer(c, 0, NULL);
	if (c->fd >= 0)
		loop_del_fd(c->loop, c->fd);
	c->fd = -1;
	c->events = 0;
	c->flushing = false;
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
	free_batch(c);
	c->ph = PH_DOWN;
}

static uint64_t rng_next(struct central *c)
{
	/* xorshift64*: jitter only, not security. */
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * 0x2545f4914f6cdd1dull;
}

/* Next connection attempt: now (after a refused batch, to isolate it) or
 * after the backoff, jittered to between half and all of it, which then
 * doubles up to the cap. */
static void retry(struct central *c, bool now)
{
	drop(c);
	int64_t delay = 0;
	if (!now) {
		int64_t b = c->backoff_ms;
		delay = b / 2 + (int64_t)(rng_next(c) % (uint64_t)(b / 2 + 1));
		c->backoff_ms = b * 2 > c->retry_max_ms ? c->retry_max_ms : (int)(b * 2);
	}
	c->next_attempt_ms = pl_time_utc_ms() + delay;
	log_debug("central %s: next attempt in %" PRId64 " ms", c->target, delay);
	set_timer(c, delay, start_connect);
}

static void broken(struct central *c, const char *doing)
{
	char msg[512];
	pq_message(c, NULL, msg, sizeof msg);
	set_error(c, "%s: %s", doing, msg);
	retry(c, false);
}

/* ------------------------------------------------------------------ connecting */

static void connect_timeout(void *ud)
{
	struct central *c = ud;
	c->timer = 0;
	set_error(c, "no connection within %d s", CONNECT_TIMEOUT_MS / 1000);
	retry(c, false);
}

static void exchange_timeout(void *ud)
{
	struct central *c = ud;
	c->timer = 0;
	set_error(c, "no answer within %d s; reconnecting", EXCHANGE_TIMEOUT_MS / 1000);
	retry(c, false);
}

static const char insert_session_sql[] =
    "WITH s AS (\n"
    "  INSERT INTO penlink.sessions (site, serial, uuid, seq, size, sha256,\n"
    "    rtc_time, start_ms, end_ms, start_utc, end_utc, archived_at,\n"
    "    n_events, n_samples, decode_error, summary, record)\n"
    "  VALUES ($1, $2, $3::uuid, $4, $5, $6, $7, $8, $9, $10::timestamptz,\n"
    "    $11::timestamptz, $12::timestamptz, $13, $14, $15, $16::jsonb, $17)\n"
    "  ON CONFLICT (serial, uuid) DO NOTHING\n"
    "  RETURNING id)\n"
    "INSERT INTO penlink.events (session_id, idx, offset_ms, kind, kind_name, value)\n"
    "SELECT s.id, e.i - 1, e.offset_ms, e.kind, e.kind_name, e.value\n"
    "FROM s, unnest($18::bigint[], $19::integer[], $20::text[], $21::integer[])\n"
    "  WITH ORDINALITY AS e (offset_ms, kind, kind_name, value, i)";

/* What central holds under the key once the insert ran; a different digest
 * is recorded in penlink.conflicts in the same transaction. */
static const char check_session_sql[] =
    "WITH cur AS (SELECT sha256, site FROM penlink.sessions\n"
    "             WHERE serial = $1 AND uuid = $2::uuid),\n"
    "c AS (INSERT INTO penlink.conflicts (site, serial, uuid, central_sha256,\n"
    "        offered_sha256)\n"
    "      SELECT $3, $1, $2::uuid, cur.sha256, $4 FROM cur WHERE cur.sha256 <> $4\n"
    "      RETURNING 1)\n"
    "SELECT sha256, site FROM cur";

static const char insert_audit_sql[] =
    "INSERT INTO penlink.audit (site, local_id, utc_ms, uid, \"user\", pen,\n"
    "  action, old_value, new_value, result, local_prev_hash, local_hash)\n"
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)\n"
    "ON CONFLICT (site, local_id) DO NOTHING";

static const char insert_annot_sql[] =
    "INSERT INTO penlink.annotations (site, local_id, serial, uuid, utc_ms,\n"
    "  uid, \"user\", client_ref, operator, note)\n"
    "VALUES ($1, $2, $3, $4::uuid, $5, $6, $7, $8, $9, $10)\n"
    "ON CONFLICT (site, local_id) DO NOTHING";

static const char insert_pen_sql[] =
    "INSERT INTO penlink.pens (site, serial, model, hw_revision, fw_version,\n"
    "  seen_at)\n"
    "VALUES ($1, $2, $3, $4, $5, $6::timestamptz)\n"
    "ON CONFLICT (site, serial, seen_at) DO NOTHING";

/* The statements a batch runs, prepared once per connection (in the check
 * exchange): a batch of 64 sessions is 128 of them, and parsing and
 * planning each again cost as much as the insert itself. */
enum stmt { ST_SESSION, ST_CHECK, ST_AUDIT, ST_ANNOT, ST_PEN, ST_COUNT };
static const struct {
	const char *name;
	const char *sql;
	int n_params;
} stmts[ST_COUNT] = {
    [ST_SESSION] = {"penlink_session", insert_session_sql, 21},
    [ST_CHECK] = {"penlink_check", check_session_sql, 4},
    [ST_AUDIT] = {"penlink_audit", insert_audit_sql, 12},
    [ST_ANNOT] = {"penlink_annot", insert_annot_sql, 10},
    [ST_PEN] = {"penlink_pen", insert_pen_sql, 6},
};

static void begin_exchange(struct central *c)
{
	c->nq = 0;
	c->qi = 0;
	c->await_null = false;
	c->failed = false;
	c->fail_q = -1;
	c->fail_state[0] = '\0';
	c->fail_msg[0] = '\0';
	c->commit_ok = false;
	c->version = 0;
}

/* Counts one more query of the exchange that libpq queued (sent: its
 * answer); false: it did not, and the connection was dropped. */
static bool queued(struct central *c, int sent)
{
	if (!sent) {
		broken(c, "cannot send a query");
		return false;
	}
	c->nq++;
	return true;
}

static bool send_query(struct central *c, const char *sql, int n,
                       const char *const *values, const int *lengths,
                       const int *formats)
{
	return queued(c, PQsendQueryParams(c->conn, sql, n, NULL, values, lengths,
	                                   formats, 0));
}

static bool send_prepared(struct central *c, enum stmt st,
                          const char *const *values, const int *lengths,
                          const int *formats)
{
	return queued(c, PQsendQueryPrepared(c->conn, stmts[st].name,
	                                     stmts[st].n_params, values, lengths,
	                                     formats, 0));
}

/* Closes the exchange with a sync point and starts writing it out. */
static bool end_exchange(struct central *c)
{
	if (!PQpipelineSync(c->conn)) {
		broken(c, "cannot send a sync point");
		return false;
	}
	int r = PQflush(c->conn);
	if (r < 0) {
		broken(c, "cannot send");
		return false;
	}
	c->flushing = r == 1;
	set_timer(c, EXCHANGE_TIMEOUT_MS, exchange_timeout);
	return watch(c, LOOP_IN | (c->flushing ? LOOP_OUT : 0u));
}

static void connected(struct central *c)
{
	if (PQsetnonblocking(c->conn, 1) != 0 || !PQenterPipelineMode(c->conn)) {
		broken(c, "cannot set the connection up");
		return;
	}
	log_info("central %s: connected (server %d)", c->target,
	         PQserverVersion(c->conn));
	c->ph = PH_CHECK;
	begin_exchange(c);
	if (!send_query(c, "SELECT coalesce(max(version), 0) FROM penlink.schema_version",
	                0, NULL, NULL, NULL))
		return;
	for (int st = 0; st < ST_COUNT; st++)
		if (!queued(c, PQsendPrepare(c->conn, stmts[st].name, stmts[st].sql,
		                             stmts[st].n_params, NULL)))
			return;
	end_exchange(c);
}

static void poll_connect(struct central *c)
{
	switch (PQconnectPoll(c->conn)) {
	case PGRES_POLLING_READING:
		watch(c, LOOP_IN);
		break;
	case PGRES_POLLING_WRITING:
		watch(c, LOOP_OUT);
		break;
	case PGRES_POLLING_OK:
		watch(c, LOOP_IN);
		connected(c);
		break;
	default:
		broken(c, "cannot connect");
		break;
	}
}

static void start_connect(void *ud)
{
	struct central *c = ud;
	c->timer = 0;
	c->next_attempt_ms = 0;
	/* The url is the dbname value, expanded as a connection string; what
	 * follows it overrides it. */
	const char *keys[] = {"dbname", "application_name", NULL};
	const char *vals[] = {c->url, "penlinkd", NULL};
	c->conn = PQconnectStartParams(keys, vals, 1);
	if (!c->conn) {
		set_error(c, "out of memory connecting");
		retry(c, false);
		return;
	}
	PQsetNoticeProcessor(c->conn, on_notice, c);
	if (PQstatus(c->conn) == CONNECTION_BAD) {
		broken(c, "cannot connect");
		return;
	}
	c->ph = PH_CONNECTING;
	set_timer(c, CONNECT_TIMEOUT_MS, connect_timeout);
	/* As if PQconnectPoll had said "writing" (libpq's documented start). */
	watch(c, LOOP_OUT);
}

/* ------------------------------------------------------------------ building a batch */

/* What the record says beyond its row: events as four PostgreSQL array
 * literals, counts, and its JSON (without samples).  A record that does not
 * decode is still sent (its bytes are the truth), with decode_error. */
struct decoded {
	struct plc_buf off, kind, name, value;
	char n_events[24], n_samples[24];
	char *json;
	char error[256];
};

static void decode(const struct outbox_item *it, struct decoded *dc)
{
	memset(dc, 0, sizeof *dc);
	struct pl_record *r = NULL;
	size_t n = 0;
	if (it->summary.size > DECODE_MAX_BYTES) {
		snprintf(dc->error, sizeof dc->error,
		         "not decoded: %" PRIu64 " bytes is over the %u MiB decode "
		         "budget", it->summary.size, DECODE_MAX_BYTES >> 20);
	} else if (pl_record_parse(it->record, (size_t)it->summary.size, &r) !=
	           PL_OK) {
		snprintf(dc->error, sizeof dc->error, "%s", pl_error_message());
	} else {
		n = pl_record_events(r, NULL, 0);
		struct pl_event_row *ev = n ? calloc(n, sizeof *ev) : NULL;
		if (n && !ev) {
			snprintf(dc->error, sizeof dc->error, "out of memory decoding events");
			n = 0;
		} else {
			pl_record_events(r, ev, n);
		}
		plc_buf_add(&dc->off, "{", 1);
		plc_buf_add(&dc->kind, "{", 1);
		plc_buf_add(&dc->name, "{", 1);
		plc_buf_add(&dc->value, "{", 1);
		for (size_t i = 0; i < n; i++) {
			const char *sep = i ? "," : "";
			plc_buf_fmt(&dc->off, "%s%" PRIu32, sep, ev[i].offset_ms);
			plc_buf_fmt(&dc->kind, "%s%d", sep, ev[i].kind);
			plc_buf_fmt(&dc->value, "%s%" PRId32, sep, ev[i].value);
			/* Known names are plain identifiers. */
			const char *nm = pl_record_event_kind_name(ev[i].kind);
			plc_buf_add(&dc->name, sep, strlen(sep));
			if (nm) {
				plc_buf_add(&dc->name, "\"", 1);
				plc_buf_add(&dc->name, nm, strlen(nm));
				plc_buf_add(&dc->name, "\"", 1);
			} else {
				plc_buf_add(&dc->name, "NULL", 4);
			}
		}
		free(ev);
		struct pl_telemetry tel;
		pl_record_telemetry(r, &tel);
		snprintf(dc->n_samples, sizeof dc->n_samples, "%zu", tel.count);
		dc->json = pl_record_to_json(r, false);
		pl_record_free(r);
	}
	snprintf(dc->n_events, sizeof dc->n_events, "%zu", n);
	if (!dc->n_samples[0])
		snprintf(dc->n_samples, sizeof dc->n_samples, "0");
	if (!dc->off.len) {
		plc_buf_add(&dc->off, "{", 1);
		plc_buf_add(&dc->kind, "{", 1);
		plc_buf_add(&dc->name, "{", 1);
		plc_buf_add(&dc->value, "{", 1);
	}
	plc_buf_add(&dc->off, "}", 1);
	plc_buf_add(&dc->kind, "}", 1);
	plc_buf_add(&dc->name, "}", 1);
	plc_buf_add(&dc->value, "}", 1);
}

static void decoded_free(struct decoded *dc)
{
	free(dc->off.p);
	free(dc->kind.p);
	free(dc->name.p);
	free(dc->value.p);
	free(dc->json);
}

/* Text as PostgreSQL takes it (valid UTF-8): exactly as stored when it is,
 * so central's copy is byte for byte the site's (and an audit row's hash in
 * the site's chain can be recomputed from it); cleaned (invalid bytes as
 * U+FFFD) otherwise.  NULL when out of memory. */
static char *pg_text(const char *s)
{
	if (!s)
		s = "";
	return pl_text_utf8_valid(s, strlen(s)) ? strdup(s)
	                                        : pl_text_clean_dup(PL_TEXT_JSON, s);
}

/* One batch in one exchange: BEGIN, send_row for each of its n rows (a
 * row may send nothing), COMMIT.  false: the connection was dropped. */
static bool send_batch(struct central *c, size_t n,
                       bool (*send_row)(struct central *c, size_t i))
{
	begin_exchange(c);
	if (!send_query(c, "BEGIN", 0, NULL, NULL, NULL))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!send_row(c, i))
			return false;
	if (!send_query(c, "COMMIT", 0, NULL, NULL, NULL))
		return false;
	c->ph = PH_BATCH;
	return end_exchange(c);
}

static bool send_annot(struct central *c, size_t i);
static bool send_pen(struct central *c, size_t i);
static bool send_audit_entry(struct central *c, size_t i);

/* How the rows of each listing are sent. */
static const struct {
	size_t batch;     /* rows in a batch (but one while isolating) */
	bool (*send_row)(struct central *c, size_t i);
} lists[OUTBOX_LISTS] = {
    [OUTBOX_ANNOTS] = {ANNOT_BATCH, send_annot},
    [OUTBOX_PENS] = {PENS_BATCH, send_pen},
    [OUTBOX_AUDIT] = {AUDIT_BATCH, send_audit_entry},
};

/* The most parameters of a row's INSERT but a session's (an audit entry's). */
#define MAX_ROW_PARAMS 12

/* Sends sql with the n values v, of which the n_text from v[first_text]
 * on are free text (from a pen or a person), sent through pg_text. */
static bool send_with_text(struct central *c, enum stmt st,
                           const char *const *v, int first_text, int n_text)
{
	int n = stmts[st].n_params;
	const char *val[MAX_ROW_PARAMS];
	char *clean[MAX_ROW_PARAMS] = {NULL};
	bool oom = false;
	for (int k = 0; k < n; k++) {
		bool text = k >= first_text && k < first_text + n_text;
		if (text)
			oom |= !(clean[k] = pg_text(v[k]));
		val[k] = text ? clean[k] : v[k];
	}
	bool ok = !oom && send_prepared(c, st, val, NULL, NULL);
	for (int k = 0; k < n; k++)
		free(clean[k]);
	if (oom) {
		set_error(c, "out of memory preparing the %s",
		          outbox_list_what(c->list));
		retry(c, false);
	}
	return ok;
}

static bool send_session(struct central *c, size_t i)
{
	struct outbox_item *it = &c->items[i];
	char uuid[37], sha[65], seq[16], size[24], start[24], end[24];
	char start_utc[PL_TIME_TEXT_MAX], end_utc[PL_TIME_TEXT_MAX];
	char archived[PL_TIME_TEXT_MAX];
	pl_uuid_format(it->key.uuid, uuid);
	const struct plc_session_summary *sum = &it->summary;
	pl_hex_format(sum->sha256, 32, sha);
	snprintf(seq, sizeof seq, "%" PRIu32, sum->seq);
	snprintf(size, sizeof size, "%" PRIu64, sum->size);
	snprintf(start, sizeof start, "%" PRId64, sum->start_ms);
	snprintf(end, sizeof end, "%" PRId64, sum->end_ms);
	pl_time_format_utc(sum->start_ms, start_utc);
	pl_time_format_utc(sum->end_ms, end_utc);
	pl_time_format_utc(sum->archived_ms, archived);
	struct decoded dc;
	decode(it, &dc);
	if (dc.off.oom || dc.kind.oom || dc.name.oom || dc.value.oom) {
		decoded_free(&dc);
		set_error(c, "out of memory preparing a batch");
		retry(c, false);
		return false;
	}
	char err[sizeof dc.error];
	if (dc.error[0])
		pl_text_clean(PL_TEXT_JSON, dc.error, err, sizeof err);
	const char *v[21] = {
	    c->site, it->key.serial, uuid, seq, size, sha,
	    sum->rtc_time ? "t" : "f", start, end,
	    sum->rtc_time ? start_utc : NULL, sum->rtc_time ? end_utc : NULL,
	    archived, dc.n_events, dc.n_samples, dc.error[0] ? err : NULL,
	    dc.json, (const char *)it->record,
	    dc.off.p, dc.kind.p, dc.name.p, dc.value.p};
	int len[21] = {0};
	int fmt[21] = {0};
	len[16] = (int)sum->size;
	fmt[16] = 1; /* the record travels as binary, byte for byte */
	bool ok = send_prepared(c, ST_SESSION, v, len, fmt);
	decoded_free(&dc);
	if (!ok)
		return false; /* it is gone with the dropped batch */
	/* libpq holds its own copy now. */
	free(it->record);
	it->record = NULL;
	const char *cv[4] = {it->key.serial, uuid, c->site, sha};
	return send_prepared(c, ST_CHECK, cv, NULL, NULL);
}

static bool send_sessions(struct central *c)
{
	c->digests = calloc(c->n_items, sizeof *c->digests);
	if (!c->digests) {
		set_error(c, "out of memory preparing a batch");
		retry(c, false);
		return false;
	}
	return send_batch(c, c->n_items, send_session);
}

static bool send_audit_entry(struct central *c, size_t i)
{
	const struct outbox_audit *a = (const struct outbox_audit *)c->rows + i;
	char id[24], utc[24], uid[24];
	snprintf(id, sizeof id, "%" PRId64, a->id);
	snprintf(utc, sizeof utc, "%" PRId64, a->utc_ms);
	snprintf(uid, sizeof uid, "%" PRId64, a->uid);
	const char *v[12] = {c->site, id, utc, uid, a->user, a->pen, a->action,
	                     a->old_value, a->new_value, a->result,
	                     a->prev_hash[0] ? a->prev_hash : NULL,
	                     a->hash[0] ? a->hash : NULL};
	return send_with_text(c, ST_AUDIT, v, 4, 6);
}

/* Annotations of sessions central does not hold as the site does stay
 * local: said once each, and the cursor moves past them. */
static void annots_skipped(struct central *c)
{
	const struct outbox_annot *annots = c->rows;
	for (size_t i = 0; i < c->n_rows; i++) {
		const struct outbox_annot *a = &annots[i];
		if (a->send)
			continue;
		char k[160];
		pl_session_key_format(&a->key, PL_TEXT_LOG, k, sizeof k);
		log_notice("central %s: annotation %" PRId64 " of session %s stays "
		           "local: central does not hold the site's record (conflict "
		           "or refused)", c->target, a->id, k);
	}
}

static bool send_annot(struct central *c, size_t i)
{
	const struct outbox_annot *a = (const struct outbox_annot *)c->rows + i;
	if (!a->send)
		return true;
	char id[24], utc[24], uid[24], uuid[37];
	snprintf(id, sizeof id, "%" PRId64, a->id);
	snprintf(utc, sizeof utc, "%" PRId64, a->utc_ms);
	snprintf(uid, sizeof uid, "%" PRId64, a->uid);
	pl_uuid_format(a->key.uuid, uuid);
	/* The serial as the session's row has it (sent raw there too). */
	const char *v[10] = {c->site, id, a->key.serial, uuid, utc, uid,
	                     a->user, a->client_ref, a->operator_name, a->note};
	return send_with_text(c, ST_ANNOT, v, 6, 4);
}

static bool send_pen(struct central *c, size_t i)
{
	const struct outbox_pen *p = (const struct outbox_pen *)c->rows + i;
	char seen[PL_TIME_TEXT_MAX];
	pl_time_format_utc(p->seen_ms, seen);
	const char *v[6] = {c->site, p->serial, p->model, p->hw_revision,
	                    p->fw_version, seen};
	return send_with_text(c, ST_PEN, v, 2, 3);
}

/* Central committed the batch of a listing's rows. */
static void rows_committed(struct central *c)
{
	if (c->list == OUTBOX_ANNOTS)
		annots_skipped(c);
	if (outbox_list_done(c->ob, c->list, c->rows, c->n_rows) != PL_OK) {
		/* Central has them: a resend is ignored there (ON CONFLICT). */
		set_error(c, "%s", pl_error_message());
		return;
	}
	log_debug("central %s: %zu %s committed", c->target, c->n_rows,
	          outbox_list_what(c->list));
	c->last_sync_ms = pl_time_utc_ms();
	clear_error(c);
	c->isolate = c->isolate > c->n_rows ? c->isolate - c->n_rows : 0;
}

/* The batch of a listing's rows; annotations none of which are for
 * central move the cursor past them without an exchange. */
static bool send_rows(struct central *c)
{
	size_t sendable = c->n_rows;
	if (c->list == OUTBOX_ANNOTS) {
		const struct outbox_annot *annots = c->rows;
		sendable = 0;
		for (size_t i = 0; i < c->n_rows; i++)
			sendable += annots[i].send;
	}
	if (sendable)
		return send_batch(c, c->n_rows, lists[c->list].send_row);
	annots_skipped(c);
	int e = outbox_list_done(c->ob, c->list, c->rows, c->n_rows);
	if (e != PL_OK)
		set_error(c, "%s", pl_error_message());
	c->isolate = c->isolate > c->n_rows ? c->isolate - c->n_rows : 0;
	free_batch(c);
	set_timer(c, e == PL_OK ? 0 : POLL_MS, wake_timer);
	return true;
}

static void poll_timer(void *ud)
{
	struct central *c = ud;
	c->timer = 0;
	if (c->ph != PH_IDLE)
		return;
	if (outbox_changed(c->ob) || c->dirty)
		kick(c);
	else
		set_timer(c, POLL_MS, poll_timer);
}

/* Connected and idle: sends the next batch, sessions first, then their
 * annotations, the pens, the audit entries; with nothing to send, looks
 * again at the next poll. */
static void kick(struct central *c)
{
	if (c->ph != PH_IDLE)
		return;
	c->dirty = false;
	bool one = c->isolate > 0;
	int e = outbox_next(c->ob, one ? 1 : BATCH_ITEMS, c->batch_bytes,
	                    &c->items, &c->n_items);
	/* Each listing is read only while those before it have nothing. */
	for (int l = 0; e == PL_OK && !c->n_items && !c->n_rows && l < OUTBOX_LISTS;
	     l++) {
		c->list = (enum outbox_list)l;
		e = outbox_list(c->ob, c->list, one ? 1 : lists[l].batch, &c->rows,
		                &c->n_rows);
	}
	if (e != PL_OK) {
		set_error(c, "%s", pl_error_message());
		c->dirty = true;
	} else if (c->n_items) {
		send_sessions(c);
		return;
	} else if (c->n_rows) {
		send_rows(c);
		return;
	}
	set_timer(c, POLL_MS, poll_timer);
}

/* ------------------------------------------------------------------ results */

static void on_result(struct central *c, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	int q = c->qi;
	if (st == PGRES_PIPELINE_ABORTED)
		return;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		if (!c->failed) {
			c->failed = true;
			c->fail_q = q;
			const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			snprintf(c->fail_state, sizeof c->fail_state, "%s", s ? s : "");
			pq_message(c, res, c->fail_msg, sizeof c->fail_msg);
		}
		return;
	}
	if (c->ph == PH_CHECK) {
		if (st == PGRES_TUPLES_OK && PQntuples(res) == 1)
			c->version = atoi(PQgetvalue(res, 0, 0));
		return;
	}
	if (q == c->nq - 1) { /* COMMIT */
		c->commit_ok = !strcmp(PQcmdStatus(res), "COMMIT");
		if (!c->commit_ok && !c->failed) {
			c->failed = true;
			c->fail_q = q;
			snprintf(c->fail_msg, sizeof c->fail_msg,
			         "COMMIT answered \"%.40s\"", PQcmdStatus(res));
		}
		return;
	}
	/* Sessions: query 1 + 2i inserts item i, 2 + 2i checks it. */
	if (c->n_items && q >= 2 && q % 2 == 0) {
		size_t i = (size_t)(q - 2) / 2;
		if (i < c->n_items && PQntuples(res) == 1) {
			struct digest *dg = &c->digests[i];
			dg->found = true;
			snprintf(dg->sha256, sizeof dg->sha256, "%s", PQgetvalue(res, 0, 0));
			snprintf(dg->site, sizeof dg->site, "%s", PQgetvalue(res, 0, 1));
		}
	}
}

static bool data_error(const char *state)
{
	/* 22 data exception, 23 integrity constraint, 54 program limit. */
	return !strncmp(state, "22", 2) || !strncmp(state, "23", 2) ||
	       !strncmp(state, "54", 2);
}

static void check_done(struct central *c)
{
	if (c->failed && c->fail_q == 0) {
		if (!strcmp(c->fail_state, "42P01") || !strcmp(c->fail_state, "3F000"))
			set_error(c, "the database has no penlink schema; run "
			          "\"penctl central init URL\" as its owner (%s)",
			          c->fail_msg);
		else if (!strcmp(c->fail_state, "42501"))
			set_error(c, "%s; the login role needs penlink_ingest (GRANT "
			          "penlink_ingest TO ...)", c->fail_msg);
		else
			set_error(c, "cannot read the schema version: %s", c->fail_msg);
		retry(c, false);
		return;
	}
	if (c->version != pc_schema_version) {
		if (c->version > pc_schema_version)
			set_error(c, "the central schema is version %d, newer than this "
			          "penlinkd knows (%d); update penlinkd", c->version,
			          pc_schema_version);
		else
			set_error(c, "the central schema is version %d, this penlinkd "
			          "needs %d; run \"penctl central init URL\"", c->version,
			          pc_schema_version);
		retry(c, false);
		return;
	}
	if (c->failed) {
		set_error(c, "cannot prepare statement %s: %s%s%s",
		          stmts[c->fail_q - 1].name, c->fail_state,
		          c->fail_state[0] ? ": " : "", c->fail_msg);
		retry(c, false);
		return;
	}
	set_timer(c, 0, NULL);
	c->ph = PH_IDLE;
	kick(c);
}

static void log_key(const struct outbox_item *it, char *out, size_t cap)
{
	pl_session_key_format(&it->key, PL_TEXT_LOG, out, cap);
}

/* A batch central would not take: find the session (or audit entry) it
 * refuses by sending one at a time; refuse that one alone. */
static void batch_refused(struct central *c)
{
	size_t n = c->n_items ? c->n_items : c->n_rows;
	if (n > 1) {
		log_notice("central %s: a batch of %zu was refused (%s: %s); "
		           "sending them one at a time", c->target, n,
		           c->fail_state, c->fail_msg);
		c->isolate = n;
		retry(c, true);
		return;
	}
	if (c->n_items) {
		const struct outbox_item *it = &c->items[0];
		char k[160], note[600];
		log_key(it, k, sizeof k);
		snprintf(note, sizeof note, "%s: %s", c->fail_state, c->fail_msg);
		log_err("central %s refused session %s: %s; it stays in the local "
		        "archive, marked refused", c->target, k, note);
		int state = OUTBOX_REFUSED;
		const char *nt = note;
		if (outbox_mark(c->ob, &it->id, &state, &nt, 1) != PL_OK)
			set_error(c, "%s", pl_error_message());
	} else {
		if (c->list == OUTBOX_AUDIT) {
			const struct outbox_audit *a = c->rows;
			log_err("central %s refused audit entry %" PRId64 " (%s: %s); "
			        "skipping it", c->target, a->id, c->fail_state,
			        c->fail_msg);
		} else if (c->list == OUTBOX_ANNOTS) {
			const struct outbox_annot *a = c->rows;
			log_err("central %s refused annotation %" PRId64 " (%s: %s); "
			        "it stays local", c->target, a->id, c->fail_state,
			        c->fail_msg);
		} else {
			const struct outbox_pen *p = c->rows;
			char serial[160];
			pl_text_clean(PL_TEXT_LOG, p->serial, serial, sizeof serial);
			log_err("central %s refused pen %s's model and versions (%s: "
			        "%s); not sent again until they change", c->target,
			        serial, c->fail_state, c->fail_msg);
		}
		if (outbox_list_done(c->ob, c->list, c->rows, 1) != PL_OK)
			set_error(c, "%s", pl_error_message());
	}
	if (c->isolate)
		c->isolate--;
	retry(c, true);
}

/* A conflict goes into the site's audit trail too (and from there to
 * central's): who found it, which session, both digests. */
static void audit_conflict(struct central *c, const struct outbox_item *it,
                           const char *central_sha, const char *ours)
{
	char uuid[37], old_value[128], new_value[128], result[160];
	pl_uuid_format(it->key.uuid, uuid);
	snprintf(old_value, sizeof old_value, "{\"uuid\":\"%s\",\"sha256\":\"%s\"}",
	         uuid, central_sha);
	snprintf(new_value, sizeof new_value, "{\"uuid\":\"%s\",\"sha256\":\"%s\"}",
	         uuid, ours);
	snprintf(result, sizeof result, "refused: central holds another record "
	         "under this key");
	struct audit_entry e = {
	    .utc_ms = pl_time_utc_ms(),
	    .uid = (uint32_t)getuid(),
	    .user = "penlinkd",
	    .pen = it->key.serial,
	    .action = "central.conflict",
	    .old_value = old_value,
	    .new_value = new_value,
	    .result = result,
	};
	if (!c->d->archive || archive_audit_add(c->d->archive, &e) != PL_OK) {
		char k[160];
		log_key(it, k, sizeof k);
		log_err("central: cannot audit the conflict of %s: %s", k,
		        c->d->archive ? archive_errmsg(c->d->archive) : "no archive");
	}
}

static void sessions_done(struct central *c)
{
	size_t n = c->n_items;
	int64_t *ids = calloc(n, sizeof *ids);
	int *states = calloc(n, sizeof *states);
	char (*notes)[96] = calloc(n, sizeof *notes);
	const char **np = calloc(n, sizeof *np);
	if (!ids || !states || !notes || !np) {
		free(ids);
		free(states);
		free(notes);
		free(np);
		set_error(c, "out of memory clearing the outbox");
		retry(c, false);
		return;
	}
	size_t k = 0, confirmed = 0, conflicts = 0;
	for (size_t i = 0; i < n; i++) {
		const struct outbox_item *it = &c->items[i];
		const struct digest *dg = &c->digests[i];
		char key[160], sha[65];
		log_key(it, key, sizeof key);
		pl_hex_format(it->summary.sha256, 32, sha);
		if (!dg->found) {
			/* Committed, yet not there: never clear it on faith. */
			set_error(c, "session %s is not in central after its batch "
			          "committed; it stays queued", key);
			continue;
		}
		ids[k] = it->id;
		if (!strcmp(dg->sha256, sha)) {
			states[k] = OUTBOX_CONFIRMED;
			confirmed++;
			if (strcmp(dg->site, c->site)) {
				char site[64];
				pl_text_clean(PL_TEXT_LOG, dg->site, site, sizeof site);
				log_info("central %s: session %s was already there from "
				         "site %s, same digest: stored once", c->target,
				         key, site);
			}
		} else {
			char central_sha[65];
			pl_text_clean(PL_TEXT_LOG, dg->sha256, central_sha, sizeof central_sha);
			states[k] = OUTBOX_CONFLICT;
			snprintf(notes[k], sizeof notes[k], "central sha256 %s", central_sha);
			np[k] = notes[k];
			conflicts++;
			log_err("central %s: CONFLICT for session %s: central holds "
			        "sha256 %s, this site's archive %s; refused (central "
			        "keeps its record, ours stays local, marked conflict)",
			        c->target, key, central_sha, sha);
			audit_conflict(c, it, central_sha, sha);
		}
		k++;
	}
	int e = outbox_mark(c->ob, ids, states, np, k);
	free(ids);
	free(states);
	free(notes);
	free(np);
	if (e != PL_OK) {
		/* Central has them: a resend finds them there and clears them. */
		set_error(c, "%s", pl_error_message());
	}
	log_info("central %s: batch of %zu committed: %zu confirmed, %zu "
	         "conflict%s", c->target, n, confirmed, conflicts,
	         conflicts == 1 ? "" : "s");
	if (k == n && e == PL_OK) {
		c->last_sync_ms = pl_time_utc_ms();
		clear_error(c);
	}
	c->isolate = c->isolate > n ? c->isolate - n : 0;
}

static void exchange_done(struct central *c)
{
	set_timer(c, 0, NULL);
	if (c->ph == PH_CHECK) {
		check_done(c);
		return;
	}
	if (c->failed || !c->commit_ok) {
		if (data_error(c->fail_state)) {
			batch_refused(c);
			return;
		}
		set_error(c, "batch not committed: %s%s%s", c->fail_state,
		          c->fail_state[0] ? ": " : "", c->fail_msg);
		retry(c, false);
		return;
	}
	if (c->n_items)
		sessions_done(c);
	else
		rows_committed(c);
	free_batch(c);
	c->ph = PH_IDLE;
	kick(c);
}

static void read_results(struct central *c)
{
	while (c->conn && !PQisBusy(c->conn)) {
		PGresult *res = PQgetResult(c->conn);
		if (!res) {
			if (!c->await_null)
				break;
			c->await_null = false;
			c->qi++;
			continue;
		}
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			if (c->ph == PH_CHECK || c->ph == PH_BATCH) {
				exchange_done(c);
				return;
			}
			continue;
		}
		if (c->ph != PH_CHECK && c->ph != PH_BATCH) {
			/* Nothing was asked: the server is going away. */
			char msg[512];
			pq_message(c, res, msg, sizeof msg);
			PQclear(res);
			set_error(c, "the server ended the connection: %s", msg);
			retry(c, false);
			return;
		}
		on_result(c, res);
		PQclear(res);
		c->await_null = true;
	}
	if (c->conn && PQstatus(c->conn) == CONNECTION_BAD)
		broken(c, "connection lost");
}

static void on_io(void *ud, int fd, unsigned events)
{
	(void)fd;
	struct central *c = ud;
	if (!c->conn)
		return;
	if (c->ph == PH_CONNECTING) {
		poll_connect(c);
		return;
	}
	if ((events & (LOOP_IN | LOOP_ERR)) && !PQconsumeInput(c->conn)) {
		broken(c, "connection lost");
		return;
	}
	if (c->flushing) {
		int r = PQflush(c->conn);
		if (r < 0) {
			broken(c, "cannot send");
			return;
		}
		c->flushing = r == 1;
	}
	read_results(c);
	if (c->conn)
		watch(c, LOOP_IN | (c->flushing ? LOOP_OUT : 0u));
}

/* ------------------------------------------------------------------ start, stop, status */

int central_start(struct daemon *d, struct central **out)
{
	*out = NULL;
	if (!d->cfg.central_url[0])
		return PL_OK;
	struct central *c = calloc(1, sizeof *c);
	if (!c)
		return pl_error_set(PL_ERR_MEM, "out of memory");
	c->d = d;
	c->loop = d->loop;
	c->fd = -1;
	snprintf(c->url, sizeof c->url, "%s", d->cfg.central_url);
	snprintf(c->site, sizeof c->site, "%s", d->cfg.central_site);
	pc_conninfo_describe(c->url, c->target, sizeof c->target);
	c->batch_bytes = (uint64_t)d->cfg.central_batch_kib * 1024u;
	c->retry_max_ms = d->cfg.central_retry_max_s * 1000;
	c->backoff_ms = BACKOFF_MIN_MS;
	c->rng = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^
	         (uint64_t)pl_time_monotonic_ms() ^ 0x9e3779b97f4a7c15ull;
	uint64_t backfilled = 0;
	int e = outbox_open(d->cfg.db_path, &c->ob, &backfilled);
	if (e != PL_OK) {
		free(c);
		return e;
	}
	if (backfilled)
		log_notice("central: %" PRIu64 " archived session%s queued for "
		           "central", backfilled, backfilled == 1 ? "" : "s");
	log_notice("central: replicating as site %s to %s", c->site, c->target);
	c->ph = PH_DOWN;
	set_timer(c, 0, start_connect);
	*out = c;
	return PL_OK;
}

static void wake_timer(void *ud)
{
	struct central *c = ud;
	c->timer = 0;
	kick(c);
}

void central_wake(struct central *c)
{
	if (!c)
		return;
	/* Busy or down: the batch's end or the reconnection looks anyway. */
	c->dirty = true;
	if (c->ph == PH_IDLE)
		set_timer(c, 0, wake_timer);
}

void central_stop(struct central *c)
{
	if (!c)
		return;
	drop(c);
	outbox_close(c->ob);
	free(c);
}

int central_get_status(struct central *c, struct central_status *s)
{
	memset(s, 0, sizeof *s);
	snprintf(s->site, sizeof s->site, "%s", c->site);
	snprintf(s->target, sizeof s->target, "%s", c->target);
	s->connected = c->ph == PH_IDLE || c->ph == PH_BATCH;
	s->last_sync_ms = c->last_sync_ms;
	s->last_error_ms = c->last_error_ms;
	snprintf(s->last_error, sizeof s->last_error, "%s", c->last_error);
	s->next_attempt_ms = c->ph == PH_DOWN ? c->next_attempt_ms : 0;
	struct outbox_counts n;
	int e = outbox_counts(c->ob, &n);
	if (e != PL_OK)
		return e;
	s->pending = n.pending;
	s->conflicts = n.conflicts;
	s->refused = n.refused;
	s->confirmed = n.confirmed;
	s->audit_pending = n.audit_pending;
	s->annotations_pending = n.annotations_pending;
	s->pens_pending = n.pens_pending;
	return PL_OK;
}
