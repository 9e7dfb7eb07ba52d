/*
 * fuzz_record: session records as the pen serves them, decoded
 * (lib/src/record.c) and exported the ways a clinic sees them: penctl's
 * report and JSON (pl_record_print, pl_record_to_json) and the daemon's
 * archive with its CSV and JSON export (daemon/archive.c), which decode the
 * stored bytes again.
 *
 * Input: the record's bytes.  Invariants:
 *  - a record that parses has 16 uuid bytes and ends no earlier than it
 *    starts; the report has no control bytes but newlines; both JSON forms
 *    parse, as strict UTF-8 JSON, with as many events and samples as the
 *    record;
 *  - the archive takes every record (decodable or not, even empty), gives
 *    the same bytes back, decodes its samples in bounded steps, and exports
 *    it as exactly one RFC 4180 CSV row of 23 fields under the header and
 *    one JSON array of one object.
 *
 * The archive lives in a folder under $PL_FUZZ_TMPDIR (else /dev/shm, else
 * /tmp) and is started afresh every RESET_EVERY inputs so it stays small;
 * each input uses its own pen serial, so what earlier inputs stored never
 * shows in its export.
 */
#include "fuzz_common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "archive.h"
#include "penlink_export.h"
#include "log.h"
#include "penlink.h"

#define MAX_RECORD (1u << 20)
#define RESET_EVERY 512u
/* The export's columns, counted from its own header line. */
static size_t csv_columns(void)
{
	size_t n = 1;
	for (const char *p = plc_export_csv_header; *p; p++)
		n += *p == ',';
	return n;
}
#define CSV_COLUMNS csv_columns()

static char dir[256], db[300];
static struct archive *arch;
static unsigned inputs;

static void remove_archive(void)
{
	static const char *const suffix[] = {"", "-wal", "-shm", "-journal", ".lock"};
	char p[320];
	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		snprintf(p, sizeof p, "%s%s", db, suffix[i]);
		unlink(p);
	}
}

static void cleanup(void)
{
	archive_close(arch);
	arch = NULL;
	remove_archive();
	rmdir(dir);
}

static void open_archive(void)
{
	if (!dir[0]) {
		const char *base = getenv("PL_FUZZ_TMPDIR");
		struct stat st;
		if (!base || !*base)
			base = stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp";
		snprintf(dir, sizeof dir, "%.200s/pl-fuzz-record-XXXXXX", base);
		FUZZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir, strerror(errno));
		snprintf(db, sizeof db, "%s/archive.db", dir);
		log_set_level(LOG_ERR);
		atexit(cleanup);
	}
	archive_close(arch);
	arch = NULL;
	remove_archive();
	FUZZ_CHECK(archive_open(db, &arch) == PL_OK, "archive_open %s: %s", db,
	           arch ? archive_errmsg(arch) : pl_error_message());
}

/* ------------------------------------------------------------------ library */

static void check_report(const struct pl_record *r)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	FUZZ_CHECK(f != NULL, "open_memstream: %s", strerror(errno));
	FUZZ_CHECK(pl_record_print(r, f) == PL_OK, "report failed: %s",
	           pl_error_message());
	fclose(f);
	for (size_t i = 0; i < len; i++)
		FUZZ_CHECK(text[i] == '\n' || ((unsigned char)text[i] >= 0x20 &&
		                               text[i] != 0x7f),
		           "control byte 0x%02x at %zu of the report:\n%s",
		           (unsigned char)text[i], i, text);
	free(text);
}

/* Strict JSON, as jq or a browser would read the export. */
static json_object *parse_strict(const char *text)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *o;

	FUZZ_CHECK(tok != NULL, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, text, (int)strlen(text) + 1);
	FUZZ_CHECK(o && json_tokener_get_error(tok) == json_tokener_success,
	           "not valid JSON (%s):\n%.2000s",
	           json_tokener_error_desc(json_tokener_get_error(tok)), text);
	json_tokener_free(tok);
	return o;
}

static json_object *get(json_object *o, const char *k1, const char *k2)
{
	json_object *v = NULL;
	FUZZ_CHECK(json_object_object_get_ex(o, k1, &v), "no \"%s\"", k1);
	if (k2)
		FUZZ_CHECK(json_object_object_get_ex(v, k2, &v), "no \"%s.%s\"", k1, k2);
	return v;
}

