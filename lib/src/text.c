/* Untrusted text — from pens, clients and files — made safe for the place it
 * goes.  Every output of penlink cleans here, so a hostile serial or trace
 * line is handled the same way in a table, a log line, JSON, CSV and a file
 * name (penlink.h, "untrusted text"). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Code point and length of the strict UTF-8 sequence at s (at most left
 * bytes); 0 when it is not one (NUL included: C strings end there). */
static size_t utf8_seq(const unsigned char *s, size_t left, uint32_t *cp_out)
{
	unsigned c = s[0];
	size_t n;
	uint32_t cp, min;

	if (c > 0 && c < 0x80) {
		*cp_out = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		n = 1, cp = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		n = 2, cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 3, cp = c & 0x07, min = 0x10000;
	else
		return 0; /* NUL, continuation byte, overlong lead, > U+10FFFF */
	if (left - 1 < n)
		return 0;
	for (size_t k = 1; k <= n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_out = cp;
	return n + 1;
}

bool pl_text_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	uint32_t cp;

	if (!s)
		return len == 0;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(s + i, len - i, &cp);
		if (!n)
			return false;
		i += n;
	}
	return true;
}

/* C0, DEL and C1: never printed raw anywhere. */
static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* Invisible characters that reorder or break what a reader sees (the
 * "Trojan source" overrides, line and paragraph separators). */
static bool is_invisible_override(uint32_t cp)
{
	return cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

static bool is_filename_byte(unsigned char c, size_t at)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '_' ||
	       /* not first: no option ("-rf"), no hidden file, no ".." */
	       ((c == '-' || c == '.') && at > 0);
}

/* Appends whole pieces to out while they fit with room for the NUL (so a
 * character or an escape is never cut); counts every piece. */
struct sink {
	char *out;
	size_t cap, len, kept;
	bool full;
};

static void put(struct sink *k, const char *s, size_t len)
{
	if (!k->full && k->kept + len < k->cap) {
		memcpy(k->out + k->kept, s, len);
		k->kept += len;
	} else {
		k->full = true;
	}
	k->len += len;
}

static void put_escape(struct sink *k, uint32_t cp)
{
	static const char hex[] = "0123456789abcdef";
	char e[6];
	if (cp < 0x100) {
		e[0] = '\\', e[1] = 'x', e[2] = hex[cp >> 4], e[3] = hex[cp & 15];
		put(k, e, 4);
	} else {
		e[0] = '\\', e[1] = 'u', e[2] = hex[(cp >> 12) & 15],
		e[3] = hex[(cp >> 8) & 15], e[4] = hex[(cp >> 4) & 15],
		e[5] = hex[cp & 15];
		put(k, e, 6);
	}
}

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

static bool starts_formula(const char *s)
{
	return s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' ||
	       s[0] == '\t' || s[0] == '\r';
}

size_t pl_text_clean(enum pl_text_target target, const char *text, char *out,
                     size_t cap)
{
	const unsigned char *s = (const unsigned char *)(text ? text : "");
	size_t len = strlen((const char *)s);
	struct sink k = {out, out ? cap : 0, 0, 0, false};

	if (target == PL_TEXT_FILENAME) {
		for (size_t i = 0; i < len; i++) {
			char c = is_filename_byte(s[i], i) ? (char)s[i] : '_';
			put(&k, &c, 1);
		}
		if (len == 0)
			put(&k, "_", 1);
	} else {
		if (target == PL_TEXT_CSV && starts_formula((const char *)s))
			put(&k, "'", 1);
		for (size_t i = 0; i < len;) {
			uint32_t cp;
			size_t n = utf8_seq(s + i, len - i, &cp);
			if (!n) {
				put(&k, replacement, 3);
				i++;
				continue;
			}
			bool hidden = is_control(cp) || is_invisible_override(cp);
			if (!hidden || (target == PL_TEXT_JSON && cp < 0x20))
				put(&k, (const char *)s + i, n);
			else if (target == PL_TEXT_JSON)
				put(&k, replacement, 3);
			else
				put_escape(&k, cp);
			i += n;
		}
	}
	if (out && cap)
		out[k.kept] = '\0';
	return k.len;
}

char *pl_text_clean_dup(enum pl_text_target target, const char *text)
{
	size_t need = pl_text_clean(target, text, NULL, 0);
	char *out = malloc(need + 1);
	if (!out) {
		pl__fail(PL_ERR_MEM, "out of memory for %zu bytes of text", need + 1);
		return NULL;
	}
	pl_text_clean(target, text, out, need + 1);
	return out;
}
