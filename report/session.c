/* The HTML treatment report of one session. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "report_int.h"

void pl_report_options_init(struct pl_report_options *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof *o);
	o->size = sizeof *o;
	o->plot_columns = 720;
	o->max_event_rows = 40;
}

/* A table row with a header cell and raw text. */
static void row_text(FILE *f, const char *th, const char *raw)
{
	fputs("<tr><th>", f);
	rh_text(f, th);
	fputs("</th><td>", f);
	rh_text(f, raw);
	fputs("</td></tr>\n", f);
}

static void row_open(FILE *f, const char *th)
{
	fputs("<tr><th>", f);
	rh_text(f, th);
	fputs("</th><td>", f);
}

/* A table row with a header cell and formatted text (rh_textf). */
static void row_textf(FILE *f, const char *th, const char *fmt, ...)
    RP_PRINTF(3, 4);

static void row_textf(FILE *f, const char *th, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	row_text(f, th, buf);
}

static void row_time(FILE *f, const char *th, int64_t ms, bool rtc)
{
	row_open(f, th);
	rh_time(f, ms, rtc);
	fputs("</td></tr>\n", f);
}

/* A row whose text is an identifier, set in monospace. */
static void row_mono(FILE *f, const char *th, const char *raw)
{
	row_open(f, th);
	fputs("<span class=\"mono\">", f);
	rh_text(f, raw);
	fputs("</span></td></tr>\n", f);
}

static const char *needles_text(uint32_t n, char buf[32])
{
	if (n == 0)
		return "nano";
	snprintf(buf, 32, "%" PRIu32 " needles", n);
	return buf;
}

/* The event's value with its unit, for people. */
static void event_value(FILE *f, const struct pl_report_event *e)
{
	char mm[PL_MM_TEXT_MAX], a[32];
	switch (e->kind) {
	case 1:
		if (e->value)
			rh_textf(f, "preset %" PRId32, e->value);
		break;
	case 5:
		if (e->value >= 0)
			rh_textf(f, "%s mm", pl_depth_format_mm((uint32_t)e->value,
			                                        PL_MM_FIXED, mm));
		break;
	case 6:
		rh_textf(f, "level %" PRId32, e->value);
		break;
	case 7:
		rh_text(f, rh_area(e->value, a));
		break;
	case 8:
		rh_text(f, needles_text(e->value < 0 ? 0 : (uint32_t)e->value, a));
		break;
	case 10:
		rh_textf(f, "%" PRId32 " mV", e->value);
		break;
	case 11:
		rh_textf(f, "code %" PRId32 ": %s", e->value,
		         pl_record_error_meaning(e->value));
		break;
	default:
		if (e->value)
			rh_textf(f, "%" PRId32, e->value);
		break;
	}
}

static void offset_text(FILE *f, uint32_t ms)
{
	rh_textf(f, "%02" PRIu32 ":%02" PRIu32 ".%03" PRIu32, ms / 60000u,
	         ms / 1000u % 60u, ms % 1000u);
}

/* The set depth over time from the preset and the depth changes. */
static struct rp_step *set_depth_steps(const struct pl_report_entry *e,
                                       size_t *n)
{
	struct rp_step *s = malloc((e->n_events + 1) * sizeof *s);
	*n = 0;
	if (!s)
		return NULL;
	s[(*n)++] = (struct rp_step){0, e->preset_depth_um / 1000.0};
	for (size_t i = 0; i < e->n_events; i++)
		if (e->events[i].kind == 5 && e->events[i].value >= 0)
			s[(*n)++] = (struct rp_step){e->events[i].offset_ms / 1000.0,
			                             e->events[i].value / 1000.0};
	return s;
}

static void annotations(FILE *f, const struct pl_report_annotation *a,
                        size_t n, bool *any_client, bool *any_operator)
{
	char t[PL_TIME_TEXT_MAX];
	for (size_t i = 0; i < n; i++) {
		fputs("<tr><td>", f);
		if (a[i].utc_ms)
			rh_text(f, pl_time_format_local(a[i].utc_ms, t));
		fputs("</td><td>", f);
		rh_text(f, a[i].client_ref);
		fputs("</td><td>", f);
		rh_text(f, a[i].operator_name);
		fputs("</td><td>", f);
		rh_text(f, a[i].note);
		fputs("</td></tr>\n", f);
		*any_client |= a[i].client_ref && *a[i].client_ref;
		*any_operator |= a[i].operator_name && *a[i].operator_name;
	}
}

