/* Preset-set files: JSON with depths in millimetres, converted to whole
 * micrometres exactly (decimal text, never through a double). */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "internal.h"

#define DEPTH_MAX_UM 10000u /* no pen goes deeper; catches cm/um mix-ups */
#define SPEED_MAX 16
#define NEEDLES_MAX 100

/* ------------------------------------------------------------------ depth */

/* Writes the reason into err (no path) and returns PL_ERR_PARSE. */
static int depth_from_text(const char *text, uint32_t *um, char *err, size_t cap)
{
	const char *s = text;
	while (isspace((unsigned char)*s))
		s++;
	size_t len = strlen(s);
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	if (len && s[0] == '-') {
		snprintf(err, cap, "depth %.*s mm is negative", (int)(len > 20 ? 20 : len), s);
		return PL_ERR_PARSE;
	}
	uint32_t whole = 0, frac = 0;
	unsigned ndig = 0, nfrac = 0;
	bool dot = false, extra = false;
	size_t i = 0;
	for (; i < len; i++) {
		char c = s[i];
		if (c == '.' && !dot) {
			dot = true;
		} else if (c >= '0' && c <= '9') {
			ndig++;
			if (!dot) {
				if (whole <= DEPTH_MAX_UM)
					whole = whole * 10 + (uint32_t)(c - '0');
			} else if (nfrac < 3) {
				frac = frac * 10 + (uint32_t)(c - '0');
				nfrac++;
			} else if (c != '0') {
				extra = true;
			}
		} else {
			break;
		}
	}
	if (i < len || ndig == 0) {
		snprintf(err, cap,
		         "\"%.*s\" is not a depth in millimetres; write a plain "
		         "decimal such as 0.25",
		         (int)(len > 20 ? 20 : len), s);
		return PL_ERR_PARSE;
	}
	if (extra) {
		snprintf(err, cap,
		         "depth %.*s mm has more than 3 decimals; depths are whole "
		         "micrometres",
		         (int)(len > 20 ? 20 : len), s);
		return PL_ERR_PARSE;
	}
	while (nfrac < 3) {
		frac *= 10;
		nfrac++;
	}
	if (whole > DEPTH_MAX_UM / 1000 || whole * 1000 + frac > DEPTH_MAX_UM) {
		snprintf(err, cap, "depth %.*s mm is above %u mm",
		         (int)(len > 20 ? 20 : len), s, DEPTH_MAX_UM / 1000);
		return PL_ERR_PARSE;
	}
	*um = whole * 1000 + frac;
	return PL_OK;
}

int pl_depth_parse_mm(const char *text, uint32_t *um)
{
	if (!text || !um)
		return pl__fail(PL_ERR_ARG, "pl_depth_parse_mm: missing argument");
	char err[160];
	int rc = depth_from_text(text, um, err, sizeof err);
	return rc ? pl__fail(rc, "%s", err) : PL_OK;
}

/* ------------------------------------------------------------------ reading */

static const char *type_word(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_int:
	case json_type_double:
		return "number";
	case json_type_string:
		return "string";
	case json_type_boolean:
		return "true/false";
	case json_type_array:
		return "array";
	case json_type_object:
		return "object";
	default:
		return "null";
	}
}

static int get_uint(struct json_object *v, const char *path, int64_t min,
                    int64_t max, uint32_t *out)
{
	if (!json_object_is_type(v, json_type_int))
		return pl__fail(PL_ERR_PARSE, "%s: expected a whole number, got %s%s%s",
		                path, type_word(v),
		                json_object_is_type(v, json_type_double) ? " " : "",
		                json_object_is_type(v, json_type_double)
		                    ? json_object_get_string(v) : "");
	int64_t x = json_object_get_int64(v);
	if (x < min || x > max)
		return pl__fail(PL_ERR_PARSE, "%s: %s is out of range %lld..%lld", path,
		                json_object_get_string(v), (long long)min, (long long)max);
	*out = (uint32_t)x;
	return PL_OK;
}

static int get_name(struct json_object *v, const char *path, char *out)
{
	if (!json_object_is_type(v, json_type_string))
		return pl__fail(PL_ERR_PARSE, "%s: expected a string, got %s", path,
		                type_word(v));
	const char *s = json_object_get_string(v);
	size_t len = (size_t)json_object_get_string_len(v);
	if (len > PL_PRESET_NAME_MAX)
		return pl__fail(PL_ERR_PARSE, "%s: name is %zu bytes; at most %d", path,
		                len, PL_PRESET_NAME_MAX);
	if (len == 0)
		return pl__fail(PL_ERR_PARSE, "%s: name is empty", path);
	if (!pl_text_utf8_valid(s, len))
		return pl__fail(PL_ERR_PARSE, "%s: name is not valid UTF-8", path);
	memcpy(out, s, len);
	out[len] = 0;
	return PL_OK;
}

