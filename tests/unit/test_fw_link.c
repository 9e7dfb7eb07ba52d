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
#include "pl_fw.h"

#define SESSION1_SIZE 300007u
#define SESSION2_SIZE 10000u

struct fake_session {
	struct pl_fw_session meta;
	uint8_t *data;
};

struct link {
	struct pl_fw fw;
	struct pl_fw_ops ops;
	struct pl_transport *b; /* the pen's end */
	struct pl_pen *pen;
	/* storage */
	struct pl_fw_preset presets[PL_FW_MAX_PRESETS];
	size_t npresets;
	uint32_t revision;
	unsigned stores, archives;
	struct fake_session sessions[2];
	int64_t rtc;
	bool rtc_set;
	/* observations */
	uint32_t max_requests_per_pump;
	size_t traces_seen;
	char last_trace[256];
	/* download sink */
	uint8_t *got;
	size_t got_len, got_cap;
	uint64_t next_offset;
	bool out_of_order;
};

/* ------------------------------------------------------------------ fake pen */

static int pen_send(void *ctx, const uint8_t *data, size_t len)
{
	struct link *l = ctx;
	while (len) {
		int n = pl_transport_write(l->b, data, len);
		if (n <= 0)
			return PL_FW_INTERNAL;
		data += n;
		len -= (size_t)n;
	}
	return PL_FW_OK;
}

static void pump(void *ud)
{
	struct link *l = ud;
	uint8_t buf[65536];
	uint32_t before = pl_fw_get_stats(&l->fw)->requests;
	int n;

	while ((n = pl_transport_read(l->b, buf, sizeof buf)) > 0)
		pl_fw_rx(&l->fw, buf, (size_t)n);
	n = (int)(pl_fw_get_stats(&l->fw)->requests - before);
	if ((uint32_t)n > l->max_requests_per_pump)
		l->max_requests_per_pump = (uint32_t)n;
}

static void pen_info(void *ctx, struct pl_fw_device_info *out)
{
	static const uint32_t rates[6] = {50, 70, 90, 110, 130, 150};
	(void)ctx;
	out->serial = "PEN-LINK";
	out->model = "PL-Pen 1";
	out->hw_revision = "B";
	out->fw_version = "1.0.0";
	out->capabilities = PL_FW_CAP_RTC | PL_FW_CAP_TRACE | PL_FW_CAP_TELEMETRY;
	out->depth_min_um = 250;
	out->depth_max_um = 2500;
	out->depth_step_um = 250;
	out->speed_levels = 6;
	memcpy(out->stroke_rate_hz, rates, sizeof rates);
	out->slow_lock_depth_um = 2000;
	out->max_presets = 16;
	out->total_strokes = 987654;
	out->motor_seconds = 3600;
	out->battery_percent = 64;
	out->battery_mv = 3850;
}

static int pen_presets_load(void *ctx, struct pl_fw_preset *out, size_t max,
                            size_t *count, uint32_t *revision)
{
	struct link *l = ctx;
	if (l->npresets > max)
		return PL_FW_INTERNAL;
	memcpy(out, l->presets, l->npresets * sizeof *out);
	*count = l->npresets;
	*revision = l->revision;
	return PL_FW_OK;
}

static int pen_presets_store(void *ctx, const struct pl_fw_preset *p,
                             size_t count, uint32_t revision)
{
	struct link *l = ctx;
	memcpy(l->presets, p, count * sizeof *p);
	l->npresets = count;
	l->revision = revision;
	l->stores++;
	return PL_FW_OK;
}

static struct fake_session *find(struct link *l, uint32_t id)
{
	for (size_t i = 0; i < 2; i++)
		if (l->sessions[i].meta.id == id)
			return &l->sessions[i];
	return NULL;
}

static int pen_session_next(void *ctx, uint32_t after, struct pl_fw_session *out)
{
	struct link *l = ctx;
	for (size_t i = 0; i < 2; i++)
		if (l->sessions[i].meta.id > after) {
			*out = l->sessions[i].meta;
			return PL_FW_OK;
		}
	return PL_FW_NOT_FOUND;
}