/* The latest non-empty value of a field over both annotation lists. */
static const char *latest(const struct pl_report_annotation *a, size_t n,
                          const struct pl_report_annotation *b, size_t m,
                          size_t field)
{
	const char *v = NULL;
	for (size_t i = 0; i < n + m; i++) {
		const struct pl_report_annotation *x = i < n ? &a[i] : &b[i - n];
		const char *s = field == 0 ? x->client_ref : x->operator_name;
		if (s && *s)
			v = s;
	}
	return v;
}

static void write_report(const struct pl_record *r, const uint8_t *data,
                         size_t len, const struct pl_report_options *o,
                         const struct pl_report_entry *e, FILE *f)
{
	char uuid[37], mm[PL_MM_TEXT_MAX], buf[64], hex[65], z[64];
	pl_uuid_format(e->uuid, uuid);

	/* the title: fixed words, the serial (cleaned by the door), seq */
	char title[160];
	snprintf(title, sizeof title, "Treatment report %.64s seq %" PRIu32,
	         e->serial ? e->serial : "", e->seq);
	rh_begin(f, title);

	fputs("<h1>Microneedling treatment report</h1>\n<p class=\"sub\">Pen ", f);
	rh_text(f, e->serial);
	fputs(", session <span class=\"mono\">", f);
	rh_text(f, uuid);
	fputs("</span>, sequence ", f);
	rh_textf(f, "%" PRIu32, e->seq);
	fputs("</p>\n", f);

	/* ---- who, what, when */
	fputs("<section class=\"grid\"><div><h2>Pen</h2><table class=\"kv\">\n", f);
	row_text(f, "serial", e->serial);
	const struct pl_device_info *d = o->device;
	row_text(f, "model", d ? d->model : "not recorded (pen not attached)");
	row_text(f, "hardware", d ? d->hw_revision : "not recorded (pen not attached)");
	row_text(f, "firmware", e->fw_version && *e->fw_version ? e->fw_version
	                                                       : "unknown");
	fputs("</table></div>\n<div><h2>Session</h2><table class=\"kv\">\n", f);
	row_mono(f, "UUID", uuid);
	row_textf(f, "sequence", "%" PRIu32, e->seq);
	row_time(f, "start", e->start_ms, e->rtc);
	row_time(f, "end", e->end_ms, e->rtc);
	row_open(f, "duration");
	rh_span(f, pl_time_span_ms(e->start_ms, e->end_ms) / 1000u);
	fputs("</td></tr>\n", f);
	if (e->rtc)
		row_text(f, "time zone", rh_zone(e->start_ms, z));
	const char *client = latest(e->annotations, e->n_annotations,
	                            o->annotations, o->n_annotations, 0);
	const char *op = latest(e->annotations, e->n_annotations, o->annotations,
	                        o->n_annotations, 1);
	row_text(f, "operator", op ? op : "not annotated");
	row_text(f, "client reference", client ? client : "not annotated");
	fputs("</table></div></section>\n", f);

	/* ---- preset, cartridge, summary */
	fputs("<section class=\"grid\"><div><h2>Preset in force</h2><table class=\"kv\">\n", f);
	row_open(f, "preset");
	rh_textf(f, "%" PRIu32 " ", e->preset_id);
	fputs("&ldquo;", f);
	rh_text(f, e->preset_name);
	fputs("&rdquo;</td></tr>\n", f);
	row_textf(f, "revision", "%" PRIu32, e->preset_revision);
	row_textf(f, "depth", "%s mm",
	          pl_depth_format_mm(e->preset_depth_um, PL_MM_FIXED, mm));
	row_textf(f, "speed", "level %" PRIu32, e->preset_speed);
	row_text(f, "area", e->preset_area >= 0 ? rh_area(e->preset_area, buf)
	                                        : "none");
	row_text(f, "needles", needles_text(e->preset_needles, buf));
	row_open(f, "time limit");
	if (e->preset_max_duration_s)
		rh_span(f, e->preset_max_duration_s);
	else
		rh_text(f, "none");
	fputs("</td></tr>\n</table>\n<h2>Cartridge</h2><table class=\"kv\">\n", f);
	row_text(f, "needles", needles_text(e->cart_needles, buf));
	row_textf(f, "needle length", "%s mm",
	          pl_depth_format_mm(e->cart_length_um, PL_MM_FIXED, mm));
	row_text(f, "lot", e->cart_lot && *e->cart_lot ? e->cart_lot : "unknown");
	row_mono(f, "UID", e->cart_uid && *e->cart_uid ? e->cart_uid : "none");
	fputs("</table></div>\n", f);

	fputs("<div><h2>Summary</h2><table class=\"kv\">\n", f);
	row_open(f, "run time");
	rh_span(f, e->run_time_s);
	fputs(" (motor running)</td></tr>\n", f);
	row_textf(f, "strokes", "%" PRIu64, e->strokes);
	row_textf(f, "max depth", "%s mm",
	          pl_depth_format_mm(e->max_depth_um, PL_MM_FIXED, mm));
	row_open(f, "errors");
	if (e->errors)
		fputs("<span class=\"err\">", f);
	rh_textf(f, "%" PRIu32, e->errors);
	if (e->errors)
		fputs("</span>", f);
	/* each error with what it means */
	for (size_t i = 0; i < e->n_events; i++) {
		if (e->events[i].kind != 11)
			continue;
		fputs("<br>", f);
		offset_text(f, e->events[i].offset_ms);
		fputs(" &ndash; ", f);
		rh_textf(f, "code %" PRId32 ": %s", e->events[i].value,
		         pl_record_error_meaning(e->events[i].value));
	}
	fputs("</td></tr>\n", f);
	/* areas treated, in order */
	row_open(f, "areas treated");
	{
		bool seen[PL_AREA_COUNT + 1];
		memset(seen, 0, sizeof seen);
		bool first = true;
		int cur = e->preset_area;
		for (size_t i = 0; i <= e->n_events; i++) {
			if (i > 0) {
				if (e->events[i - 1].kind != 7)
					continue;
				cur = e->events[i - 1].value;
			}
			if (cur < 0)
				continue;
			int slot = cur < PL_AREA_COUNT ? cur : PL_AREA_COUNT;
			if (slot < PL_AREA_COUNT && seen[slot])
				continue;
			seen[slot] = true;
			if (!first)
				fputs(", ", f);
			rh_text(f, rh_area(cur, buf));
			first = false;
		}
		if (first)
			rh_text(f, "none recorded");
	}
	fputs("</td></tr>\n", f);
	struct pl_telemetry tel;
	pl_record_telemetry(r, &tel);
	row_open(f, "telemetry");
	if (tel.count)
		rh_textf(f, "%zu samples every %s ms", tel.count,
		         pl_depth_format_mm(tel.interval_us, PL_MM_SHORT, mm));
	else
		rh_text(f, "none");
	fputs("</td></tr>\n</table></div></section>\n", f);

	/* ---- plots */
	double dt = tel.interval_us / 1e6;
	double T = (double)pl_time_span_ms(e->start_ms, e->end_ms) / 1000.0;
	if (tel.count * dt > T)
		T = tel.count * dt;
	for (size_t i = 0; i < e->n_events; i++)
		if (e->events[i].offset_ms / 1000.0 > T)
			T = e->events[i].offset_ms / 1000.0;
	struct rp_marker *mk = malloc((e->n_events ? e->n_events : 1) * sizeof *mk);
	size_t n_mk = 0;
	for (size_t i = 0; mk && i < e->n_events; i++)
		mk[n_mk++] = (struct rp_marker){e->events[i].offset_ms / 1000.0,
		                                e->events[i].kind};
	size_t n_steps = 0;
	struct rp_step *steps = set_depth_steps(e, &n_steps);
	fputs("<section class=\"long\"><h2>Telemetry</h2>\n", f);
	/* The three plots differ only in these (sigrok-style: the table is
	 * the list of plots). */
	const struct {
		const char *title, *y_label, *color, *css_class;
		const uint32_t *v;
		double scale;
		int decimals;
		bool y_from_zero, set_depth;
	} series[] = {
		{"Needle depth: measured against set", "depth (mm)", "#1f5fa8",
		 "depth", tel.depth_um, 0.001, 2, true, true},
		{"Motor current", "current (mA)", "#2e7d32", "current",
		 tel.current_ma, 1, 0, true, false},
		{"Battery voltage", "battery (mV)", "#e65100", "battery",
		 tel.battery_mv, 1, 0, false, false},
	};
	for (size_t i = 0; i < sizeof series / sizeof *series; i++) {
		struct rp_plot p = {
			.title = series[i].title,
			.y_label = series[i].y_label,
			.color = series[i].color,
			.css_class = series[i].css_class,
			.v = series[i].v, .n = tel.count, .dt_s = dt,
			.scale = series[i].scale, .decimals = series[i].decimals,
			.t_total_s = T, .y_from_zero = series[i].y_from_zero,
			.columns = o->plot_columns,
			.steps = series[i].set_depth ? steps : NULL,
			.n_steps = series[i].set_depth ? n_steps : 0,
			.step_label = "set depth",
			.markers = mk, .n_markers = n_mk,
		};
		rp_plot_svg(f, &p);
	}
	rp_marker_legend(f);
	fputs("</section>\n", f);
	free(mk);
	free(steps);

	/* ---- events */
	unsigned cap = o->max_event_rows;
	size_t shown = 0;
	fputs("<section class=\"long\"><h2>Events</h2>\n", f);
	if (!e->n_events) {
		rh_text(f, "none recorded");
	} else {
		fputs("<table class=\"list\"><thead><tr><th class=\"num\">time</th>"
		      "<th>event</th><th>value</th><th class=\"num\">time</th>"
		      "<th>event</th><th>value</th></tr></thead><tbody>\n", f);
		/* the first cap events, and every error after them */
		size_t *idx = malloc(e->n_events * sizeof *idx);
		for (size_t i = 0; idx && i < e->n_events; i++)
			if (shown < cap || e->events[i].kind == 11)
				idx[shown++] = i;
		size_t half = (shown + 1) / 2;
		for (size_t k = 0; idx && k < half; k++) {
			fputs("<tr>", f);
			for (size_t col = 0; col < 2; col++) {
				size_t j = k + col * half;
				if (j >= shown) {
					fputs("<td></td><td></td><td></td>", f);
					continue;
				}
				const struct pl_report_event *ev = &e->events[idx[j]];
				char lbl[32];
				fputs(ev->kind == 11 ? "<td class=\"num err\">" : "<td class=\"num\">", f);
				offset_text(f, ev->offset_ms);
				fputs("</td><td>", f);
				rh_text(f, pl_report_event_label(ev->kind, lbl));
				fputs("</td><td>", f);
				event_value(f, ev);
				fputs("</td>", f);
			}
			fputs("</tr>\n", f);
		}
		fputs("</tbody></table>\n", f);
		if (shown < e->n_events) {
			fputs("<p class=\"note\">", f);
			rh_textf(f, "%zu of %zu events listed (every error among them); "
			         "all are marked on the time axis above; penctl sessions "
			         "show lists them all.", shown, e->n_events);
			fputs("</p>\n", f);
		}
		free(idx);
	}
	fputs("</section>\n", f);

	/* ---- annotations */
	fputs("<section><h2>Annotations</h2>\n", f);
	if (e->n_annotations + o->n_annotations == 0) {
		rh_text(f, "none: no client reference, operator or note was added "
		        "to this session");
	} else {
		bool c = false, opn = false;
		fputs("<table class=\"list\"><thead><tr><th>added</th><th>client "
		      "reference</th><th>operator</th><th>note</th></tr></thead>"
		      "<tbody>\n", f);
		annotations(f, e->annotations, e->n_annotations, &c, &opn);
		annotations(f, o->annotations, o->n_annotations, &c, &opn);
		fputs("</tbody></table>\n", f);
	}
	fputs("</section>\n", f);

	/* ---- the record */
	uint8_t sha[32];
	pl_sha256(data, len, sha);
	pl_hex_format(sha, 32, hex);
	fputs("<section><h2>Record</h2><table class=\"kv\">\n", f);
	row_mono(f, "SHA-256", hex);
	row_textf(f, "size", "%zu bytes", len);
	if (o->origin.have_listed_sha256) {
		bool same = memcmp(sha, o->origin.listed_sha256, 32) == 0;
		row_open(f, "digest check");
		if (same) {
			rh_text(f, "matches the digest the source lists");
		} else {
			pl_hex_format(o->origin.listed_sha256, 32, hex);
			fputs("<span class=\"err\">", f);
			rh_textf(f, "DIFFERS from the digest the source lists (%s)", hex);
			fputs("</span>", f);
		}
		fputs("</td></tr>\n", f);
	}
	rh_origin(f, &o->origin);
	fputs("</table></section>\n", f);
	rh_end(f, o->generator, o->generated_ms);
}

int pl_report_session_html(const struct pl_record *r, const uint8_t *data,
                           size_t len, const struct pl_report_options *o,
                           FILE *out)
{
	if (!r || !out || (!data && len))
		return pl_error_set(PL_ERR_ARG, "pl_report_session_html: missing argument");
	struct pl_report_options def;
	if (!o || o->size < sizeof *o) {
		pl_report_options_init(&def);
		if (o)
			memcpy(&def, o, o->size < sizeof def ? o->size : sizeof def);
		def.size = sizeof def;
		o = &def;
	}
	struct pl_report_options oo = *o;
	if (oo.plot_columns < 100 || oo.plot_columns > 4000)
		oo.plot_columns = 720;
	struct pl_report_entry e;
	int rc = pl_report_entry_from_record(r, &e);
	if (rc != PL_OK)
		return rc;
	write_report(r, data ? data : (const uint8_t *)"", len, &oo, &e, out);
	pl_report_entry_clear(&e);
	if (ferror(out) || fflush(out) != 0)
		return pl_error_set(PL_ERR_IO, "writing the report: %s", strerror(errno));
	return PL_OK;
}
