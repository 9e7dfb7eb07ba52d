/*
 * Untrusted text at every door (issue 10): pl_text_clean per output, and
 * the preset-name rule at its three layers - the policy
 * (pl_policy_check_push), the library (pl_preset_validate) and the
 * firmware endpoint (pl_fw_validate_presets and the endpoint itself, fed
 * hand-made wire bytes so a name can hold a NUL).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "penlink.h"
#include "penlink.pb-c.h"
#include "penlink_wire.h"
#include "pl_fw.h"
#include "support/fake_pen.h"
#include "support/pb_wire.h"

/* ------------------------------------------------------------------ helpers */

static char *clean(enum pl_text_target t, const char *in)
{
	char *out = pl_text_clean_dup(t, in);
	assert_non_null(out);
	/* The measure and the text agree. */
	assert_int_equal(pl_text_clean(t, in, NULL, 0), strlen(out));
	return out;
}

/* No C0, no DEL, no C1 (C2 80..C2 9F), valid UTF-8. */
static void assert_printable(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	assert_true(pl_text_utf8_valid(s, n));
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			fail_msg("control byte 0x%02x at %zu in \"%s\"", p[i], i, s);
		if (p[i] == 0xc2 && i + 1 < n && p[i + 1] <= 0x9f)
			fail_msg("C1 control at %zu in \"%s\"", i, s);
	}
}

static void expect_clean(enum pl_text_target t, const char *in,
                         const char *want)
{
	char *out = clean(t, in);
	assert_string_equal(out, want);
	free(out);
}

/* ------------------------------------------------------------------ outputs */

/* The bytes the issue saw reach the log (BEL, BS, ESC), a newline that
 * would forge a row or a log entry, DEL, C1 CSI, a direction override and
 * a byte that is not UTF-8. */
static const char hostile[] =
    "PEN-\a\b\x1b[31mred\n"
    "FAKE ROW\r\x7f\xc2\x9b\xe2\x80\xae\xff";

static void test_terminal_and_log(void **state)
{
	(void)state;
	const char *want = "PEN-\\x07\\x08\\x1b[31mred\\x0aFAKE ROW\\x0d\\x7f"
	                   "\\x9b\\u202e\xef\xbf\xbd";
	expect_clean(PL_TEXT_TERMINAL, hostile, want);
	expect_clean(PL_TEXT_LOG, hostile, want);
	for (enum pl_text_target t = PL_TEXT_TERMINAL; t <= PL_TEXT_LOG; t++) {
		char *out = clean(t, hostile);
		assert_printable(out);
		assert_null(strchr(out, '\n'));
		free(out);
	}
	/* Plain text, accents included, passes as it is. */
	expect_clean(PL_TEXT_LOG, "D\xc3\xa9" "collet\xc3\xa9 \xe2\x9c\x93",
	             "D\xc3\xa9" "collet\xc3\xa9 \xe2\x9c\x93");
}

/* Through json-c as penctl writes it, then parsed back strictly: the same
 * text, valid UTF-8, no DEL, C1 or override left. */
static void test_json(void **state)
{
	(void)state;
	char *out = clean(PL_TEXT_JSON, hostile);
	assert_true(pl_text_utf8_valid(out, strlen(out)));
	assert_null(strchr(out, 0x7f));
	assert_null(strstr(out, "\xc2\x9b"));
	assert_null(strstr(out, "\xe2\x80\xae"));
	json_object *o = json_object_new_object();
	json_object_object_add(o, "serial", json_object_new_string(out));
	const char *doc = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	assert_true(pl_text_utf8_valid(doc, strlen(doc)));
	for (const char *c = doc; *c; c++)
		assert_true((unsigned char)*c >= 0x20);
	json_tokener *tok = json_tokener_new();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *back = json_tokener_parse_ex(tok, doc, (int)strlen(doc) + 1);
	assert_non_null(back);
	json_object *v;
	assert_true(json_object_object_get_ex(back, "serial", &v));
	assert_string_equal(json_object_get_string(v), out);
	json_object_put(back);
	json_tokener_free(tok);
	json_object_put(o);
	free(out);
}