static int pen_session_get(void *ctx, uint32_t id, struct pl_fw_session *out)
{
	struct fake_session *s = find(ctx, id);
	if (!s)
		return PL_FW_NOT_FOUND;
	*out = s->meta;
	return PL_FW_OK;
}

static int pen_session_read(void *ctx, uint32_t id, uint64_t off, uint8_t *buf,
                            size_t len)
{
	struct fake_session *s = find(ctx, id);
	if (!s || off + len > s->meta.size)
		return PL_FW_INTERNAL;
	memcpy(buf, s->data + off, len);
	return PL_FW_OK;
}

static int pen_session_archive(void *ctx, uint32_t id)
{
	struct link *l = ctx;
	struct fake_session *s = find(l, id);
	if (!s)
		return PL_FW_NOT_FOUND;
	s->meta.archived = true;
	l->archives++;
	return PL_FW_OK;
}

static uint64_t pen_uptime(void *ctx)
{
	(void)ctx;
	return 99000;
}

static int64_t pen_rtc_get(void *ctx, bool *is_set)
{
	struct link *l = ctx;
	*is_set = l->rtc_set;
	return l->rtc;
}

static void pen_rtc_set(void *ctx, int64_t utc)
{
	struct link *l = ctx;
	l->rtc = utc;
	l->rtc_set = true;
}

static void pen_log(void *ctx, const char *line)
{
	struct link *l = ctx;
	pl_fw_trace(&l->fw, 2, line);
}

static void make_session(struct fake_session *s, uint32_t id, size_t size,
                         uint32_t seed)
{
	unsigned int n = 32;

	memset(&s->meta, 0, sizeof s->meta);
	s->meta.id = id;
	s->meta.seq = id;
	s->meta.size = size;
	for (int i = 0; i < 16; i++)
		s->meta.uuid[i] = (uint8_t)(seed + i);
	s->meta.start_ms = 1780000000000LL + id * 86400000LL;
	s->meta.end_ms = s->meta.start_ms + 2400000;
	s->meta.rtc_time = true;
	s->data = malloc(size);
	assert_non_null(s->data);
	for (size_t i = 0; i < size; i++) {
		seed = seed * 1664525u + 1013904223u;
		s->data[i] = (uint8_t)(seed >> 24);
	}
	assert_true(EVP_Digest(s->data, size, s->meta.sha256, &n, EVP_sha256(), NULL));
}

static const struct pl_fw_preset initial_presets[2] = {
	{1, "Forehead fine", 500, 4, 1, 12, 600},
	{2, "Cheek", 1000, 3, 5, 24, 900},
};

static int setup(void **state)
{
	struct link *l = calloc(1, sizeof *l);
	struct pl_transport *a = NULL;

	assert_non_null(l);
	l->ops.send = pen_send;
	l->ops.get_info = pen_info;
	l->ops.presets_load = pen_presets_load;
	l->ops.presets_store = pen_presets_store;
	l->ops.session_next = pen_session_next;
	l->ops.session_get = pen_session_get;
	l->ops.session_read = pen_session_read;
	l->ops.session_archive = pen_session_archive;
	l->ops.uptime_ms = pen_uptime;
	l->ops.rtc_get = pen_rtc_get;
	l->ops.rtc_set = pen_rtc_set;
	l->ops.log = pen_log;
	memcpy(l->presets, initial_presets, sizeof initial_presets);
	l->npresets = 2;
	l->revision = 1;
	make_session(&l->sessions[0], 3, SESSION1_SIZE, 7);
	make_session(&l->sessions[1], 9, SESSION2_SIZE, 11);
	pl_fw_init(&l->fw, &l->ops, l);

	assert_int_equal(pl_transport_memory_pair(&a, &l->b), PL_OK);
	pl_transport_memory_set_pump(a, pump, l);
	if (pl_pen_open_transport(a, NULL, &l->pen) != PL_OK)
		fail_msg("open: %s", pl_last_error_message());
	*state = l;
	return 0;
}

