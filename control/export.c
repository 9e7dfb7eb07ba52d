/* The session export formats (penlink_export.h). */
#include "penlink_export.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <penlink.h>

/* ------------------------------------------------------------------ buffer */

void plc_buf_add(struct plc_buf *b, const void *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void plc_buf_str(struct plc_buf *b, const char *s)
{
	plc_buf_add(b, s, strlen(s));
}

void plc_buf_fmt(struct plc_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	char small[256];
	char *t = (size_t)n < sizeof small ? small : malloc((size_t)n + 1);
	if (!t) {
		b->oom = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(t, (size_t)n + 1, fmt, ap);
	va_end(ap);
	plc_buf_add(b, t, (size_t)n);
	if (t != small)
		free(t);
}

void plc_buf_free(struct plc_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------ derived */

/* obj.key1.key2 (key2 may be NULL); NULL if absent. */
static json_object *jget(json_object *o, const char *k1, const char *k2)
{
	json_object *v = NULL;
	if (!o || !json_object_object_get_ex(o, k1, &v))
		return NULL;
	if (k2 && (!v || !json_object_object_get_ex(v, k2, &v)))
		return NULL;
	return v;
}

static const char *jstr(json_object *v)
{
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
	                                                     : NULL;
}

static const char *event_kind(json_object *ev)
{
	return jstr(jget(ev, "kind", NULL));
}

/* What the events say beyond the summary: the time spent paused (a pause
 * lasts until the next resume or stop, or the end), the areas treated in
 * order (the preset's, then each area change's), and the error events. */
struct derived {
	uint64_t paused_ms;
	const char *areas[32];
	size_t n_areas;
	struct {
		int32_t code;
		uint32_t offset_ms;
	} errors[64];
	size_t n_errors, errors_left_out;
};

static void add_area(struct derived *d, const char *name)
{
	if (!name || !*name)
		return;
	for (size_t i = 0; i < d->n_areas; i++)
		if (strcmp(d->areas[i], name) == 0)
			return;
	if (d->n_areas < sizeof d->areas / sizeof d->areas[0])
		d->areas[d->n_areas++] = name;
}

static void derive(json_object *record, int64_t duration_ms, struct derived *d)
{
	memset(d, 0, sizeof *d);
	add_area(d, jstr(jget(record, "preset", "area")));
	json_object *evs = jget(record, "events", NULL);
	if (!evs || !json_object_is_type(evs, json_type_array))
		return;
	size_t n = json_object_array_length(evs);
	bool paused = false;
	uint64_t paused_at = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *ev = json_object_array_get_idx(evs, i);
		const char *kind = event_kind(ev);
		uint64_t at = (uint64_t)json_object_get_int64(jget(ev, "offset_ms", NULL));
		int64_t value = json_object_get_int64(jget(ev, "value", NULL));
		if (!kind)
			continue;
		if (strcmp(kind, "pause") == 0 && !paused) {
			paused = true;
			paused_at = at;
		} else if ((strcmp(kind, "resume") == 0 || strcmp(kind, "stop") == 0) &&
		           paused) {
			paused = false;
			d->paused_ms += at > paused_at ? at - paused_at : 0;
		} else if (strcmp(kind, "area_change") == 0) {
			add_area(d, pl_area_name((enum pl_area)value));
		} else if (strcmp(kind, "error") == 0) {
			if (d->n_errors < sizeof d->errors / sizeof d->errors[0]) {
				d->errors[d->n_errors].code = (int32_t)value;
				d->errors[d->n_errors].offset_ms = (uint32_t)at;
				d->n_errors++;
			} else {
				d->errors_left_out++;
			}
		}
	}
	if (paused && duration_ms > 0 && (uint64_t)duration_ms > paused_at)
		d->paused_ms += (uint64_t)duration_ms - paused_at;
}

int plc_session_summary_numbers(struct plc_session_summary *s, int64_t seq,
                                int64_t size)
{
	if (seq < 0 || seq > (int64_t)UINT32_MAX)
		return pl_error_set(PL_ERR_PROTOCOL, "sequence number %" PRId64
		                    " is outside 0..%" PRIu32, seq, UINT32_MAX);
	if (size < 0)
		return pl_error_set(PL_ERR_PROTOCOL, "size %" PRId64 " is negative",
		                    size);
	s->seq = (uint32_t)seq;
	s->size = (uint64_t)size;
	return PL_OK;
}

/* end - start, 0 when end is not after start, at most INT64_MAX. */
static int64_t duration_ms(const struct plc_session_summary *sum)
{
	uint64_t d = pl_time_span_ms(sum->start_ms, sum->end_ms);
	return d > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)d;
}

/* ------------------------------------------------------------------ CSV */

const char plc_export_csv_header[] =
    "serial,uuid,seq,start_utc,end_utc,time_source,duration_s,preset_id,"
    "preset_name,depth_mm,speed_level,area,needle_count,cartridge_lot,"
    "run_time_s,strokes,max_depth_mm,errors,events,samples,size,sha256,"
    "archived_utc,client_ref,operator,notes,model,hw_revision,paused_s,"
    "areas,error_codes,site\r\n";

/* One CSV field, comma-separated from the previous one of the line. */
static void csv_field(struct plc_buf *b, bool *first, const char *s)
{
	if (!*first)
		plc_buf_add(b, ",", 1);
	*first = false;
	if (!s)
		return;
	if (!strpbrk(s, ",\"\r\n")) {
		plc_buf_str(b, s);
		return;
	}
	plc_buf_add(b, "\"", 1);
	for (const char *q; (q = strchr(s, '"')); s = q + 1) {
		plc_buf_add(b, s, (size_t)(q - s));
		plc_buf_add(b, "\"\"", 2);
	}
	plc_buf_str(b, s);
	plc_buf_add(b, "\"", 1);
}

static void csv_int(struct plc_buf *b, bool *first, int64_t v)
{
	char t[24];
	snprintf(t, sizeof t, "%" PRId64, v);
	csv_field(b, first, t);
}

/* Text from a pen or a person: cleaned for a spreadsheet (control bytes
 * escaped, no formula) before it is quoted. */
static void csv_text(struct plc_buf *b, bool *first, const char *s)
{
	char *clean = pl_text_clean_dup(PL_TEXT_CSV, s ? s : "");
	if (!clean) {
		b->oom = true;
		return;
	}
	csv_field(b, first, clean);
	free(clean);
}

/* end - start as seconds with 3 decimals, sign included. */
static const char *secs_text(char buf[32], int64_t start_ms, int64_t end_ms)
{
	bool neg = end_ms < start_ms;
	uint64_t m = neg ? pl_time_span_ms(end_ms, start_ms)
	                 : pl_time_span_ms(start_ms, end_ms);
	snprintf(buf, 32, "%s%" PRIu64 ".%03u", neg ? "-" : "", m / 1000,
	         (unsigned)(m % 1000));
	return buf;
}

static void csv_jint(struct plc_buf *b, bool *first, json_object *v)
{
	csv_int(b, first, v ? json_object_get_int64(v) : 0);
}

static void csv_jstr(struct plc_buf *b, bool *first, json_object *v)
{
	csv_text(b, first, jstr(v));
}

/* A depth from the record's JSON as exact millimetres (0.5, 2.0). */
static void csv_jmm(struct plc_buf *b, bool *first, json_object *v)
{
	char t[PL_MM_TEXT_MAX];
	csv_field(b, first,
	          pl_depth_format_mm((uint32_t)json_object_get_int64(v), PL_MM_SHORT, t));
}

void plc_export_csv_row(struct plc_buf *b, const struct plc_export_session *s,
                        json_object *j)
{
	const struct plc_session_summary *sum = &s->summary;
	char uuid[37], t[PL_TIME_TEXT_MAX], hex[65];
	bool first = true;
	struct derived d;
	derive(j, duration_ms(sum), &d);

	csv_text(b, &first, s->serial);
	pl_uuid_format(s->uuid, uuid);
	csv_field(b, &first, uuid);
	csv_int(b, &first, sum->seq);
	csv_field(b, &first, sum->rtc_time ? pl_time_format_utc(sum->start_ms, t) : "");
	csv_field(b, &first, sum->rtc_time ? pl_time_format_utc(sum->end_ms, t) : "");
	csv_field(b, &first, sum->rtc_time ? "rtc" : "uptime");
	csv_field(b, &first, secs_text(t, sum->start_ms, sum->end_ms));
	if (j) {
		json_object *ev = jget(j, "events", NULL);
		csv_jint(b, &first, jget(j, "preset", "id"));
		csv_jstr(b, &first, jget(j, "preset", "name"));
		csv_jmm(b, &first, jget(j, "preset", "depth_um"));
		csv_jint(b, &first, jget(j, "preset", "speed_level"));
		csv_jstr(b, &first, jget(j, "preset", "area"));
		csv_jint(b, &first, jget(j, "preset", "needle_count"));
		csv_jstr(b, &first, jget(j, "cartridge", "lot"));
		csv_jint(b, &first, jget(j, "summary", "run_time_s"));
		csv_jint(b, &first, jget(j, "summary", "strokes"));
		csv_jmm(b, &first, jget(j, "summary", "max_depth_um"));
		csv_jint(b, &first, jget(j, "summary", "errors"));
		csv_int(b, &first,
		        ev && json_object_is_type(ev, json_type_array)
		            ? (int64_t)json_object_array_length(ev)
		            : 0);
		csv_jint(b, &first, jget(j, "telemetry", "count"));
	} else {
		for (int i = 0; i < 13; i++)
			csv_field(b, &first, "");
	}
	csv_int(b, &first, (int64_t)sum->size);
	pl_hex_format(sum->sha256, 32, hex);
	csv_field(b, &first, hex);
	/* 0: not known (a central row whose archive time is 'infinity'). */
	csv_field(b, &first, sum->archived_ms ? pl_time_format_utc(sum->archived_ms, t) : "");
	csv_text(b, &first, s->client_ref);
	csv_text(b, &first, s->operator_name);
	csv_text(b, &first, s->notes);
	csv_text(b, &first, s->model);
	csv_text(b, &first, s->hw_revision);
	if (j) {
		csv_field(b, &first, secs_text(t, 0, (int64_t)d.paused_ms));
		struct plc_buf list = {0};
		for (size_t i = 0; i < d.n_areas; i++)
			plc_buf_fmt(&list, "%s%s", i ? ";" : "", d.areas[i]);
		csv_text(b, &first, list.p);
		list.len = 0;
		if (list.p)
			list.p[0] = '\0';
		for (size_t i = 0; i < d.n_errors; i++)
			plc_buf_fmt(&list, "%s%d %s", i ? "; " : "", d.errors[i].code,
			            pl_record_error_meaning(d.errors[i].code));
		if (d.errors_left_out)
			plc_buf_fmt(&list, "; and %zu more", d.errors_left_out);
		csv_text(b, &first, list.p);
		b->oom |= list.oom;
		plc_buf_free(&list);
	} else {
		for (int i = 0; i < 3; i++)
			csv_field(b, &first, "");
	}
	csv_text(b, &first, s->site);
	plc_buf_add(b, "\r\n", 2);
}

/* ------------------------------------------------------------------ annotations */

static bool add_text(json_object *o, const char *k, const char *v);

void plc_export_annots_init(struct plc_export_annots *a, bool json)
{
	memset(a, 0, sizeof *a);
	if (json && !(a->arr = json_object_new_array()))
		a->oom = true;
}

static void keep(struct plc_export_annots *a, char **slot, const char *v)
{
	char *d = strdup(v);
	if (!d) {
		a->oom = true;
		return;
	}
	free(*slot);
	*slot = d;
}

void plc_export_annots_add(struct plc_export_annots *a, int64_t utc_ms,
                           const char *user, const char *client_ref,
                           const char *operator_name, const char *note)
{
	if (client_ref && *client_ref)
		keep(a, &a->client, client_ref);
	if (operator_name && *operator_name)
		keep(a, &a->oper, operator_name);
	if (note && *note) {
		if (a->notes.len)
			plc_buf_str(&a->notes, " | ");
		plc_buf_str(&a->notes, note);
	}
	if (!a->arr)
		return;
	char t[PL_TIME_TEXT_MAX];
	json_object *o = json_object_new_object();
	bool ok = o &&
	          !json_object_object_add(o, "utc_ms", json_object_new_int64(utc_ms)) &&
	          add_text(o, "utc", pl_time_format_utc(utc_ms, t)) &&
	          add_text(o, "user", user) && add_text(o, "client_ref", client_ref) &&
	          add_text(o, "operator", operator_name) && add_text(o, "note", note);
	if (!ok || json_object_array_add(a->arr, o)) {
		json_object_put(o);
		a->oom = true;
	}
}

int plc_export_annots_fill(struct plc_export_annots *a,
                           struct plc_export_session *s)
{
	if (a->oom || a->notes.oom)
		return PL_ERR_MEM;
	s->client_ref = a->client;
	s->operator_name = a->oper;
	s->notes = a->notes.p;
	s->annotations = a->arr;
	return PL_OK;
}

void plc_export_annots_free(struct plc_export_annots *a)
{
	free(a->client);
	free(a->oper);
	plc_buf_free(&a->notes);
	json_object_put(a->arr);
	memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------ JSON */

/* Untrusted text as a JSON string (always valid UTF-8). */
static bool add_text(json_object *o, const char *k, const char *v)
{
	char *clean = pl_text_clean_dup(PL_TEXT_JSON, v ? v : "");
	bool ok = clean && !json_object_object_add(o, k, json_object_new_string(clean));
	free(clean);
	return ok;
}

static bool add(json_object *o, const char *k, json_object *v)
{
	if (!v)
		return false;
	if (json_object_object_add(o, k, v)) {
		json_object_put(v);
		return false;
	}
	return true;
}

/* The object of a record that did not decode: what the archive knows. */
static json_object *fallback(const struct plc_export_session *s)
{
	const struct plc_session_summary *sum = &s->summary;
	json_object *o = json_object_new_object();
	char uuid[37];
	pl_uuid_format(s->uuid, uuid);
	bool ok = o && add(o, "uuid", json_object_new_string(uuid)) &&
	          add_text(o, "serial", s->serial) &&
	          add(o, "seq", json_object_new_int64(sum->seq)) &&
	          add(o, "start_utc_ms", json_object_new_int64(sum->start_ms)) &&
	          add(o, "end_utc_ms", json_object_new_int64(sum->end_ms)) &&
	          add(o, "time_source",
	              json_object_new_string(sum->rtc_time ? "rtc" : "uptime")) &&
	          add_text(o, "decode_error", s->decode_error);
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static json_object *derived_json(const struct derived *d, json_object **errs)
{
	json_object *areas = json_object_new_array();
	*errs = json_object_new_array();
	if (!areas || !*errs) {
		json_object_put(areas);
		json_object_put(*errs);
		*errs = NULL;
		return NULL;
	}
	for (size_t i = 0; i < d->n_areas; i++)
		json_object_array_add(areas, json_object_new_string(d->areas[i]));
	for (size_t i = 0; i < d->n_errors; i++) {
		json_object *e = json_object_new_object();
		if (!e || !add(e, "offset_ms", json_object_new_int64(d->errors[i].offset_ms)) ||
		    !add(e, "code", json_object_new_int64(d->errors[i].code)) ||
		    !add(e, "meaning", json_object_new_string(
		                           pl_record_error_meaning(d->errors[i].code))) ||
		    json_object_array_add(*errs, e)) {
			json_object_put(e);
			json_object_put(areas);
			json_object_put(*errs);
			*errs = NULL;
			return NULL;
		}
	}
	return areas;
}

int plc_export_json_row(struct plc_buf *b, const struct plc_export_session *s,
                        json_object *j)
{
	if (!j)
		j = fallback(s);
	if (!j) {
		b->oom = true;
		return PL_ERR_MEM;
	}
	char hex[65];
	pl_hex_format(s->summary.sha256, 32, hex);
	struct derived d;
	derive(j, duration_ms(&s->summary), &d);
	json_object *errs = NULL;
	json_object *areas = derived_json(&d, &errs);
	json_object *ann = s->annotations ? json_object_get(s->annotations)
	                                  : json_object_new_array();
	bool ok = areas && errs && ann &&
	          add(j, "archived_utc_ms",
	              json_object_new_int64(s->summary.archived_ms)) &&
	          add(j, "sha256", json_object_new_string(hex)) &&
	          add_text(j, "model", s->model) &&
	          add_text(j, "hw_revision", s->hw_revision) &&
	          add(j, "paused_s", json_object_new_double((double)d.paused_ms / 1000.0));
	/* add() takes each value over, whether it succeeds or not. */
	json_object *take[] = {areas, errs, ann};
	const char *keys[] = {"areas", "error_codes", "annotations"};
	for (size_t i = 0; i < 3; i++) {
		if (ok)
			ok = add(j, keys[i], take[i]);
		else
			json_object_put(take[i]);
	}
	areas = errs = ann = NULL;
	if (ok && s->site)
		ok = add_text(j, "site", s->site);
	const char *text = ok ? json_object_to_json_string_ext(
	                            j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
	                      : NULL;
	if (text)
		plc_buf_str(b, text);
	json_object_put(areas);
	json_object_put(errs);
	json_object_put(ann);
	json_object_put(j);
	if (!text || b->oom) {
		b->oom = true;
		return PL_ERR_MEM;
	}
	return PL_OK;
}