/* OWASP's formula guard on every start it names; text that merely holds
 * those characters later, and numbers written as numbers, are untouched. */
static void test_csv(void **state)
{
	(void)state;
	static const char *const formulas[] = {
	    "=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)",
	    "\t=1", "\r=1", "=",
	};
	for (size_t i = 0; i < sizeof formulas / sizeof formulas[0]; i++) {
		char *out = clean(PL_TEXT_CSV, formulas[i]);
		assert_int_equal(out[0], '\'');
		assert_printable(out);
		free(out);
	}
	expect_clean(PL_TEXT_CSV, "LOT-=1", "LOT-=1");
	expect_clean(PL_TEXT_CSV, "a,b\"c", "a,b\"c"); /* quoting is the writer's */
	expect_clean(PL_TEXT_CSV, "x\ny", "x\\x0ay");
}

static void assert_safe_filename(const char *s)
{
	assert_true(s[0] != '\0' && s[0] != '-' && s[0] != '.');
	for (const char *c = s; *c; c++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                       "0123456789-_.", *c));
}

static void test_filename(void **state)
{
	(void)state;
	expect_clean(PL_TEXT_FILENAME, "-rf", "_rf");
	expect_clean(PL_TEXT_FILENAME, "--help", "_-help");
	expect_clean(PL_TEXT_FILENAME, "..", "_.");
	expect_clean(PL_TEXT_FILENAME, "PEN-0001", "PEN-0001");
	static const char *const bad[] = {"-", "-x", ".x", "../../etc/passwd",
	                                  "a b", "\xc3\xa9", hostile, ""};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *out = clean(PL_TEXT_FILENAME, bad[i]);
		assert_safe_filename(out);
		free(out);
	}
	/* A pulled record's file name, from a serial that starts with '-'. */
	struct pl_session_key k = {.serial = "-rf PEN"};
	char name[128];
	pl_session_file_name(&k, 3, name, sizeof name);
	assert_safe_filename(name);
	assert_string_equal(name, "_rf_PEN-000003-00000000-0000-0000-0000-000000000000.plrec");
}

/* ------------------------------------------------------------------ names */

/* Names no layer may take: C0 (tab, newline and the escapes included),
 * DEL and C1 (NEL, CSI). */
static const char *const control_names[] = {
    "Cheek\n3  Forged  0.25 mm", "\x1b[2JCheek", "Tab\tbed", "Bell\a",
    "Del\x7f", "Nel\xc2\x85", "Csi\xc2\x9b" "31m",
};

static void limits(struct pl_device_info *l)
{
	memset(l, 0, sizeof *l);
	l->depth_min_um = 250;
	l->depth_max_um = 2500;
	l->depth_step_um = 250;
	l->speed_levels = 6;
	l->slow_lock_depth_um = 2000;
	l->max_presets = 16;
}

static struct pl_preset preset(const char *name)
{
	struct pl_preset p = {.id = 3, .depth_um = 500, .speed_level = 2,
	                      .area = PL_AREA_CHEEK};
	snprintf(p.name, sizeof p.name, "%s", name);
	return p;
}

static void test_library_refuses_control_names(void **state)
{
	(void)state;
	struct pl_device_info l;
	limits(&l);
	for (size_t i = 0; i < sizeof control_names / sizeof control_names[0]; i++) {
		struct pl_preset p = preset(control_names[i]);
		assert_int_equal(pl_preset_validate(&l, &p), PL_ERR_VALIDATION);
		const char *m = pl_error_message();
		assert_non_null(strstr(m, "control character"));
		assert_printable(m); /* the message quotes the name escaped */
	}
	struct pl_preset ok = preset("D\xc3\xa9" "collet\xc3\xa9 \xe2\x9c\x93");
	assert_int_equal(pl_preset_validate(&l, &ok), PL_OK);
	/* A name filling the whole field (no terminator) is measured as the
	 * bytes that would go on the wire, not cut to fit. */
	struct pl_preset full = preset("");
	memset(full.name, 'a', sizeof full.name);
	assert_int_equal(pl_preset_validate(&l, &full), PL_ERR_VALIDATION);
	assert_non_null(strstr(pl_error_message(), "more than 32 bytes"));
}