static int teardown(void **state)
{
	struct link *l = *state;
	pl_pen_close(l->pen);
	pl_transport_close(l->b);
	free(l->sessions[0].data);
	free(l->sessions[1].data);
	free(l->got);
	free(l);
	return 0;
}

#define OK(call)                                                              \
	do {                                                                  \
		int rc_ = (call);                                             \
		if (rc_ != PL_OK)                                             \
			fail_msg("%s -> %s: %s", #call, pl_strerror(rc_),     \
			         pl_last_error_message());                    \
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

	OK(pl_get_info(l->pen, &info));
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
	OK(pl_get_info(l->pen, &info));
	OK(pl_get_presets(l->pen, set));
	assert_int_equal(set->revision, 1);
	assert_int_equal(set->count, 2);
	assert_string_equal(set->presets[1].name, "Cheek");
	assert_int_equal(set->presets[1].area, PL_AREA_CHEEK);

	set->count = 3;
	set->presets[2] = (struct pl_preset){7, "Décolleté", 750, 2,
	                                     PL_AREA_DECOLLETE, 0, 300};
	set->presets[0].depth_um = 2000;
	set->presets[0].speed_level = 1;
	OK(pl_put_presets(l->pen, set, got));
	assert_int_equal(got->revision, 2);
	assert_int_equal(got->count, 3);
	assert_int_equal(l->revision, 2);
	assert_int_equal(l->npresets, 3);
	assert_string_equal(l->presets[2].name, "Décolleté");
	assert_int_equal(l->presets[0].depth_um, 2000);

	memset(got, 0, sizeof *got);
	OK(pl_get_presets(l->pen, got));
	assert_int_equal(got->revision, 2);
	assert_int_equal(got->presets[2].id, 7);
	assert_int_equal(got->presets[2].max_duration_s, 300);

	/* The same write again (a retry whose reply was lost) is answered
	 * with the stored set, not applied twice... */
	memset(got, 0, sizeof *got);
	OK(pl_put_presets(l->pen, set, got));
	assert_int_equal(got->revision, 2);
	assert_int_equal(l->stores, 1);
	/* ...but a different write based on the old revision loses. */
	set->presets[1].depth_um = 1250;
	assert_int_equal(pl_put_presets(l->pen, set, NULL), PL_ERR_CONFLICT);
	assert_int_equal(l->stores, 1);
	assert_int_equal(l->presets[1].depth_um, 1000);
}

static void test_pen_refuses_on_its_own(void **state)
{
	struct link *l = *state;
	struct pl_device_info info;
	struct pl_preset_set set_;
	struct pl_preset_set *set = &set_;
	uint32_t refusals;

	memset(set, 0, sizeof *set);

	OK(pl_get_info(l->pen, &info));
	OK(pl_get_presets(l->pen, set));
	set->presets[1].depth_um = 2600;
	/* The host's own check catches it first... */
	refusals = pl_fw_get_stats(&l->fw)->validation_refusals;
	assert_int_equal(pl_put_presets(l->pen, set, NULL), PL_ERR_VALIDATION);
	assert_int_equal(pl_fw_get_stats(&l->fw)->validation_refusals, refusals);
	/* ...and without it, the pen refuses by itself, naming the field. */
	assert_int_equal(pl_put_presets_unchecked(l->pen, set, NULL),
	                 PL_ERR_VALIDATION);
	assert_int_equal(pl_fw_get_stats(&l->fw)->validation_refusals, refusals + 1);
	assert_non_null(strstr(pl_last_error_message(), "presets[1].depth_um"));
	assert_non_null(strstr(pl_last_error_message(), "2600"));
	assert_int_equal(l->stores, 0);
	assert_int_equal(l->revision, 1);
	assert_int_equal(l->presets[1].depth_um, 1000);

	set->presets[1].depth_um = 2250; /* slow lock, speed 3 */
	assert_int_equal(pl_put_presets_unchecked(l->pen, set, NULL),
	                 PL_ERR_VALIDATION);
	assert_non_null(strstr(pl_last_error_message(), "speed_level"));
	assert_int_equal(l->stores, 0);
}