static int get_depth(struct json_object *v, const char *path, uint32_t *um)
{
	if (!json_object_is_type(v, json_type_int) &&
	    !json_object_is_type(v, json_type_double) &&
	    !json_object_is_type(v, json_type_string))
		return pl__fail(PL_ERR_PARSE, "%s: expected a number, got %s", path,
		                type_word(v));
	/* json-c keeps a parsed number's original text, so "0.1" stays 0.1
	 * and never becomes 0.1000000000000000055. */
	char err[160];
	int rc = depth_from_text(json_object_get_string(v), um, err, sizeof err);
	return rc ? pl__fail(rc, "%s: %s", path, err) : PL_OK;
}

static int get_area(struct json_object *v, const char *path, enum pl_area *out)
{
	if (!json_object_is_type(v, json_type_string))
		return pl__fail(PL_ERR_PARSE, "%s: expected an area name, got %s", path,
		                type_word(v));
	int a = pl_area_from_name(json_object_get_string(v));
	if (a < 0) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s", pl_error_message());
		return pl__fail(PL_ERR_PARSE, "%s: %s", path, msg);
	}
	*out = (enum pl_area)a;
	return PL_OK;
}

static const char *const preset_keys =
    "id, name, depth_mm, speed, area, needles, max_duration_s";

static int parse_preset(struct json_object *o, size_t idx, struct pl_preset *p)
{
	char base[32], path[64];
	snprintf(base, sizeof base, "presets[%zu]", idx);
	if (!json_object_is_type(o, json_type_object))
		return pl__fail(PL_ERR_PARSE, "%s: expected an object, got %s", base,
		                type_word(o));
	memset(p, 0, sizeof *p);
	/* "area" is optional in files; a preset without one is "other". */
	p->area = PL_AREA_OTHER;
	unsigned seen = 0;
	int rc = PL_OK;
	json_object_object_foreach(o, key, v) {
		snprintf(path, sizeof path, "%s.%s", base, key);
		if (!strcmp(key, "id"))
			rc = get_uint(v, path, 1, PL_MAX_PRESETS, &p->id), seen |= 1;
		else if (!strcmp(key, "name"))
			rc = get_name(v, path, p->name), seen |= 2;
		else if (!strcmp(key, "depth_mm"))
			rc = get_depth(v, path, &p->depth_um), seen |= 4;
		else if (!strcmp(key, "speed"))
			rc = get_uint(v, path, 1, SPEED_MAX, &p->speed_level), seen |= 8;
		else if (!strcmp(key, "area"))
			rc = get_area(v, path, &p->area);
		else if (!strcmp(key, "needles"))
			rc = get_uint(v, path, 0, NEEDLES_MAX, &p->needle_count);
		else if (!strcmp(key, "max_duration_s"))
			rc = get_uint(v, path, 0, UINT32_MAX, &p->max_duration_s);
		else
			rc = pl__fail(PL_ERR_PARSE, "%s: unknown key \"%.40s\"; known keys: %s",
			              base, key, preset_keys);
		if (rc)
			return rc;
	}
	static const char *const required[] = {"id", "name", "depth_mm", "speed"};
	for (unsigned k = 0; k < 4; k++)
		if (!(seen & (1u << k)))
			return pl__fail(PL_ERR_PARSE, "%s: \"%s\" is missing", base,
			                required[k]);
	return PL_OK;
}

static int parse_top(struct json_object *top, struct pl_preset_set *out)
{
	if (!json_object_is_type(top, json_type_object))
		return pl__fail(PL_ERR_PARSE,
		                "expected an object {\"presets\": [...]}, got %s",
		                type_word(top));
	struct json_object *arr = NULL;
	json_object_object_foreach(top, key, v) {
		if (!strcmp(key, "presets"))
			arr = v;
		else if (strcmp(key, "revision")) /* written by to_json; ignored */
			return pl__fail(PL_ERR_PARSE,
			                "unknown key \"%.40s\" at the top; expected \"presets\"",
			                key);
	}
	if (!arr)
		return pl__fail(PL_ERR_PARSE, "\"presets\" is missing");
	if (!json_object_is_type(arr, json_type_array))
		return pl__fail(PL_ERR_PARSE, "presets: expected an array, got %s",
		                type_word(arr));
	size_t n = json_object_array_length(arr);
	if (n > PL_MAX_PRESETS)
		return pl__fail(PL_ERR_PARSE, "presets: %zu presets; at most %d", n,
		                PL_MAX_PRESETS);
	for (size_t i = 0; i < n; i++) {
		int rc = parse_preset(json_object_array_get_idx(arr, i), i,
		                      &out->presets[i]);
		if (rc)
			return rc;
	}
	out->count = n;
	return PL_OK;
}

