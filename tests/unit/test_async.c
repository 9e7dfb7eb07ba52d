/*
 * The asynchronous API against the real firmware endpoint, with no
 * blocking call at all: the test is the caller's event loop.  The memory
 * transport has no descriptor, so each round of the loop is
 * pl_pen_handle_events(READABLE) followed by the pen's side (pump), and
 * timers are slept off with pl_pen_next_timeout(), as a poll() loop would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "penlink.h"
#include "penlink_test.h"
#include "pl_fw.h"
#include "support/fake_pen.h"

#define SESSION1_SIZE 300007u
#define SESSION2_SIZE 10000u
#define MAX_ROUNDS 100000

struct link {
	struct fake_pen fp; /* the pen's side, storage and link */
	struct pl_transport *a; /* the host's end, owned by the pen */
	struct pl_pen *pen;
	/* download sink */
	uint8_t *got;
	size_t got_len, got_cap;
	uint64_t next_offset;
	bool out_of_order;
	uint64_t progress_done;
	size_t close_in_sink_after; /* close the pen from the sink past this */
	/* events */
	unsigned traces, states;
	char last_trace[128];
	uint32_t last_state_value;
};

/* Set around every _async call: a callback that runs while it is set ran
 * synchronously from inside the call, which the API forbids. */
static bool in_async_call;

/* ------------------------------------------------------------------ the loop */

struct call {
	struct link *l;
	int calls;
	int status;
	char msg[512];
	uint64_t got_len_then; /* download bytes received when this completed */
	bool close_pen;        /* close the pen from inside the callback */
};

static void done_cb(void *ud, int status)
{
	struct call *c = ud;
	if (in_async_call)
		fail_msg("a callback ran from inside the _async call that started it");
	c->calls++;
	c->status = status;
	snprintf(c->msg, sizeof c->msg, "%s", status ? pl_error_message() : "");
	if (c->l) {
		c->got_len_then = c->l->got_len;
		if (c->close_pen) {
			pl_pen_close(c->l->pen);
			c->l->pen = NULL;
		}
	}
}

#define ASYNC(call)                                                           \
	do {                                                                  \
		in_async_call = true;                                         \
		int rc_ = (call);                                             \
		in_async_call = false;                                        \
		if (rc_ != PL_OK)                                             \
			fail_msg("%s -> %s: %s", #call, pl_error_name(rc_),     \
			         pl_error_message());                    \
	} while (0)

#define EXPECT_OK(c)                                                          \
	do {                                                                  \
		assert_int_equal((c).calls, 1);                               \
		if ((c).status != PL_OK)                                      \
			fail_msg("%s failed: %s: %s", #c,                     \
			         pl_error_name((c).status), (c).msg);           \
	} while (0)

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The caller's event loop: runs until no call is outstanding.  Returns the
 * last error pl_pen_handle_events() reported (PL_OK if none). */
static int run(struct link *l)
{
	int last = PL_OK;
	for (int i = 0; l->pen && pl_pen_outstanding(l->pen) > 0; i++) {
		if (i > MAX_ROUNDS)
			fail_msg("%u calls still outstanding after %d rounds",
			         pl_pen_outstanding(l->pen), MAX_ROUNDS);
		int rc = pl_pen_handle_events(l->pen, PL_WAIT_READABLE);
		if (rc)
			last = rc;
		fake_pen_pump(&l->fp);
	}
	return last;
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
	if (l->close_in_sink_after && l->got_len > l->close_in_sink_after) {
		pl_pen_close(l->pen);
		l->pen = NULL;
	}
	return PL_OK;
}

static void progress(void *ud, uint64_t done, uint64_t total)
{
	struct link *l = ud;
	(void)total;
	l->progress_done = done;
}

static void on_event(void *ud, const struct pl_event *ev)
{
	struct link *l = ud;
	if (ev->kind == PL_EVENT_TRACE) {
		l->traces++;
		snprintf(l->last_trace, sizeof l->last_trace, "%s", ev->text);
	} else {
		l->states++;
		l->last_state_value = ev->value;
	}
}

/* ------------------------------------------------------------------ fixture */

