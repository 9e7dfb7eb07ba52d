/* The session export formats (control/penlink_export.h): what the events
 * add to a row (paused time, areas treated, error codes with their
 * meaning), the pen's model, the formula guard on every text cell, and the
 * ranges a row's numbers must fit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "penlink.h"
#include "penlink_export.h"

/* A record's JSON as pl_record_to_json has it: paused 60-90 s and from
 * 200 s to the end (300 s), two areas, two errors (one unknown code). */
static const char record_json[] =
    "{\"serial\":\"PEN-9\",\"preset\":{\"id\":2,\"name\":\"@SUM(A1)\","
    "\"depth_um\":500,\"speed_level\":3,\"area\":\"neck\",\"needle_count\":12},"
    "\"cartridge\":{\"lot\":\"L1\"},"
    "\"summary\":{\"run_time_s\":200,\"strokes\":100,\"max_depth_um\":750,"
    "\"errors\":2},"
    "\"events\":[{\"offset_ms\":0,\"kind\":\"start\",\"value\":2},"
    "{\"offset_ms\":60000,\"kind\":\"pause\",\"value\":0},"
    "{\"offset_ms\":61000,\"kind\":\"error\",\"value\":1},"
    "{\"offset_ms\":90000,\"kind\":\"resume\",\"value\":0},"
    "{\"offset_ms\":120000,\"kind\":\"area_change\",\"value\":5},"
    "{\"offset_ms\":130000,\"kind\":\"area_change\",\"value\":12},"
    "{\"offset_ms\":150000,\"kind\":\"error\",\"value\":99},"
    "{\"offset_ms\":200000,\"kind\":\"pause\",\"value\":0}],"
    "\"telemetry\":{\"count\":7}}";

static struct plc_export_session session(void)
{
	struct plc_export_session s = {
	    .serial = "PEN-9",
	    .summary = {.seq = 4, .size = 1234, .start_ms = 1700000000000,
	                .end_ms = 1700000300000, .rtc_time = true,
	                .archived_ms = 1700000400000},
	    .model = "MN-1", .hw_revision = "+B",
	    .client_ref = "C-17", .operator_name = "ana", .notes = "ok | =1+1",
	};
	memset(s.uuid, 0x11, 16);
	memset(s.summary.sha256, 0xab, 32);
	return s;
}

/* Field i of a CSV line without quoting (the test's cells have none). */
static void field(const char *line, int i, char *out, size_t cap)
{
	const char *p = line;
	while (i-- > 0 && (p = strchr(p, ',')))
		p++;
	assert_non_null(p);
	size_t n = strcspn(p, ",\r");
	assert_true(n < cap);
	memcpy(out, p, n);
	out[n] = '\0';
}

static int column(const char *name)
{
	char h[1024];
	snprintf(h, sizeof h, "%s", plc_export_csv_header);
	int i = 0;
	for (char *tok = strtok(h, ",\r\n"); tok; tok = strtok(NULL, ",\r\n"), i++)
		if (strcmp(tok, name) == 0)
			return i;
	fail_msg("no column %s", name);
	return -1;
}

static void test_csv_derived(void **state)
{
	(void)state;
	struct plc_export_session s = session();
	json_object *j = json_tokener_parse(record_json);
	assert_non_null(j);
	struct plc_buf b = {0};
	plc_export_csv_row(&b, &s, j);
	json_object_put(j);
	assert_false(b.oom);
	char v[256];
#define COL(name, want)                                \
	do {                                               \
		field(b.p, column(name), v, sizeof v);         \
		assert_string_equal(v, want);                  \
	} while (0)
	COL("paused_s", "130.000");       /* 30 s, then 200 s to the 300 s end */
	COL("areas", "neck;cheek;stretch-marks"); /* the preset's, then each change's */
	COL("error_codes", "1 motor stalled; 99 unknown error code");
	COL("model", "MN-1");
	COL("hw_revision", "'+B");        /* formula guard */
	COL("preset_name", "'@SUM(A1)");
	COL("notes", "ok | =1+1");        /* not at the start: left alone */
	COL("site", "");
#undef COL
	assert_string_equal(b.p + b.len - 2, "\r\n");
	/* As many fields as the header has. */
	size_t commas = 0, hcommas = 0;
	for (const char *q = b.p; *q; q++)
		commas += *q == ',';
	for (const char *q = plc_export_csv_header; *q; q++)
		hcommas += *q == ',';
	assert_int_equal(commas, hcommas);
	plc_buf_free(&b);
}

