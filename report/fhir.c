/* FHIR R4 transaction Bundles of sessions (README "Reports and FHIR"). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "report_int.h"

void pl_fhir_options_init(struct pl_fhir_options *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof *o);
	o->size = sizeof *o;
}

struct fb {
	bool oom;
};

static json_object *chk(struct fb *b, json_object *o)
{
	if (!o)
		b->oom = true;
	return o;
}

static void add(struct fb *b, json_object *obj, const char *key, json_object *v)
{
	if (!obj || !v || json_object_object_add(obj, key, v) != 0) {
		b->oom = true;
		json_object_put(v);
	}
}

static void push(struct fb *b, json_object *arr, json_object *v)
{
	if (!arr || !v || json_object_array_add(arr, v) != 0) {
		b->oom = true;
		json_object_put(v);
	}
}

/* Untrusted text as a FHIR string: the terminal door's cleaning (valid
 * UTF-8, no control characters: FHIR strings may not hold them). */
static json_object *text(struct fb *b, const char *raw)
{
	char *c = pl_text_clean_dup(PL_TEXT_TERMINAL, raw ? raw : "");
	if (!c) {
		b->oom = true;
		return NULL;
	}
	json_object *o = chk(b, json_object_new_string(c));
	free(c);
	return o;
}

static json_object *str(struct fb *b, const char *s)
{
	return chk(b, json_object_new_string(s));
}

static json_object *obj(struct fb *b)
{
	return chk(b, json_object_new_object());
}

static json_object *arr(struct fb *b)
{
	return chk(b, json_object_new_array());
}

/* A stable urn:uuid for (kind, identity): a name-based UUID (SHA-256 of
 * both, version 5 bits set) so the same session always gives the same
 * Bundle. */
static json_object *full_url(struct fb *b, const char *kind,
                             const char *identity)
{
	size_t n1 = strlen(kind), n2 = strlen(identity);
	char *s = malloc(n1 + n2 + 16);
	if (!s) {
		b->oom = true;
		return NULL;
	}
	memcpy(s, "penlink-fhir/", 13);
	memcpy(s + 13, kind, n1);
	s[13 + n1] = '\n';
	memcpy(s + 14 + n1, identity, n2);
	uint8_t h[32];
	pl_sha256(s, 14 + n1 + n2, h);
	free(s);
	h[6] = (uint8_t)((h[6] & 0x0f) | 0x50);
	h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
	char u[37], url[64];
	pl_uuid_format(h, u);
	snprintf(url, sizeof url, "urn:uuid:%s", u);
	return str(b, url);
}

/* "identifier=SYSTEM|VALUE" for request.ifNoneExist: the value escaped for
 * FHIR search (\ | $ , take a backslash) and percent-encoded. */
static json_object *if_none_exist(struct fb *b, const char *system,
                                  const char *value)
{
	size_t n = strlen(value);
	char *q = malloc(strlen(system) + 16 + n * 6 + 1);
	if (!q) {
		b->oom = true;
		return NULL;
	}
	size_t k = (size_t)sprintf(q, "identifier=%s|", system);
	static const char hexd[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c == '\\' || c == '|' || c == '$' || c == ',') {
			q[k++] = '%';
			q[k++] = '5';
			q[k++] = 'C';
		}
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
		    c == '~') {
			q[k++] = (char)c;
		} else {
			q[k++] = '%';
			q[k++] = hexd[c >> 4];
			q[k++] = hexd[c & 15];
		}
	}
	q[k] = '\0';
	json_object *o = str(b, q);
	free(q);
	return o;
}

static json_object *identifier(struct fb *b, const char *system,
                               const char *value)
{
	json_object *a = arr(b), *i = obj(b);
	add(b, i, "system", str(b, system));
	add(b, i, "value", str(b, value));
	push(b, a, i);
	return a;
}