static int setup(void **state)
{
	struct link *l = calloc(1, sizeof *l);

	assert_non_null(l);
	fake_pen_init(&l->fp);
	l->fp.log_to_trace = true;
	/* Until a test brings the firmware up, what the host sends is lost. */
	l->fp.fw_down = true;
	fake_pen_add_random_session(&l->fp, 3, SESSION1_SIZE, 7);
	fake_pen_add_random_session(&l->fp, 9, SESSION2_SIZE, 11);
	fake_pen_connect(&l->fp, &l->a, false);
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

/* Opens with the firmware up at once; the pen is idle afterwards. */
static void open_pen(struct link *l)
{
	struct call c = {0};
	l->fp.fw_down = false;
	ASYNC(pl_pen_open_async(l->a, NULL, done_cb, &c, &l->pen));
	assert_non_null(l->pen);
	assert_int_equal(c.calls, 0);
	assert_int_equal(run(l), PL_OK);
	EXPECT_OK(c);
}

/* ------------------------------------------------------------------ tests */

static void test_open_retries_until_firmware_is_up(void **state)
{
	struct link *l = *state;
	struct pl_open_options o;
	struct call c = {0};
	struct pl_link_stats st;

	pl_open_options_init(&o);
	o.timeout_ms = 40; /* Hello every min(40, 200) ms */
	ASYNC(pl_pen_open_async(l->a, &o, done_cb, &c, &l->pen));
	assert_non_null(l->pen);
	assert_int_equal(c.calls, 0);
	assert_int_equal(pl_pen_outstanding(l->pen), 1);
	assert_true(pl_pen_want_write(l->pen)); /* nothing written yet */
	assert_int_equal(pl_pen_fd(l->pen), -1);  /* memory: no descriptor */
	int t = pl_pen_next_timeout(l->pen);
	assert_true(t >= 0 && t <= 40);

	/* The firmware is not up: Hellos are lost, and the timer the loop
	 * sees through pl_pen_next_timeout() re-sends them. */
	for (int round = 0; round < 3; round++) {
		assert_int_equal(pl_pen_handle_events(l->pen, PL_WAIT_READABLE), PL_OK);
		fake_pen_pump(&l->fp);
		t = pl_pen_next_timeout(l->pen);
		assert_true(t >= 0 && t <= 40);
		sleep_ms(t);
		assert_int_equal(pl_pen_handle_events(l->pen, 0), PL_OK);
	}
	assert_int_equal(c.calls, 0);
	assert_true(l->fp.bytes_lost > 0);
	pl_pen_link_stats(l->pen, &st);
	assert_true(st.retries >= 3);

	l->fp.fw_down = false;
	assert_int_equal(run(l), PL_OK);
	EXPECT_OK(c);
	assert_string_equal(pl_pen_serial(l->pen), "PEN-LINK");
	assert_int_equal(pl_pen_max_in_flight(l->pen), PL_FW_MAX_IN_FLIGHT);
	assert_int_equal(pl_pen_max_frame(l->pen), PL_FW_MAX_FRAME);

	/* Idle: nothing to wait for, no timer, nothing to write. */
	assert_int_equal(pl_pen_outstanding(l->pen), 0);
	assert_int_equal(pl_pen_next_timeout(l->pen), -1);
	assert_false(pl_pen_want_write(l->pen));
	assert_int_equal(pl_pen_handle_events(l->pen, 0), PL_OK);
	assert_int_equal(pl_pen_next_timeout(l->pen), -1);
}

static void test_open_times_out(void **state)
{
	struct link *l = *state;
	struct pl_open_options o;
	struct call c = {0};

	pl_open_options_init(&o);
	o.timeout_ms = 20;
	o.handshake_ms = 100;
	ASYNC(pl_pen_open_async(l->a, &o, done_cb, &c, &l->pen));
	while (pl_pen_outstanding(l->pen)) {
		int t = pl_pen_next_timeout(l->pen);
		assert_true(t >= 0 && t <= 20);
		sleep_ms(t);
		pl_pen_handle_events(l->pen, PL_WAIT_READABLE);
		fake_pen_pump(&l->fp);
	}
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.status, PL_ERR_TIMEOUT);
	assert_non_null(strstr(c.msg, "did not answer the handshake within 100 ms"));
	/* A failed pen refuses further calls through their callbacks. */
	struct pl_device_info info;
	struct call c2 = {0};
	ASYNC(pl_pen_get_info_async(l->pen, &info, done_cb, &c2));
	assert_int_equal(pl_pen_next_timeout(l->pen), 0);
	run(l);
	assert_int_equal(c2.calls, 1);
	assert_int_equal(c2.status, PL_ERR_ARG);
	assert_non_null(strstr(c2.msg, "handshake"));
}

