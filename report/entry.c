/* One session's facts (struct pl_report_entry) from the record JSON, the
 * one model every output of this component reads. */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "report_int.h"

void pl_report_entry_clear(struct pl_report_entry *e)
{
	if (!e)
		return;
	free(e->serial);
	free(e->fw_version);
	free(e->preset_name);
	free(e->cart_lot);
	free(e->cart_uid);
	free(e->events);
	for (size_t i = 0; i < e->n_annotations; i++) {
		free(e->annotations[i].client_ref);
		free(e->annotations[i].operator_name);
		free(e->annotations[i].note);
	}
	free(e->annotations);
	memset(e, 0, sizeof *e);
}

void pl_report_entries_free(struct pl_report_entry *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		pl_report_entry_clear(&v[i]);
	free(v);
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;
	if (o && json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, key, &v) && !json_object_is_type(v, json_type_null))
		return v;
	return NULL;
}

static int64_t get_i64(json_object *o, const char *key)
{
	json_object *v = get(o, key);
	return v ? json_object_get_int64(v) : 0;
}

static uint32_t get_u32(json_object *o, const char *key)
{
	int64_t v = get_i64(o, key);
	return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* A string member, copied (NULL when absent or not a string); *oom set
 * when the copy failed. */
static char *get_str(json_object *o, const char *key, bool *oom)
{
	json_object *v = get(o, key);
	if (!v || !json_object_is_type(v, json_type_string))
		return NULL;
	char *s = strdup(json_object_get_string(v));
	if (!s)
		*oom = true;
	return s;
}

/* The array member key (*arr; NULL when absent or not an array) and a
 * zeroed vector of as many elements of size bytes, their count in *n
 * (NULL and 0 when absent; *oom set when the vector could not be had). */
static void *get_array(json_object *o, const char *key, size_t size,
                       json_object **arr, size_t *n, bool *oom)
{
	json_object *a = get(o, key);
	*arr = NULL;
	*n = 0;
	if (!a || !json_object_is_type(a, json_type_array))
		return NULL;
	size_t len = json_object_array_length(a);
	void *v = calloc(len ? len : 1, size);
	if (!v) {
		*oom = true;
		return NULL;
	}
	*arr = a;
	*n = len;
	return v;
}

static bool hex_bytes(const char *hex, uint8_t *out, size_t n)
{
	if (!hex || strlen(hex) != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char ch = hex[2 * i + (size_t)k];
			v <<= 4;
			if (ch >= '0' && ch <= '9')
				v |= (unsigned)(ch - '0');
			else if (ch >= 'a' && ch <= 'f')
				v |= (unsigned)(ch - 'a' + 10);
			else if (ch >= 'A' && ch <= 'F')
				v |= (unsigned)(ch - 'A' + 10);
			else
				return false;
		}
		out[i] = (uint8_t)v;
	}
	return true;
}

static bool uuid_bytes(const char *text, uint8_t out[16])
{
	char hex[33];
	size_t n = 0;
	if (!text || strlen(text) != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (text[i] != '-')
				return false;
			continue;
		}
		hex[n++] = text[i];
	}
	hex[n] = '\0';
	return hex_bytes(hex, out, 16);
}

/* The EventKind number of a JSON kind name ("depth_change"), -1 if this
 * build names none so. */
static int kind_number(const char *name)
{
	for (int k = 0; k < 64; k++) {
		const char *n = pl_record_event_kind_name(k);
		if (n && name && strcmp(n, name) == 0)
			return k;
	}
	return -1;
}

bool rp_on_calendar(int64_t utc_ms)
{
	return utc_ms >= 0 && utc_ms <= RP_CALENDAR_END_MS;
}

bool rp_entry_dated(const struct pl_report_entry *e)
{
	return e->rtc && rp_on_calendar(e->start_ms);
}

