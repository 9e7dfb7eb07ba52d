/*
 * penctl --central URL: the third backend (penctl.h), the clinic's central
 * PostgreSQL archive (issue 12), read-only.
 *
 * One blocking libpq connection (penctl is a command-line tool), one
 * read-only REPEATABLE READ transaction for the whole command, so a list
 * and the records it names, or an export, see one snapshot.  Works the
 * same against the primary and against a streaming standby (a read
 * replica).  The login role needs penlink_read (GRANT penlink_read TO ...);
 * anything more is not used.  The URL is checked like penlinkd's [central]
 * url (pc_conninfo_check: no password in it) and only ever shown described
 * (pc_conninfo_describe: host, port, dbname, user).
 *
 * Two doors, one archive:
 *   - backend_ops: sessions list, show (read_record), pull (fetch_to_file),
 *     as for penlinkd's archive; the pen operations are unsupported;
 *   - the control-protocol requests the commands send themselves
 *     (central_ctl_send/next, through dc_send/dc_next): LIST_SESSIONS
 *     (sessions list --client), EXPORT_SESSIONS (sessions export),
 *     AUDIT (audit), AUDIT_VERIFY (audit verify), LIST_ANNOTATIONS
 *     (sessions show); answered one response at a time as dc_next() asks,
 *     so an export streams session by session (libpq's single-row mode)
 *     and never holds the archive.
 *
 * Exports are rendered by the one renderer penlinkd's use too
 * (control/penlink_export.h), from the record bytes central holds, with
 * the delivering site, the sessions' annotations (every site's, oldest
 * first) and the pen's model and hardware revision as a site last saw them
 * (schema version 2; a database still at version 1 has neither, and those
 * columns are empty).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "backend.h"
#include "penlink_audit.h"
#include "penlink_central.h"
#include "penlink_export.h"

/* Sessions per SessionList piece, audit entries per AuditList piece (as
 * penlinkd pages them). */
#define LIST_PAGE 512
#define AUDIT_PAGE 256
#define AUDIT_DEFAULT_LIMIT 100

enum pending_op {
	P_NONE, P_LIST, P_EXPORT, P_AUDIT, P_ANNOTATIONS, P_AUDIT_VERIFY
};

/* Schema version 2 added annotations, pens and the sites' audit hashes. */
#define V_ANNOTATIONS 2

struct central_conn {
	struct penless penless; /* first: the refusals of what only a pen does */
	struct ctl *c;
	PGconn *pg;
	char target[256];     /* where the URL points, without secrets */
	char where[300];      /* "central archive <target>" */
	int version;          /* the schema version found */
	uint32_t next_id;

	/* The request being answered (one at a time, as with penlinkd). */
	enum pending_op op;
	uint32_t id;
	bool started, finished, streaming; /* streaming: a query is being read */
	/* The streamed query's answer ("export") and what it does ("export
	 * the sessions"), for its messages. */
	const char *stream_what, *stream_doing;
	/* P_LIST: the sessions, handed out a page at a time. */
	struct session_entry *list;
	size_t n_list, list_pos;
	/* P_EXPORT */
	bool json, per_session;
	unsigned long rows;
	/* P_AUDIT */
	uint32_t limit;
	/* P_ANNOTATIONS: the session's annotations (NULL: none) */
	PGresult *annots;
	/* P_AUDIT_VERIFY: the outcome */
	Plctl__AuditVerified verified;
	char verify_reason[512], verify_head[PLC_AUDIT_HASH_TEXT];
};

/* ------------------------------------------------------------------ errors */

/* PostgreSQL's complaint as one line, with a hint for the two a reader
 * meets: no schema, and a role without penlink_read. */
static int pq_fail(struct central_conn *cc, const PGresult *res,
                   const char *doing)
{
	char line[768];
	pc_one_line(res ? PQresultErrorMessage(res) : PQerrorMessage(cc->pg), line,
	            sizeof line);
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (state && (!strcmp(state, "42P01") || !strcmp(state, "3F000")))
		return pl_error_set(PL_ERR_NOT_FOUND,
		                    "%s has no penlink schema (%s); create it with "
		                    "penctl central init URL", cc->where, line);
	if (state && !strcmp(state, "42501"))
		return pl_error_set(PL_ERR_ACCESS,
		                    "%s: %s: %s; the login role needs penlink_read "
		                    "(GRANT penlink_read TO <role>)", cc->where, doing,
		                    line);
	if (PQstatus(cc->pg) == CONNECTION_BAD)
		return pl_error_set(PL_ERR_IO, "%s: connection lost while trying to "
		                    "%s: %s", cc->where, doing, line);
	return pl_error_set(PL_ERR_IO, "%s: cannot %s: %s", cc->where, doing,
	                    line);
}

static int unsupported(const char *what)
{
	return pl_error_set(PL_ERR_UNSUPPORTED,
	                    "--central reads the clinic's central archive (%s); "
	                    "%s needs a pen or penlinkd: drop --central",
	                    cmd_central_names(), what);
}

/* ------------------------------------------------------------------ queries */

/* Runs sql with text parameters; *res (status want) on PL_OK. */
static int query(struct central_conn *cc, const char *sql, int n,
                 const char *const *params, int result_format,
                 ExecStatusType want, const char *doing, PGresult **res)
{
	*res = NULL;
	if (cc->streaming)
		return pl_error_set(PL_ERR_BUSY, "%s: a query is still being read",
		                    cc->where);
	PGresult *r = PQexecParams(cc->pg, sql, n, NULL, params, NULL, NULL,
	                           result_format);
	if (!r || PQresultStatus(r) != want) {
		int e = pq_fail(cc, r, doing);
		PQclear(r);
		return e;
	}
	*res = r;
	return PL_OK;
}

/* Sends sql, whose rows stream_next() then hands out one at a time
 * (libpq's single-row mode), so a long answer is never held whole.  what
 * and doing (static) name it in messages. */
static int stream_start(struct central_conn *cc, const char *sql, int n,
                        const char *const *params, int result_format,
                        const char *what, const char *doing)
{
	cc->stream_what = what;
	cc->stream_doing = doing;
	if (!PQsendQueryParams(cc->pg, sql, n, NULL, params, NULL, NULL,
	                       result_format))
		return pq_fail(cc, NULL, doing);
	cc->streaming = true;
	if (!PQsetSingleRowMode(cc->pg))
		return pq_fail(cc, NULL, doing);
	return PL_OK;
}