static void test_info_presets_clock(void **state)
{
	struct link *l = *state;
	struct pl_device_info info;
	struct pl_preset_set set, back, read;
	struct call ci = {0}, cg = {0}, cp = {0}, cr = {0}, cc = {0}, cc2 = {0};
	int64_t offset = 12345, offset2 = 0;

	memset(&info, 0, sizeof info);
	memset(&set, 0, sizeof set);
	memset(&back, 0, sizeof back);
	memset(&read, 0, sizeof read);
	open_pen(l);

	ASYNC(pl_pen_get_info_async(l->pen, &info, done_cb, &ci));
	ASYNC(pl_pen_get_presets_async(l->pen, &set, done_cb, &cg));
	assert_int_equal(pl_pen_outstanding(l->pen), 2);
	assert_int_equal(ci.calls + cg.calls, 0);
	assert_int_equal(run(l), PL_OK);
	EXPECT_OK(ci);
	EXPECT_OK(cg);
	assert_string_equal(info.serial, "PEN-LINK");
	assert_string_equal(info.model, "PL-Pen 1");
	assert_int_equal(info.depth_max_um, 2500);
	assert_int_equal(info.stroke_rate_hz[5], 150);
	assert_int_equal(info.battery_mv, 3850);
	assert_int_equal(set.revision, 1);
	assert_int_equal(set.count, 2);
	assert_string_equal(set.presets[1].name, "Cheek");

	/* Write, with the read-back compared inside the call. */
	set.count = 3;
	set.presets[2] = (struct pl_preset){7, "Décolleté", 750, 2,
	                                    PL_AREA_DECOLLETE, 0, 300};
	set.presets[0].depth_um = 2000;
	set.presets[0].speed_level = 1;
	ASYNC(pl_pen_put_presets_async(l->pen, &set, &back, done_cb, &cp));
	assert_int_equal(cp.calls, 0);
	assert_int_equal(run(l), PL_OK);
	EXPECT_OK(cp);
	assert_int_equal(back.revision, 2);
	assert_int_equal(back.count, 3);
	assert_int_equal(l->fp.stores, 1);
	assert_int_equal(l->fp.revision, 2);
	assert_string_equal(l->fp.presets[2].name, "Décolleté");
	assert_int_equal(l->fp.presets[0].depth_um, 2000);

	ASYNC(pl_pen_get_presets_async(l->pen, &read, done_cb, &cr));
	assert_int_equal(run(l), PL_OK);
	EXPECT_OK(cr);
	assert_int_equal(read.revision, 2);
	assert_int_equal(read.presets[2].id, 7);
	assert_int_equal(read.presets[2].max_duration_s, 300);
	assert_string_equal(read.presets[2].name, "Décolleté");

	/* Clock: the pen had no time, so no offset; then set. */
	assert_false(l->fp.rtc_set);
	ASYNC(pl_pen_clock_sync_async(l->pen, &offset, done_cb, &cc));
	assert_int_equal(cc.calls, 0);
	assert_int_equal(run(l), PL_OK);
	EXPECT_OK(cc);
	assert_int_equal(offset, 0);
	assert_true(l->fp.rtc_set);
	assert_true(l->fp.rtc > 1700000000000LL);
	/* A pen 5 s fast is reported so and corrected. */
	l->fp.rtc += 5000;
	ASYNC(pl_pen_clock_sync_async(l->pen, &offset2, done_cb, &cc2));
	assert_int_equal(run(l), PL_OK);
	EXPECT_OK(cc2);
	assert_true(offset2 > 4000 && offset2 <= 5000);
	assert_int_equal(pl_pen_next_timeout(l->pen), -1);
}