static struct pl_policy_actor anyone = {.user = "alice"};

static void test_policy_refuses_control_names(void **state)
{
	(void)state;
	struct pl_policy *pol;
	struct pl_device_info l;
	limits(&l);
	assert_int_equal(pl_policy_new(&pol), PL_OK);
	for (size_t i = 0; i < sizeof control_names / sizeof control_names[0]; i++) {
		static struct pl_preset_set set;
		memset(&set, 0, sizeof set);
		set.count = 1;
		set.presets[0] = preset(control_names[i]);
		/* Confirmed and shallow: nothing but the name is wrong. */
		assert_int_equal(pl_policy_check_push(pol, &anyone, NULL, &set, true),
		                 PL_ERR_VALIDATION);
		char policy_msg[512];
		snprintf(policy_msg, sizeof policy_msg, "%s", pl_error_message());
		assert_printable(policy_msg);
		/* The one rule: the library says the same. */
		assert_int_equal(pl_preset_validate(&l, &set.presets[0]),
		                 PL_ERR_VALIDATION);
		assert_string_equal(policy_msg, pl_error_message());
	}
	/* A policy refusal quotes a name escaped: U+202E is allowed in a name
	 * but must not reorder the message on a terminal. */
	static struct pl_preset_set deep;
	deep.count = 1;
	deep.presets[0] = preset("abc\xe2\x80\xae" "def");
	deep.presets[0].depth_um = 2000;
	deep.presets[0].speed_level = 1;
	assert_int_equal(pl_policy_check_push(pol, &anyone, NULL, &deep, false),
	                 PL_ERR_POLICY);
	assert_non_null(strstr(pl_error_message(), "\"abc\\u202edef\""));
	pl_policy_free(pol);
}

static void test_fw_validate_refuses_control_names(void **state)
{
	(void)state;
	struct pl_fw_device_info info;
	fake_pen_default_info(&info);
	for (size_t i = 0; i < sizeof control_names / sizeof control_names[0]; i++) {
		struct pl_fw_preset p = {1, "", 500, 2, 5, 12, 0};
		struct pl_fw_refusal why;
		snprintf(p.name, sizeof p.name, "%s", control_names[i]);
		assert_int_equal(pl_fw_validate_presets(&info, &p, 1, &why),
		                 PL_FW_VALIDATION);
		assert_string_equal(why.field, "presets[0].name");
		assert_non_null(strstr(why.message, "control character"));
	}
}

/* ------------------------------------------------------------------ endpoint */

/* The endpoint's replies, decoded. */
struct host {
	struct fake_pen pen;
	struct pl_frame_decoder dec;
	uint8_t dec_buf[PL_FRAME_RAW_LEN(65536)];
	Pl__Envelope *last;
};

static int host_send(void *ctx, const uint8_t *data, size_t len)
{
	struct fake_pen *p = ctx;
	struct host *h = p->user;
	pl_frame_decoder_feed(&h->dec, data, len);
	return PL_FW_OK;
}

static void host_reply(void *ctx, uint8_t flags, const uint8_t *payload,
                       size_t len)
{
	struct host *h = ctx;
	(void)flags;
	if (h->last)
		pl__envelope__free_unpacked(h->last, NULL);
	h->last = pl__envelope__unpack(NULL, len, payload);
	assert_non_null(h->last);
}