/* Reads what libpq still holds of the streamed query. */
static void stream_end(struct central_conn *cc)
{
	PGresult *r;
	while ((r = PQgetResult(cc->pg)))
		PQclear(r);
	cc->streaming = false;
}

/* The next row of the streamed query: PL_OK and *row (PQclear it), or PL_OK
 * and *row NULL at its end.  The end and an error end the stream. */
static int stream_next(struct central_conn *cc, PGresult **row)
{
	*row = NULL;
	PGresult *r = PQgetResult(cc->pg);
	if (!r) {
		cc->streaming = false;
		return pl_error_set(PL_ERR_IO, "%s: the %s ended early", cc->where,
		                    cc->stream_what);
	}
	if (PQresultStatus(r) == PGRES_SINGLE_TUPLE) {
		*row = r;
		return PL_OK;
	}
	int e = PQresultStatus(r) == PGRES_TUPLES_OK
	            ? PL_OK
	            : pq_fail(cc, r, cc->stream_doing);
	PQclear(r);
	stream_end(cc);
	return e;
}

static int64_t col_i64(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0
	                                : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static const char *col_str(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static bool hex_parse(const char *hex, uint8_t *out, size_t n)
{
	if (!hex || strlen(hex) != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return false;
		out[i] = (uint8_t)v;
	}
	return true;
}

/* The session columns every query below selects first, as text.  An
 * archive time of 'infinity' (no site writes one, an owner may) has no
 * milliseconds: NULL, read as unknown, rather than the whole listing
 * failing on one row. */
#define SESSION_COLS                                                        \
	"serial, uuid::text, seq::text, size::text, sha256, "                  \
	"CASE WHEN rtc_time THEN 't' ELSE 'f' END, start_ms::text, "           \
	"end_ms::text, "                                                       \
	"CASE WHEN isfinite(archived_at) "                                     \
	"THEN (extract(epoch FROM archived_at) * 1000)::bigint::text END, site"
#define N_SESSION_COLS 10

/* $1 serial or NULL, $2 site or NULL, $3 since (ms), $4 until (ms) or
 * NULL: the filters of every listing, in archive order (start time, then
 * the order central received them).  The sessions table is s.
 *
 * The columns are selected as text (col::text keeps the name col), and an
 * ORDER BY of a bare name sorts by the output column of that name: the
 * queries here sort by the table's columns, qualified (s.start_ms), so
 * that row 10 comes after row 9, not after row 1. */
#define SESSION_FILTER                                                      \
	"WHERE ($1::text IS NULL OR serial = $1) "                             \
	"AND ($2::text IS NULL OR site = $2) AND start_ms >= $3::bigint "      \
	"AND ($4::bigint IS NULL OR (rtc_time AND start_ms < $4::bigint)) "

/* Annotations are ordered by when they were written, then by site and id
 * there: oldest first.  A session's client reference is that of its latest
 * annotation that gives one, the rule penlinkd applies to its own. */
#define ANNOT_ORDER "a.utc_ms, a.site, a.local_id"
#define CURRENT_CLIENT                                                      \
	"(SELECT a.client_ref FROM penlink.annotations a "                     \
	"WHERE a.serial = s.serial AND a.uuid = s.uuid AND a.client_ref <> '' " \
	"ORDER BY a.utc_ms DESC, a.site DESC, a.local_id DESC LIMIT 1)"

/* A row central's own constraints would have refused (an owner may drop
 * them) is an error naming the row and the column, not a value wrapped
 * into the model's range. */
static int session_from_row(const struct central_conn *cc, const PGresult *r,
                            int row, struct session_entry *s)
{
	memset(s, 0, sizeof *s);
	const char *serial = col_str(r, row, 0);
	snprintf(s->key.serial, sizeof s->key.serial, "%s", serial ? serial : "");
	char who[96];
	pl_text_clean(PL_TEXT_TERMINAL, s->key.serial, who, sizeof who);
	if (!parse_uuid(col_str(r, row, 1) ? col_str(r, row, 1) : "", s->key.uuid))
		return pl_error_set(PL_ERR_PROTOCOL, "%s: a session row of pen %s "
		                    "has a malformed uuid", cc->where, who);
	struct plc_session_summary sum;
	if (plc_session_summary_numbers(&sum, col_i64(r, row, 2),
	                                col_i64(r, row, 3)) != PL_OK)
		return pl_error_set(PL_ERR_PROTOCOL, "%s: session %s/%s: %s",
		                    cc->where, who, col_str(r, row, 1),
		                    pl_error_message());
	s->info.seq = sum.seq;
	s->info.size = sum.size;
	if (!hex_parse(col_str(r, row, 4), s->info.sha256, 32))
		return pl_error_set(PL_ERR_PROTOCOL, "%s: session %s/%s has a "
		                    "malformed sha256", cc->where, who,
		                    col_str(r, row, 1));
	s->info.rtc_time = col_str(r, row, 5) && col_str(r, row, 5)[0] == 't';
	s->info.start_ms = col_i64(r, row, 6);
	s->info.end_ms = col_i64(r, row, 7);
	s->info.archived = true;
	memcpy(s->info.uuid, s->key.uuid, 16);
	s->archived_ms = col_i64(r, row, 8);
	return PL_OK;
}

/* Filter parameters: -s, --site, since, --until. */
struct filter_params {
	char since[24], until[24];
	const char *v[4];
};

static void filter_params(const struct central_conn *cc, const char *serial,
                          int64_t since, struct filter_params *f)
{
	snprintf(f->since, sizeof f->since, "%" PRId64, since);
	snprintf(f->until, sizeof f->until, "%" PRId64, cc->c->until_ms);
	f->v[0] = serial && *serial ? serial : NULL;
	f->v[1] = cc->c->site;
	f->v[2] = f->since;
	f->v[3] = cc->c->until_ms ? f->until : NULL;
}

/* client: only the sessions whose current client reference it is (NULL:
 * all; needs schema version 2). */
static int list_query(struct central_conn *cc, const char *serial,
                      int64_t since, const char *client,
                      struct session_entry **out, size_t *count)
{
	*out = NULL;
	*count = 0;
	struct filter_params f;
	filter_params(cc, serial, since, &f);
	const char *pv[5] = {f.v[0], f.v[1], f.v[2], f.v[3], client};
	PGresult *r;
	int e = client ? query(cc,
	                       "SELECT " SESSION_COLS " FROM penlink.sessions s "
	                       SESSION_FILTER "AND " CURRENT_CLIENT " = $5 "
	                       "ORDER BY s.start_ms, s.id",
	                       5, pv, 0, PGRES_TUPLES_OK, "list the sessions", &r)
	               : query(cc,
	                       "SELECT " SESSION_COLS " FROM penlink.sessions s "
	                       SESSION_FILTER "ORDER BY s.start_ms, s.id",
	                       4, pv, 0, PGRES_TUPLES_OK, "list the sessions", &r);
	if (e != PL_OK)
		return e;
	size_t n = (size_t)PQntuples(r);
	struct session_entry *v = calloc(n ? n : 1, sizeof *v);
	if (!v) {
		PQclear(r);
		return pl_error_set(PL_ERR_MEM, "out of memory listing %zu sessions", n);
	}
	for (size_t i = 0; i < n; i++)
		if ((e = session_from_row(cc, r, (int)i, &v[i])) != PL_OK) {
			PQclear(r);
			free(v);
			return e;
		}
	PQclear(r);
	*out = v;
	*count = n;
	return PL_OK;
}

/* $1 serial, $2 UUID: one session (central keeps one row a key). */
#define SESSION_KEY "WHERE serial = $1 AND uuid = $2::uuid"

/* The row of the session key names, as sql (... SESSION_KEY) selects it,
 * the columns as text or (binary) raw; PL_ERR_NOT_FOUND naming the session
 * when central has none. */
static int session_row(struct central_conn *cc, const struct pl_session_key *key,
                       const char *sql, int binary, const char *doing,
                       PGresult **res)
{
	char uuid[37];
	pl_uuid_format(key->uuid, uuid);
	const char *p[2] = {key->serial, uuid};
	int e = query(cc, sql, 2, p, binary, PGRES_TUPLES_OK, doing, res);
	if (e != PL_OK || PQntuples(*res) == 1)
		return e;
	PQclear(*res);
	*res = NULL;
	char what[160];
	pl_session_key_format(key, PL_TEXT_TERMINAL, what, sizeof what);
	return pl_error_set(PL_ERR_NOT_FOUND, "no session %s in %s", what,
	                    cc->where);
}

/* The record under key, checked against central's digest and size. */
static int fetch_record(struct central_conn *cc, const struct pl_session_key *key,
                        uint64_t max, uint8_t **data, size_t *len)
{
	*data = NULL;
	*len = 0;
	char what[160];
	pl_session_key_format(key, PL_TEXT_TERMINAL, what, sizeof what);
	PGresult *r;
	int e = session_row(cc, key,
	                    "SELECT size::text, sha256 FROM penlink.sessions "
	                    SESSION_KEY, 0, "look up the session", &r);
	if (e != PL_OK)
		return e;
	uint64_t size = (uint64_t)col_i64(r, 0, 0);
	uint8_t sha[32];
	bool sha_ok = hex_parse(col_str(r, 0, 1), sha, 32);
	PQclear(r);
	if (!sha_ok)
		return pl_error_set(PL_ERR_PROTOCOL, "%s: session %s has a malformed "
		                    "sha256", cc->where, what);
	if (size > max)
		return pl_error_set(PL_ERR_PARSE, "session %s is %" PRIu64 " bytes, "
		                    "more than the %" PRIu64 " penctl holds in memory",
		                    what, size, max);
	/* The record as raw bytes: binary results. */
	e = session_row(cc, key, "SELECT record FROM penlink.sessions " SESSION_KEY,
	                1, "read the record", &r);
	if (e != PL_OK)
		return e;
	size_t n = (size_t)PQgetlength(r, 0, 0);
	uint8_t got[32];
	pl_sha256(PQgetvalue(r, 0, 0), n, got);
	if (n != size || memcmp(got, sha, 32) != 0) {
		PQclear(r);
		return pl_error_set(PL_ERR_DIGEST, "the record of session %s read "
		                    "from %s does not match its SHA-256 or size",
		                    what, cc->where);
	}
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf) {
		PQclear(r);
		return pl_error_set(PL_ERR_MEM, "out of memory reading %zu bytes", n);
	}
	memcpy(buf, PQgetvalue(r, 0, 0), n);
	PQclear(r);
	*data = buf;
	*len = n;
	return PL_OK;
}

/* ------------------------------------------------------------------ backend_ops */

static const char *cb_serial(void *ctx)
{
	struct central_conn *cc = ctx;
	return cc->c->serial ? cc->c->serial : "";
}

static const char *cb_where(void *ctx)
{
	return ((struct central_conn *)ctx)->where;
}

static int cb_info(void *ctx, struct pl_device_info *out)
{
	(void)ctx;
	(void)out;
	return unsupported("a pen's info");
}

static int cb_link(void *ctx, struct link_info *out)
{
	(void)ctx;
	(void)out;
	return unsupported("a pen's link");
}

static int cb_get_presets(void *ctx, struct pl_preset_set *out)
{
	(void)ctx;
	(void)out;
	return unsupported("reading presets");
}

static int cb_clock_get(void *ctx, int64_t *utc_ms, bool *rtc_set,
                        uint64_t *uptime_ms)
{
	(void)ctx;
	(void)utc_ms;
	(void)rtc_set;
	(void)uptime_ms;
	return unsupported("a pen's clock");
}

static int cb_clock_sync(void *ctx, int64_t *offset_ms, int *rtc_was_set)
{
	(void)ctx;
	(void)offset_ms;
	(void)rtc_was_set;
	return unsupported("setting a pen's clock");
}

static int cb_list_sessions(void *ctx, int64_t since, struct session_entry **out,
                            size_t *count)
{
	struct central_conn *cc = ctx;
	return list_query(cc, cc->c->serial, since, NULL, out, count);
}

/* A pull: the record, read whole, into the file being made. */
struct record_copy {
	const char *path;
	const uint8_t *data;
	size_t len;
	pl_progress_fn progress;
	void *ud;
};

static int fill_file(void *ud, int fd)
{
	const struct record_copy *rc = ud;
	int e = fd_write_all(fd, rc->path, rc->data, rc->len);
	if (e == PL_OK && rc->progress)
		rc->progress(rc->ud, rc->len, rc->len);
	return e;
}

static int cb_fetch_to_file(void *ctx, const struct session_entry *s,
                            const char *path, pl_progress_fn progress, void *ud)
{
	struct central_conn *cc = ctx;
	uint8_t *data;
	size_t len;
	int e = fetch_record(cc, &s->key, UINT64_MAX, &data, &len);
	if (e != PL_OK)
		return e;
	uint8_t h[32];
	pl_sha256(data, len, h);
	if (len != s->info.size || memcmp(h, s->info.sha256, 32) != 0) {
		free(data);
		return pl_error_set(PL_ERR_DIGEST, "the record read from %s differs "
		                    "from the one it listed", cc->where);
	}
	struct record_copy rc = {.path = path, .data = data, .len = len,
	                         .progress = progress, .ud = ud};
	e = archive_copy_to_file(path, s->info.sha256, fill_file, &rc);
	free(data);
	return e;
}

static int cb_read_record(void *ctx, const struct pl_session_key *key,
                          uint64_t max, uint8_t **data, size_t *len)
{
	return fetch_record(ctx, key, max, data, len);
}

static void pending_end(struct central_conn *cc);

static void cb_close(void *ctx)
{
	struct central_conn *cc = ctx;
	if (!cc)
		return;
	pending_end(cc);
	if (cc->c && cc->c->cc == cc)
		cc->c->cc = NULL;
	/* The transaction only read: ending the connection ends it. */
	PQfinish(cc->pg);
	free(cc);
}

static const struct backend_ops central_ops = {
	.direct = false,
	.serial = cb_serial,
	.where = cb_where,
	.info = cb_info,
	.link = cb_link,
	.get_presets = cb_get_presets,
	/* Never reached: preset push reads the set first, and get_presets
	 * refuses. */
	.put_presets = NULL,
	.clock_get = cb_clock_get,
	.clock_sync = cb_clock_sync,
	.list_sessions = cb_list_sessions,
	.fetch_to_file = cb_fetch_to_file,
	.resume_point = penless_resume_point,
	.read_record = cb_read_record,
	.release = NULL,
	/* what only a pen does: refused through unsupported() */
	.ping = penless_ping,
	.trace = penless_trace,
	.set_event_handler = penless_set_event_handler,
	.poll = penless_poll,
	.cancel = NULL,
	.close = cb_close,
};

static void ignore_notice(void *ud, const char *msg)
{
	(void)ud;
	(void)msg;
}

int central_open(struct ctl *c, struct backend *out)
{
	if (pc_conninfo_check(c->central) != PL_OK)
		return ctl_usage(c, "--central: %s", pl_error_message());
	struct central_conn *cc = calloc(1, sizeof *cc);
	if (!cc)
		return ctl_fail_code(c, PL_ERR_MEM, "out of memory");
	cc->penless.refuse = unsupported;
	cc->c = c;
	pc_conninfo_describe(c->central, cc->target, sizeof cc->target);
	snprintf(cc->where, sizeof cc->where, "the central archive at %s",
	         cc->target);
	/* connect_timeout before the URL (which may set its own), the
	 * application name after it. */
	char timeout_s[16];
	int t = c->timeout_ms > 0 ? (c->timeout_ms + 999) / 1000 : 10;
	snprintf(timeout_s, sizeof timeout_s, "%d", t < 2 ? 2 : t);
	const char *keys[] = {"connect_timeout", "dbname", "application_name", NULL};
	const char *vals[] = {timeout_s, c->central, "penctl", NULL};
	cc->pg = PQconnectdbParams(keys, vals, 1);
	if (!cc->pg) {
		free(cc);
		return ctl_fail_code(c, PL_ERR_MEM, "out of memory connecting");
	}
	int e = PL_OK;
	if (PQstatus(cc->pg) != CONNECTION_OK) {
		char line[768];
		pc_one_line(PQerrorMessage(cc->pg), line, sizeof line);
		e = pl_error_set(PL_ERR_IO, "cannot connect to %s: %s", cc->where, line);
	}
	if (e == PL_OK) {
		PQsetNoticeProcessor(cc->pg, ignore_notice, NULL);
		PGresult *r = NULL;
		/* One snapshot for the command; a standby allows exactly this. */
		e = query(cc, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0,
		          NULL, 0, PGRES_COMMAND_OK, "begin a read-only transaction",
		          &r);
		PQclear(r);
		if (e == PL_OK)
			e = query(cc, "SELECT coalesce(max(version), 0) FROM "
			          "penlink.schema_version", 0, NULL, 0, PGRES_TUPLES_OK,
			          "read the schema version", &r);
		if (e == PL_OK) {
			cc->version = (int)col_i64(r, 0, 0);
			PQclear(r);
			/* Readers read a newer schema too: migrations only add. */
			if (cc->version < 1)
				e = pl_error_set(PL_ERR_NOT_FOUND, "%s has an empty penlink "
				                 "schema; run penctl central init URL",
				                 cc->where);
		}
	}
	if (e != PL_OK) {
		PQfinish(cc->pg);
		free(cc);
		return ctl_fail_pl(c, e);
	}
	c->cc = cc;
	out->ops = &central_ops;
	out->ctx = cc;
	return PX_OK;
}

/* ------------------------------------------------------------------ export rendering
 *
 * The one renderer of the export formats (control/penlink_export.h), which
 * penlinkd's exports use too; central adds the delivering site.
 */

/* What the export query gives of a session besides its row and record:
 * the pen's model and hardware revision ("" when no site reported the
 * pen), and its annotations as a JSON array of [utc_ms, user, client_ref,
 * operator, note], oldest first (NULL: none). */
struct session_extra {
	const char *site, *model, *hw_revision, *annotations;
};

/* The annotations of the export query, gathered as penlinkd gathers its
 * own (plc_export_annots). */
static int gather_annotations(struct central_conn *cc, const char *text,
                              struct plc_export_annots *acc)
{
	if (!text)
		return PL_OK;
	json_object *arr = json_tokener_parse(text);
	if (!arr || !json_object_is_type(arr, json_type_array)) {
		json_object_put(arr);
		return pl_error_set(PL_ERR_PROTOCOL, "%s: unreadable annotations "
		                    "of a session", cc->where);
	}
	size_t n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++) {
		json_object *a = json_object_array_get_idx(arr, i);
		const char *f[4];
		for (int k = 0; k < 4; k++)
			f[k] = json_object_get_string(json_object_array_get_idx(a, k + 1));
		plc_export_annots_add(acc, json_object_get_int64(
		                               json_object_array_get_idx(a, 0)),
		                      f[0], f[1], f[2], f[3]);
	}
	json_object_put(arr);
	return PL_OK;
}

