/* Session records: parse, check, report and JSON (lib/src/record.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "penlink.h"
#include "record.pb-c.h"

/* A record as a pen would log it; tests change fields before packing. */
struct fixture {
	Pl__SessionRecord rec;
	Pl__Preset preset;
	Pl__Cartridge cart;
	Pl__Summary sum;
	Pl__Telemetry tel;
	Pl__Event ev[6];
	Pl__Event *evp[6];
	uint8_t uuid[16];
	uint8_t uid[7];
	uint32_t depth[5], current[5], battery[5];
};

static void fixture_init(struct fixture *f)
{
	static const uint8_t uuid[16] = {0x1b, 0x4e, 0x28, 0xba, 0x2f, 0xa1,
	                                 0x11, 0xd2, 0x88, 0x3f, 0x00, 0x16,
	                                 0xd3, 0xcc, 0xa4, 0x27};
	static const uint8_t uid[7] = {0x04, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6};
	static const uint32_t depth[5] = {480, 500, 510, 520, 490};
	static const uint32_t current[5] = {180, 240, 300, 250, 230};
	static const uint32_t battery[5] = {4100, 4050, 3990, 3900, 3700};
	static const struct {
		uint32_t off;
		Pl__EventKind kind;
		int32_t value;
	} evs[6] = {
		{0, PL__EVENT_KIND__EVENT_KIND_START, 0},
		{12345, PL__EVENT_KIND__EVENT_KIND_DEPTH_CHANGE, 750},
		{61001, PL__EVENT_KIND__EVENT_KIND_AREA_CHANGE, PL__AREA__AREA_CHEEK},
		{62000, PL__EVENT_KIND__EVENT_KIND_BATTERY_LOW, 3400},
		{75123, (Pl__EventKind)77, 5},  /* a kind from a newer pen */
		{3723456, PL__EVENT_KIND__EVENT_KIND_STOP, 0},
	};

	memset(f, 0, sizeof *f);
	pl__session_record__init(&f->rec);
	pl__preset__init(&f->preset);
	pl__cartridge__init(&f->cart);
	pl__summary__init(&f->sum);
	pl__telemetry__init(&f->tel);
	memcpy(f->uuid, uuid, sizeof uuid);
	memcpy(f->uid, uid, sizeof uid);
	memcpy(f->depth, depth, sizeof depth);
	memcpy(f->current, current, sizeof current);
	memcpy(f->battery, battery, sizeof battery);

	f->rec.format = 1;
	f->rec.uuid.data = f->uuid;
	f->rec.uuid.len = 16;
	f->rec.seq = 42;
	f->rec.serial = "PL-0001";
	f->rec.fw_version = "1.2.0";
	f->rec.start_ms = 1700000000000;       /* 2023-11-14T22:13:20Z */
	f->rec.end_ms = 1700000000000 + 3723500;
	f->rec.time_source = PL__TIME_SOURCE__TIME_SOURCE_RTC;

	f->preset.id = 3;
	f->preset.name = "Forehead fine";
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
	f->cart.uid.data = f->uid;
	f->cart.uid.len = sizeof uid;
	f->rec.cartridge = &f->cart;

	for (int i = 0; i < 6; i++) {
		pl__event__init(&f->ev[i]);
		f->ev[i].offset_ms = evs[i].off;
		f->ev[i].kind = evs[i].kind;
		f->ev[i].value = evs[i].value;
		f->evp[i] = &f->ev[i];
	}
	f->rec.n_events = 6;
	f->rec.events = f->evp;

	f->tel.interval_us = 10000;
	f->tel.n_depth_um = f->tel.n_current_ma = f->tel.n_battery_mv = 5;
	f->tel.depth_um = f->depth;
	f->tel.current_ma = f->current;
	f->tel.battery_mv = f->battery;
	f->rec.telemetry = &f->tel;

	f->sum.run_time_s = 1513;
	f->sum.strokes = 151300;
	f->sum.max_depth_um = 750;
	f->sum.errors = 1;
	f->rec.summary = &f->sum;
}

static uint8_t *pack(const Pl__SessionRecord *rec, size_t *len)
{
	*len = pl__session_record__get_packed_size(rec);
	uint8_t *buf = malloc(*len + 1);
	assert_non_null(buf);
	pl__session_record__pack(rec, buf);
	return buf;
}

