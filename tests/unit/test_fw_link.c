/*
 * The real libpenlink against the real firmware endpoint, over the
 * in-memory transport pair, in one thread: whenever the host waits for
 * input, the pump takes what it wrote from the other end, feeds it to
 * pl_fw_rx, and the endpoint's replies go back through that end.  Storage
 * is a small fake in memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "penlink.h"
#include "penlink_test.h"
#include "pl_fw.h"
#include "support/fake_pen.h"

#define SESSION1_SIZE 300007u
#define SESSION2_SIZE 10000u

struct link {
	struct fake_pen fp; /* the pen's side, storage and link */
	struct pl_pen *pen;
	/* observations */
	size_t traces_seen;
	char last_trace[256];
	/* download sink */
	uint8_t *got;
	size_t got_len, got_cap;
	uint64_t next_offset;
	bool out_of_order;
};

/* ------------------------------------------------------------------ fixture */

static int setup(void **state)
{
	struct link *l = calloc(1, sizeof *l);
	struct pl_transport *a = NULL;

	assert_non_null(l);
	fake_pen_init(&l->fp);
	l->fp.log_to_trace = true;
	fake_pen_add_random_session(&l->fp, 3, SESSION1_SIZE, 7);
	fake_pen_add_random_session(&l->fp, 9, SESSION2_SIZE, 11);
	fake_pen_connect(&l->fp, &a, true);
	if (pl_pen_open_transport(a, NULL, &l->pen) != PL_OK)
		fail_msg("open: %s", pl_error_message());
	*state = l;
	return 0;
}

static int teardown(void **state)
{
	struct link *l = *state;
	pl_pen_close(l->pen);
	fake_pen_free(&l->fp);
	free(l->got);
	free(l);
	return 0;
}

#define OK(call)                                                              \
	do {                                                                  \
		int rc_ = (call);                                             \
		if (rc_ != PL_OK)                                             \
			fail_msg("%s -> %s: %s", #call, pl_error_name(rc_),     \
			         pl_error_message());                    \
	} while (0)

/* ------------------------------------------------------------------ tests */

static void test_open_and_info(void **state)
{
	struct link *l = *state;
	struct pl_device_info info;

	assert_string_equal(pl_pen_serial(l->pen), "PEN-LINK");
	assert_int_equal(pl_pen_protocol_version(l->pen), 1);
	assert_int_equal(pl_pen_max_frame(l->pen), PL_FW_MAX_FRAME);
	assert_int_equal(pl_pen_max_in_flight(l->pen), PL_FW_MAX_IN_FLIGHT);
	assert_int_equal(pl_pen_capabilities(l->pen),
	                 PL_CAP_RTC | PL_CAP_TRACE | PL_CAP_TELEMETRY);

	OK(pl_pen_get_info(l->pen, &info));
	assert_string_equal(info.serial, "PEN-LINK");
	assert_string_equal(info.model, "PL-Pen 1");
	assert_string_equal(info.fw_version, "1.0.0");
	assert_int_equal(info.depth_min_um, 250);
	assert_int_equal(info.depth_max_um, 2500);
	assert_int_equal(info.depth_step_um, 250);
	assert_int_equal(info.speed_levels, 6);
	assert_int_equal(info.stroke_rate_hz[5], 150);
	assert_int_equal(info.slow_lock_depth_um, 2000);
	assert_int_equal(info.max_presets, 16);
	assert_int_equal(info.total_strokes, 987654);
	assert_int_equal(info.battery_mv, 3850);
	assert_int_equal(info.battery_percent, 64);
}