/* One session's row (CSV) or object (JSON) after `before`, from its
 * columns and record (NULL: central could not decode it, why says so). */
static int render_session(struct central_conn *cc, struct plc_buf *b,
                          bool json, const char *before,
                          const struct session_entry *s,
                          const struct session_extra *x, const uint8_t *rec,
                          size_t rec_len, const char *why)
{
	json_object *j = NULL;
	char reason[512] = "";
	if (why)
		snprintf(reason, sizeof reason, "%s", why);
	if (rec) {
		struct pl_record *r;
		if (pl_record_parse(rec, rec_len, &r) == PL_OK) {
			char *text = pl_record_to_json(r, false);
			pl_record_free(r);
			j = text ? json_tokener_parse(text) : NULL;
			free(text);
			if (!j)
				return pl_error_set(PL_ERR_MEM, "out of memory exporting a "
				                    "session");
		} else {
			snprintf(reason, sizeof reason, "%s", pl_error_message());
		}
	}
	struct plc_export_session row = {
	    .serial = s->key.serial,
	    .summary = {.seq = s->info.seq, .size = s->info.size,
	                .start_ms = s->info.start_ms, .end_ms = s->info.end_ms,
	                .rtc_time = s->info.rtc_time, .archived_ms = s->archived_ms},
	    .model = x->model ? x->model : "",
	    .hw_revision = x->hw_revision ? x->hw_revision : "",
	    .decode_error = j ? NULL : reason, .site = x->site,
	};
	memcpy(row.uuid, s->key.uuid, 16);
	memcpy(row.summary.sha256, s->info.sha256, 32);
	struct plc_export_annots acc;
	plc_export_annots_init(&acc, json);
	int e = gather_annotations(cc, x->annotations, &acc);
	if (e != PL_OK) {
		json_object_put(j);
		plc_export_annots_free(&acc);
		return e;
	}
	if (plc_export_annots_fill(&acc, &row) != PL_OK) {
		json_object_put(j);
		plc_export_annots_free(&acc);
		return pl_error_set(PL_ERR_MEM, "out of memory exporting a session");
	}
	plc_buf_str(b, before);
	if (!json) {
		plc_export_csv_row(b, &row, j);
		json_object_put(j);
	} else {
		e = plc_export_json_row(b, &row, j); /* takes j over */
	}
	plc_export_annots_free(&acc);
	if (e == PL_OK && b->oom)
		e = PL_ERR_MEM;
	return e == PL_OK ? PL_OK
	                  : pl_error_set(PL_ERR_MEM, "out of memory exporting a "
	                                 "session");
}

