/* SVG plots: a time series reduced to the minimum and maximum of each pixel
 * column (so a one-sample peak survives however long the session), with
 * axes, ticks, units, an optional step line and event marks on the time
 * axis; and a simple bar chart.  Text reaches the SVG only as element
 * content through rh_text (bar labels may be pens' serials); attributes
 * hold numbers and fixed words only. */
#include <math.h>
#include <string.h>

#include "report_int.h"

#define PL_LEFT 60.0
#define PL_RIGHT 14.0
#define PL_TOP 18.0
#define PL_HEIGHT 100.0
#define PL_BOTTOM 40.0

double rp_nice_step(double span, int want)
{
	if (!(span > 0) || want < 1)
		return 1;
	double raw = span / want;
	double mag = pow(10, floor(log10(raw)));
	double steps[] = {1, 2, 2.5, 5, 10};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
		if (steps[i] * mag >= raw)
			return steps[i] * mag;
	return 10 * mag;
}

/* Time steps people read: seconds, then whole minutes. */
static double time_step(double total_s)
{
	static const double cand[] = {1, 2, 5, 10, 15, 30, 60, 120, 300, 600,
	                              900, 1200, 1800, 3600, 7200, 14400, 28800,
	                              86400};
	for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
		if (total_s / cand[i] <= 10)
			return cand[i];
	return rp_nice_step(total_s, 8);
}

char rp_marker_letter(int kind)
{
	switch (kind) {
	case 1: return 'S';   /* start */
	case 2: return 'E';   /* stop (end) */
	case 3: return 'P';   /* pause */
	case 4: return 'R';   /* resume */
	case 5: return 'D';   /* depth change */
	case 6: return 'V';   /* speed change (velocity) */
	case 7: return 'A';   /* area change */
	case 8: return 'C';   /* cartridge in */
	case 9: return 'O';   /* cartridge out */
	case 10: return 'B';  /* battery low */
	case 11: return '!';  /* error */
	default: return '?';
	}
}

static const char *marker_color(int kind)
{
	switch (kind) {
	case 5: return "#1f5fa8";
	case 6: return "#6a3d9a";
	case 7: return "#2e7d32";
	case 8: case 9: return "#8d6e00";
	case 10: return "#e65100";
	case 11: return "#b00020";
	default: return "#555555";
	}
}

void rp_marker_legend(FILE *f)
{
	static const int kinds[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
	char lbl[32];
	fputs("<div class=\"key\">Events on the time axis: ", f);
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		fprintf(f, "<span><b style=\"color:%s\">", marker_color(kinds[i]));
		char l[2] = {rp_marker_letter(kinds[i]), 0};
		rh_text(f, l);
		fputs("</b> ", f);
		rh_text(f, pl_report_event_label(kinds[i], lbl));
		fputs("</span>", f);
	}
	fputs("</div>\n", f);
}

static void tick_label(char *buf, size_t cap, double v, int decimals)
{
	if (fabs(v) < 1e-9)
		v = 0;
	snprintf(buf, cap, "%.*f", decimals, v);
}

static void time_label(char *buf, size_t cap, double t, double step)
{
	long s = lround(t);
	if (step >= 60)
		snprintf(buf, cap, "%ld", s / 60);
	else
		snprintf(buf, cap, "%ld:%02ld", s / 60, s % 60);
}