static void test_list_sessions(void **state)
{
	struct link *l = *state;
	struct pl_session_info *s = NULL;
	size_t n = 0;

	OK(pl_list_sessions(l->pen, &s, &n));
	assert_int_equal(n, 2);
	assert_int_equal(s[0].id, 3);
	assert_int_equal(s[0].size, SESSION1_SIZE);
	assert_memory_equal(s[0].sha256, l->sessions[0].meta.sha256, 32);
	assert_memory_equal(s[0].uuid, l->sessions[0].meta.uuid, 16);
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

	OK(pl_list_sessions(l->pen, &s, &n));
	memset(&o, 0, sizeof o);
	o.sink = sink;
	o.ud = l;
	l->max_requests_per_pump = 0;
	OK(pl_download_session(l->pen, &s[0], 0, &o));
	assert_false(l->out_of_order);
	assert_int_equal(l->got_len, SESSION1_SIZE);
	assert_true(EVP_Digest(l->got, l->got_len, md, &mdlen, EVP_sha256(), NULL));
	assert_memory_equal(md, s[0].sha256, 32);
	assert_memory_equal(l->got, l->sessions[0].data, SESSION1_SIZE);
	/* Pipelined, within what the pen allows. */
	print_message("requests in flight at once: %u\n", l->max_requests_per_pump);
	assert_true(l->max_requests_per_pump >= 2);
	assert_true(l->max_requests_per_pump <= PL_FW_MAX_IN_FLIGHT);

	/* Resumed from the middle: exactly the tail. */
	l->got_len = 0;
	l->next_offset = 123457;
	OK(pl_download_session(l->pen, &s[0], 123457, &o));
	assert_false(l->out_of_order);
	assert_int_equal(l->got_len, SESSION1_SIZE - 123457);
	assert_memory_equal(l->got, l->sessions[0].data + 123457, l->got_len);
	assert_int_equal(pl_fw_get_stats(&l->fw)->errors_sent, 0);
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
	assert_int_equal(write(fd, l->sessions[1].data, 5000), 5000);
	close(fd);
	OK(pl_list_sessions(l->pen, &s, &n));
	OK(pl_download_session_to_file(l->pen, &s[1], path, NULL, NULL));
	{
		uint8_t md[32];
		OK(pl_sha256_file(path, md));
		assert_memory_equal(md, l->sessions[1].meta.sha256, 32);
	}
	unlink(path);

	memcpy(wrong, s[1].sha256, 32);
	wrong[0] ^= 0x80;
	assert_int_equal(pl_archive_session(l->pen, s[1].id, wrong), PL_ERR_CONFLICT);
	assert_false(l->sessions[1].meta.archived);
	OK(pl_archive_session(l->pen, s[1].id, s[1].sha256));
	assert_true(l->sessions[1].meta.archived);
	OK(pl_archive_session(l->pen, s[1].id, s[1].sha256)); /* idempotent */
	assert_int_equal(l->archives, 1);
	assert_int_equal(pl_archive_session(l->pen, 4242, s[1].sha256),
	                 PL_ERR_NOT_FOUND);
	free(s);

	OK(pl_list_sessions(l->pen, &s, &n));
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

	OK(pl_clock_sync(l->pen, NULL));
	assert_true(l->rtc_set);
	assert_true(l->rtc > 1700000000000LL);
	OK(pl_clock_get(l->pen, &utc, &rtc, &up));
	assert_true(rtc);
	assert_int_equal(up, 99000);
	assert_int_equal(utc, l->rtc);

	pl_pen_set_event_handler(l->pen, on_event, l);
	OK(pl_trace_subscribe(l->pen, true, 3));
	OK(pl_ping(l->pen, NULL));
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
