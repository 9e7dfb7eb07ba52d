/*
 * fuzz_text: pl_text_clean for every output (lib/src/text.c), the UTF-8
 * check beside it, and the session names built on it (units.c).
 *
 * Input: [cap][text...] - the text is the rest of the input up to its
 * first NUL (C strings end there); cap sizes one cut-short call.
 * Invariants, on every output:
 *  - PL_TEXT_TERMINAL and PL_TEXT_LOG: strict UTF-8, no control byte (C0,
 *    DEL) and no C1, no direction override (U+200E-F, U+2028-E, U+2066-9);
 *  - PL_TEXT_JSON: strict UTF-8 without DEL, C1 or overrides; as a json-c
 *    string value it serialises to a document that a strict, UTF-8
 *    validating parser reads back to the same text;
 *  - PL_TEXT_CSV: as TERMINAL, and never starting with = + - @ (a tab or
 *    CR cannot appear raw at all): a formula always gets its apostrophe;
 *  - PL_TEXT_FILENAME: only A-Z a-z 0-9 - _ . , never empty, never
 *    starting with '-' or '.', one output byte per input byte;
 *  - text that needs no cleaning (strict UTF-8, printable, no override)
 *    comes out unchanged for TERMINAL, LOG and JSON;
 *  - the measure (cap 0) equals the length written; a cut output is a
 *    NUL-terminated prefix of the whole one, strict UTF-8 (never a cut
 *    character or escape);
 *  - pl_text_utf8_valid agrees with an independent strict decoder;
 *  - pl_session_file_name of the text as a serial is a safe file name.
 */
#include "fuzz_common.h"

#include <json-c/json.h>

#include "penlink.h"

#define MAX_TEXT 4096u

/* Length of the strict UTF-8 sequence at s (left bytes, left >= 1) and its
 * code point; 0 if there is none.  Written apart from text.c on purpose. */