/* ------------------------------------------------------------------ the control protocol */

/* The response to the pending request whose body is msg, as dc_next()
 * hands it out: owned by protobuf-c's unpacker, so dc_free() frees it like
 * one penlinkd sent.  last: the request is answered. */
static int respond(struct central_conn *cc, Plctl__Response__BodyCase body,
                   const void *msg, bool last, Plctl__Response **rep)
{
	Plctl__Response r = PLCTL__RESPONSE__INIT;
	r.id = cc->id;
	r.last = last;
	r.body_case = body;
	/* The body is a oneof: protobuf-c keeps its members in one anonymous
	 * union of message pointers and reads it back by body_case (penlinkd's
	 * client_send() sets it the same way). */
	r.ack = (Pl__Ack *)msg;
	if (last)
		cc->finished = true;
	size_t n = plctl__response__get_packed_size(&r);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return pl_error_set(PL_ERR_MEM, "out of memory");
	plctl__response__pack(&r, buf);
	*rep = plctl__response__unpack(NULL, n, buf);
	free(buf);
	return *rep ? PL_OK : pl_error_set(PL_ERR_MEM, "out of memory");
}

static void pending_end(struct central_conn *cc)
{
	if (cc->streaming) {
		/* Abandoned mid-stream. */
		PQrequestCancel(cc->pg);
		stream_end(cc);
	}
	free(cc->list);
	cc->list = NULL;
	cc->n_list = cc->list_pos = 0;
	PQclear(cc->annots);
	cc->annots = NULL;
	cc->op = P_NONE;
	cc->started = cc->finished = false;
	cc->rows = 0;
}

