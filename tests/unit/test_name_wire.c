/*
 * Preset names measured by their length on the wire where the host decodes
 * a preset set (issue 10): pl_preset_set_decode (which penlinkd's control
 * protocol uses for a client's PushPresets) and a pen's reply to
 * GetPresets.  protobuf-c ends a `string` at its first NUL, so a name
 * "Cheek\0<ESC>[2Jevil" used to come out as "Cheek": silently another
 * name.  Both refuse it now, naming the preset and the NUL's byte.  The
 * wire bytes are made by hand, since no encoder of ours can put a NUL in a
 * name; the pen is a scripted one on the in-memory transport.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "penlink.h"
#include "penlink.pb-c.h"
#include "penlink_test.h"
#include "penlink_wire.h"
#include "support/pb_wire.h"

/* ------------------------------------------------------------------ wire */

/* pl.PresetSet{revision 7, presets: "Brow", then id 2 named name}. */
static void w_set(struct wire *set, const char *name, size_t len)
{
	memset(set, 0, sizeof *set);
	w_uint(set, 1, 7);
	w_preset(set, 2, 1, "Brow", 4);
	w_preset(set, 2, 2, name, len);
}

static void assert_msg(const char *needle)
{
	const char *m = pl_error_message();
	if (!strstr(m, needle))
		fail_msg("message \"%s\" lacks \"%s\"", m, needle);
}

/* "Cheek", a NUL, then an escape and more: 14 bytes. */
static const char nul_name[] = "Cheek\0\x1b[2Jevil";
/* Two bytes up to the NUL, 43 on the wire. */
static const char long_name[] = "ok\0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/* ------------------------------------------------------------------ decode */

static void test_decode_measures_names_on_the_wire(void **state)
{
	(void)state;
	struct wire w;
	struct pl_preset_set out, untouched;
	memset(&out, 0x5a, sizeof out);
	untouched = out;

	w_set(&w, nul_name, sizeof nul_name - 1);
	assert_int_equal(pl_preset_set_decode(w.b, w.n, &out), PL_ERR_PARSE);
	assert_msg("preset 2");
	assert_msg("NUL byte (byte 5 of 14)");
	assert_memory_equal(&out, &untouched, sizeof out);

	/* A NUL first is not an empty name that might slip by. */
	w_set(&w, "\0Cheek", 6);
	assert_int_equal(pl_preset_set_decode(w.b, w.n, &out), PL_ERR_PARSE);
	assert_msg("NUL byte (byte 0 of 6)");

	/* Over PL_PRESET_NAME_MAX on the wire, short by strlen. */
	w_set(&w, long_name, sizeof long_name - 1);
	assert_int_equal(pl_preset_set_decode(w.b, w.n, &out), PL_ERR_PARSE);
	assert_msg("preset 2");
	assert_msg("43 bytes");
	assert_memory_equal(&out, &untouched, sizeof out);

	/* A good name comes through byte for byte; an empty one is a name
	 * for the validator to judge, not the decoder. */
	static const char good[] = "D\xc3\xa9" "collet\xc3\xa9 \xe2\x9c\x93";
	w_set(&w, good, sizeof good - 1);
	assert_int_equal(pl_preset_set_decode(w.b, w.n, &out), PL_OK);
	assert_int_equal(out.revision, 7);
	assert_int_equal(out.count, 2);
	assert_string_equal(out.presets[0].name, "Brow");
	assert_string_equal(out.presets[1].name, good);
	assert_int_equal(out.presets[1].depth_um, 500);
	w_set(&w, "", 0);
	assert_int_equal(pl_preset_set_decode(w.b, w.n, &out), PL_OK);
	assert_string_equal(out.presets[1].name, "");

	/* Control characters are the validator's to refuse: a pen's stored
	 * name that holds one is shown escaped, so decoding keeps it. */
	w_set(&w, "Evil\n3", 6);
	assert_int_equal(pl_preset_set_decode(w.b, w.n, &out), PL_OK);
	assert_string_equal(out.presets[1].name, "Evil\n3");
}

/* The same preset twice in one set's bytes, the second with the NUL: the
 * view and the message read the same bytes, so no name slips past. */
static void test_decode_repeated_fields(void **state)
{
	(void)state;
	struct wire w = {0};
	struct pl_preset_set out;
	struct wire p = {0};
	w_uint(&p, 1, 3);
	w_bytes(&p, 2, "Fine", 4);
	w_bytes(&p, 2, nul_name, sizeof nul_name - 1); /* the last one wins */
	w_uint(&p, 3, 500);
	w_bytes(&w, 2, p.b, p.n);
	assert_int_equal(pl_preset_set_decode(w.b, w.n, &out), PL_ERR_PARSE);
	assert_msg("preset 3");
	assert_msg("NUL byte (byte 5 of 14)");

	/* And the other way round: the NUL overwritten by a good name. */
	memset(&w, 0, sizeof w);
	memset(&p, 0, sizeof p);
	w_uint(&p, 1, 3);
	w_bytes(&p, 2, nul_name, sizeof nul_name - 1);
	w_bytes(&p, 2, "Fine", 4);
	w_bytes(&w, 2, p.b, p.n);
	assert_int_equal(pl_preset_set_decode(w.b, w.n, &out), PL_OK);
	assert_string_equal(out.presets[0].name, "Fine");
}

