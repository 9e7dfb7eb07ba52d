/*
 * The counters penlinkd's hostile-pen defences read (pl_pen_link_stats,
 * used by daemon/device.c): a real engine against the fake pen on the
 * in-memory link, with frames injected from the pen's side.  What must be
 * told apart: a reply to an id never issued (hostile) from a late or
 * repeated reply to an id that was (a noisy line); unsolicited frames of
 * any body; input that ends frames (even damaged ones) from input that
 * does not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/fake_pen.h"
#include "penlink_wire.h"
#include "penlink.pb-c.h"

static struct fake_pen fp;

static void inject_raw(const uint8_t *p, size_t len)
{
	while (len) {
		int n = pl_transport_write(fp.pen_end, p, len);
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static void inject(Pl__Envelope *env)
{
	size_t plen = pl__envelope__get_packed_size(env);
	uint8_t *payload = malloc(plen + 1);
	assert_non_null(payload);
	pl__envelope__pack(env, payload);
	size_t cap = PL_FRAME_ENCODED_MAX(plen);
	uint8_t *out = malloc(cap);
	assert_non_null(out);
	size_t n = pl_frame_encode(payload, plen, 0, out, cap);
	assert_true(n > 0);
	inject_raw(out, n);
	free(out);
	free(payload);
}

static void inject_pong(uint32_t id)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__Pong pong = PL__PONG__INIT;
	env.id = id;
	env.body_case = PL__ENVELOPE__BODY_PONG;
	env.pong = &pong;
	inject(&env);
}

static struct pl_link_stats health(struct pl_pen *pen)
{
	struct pl_link_stats h;
	/* Let the engine read what was injected. */
	(void)pl_pen_poll(pen, 0);
	pl_pen_link_stats(pen, &h);
	return h;
}

static struct pl_pen *open_pen(void)
{
	struct pl_transport *host = NULL;
	struct pl_pen *pen = NULL;
	fake_pen_init(&fp);
	fake_pen_connect(&fp, &host, true);
	assert_int_equal(pl_pen_open_transport(host, NULL, &pen), PL_OK);
	return pen;
}

static void test_reply_ids(void **state)
{
	(void)state;
	struct pl_pen *pen = open_pen();
	struct pl_link_stats h0 = health(pen), h;
	assert_int_equal(h0.replies, 1); /* the handshake */
	assert_int_equal(h0.unknown_ids, 0);
	assert_int_equal(h0.outstanding, 0);

	uint32_t rtt;
	assert_int_equal(pl_pen_ping(pen, &rtt), PL_OK);
	h = health(pen);
	assert_int_equal(h.replies, 2);

	/* An id the engine used (the Hello's, 1): a repeated reply, not
	 * hostile. */
	inject_pong(1);
	h = health(pen);
	assert_int_equal(h.unknown_ids, 0);
	assert_int_equal(h.replies, 2);

	/* Ids it never used. */
	inject_pong(0x40000001u);
	inject_pong(1000);
	h = health(pen);
	assert_int_equal(h.unknown_ids, 2);
	assert_int_equal(h.replies, 2);
	struct pl_link_stats ls;
	pl_pen_link_stats(pen, &ls);
	assert_int_equal(ls.stray_replies, 3);
	pl_pen_close(pen);
	fake_pen_free(&fp);
}

static void test_unsolicited(void **state)
{
	(void)state;
	struct pl_pen *pen = open_pen();
	struct pl_link_stats h0 = health(pen), h;

	/* A state event, and an id-0 frame of a body no pen sends on its
	 * own: both are unsolicited frames to count. */
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__StateEvent se = PL__STATE_EVENT__INIT;
	se.kind = PL__STATE_KIND__STATE_KIND_TREATING;
	env.body_case = PL__ENVELOPE__BODY_STATE_EVENT;
	env.state_event = &se;
	inject(&env);
	inject_pong(0);
	h = health(pen);
	assert_int_equal(h.unsolicited - h0.unsolicited, 2);
	assert_int_equal(h.unknown_ids, 0);
	assert_int_equal(h.replies, h0.replies);
	pl_pen_close(pen);
	fake_pen_free(&fp);
}

static void test_frames_and_bytes(void **state)
{
	(void)state;
	struct pl_pen *pen = open_pen();
	struct pl_link_stats h0 = health(pen), h;
	assert_int_equal(h0.bytes_at_frame, h0.bytes_in);

	/* Damaged frames end frames (the line's doing) but are not valid:
	 * bytes_at_frame stays where the last good frame was. */
	static const uint8_t junk[] = {0x05, 0x11, 0x22, 0x33, 0x44, 0x00,
	                               0x02, 0x01, 0x00};
	inject_raw(junk, sizeof junk);
	h = health(pen);
	assert_int_equal(h.bytes_in - h0.bytes_in, sizeof junk);
	assert_int_equal(h.frames_ended - h0.frames_ended, 2);
	assert_int_equal(h.bytes_at_frame, h0.bytes_at_frame);

	/* Bytes without any delimiter end nothing. */
	uint8_t run[3000];
	memset(run, 0x7e, sizeof run);
	inject_raw(run, sizeof run);
	struct pl_link_stats h2 = health(pen);
	assert_int_equal(h2.bytes_in - h.bytes_in, sizeof run);
	assert_int_equal(h2.frames_ended, h.frames_ended);

	/* A good frame moves bytes_at_frame up to the input read with it. */
	inject_raw((const uint8_t *)"\0", 1); /* ends the run (as a damaged frame) */
	inject_pong(0);
	h = health(pen);
	assert_int_equal(h.bytes_at_frame, h.bytes_in);
	pl_pen_close(pen);
	fake_pen_free(&fp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_ids),
		cmocka_unit_test(test_unsolicited),
		cmocka_unit_test(test_frames_and_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