static struct pl_record *parse_ok(const Pl__SessionRecord *rec)
{
	size_t len;
	uint8_t *buf = pack(rec, &len);
	struct pl_record *r = NULL;

	int e = pl_record_parse(buf, len, &r);
	if (e != PL_OK)
		fail_msg("parse: %d %s", e, pl_error_message());
	assert_non_null(r);
	free(buf);
	return r;
}

static void parse_fails(const Pl__SessionRecord *rec, const char *needle)
{
	size_t len;
	uint8_t *buf = pack(rec, &len);
	struct pl_record *r = (struct pl_record *)&r; /* must be reset to NULL */

	assert_int_equal(pl_record_parse(buf, len, &r), PL_ERR_PARSE);
	assert_null(r);
	if (!strstr(pl_error_message(), needle))
		fail_msg("expected \"%s\" in \"%s\"", needle, pl_error_message());
	free(buf);
}

static void assert_contains(const char *text, const char *needle)
{
	if (!strstr(text, needle))
		fail_msg("expected \"%s\" in:\n%s", needle, text);
}

static json_object *jget(json_object *o, const char *path)
{
	/* "a.b.c" */
	char key[64];
	const char *p = path;

	while (*p) {
		size_t n = strcspn(p, ".");
		assert_true(n < sizeof key);
		memcpy(key, p, n);
		key[n] = '\0';
		json_object *next = NULL;
		if (!json_object_object_get_ex(o, key, &next))
			fail_msg("no \"%s\" in JSON (at %s)", path, key);
		o = next;
		p += n;
		if (*p == '.')
			p++;
	}
	return o;
}

static void assert_jstr(json_object *root, const char *path, const char *want)
{
	json_object *o = jget(root, path);
	assert_true(json_object_is_type(o, json_type_string));
	assert_string_equal(json_object_get_string(o), want);
}

static void assert_jint(json_object *root, const char *path, int64_t want)
{
	json_object *o = jget(root, path);
	assert_true(json_object_is_type(o, json_type_int));
	assert_int_equal(json_object_get_int64(o), want);
}

/* ------------------------------------------------------------------ tests */

static void test_getters(void **state)
{
	(void)state;
	struct fixture f;
	uint8_t uuid[16];

	fixture_init(&f);
	struct pl_record *r = parse_ok(&f.rec);
	assert_string_equal(pl_record_serial(r), "PL-0001");
	assert_int_equal(pl_record_seq(r), 42);
	pl_record_uuid(r, uuid);
	assert_memory_equal(uuid, f.uuid, 16);
	assert_int_equal(pl_record_start_ms(r), 1700000000000);
	assert_int_equal(pl_record_end_ms(r), 1700003723500);
	assert_true(pl_record_rtc_time(r));
	pl_record_free(r);
	pl_record_free(NULL);

	f.rec.time_source = PL__TIME_SOURCE__TIME_SOURCE_UPTIME;
	r = parse_ok(&f.rec);
	assert_false(pl_record_rtc_time(r));
	pl_record_free(r);
}