/* ArchivedSession of s, as penlinkd lists it; it points into s. */
static void archived_pb(const struct session_entry *s, Plctl__ArchivedSession *a)
{
	plc_session_to_pb(&s->key, &s->info, s->archived_ms, a);
}

static int next_list(struct central_conn *cc, Plctl__Response **rep)
{
	size_t n = cc->n_list - cc->list_pos;
	if (n > LIST_PAGE)
		n = LIST_PAGE;
	Plctl__ArchivedSession *as = calloc(n ? n : 1, sizeof *as);
	Plctl__ArchivedSession **ap = calloc(n ? n : 1, sizeof *ap);
	if (!as || !ap) {
		free(as);
		free(ap);
		return pl_error_set(PL_ERR_MEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		archived_pb(&cc->list[cc->list_pos + i], &as[i]);
		ap[i] = &as[i];
	}
	cc->list_pos += n;
	Plctl__SessionList sl = PLCTL__SESSION_LIST__INIT;
	sl.n_sessions = n;
	sl.sessions = ap;
	int e = respond(cc, PLCTL__RESPONSE__BODY_SESSIONS, &sl,
	                cc->list_pos >= cc->n_list, rep);
	free(as);
	free(ap);
	return e;
}

/* Export: every session the filters select, one row at a time: its
 * columns, decode_error, the record, then (schema version 2) the pen's
 * model and hardware revision as a site last saw the pen (the latest any
 * site reported), and its annotations (struct session_extra). */
#define EXPORT_SQL_HEAD                                                     \
	"SELECT " SESSION_COLS ", decode_error, "                             \
	"CASE WHEN decode_error IS NULL THEN record END, "
#define EXPORT_SQL_TAIL SESSION_FILTER "ORDER BY s.start_ms, s.id"
#define EXPORT_SQL                                                          \
	EXPORT_SQL_HEAD                                                        \
	"pen.model, pen.hw_revision, "                                         \
	"(SELECT json_agg(json_build_array(a.utc_ms, a.\"user\", a.client_ref, " \
	"a.operator, a.note) ORDER BY " ANNOT_ORDER ")::text "                 \
	"FROM penlink.annotations a "                                          \
	"WHERE a.serial = s.serial AND a.uuid = s.uuid) "                      \
	"FROM penlink.sessions s LEFT JOIN LATERAL (SELECT p.model, "           \
	"p.hw_revision FROM penlink.pens p WHERE p.serial = s.serial "         \
	"ORDER BY p.seen_at DESC, p.id DESC LIMIT 1) pen ON true "             \
	EXPORT_SQL_TAIL
/* A database still at schema version 1. */
#define EXPORT_SQL_V1                                                       \
	EXPORT_SQL_HEAD "NULL::text, NULL::text, NULL::text "                  \
	"FROM penlink.sessions s " EXPORT_SQL_TAIL

static int export_start(struct central_conn *cc, const Plctl__ExportSessions *ex)
{
	cc->json = ex->format == PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON;
	if (!cc->json && ex->format != PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_CSV)
		return pl_error_set(PL_ERR_ARG, "unknown export format %d",
		                    (int)ex->format);
	cc->per_session = ex->per_session;
	struct filter_params f;
	filter_params(cc, ex->serial, ex->since_ms, &f);
	/* Every column as text but the record, raw: binary results (a text
	 * column's binary form is its text). */
	return stream_start(cc,
	                    cc->version >= V_ANNOTATIONS ? EXPORT_SQL : EXPORT_SQL_V1,
	                    4, f.v, 1, "export", "export the sessions");
}

static int next_export(struct central_conn *cc, Plctl__Response **rep)
{
	struct plc_buf b = {0};
	struct session_entry s;
	bool have = false, end = false;
	int e = PL_OK;
	if (!cc->started) {
		cc->started = true;
		if (!cc->per_session)
			plc_buf_str(&b, cc->json ? "[" : plc_export_csv_header);
	}
	/* Non-per-session: the head goes with the first row. */
	PGresult *r;
	e = stream_next(cc, &r);
	if (e == PL_OK && r) {
		if ((e = session_from_row(cc, r, 0, &s)) == PL_OK) {
			have = true;
			const char *before = cc->per_session
			                         ? (cc->json ? "" : plc_export_csv_header)
			                     : cc->json ? (cc->rows ? ",\n" : "\n")
			                                : "";
			const uint8_t *rec = PQgetisnull(r, 0, N_SESSION_COLS + 1)
			                         ? NULL
			                         : (const uint8_t *)PQgetvalue(
			                               r, 0, N_SESSION_COLS + 1);
			size_t rec_len = rec ? (size_t)PQgetlength(r, 0, N_SESSION_COLS + 1)
			                     : 0;
			struct session_extra x = {
			    .site = col_str(r, 0, 9),
			    .model = col_str(r, 0, N_SESSION_COLS + 2),
			    .hw_revision = col_str(r, 0, N_SESSION_COLS + 3),
			    .annotations = col_str(r, 0, N_SESSION_COLS + 4),
			};
			e = render_session(cc, &b, cc->json, before, &s, &x, rec,
			                   rec_len, col_str(r, 0, N_SESSION_COLS));
			cc->rows++;
		}
	} else if (e == PL_OK) {
		end = true;
		if (!cc->per_session && cc->json)
			plc_buf_str(&b, "\n]\n");
	}
	PQclear(r);
	if (e == PL_OK && b.oom)
		e = pl_error_set(PL_ERR_MEM, "out of memory exporting");
	if (e != PL_OK) {
		plc_buf_free(&b);
		return e;
	}
	Plctl__ExportChunk ch = PLCTL__EXPORT_CHUNK__INIT;
	Plctl__ArchivedSession as;
	ch.data.data = (uint8_t *)b.p;
	ch.data.len = b.len;
	if (have && cc->per_session) {
		archived_pb(&s, &as);
		ch.session = &as;
	}
	e = respond(cc, PLCTL__RESPONSE__BODY_EXPORT, &ch, end, rep);
	plc_buf_free(&b);
	return e;
}

static int audit_start(struct central_conn *cc, const Plctl__Audit *au)
{
	cc->limit = au->limit ? au->limit : AUDIT_DEFAULT_LIMIT;
	char since[24], limit[16];
	snprintf(since, sizeof since, "%" PRId64, au->since_ms);
	snprintf(limit, sizeof limit, "%" PRIu32, cc->limit);
	const char *p[3] = {since, cc->c->site, limit};
	/* Newest first, as penlinkd gives its own. */
	return stream_start(cc,
	                    "SELECT utc_ms::text, uid::text, \"user\", pen, "
	                    "action, old_value, new_value, result, "
	                    "local_id::text, hash, site FROM penlink.audit a "
	                    "WHERE utc_ms >= $1::bigint AND ($2::text IS NULL "
	                    "OR site = $2) ORDER BY a.utc_ms DESC, a.site, "
	                    "a.local_id DESC LIMIT $3::bigint",
	                    3, p, 0, "audit trail", "read the audit trail");
}

static int next_audit(struct central_conn *cc, Plctl__Response **rep)
{
	Plctl__AuditEntry *es = calloc(AUDIT_PAGE, sizeof *es);
	Plctl__AuditEntry **ep = calloc(AUDIT_PAGE, sizeof *ep);
	PGresult **keep = calloc(AUDIT_PAGE, sizeof *keep);
	size_t n = 0;
	bool end = false;
	int e = PL_OK;
	if (!es || !ep || !keep)
		e = pl_error_set(PL_ERR_MEM, "out of memory");
	while (e == PL_OK && n < AUDIT_PAGE && !end) {
		PGresult *r;
		e = stream_next(cc, &r);
		if (e == PL_OK && !r) {
			end = true;
		} else if (e == PL_OK) {
			Plctl__AuditEntry *a = &es[n];
			plctl__audit_entry__init(a);
			a->utc_ms = col_i64(r, 0, 0);
			a->uid = (uint32_t)col_i64(r, 0, 1);
			a->user = PQgetvalue(r, 0, 2);
			a->pen = PQgetvalue(r, 0, 3);
			a->action = PQgetvalue(r, 0, 4);
			a->old_value = PQgetvalue(r, 0, 5);
			a->new_value = PQgetvalue(r, 0, 6);
			a->result = PQgetvalue(r, 0, 7);
			a->id = col_i64(r, 0, 8);
			a->hash = PQgetvalue(r, 0, 9);
			ep[n] = a;
			keep[n++] = r;
		}
	}
	if (e == PL_OK) {
		Plctl__AuditList al = PLCTL__AUDIT_LIST__INIT;
		al.n_entries = n;
		al.entries = ep;
		e = respond(cc, PLCTL__RESPONSE__BODY_AUDIT, &al, end, rep);
	}
	for (size_t i = 0; i < n; i++)
		PQclear(keep[i]);
	free(es);
	free(ep);
	free(keep);
	return e;
}

/* ---- a session's annotations (sessions show) */

static int annotations_start(struct central_conn *cc,
                             const Plctl__ListAnnotations *la)
{
	struct pl_session_key key = {0};
	if (!la->serial || !*la->serial || strlen(la->serial) >= sizeof key.serial ||
	    !la->uuid || !parse_uuid(la->uuid, key.uuid))
		return pl_error_set(PL_ERR_ARG, "a session is named by its serial "
		                    "and UUID");
	memcpy(key.serial, la->serial, strlen(la->serial) + 1);
	PGresult *r;
	int e = session_row(cc, &key, "SELECT 1 FROM penlink.sessions " SESSION_KEY,
	                    0, "look up the session", &r);
	PQclear(r);
	if (e != PL_OK)
		return e;
	if (cc->version < V_ANNOTATIONS)
		return PL_OK; /* none kept: an empty list */
	char text[37];
	pl_uuid_format(key.uuid, text);
	const char *p[2] = {la->serial, text};
	return query(cc,
	             "SELECT a.local_id::text, a.utc_ms::text, a.uid::text, "
	             "a.\"user\", a.client_ref, a.operator, a.note "
	             "FROM penlink.annotations a "
	             "WHERE a.serial = $1 AND a.uuid = $2::uuid "
	             "ORDER BY " ANNOT_ORDER,
	             2, p, 0, PGRES_TUPLES_OK, "read the session's annotations",
	             &cc->annots);
}

static int next_annotations(struct central_conn *cc, Plctl__Response **rep)
{
	size_t n = cc->annots ? (size_t)PQntuples(cc->annots) : 0;
	Plctl__Annotation *as = calloc(n ? n : 1, sizeof *as);
	Plctl__Annotation **ap = calloc(n ? n : 1, sizeof *ap);
	if (!as || !ap) {
		free(as);
		free(ap);
		return pl_error_set(PL_ERR_MEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		const PGresult *r = cc->annots;
		int row = (int)i;
		plctl__annotation__init(&as[i]);
		/* The id is the annotation's at its site. */
		as[i].id = col_i64(r, row, 0);
		as[i].utc_ms = col_i64(r, row, 1);
		as[i].uid = (uint32_t)col_i64(r, row, 2);
		as[i].user = PQgetvalue(r, row, 3);
		as[i].client_ref = PQgetvalue(r, row, 4);
		as[i].operator_ = PQgetvalue(r, row, 5);
		as[i].note = PQgetvalue(r, row, 6);
		ap[i] = &as[i];
	}
	Plctl__AnnotationList al = PLCTL__ANNOTATION_LIST__INIT;
	al.n_annotations = n;
	al.annotations = ap;
	int e = respond(cc, PLCTL__RESPONSE__BODY_ANNOTATIONS, &al, true, rep);
	free(as);
	free(ap);
	return e;
}

/* ---- audit verify: central's copy of every site's trail, checked twice
 *
 * Central's own chain (prev_hash, hash: penlink.audit_chain(), recomputed
 * here by PostgreSQL) shows a row changed, removed or inserted in central;
 * the site's chain (local_prev_hash, local_hash: control/penlink_audit.h,
 * recomputed here by plc_audit_chain_step from central's copy of the row)
 * shows that central's copy is the site's trail, row for row, from its
 * first row on, so the two can be compared: a site's head hash (penctl
 * audit verify at the site) must be in it (--head).  Rows sent by a
 * penlinkd before schema version 2 carry no site hashes: the site's chain
 * is checked from the first row that has them.
 */

struct verify_site {
	char name[128];
	struct plc_audit_chain ch;
	bool started;    /* a row with the site's hashes was seen */
	uint64_t rows;   /* rows of this site checked */
};

static void verify_bad(struct central_conn *cc, const char *site, int64_t id,
                       const char *reason)
{
	char name[128];
	pl_text_clean(PL_TEXT_TERMINAL, site, name, sizeof name);
	cc->verified.intact = false;
	cc->verified.bad_id = id;
	snprintf(cc->verify_reason, sizeof cc->verify_reason, "site %.127s: %.300s",
	         name, reason);
}

/* One row: r's columns as verify_run selects them. */
static bool verify_row(struct central_conn *cc, struct verify_site *vs,
                       const PGresult *r)
{
	int64_t id = col_i64(r, 0, 1);
	vs->rows++;
	cc->verified.rows++;
	if (strcmp(PQgetvalue(r, 0, 12), "t") != 0) {
		char why[160];
		snprintf(why, sizeof why, "row %" PRId64 " does not match central's "
		         "chain: changed, inserted or moved in central, or the row "
		         "before it removed", id);
		verify_bad(cc, vs->name, id, why);
		return false;
	}
	const char *prev = col_str(r, 0, 10), *hash = col_str(r, 0, 11);
	if (!hash && !vs->started)
		return true; /* sent before the site's hashes were */
	struct plc_audit_row row = {
	    .id = id, .utc_ms = col_i64(r, 0, 2), .uid = col_i64(r, 0, 3),
	    .user = PQgetvalue(r, 0, 4), .pen = PQgetvalue(r, 0, 5),
	    .action = PQgetvalue(r, 0, 6), .old_value = PQgetvalue(r, 0, 7),
	    .new_value = PQgetvalue(r, 0, 8), .result = PQgetvalue(r, 0, 9),
	};
	if (!vs->started && vs->rows > 1 && prev && strlen(prev) == 64) {
		/* The site's chain starts here in central: from this row's
		 * predecessor, which central holds without its hash. */
		snprintf(vs->ch.prev, sizeof vs->ch.prev, "%s", prev);
		vs->ch.prev_id = id - 1;
	}
	vs->started = true;
	if (!plc_audit_chain_step(&vs->ch, &row, prev, hash)) {
		char why[300];
		snprintf(why, sizeof why, "the site's chain: %s", vs->ch.reason);
		verify_bad(cc, vs->name, vs->ch.bad_id, why);
		return false;
	}
	return true;
}

static int verify_run(struct central_conn *cc, const Plctl__AuditVerify *av)
{
	const char *anchor = av->head && *av->head ? av->head : NULL;
	plctl__audit_verified__init(&cc->verified);
	cc->verified.intact = true;
	cc->verify_reason[0] = cc->verify_head[0] = '\0';
	if (cc->version < V_ANNOTATIONS)
		return pl_error_set(PL_ERR_UNSUPPORTED,
		                    "%s keeps no site hashes (schema version %d; "
		                    "penctl central init brings it to %d)", cc->where,
		                    cc->version, pc_schema_version);
	const char *p[1] = {cc->c->site};
	int e = stream_start(
	    cc,
	    "SELECT site, local_id::text, utc_ms::text, uid::text, \"user\", "
	    "pen, action, old_value, new_value, result, local_prev_hash, "
	    "local_hash, CASE WHEN hash = encode(sha256(convert_to(concat_ws("
	    "E'\\x1f', coalesce(prev_hash, ''), site, local_id::text, "
	    "utc_ms::text, uid::text, \"user\", pen, action, old_value, "
	    "new_value, result), 'UTF8')), 'hex') AND prev_hash IS NOT "
	    "DISTINCT FROM lag(hash) OVER (PARTITION BY site ORDER BY "
	    "local_id) THEN 't' ELSE 'f' END "
	    "FROM penlink.audit a WHERE $1::text IS NULL OR site = $1 "
	    "ORDER BY a.site, a.local_id",
	    1, p, 0, "audit trail", "read the audit trail");
	struct verify_site vs = {0};
	size_t sites = 0;
	bool anchor_found = false, going = true;
	PGresult *r;
	/* Past a broken row the rest is read, unchecked. */
	while (e == PL_OK && (e = stream_next(cc, &r)) == PL_OK && r) {
		if (going) {
			const char *site = PQgetvalue(r, 0, 0);
			if (!sites || strcmp(site, vs.name) != 0) {
				memset(&vs, 0, sizeof vs);
				snprintf(vs.name, sizeof vs.name, "%s", site);
				plc_audit_chain_init(&vs.ch, anchor);
				sites++;
			}
			going = verify_row(cc, &vs, r);
			anchor_found |= vs.ch.anchor_found;
		}
		PQclear(r);
	}
	if (e != PL_OK)
		return e;
	/* One site's trail: its head, to compare with the site's own. */
	if (sites == 1 && vs.started)
		snprintf(cc->verify_head, sizeof cc->verify_head, "%s", vs.ch.prev);
	cc->verified.head = cc->verify_head;
	cc->verified.head_found = anchor_found;
	if (cc->verified.intact && anchor && !anchor_found) {
		cc->verified.intact = false;
		cc->verified.bad_id = 0;
		snprintf(cc->verify_reason, sizeof cc->verify_reason,
		         "the row with hash %.16s... is not in %s trail in central: "
		         "rows of it never arrived, or were removed",
		         anchor, cc->c->site ? "the site's" : "any site's");
	}
	cc->verified.reason = cc->verify_reason;
	return PL_OK;
}

int central_ctl_send(struct ctl *c, Plctl__Request *req)
{
	struct central_conn *cc = c->cc;
	pending_end(cc);
	if (++cc->next_id == 0)
		cc->next_id = 1;
	req->id = cc->next_id;
	cc->id = req->id;
	int e = PL_OK;
	switch (req->op_case) {
	case PLCTL__REQUEST__OP_LIST_SESSIONS: {
		const Plctl__ListSessions *ls = req->list_sessions;
		const char *client = ls->client_ref && *ls->client_ref
		                         ? ls->client_ref
		                         : NULL;
		if (client && cc->version < V_ANNOTATIONS)
			return pl_error_set(PL_ERR_UNSUPPORTED,
			                    "%s holds no annotations (schema version "
			                    "%d; penctl central init brings it to %d), "
			                    "so no client references", cc->where,
			                    cc->version, pc_schema_version);
		e = list_query(cc, ls->serial, ls->since_ms, client, &cc->list,
		               &cc->n_list);
		if (e == PL_OK)
			cc->op = P_LIST;
		return e;
	}
	case PLCTL__REQUEST__OP_EXPORT_SESSIONS:
		cc->op = P_EXPORT;
		e = export_start(cc, req->export_sessions);
		break;
	case PLCTL__REQUEST__OP_AUDIT:
		cc->op = P_AUDIT;
		e = audit_start(cc, req->audit);
		break;
	case PLCTL__REQUEST__OP_LIST_ANNOTATIONS:
		e = annotations_start(cc, req->list_annotations);
		if (e == PL_OK)
			cc->op = P_ANNOTATIONS;
		return e;
	case PLCTL__REQUEST__OP_AUDIT_VERIFY:
		e = verify_run(cc, req->audit_verify);
		if (e == PL_OK)
			cc->op = P_AUDIT_VERIFY;
		return e;
	case PLCTL__REQUEST__OP_HELLO:
		return unsupported("the daemon handshake");
	case PLCTL__REQUEST__OP_LIST_PENS:
		return unsupported("the list of pens");
	case PLCTL__REQUEST__OP_CENTRAL_STATUS:
		return unsupported("a site's replication status (central status)");
	default:
		return unsupported("this command");
	}
	if (e != PL_OK)
		pending_end(cc);
	return e;
}

int central_ctl_next(struct ctl *c, uint32_t id, Plctl__Response **rep)
{
	struct central_conn *cc = c->cc;
	*rep = NULL;
	if (cc->op == P_NONE || id != cc->id)
		return pl_error_set(PL_ERR_ARG, "no such request in flight");
	if (cc->finished)
		return pl_error_set(PL_ERR_ARG, "the request was answered already");
	if (ctl_interrupted)
		return pl_error_set(PL_ERR_CANCELLED, "interrupted");
	int e;
	switch (cc->op) {
	case P_LIST:
		e = next_list(cc, rep);
		break;
	case P_EXPORT:
		e = next_export(cc, rep);
		break;
	case P_AUDIT:
		e = next_audit(cc, rep);
		break;
	case P_ANNOTATIONS:
		e = next_annotations(cc, rep);
		break;
	case P_AUDIT_VERIFY:
		e = respond(cc, PLCTL__RESPONSE__BODY_AUDIT_VERIFIED, &cc->verified,
		            true, rep);
		break;
	default:
		e = pl_error_set(PL_ERR_ARG, "no such request in flight");
	}
	if (e != PL_OK)
		pending_end(cc);
	return e;
}
