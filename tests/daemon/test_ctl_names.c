/*
 * A client's PushPresets as penlinkd reads it (issue 10):
 * plc_push_presets_decode measures every preset name by its length on the
 * wire.  protobuf-c ends a `string` at its first NUL, so the unpacked
 * Request alone holds "Cheek" for a name sent as "Cheek\0<ESC>[2Jevil", and
 * penlinkd used to write that other name to the pen.  The Requests are
 * made by hand, since no encoder of ours can put a NUL in a name.
 * (tests/integration/t_text_nul.sh sends them to a running penlinkd.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "penlink_control.h"
#include "support/pb_wire.h"

/* Request{id 9, push_presets (14) = push} */
static void w_request(struct wire *rq, const struct wire *push)
{
	memset(rq, 0, sizeof *rq);
	w_uint(rq, 1, 9);
	w_bytes(rq, 14, push->b, push->n);
}

/* Request{id 9, push_presets{serial, presets: "Brow", then id 2 named
 * name}}. */
static void w_push(struct wire *rq, const char *name, size_t len)
{
	struct wire push = {0};
	w_bytes(&push, 1, "PEN-1", 5);
	w_preset(&push, 3, 1, "Brow", 4);
	w_preset(&push, 3, 2, name, len);
	w_request(rq, &push);
}

/* Unpacks w as penlinkd does and decodes its push from the same bytes. */
static int decode(const struct wire *w, struct pl_preset_set *out)
{
	Plctl__Request *rq = plctl__request__unpack(NULL, w->n, w->b);
	assert_non_null(rq);
	int rc = plc_push_presets_decode(rq, w->b, w->n, out);
	plctl__request__free_unpacked(rq, NULL);
	return rc;
}

static void assert_msg(const char *needle)
{
	const char *m = pl_error_message();
	if (!strstr(m, needle))
		fail_msg("message \"%s\" lacks \"%s\"", m, needle);
}

static const char nul_name[] = "Cheek\0\x1b[2Jevil";
static const char long_name[] = "ok\0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

static void test_names_measured_on_the_wire(void **state)
{
	(void)state;
	struct wire w;
	struct pl_preset_set out, untouched;
	memset(&out, 0x5a, sizeof out);
	untouched = out;

	/* What the unpacked message says: the name cut at the NUL. */
	w_push(&w, nul_name, sizeof nul_name - 1);
	Plctl__Request *rq = plctl__request__unpack(NULL, w.n, w.b);
	assert_non_null(rq);
	assert_string_equal(rq->push_presets->presets[1]->name, "Cheek");
	plctl__request__free_unpacked(rq, NULL);

	assert_int_equal(decode(&w, &out), PL_ERR_PROTOCOL);
	assert_msg("preset 2");
	assert_msg("NUL byte (byte 5 of 14)");
	assert_memory_equal(&out, &untouched, sizeof out);

	w_push(&w, "\0Cheek", 6);
	assert_int_equal(decode(&w, &out), PL_ERR_PROTOCOL);
	assert_msg("NUL byte (byte 0 of 6)");

	w_push(&w, long_name, sizeof long_name - 1);
	assert_int_equal(decode(&w, &out), PL_ERR_PROTOCOL);
	assert_msg("43 bytes");
	assert_memory_equal(&out, &untouched, sizeof out);

	static const char good[] = "D\xc3\xa9" "collet\xc3\xa9 \xe2\x9c\x93";
	w_push(&w, good, sizeof good - 1);
	assert_int_equal(decode(&w, &out), PL_OK);
	assert_int_equal(out.count, 2);
	assert_int_equal(out.revision, 0);
	assert_int_equal(out.presets[0].id, 1);
	assert_string_equal(out.presets[0].name, "Brow");
	assert_int_equal(out.presets[1].id, 2);
	assert_string_equal(out.presets[1].name, good);
	assert_int_equal(out.presets[1].depth_um, 500);
	assert_int_equal(out.presets[1].speed_level, 2);
	assert_int_equal(out.presets[1].area, PL_AREA_CHEEK);

	/* No presets at all is a set (the validator judges it). */
	struct wire push = {0};
	w_bytes(&push, 1, "PEN-1", 5);
	w_request(&w, &push);
	assert_int_equal(decode(&w, &out), PL_OK);
	assert_int_equal(out.count, 0);
}

static void test_bounds_and_mismatches(void **state)
{
	(void)state;
	struct wire w, push = {0};
	struct pl_preset_set out;

	/* More presets than a pen holds: the words test_ctl expects. */
	for (uint32_t i = 0; i < PL_MAX_PRESETS + 1; i++)
		w_preset(&push, 3, i + 1, "P", 1);
	w_request(&w, &push);
	assert_int_equal(decode(&w, &out), PL_ERR_PROTOCOL);
	assert_msg("65 presets; a pen holds at most 64");

	/* A push with the NUL, another operation, then a clean push: the
	 * oneof keeps the last push only, while the wire view (which knows
	 * no other operation) reads both.  Refused, never the NUL's name
	 * cut short. */
	struct wire a = {0}, b = {0}, info = {0};
	w_preset(&a, 3, 1, nul_name, sizeof nul_name - 1);
	w_preset(&b, 3, 1, "Fine", 4);
	w_bytes(&info, 1, "PEN-1", 5);
	memset(&w, 0, sizeof w);
	w_uint(&w, 1, 9);
	w_bytes(&w, 14, a.b, a.n);
	w_bytes(&w, 12, info.b, info.n);
	w_bytes(&w, 14, b.b, b.n);
	Plctl__Request *rq = plctl__request__unpack(NULL, w.n, w.b);
	assert_non_null(rq);
	assert_int_equal(rq->op_case, PLCTL__REQUEST__OP_PUSH_PRESETS);
	int rc = plc_push_presets_decode(rq, w.b, w.n, &out);
	if (rc == PL_OK) {
		/* Accepted only as exactly what rq holds. */
		assert_int_equal(out.count, rq->push_presets->n_presets);
		for (size_t i = 0; i < out.count; i++)
			assert_string_equal(out.presets[i].name,
			                    rq->push_presets->presets[i]->name);
		assert_string_equal(out.presets[0].name, "Fine");
	} else {
		assert_int_equal(rc, PL_ERR_PROTOCOL);
	}

	/* Bytes that are not the request's. */
	struct wire other;
	w_push(&other, "Other", 5);
	assert_int_equal(plc_push_presets_decode(rq, other.b, other.n, &out),
	                 PL_ERR_PROTOCOL);
	assert_msg("cannot be read");
	assert_int_equal(plc_push_presets_decode(rq, NULL, 0, &out), PL_ERR_PROTOCOL);
	plctl__request__free_unpacked(rq, NULL);

	/* Not a push, or nothing to decode. */
	memset(&w, 0, sizeof w);
	w_uint(&w, 1, 9);
	w_bytes(&w, 12, info.b, info.n);
	rq = plctl__request__unpack(NULL, w.n, w.b);
	assert_non_null(rq);
	assert_int_equal(plc_push_presets_decode(rq, w.b, w.n, &out), PL_ERR_ARG);
	assert_int_equal(plc_push_presets_decode(NULL, w.b, w.n, &out), PL_ERR_ARG);
	assert_int_equal(plc_push_presets_decode(rq, w.b, w.n, NULL), PL_ERR_ARG);
	assert_int_equal(plc_push_presets_decode(rq, NULL, 3, &out), PL_ERR_ARG);
	plctl__request__free_unpacked(rq, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_measured_on_the_wire),
	    cmocka_unit_test(test_bounds_and_mismatches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