/* ------------------------------------------------------------------ a pen */

/* A pen that answers the handshake and then every GetPresets with the
 * PresetSet bytes in reply (hand-made). */
struct pen_script {
	struct pl_transport *host, *pen;
	struct pl_frame_decoder dec;
	uint8_t decbuf[PL_FRAME_RAW_LEN(8192)];
	uint8_t rx[8192];
	struct wire reply;
	unsigned gets;
};

static void send_payload(struct pen_script *s, const uint8_t *p, size_t len)
{
	uint8_t fr[PL_FRAME_ENCODED_MAX(4096)];
	assert_true(len <= 4096);
	size_t n = pl_frame_encode(p, len, 0, fr, sizeof fr);
	assert_true(n > 0);
	assert_int_equal(pl_transport_write(s->pen, fr, n), (int)n);
}

static void script_frame(void *ctx, uint8_t flags, const uint8_t *payload,
                         size_t len)
{
	struct pen_script *s = ctx;
	(void)flags;
	Pl__Envelope *req = pl__envelope__unpack(NULL, len, payload);
	assert_non_null(req);
	if (req->body_case == PL__ENVELOPE__BODY_HELLO) {
		Pl__HelloReply hr = PL__HELLO_REPLY__INIT;
		hr.version = 1;
		hr.max_frame = 4096;
		hr.max_in_flight = 1;
		hr.serial = (char *)"NUL-PEN";
		Pl__Envelope env = PL__ENVELOPE__INIT;
		env.id = req->id;
		env.body_case = PL__ENVELOPE__BODY_HELLO_REPLY;
		env.hello_reply = &hr;
		uint8_t buf[256];
		size_t n = pl__envelope__pack(&env, buf);
		send_payload(s, buf, n);
	} else if (req->body_case == PL__ENVELOPE__BODY_GET_PRESETS) {
		/* Envelope{id, preset_set (field 20)} */
		struct wire env = {0};
		w_uint(&env, 1, req->id);
		w_bytes(&env, 20, s->reply.b, s->reply.n);
		send_payload(s, env.b, env.n);
		s->gets++;
	} else {
		fail_msg("the script does not answer body %d", (int)req->body_case);
	}
	pl__envelope__free_unpacked(req, NULL);
}

static void script_pump(void *ud)
{
	struct pen_script *s = ud;
	for (;;) {
		int n = pl_transport_read(s->pen, s->rx, sizeof s->rx);
		if (n <= 0)
			break;
		pl_frame_decoder_feed(&s->dec, s->rx, (size_t)n);
	}
}

static struct pl_pen *script_open(struct pen_script *s)
{
	memset(s, 0, sizeof *s);
	assert_int_equal(pl_transport_memory_pair(&s->host, &s->pen), PL_OK);
	pl_transport_memory_set_pump(s->host, script_pump, s);
	pl_frame_decoder_init(&s->dec, s->decbuf, sizeof s->decbuf, script_frame,
	                      NULL, s);
	struct pl_open_options o;
	pl_open_options_init(&o);
	o.timeout_ms = 200;
	o.retries = 0;
	struct pl_pen *pen = NULL;
	if (pl_pen_open_transport(s->host, &o, &pen))
		fail_msg("open: %s", pl_error_message());
	return pen;
}

static void test_pen_reply_measures_names_on_the_wire(void **state)
{
	(void)state;
	struct pen_script *s = calloc(1, sizeof *s);
	assert_non_null(s);
	struct pl_pen *pen = script_open(s);
	struct pl_preset_set out, untouched;
	memset(&out, 0x5a, sizeof out);
	untouched = out;

	w_set(&s->reply, nul_name, sizeof nul_name - 1);
	assert_int_equal(pl_pen_get_presets(pen, &out), PL_ERR_PROTOCOL);
	assert_int_equal(s->gets, 1);
	assert_msg("the pen on memory:");
	assert_msg("preset 2");
	assert_msg("NUL byte (byte 5 of 14)");
	assert_memory_equal(&out, &untouched, sizeof out);

	w_set(&s->reply, long_name, sizeof long_name - 1);
	assert_int_equal(pl_pen_get_presets(pen, &out), PL_ERR_PROTOCOL);
	assert_msg("preset 2");
	assert_msg("43 bytes");

	/* The same pen with a plain name: read as sent. */
	w_set(&s->reply, "Cheek", 5);
	assert_int_equal(pl_pen_get_presets(pen, &out), PL_OK);
	assert_int_equal(out.count, 2);
	assert_int_equal(out.revision, 7);
	assert_string_equal(out.presets[1].name, "Cheek");

	pl_pen_close(pen);
	pl_transport_close(s->pen);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decode_measures_names_on_the_wire),
	    cmocka_unit_test(test_decode_repeated_fields),
	    cmocka_unit_test(test_pen_reply_measures_names_on_the_wire),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
