/* Internal to penlink_report: the HTML door and the SVG plots. */
#ifndef PENLINK_REPORT_INT_H
#define PENLINK_REPORT_INT_H

#include <stdarg.h>

#include "penlink_report.h"

#if defined(__GNUC__)
#define RP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RP_PRINTF(a, b)
#endif

/* ---- entries (entry.c) */

/* 9999-12-31T23:59:59.999Z, the last instant a calendar (or FHIR's
 * four-digit years) shows. */
#define RP_CALENDAR_END_MS 253402300799999LL
/* Whether utc_ms lies in the years 1970..9999.  A pen's clock, or a row
 * altered by hand, may put a session anywhere an int64_t reaches. */
bool rp_on_calendar(int64_t utc_ms);
/* Whether e can be placed on a calendar: timed by the pen's clock, its
 * start in the years 1970..9999. */
bool rp_entry_dated(const struct pl_report_entry *e);

/* ---- the HTML door (html.c)
 *
 * Untrusted text reaches the page only through rh_text: cleaned by
 * pl_text_clean(PL_TEXT_TERMINAL) (valid UTF-8, control characters and
 * direction overrides as visible escapes), then every character HTML gives
 * a meaning to (& < > " ') written as an entity.  It is only ever used for
 * element content, never inside an attribute, a <style> or an SVG path. */
void rh_text(FILE *f, const char *raw);
/* Text the program itself formats (numbers, fixed words), escaped the
 * same way. */
void rh_textf(FILE *f, const char *fmt, ...) RP_PRINTF(2, 3);
/* <!DOCTYPE html> ... <body>: the CSP, the inline style sheet, the title
 * (raw, cleaned like any text). */
void rh_begin(FILE *f, const char *title_raw);
void rh_end(FILE *f, const char *generator, int64_t generated_ms);
/* A time for people: local time with its UTC offset (pl_time_format_local),
 * or "pen uptime +N s" when the pen's clock was not set. */
void rh_time(FILE *f, int64_t ms, bool rtc);
/* The time zone name of the local time at utc_ms ("CEST", "UTC"). */
const char *rh_zone(int64_t utc_ms, char buf[64]);
/* "1:02:03" or "12:03" of a number of seconds. */
void rh_span(FILE *f, uint64_t seconds);
/* Area names for people ("chin-jaw" as the library names it), "area N"
 * for numbers this build does not know. */
const char *rh_area(int area, char buf[24]);
/* The origin block (record digest and where it came from). */
void rh_origin(FILE *f, const struct pl_report_origin *o);

/* ---- SVG plots (plot.c) */

struct rp_marker {
	double t_s;           /* seconds since the start */
	int kind;             /* EventKind */
};

struct rp_step {
	double t_s;           /* from this time on ... */
	double value;         /* ... the value (display units) */
};

struct rp_plot {
	const char *title;    /* fixed text */
	const char *y_label;  /* "depth (mm)" */
	const char *color;    /* the series' colour, "#1f5fa8" */
	const char *css_class;
	/* the series: n samples every dt_s, value = v[i] * scale */
	const uint32_t *v;
	size_t n;
	double dt_s;
	double scale;
	int decimals;         /* tick label decimals */
	double t_total_s;     /* the x range */
	bool y_from_zero;
	unsigned columns;     /* drawing columns (min/max reduction) */
	/* an optional step line (set depth) */
	const struct rp_step *steps;
	size_t n_steps;
	const char *step_label;
	/* events marked on the time axis */
	const struct rp_marker *markers;
	size_t n_markers;
};

void rp_plot_svg(FILE *f, const struct rp_plot *p);
/* The key to the event letters used on the time axis. */
void rp_marker_legend(FILE *f);
/* The marker letter and colour class of an event kind. */
char rp_marker_letter(int kind);

/* A bar chart: n bars with labels (raw text, cleaned) and values. */
struct rp_bar {
	const char *label;
	double value;
	double lo, hi;        /* a range drawn over the bar when hi > lo */
};
void rp_bars_svg(FILE *f, const char *title, const char *y_label,
                 const struct rp_bar *b, size_t n, int decimals,
                 const char *color);

/* ---- helpers */
/* The nice tick step for a range spanning `span` with about `want` ticks. */
double rp_nice_step(double span, int want);

#endif