static void check_json(const struct pl_record *r, bool with_samples)
{
	struct pl_telemetry t;
	size_t events = pl_record_events(r, NULL, 0);
	char *text = pl_record_to_json(r, with_samples);
	json_object *o, *ev;

	FUZZ_CHECK(text != NULL, "to_json failed: %s", pl_error_message());
	o = parse_strict(text);
	pl_record_telemetry(r, &t);
	ev = get(o, "events", NULL);
	FUZZ_CHECK(json_object_array_length(ev) == events, "%zu events in JSON, %zu "
	           "in the record", json_object_array_length(ev), events);
	FUZZ_CHECK((size_t)json_object_get_int64(get(o, "telemetry", "count")) ==
	               t.count,
	           "telemetry count differs");
	if (with_samples)
		FUZZ_CHECK(json_object_array_length(get(get(o, "telemetry", "samples"),
		                                        "depth_um", NULL)) == t.count,
		           "sample count differs");
	{
		struct pl_event_row rows[64];
		size_t n = pl_record_events(r, rows, 64);
		FUZZ_CHECK(n == events, "events counted %zu then %zu", events, n);
		for (size_t i = 0; i < n && i < 64; i++) {
			const char *name = pl_record_event_kind_name(rows[i].kind);
			const char *kind = json_object_get_string(
			    get(json_object_array_get_idx(ev, i), "kind", NULL));
			FUZZ_CHECK(!name || !strcmp(name, kind),
			           "event %zu: kind %d is \"%s\", JSON says \"%s\"", i,
			           rows[i].kind, name, kind);
		}
	}
	json_object_put(o);
	free(text);
}

static void check_record(const struct pl_record *r)
{
	uint8_t uuid[16];
	struct pl_telemetry t;

	pl_record_uuid(r, uuid);
	FUZZ_CHECK(pl_record_end_ms(r) >= pl_record_start_ms(r),
	           "ends before it starts");
	pl_record_telemetry(r, &t);
	FUZZ_CHECK(t.count == 0 || (t.depth_um && t.current_ma && t.battery_mv &&
	                            t.interval_us),
	           "%zu samples without arrays or interval", t.count);
	if (t.count) {
		/* Reading the last of each lets ASan prove the arrays hold count. */
		volatile uint32_t last = t.depth_um[t.count - 1] +
		                         t.current_ma[t.count - 1] +
		                         t.battery_mv[t.count - 1];
		(void)last;
	}
	(void)pl_record_serial(r);
	(void)pl_record_seq(r);
	check_report(r);
	check_json(r, false);
	check_json(r, true);
}

/* ------------------------------------------------------------------ archive */

struct exported {
	char *p;
	size_t len;
};

static void export_all(enum export_format f, const char *serial,
                       struct exported *out)
{
	struct export_cursor *cur = NULL;
	int rc = archive_export_begin(arch, f, serial, INT64_MIN, false, &cur);

	FUZZ_CHECK(rc == PL_OK, "export_begin: %s", archive_errmsg(arch));
	out->p = NULL;
	out->len = 0;
	for (int pieces = 0;; pieces++) {
		char *data = NULL;
		size_t len = 0;
		FUZZ_CHECK(pieces < 16, "export of one session never ends");
		rc = archive_export_next(cur, &data, &len, NULL);
		FUZZ_CHECK(rc == PL_OK, "export_next: %s", archive_errmsg(arch));
		if (!len) {
			free(data);
			break;
		}
		out->p = realloc(out->p, out->len + len + 1);
		FUZZ_CHECK(out->p != NULL, "out of memory");
		memcpy(out->p + out->len, data, len);
		out->len += len;
		out->p[out->len] = '\0';
		free(data);
	}
	archive_export_end(cur);
}

/* RFC 4180: counts records and checks each has CSV_COLUMNS fields. */
static void check_csv(const char *s, size_t len)
{
	size_t records = 0, fields = 1;
	bool quoted = false, at_start = true;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (quoted) {
			if (c == '"' && i + 1 < len && s[i + 1] == '"')
				i++;
			else if (c == '"')
				quoted = false;
			continue;
		}
		if (c == '"') {
			FUZZ_CHECK(at_start, "a quote inside an unquoted field at %zu:\n%s",
			           i, s);
			quoted = true;
			at_start = false;
		} else if (c == ',') {
			fields++;
			at_start = true;
		} else if (c == '\r') {
			FUZZ_CHECK(i + 1 < len && s[i + 1] == '\n',
			           "CR without LF outside quotes at %zu:\n%s", i, s);
			FUZZ_CHECK(fields == CSV_COLUMNS, "record %zu has %zu fields:\n%s",
			           records, fields, s);
			records++;
			fields = 1;
			at_start = true;
			i++;
		} else {
			FUZZ_CHECK(c != '\n', "bare LF outside quotes at %zu:\n%s", i, s);
			if (!at_start || c != '"')
				at_start = false;
		}
	}
	FUZZ_CHECK(!quoted, "unterminated quoted field:\n%s", s);
	FUZZ_CHECK(len >= 2 && s[len - 2] == '\r' && s[len - 1] == '\n',
	           "CSV does not end in CRLF:\n%s", s);
	FUZZ_CHECK(records == 2, "%zu CSV records for one session:\n%s", records, s);
}

