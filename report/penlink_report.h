/*
 * penlink_report.h — clinic-facing renderings of session records: the
 * printable HTML treatment report of one session, the overview of a period,
 * and FHIR R4 transaction Bundles.
 *
 * Everything here renders from libpenlink's public model and never keeps a
 * copy of it: a record is decoded by pl_record_parse and read through
 * pl_record_to_json / pl_record_telemetry / pl_record_events; depths are
 * written by pl_depth_format_mm, times by pl_time_format_local/_utc, and
 * every text a pen or a client supplied (serials, preset names, lots,
 * annotations) passes pl_text_clean before it reaches an output, then the
 * output's own escaping (HTML entities, JSON string escapes).  Nothing a pen
 * or a client sends can become markup or script in the HTML: it is always
 * text content, the page carries a Content-Security-Policy that allows no
 * script and no fetch, and no untrusted text is written into an attribute.
 *
 * One session's facts, whatever they come from (a parsed record, or one
 * object of penlinkd's JSON export, which is pl_record_to_json's output plus
 * "sha256" and "archived_utc_ms"), are a struct pl_report_entry, so the
 * overview and FHIR code paths are the same for a .plrec file and for
 * penlinkd.
 *
 * Functions return PL_OK or a negative enum pl_return (penlink.h) with the
 * detail recorded by pl_error_set (pl_error_message()).  Not thread-safe
 * with respect to $TZ changes (times are local as the library writes them).
 */
#ifndef PENLINK_REPORT_H
#define PENLINK_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <penlink.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ entries */

/* An annotation added on the host (penctl sessions annotate): opaque client
 * reference, operator, note.  Raw, untrusted text; any field may be NULL. */
struct pl_report_annotation {
	int64_t utc_ms;       /* when it was added; 0 if unknown */
	char *client_ref;
	char *operator_name;
	char *note;
};

struct pl_report_event {
	uint32_t offset_ms;   /* since the start */
	int kind;             /* record.proto EventKind number; -1 unknown name */
	int32_t value;
};

/*
 * One session's facts.  Strings are malloc'd, raw and untrusted (NULL when
 * absent); free everything with pl_report_entry_clear.
 */
struct pl_report_entry {
	char *serial;
	uint8_t uuid[16];
	uint32_t seq;
	char *fw_version;
	int64_t start_ms, end_ms;     /* UTC ms when rtc, else pen uptime ms */
	bool rtc;
	/* the preset in force at the start */
	uint32_t preset_id;
	char *preset_name;
	uint32_t preset_depth_um;
	uint32_t preset_speed;
	int preset_area;              /* enum pl_area; -1 when none */
	uint32_t preset_needles;
	uint32_t preset_max_duration_s;
	uint32_t preset_revision;
	/* the cartridge */
	uint32_t cart_needles;
	uint32_t cart_length_um;
	char *cart_lot;
	char *cart_uid;               /* lowercase hex, "" or NULL when none */
	/* the summary */
	uint32_t run_time_s;
	uint64_t strokes;
	uint32_t max_depth_um;
	uint32_t errors;
	/* events in order */
	struct pl_report_event *events;
	size_t n_events;
	/* the archive's view, when known */
	bool have_sha256;
	uint8_t sha256[32];
	int64_t archived_ms;          /* 0 if unknown */
	/* annotations, oldest first */
	struct pl_report_annotation *annotations;
	size_t n_annotations;
};

void pl_report_entry_clear(struct pl_report_entry *e);

/*
 * Fills *out from one object of the record JSON (README "Session record
 * JSON"; penlinkd's JSON export adds "sha256" and "archived_utc_ms").  An
 * "annotations" array, when present, is read as objects with "utc_ms",
 * "client" (or "client_ref"), "operator" and "note" (missing keys are
 * NULL).  json/len: the text of that one object.
 * Errors: PL_ERR_ARG, PL_ERR_PARSE (not such an object), PL_ERR_MEM.
 */
int pl_report_entry_from_json(const char *json, size_t len,
                              struct pl_report_entry *out);
/* As above for a parsed record (through pl_record_to_json). */
int pl_report_entry_from_record(const struct pl_record *r,
                                struct pl_report_entry *out);
/*
 * Every object of a JSON array (penlinkd's `sessions export --format json`)
 * into a malloc'd array *out of *n entries; free with
 * pl_report_entries_free.
 */
int pl_report_entries_from_json_array(const char *json, size_t len,
                                      struct pl_report_entry **out, size_t *n);
void pl_report_entries_free(struct pl_report_entry *v, size_t n);

/* "start", "depth change", ... for people, "kind N" written into buf when
 * the build does not name it.  buf: 32 bytes.  Returns buf or a static
 * string. */
const char *pl_report_event_label(int kind, char buf[32]);

/* ------------------------------------------------------------------ HTML */

/* Where a record came from, printed so a paper report can be matched to
 * the stored record.  Raw text; NULL when not known. */