static int syntax_error(const char *text, size_t pos, const char *what)
{
	unsigned line = 1, col = 1;
	for (size_t i = 0; i < pos && text[i]; i++) {
		if (text[i] == '\n')
			line++, col = 1;
		else
			col++;
	}
	return pl__fail(PL_ERR_PARSE, "line %u, column %u: %s", line, col, what);
}

int pl_preset_set_from_json(const char *text, struct pl_preset_set *out)
{
	if (!text || !out)
		return pl__fail(PL_ERR_ARG, "pl_preset_set_from_json: missing argument");
	size_t len = strlen(text);
	if (len >= INT_MAX)
		return pl__fail(PL_ERR_PARSE, "the preset file is too large");
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return pl__fail(PL_ERR_MEM, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	/* Length includes the NUL: tells json-c the input ends here. */
	struct json_object *top = json_tokener_parse_ex(tok, text, (int)len + 1);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	int rc;
	if (!top || jerr != json_tokener_success) {
		size_t pos = json_tokener_get_parse_end(tok);
		rc = syntax_error(text, pos > len ? len : pos,
		                  jerr == json_tokener_continue || pos >= len
		                      ? "the file ends in the middle of the JSON"
		                      : json_tokener_error_desc(jerr));
	} else {
		memset(out, 0, sizeof *out);
		rc = parse_top(top, out);
		if (rc)
			memset(out, 0, sizeof *out);
	}
	json_object_put(top);
	json_tokener_free(tok);
	return rc;
}

/* ------------------------------------------------------------------ writing */

static int add(struct json_object *o, const char *key, struct json_object *v)
{
	if (!v || json_object_object_add(o, key, v)) {
		json_object_put(v);
		return PL_ERR_MEM;
	}
	return PL_OK;
}

static struct json_object *preset_json(const struct pl_preset *p)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	char depth[PL_MM_TEXT_MAX];
	pl_depth_format_mm(p->depth_um, PL_MM_SHORT, depth);
	size_t nlen = strnlen(p->name, sizeof p->name);
	const char *area = p->area != PL_AREA_UNSPECIFIED ? pl_area_name(p->area) : NULL;
	int rc = add(o, "id", json_object_new_int64(p->id));
	rc = rc ? rc : add(o, "name", json_object_new_string_len(p->name, (int)nlen));
	rc = rc ? rc : add(o, "depth_mm", json_object_new_double_s(p->depth_um / 1000.0, depth));
	rc = rc ? rc : add(o, "speed", json_object_new_int64(p->speed_level));
	if (!rc && area)
		rc = add(o, "area", json_object_new_string(area));
	rc = rc ? rc : add(o, "needles", json_object_new_int64(p->needle_count));
	rc = rc ? rc : add(o, "max_duration_s", json_object_new_int64(p->max_duration_s));
	if (rc) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

char *pl_preset_set_to_json(const struct pl_preset_set *set)
{
	if (!set || set->count > PL_MAX_PRESETS) {
		pl__fail(PL_ERR_ARG, "pl_preset_set_to_json: invalid preset set");
		return NULL;
	}
	char *res = NULL;
	struct json_object *top = json_object_new_object();
	struct json_object *arr = json_object_new_array();
	int rc = top && arr ? PL_OK : PL_ERR_MEM;
	if (!rc && set->revision)
		rc = add(top, "revision", json_object_new_int64(set->revision));
	for (size_t i = 0; !rc && i < set->count; i++) {
		struct json_object *p = preset_json(&set->presets[i]);
		if (!p || json_object_array_add(arr, p)) {
			json_object_put(p);
			rc = PL_ERR_MEM;
		}
	}
	if (!rc) {
		rc = add(top, "presets", arr);
		arr = NULL; /* owned by top now, or freed by add() */
	}
	if (!rc) {
		const char *s = json_object_to_json_string_ext(
		    top, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
		             JSON_C_TO_STRING_NOSLASHESCAPE);
		res = s ? strdup(s) : NULL;
	}
	json_object_put(arr);
	json_object_put(top);
	if (!res)
		pl__fail(PL_ERR_MEM, "out of memory writing presets as JSON");
	return res;
}
