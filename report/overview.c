/* The overview of a period: sessions per day and per pen, depth used per
 * area, errors; plots and a table. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "report_int.h"

#define DAY_MS 86400000LL
#define MAX_BUCKETS 400
#define MAX_TABLE_ROWS 500

void pl_report_overview_options_init(struct pl_report_overview_options *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof *o);
	o->size = sizeof *o;
}

/* ---- counting by label */

struct tally {
	char *label;          /* owned */
	double count;
	double errors;
	double run_s;
};

struct tallies {
	struct tally *v;
	size_t n, cap;
	bool oom;
};

static struct tally *tally_get(struct tallies *t, const char *label)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].label, label) == 0)
			return &t->v[i];
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		struct tally *p = realloc(t->v, cap * sizeof *p);
		if (!p) {
			t->oom = true;
			return NULL;
		}
		t->v = p;
		t->cap = cap;
	}
	struct tally *x = &t->v[t->n];
	memset(x, 0, sizeof *x);
	x->label = strdup(label);
	if (!x->label) {
		t->oom = true;
		return NULL;
	}
	t->n++;
	return x;
}

static void tallies_free(struct tallies *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].label);
	free(t->v);
}

static int by_label(const void *a, const void *b)
{
	return strcmp(((const struct tally *)a)->label,
	              ((const struct tally *)b)->label);
}

/* ---- the period's days */

/* The local date of utc_ms cut to its bucket (the library's local time):
 * "YYYY-MM-DD", "YYYY-MM" or "YYYY" (width 10, 7 or 4). */
static void day_of(int64_t utc_ms, int width, char out[16])
{
	char t[PL_TIME_TEXT_MAX];
	pl_time_format_local(utc_ms, t);
	snprintf(out, 16, "%.*s", width, t);
}

/* Local noon of utc_ms's day (from the local time of day the library
 * writes), so stepping by 24 h never skips or repeats a day across a
 * daylight-saving change. */
static int64_t noon_of(int64_t utc_ms)
{
	char t[PL_TIME_TEXT_MAX];
	pl_time_format_local(utc_ms, t);
	int h = 0, m = 0, s = 0;
	if (sscanf(t + 11, "%d:%d:%d", &h, &m, &s) != 3)
		return utc_ms;
	return utc_ms - ((int64_t)h * 3600 + m * 60 + s) * 1000 + 12 * 3600000LL;
}

/* ---- depth per area, from the events */

struct area_use {
	double run_s;
	double depth_s;       /* sum of depth (mm) x seconds */
	double lo, hi;        /* set depths used (mm) */
	unsigned sessions;
	bool used;
};

static void area_walk(const struct pl_report_entry *e, struct area_use *u)
{
	int area = e->preset_area;
	double depth = e->preset_depth_um / 1000.0;
	bool has_start = false;
	for (size_t i = 0; i < e->n_events; i++)
		has_start |= e->events[i].kind == 1;
	bool running = !has_start;
	double t = 0;
	bool counted[PL_AREA_COUNT + 1];
	memset(counted, 0, sizeof counted);
	double end = (double)pl_time_span_ms(e->start_ms, e->end_ms) / 1000.0;
	for (size_t i = 0; i <= e->n_events; i++) {
		double tn = i < e->n_events ? e->events[i].offset_ms / 1000.0 : end;
		if (tn < t)
			tn = t;
		if (running && tn > t) {
			int slot = area >= 0 && area < PL_AREA_COUNT ? area : PL_AREA_COUNT;
			struct area_use *a = &u[slot];
			a->run_s += tn - t;
			a->depth_s += depth * (tn - t);
			if (!a->used || depth < a->lo)
				a->lo = depth;
			if (!a->used || depth > a->hi)
				a->hi = depth;
			a->used = true;
			if (!counted[slot]) {
				counted[slot] = true;
				a->sessions++;
			}
		}
		t = tn;
		if (i == e->n_events)
			break;
		const struct pl_report_event *ev = &e->events[i];
		switch (ev->kind) {
		case 1: case 4: running = true; break;
		case 2: case 3: running = false; break;
		case 5: if (ev->value >= 0) depth = ev->value / 1000.0; break;
		case 7: area = ev->value; break;
		default: break;
		}
	}
}