static void test_presets_roundtrip(void **state)
{
	struct link *l = *state;
	struct pl_device_info info;
	struct pl_preset_set set_, got_;
	struct pl_preset_set *set = &set_, *got = &got_;

	memset(set, 0, sizeof *set);
	memset(got, 0, sizeof *got);
	OK(pl_pen_get_info(l->pen, &info));
	OK(pl_pen_get_presets(l->pen, set));
	assert_int_equal(set->revision, 1);
	assert_int_equal(set->count, 2);
	assert_string_equal(set->presets[1].name, "Cheek");
	assert_int_equal(set->presets[1].area, PL_AREA_CHEEK);

	set->count = 3;
	set->presets[2] = (struct pl_preset){7, "Décolleté", 750, 2,
	                                     PL_AREA_DECOLLETE, 0, 300};
	set->presets[0].depth_um = 2000;
	set->presets[0].speed_level = 1;
	OK(pl_pen_put_presets(l->pen, set, got));
	assert_int_equal(got->revision, 2);
	assert_int_equal(got->count, 3);
	assert_int_equal(l->fp.revision, 2);
	assert_int_equal(l->fp.npresets, 3);
	assert_string_equal(l->fp.presets[2].name, "Décolleté");
	assert_int_equal(l->fp.presets[0].depth_um, 2000);

	memset(got, 0, sizeof *got);
	OK(pl_pen_get_presets(l->pen, got));
	assert_int_equal(got->revision, 2);
	assert_int_equal(got->presets[2].id, 7);
	assert_int_equal(got->presets[2].max_duration_s, 300);

	/* The same write again (a retry whose reply was lost) is answered
	 * with the stored set, not applied twice... */
	memset(got, 0, sizeof *got);
	OK(pl_pen_put_presets(l->pen, set, got));
	assert_int_equal(got->revision, 2);
	assert_int_equal(l->fp.stores, 1);
	/* ...but a different write based on the old revision loses. */
	set->presets[1].depth_um = 1250;
	assert_int_equal(pl_pen_put_presets(l->pen, set, NULL), PL_ERR_CONFLICT);
	assert_int_equal(l->fp.stores, 1);
	assert_int_equal(l->fp.presets[1].depth_um, 1000);
}

static void test_pen_refuses_on_its_own(void **state)
{
	struct link *l = *state;
	struct pl_device_info info;
	struct pl_preset_set set_;
	struct pl_preset_set *set = &set_;
	uint32_t refusals;

	memset(set, 0, sizeof *set);

	OK(pl_pen_get_info(l->pen, &info));
	OK(pl_pen_get_presets(l->pen, set));
	set->presets[1].depth_um = 2600;
	/* The host's own check catches it first... */
	refusals = pl_fw_get_stats(&l->fp.fw)->validation_refusals;
	assert_int_equal(pl_pen_put_presets(l->pen, set, NULL), PL_ERR_VALIDATION);
	assert_int_equal(pl_fw_get_stats(&l->fp.fw)->validation_refusals, refusals);
	/* ...and without it, the pen refuses by itself, naming the field. */
	assert_int_equal(pl_pen_put_presets_unchecked(l->pen, set, NULL),
	                 PL_ERR_VALIDATION);
	assert_int_equal(pl_fw_get_stats(&l->fp.fw)->validation_refusals, refusals + 1);
	assert_non_null(strstr(pl_error_message(), "presets[1].depth_um"));
	assert_non_null(strstr(pl_error_message(), "2600"));
	assert_int_equal(l->fp.stores, 0);
	assert_int_equal(l->fp.revision, 1);
	assert_int_equal(l->fp.presets[1].depth_um, 1000);

	set->presets[1].depth_um = 2250; /* slow lock, speed 3 */
	assert_int_equal(pl_pen_put_presets_unchecked(l->pen, set, NULL),
	                 PL_ERR_VALIDATION);
	assert_non_null(strstr(pl_error_message(), "speed_level"));
	assert_int_equal(l->fp.stores, 0);
}

static void test_list_sessions(void **state)
{
	struct link *l = *state;
	struct pl_session_info *s = NULL;
	size_t n = 0;

	OK(pl_pen_list_sessions(l->pen, &s, &n));
	assert_int_equal(n, 2);
	assert_int_equal(s[0].id, 3);
	assert_int_equal(s[0].size, SESSION1_SIZE);
	assert_memory_equal(s[0].sha256, l->fp.sessions[0].meta.sha256, 32);
	assert_memory_equal(s[0].uuid, l->fp.sessions[0].meta.uuid, 16);
	assert_true(s[0].rtc_time);
	assert_false(s[0].archived);
	assert_int_equal(s[1].id, 9);
	assert_int_equal(s[1].size, SESSION2_SIZE);
	free(s);
}

static int sink(void *ud, uint64_t offset, const uint8_t *data, size_t len)
{
	struct link *l = ud;
	if (offset != l->next_offset)
		l->out_of_order = true;
	if (l->got_len + len > l->got_cap) {
		size_t cap = (l->got_len + len) * 2;
		uint8_t *p = realloc(l->got, cap);
		if (!p)
			return PL_ERR_MEM;
		l->got = p;
		l->got_cap = cap;
	}
	memcpy(l->got + l->got_len, data, len);
	l->got_len += len;
	l->next_offset = offset + len;
	return PL_OK;
}