static void test_json(void **state)
{
	(void)state;
	struct fixture f;

	fixture_init(&f);
	struct pl_record *r = parse_ok(&f.rec);
	char *text = pl_record_to_json(r, false);
	assert_non_null(text);
	json_object *j = json_tokener_parse(text);
	assert_non_null(j);

	assert_jint(j, "format", 1);
	assert_jstr(j, "uuid", "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
	assert_jstr(j, "serial", "PL-0001");
	assert_jint(j, "seq", 42);
	assert_jstr(j, "fw_version", "1.2.0");
	assert_jint(j, "start_utc_ms", 1700000000000);
	assert_jint(j, "end_utc_ms", 1700003723500);
	assert_jstr(j, "time_source", "rtc");
	assert_jint(j, "preset.id", 3);
	assert_jstr(j, "preset.name", "Forehead fine");
	assert_true(json_object_is_type(jget(j, "preset.depth_mm"), json_type_double));
	assert_true(json_object_get_double(jget(j, "preset.depth_mm")) == 0.5);
	assert_jint(j, "preset.depth_um", 500);
	assert_jint(j, "preset.speed_level", 3);
	assert_jstr(j, "preset.area", "forehead");
	assert_jint(j, "preset.needle_count", 12);
	assert_jint(j, "preset.max_duration_s", 600);
	assert_jint(j, "preset_revision", 5);
	assert_jint(j, "cartridge.needle_count", 12);
	assert_jint(j, "cartridge.needle_length_um", 1500);
	assert_jstr(j, "cartridge.lot", "L2309-14");
	assert_jstr(j, "cartridge.uid", "04a1b2c3d4e5f6");
	assert_jint(j, "summary.run_time_s", 1513);
	assert_jint(j, "summary.strokes", 151300);
	assert_jint(j, "summary.max_depth_um", 750);
	assert_jint(j, "summary.errors", 1);

	json_object *ev = jget(j, "events");
	assert_true(json_object_is_type(ev, json_type_array));
	assert_int_equal(json_object_array_length(ev), 6);
	json_object *e1 = json_object_array_get_idx(ev, 1);
	assert_jint(e1, "offset_ms", 12345);
	assert_jstr(e1, "kind", "depth_change");
	assert_jint(e1, "value", 750);
	assert_jstr(json_object_array_get_idx(ev, 0), "kind", "start");
	assert_jstr(json_object_array_get_idx(ev, 3), "kind", "battery_low");
	assert_jstr(json_object_array_get_idx(ev, 4), "kind", "77");
	assert_jstr(json_object_array_get_idx(ev, 5), "kind", "stop");

	assert_jint(j, "telemetry.interval_us", 10000);
	assert_jint(j, "telemetry.count", 5);
	assert_jint(j, "telemetry.depth_um.min", 480);
	assert_jint(j, "telemetry.depth_um.max", 520);
	assert_true(json_object_get_double(jget(j, "telemetry.depth_um.avg")) == 500.0);
	assert_jint(j, "telemetry.current_ma.min", 180);
	assert_jint(j, "telemetry.current_ma.max", 300);
	assert_true(json_object_get_double(jget(j, "telemetry.current_ma.avg")) == 240.0);
	assert_jint(j, "telemetry.battery_mv.min", 3700);
	assert_jint(j, "telemetry.battery_mv.max", 4100);
	assert_true(json_object_get_double(jget(j, "telemetry.battery_mv.avg")) == 3948.0);
	json_object *dummy;
	assert_false(json_object_object_get_ex(jget(j, "telemetry"), "samples", &dummy));
	/* Numbers are written as people expect them, not 0.50000000000000000. */
	assert_contains(text, "\"depth_mm\":0.5,");
	json_object_put(j);
	free(text);

	/* With samples. */
	text = pl_record_to_json(r, true);
	assert_non_null(text);
	j = json_tokener_parse(text);
	assert_non_null(j);
	json_object *d = jget(j, "telemetry.samples.depth_um");
	assert_int_equal(json_object_array_length(d), 5);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(json_object_get_int64(json_object_array_get_idx(d, i)), f.depth[i]);
		assert_int_equal(json_object_get_int64(json_object_array_get_idx(
		                     jget(j, "telemetry.samples.current_ma"), i)),
		                 f.current[i]);
		assert_int_equal(json_object_get_int64(json_object_array_get_idx(
		                     jget(j, "telemetry.samples.battery_mv"), i)),
		                 f.battery[i]);
	}
	json_object_put(j);
	free(text);
	pl_record_free(r);
}