struct pl_report_origin {
	const char *kind;     /* "file", "penlinkd archive", "pen", "central archive" */
	const char *where;    /* path, socket, port or central target */
	const char *site;     /* the central site name, when there is one */
	int64_t archived_ms;  /* when the archive committed it; 0 if unknown */
	/* the digest the archive (or pen) lists for the record; compared with
	 * the bytes' own digest and the result printed */
	bool have_listed_sha256;
	uint8_t listed_sha256[32];
};

struct pl_report_options {
	size_t size;          /* set by pl_report_options_init */
	/* The pen's device info (model, hardware revision) when the pen is
	 * attached; NULL: the report says it was not available (a record holds
	 * the firmware version only). */
	const struct pl_device_info *device;
	struct pl_report_origin origin;
	/* Annotations to print beside those of the entry (e.g. from
	 * penlinkd); raw text. */
	const struct pl_report_annotation *annotations;
	size_t n_annotations;
	/* Pixel columns of a plot's drawing area: telemetry is reduced to the
	 * minimum and maximum of each column for drawing (peaks survive);
	 * the archived record is never changed.  Default 720, 100..4000. */
	unsigned plot_columns;
	/* At most this many events are listed in the table (every error is
	 * listed regardless); all are marked on the plots' time axis.
	 * Default 40. */
	unsigned max_event_rows;
	int64_t generated_ms; /* "report generated at"; 0: now */
	const char *generator; /* "penctl 0.1.0"; NULL: "penlink" */
};

void pl_report_options_init(struct pl_report_options *o);

/*
 * The self-contained HTML treatment report of one session: no external
 * scripts, fonts, styles or images; inline CSS and SVG only; print CSS
 * that fits A4 and US Letter (one or two pages).  Its size is bounded
 * whatever the session's length: at most PL_REPORT_HTML_MAX bytes for the
 * plots' default column count, since telemetry is drawn per column and the
 * event table is capped.
 *
 * r: the parsed record; data/len: its bytes (their SHA-256 is printed).
 * Errors: PL_ERR_ARG, PL_ERR_MEM, PL_ERR_IO (writing out).
 */
#define PL_REPORT_HTML_MAX (512u * 1024u)
int pl_report_session_html(const struct pl_record *r, const uint8_t *data,
                           size_t len, const struct pl_report_options *o,
                           FILE *out);

/* The overview of a period (penctl report): sessions per day and per pen,
 * depth used per area, errors: plots and a table. */
struct pl_report_overview_options {
	size_t size;          /* set by pl_report_overview_options_init */
	int64_t since_ms, until_ms;   /* the period shown (until 0: open) */
	const char *serial;   /* the filter applied, for the heading; raw */
	const char *client;   /* the filter applied, for the heading; raw */
	struct pl_report_origin origin;
	int64_t generated_ms;
	const char *generator;
};

void pl_report_overview_options_init(struct pl_report_overview_options *o);

/*
 * The overview of entries v[0..n) (already filtered) as one self-contained
 * HTML page.  Sessions the pen timed by its uptime only are counted but
 * not placed on a day.
 * Errors: PL_ERR_ARG, PL_ERR_MEM, PL_ERR_IO.
 */
int pl_report_overview_html(const struct pl_report_entry *v, size_t n,
                            const struct pl_report_overview_options *o,
                            FILE *out);

/* ------------------------------------------------------------------ FHIR */

/* The identifier systems of the FHIR mapping (README "Reports and FHIR"). */
#define PL_FHIR_SYSTEM_SERIAL "urn:penlink:pen-serial"
#define PL_FHIR_SYSTEM_SESSION "urn:penlink:session"
#define PL_FHIR_SYSTEM_OBSERVATION "urn:penlink:observation"
#define PL_FHIR_SYSTEM_CLIENT "urn:penlink:client"

struct pl_fhir_options {
	size_t size;          /* set by pl_fhir_options_init */
	/* The device info of pens by serial, when known (model). */
	const struct pl_device_info *devices;
	size_t n_devices;
};

void pl_fhir_options_init(struct pl_fhir_options *o);

/*
 * A FHIR R4 transaction Bundle (JSON, malloc'd into *json) for entries
 * v[0..n): one Device per pen serial, and per session a Procedure and
 * three Observations (maximum depth in mm, strokes, run time in s; UCUM
 * units).  Every resource has an identifier derived from (serial, UUID)
 * and is sent as a conditional create (request.ifNoneExist on that
 * identifier), so sending the same Bundle again creates nothing new.
 * fullUrls are urn:uuid: values derived from the same identity, so the
 * Bundle is byte-identical for the same sessions.
 * Errors: PL_ERR_ARG, PL_ERR_MEM.
 */
int pl_fhir_bundle(const struct pl_report_entry *v, size_t n,
                   const struct pl_fhir_options *o, char **json,
                   size_t *len);

#ifdef __cplusplus
}
#endif

#endif