static void write_overview(const struct pl_report_entry *v, size_t n,
                           const struct pl_report_overview_options *o, FILE *f)
{
	char t1[PL_TIME_TEXT_MAX], t2[PL_TIME_TEXT_MAX], mm[PL_MM_TEXT_MAX];
	char buf[64];
	rh_begin(f, "Treatment overview");
	fputs("<h1>Treatment overview</h1>\n<p class=\"sub\">", f);
	if (o->since_ms)
		rh_textf(f, "From %s", pl_time_format_local(o->since_ms, t1));
	else
		rh_text(f, "From the first session");
	if (o->until_ms)
		rh_textf(f, " until %s", pl_time_format_local(o->until_ms, t2));
	if (o->serial) {
		rh_text(f, "; pen ");
		rh_text(f, o->serial);
	}
	if (o->client) {
		rh_text(f, "; client reference ");
		rh_text(f, o->client);
	}
	fputs("</p>\n", f);

	/* ---- totals */
	struct tallies pens = {0}, days = {0};
	struct area_use areas[PL_AREA_COUNT + 1];
	memset(areas, 0, sizeof areas);
	uint64_t strokes = 0, run_s = 0, errors = 0;
	size_t uptime_only = 0, off_calendar = 0;
	int64_t first = 0, last = 0;
	unsigned codes[16] = {0};
	unsigned other_codes = 0;
	for (size_t i = 0; i < n; i++) {
		const struct pl_report_entry *e = &v[i];
		struct tally *p = tally_get(&pens, e->serial ? e->serial : "");
		if (p) {
			p->count++;
			p->errors += e->errors;
			p->run_s += e->run_time_s;
		}
		strokes += e->strokes;
		run_s += e->run_time_s;
		errors += e->errors;
		for (size_t k = 0; k < e->n_events; k++)
			if (e->events[k].kind == 11) {
				int32_t c = e->events[k].value;
				if (c >= 0 && c < 16)
					codes[c]++;
				else
					other_codes++;
			}
		area_walk(e, areas);
		if (!e->rtc) {
			uptime_only++;
			continue;
		}
		if (!rp_entry_dated(e)) {
			off_calendar++;
			continue;
		}
		if (!first || e->start_ms < first)
			first = e->start_ms;
		if (!last || e->start_ms > last)
			last = e->start_ms;
	}
	/* An empty period has no pens (and pens.v is NULL, which qsort may
	 * not be given). */
	if (pens.n)
		qsort(pens.v, pens.n, sizeof *pens.v, by_label);

	fputs("<section><h2>Totals</h2><table class=\"kv\">\n", f);
	fputs("<tr><th>sessions</th><td>", f);
	rh_textf(f, "%zu", n);
	if (uptime_only)
		rh_textf(f, " (%zu timed by the pen's uptime only: not placed on a day)",
		         uptime_only);
	if (off_calendar)
		rh_textf(f, " (%zu with a start time outside the years 1970-9999: "
		         "not placed on a day)", off_calendar);
	fputs("</td></tr>\n<tr><th>pens</th><td>", f);
	rh_textf(f, "%zu", pens.n);
	fputs("</td></tr>\n<tr><th>run time</th><td>", f);
	rh_span(f, run_s);
	fputs("</td></tr>\n<tr><th>strokes</th><td>", f);
	rh_textf(f, "%" PRIu64, strokes);
	fputs("</td></tr>\n<tr><th>errors</th><td>", f);
	rh_textf(f, "%" PRIu64, errors);
	for (int c = 0; c < 16; c++)
		if (codes[c])
			rh_textf(f, "; code %d (%s): %u", c, pl_record_error_meaning(c),
			         codes[c]);
	if (other_codes)
		rh_textf(f, "; other codes: %u", other_codes);
	fputs("</td></tr>\n", f);
	rh_origin(f, &o->origin);
	fputs("</table></section>\n", f);

	/* ---- sessions per day (per month for long periods) */
	/* A period bound off the calendar (the library's caller gave it)
	 * bounds nothing here. */
	bool since_ok = o->since_ms > 0 && rp_on_calendar(o->since_ms);
	bool until_ok = o->until_ms > 0 && rp_on_calendar(o->until_ms);
	int64_t d0 = since_ok ? o->since_ms : first;
	int64_t d1 = until_ok ? o->until_ms - 1 : last;
	if (first && d0 > first)
		d0 = first;
	if (last && d1 < last)
		d1 = last;
	/* days up to 3 months, months up to 6 years, then years */
	int width = d1 - d0 <= 93 * DAY_MS ? 10 : d1 - d0 <= 6 * 366 * DAY_MS ? 7 : 4;
	int64_t step = width == 10 ? DAY_MS : width == 7 ? 27 * DAY_MS : 360 * DAY_MS;
	if (first || since_ok) {
		char key[16], prev[16] = "";
		for (int64_t t = noon_of(d0); t <= noon_of(d1) + DAY_MS / 2 &&
		                              days.n < MAX_BUCKETS;
		     t += step) {
			day_of(t, width, key);
			if (strcmp(key, prev) != 0)
				tally_get(&days, key);
			snprintf(prev, sizeof prev, "%s", key);
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!rp_entry_dated(&v[i]))
			continue;
		char key[16];
		day_of(v[i].start_ms, width, key);
		struct tally *d = tally_get(&days, key);
		if (d)
			d->count++;
	}
	if (days.n)
		qsort(days.v, days.n, sizeof *days.v, by_label);
	struct rp_bar *bars = calloc((days.n > pens.n ? days.n : pens.n) +
	                             PL_AREA_COUNT + 2, sizeof *bars);
	if (bars) {
		for (size_t i = 0; i < days.n; i++)
			bars[i] = (struct rp_bar){days.v[i].label, days.v[i].count, 0, 0};
		rp_bars_svg(f, width == 10 ? "Sessions per day"
		               : width == 7 ? "Sessions per month" : "Sessions per year",
		            "sessions", bars, days.n, 0, "#1f5fa8");
		for (size_t i = 0; i < pens.n; i++)
			bars[i] = (struct rp_bar){pens.v[i].label, pens.v[i].count, 0, 0};
		rp_bars_svg(f, "Sessions per pen", "sessions", bars, pens.n, 0,
		            "#2e7d32");
		size_t k = 0;
		for (int a = 0; a <= PL_AREA_COUNT; a++) {
			if (!areas[a].used)
				continue;
			char *lbl = malloc(24);
			if (!lbl)
				continue;
			snprintf(lbl, 24, "%s", a < PL_AREA_COUNT ? rh_area(a, buf)
			                                        : "unknown area");
			bars[k++] = (struct rp_bar){lbl, areas[a].depth_s / areas[a].run_s,
			                            areas[a].lo, areas[a].hi};
		}
		fputs("<section>", f);
		rp_bars_svg(f, "Depth used per area: time-weighted mean set depth, "
		            "bar = lowest to highest", "depth (mm)", bars, k, 2,
		            "#6a3d9a");
		fputs("</section>\n", f);
		for (size_t i = 0; i < k; i++)
			free((char *)bars[i].label);
		free(bars);
	}

	/* ---- per pen and per area tables */
	fputs("<section class=\"grid\"><div><h2>Pens</h2><table class=\"list\">"
	      "<thead><tr><th>pen</th><th class=\"num\">sessions</th>"
	      "<th class=\"num\">run time</th><th class=\"num\">errors</th></tr>"
	      "</thead><tbody>\n", f);
	for (size_t i = 0; i < pens.n; i++) {
		fputs("<tr><td>", f);
		rh_text(f, pens.v[i].label);
		fputs("</td><td class=\"num\">", f);
		rh_textf(f, "%.0f", pens.v[i].count);
		fputs("</td><td class=\"num\">", f);
		rh_span(f, (uint64_t)pens.v[i].run_s);
		fputs("</td><td class=\"num\">", f);
		if (pens.v[i].errors)
			fputs("<span class=\"err\">", f);
		rh_textf(f, "%.0f", pens.v[i].errors);
		if (pens.v[i].errors)
			fputs("</span>", f);
		fputs("</td></tr>\n", f);
	}
	fputs("</tbody></table></div><div><h2>Areas</h2><table class=\"list\">"
	      "<thead><tr><th>area</th><th class=\"num\">sessions</th>"
	      "<th class=\"num\">run time</th><th class=\"num\">depths (mm)</th>"
	      "</tr></thead><tbody>\n", f);
	for (int a = 0; a <= PL_AREA_COUNT; a++) {
		if (!areas[a].used)
			continue;
		fputs("<tr><td>", f);
		rh_text(f, a < PL_AREA_COUNT ? rh_area(a, buf) : "unknown area");
		fputs("</td><td class=\"num\">", f);
		rh_textf(f, "%u", areas[a].sessions);
		fputs("</td><td class=\"num\">", f);
		rh_span(f, (uint64_t)areas[a].run_s);
		fputs("</td><td class=\"num\">", f);
		rh_text(f, pl_depth_format_mm((uint32_t)(areas[a].lo * 1000 + 0.5),
		                              PL_MM_FIXED, mm));
		rh_text(f, " – ");
		rh_text(f, pl_depth_format_mm((uint32_t)(areas[a].hi * 1000 + 0.5),
		                              PL_MM_FIXED, mm));
		fputs("</td></tr>\n", f);
	}
	fputs("</tbody></table></div></section>\n", f);

	/* ---- every session */
	fputs("<section class=\"long\"><h2>Sessions</h2><table class=\"list\">"
	      "<thead><tr><th>start</th><th>pen</th><th class=\"num\">seq</th>"
	      "<th>preset</th><th class=\"num\">max depth</th>"
	      "<th class=\"num\">run time</th><th class=\"num\">strokes</th>"
	      "<th class=\"num\">errors</th><th>client</th></tr></thead><tbody>\n", f);
	for (size_t i = 0; i < n && i < MAX_TABLE_ROWS; i++) {
		const struct pl_report_entry *e = &v[i];
		fputs("<tr><td>", f);
		rh_time(f, e->start_ms, e->rtc);
		fputs("</td><td>", f);
		rh_text(f, e->serial);
		fputs("</td><td class=\"num\">", f);
		rh_textf(f, "%" PRIu32, e->seq);
		fputs("</td><td>", f);
		rh_text(f, e->preset_name);
		fputs("</td><td class=\"num\">", f);
		rh_text(f, pl_depth_format_mm(e->max_depth_um, PL_MM_FIXED, mm));
		fputs("</td><td class=\"num\">", f);
		rh_span(f, e->run_time_s);
		fputs("</td><td class=\"num\">", f);
		rh_textf(f, "%" PRIu64, e->strokes);
		fputs(e->errors ? "</td><td class=\"num err\">" : "</td><td class=\"num\">", f);
		rh_textf(f, "%" PRIu32, e->errors);
		fputs("</td><td>", f);
		const char *client = NULL;
		for (size_t k = 0; k < e->n_annotations; k++)
			if (e->annotations[k].client_ref && *e->annotations[k].client_ref)
				client = e->annotations[k].client_ref;
		rh_text(f, client ? client : "");
		fputs("</td></tr>\n", f);
	}
	fputs("</tbody></table>\n", f);
	if (n > MAX_TABLE_ROWS) {
		fputs("<p class=\"note\">", f);
		rh_textf(f, "The first %d of %zu sessions are listed; the totals and "
		         "plots count them all.", MAX_TABLE_ROWS, n);
		fputs("</p>\n", f);
	}
	fputs("</section>\n", f);
	tallies_free(&pens);
	tallies_free(&days);
	rh_end(f, o->generator, o->generated_ms);
}

int pl_report_overview_html(const struct pl_report_entry *v, size_t n,
                            const struct pl_report_overview_options *o,
                            FILE *out)
{
	if ((!v && n) || !out)
		return pl_error_set(PL_ERR_ARG, "pl_report_overview_html: missing argument");
	struct pl_report_overview_options def;
	pl_report_overview_options_init(&def);
	if (o)
		memcpy(&def, o, o->size < sizeof def ? o->size : sizeof def);
	write_overview(v, n, &def, out);
	if (ferror(out) || fflush(out) != 0)
		return pl_error_set(PL_ERR_IO, "writing the overview: %s", strerror(errno));
	return PL_OK;
}