static void entry(struct fb *b, json_object *entries, json_object *url,
                  json_object *res, const char *type, const char *system,
                  const char *value)
{
	json_object *e = obj(b), *rq = obj(b);
	add(b, e, "fullUrl", url);
	add(b, e, "resource", res);
	add(b, rq, "method", str(b, "POST"));
	add(b, rq, "url", str(b, type));
	add(b, rq, "ifNoneExist", if_none_exist(b, system, value));
	add(b, e, "request", rq);
	push(b, entries, e);
}

static json_object *reference(struct fb *b, json_object *url)
{
	json_object *r = obj(b);
	add(b, r, "reference", url ? json_object_get(url) : NULL);
	return r;
}

/* The cleaned text a FHIR identifier value of this session uses:
 * "SERIAL/UUID" (and "/what" for an observation). */
static char *session_value(const struct pl_report_entry *e, const char *what)
{
	char u[37];
	pl_uuid_format(e->uuid, u);
	char *serial = pl_text_clean_dup(PL_TEXT_TERMINAL, e->serial ? e->serial : "");
	if (!serial)
		return NULL;
	size_t n = strlen(serial) + 64;
	char *v = malloc(n);
	if (v)
		snprintf(v, n, "%s/%s%s%s", serial, u, what ? "/" : "", what ? what : "");
	free(serial);
	return v;
}

static const char *latest_field(const struct pl_report_entry *e, int field)
{
	const char *v = NULL;
	for (size_t i = 0; i < e->n_annotations; i++) {
		const char *s = field == 0 ? e->annotations[i].client_ref
		                           : e->annotations[i].operator_name;
		if (s && *s)
			v = s;
	}
	return v;
}

static json_object *subject(struct fb *b, const struct pl_report_entry *e,
                            bool required)
{
	const char *client = latest_field(e, 0);
	if (!client && !required)
		return NULL;
	json_object *s = obj(b);
	if (client) {
		json_object *id = obj(b);
		add(b, id, "system", str(b, PL_FHIR_SYSTEM_CLIENT));
		add(b, id, "value", text(b, client));
		add(b, s, "identifier", id);
	} else {
		add(b, s, "display", str(b, "client not recorded (the session has "
		                         "no client reference annotation)"));
	}
	return s;
}

/* FHIR's instants have four-digit years and a Period ends after it
 * starts: a time that cannot be one is left out, not written invalid. */
static json_object *period(struct fb *b, const struct pl_report_entry *e)
{
	char t[PL_TIME_TEXT_MAX];
	if (!rp_entry_dated(e) || !pl_time_format_utc(e->start_ms, t)[0])
		return NULL;
	json_object *p = obj(b);
	add(b, p, "start", str(b, t));
	if (rp_on_calendar(e->end_ms) && e->end_ms >= e->start_ms &&
	    pl_time_format_utc(e->end_ms, t)[0])
		add(b, p, "end", str(b, t));
	return p;
}

static json_object *note(struct fb *b, const char *s)
{
	json_object *n = obj(b);
	add(b, n, "text", text(b, s));
	return n;
}

/* The events as one note for people: counts, and each error, battery low
 * and cartridge change with its time. */
static char *events_note(const struct pl_report_entry *e)
{
	size_t cap = 256 + e->n_events * 80, k = 0;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	unsigned count[12] = {0};
	for (size_t i = 0; i < e->n_events; i++)
		if (e->events[i].kind >= 0 && e->events[i].kind < 12)
			count[e->events[i].kind]++;
	k += (size_t)snprintf(s + k, cap - k, "Events: %zu (%u pauses, %u depth "
	                      "changes, %u speed changes, %u area changes, %u "
	                      "cartridge changes, %u battery low, %u errors)",
	                      e->n_events, count[3], count[5], count[6], count[7],
	                      count[8], count[10], count[11]);
	for (size_t i = 0; i < e->n_events && k < cap - 100; i++) {
		const struct pl_report_event *ev = &e->events[i];
		unsigned m = ev->offset_ms / 60000u, sec = ev->offset_ms / 1000u % 60u;
		if (ev->kind == 11)
			k += (size_t)snprintf(s + k, cap - k, "; error code %" PRId32
			                      " (%s) at %02u:%02u", ev->value,
			                      pl_record_error_meaning(ev->value), m, sec);
		else if (ev->kind == 10)
			k += (size_t)snprintf(s + k, cap - k, "; battery low (%" PRId32
			                      " mV) at %02u:%02u", ev->value, m, sec);
		else if (ev->kind == 9)
			k += (size_t)snprintf(s + k, cap - k, "; cartridge out at "
			                      "%02u:%02u", m, sec);
	}
	return s;
}