static void test_refused_put(void **state)
{
	struct link *l = *state;
	struct pl_preset_set set, back;
	struct call cg = {0}, cp = {0}, cp2 = {0};
	uint32_t refusals;

	memset(&set, 0, sizeof set);
	memset(&back, 0, sizeof back);
	open_pen(l);
	ASYNC(pl_pen_get_presets_async(l->pen, &set, done_cb, &cg));
	run(l);
	EXPECT_OK(cg);
	refusals = pl_fw_get_stats(&l->fp.fw)->validation_refusals;
	set.presets[1].depth_um = 2600;

	/* The pen's limits are not known yet: the call reads them first and
	 * refuses from its callback. */
	ASYNC(pl_pen_put_presets_async(l->pen, &set, &back, done_cb, &cp));
	assert_int_equal(cp.calls, 0);
	run(l);
	assert_int_equal(cp.calls, 1);
	assert_int_equal(cp.status, PL_ERR_VALIDATION);
	assert_non_null(strstr(cp.msg, "above this pen's maximum"));

	/* Now they are cached, so the refusal is known inside the call; it is
	 * still reported from the loop, which is told to come at once. */
	ASYNC(pl_pen_put_presets_async(l->pen, &set, &back, done_cb, &cp2));
	assert_int_equal(cp2.calls, 0);
	assert_int_equal(pl_pen_outstanding(l->pen), 1);
	assert_int_equal(pl_pen_next_timeout(l->pen), 0);
	assert_false(pl_pen_want_write(l->pen)); /* nothing goes to the pen */
	assert_int_equal(pl_pen_handle_events(l->pen, 0), PL_OK);
	assert_int_equal(cp2.calls, 1);
	assert_int_equal(cp2.status, PL_ERR_VALIDATION);
	assert_non_null(strstr(cp2.msg, "preset 2 \"Cheek\": depth"));
	assert_non_null(strstr(cp2.msg, "above this pen's maximum"));
	assert_int_equal(pl_pen_outstanding(l->pen), 0);
	assert_int_equal(pl_pen_next_timeout(l->pen), -1);

	/* Neither reached the pen's own check, and nothing was stored. */
	assert_int_equal(pl_fw_get_stats(&l->fp.fw)->validation_refusals, refusals);
	assert_int_equal(l->fp.stores, 0);
	assert_int_equal(l->fp.presets[1].depth_um, 1000);
	assert_int_equal(back.count, 0); /* result untouched on failure */
}

static void test_sessions(void **state)
{
	struct link *l = *state;
	struct pl_session_info *s = NULL;
	size_t n = 0;
	struct pl_download_options o;
	struct pl_device_info info;
	struct call cl = {0}, cd = {.l = l}, ci = {.l = l}, ca = {0}, cb = {0},
	            cl2 = {0};
	uint8_t wrong[32];

	open_pen(l);
	ASYNC(pl_pen_list_sessions_async(l->pen, &s, &n, done_cb, &cl));
	assert_null(s);
	assert_int_equal(run(l), PL_OK);
	EXPECT_OK(cl);
	assert_int_equal(n, 2);
	assert_int_equal(s[0].id, 3);
	assert_int_equal(s[0].size, SESSION1_SIZE);
	assert_memory_equal(s[0].sha256, l->fp.sessions[0].meta.sha256, 32);
	assert_int_equal(s[1].id, 9);
	assert_false(s[1].archived);

	/* A download and an info request at once: they share the window, and
	 * the info does not wait for the whole record. */
	memset(&o, 0, sizeof o);
	o.sink = sink;
	o.progress = progress;
	o.ud = l;
	ASYNC(pl_pen_download_session_async(l->pen, &s[0], 0, &o, done_cb, &cd));
	ASYNC(pl_pen_get_info_async(l->pen, &info, done_cb, &ci));
	assert_int_equal(pl_pen_outstanding(l->pen), 2);
	assert_int_equal(run(l), PL_OK);
	EXPECT_OK(cd);
	EXPECT_OK(ci);
	assert_string_equal(info.model, "PL-Pen 1");
	print_message("info completed after %llu of %u bytes\n",
	              (unsigned long long)ci.got_len_then, SESSION1_SIZE);
	assert_true(ci.got_len_then < SESSION1_SIZE);
	assert_int_equal(cd.got_len_then, SESSION1_SIZE);
	assert_false(l->out_of_order);
	assert_int_equal(l->got_len, SESSION1_SIZE);
	assert_int_equal(l->progress_done, SESSION1_SIZE);
	assert_memory_equal(l->got, l->fp.sessions[0].data, SESSION1_SIZE);
	{
		uint8_t md[32];
		pl_sha256(l->got, l->got_len, md);
		assert_memory_equal(md, s[0].sha256, 32);
	}

	/* Resumed from the middle: exactly the tail. */
	l->got_len = 0;
	l->next_offset = 4321;
	memset(&cd, 0, sizeof cd);
	ASYNC(pl_pen_download_session_async(l->pen, &s[1], 4321, &o, done_cb, &cd));
	run(l);
	EXPECT_OK(cd);
	assert_int_equal(l->got_len, SESSION2_SIZE - 4321);
	assert_memory_equal(l->got, l->fp.sessions[1].data + 4321, l->got_len);

	/* Archive: a wrong digest is refused by the pen, the right one taken. */
	memcpy(wrong, s[1].sha256, 32);
	wrong[0] ^= 0x80;
	ASYNC(pl_pen_archive_session_async(l->pen, s[1].id, wrong, done_cb, &cb));
	ASYNC(pl_pen_archive_session_async(l->pen, s[1].id, s[1].sha256, done_cb, &ca));
	run(l);
	assert_int_equal(cb.calls, 1);
	assert_int_equal(cb.status, PL_ERR_CONFLICT);
	EXPECT_OK(ca);
	assert_true(l->fp.sessions[1].meta.archived);
	assert_int_equal(l->fp.archives, 1);
	free(s);
	s = NULL;

	ASYNC(pl_pen_list_sessions_async(l->pen, &s, &n, done_cb, &cl2));
	run(l);
	EXPECT_OK(cl2);
	assert_int_equal(n, 2);
	assert_false(s[0].archived);
	assert_true(s[1].archived);
	free(s);
	assert_int_equal(pl_pen_next_timeout(l->pen), -1);
}