static void check_archive(const uint8_t *data, size_t size,
                          const struct pl_record *r)
{
	struct pl_session_info s;
	char serial[64];
	struct exported csv, js;
	uint8_t *back;
	size_t got = 0;
	uint64_t total = 0;
	bool more = true;
	json_object *arr;
	int rc;

	if (!arch || inputs % RESET_EVERY == 0)
		open_archive();
	inputs++;

	/* The pen's listing, as the daemon would have it: the record's own
	 * identity when it decodes, made-up but unique ids otherwise. */
	memset(&s, 0, sizeof s);
	s.id = inputs;
	s.size = size;
	pl_sha256(data, size, s.sha256);
	memcpy(s.uuid, &inputs, sizeof inputs);
	s.uuid[15] = 0xf2;
	if (r) {
		s.seq = pl_record_seq(r);
		s.start_ms = pl_record_start_ms(r);
		s.end_ms = pl_record_end_ms(r);
		s.rtc_time = pl_record_rtc_time(r);
		/* Serials come from pens too; unique per input all the same. */
		snprintf(serial, sizeof serial, "%.40s#%u", pl_record_serial(r),
		         inputs);
	} else {
		char text[25] = "PEN";
		if (size >= 17) {
			memcpy(&s.start_ms, data + 1, 8);
			memcpy(&s.end_ms, data + 9, 8);
			s.rtc_time = data[0] & 1;
			memcpy(text, data + 17, size - 17 < 24 ? size - 17 : 24);
		}
		snprintf(serial, sizeof serial, "%s#%u", text, inputs);
	}

	rc = archive_partial_append(arch, serial, &s, 0, data, size);
	FUZZ_CHECK(rc == PL_OK, "partial_append: %s", archive_errmsg(arch));
	rc = archive_commit_session(arch, serial, &s);
	FUZZ_CHECK(rc == PL_OK, "commit: %s", archive_errmsg(arch));
	for (int steps = 0; more; steps++) {
		FUZZ_CHECK(steps <= 64, "decode_step does not finish");
		rc = archive_decode_step(arch, 4096, &more);
		FUZZ_CHECK(rc == PL_OK, "decode_step: %s", archive_errmsg(arch));
	}

	back = malloc(size ? size : 1);
	FUZZ_CHECK(back != NULL, "out of memory");
	struct pl_session_key key = {{0}, {0}};
	snprintf(key.serial, sizeof key.serial, "%s", serial);
	memcpy(key.uuid, s.uuid, sizeof key.uuid);
	rc = archive_read_record(arch, &key, 0, back, size, &got, &total);
	FUZZ_CHECK(rc == PL_OK && got == size && total == size &&
	               (size == 0 || !memcmp(back, data, size)),
	           "the archive gave back %zu of %zu bytes (%s)", got, size,
	           rc ? archive_errmsg(arch) : "different bytes");
	free(back);

	export_all(EXPORT_CSV, serial, &csv);
	check_csv(csv.p, csv.len);
	export_all(EXPORT_JSON, serial, &js);
	arr = parse_strict(js.p);
	FUZZ_CHECK(json_object_is_type(arr, json_type_array) &&
	               json_object_array_length(arr) == 1,
	           "JSON export of one session:\n%s", js.p);
	json_object_put(arr);
	free(csv.p);
	free(js.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pl_record *r = NULL;
	int rc;

	if (size > MAX_RECORD)
		return 0;
	rc = pl_record_parse(data, size, &r);
	if (rc == PL_OK) {
		FUZZ_CHECK(r != NULL, "parsed without a record");
		check_record(r);
	} else {
		FUZZ_CHECK(rc == PL_ERR_PARSE && r == NULL, "parse returned %d", rc);
		FUZZ_CHECK(pl_error_message()[0], "refused without a message");
	}
	check_archive(data, size, r);
	pl_record_free(r);
	return 0;
}