static void test_json_minimal(void **state)
{
	(void)state;
	struct fixture f;

	/* Only identity: absent parts read as defaults, keys stay present. */
	fixture_init(&f);
	f.rec.preset = NULL;
	f.rec.cartridge = NULL;
	f.rec.summary = NULL;
	f.rec.telemetry = NULL;
	f.rec.n_events = 0;
	f.rec.time_source = PL__TIME_SOURCE__TIME_SOURCE_UPTIME;
	f.rec.start_ms = 5000;
	f.rec.end_ms = 65000;
	struct pl_record *r = parse_ok(&f.rec);
	char *text = pl_record_to_json(r, true);
	assert_non_null(text);
	json_object *j = json_tokener_parse(text);
	assert_non_null(j);
	assert_jstr(j, "time_source", "uptime");
	assert_jint(j, "preset.depth_um", 0);
	assert_true(json_object_is_type(jget(j, "preset.area"), json_type_null));
	assert_jstr(j, "cartridge.uid", "");
	assert_jint(j, "summary.strokes", 0);
	assert_int_equal(json_object_array_length(jget(j, "events")), 0);
	assert_jint(j, "telemetry.count", 0);
	assert_true(json_object_is_type(jget(j, "telemetry.depth_um.min"), json_type_null));
	assert_int_equal(json_object_array_length(jget(j, "telemetry.samples.depth_um")), 0);
	json_object_put(j);
	free(text);

	/* And the report copes too. */
	char *out = NULL;
	size_t outlen = 0;
	FILE *fp = open_memstream(&out, &outlen);
	assert_non_null(fp);
	assert_int_equal(pl_record_print(r, fp), PL_OK);
	fclose(fp);
	assert_contains(out, "uptime +5.000 s");
	assert_contains(out, "uptime +65.000 s");
	assert_contains(out, "duration     01:00.000");
	assert_contains(out, "no samples");
	assert_contains(out, "Events (0)");
	free(out);
	pl_record_free(r);
}

static void test_print(void **state)
{
	(void)state;
	struct fixture f;
	char *out = NULL;
	size_t outlen = 0;

	fixture_init(&f);
	setenv("TZ", "UTC0", 1);
	tzset();
	struct pl_record *r = parse_ok(&f.rec);
	FILE *fp = open_memstream(&out, &outlen);
	assert_non_null(fp);
	assert_int_equal(pl_record_print(r, fp), PL_OK);
	fclose(fp);

	assert_contains(out, "Session 1b4e28ba-2fa1-11d2-883f-0016d3cca427");
	assert_contains(out, "PL-0001, firmware 1.2.0");
	assert_contains(out, "sequence     42");
	/* For people: local time with its offset (here UTC). */
	assert_contains(out, "started      2023-11-14 22:13:20 +00:00");
	assert_contains(out, "ended        2023-11-14 23:15:23 +00:00");
	assert_contains(out, "duration     1:02:03.500");
	assert_contains(out, "Preset 3 \"Forehead fine\" (preset set revision 5)");
	assert_contains(out, "depth        0.50 mm");
	assert_contains(out, "speed        level 3");
	assert_contains(out, "area         forehead");
	assert_contains(out, "needles      12");
	assert_contains(out, "time limit   10:00");
	assert_contains(out, "needles      12, 1.50 mm long");
	assert_contains(out, "lot          L2309-14");
	assert_contains(out, "uid          04a1b2c3d4e5f6");
	assert_contains(out, "run time     25:13");
	assert_contains(out, "strokes      151300");
	assert_contains(out, "max depth    0.75 mm");
	assert_contains(out, "errors       1");
	assert_contains(out, "Events (6)");
	assert_contains(out, "  00:00.000  start\n");
	assert_contains(out, "00:12.345  depth change   0.75 mm");
	assert_contains(out, "01:01.001  area change    cheek");
	assert_contains(out, "01:02.000  battery low    3400 mV");
	assert_contains(out, "01:15.123  kind 77        5");
	assert_contains(out, "  62:03.456  stop\n");
	assert_contains(out, "samples      5, every 10.0 ms");
	assert_contains(out, "depth        min 0.48  avg 0.50  max 0.52 mm");
	assert_contains(out, "current      min 180  avg 240  max 300 mA");
	assert_contains(out, "battery      min 3700  avg 3948  max 4100 mV");
	free(out);
	pl_record_free(r);
}