static void test_events(void **state)
{
	struct link *l = *state;
	struct call ct = {0};

	open_pen(l);
	pl_pen_set_event_handler(l->pen, on_event, l);
	ASYNC(pl_pen_trace_subscribe_async(l->pen, true, 3, done_cb, &ct));
	run(l);
	EXPECT_OK(ct);
	assert_int_equal(pl_fw_trace(&l->fp.fw, 1, "motor warm"), PL_FW_OK);
	assert_int_equal(pl_fw_state_event(&l->fp.fw, 3, 42, "session 42"), PL_FW_OK);
	/* Nothing outstanding, yet input is dispatched. */
	assert_int_equal(pl_pen_outstanding(l->pen), 0);
	assert_int_equal(pl_pen_handle_events(l->pen, PL_WAIT_READABLE), PL_OK);
	assert_true(l->traces >= 1);
	assert_string_equal(l->last_trace, "motor warm");
	assert_int_equal(l->states, 1);
	assert_int_equal(l->last_state_value, 42);

	/* A bad level is refused through the callback. */
	memset(&ct, 0, sizeof ct);
	ASYNC(pl_pen_trace_subscribe_async(l->pen, true, 9, done_cb, &ct));
	run(l);
	assert_int_equal(ct.status, PL_ERR_ARG);
}

static void test_unplug_mid_download(void **state)
{
	struct link *l = *state;
	struct pl_session_info *s = NULL;
	size_t n = 0;
	struct pl_download_options o;
	struct pl_device_info info;
	struct call cl = {0}, cd = {.l = l}, ci = {0}, late = {0};
	int unplugged_rc = PL_OK;
	bool unplugged = false;

	open_pen(l);
	ASYNC(pl_pen_list_sessions_async(l->pen, &s, &n, done_cb, &cl));
	run(l);
	EXPECT_OK(cl);
	memset(&o, 0, sizeof o);
	o.sink = sink;
	o.ud = l;
	ASYNC(pl_pen_download_session_async(l->pen, &s[0], 0, &o, done_cb, &cd));
	for (int i = 0; pl_pen_outstanding(l->pen) > 0; i++) {
		assert_true(i < MAX_ROUNDS);
		int rc = pl_pen_handle_events(l->pen, PL_WAIT_READABLE);
		if (rc)
			unplugged_rc = rc;
		fake_pen_pump(&l->fp);
		if (!unplugged && l->got_len > 100000) {
			/* Something else is outstanding when the link dies too. */
			ASYNC(pl_pen_get_info_async(l->pen, &info, done_cb, &ci));
			pl_transport_memory_unplug(l->a);
			unplugged = true;
		}
	}
	assert_int_equal(unplugged_rc, PL_ERR_UNPLUGGED);
	assert_int_equal(cd.calls, 1);
	assert_int_equal(cd.status, PL_ERR_UNPLUGGED);
	assert_non_null(strstr(cd.msg, "went away"));
	assert_int_equal(ci.calls, 1);
	assert_int_equal(ci.status, PL_ERR_UNPLUGGED);
	assert_true(l->got_len > 100000 && l->got_len < SESSION1_SIZE);
	assert_false(l->out_of_order);
	assert_memory_equal(l->got, l->fp.sessions[0].data, l->got_len);

	/* The dead pen stays quiet, and a call on it fails from the loop. */
	assert_int_equal(pl_pen_next_timeout(l->pen), -1);
	assert_false(pl_pen_want_write(l->pen));
	ASYNC(pl_pen_get_info_async(l->pen, &info, done_cb, &late));
	assert_int_equal(late.calls, 0);
	assert_int_equal(pl_pen_next_timeout(l->pen), 0);
	assert_int_equal(pl_pen_handle_events(l->pen, 0), PL_ERR_UNPLUGGED);
	assert_int_equal(late.calls, 1);
	assert_int_equal(late.status, PL_ERR_UNPLUGGED);
	free(s);
}