static json_object *quantity(struct fb *b, double v, const char *exact,
                             const char *unit)
{
	json_object *q = obj(b);
	add(b, q, "value", chk(b, exact ? json_object_new_double_s(v, exact)
	                                : json_object_new_int64((int64_t)v)));
	add(b, q, "unit", str(b, unit));
	add(b, q, "system", str(b, "http://unitsofmeasure.org"));
	add(b, q, "code", str(b, unit));
	return q;
}

static void observation(struct fb *b, json_object *entries,
                        const struct pl_report_entry *e, json_object *proc_url,
                        json_object *dev_url, const char *code,
                        const char *display, json_object *value)
{
	char *v = session_value(e, code);
	if (!v) {
		b->oom = true;
		json_object_put(value);
		return;
	}
	json_object *o = obj(b);
	add(b, o, "resourceType", str(b, "Observation"));
	add(b, o, "identifier", identifier(b, PL_FHIR_SYSTEM_OBSERVATION, v));
	add(b, o, "status", str(b, "final"));
	json_object *cat = arr(b), *cc = obj(b), *cod = arr(b), *c1 = obj(b);
	add(b, c1, "system", str(b, "http://terminology.hl7.org/CodeSystem/observation-category"));
	add(b, c1, "code", str(b, "procedure"));
	add(b, c1, "display", str(b, "Procedure"));
	push(b, cod, c1);
	add(b, cc, "coding", cod);
	push(b, cat, cc);
	add(b, o, "category", cat);
	json_object *cd = obj(b), *cds = arr(b), *c2 = obj(b);
	add(b, c2, "system", str(b, "urn:penlink:observation-code"));
	add(b, c2, "code", str(b, code));
	add(b, c2, "display", str(b, display));
	push(b, cds, c2);
	add(b, cd, "coding", cds);
	add(b, cd, "text", str(b, display));
	add(b, o, "code", cd);
	json_object *subj = subject(b, e, false);
	if (subj)
		add(b, o, "subject", subj);
	json_object *po = arr(b);
	push(b, po, reference(b, proc_url));
	add(b, o, "partOf", po);
	json_object *per = period(b, e);
	if (per)
		add(b, o, "effectivePeriod", per);
	add(b, o, "device", reference(b, dev_url));
	add(b, o, "valueQuantity", value);
	entry(b, entries, full_url(b, "Observation", v), o, "Observation",
	      PL_FHIR_SYSTEM_OBSERVATION, v);
	free(v);
}

static const struct pl_device_info *device_of(const struct pl_fhir_options *o,
                                              const char *serial)
{
	for (size_t i = 0; o && i < o->n_devices; i++)
		if (serial && strcmp(o->devices[i].serial, serial) == 0)
			return &o->devices[i];
	return NULL;
}

/* The Device of e's pen (its firmware from the newest of its sessions in
 * the Bundle). */