static size_t ref_seq(const uint8_t *s, size_t left, uint32_t *cp)
{
	static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
	size_t n;
	if (s[0] == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0)
		n = 2, *cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3, *cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 4, *cp = s[0] & 0x07;
	else
		return 0;
	if (left < n)
		return 0;
	for (size_t k = 1; k < n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (s[k] & 0x3f);
	}
	if (*cp < min[n - 1] || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return n;
}

static bool ref_valid(const uint8_t *s, size_t len)
{
	uint32_t cp;
	for (size_t i = 0; i < len;) {
		size_t n = ref_seq(s + i, len - i, &cp);
		if (!n)
			return false;
		i += n;
	}
	return true;
}

static bool is_override(uint32_t cp)
{
	return cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* Strict UTF-8 none of whose code points is bad(). */
static bool all_chars(const char *s, bool (*bad)(uint32_t))
{
	const uint8_t *p = (const uint8_t *)s;
	size_t len = strlen(s);
	uint32_t cp;
	for (size_t i = 0; i < len;) {
		size_t n = ref_seq(p + i, len - i, &cp);
		if (!n || bad(cp))
			return false;
		i += n;
	}
	return true;
}

static bool bad_for_terminal(uint32_t cp)
{
	return is_control(cp) || is_override(cp);
}

/* C0 is left to the JSON writer to escape; the rest must be gone. */
static bool bad_for_json(uint32_t cp)
{
	return (cp >= 0x7f && cp <= 0x9f) || is_override(cp);
}

static const char *target_name(enum pl_text_target t)
{
	static const char *const n[] = {"TERMINAL", "LOG", "JSON", "CSV",
	                                "FILENAME"};
	return (size_t)t < sizeof n / sizeof n[0] ? n[t] : "?";
}

static void check_json(const char *clean)
{
	json_object *o = json_object_new_string(clean);
	FUZZ_CHECK(o, "json-c could not take %zu bytes", strlen(clean));
	const char *doc = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	size_t dlen = strlen(doc);
	FUZZ_CHECK(ref_valid((const uint8_t *)doc, dlen), "JSON document is not UTF-8");
	for (size_t i = 0; i < dlen; i++)
		FUZZ_CHECK((uint8_t)doc[i] >= 0x20, "raw control byte 0x%02x in JSON",
		           (uint8_t)doc[i]);
	json_tokener *tok = json_tokener_new();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *back = json_tokener_parse_ex(tok, doc, (int)dlen + 1);
	FUZZ_CHECK(back && json_object_is_type(back, json_type_string),
	           "strict parser refused %s", doc);
	FUZZ_CHECK(strcmp(json_object_get_string(back), clean) == 0,
	           "JSON string did not read back the same");
	json_object_put(back);
	json_tokener_free(tok);
	json_object_put(o);
}

static bool safe_filename(const char *s)
{
	if (!s[0] || s[0] == '-' || s[0] == '.')
		return false;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static void check_target(enum pl_text_target t, const char *text, size_t len,
                         size_t cap)
{
	size_t need = pl_text_clean(t, text, NULL, 0);
	char *out = malloc(need + 1);
	FUZZ_CHECK(out, "out of memory");
	size_t got = pl_text_clean(t, text, out, need + 1);
	FUZZ_CHECK(got == need && strlen(out) == need,
	           "%s: measured %zu, returned %zu, wrote %zu", target_name(t), need,
	           got, strlen(out));

	/* Cut short: a prefix, terminated, on a character boundary. */
	char *cut = malloc(cap + 1);
	FUZZ_CHECK(cut, "out of memory");
	memset(cut, 0x55, cap + 1);
	if (cap) {
		size_t r = pl_text_clean(t, text, cut, cap);
		size_t cl = strnlen(cut, cap);
		FUZZ_CHECK(r == need, "%s: cut call returned %zu, not %zu", target_name(t), r, need);
		FUZZ_CHECK(cl < cap, "%s: cut output not terminated", target_name(t));
		FUZZ_CHECK(memcmp(cut, out, cl) == 0, "%s: cut output is not a prefix",
		           target_name(t));
		FUZZ_CHECK(cl == need || need >= cap, "%s: cut %zu of %zu with cap %zu",
		           target_name(t), cl, need, cap);
		FUZZ_CHECK(ref_valid((const uint8_t *)cut, cl), "%s: cut mid-character",
		           target_name(t));
		/* No escape cut in two either: what is kept is as clean as
		 * the whole. */
		if (t == PL_TEXT_TERMINAL || t == PL_TEXT_LOG || t == PL_TEXT_CSV)
			FUZZ_CHECK(all_chars(cut, bad_for_terminal),
			           "%s: cut output not printable", target_name(t));
		else if (t == PL_TEXT_JSON)
			FUZZ_CHECK(all_chars(cut, bad_for_json), "JSON: cut output unclean");
	}
	FUZZ_CHECK(cut[cap] == 0x55, "%s: wrote past cap %zu", target_name(t), cap);
	free(cut);

	bool plain = ref_valid((const uint8_t *)text, len) &&
	             all_chars(text, bad_for_terminal);
	switch (t) {
	case PL_TEXT_TERMINAL:
	case PL_TEXT_LOG:
		FUZZ_CHECK(all_chars(out, bad_for_terminal),
		           "%s: control, C1, override or bad UTF-8 in output", target_name(t));
		FUZZ_CHECK(!plain || strcmp(out, text) == 0, "%s: clean text changed",
		           target_name(t));
		break;
	case PL_TEXT_JSON:
		FUZZ_CHECK(all_chars(out, bad_for_json), "JSON: DEL, C1, override or bad UTF-8");
		FUZZ_CHECK(!plain || strcmp(out, text) == 0, "JSON: clean text changed");
		check_json(out);
		break;
	case PL_TEXT_CSV:
		FUZZ_CHECK(all_chars(out, bad_for_terminal),
		           "CSV: control, C1, override or bad UTF-8 in output");
		FUZZ_CHECK(!strchr("=+-@\t\r", out[0]) || out[0] == '\0',
		           "CSV: cell starts with formula character '%c'", out[0]);
		if (strchr("=+-@\t\r", text[0]) && text[0])
			FUZZ_CHECK(out[0] == '\'', "CSV: formula without its apostrophe");
		break;
	case PL_TEXT_FILENAME:
		FUZZ_CHECK(safe_filename(out), "FILENAME: unsafe name \"%s\"", out);
		FUZZ_CHECK(need == (len ? len : 1), "FILENAME: %zu bytes for %zu", need, len);
		break;
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	size_t cap = fuzz_u8(&in);
	size_t n = in.left < MAX_TEXT ? in.left : MAX_TEXT;
	char *text = malloc(n + 1);
	if (!text)
		return 0;
	memcpy(text, in.p, n);
	text[n] = '\0';
	size_t len = strlen(text);

	FUZZ_CHECK(pl_text_utf8_valid(text, len) == ref_valid(in.p, len),
	           "pl_text_utf8_valid disagrees with the reference on %zu bytes", len);
	/* With NULs inside the length (the wire's length, not strlen's). */
	FUZZ_CHECK(pl_text_utf8_valid((const char *)in.p, n) == ref_valid(in.p, n),
	           "pl_text_utf8_valid disagrees on %zu bytes with NULs", n);

	for (int t = PL_TEXT_TERMINAL; t <= PL_TEXT_FILENAME; t++)
		check_target((enum pl_text_target)t, text, len, cap);
	/* An unknown target cleans as TERMINAL. */
	char *unk = pl_text_clean_dup((enum pl_text_target)99, text);
	char *term = pl_text_clean_dup(PL_TEXT_TERMINAL, text);
	FUZZ_CHECK(unk && term && strcmp(unk, term) == 0, "unknown target is not TERMINAL");
	free(unk);
	free(term);

	/* The text as a pen's serial, in a pulled record's file name. */
	struct pl_session_key key;
	memset(&key, 0, sizeof key);
	memcpy(key.serial, text, len < sizeof key.serial - 1 ? len : sizeof key.serial - 1);
	char name[256];
	size_t need = pl_session_file_name(&key, 7, name, sizeof name);
	FUZZ_CHECK(need < sizeof name, "file name of %zu bytes", need);
	FUZZ_CHECK(safe_filename(name), "unsafe record file name \"%s\"", name);
	free(text);
	return 0;
}