static int from_object(json_object *root, struct pl_report_entry *out)
{
	bool oom = false;
	memset(out, 0, sizeof *out);
	if (!root || !json_object_is_type(root, json_type_object))
		return pl_error_set(PL_ERR_PARSE, "a session is not a JSON object");
	json_object *u = get(root, "uuid");
	if (!u || !uuid_bytes(json_object_get_string(u), out->uuid))
		return pl_error_set(PL_ERR_PARSE, "a session has no valid \"uuid\"");
	out->serial = get_str(root, "serial", &oom);
	out->seq = get_u32(root, "seq");
	out->fw_version = get_str(root, "fw_version", &oom);
	out->start_ms = get_i64(root, "start_utc_ms");
	out->end_ms = get_i64(root, "end_utc_ms");
	json_object *ts = get(root, "time_source");
	out->rtc = ts && strcmp(json_object_get_string(ts), "rtc") == 0;

	json_object *p = get(root, "preset");
	out->preset_id = get_u32(p, "id");
	out->preset_name = get_str(p, "name", &oom);
	out->preset_depth_um = get_u32(p, "depth_um");
	out->preset_speed = get_u32(p, "speed_level");
	out->preset_area = -1;
	json_object *area = get(p, "area");
	if (area) {
		int a = pl_area_from_name(json_object_get_string(area));
		out->preset_area = a >= 0 ? a : -1;
	}
	out->preset_needles = get_u32(p, "needle_count");
	out->preset_max_duration_s = get_u32(p, "max_duration_s");
	out->preset_revision = get_u32(root, "preset_revision");

	json_object *c = get(root, "cartridge");
	out->cart_needles = get_u32(c, "needle_count");
	out->cart_length_um = get_u32(c, "needle_length_um");
	out->cart_lot = get_str(c, "lot", &oom);
	out->cart_uid = get_str(c, "uid", &oom);

	json_object *s = get(root, "summary");
	out->run_time_s = get_u32(s, "run_time_s");
	int64_t strokes = get_i64(s, "strokes");
	out->strokes = strokes < 0 ? 0 : (uint64_t)strokes;
	out->max_depth_um = get_u32(s, "max_depth_um");
	out->errors = get_u32(s, "errors");

	json_object *ev;
	out->events = get_array(root, "events", sizeof *out->events, &ev,
	                        &out->n_events, &oom);
	for (size_t i = 0; i < out->n_events; i++) {
		json_object *e = json_object_array_get_idx(ev, i);
		json_object *k = get(e, "kind");
		out->events[i].offset_ms = get_u32(e, "offset_ms");
		out->events[i].kind = k ? kind_number(json_object_get_string(k)) : -1;
		int64_t v = get_i64(e, "value");
		out->events[i].value = v < INT32_MIN ? INT32_MIN
		                       : v > INT32_MAX ? INT32_MAX
		                                       : (int32_t)v;
	}

	json_object *sha = get(root, "sha256");
	if (sha && hex_bytes(json_object_get_string(sha), out->sha256, 32))
		out->have_sha256 = true;
	out->archived_ms = get_i64(root, "archived_utc_ms");

	/* Annotations (penctl sessions annotate), when the export carries
	 * them. */
	json_object *an;
	out->annotations = get_array(root, "annotations", sizeof *out->annotations,
	                             &an, &out->n_annotations, &oom);
	for (size_t i = 0; i < out->n_annotations; i++) {
		json_object *a = json_object_array_get_idx(an, i);
		struct pl_report_annotation *d = &out->annotations[i];
		d->utc_ms = get_i64(a, "utc_ms");
		if (!d->utc_ms)
			d->utc_ms = get_i64(a, "added_utc_ms");
		d->client_ref = get_str(a, "client", &oom);
		if (!d->client_ref)
			d->client_ref = get_str(a, "client_ref", &oom);
		d->operator_name = get_str(a, "operator", &oom);
		d->note = get_str(a, "note", &oom);
	}
	if (oom) {
		pl_report_entry_clear(out);
		return pl_error_set(PL_ERR_MEM, "out of memory reading a session");
	}
	return PL_OK;
}

/* len bytes of JSON as a tree in *root; a parse error says why. */
static int parse(const char *json, size_t len, const char *why,
                 json_object **root)
{
	json_tokener *tok = json_tokener_new_ex(64);
	if (!tok)
		return pl_error_set(PL_ERR_MEM, "out of memory");
	*root = json_tokener_parse_ex(tok, json, (int)len);
	json_tokener_free(tok);
	return *root ? PL_OK : pl_error_set(PL_ERR_PARSE, "%s", why);
}

int pl_report_entry_from_json(const char *json, size_t len,
                              struct pl_report_entry *out)
{
	if (!json || !out)
		return pl_error_set(PL_ERR_ARG, "pl_report_entry_from_json: missing argument");
	json_object *root;
	int rc = parse(json, len, "a session is not valid JSON", &root);
	if (rc != PL_OK)
		return rc;
	rc = from_object(root, out);
	json_object_put(root);
	return rc;
}

int pl_report_entry_from_record(const struct pl_record *r,
                                struct pl_report_entry *out)
{
	if (!r || !out)
		return pl_error_set(PL_ERR_ARG, "pl_report_entry_from_record: missing argument");
	char *text = pl_record_to_json(r, false);
	if (!text)
		return pl_error_set(PL_ERR_MEM, "out of memory");
	int rc = pl_report_entry_from_json(text, strlen(text), out);
	free(text);
	return rc;
}

int pl_report_entries_from_json_array(const char *json, size_t len,
                                      struct pl_report_entry **out, size_t *n)
{
	if (!json || !out || !n)
		return pl_error_set(PL_ERR_ARG, "pl_report_entries_from_json_array: missing argument");
	*out = NULL;
	*n = 0;
	static const char not_array[] = "the export is not a JSON array";
	json_object *root;
	int rc = parse(json, len, not_array, &root);
	if (rc != PL_OK)
		return rc;
	if (!json_object_is_type(root, json_type_array)) {
		json_object_put(root);
		return pl_error_set(PL_ERR_PARSE, "%s", not_array);
	}
	size_t count = json_object_array_length(root);
	struct pl_report_entry *v = calloc(count ? count : 1, sizeof *v);
	if (!v) {
		json_object_put(root);
		return pl_error_set(PL_ERR_MEM, "out of memory");
	}
	size_t k = 0;
	for (; k < count && rc == PL_OK; k++)
		rc = from_object(json_object_array_get_idx(root, k), &v[k]);
	json_object_put(root);
	if (rc != PL_OK) {
		pl_report_entries_free(v, k - 1);
		return rc;
	}
	*out = v;
	*n = count;
	return PL_OK;
}

const char *pl_report_event_label(int kind, char buf[32])
{
	const char *n = kind >= 0 ? pl_record_event_kind_name(kind) : NULL;
	if (!n) {
		snprintf(buf, 32, "kind %d", kind);
		return buf;
	}
	snprintf(buf, 32, "%s", n);
	for (char *q = buf; *q; q++)
		if (*q == '_')
			*q = ' ';
	return buf;
}