static void device(struct fb *b, json_object *entries,
                   const struct pl_report_entry *v, size_t n, size_t at,
                   const struct pl_fhir_options *o)
{
	const struct pl_report_entry *e = &v[at];
	const char *serial = e->serial ? e->serial : "";
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].serial ? v[i].serial : "", serial) == 0 &&
		    v[i].start_ms > e->start_ms)
			e = &v[i];
	char *sv = pl_text_clean_dup(PL_TEXT_TERMINAL, serial);
	if (!sv) {
		b->oom = true;
		return;
	}
	json_object *d = obj(b);
	add(b, d, "resourceType", str(b, "Device"));
	add(b, d, "identifier", identifier(b, PL_FHIR_SYSTEM_SERIAL, sv));
	add(b, d, "status", str(b, "active"));
	add(b, d, "serialNumber", str(b, sv));
	const struct pl_device_info *info = device_of(o, serial);
	if (info && info->model[0]) {
		json_object *names = arr(b), *nm = obj(b);
		add(b, nm, "name", text(b, info->model));
		add(b, nm, "type", str(b, "model-name"));
		push(b, names, nm);
		add(b, d, "deviceName", names);
		add(b, d, "modelNumber", text(b, info->model));
	}
	json_object *type = obj(b);
	add(b, type, "text", str(b, "microneedling pen"));
	add(b, d, "type", type);
	if (e->fw_version && *e->fw_version) {
		json_object *vs = arr(b), *ver = obj(b), *vt = obj(b);
		add(b, vt, "text", str(b, "firmware"));
		add(b, ver, "type", vt);
		add(b, ver, "value", text(b, e->fw_version));
		push(b, vs, ver);
		add(b, d, "version", vs);
	}
	entry(b, entries, full_url(b, "Device", sv), d, "Device",
	      PL_FHIR_SYSTEM_SERIAL, sv);
	free(sv);
}

static void procedure(struct fb *b, json_object *entries,
                      const struct pl_report_entry *e, json_object *dev_url)
{
	char *v = session_value(e, NULL);
	if (!v) {
		b->oom = true;
		return;
	}
	char buf[512], mm[PL_MM_TEXT_MAX], mm2[PL_MM_TEXT_MAX], a[24];
	json_object *p = obj(b);
	json_object *url = full_url(b, "Procedure", v);
	add(b, p, "resourceType", str(b, "Procedure"));
	add(b, p, "identifier", identifier(b, PL_FHIR_SYSTEM_SESSION, v));
	add(b, p, "status", str(b, e->run_time_s || e->strokes ? "completed"
	                                                        : "not-done"));
	json_object *code = obj(b);
	add(b, code, "text", str(b, "Microneedling (collagen induction therapy)"));
	add(b, p, "code", code);
	add(b, p, "subject", subject(b, e, true));
	json_object *per = period(b, e);
	if (per)
		add(b, p, "performedPeriod", per);
	const char *op = latest_field(e, 1);
	if (op) {
		json_object *perf = arr(b), *pf = obj(b), *actor = obj(b);
		add(b, actor, "display", text(b, op));
		add(b, pf, "actor", actor);
		push(b, perf, pf);
		add(b, p, "performer", perf);
	}
	/* body sites: the preset's area and every area changed to, once */
	json_object *sites = arr(b);
	bool seen[PL_AREA_COUNT + 1];
	memset(seen, 0, sizeof seen);
	size_t n_sites = 0;
	for (size_t i = 0; i <= e->n_events; i++) {
		int area = i == 0 ? e->preset_area
		           : e->events[i - 1].kind == 7 ? e->events[i - 1].value : -1;
		if (area < 0)
			continue;
		int slot = area < PL_AREA_COUNT ? area : PL_AREA_COUNT;
		if (seen[slot] && slot < PL_AREA_COUNT)
			continue;
		seen[slot] = true;
		json_object *s = obj(b);
		add(b, s, "text", str(b, rh_area(area, a)));
		push(b, sites, s);
		n_sites++;
	}
	if (n_sites)
		add(b, p, "bodySite", sites);
	else
		json_object_put(sites);
	json_object *fd = arr(b), *f1 = obj(b), *act = obj(b);
	add(b, act, "text", str(b, "used"));
	add(b, f1, "action", act);
	add(b, f1, "manipulated", reference(b, dev_url));
	push(b, fd, f1);
	add(b, p, "focalDevice", fd);
	json_object *notes = arr(b);
	char *pname = pl_text_clean_dup(PL_TEXT_TERMINAL, e->preset_name ? e->preset_name : "");
	snprintf(buf, sizeof buf, "Preset %" PRIu32 " \"%.120s\" (revision %" PRIu32
	         "): %s mm, speed level %" PRIu32 "; cartridge %" PRIu32
	         " needles (0 = nano), %s mm long, lot %.64s",
	         e->preset_id, pname ? pname : "", e->preset_revision,
	         pl_depth_format_mm(e->preset_depth_um, PL_MM_FIXED, mm),
	         e->preset_speed, e->cart_needles,
	         pl_depth_format_mm(e->cart_length_um, PL_MM_FIXED, mm2),
	         e->cart_lot && *e->cart_lot ? e->cart_lot : "unknown");
	free(pname);
	push(b, notes, note(b, buf));
	char *ev = events_note(e);
	if (ev) {
		push(b, notes, note(b, ev));
		free(ev);
	} else {
		b->oom = true;
	}
	if (!e->rtc) {
		snprintf(buf, sizeof buf, "The pen's clock was not set: the session "
		         "started %" PRId64 " s after the pen powered on; its date is "
		         "unknown", e->start_ms / 1000);
		push(b, notes, note(b, buf));
	}
	for (size_t i = 0; i < e->n_annotations; i++)
		if (e->annotations[i].note && *e->annotations[i].note)
			push(b, notes, note(b, e->annotations[i].note));
	add(b, p, "note", notes);
	entry(b, entries, url, p, "Procedure", PL_FHIR_SYSTEM_SESSION, v);

	/* the observations */
	observation(b, entries, e, url, dev_url, "max-depth",
	            "Maximum needle depth",
	            quantity(b, e->max_depth_um / 1000.0,
	                     pl_depth_format_mm(e->max_depth_um, PL_MM_SHORT, mm),
	                     "mm"));
	observation(b, entries, e, url, dev_url, "strokes", "Needle strokes",
	            quantity(b, (double)e->strokes, NULL, "{strokes}"));
	observation(b, entries, e, url, dev_url, "run-time", "Motor run time",
	            quantity(b, e->run_time_s, NULL, "s"));
	free(v);
}

