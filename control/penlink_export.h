/*
 * penlink_export.h — the session export formats, in one place: penlinkd's
 * `sessions export` from its archive and penctl --central's from the
 * clinic's PostgreSQL render every row here, so a CSV or JSON export looks
 * the same whichever archive it came from.
 *
 * CSV: RFC 4180 (CRLF, quoted where needed); text from a pen or a person is
 * cleaned with pl_text_clean(PL_TEXT_CSV) first (control characters shown
 * escaped, the spreadsheet formula guard).  Columns are only ever added, at
 * the end.  JSON: the record's pl_record_to_json() object plus what the
 * archive knows; keys are only ever added.
 */
#ifndef PENLINK_EXPORT_H
#define PENLINK_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A growable text buffer: appends never fail, an allocation failure sets
 * oom and later appends do nothing, so a caller checks once at the end.
 * p is NUL-terminated (NULL while empty).  Zero-initialise; free with
 * plc_buf_free(). */
struct plc_buf {
	char *p;
	size_t len, cap;
	bool oom;
};
void plc_buf_add(struct plc_buf *b, const void *s, size_t n);
void plc_buf_str(struct plc_buf *b, const char *s);
void plc_buf_fmt(struct plc_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void plc_buf_free(struct plc_buf *b);

/* What an archive keeps of a session beside its key (serial, UUID) and
 * its record: the pen's listing of it and when it was archived.  The one
 * description of an archived session, in penlinkd's archive, its central
 * outbox and every export, whichever archive the session came from. */
struct plc_session_summary {
	uint32_t seq;            /* the pen's sequence number */
	uint64_t size;           /* bytes of the record */
	uint8_t sha256[32];      /* of the record */
	int64_t start_ms, end_ms;
	bool rtc_time;           /* start/end are UTC (else the pen's uptime) */
	int64_t archived_ms;     /* UTC */
};

/*
 * Sets s->seq and s->size from an archive row's integer columns (SQLite
 * and PostgreSQL hold them as 64-bit): a row someone altered by hand, with
 * a sequence number outside 0..2^32-1 or a negative size, is refused
 * rather than wrapped into range.
 * Returns PL_OK, or PL_ERR_PROTOCOL with pl_error_message() naming the
 * column and its value (the caller adds which row); s is unchanged then.
 */
int plc_session_summary_numbers(struct plc_session_summary *s, int64_t seq,
                                int64_t size);

/* What an archive knows of a session besides its record.  Strings may be
 * NULL (empty); all are untrusted text. */
struct plc_export_session {
	const char *serial;
	uint8_t uuid[16];
	struct plc_session_summary summary;
	/* The pen as the archive last saw it (its info at attach): empty for
	 * sessions archived before the archive kept it. */
	const char *model, *hw_revision;
	/* Why the record was not decoded (over the decode budget, invalid);
	 * NULL when it was. */
	const char *decode_error;
	/* The session's annotations (CSV: the current client reference and
	 * operator, the latest annotation that gives one, and every note joined
	 * by " | "; JSON: annotations, an array of objects, borrowed). */
	const char *client_ref, *operator_name, *notes;
	json_object *annotations;
	const char *site; /* central only: the site that delivered it */
};

/*
 * A session's annotations gathered, oldest first, into what an export
 * shows of them: the current client reference and operator (those of the
 * latest annotation that gives one), every note joined by " | ", and with
 * json the array of objects (utc_ms, utc, user, client_ref, operator,
 * note).  One home for that rule, whichever archive the annotations come
 * from.  plc_export_annots_init, then _add each, then _fill the session's
 * fields (borrowed until _free).
 */
struct plc_export_annots {
	char *client, *oper;
	struct plc_buf notes;
	json_object *arr;      /* json only */
	bool oom;
};
void plc_export_annots_init(struct plc_export_annots *a, bool json);
void plc_export_annots_add(struct plc_export_annots *a, int64_t utc_ms,
                           const char *user, const char *client_ref,
                           const char *operator_name, const char *note);
/* PL_ERR_MEM if any step ran out of memory (s untouched), else PL_OK. */
int plc_export_annots_fill(struct plc_export_annots *a,
                           struct plc_export_session *s);
void plc_export_annots_free(struct plc_export_annots *a);

/* The CSV header line, CRLF included. */
extern const char plc_export_csv_header[];

/*
 * Appends one CSV row (CRLF included) for s to b.  record: the record's
 * pl_record_to_json() object, or NULL when it did not decode (its columns
 * are then empty).  Check b->oom afterwards.
 */
void plc_export_csv_row(struct plc_buf *b, const struct plc_export_session *s,
                        json_object *record);

/*
 * The JSON object of one session: record (taken over; NULL: an object of
 * what the archive knows, with decode_error) with archived_utc_ms, sha256,
 * model, hw_revision, paused_s, areas, error_codes and annotations added.
 * Appends its compact text to b.  Returns PL_OK, or PL_ERR_MEM (b->oom set).
 */
int plc_export_json_row(struct plc_buf *b, const struct plc_export_session *s,
                        json_object *record);

#ifdef __cplusplus
}
#endif

#endif