static void test_garbage(void **state)
{
	(void)state;
	struct pl_record *r = NULL;
	uint8_t junk[256];
	uint32_t x = 99;

	/* Not protobuf at all. */
	const uint8_t bad[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12};
	assert_int_equal(pl_record_parse(bad, sizeof bad, &r), PL_ERR_PARSE);
	assert_null(r);
	assert_contains(pl_error_message(), "not a penlink session record");

	assert_int_equal(pl_record_parse(bad, 0, &r), PL_ERR_PARSE);
	assert_contains(pl_error_message(), "not a penlink session record");
	assert_int_equal(pl_record_parse(NULL, 5, &r), PL_ERR_ARG);
	assert_int_equal(pl_record_parse(bad, sizeof bad, NULL), PL_ERR_ARG);

	/* Text that happens to decode as protobuf still has no format. */
	const char *txt = "hello";
	assert_int_equal(pl_record_parse((const uint8_t *)txt, 5, &r), PL_ERR_PARSE);

	/* Random bytes: refused (or, if they happen to make sense, parsed)
	 * without crashing. */
	for (int round = 0; round < 3000; round++) {
		size_t len = 1 + (size_t)round % sizeof junk;
		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			junk[i] = (uint8_t)(x >> 16);
		}
		int e = pl_record_parse(junk, len, &r);
		if (e == PL_OK) {
			char *t = pl_record_to_json(r, true);
			assert_non_null(t);
			free(t);
			pl_record_free(r);
		} else {
			assert_int_equal(e, PL_ERR_PARSE);
			assert_null(r);
		}
	}

	/* A real record cut short. */
	struct fixture f;
	size_t len;
	fixture_init(&f);
	uint8_t *buf = pack(&f.rec, &len);
	for (size_t cut = 1; cut < len; cut += 7) {
		int e = pl_record_parse(buf, cut, &r);
		if (e == PL_OK)
			pl_record_free(r);
		else
			assert_int_equal(e, PL_ERR_PARSE);
	}
	assert_int_equal(pl_record_parse(buf, len - 1, &r), PL_ERR_PARSE);
	free(buf);
}

static void test_inconsistent(void **state)
{
	(void)state;
	struct fixture f;

	fixture_init(&f);
	f.tel.n_current_ma = 4;
	parse_fails(&f.rec, "telemetry arrays differ in length (depth 5, current 4, battery 5");

	fixture_init(&f);
	f.tel.n_battery_mv = 0;
	parse_fails(&f.rec, "telemetry arrays differ");

	fixture_init(&f);
	f.tel.interval_us = 0;
	parse_fails(&f.rec, "no sample interval");

	fixture_init(&f);
	f.rec.uuid.len = 15;
	parse_fails(&f.rec, "uuid is 15 bytes, expected 16");

	fixture_init(&f);
	f.rec.uuid.len = 0;
	parse_fails(&f.rec, "uuid is 0 bytes");

	fixture_init(&f);
	f.rec.end_ms = f.rec.start_ms - 1;
	parse_fails(&f.rec, "before it starts");

	fixture_init(&f);
	f.rec.format = 0;
	parse_fails(&f.rec, "not a penlink session record");

	fixture_init(&f);
	f.rec.format = 2;
	parse_fails(&f.rec, "format 2 is newer");
}

static void test_files(void **state)
{
	(void)state;
	struct fixture f;
	char path[] = "/tmp/pl_test_record_XXXXXX";
	struct pl_record *r = NULL;
	size_t len;

	fixture_init(&f);
	uint8_t *buf = pack(&f.rec, &len);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(pl_record_parse_file(path, &r), PL_OK);
	assert_string_equal(pl_record_serial(r), "PL-0001");
	pl_record_free(r);

	/* Garbage in a file. */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, "{\"presets\": []}\n", 16, 0), 16);
	assert_int_equal(pl_record_parse_file(path, &r), PL_ERR_PARSE);
	assert_null(r);
	assert_contains(pl_error_message(), "not a penlink session record");

	/* Empty file. */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pl_record_parse_file(path, &r), PL_ERR_PARSE);

	/* Larger than 1 GiB: refused from its size alone (sparse, so the
	 * test neither writes nor reads a gigabyte). */
	assert_int_equal(ftruncate(fd, (off_t)(1024 * 1024 * 1024) + 1), 0);
	assert_int_equal(pl_record_parse_file(path, &r), PL_ERR_PARSE);
	assert_contains(pl_error_message(), "1 GiB");
	assert_null(r);
	close(fd);
	unlink(path);

	assert_int_equal(pl_record_parse_file(path, &r), PL_ERR_NOT_FOUND);
	assert_null(r);
	assert_int_equal(pl_record_parse_file("/tmp", &r), PL_ERR_PARSE);
	assert_int_equal(pl_record_parse_file(NULL, &r), PL_ERR_ARG);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_getters),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_json_minimal),
		cmocka_unit_test(test_print),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_inconsistent),
		cmocka_unit_test(test_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