static void test_close_with_calls_outstanding(void **state)
{
	struct link *l = *state;
	struct pl_session_info *s = NULL, *s2 = NULL;
	size_t n = 0, n2 = 0;
	struct pl_download_options o;
	struct pl_device_info info;
	struct pl_preset_set set;
	struct call cl = {0}, cd = {.l = l}, ci = {.l = l}, cp = {0}, cl2 = {0};

	memset(&set, 0, sizeof set);
	open_pen(l);
	ASYNC(pl_pen_list_sessions_async(l->pen, &s, &n, done_cb, &cl));
	run(l);
	EXPECT_OK(cl);

	/* Mid-download, with reordered chunks held, a list in progress and a
	 * queued failure: close drops them all without their callbacks. */
	memset(&o, 0, sizeof o);
	o.sink = sink;
	o.ud = l;
	ASYNC(pl_pen_download_session_async(l->pen, &s[0], 0, &o, done_cb, &cd));
	for (int i = 0; i < 3; i++) {
		pl_pen_handle_events(l->pen, PL_WAIT_READABLE);
		fake_pen_pump(&l->fp);
	}
	ASYNC(pl_pen_list_sessions_async(l->pen, &s2, &n2, done_cb, &cl2));
	ASYNC(pl_pen_put_presets_async(l->pen, NULL, NULL, done_cb, &cp));
	assert_int_equal(pl_pen_outstanding(l->pen), 3);
	pl_pen_close(l->pen);
	l->pen = NULL;
	assert_int_equal(cd.calls + cl2.calls + cp.calls, 0);
	assert_null(s2);
	free(s);
	s = NULL;

	/* Closing from inside a callback, with a download still running: the
	 * download's callback never comes and nothing is touched after. */
	fake_pen_disconnect(&l->fp);
	fake_pen_connect(&l->fp, &l->a, false);
	open_pen(l);
	memset(&cl, 0, sizeof cl);
	ASYNC(pl_pen_list_sessions_async(l->pen, &s, &n, done_cb, &cl));
	run(l);
	EXPECT_OK(cl);
	memset(&cd, 0, sizeof cd);
	cd.l = l;
	l->got_len = 0;
	l->next_offset = 0;
	ASYNC(pl_pen_download_session_async(l->pen, &s[0], 0, &o, done_cb, &cd));
	ci.close_pen = true;
	ASYNC(pl_pen_get_info_async(l->pen, &info, done_cb, &ci));
	run(l); /* ends when the callback closed the pen */
	assert_null(l->pen);
	assert_int_equal(ci.calls, 1);
	assert_int_equal(cd.calls, 0);
	assert_true(l->got_len < SESSION1_SIZE);

	/* Closing from inside the sink: no further bytes, no callback. */
	fake_pen_disconnect(&l->fp);
	fake_pen_connect(&l->fp, &l->a, false);
	open_pen(l);
	memset(&cd, 0, sizeof cd);
	l->got_len = 0;
	l->next_offset = 0;
	l->close_in_sink_after = 50000;
	ASYNC(pl_pen_download_session_async(l->pen, &s[0], 0, &o, done_cb, &cd));
	run(l);
	assert_null(l->pen);
	assert_int_equal(cd.calls, 0);
	assert_true(l->got_len > 50000 && l->got_len <= 50000 + PL_FW_MAX_FRAME);
	free(s);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_open_retries_until_firmware_is_up),
		T(test_open_times_out),
		T(test_info_presets_clock),
		T(test_refused_put),
		T(test_sessions),
		T(test_events),
		T(test_unplug_mid_download),
		T(test_close_with_calls_outstanding),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