void rp_plot_svg(FILE *f, const struct rp_plot *p)
{
	unsigned cols = p->columns ? p->columns : 720;
	double W = PL_LEFT + cols + PL_RIGHT;
	double H = PL_TOP + PL_HEIGHT + PL_BOTTOM;
	double T = p->t_total_s > 0 ? p->t_total_s : 1;

	/* The y range: the data's (and the step line's), padded to ticks. */
	double lo = INFINITY, hi = -INFINITY;
	for (size_t i = 0; i < p->n; i++) {
		double v = p->v[i] * p->scale;
		if (v < lo)
			lo = v;
		if (v > hi)
			hi = v;
	}
	for (size_t i = 0; i < p->n_steps; i++) {
		if (p->steps[i].value < lo)
			lo = p->steps[i].value;
		if (p->steps[i].value > hi)
			hi = p->steps[i].value;
	}
	if (!(lo <= hi)) {
		lo = 0;
		hi = 1;
	}
	if (p->y_from_zero)
		lo = 0;
	if (hi - lo < 1e-9)
		hi = lo + (lo > 0 ? lo * 0.1 : 1);
	double ystep = rp_nice_step(hi - lo, 5);
	if (p->decimals == 0 && ystep != floor(ystep))
		ystep = ceil(ystep); /* labels without decimals: whole steps */
	double y0 = floor(lo / ystep) * ystep, y1 = ceil(hi / ystep) * ystep;
	if (y1 - y0 < 1e-9)
		y1 = y0 + ystep;
	/* a little headroom so the top value does not touch the frame */
	if (hi > y1 - ystep * 0.05)
		y1 += ystep;

#define X(t) (PL_LEFT + (t) / T * cols)
#define Y(v) (PL_TOP + PL_HEIGHT - ((v) - y0) / (y1 - y0) * PL_HEIGHT)

	fprintf(f, "<figure><svg class=\"plot %s\" xmlns=\"http://www.w3.org/2000/svg\" "
	        "viewBox=\"0 0 %.0f %.0f\" role=\"img\">\n", p->css_class, W, H);
	fputs("<title>", f);
	rh_text(f, p->title);
	fputs("</title>\n", f);
	fprintf(f, "<text x=\"%.0f\" y=\"12\" font-size=\"11\" font-weight=\"bold\">",
	        PL_LEFT);
	rh_text(f, p->title);
	fputs("</text>\n", f);
	/* frame and grid */
	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%u\" height=\"%.1f\" "
	        "fill=\"#fbfbfb\" stroke=\"#888\" stroke-width=\"0.6\"/>\n",
	        PL_LEFT, PL_TOP, cols, PL_HEIGHT);
	char lbl[48];
	fputs("<g font-size=\"9.5\" fill=\"#333\">\n", f);
	for (double v = y0; v <= y1 + ystep * 1e-6; v += ystep) {
		double y = Y(v);
		fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
		        "stroke=\"#ddd\" stroke-width=\"0.5\"/>", PL_LEFT, PL_LEFT + cols,
		        y, y);
		fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
		        "stroke=\"#555\" stroke-width=\"0.6\"/>", PL_LEFT - 4, PL_LEFT,
		        y, y);
		tick_label(lbl, sizeof lbl, v, p->decimals);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
		        PL_LEFT - 6, y + 3.2, lbl);
	}
	double tstep = time_step(T);
	for (double t = 0; t <= T + 1e-6; t += tstep) {
		double x = X(t);
		fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
		        "stroke=\"#eee\" stroke-width=\"0.5\"/>", x, x, PL_TOP,
		        PL_TOP + PL_HEIGHT);
		fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
		        "stroke=\"#555\" stroke-width=\"0.6\"/>", x, x,
		        PL_TOP + PL_HEIGHT, PL_TOP + PL_HEIGHT + 4);
		time_label(lbl, sizeof lbl, t, tstep);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
		        x, PL_TOP + PL_HEIGHT + 13, lbl);
	}
	/* axis titles */
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">",
	        PL_LEFT + cols, H - 3);
	rh_text(f, tstep >= 60 ? "time since start (min)" : "time since start (m:ss)");
	fputs("</text>\n", f);
	fprintf(f, "<text transform=\"translate(11 %.1f) rotate(-90)\" "
	        "text-anchor=\"middle\">", PL_TOP + PL_HEIGHT / 2);
	rh_text(f, p->y_label);
	fputs("</text>\n</g>\n", f);

	/* events: a faint line across the plot and a letter under the axis */
	for (size_t i = 0; i < p->n_markers; i++) {
		double t = p->markers[i].t_s;
		if (t < 0 || t > T)
			continue;
		double x = X(t);
		const char *c = marker_color(p->markers[i].kind);
		fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
		        "stroke=\"%s\" stroke-width=\"0.5\" stroke-opacity=\"0.45\"/>",
		        x, x, PL_TOP, PL_TOP + PL_HEIGHT, c);
		char l[2] = {rp_marker_letter(p->markers[i].kind), 0};
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"8.5\" "
		        "text-anchor=\"middle\" fill=\"%s\" font-weight=\"bold\">",
		        x, PL_TOP + PL_HEIGHT + 25, c);
		rh_text(f, l);
		fputs("</text>\n", f);
	}

	/* the series: per column the minimum and the maximum, joined */
	if (p->n && p->dt_s > 0) {
		fprintf(f, "<path class=\"series\" fill=\"none\" stroke=\"%s\" "
		        "stroke-width=\"1.3\" stroke-linejoin=\"round\" d=\"",
		        p->color);
		bool first = true;
		for (unsigned c = 0; c < cols; c++) {
			double ta = (double)c * T / cols, tb = (double)(c + 1) * T / cols;
			double ia = ceil(ta / p->dt_s), ib = ceil(tb / p->dt_s);
			size_t i0 = ia < 0 ? 0 : (size_t)ia;
			size_t i1 = ib < 0 ? 0 : (size_t)ib;
			if (i0 >= p->n)
				break;
			if (i1 > p->n)
				i1 = p->n;
			if (i1 <= i0)
				i1 = i0 + 1; /* fewer samples than columns: the next one */
			uint32_t mn = p->v[i0], mx = p->v[i0];
			for (size_t i = i0 + 1; i < i1; i++) {
				if (p->v[i] < mn)
					mn = p->v[i];
				if (p->v[i] > mx)
					mx = p->v[i];
			}
			double x = PL_LEFT + c + 0.5;
			fprintf(f, "%s%.1f %.1f", first ? "M" : "L", x, Y(mx * p->scale));
			if (mn != mx)
				fprintf(f, "L%.1f %.1f", x, Y(mn * p->scale));
			first = false;
		}
		fputs("\"/>\n", f);
	}
	/* the step line (set depth) */
	if (p->n_steps) {
		fprintf(f, "<path class=\"steps\" fill=\"none\" stroke=\"#c62828\" "
		        "stroke-width=\"1\" stroke-dasharray=\"4 2\" d=\"");
		for (size_t i = 0; i < p->n_steps; i++) {
			double t = p->steps[i].t_s < 0 ? 0 : p->steps[i].t_s > T ? T : p->steps[i].t_s;
			double tn = i + 1 < p->n_steps ? p->steps[i + 1].t_s : T;
			if (tn > T)
				tn = T;
			double y = Y(p->steps[i].value);
			fprintf(f, "%s%.1f %.1fH%.1f", i ? "L" : "M", X(t), y, X(tn));
		}
		fputs("\"/>\n", f);
	}
	/* the legend */
	fprintf(f, "<g font-size=\"9\"><line x1=\"%.1f\" x2=\"%.1f\" y1=\"9\" "
	        "y2=\"9\" stroke=\"%s\" stroke-width=\"2\"/><text x=\"%.1f\" y=\"12\">",
	        PL_LEFT + cols - 250, PL_LEFT + cols - 235, p->color,
	        PL_LEFT + cols - 231);
	rh_text(f, "measured (min/max per column)");
	fputs("</text>", f);
	if (p->n_steps) {
		fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"9\" y2=\"9\" "
		        "stroke=\"#c62828\" stroke-width=\"1.2\" stroke-dasharray=\"4 2\"/>"
		        "<text x=\"%.1f\" y=\"12\">", PL_LEFT + cols - 80,
		        PL_LEFT + cols - 65, PL_LEFT + cols - 61);
		rh_text(f, p->step_label ? p->step_label : "set");
		fputs("</text>", f);
	}
	fputs("</g>\n", f);
	if (!p->n) {
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
		        "font-size=\"11\" fill=\"#777\">", PL_LEFT + cols / 2.0,
		        PL_TOP + PL_HEIGHT / 2);
		rh_text(f, "no telemetry in this record");
		fputs("</text>\n", f);
	}
	fputs("</svg></figure>\n", f);