int pl_fhir_bundle(const struct pl_report_entry *v, size_t n,
                   const struct pl_fhir_options *o, char **json, size_t *len)
{
	if ((!v && n) || !json)
		return pl_error_set(PL_ERR_ARG, "pl_fhir_bundle: missing argument");
	*json = NULL;
	if (len)
		*len = 0;
	struct fb b = {false};
	json_object *root = obj(&b), *entries = arr(&b);
	add(&b, root, "resourceType", str(&b, "Bundle"));
	add(&b, root, "type", str(&b, "transaction"));
	/* one Device per pen, before its sessions */
	json_object **dev_urls = calloc(n ? n : 1, sizeof *dev_urls);
	if (!dev_urls)
		b.oom = true;
	for (size_t i = 0; dev_urls && i < n && !b.oom; i++) {
		const char *s = v[i].serial ? v[i].serial : "";
		size_t first = 0;
		while (strcmp(v[first].serial ? v[first].serial : "", s) != 0)
			first++;
		if (first < i) {
			dev_urls[i] = json_object_get(dev_urls[first]);
			continue;
		}
		device(&b, entries, v, n, i, o);
		char *sv = pl_text_clean_dup(PL_TEXT_TERMINAL, s);
		if (!sv) {
			b.oom = true;
			break;
		}
		dev_urls[i] = full_url(&b, "Device", sv);
		free(sv);
	}
	for (size_t i = 0; dev_urls && i < n && !b.oom; i++)
		procedure(&b, entries, &v[i], dev_urls[i]);
	for (size_t i = 0; dev_urls && i < n; i++)
		json_object_put(dev_urls[i]);
	free(dev_urls);
	add(&b, root, "entry", entries);
	if (b.oom) {
		json_object_put(root);
		return pl_error_set(PL_ERR_MEM, "out of memory building a FHIR Bundle");
	}
	const char *t = json_object_to_json_string_ext(
	    root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
	              JSON_C_TO_STRING_NOSLASHESCAPE);
	*json = t ? strdup(t) : NULL;
	json_object_put(root);
	if (!*json)
		return pl_error_set(PL_ERR_MEM, "out of memory building a FHIR Bundle");
	if (len)
		*len = strlen(*json);
	return PL_OK;
}