static int host_setup(void **state)
{
	struct host *h = calloc(1, sizeof *h);
	assert_non_null(h);
	fake_pen_init(&h->pen);
	h->pen.user = h;
	h->pen.ops.send = host_send;
	pl_frame_decoder_init(&h->dec, h->dec_buf, sizeof h->dec_buf, host_reply,
	                      NULL, h);
	*state = h;
	return 0;
}

static int host_teardown(void **state)
{
	struct host *h = *state;
	if (h->last)
		pl__envelope__free_unpacked(h->last, NULL);
	fake_pen_free(&h->pen);
	free(h);
	return 0;
}

/* Envelope{id, put_presets{expected_revision, presets[{1, name, 500 um,
 * level 2, cheek}]}} with the name's len bytes as they are. */
static void put_one(struct host *h, uint32_t id, const char *name, size_t len)
{
	struct wire put = {0}, env = {0};
	w_uint(&put, 1, h->pen.revision);
	w_preset(&put, 2, 1, name, len);
	w_uint(&env, 1, id);
	w_bytes(&env, 19, put.b, put.n);

	uint8_t fr[PL_FRAME_ENCODED_MAX(512)];
	size_t n = pl_frame_encode(env.b, env.n, 0, fr, sizeof fr);
	assert_true(n > 0);
	pl_fw_rx(&h->pen.fw, fr, n);
	assert_non_null(h->last);
	assert_int_equal(h->last->id, id);
}

static void expect_refused(struct host *h, const char *field, const char *what)
{
	assert_int_equal(h->last->body_case, PL__ENVELOPE__BODY_ERROR);
	assert_int_equal(h->last->error->code, PL__ERROR_CODE__ERROR_CODE_VALIDATION);
	assert_string_equal(h->last->error->field, field);
	if (!strstr(h->last->error->message, what))
		fail_msg("message \"%s\" lacks \"%s\"", h->last->error->message, what);
}

static void test_fw_endpoint_measures_names_on_the_wire(void **state)
{
	struct host *h = *state;
	unsigned stores = h->pen.stores;

	/* "Cheek" then a NUL then more: the endpoint used to store "Cheek". */
	static const char nul[] = "Cheek\0\x1b[2Jevil";
	put_one(h, 1, nul, sizeof nul - 1);
	expect_refused(h, "presets[0].name", "NUL byte (byte 5 of 14)");
	/* A NUL alone is not an empty name that might slip by either. */
	put_one(h, 2, "\0", 1);
	expect_refused(h, "presets[0].name", "NUL byte");
	/* Longer than the stored form because of what follows the NUL. */
	static const char longer[] = "ok\0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	put_one(h, 3, longer, sizeof longer - 1);
	expect_refused(h, "presets[0].name", "longer than 32");
	/* Control characters over the wire. */
	for (size_t i = 0; i < sizeof control_names / sizeof control_names[0]; i++) {
		put_one(h, 10 + (uint32_t)i, control_names[i], strlen(control_names[i]));
		expect_refused(h, "presets[0].name", "control character");
	}
	assert_int_equal(h->pen.stores, stores);

	/* A good name still goes through, byte for byte. */
	static const char good[] = "D\xc3\xa9" "collet\xc3\xa9 \xe2\x9c\x93";
	put_one(h, 30, good, sizeof good - 1);
	assert_int_equal(h->last->body_case, PL__ENVELOPE__BODY_PRESET_SET);
	assert_int_equal(h->pen.stores, stores + 1);
	assert_int_equal(h->pen.npresets, 1);
	assert_string_equal(h->pen.presets[0].name, good);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_terminal_and_log),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_csv),
	    cmocka_unit_test(test_filename),
	    cmocka_unit_test(test_library_refuses_control_names),
	    cmocka_unit_test(test_policy_refuses_control_names),
	    cmocka_unit_test(test_fw_validate_refuses_control_names),
	    cmocka_unit_test_setup_teardown(test_fw_endpoint_measures_names_on_the_wire,
	                                    host_setup, host_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