#undef X
#undef Y
}

void rp_bars_svg(FILE *f, const char *title, const char *y_label,
                 const struct rp_bar *b, size_t n, int decimals,
                 const char *color)
{
	double cols = 720;
	double W = PL_LEFT + cols + PL_RIGHT;
	double bottom = 58;
	double H = PL_TOP + PL_HEIGHT + bottom;
	double hi = 0;
	for (size_t i = 0; i < n; i++) {
		if (b[i].value > hi)
			hi = b[i].value;
		if (b[i].hi > hi)
			hi = b[i].hi;
	}
	if (hi <= 0)
		hi = 1;
	double ystep = rp_nice_step(hi, 5);
	if (decimals == 0 && ystep != floor(ystep))
		ystep = ceil(ystep); /* counts: whole steps */
	double y1 = ceil(hi / ystep) * ystep;
	if (y1 < hi * 1.04)
		y1 += ystep;
#define Y(v) (PL_TOP + PL_HEIGHT - (v) / y1 * PL_HEIGHT)
	fprintf(f, "<figure><svg class=\"plot bars\" xmlns=\"http://www.w3.org/2000/svg\" "
	        "viewBox=\"0 0 %.0f %.0f\" role=\"img\">\n<title>", W, H);
	rh_text(f, title);
	fprintf(f, "</title><text x=\"%.0f\" y=\"12\" font-size=\"11\" "
	        "font-weight=\"bold\">", PL_LEFT);
	rh_text(f, title);
	fputs("</text>\n", f);
	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.0f\" height=\"%.1f\" "
	        "fill=\"#fbfbfb\" stroke=\"#888\" stroke-width=\"0.6\"/>\n<g "
	        "font-size=\"9.5\" fill=\"#333\">", PL_LEFT, PL_TOP, cols, PL_HEIGHT);
	char lbl[48];
	for (double v = 0; v <= y1 + ystep * 1e-6; v += ystep) {
		fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
		        "stroke=\"#ddd\" stroke-width=\"0.5\"/>", PL_LEFT - 4,
		        PL_LEFT + cols, Y(v), Y(v));
		tick_label(lbl, sizeof lbl, v, decimals);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
		        PL_LEFT - 6, Y(v) + 3.2, lbl);
	}
	fprintf(f, "<text transform=\"translate(11 %.1f) rotate(-90)\" "
	        "text-anchor=\"middle\">", PL_TOP + PL_HEIGHT / 2);
	rh_text(f, y_label);
	fputs("</text></g>\n", f);
	double slot = n ? cols / n : cols;
	double bw = slot * 0.7 > 60 ? 60 : slot * 0.7;
	/* label every k-th bar so labels never overlap */
	size_t every = 1;
	while (slot * every < 34)
		every++;
	for (size_t i = 0; i < n; i++) {
		double x = PL_LEFT + slot * i + (slot - bw) / 2;
		fprintf(f, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
		        "height=\"%.1f\" fill=\"%s\"/>", x, Y(b[i].value), bw,
		        PL_TOP + PL_HEIGHT - Y(b[i].value), color);
		if (b[i].hi > b[i].lo)
			fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
			        "stroke=\"#111\" stroke-width=\"1.4\"/>", x + bw / 2,
			        x + bw / 2, Y(b[i].lo), Y(b[i].hi));
		if (i % every == 0) {
			fprintf(f, "<text transform=\"translate(%.1f %.1f) rotate(-35)\" "
			        "font-size=\"8.5\" text-anchor=\"end\" fill=\"#333\">",
			        x + bw / 2, PL_TOP + PL_HEIGHT + 10);
			rh_text(f, b[i].label);
			fputs("</text>", f);
		}
		fputc('\n', f);
	}
	if (!n) {
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
		        "font-size=\"11\" fill=\"#777\">", PL_LEFT + cols / 2,
		        PL_TOP + PL_HEIGHT / 2);
		rh_text(f, "no sessions in this period");
		fputs("</text>\n", f);
	}
	fputs("</svg></figure>\n", f);
#undef Y
}