static void test_download_verified(void **state)
{
	struct link *l = *state;
	struct pl_session_info *s = NULL;
	struct pl_download_options o;
	uint8_t md[32];
	unsigned int mdlen = 32;
	size_t n = 0;

	OK(pl_pen_list_sessions(l->pen, &s, &n));
	memset(&o, 0, sizeof o);
	o.sink = sink;
	o.ud = l;
	l->fp.max_requests_per_pump = 0;
	OK(pl_pen_download_session(l->pen, &s[0], 0, &o));
	assert_false(l->out_of_order);
	assert_int_equal(l->got_len, SESSION1_SIZE);
	assert_true(EVP_Digest(l->got, l->got_len, md, &mdlen, EVP_sha256(), NULL));
	assert_memory_equal(md, s[0].sha256, 32);
	assert_memory_equal(l->got, l->fp.sessions[0].data, SESSION1_SIZE);
	/* Pipelined, within what the pen allows. */
	print_message("requests in flight at once: %u\n", l->fp.max_requests_per_pump);
	assert_true(l->fp.max_requests_per_pump >= 2);
	assert_true(l->fp.max_requests_per_pump <= PL_FW_MAX_IN_FLIGHT);

	/* Resumed from the middle: exactly the tail. */
	l->got_len = 0;
	l->next_offset = 123457;
	OK(pl_pen_download_session(l->pen, &s[0], 123457, &o));
	assert_false(l->out_of_order);
	assert_int_equal(l->got_len, SESSION1_SIZE - 123457);
	assert_memory_equal(l->got, l->fp.sessions[0].data + 123457, l->got_len);
	assert_int_equal(pl_fw_get_stats(&l->fp.fw)->errors_sent, 0);
	free(s);
}

static void test_download_to_file_and_archive(void **state)
{
	struct link *l = *state;
	struct pl_session_info *s = NULL;
	char path[] = "/tmp/test_fw_link.XXXXXX";
	uint8_t wrong[32];
	size_t n = 0;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	/* A partial earlier download: the first 5000 bytes are there. */
	assert_int_equal(write(fd, l->fp.sessions[1].data, 5000), 5000);
	close(fd);
	OK(pl_pen_list_sessions(l->pen, &s, &n));
	OK(pl_pen_download_session_to_file(l->pen, &s[1], path, NULL, NULL));
	{
		uint8_t md[32];
		OK(pl_sha256_file(path, md));
		assert_memory_equal(md, l->fp.sessions[1].meta.sha256, 32);
	}
	unlink(path);

	memcpy(wrong, s[1].sha256, 32);
	wrong[0] ^= 0x80;
	assert_int_equal(pl_pen_archive_session(l->pen, s[1].id, wrong), PL_ERR_CONFLICT);
	assert_false(l->fp.sessions[1].meta.archived);
	OK(pl_pen_archive_session(l->pen, s[1].id, s[1].sha256));
	assert_true(l->fp.sessions[1].meta.archived);
	OK(pl_pen_archive_session(l->pen, s[1].id, s[1].sha256)); /* idempotent */
	assert_int_equal(l->fp.archives, 1);
	assert_int_equal(pl_pen_archive_session(l->pen, 4242, s[1].sha256),
	                 PL_ERR_NOT_FOUND);
	free(s);

	OK(pl_pen_list_sessions(l->pen, &s, &n));
	assert_false(s[0].archived);
	assert_true(s[1].archived);
	free(s);
}

static void on_event(void *ud, const struct pl_event *ev)
{
	struct link *l = ud;
	if (ev->kind == PL_EVENT_TRACE) {
		l->traces_seen++;
		snprintf(l->last_trace, sizeof l->last_trace, "%s", ev->text);
	}
}

static void test_clock_and_trace(void **state)
{
	struct link *l = *state;
	int64_t utc = 0;
	bool rtc = false;
	uint64_t up = 0;

	OK(pl_pen_clock_sync(l->pen, NULL));
	assert_true(l->fp.rtc_set);
	assert_true(l->fp.rtc > 1700000000000LL);
	OK(pl_pen_clock_get(l->pen, &utc, &rtc, &up));
	assert_true(rtc);
	assert_int_equal(up, 99000);
	assert_int_equal(utc, l->fp.rtc);

	pl_pen_set_event_handler(l->pen, on_event, l);
	OK(pl_pen_trace_subscribe(l->pen, true, 3));
	OK(pl_pen_ping(l->pen, NULL));
	OK(pl_pen_poll(l->pen, 10));
	assert_true(l->traces_seen >= 1);
	assert_non_null(strstr(l->last_trace, "ping"));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_open_and_info),
		T(test_presets_roundtrip),
		T(test_pen_refuses_on_its_own),
		T(test_list_sessions),
		T(test_download_verified),
		T(test_download_to_file_and_archive),
		T(test_clock_and_trace),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