static void test_json_derived(void **state)
{
	(void)state;
	struct plc_export_session s = session();
	s.site = "north\x1b[2J";
	struct plc_buf b = {0};
	assert_int_equal(plc_export_json_row(&b, &s, json_tokener_parse(record_json)), 0);
	json_object *o = json_tokener_parse(b.p);
	assert_non_null(o);
	json_object *v;
	assert_true(json_object_object_get_ex(o, "paused_s", &v));
	assert_true(json_object_get_double(v) > 129.999 && json_object_get_double(v) < 130.001);
	assert_true(json_object_object_get_ex(o, "areas", &v));
	assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
	                    "[\"neck\",\"cheek\",\"stretch-marks\"]");
	assert_true(json_object_object_get_ex(o, "error_codes", &v));
	assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
	                    "[{\"offset_ms\":61000,\"code\":1,\"meaning\":\"motor stalled\"},"
	                    "{\"offset_ms\":150000,\"code\":99,\"meaning\":\"unknown error code\"}]");
	assert_true(json_object_object_get_ex(o, "model", &v));
	assert_string_equal(json_object_get_string(v), "MN-1");
	assert_true(json_object_object_get_ex(o, "annotations", &v));
	assert_int_equal(json_object_array_length(v), 0);
	/* The site's text never carries a raw escape into the JSON text
	 * (json-c writes it as \u001b). */
	assert_null(strchr(b.p, 0x1b));
	assert_true(json_object_object_get_ex(o, "site", &v));
	assert_string_equal(json_object_get_string(v), "north\x1b[2J");
	json_object_put(o);
	plc_buf_free(&b);
}

static void test_json_undecoded(void **state)
{
	(void)state;
	struct plc_export_session s = session();
	s.decode_error = "over the decode budget";
	struct plc_buf b = {0};
	assert_int_equal(plc_export_json_row(&b, &s, NULL), 0);
	json_object *o = json_tokener_parse(b.p);
	json_object *v;
	assert_true(json_object_object_get_ex(o, "decode_error", &v));
	assert_string_equal(json_object_get_string(v), "over the decode budget");
	assert_true(json_object_object_get_ex(o, "paused_s", &v));
	assert_true(json_object_get_double(v) == 0.0);
	json_object_put(o);
	plc_buf_free(&b);
}

/* A row's numbers as a database holds them: the edges of the model's
 * ranges pass, one past them is refused with the value named and the
 * summary untouched. */
static void test_summary_numbers(void **state)
{
	(void)state;
	struct plc_session_summary s = {.seq = 7, .size = 9};
	assert_int_equal(plc_session_summary_numbers(&s, 0, 0), PL_OK);
	assert_int_equal(s.seq, 0);
	assert_int_equal(plc_session_summary_numbers(&s, UINT32_MAX, INT64_MAX), PL_OK);
	assert_int_equal(s.seq, UINT32_MAX);
	assert_true(s.size == (uint64_t)INT64_MAX);
	s = (struct plc_session_summary){.seq = 7, .size = 9};
	assert_int_equal(plc_session_summary_numbers(&s, -1, 5), PL_ERR_PROTOCOL);
	assert_string_equal(pl_error_message(),
	                    "sequence number -1 is outside 0..4294967295");
	assert_int_equal(plc_session_summary_numbers(&s, (int64_t)UINT32_MAX + 1, 5),
	                 PL_ERR_PROTOCOL);
	assert_string_equal(pl_error_message(),
	                    "sequence number 4294967296 is outside 0..4294967295");
	assert_int_equal(plc_session_summary_numbers(&s, 1, -5), PL_ERR_PROTOCOL);
	assert_string_equal(pl_error_message(), "size -5 is negative");
	assert_int_equal(s.seq, 7);
	assert_true(s.size == 9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_csv_derived),
	    cmocka_unit_test(test_json_derived),
	    cmocka_unit_test(test_json_undecoded),
	    cmocka_unit_test(test_summary_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
