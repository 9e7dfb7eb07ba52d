/*
 * Session records (proto/record.proto): parsing, consistency checks, a
 * report for people and a JSON form for programs.
 *
 * JSON form (pl_record_to_json; penctl sessions show --json).  Stable:
 * fields are only ever added.  Absent sub-messages read as their defaults
 * (protobuf rules), so every key below is always present except
 * telemetry.samples.  Bytes of the pen's strings that are not UTF-8 come
 * out as U+FFFD, so the output is always valid JSON.
 *
 * {
 *   "format":          1,                      record format version
 *   "uuid":            "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
 *   "serial":          "PL-0001",              pen that recorded it
 *   "seq":             42,                     per-pen sequence number
 *   "fw_version":      "1.2.0",
 *   "start_utc_ms":    1700000000000,          UTC ms since the epoch when
 *   "end_utc_ms":      1700001800000,          time_source is "rtc", else ms
 *                                              of pen uptime
 *   "time_source":     "rtc" | "uptime",
 *   "preset": {                                preset in force at start
 *     "id": 1, "name": "Forehead fine",
 *     "depth_mm": 0.5,                         = depth_um / 1000, exact
 *     "depth_um": 500,
 *     "speed_level": 3,
 *     "area": "forehead" | null,               pl_area_name(); null if
 *                                              unspecified or unknown
 *     "needle_count": 12,                      0 = nano
 *     "max_duration_s": 600                    0 = no limit
 *   },
 *   "preset_revision": 5,
 *   "cartridge": {
 *     "needle_count": 12, "needle_length_um": 1500,
 *     "lot": "L2309-14",
 *     "uid": "04a1b2c3d4e5f6"                  hex, "" if none
 *   },
 *   "summary": {
 *     "run_time_s": 1513, "strokes": 151300,
 *     "max_depth_um": 750, "errors": 0
 *   },
 *   "events": [
 *     {"offset_ms": 0, "kind": "start", "value": 0},
 *     {"offset_ms": 12345, "kind": "depth_change", "value": 750},
 *     ...                                      kind: start, stop, pause,
 *   ],                                         resume, depth_change (um),
 *                                              speed_change (level),
 *                                              area_change (Area number),
 *                                              cartridge_in (needles),
 *                                              cartridge_out, battery_low
 *                                              (mV), error (code),
 *                                              "unspecified", or the number
 *                                              as a string if newer
 *   "telemetry": {
 *     "interval_us": 10000,
 *     "count": 180000,                         samples per array
 *     "depth_um":   {"min": 480, "avg": 500.2, "max": 520},
 *     "current_ma": {"min": 180, "avg": 240.0, "max": 300},
 *     "battery_mv": {"min": 3700, "avg": 3905.5, "max": 4100},
 *                                              min/avg/max null if count 0
 *     "samples": {                             only with with_samples
 *       "depth_um": [...], "current_ma": [...], "battery_mv": [...]
 *     }
 *   }
 * }
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "internal.h"
#include "record.pb-c.h"

#define RECORD_FORMAT 1u
/* Far above any real record (several MB), low enough to read into memory. */
#define RECORD_MAX_BYTES (1024ull * 1024u * 1024u)

struct pl_record {
	Pl__SessionRecord *rec;
};

/* ------------------------------------------------------------------ parsing */

static size_t telemetry_count(const Pl__SessionRecord *rec)
{
	return rec->telemetry ? rec->telemetry->n_depth_um : 0;
}

/* What protobuf cannot check: the record must make sense as a whole. */
static int check_consistency(const Pl__SessionRecord *rec)
{
	const Pl__Telemetry *t = rec->telemetry;

	if (rec->format == 0)
		return pl__fail(PL_ERR_PARSE,
		                "not a penlink session record (no format version)");
	if (rec->format > RECORD_FORMAT)
		return pl__fail(PL_ERR_PARSE,
		                "session record format %" PRIu32
		                " is newer than this software reads (%u); update penlink",
		                rec->format, RECORD_FORMAT);
	if (rec->uuid.len != 16)
		return pl__fail(PL_ERR_PARSE,
		                "session record is damaged: its uuid is %zu bytes, "
		                "expected 16",
		                rec->uuid.len);
	if (rec->end_ms < rec->start_ms)
		return pl__fail(PL_ERR_PARSE,
		                "session record is damaged: it ends (%" PRId64
		                " ms) before it starts (%" PRId64 " ms)",
		                rec->end_ms, rec->start_ms);
	if (t && (t->n_current_ma != t->n_depth_um ||
	          t->n_battery_mv != t->n_depth_um))
		return pl__fail(PL_ERR_PARSE,
		                "session record is damaged: telemetry arrays differ "
		                "in length (depth %zu, current %zu, battery %zu samples)",
		                t->n_depth_um, t->n_current_ma, t->n_battery_mv);
	if (t && t->n_depth_um > 0 && t->interval_us == 0)
		return pl__fail(PL_ERR_PARSE,
		                "session record is damaged: %zu telemetry samples "
		                "but no sample interval",
		                t->n_depth_um);
	return PL_OK;
}

int pl_record_parse(const uint8_t *data, size_t len, struct pl_record **out)
{
	Pl__SessionRecord *rec;
	struct pl_record *r;
	int e;

	if (!out)
		return pl__fail(PL_ERR_ARG, "pl_record_parse: out is NULL");
	*out = NULL;
	if (!data && len > 0)
		return pl__fail(PL_ERR_ARG, "pl_record_parse: data is NULL");
	if (len == 0)
		return pl__fail(PL_ERR_PARSE,
		                "not a penlink session record (it is empty)");
	rec = pl__session_record__unpack(NULL, len, data);
	if (!rec)
		return pl__fail(PL_ERR_PARSE,
		                "not a penlink session record (%zu bytes that do not "
		                "decode as one; truncated or a different file)",
		                len);
	e = check_consistency(rec);
	if (e != PL_OK) {
		pl__session_record__free_unpacked(rec, NULL);
		return e;
	}
	r = malloc(sizeof *r);
	if (!r) {
		pl__session_record__free_unpacked(rec, NULL);
		return pl__fail(PL_ERR_MEM, "out of memory for a session record");
	}
	r->rec = rec;
	*out = r;
	return PL_OK;
}

static int io_fail(int err, const char *what)
{
	int code = err == ENOENT || err == ENOTDIR ? PL_ERR_NOT_FOUND
	           : err == EACCES || err == EPERM ? PL_ERR_ACCESS
	           : err == ENOMEM                 ? PL_ERR_MEM
	                                           : PL_ERR_IO;
	return pl__fail(code, "cannot %s the file: %s", what, strerror(err));
}

/* Reads all of fd, up to RECORD_MAX_BYTES (+1 to notice a longer one). */
static int read_all(int fd, size_t hint, uint8_t **data, size_t *len)
{
	size_t cap = hint ? hint + 1 : 65536, n = 0;
	uint8_t *buf = malloc(cap);

	if (!buf)
		return pl__fail(PL_ERR_MEM, "out of memory reading a session record");
	for (;;) {
		if (n == cap) {
			size_t ncap = cap * 2;
			uint8_t *nb;
			if (cap > RECORD_MAX_BYTES) {
				free(buf);
				return pl__fail(PL_ERR_PARSE,
				                "not a penlink session record: larger "
				                "than 1 GiB");
			}
			nb = realloc(buf, ncap);
			if (!nb) {
				free(buf);
				return pl__fail(PL_ERR_MEM,
				                "out of memory reading a session record");
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t got = read(fd, buf + n, cap - n);
		if (got < 0) {
			int err = errno;
			if (err == EINTR)
				continue;
			free(buf);
			return io_fail(err, "read");
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (n > RECORD_MAX_BYTES) {
		free(buf);
		return pl__fail(PL_ERR_PARSE,
		                "not a penlink session record: larger than 1 GiB");
	}
	*data = buf;
	*len = n;
	return PL_OK;
}

int pl_record_parse_file(const char *path, struct pl_record **out)
{
	struct stat st;
	uint8_t *data = NULL;
	size_t len = 0;
	int fd, e;

	if (!out)
		return pl__fail(PL_ERR_ARG, "pl_record_parse_file: out is NULL");
	*out = NULL;
	if (!path)
		return pl__fail(PL_ERR_ARG, "pl_record_parse_file: path is NULL");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return io_fail(errno, "open");
	if (fstat(fd, &st) != 0) {
		e = io_fail(errno, "examine");
		close(fd);
		return e;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return pl__fail(PL_ERR_PARSE,
		                "not a penlink session record: it is a directory");
	}
	/* Refuse a huge file before reading any of it. */
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > RECORD_MAX_BYTES) {
		close(fd);
		return pl__fail(PL_ERR_PARSE,
		                "not a penlink session record: %" PRIu64
		                " bytes is larger than any record (1 GiB)",
		                (uint64_t)st.st_size);
	}
	e = read_all(fd, S_ISREG(st.st_mode) ? (size_t)st.st_size : 0, &data, &len);
	close(fd);
	if (e != PL_OK)
		return e;
	e = pl_record_parse(data, len, out);
	free(data);
	return e;
}

void pl_record_free(struct pl_record *r)
{
	if (!r)
		return;
	pl__session_record__free_unpacked(r->rec, NULL);
	free(r);
}

/* ------------------------------------------------------------------ getters */

const char *pl_record_serial(const struct pl_record *r)
{
	return r && r->rec->serial ? r->rec->serial : "";
}

uint32_t pl_record_seq(const struct pl_record *r)
{
	return r ? r->rec->seq : 0;
}

void pl_record_uuid(const struct pl_record *r, uint8_t out[16])
{
	/* Parsing guarantees 16 bytes. */
	if (r)
		memcpy(out, r->rec->uuid.data, 16);
	else
		memset(out, 0, 16);
}

int64_t pl_record_start_ms(const struct pl_record *r)
{
	return r ? r->rec->start_ms : 0;
}

int64_t pl_record_end_ms(const struct pl_record *r)
{
	return r ? r->rec->end_ms : 0;
}

bool pl_record_rtc_time(const struct pl_record *r)
{
	return r && r->rec->time_source == PL__TIME_SOURCE__TIME_SOURCE_RTC;
}

void pl_record_telemetry(const struct pl_record *r, struct pl_telemetry *out)
{
	memset(out, 0, sizeof *out);
	if (!r || !r->rec->telemetry)
		return;
	const Pl__Telemetry *t = r->rec->telemetry;
	/* pl_record_parse refused records whose arrays differ in length. */
	out->interval_us = t->interval_us;
	out->count = telemetry_count(r->rec);
	out->depth_um = t->depth_um;
	out->current_ma = t->current_ma;
	out->battery_mv = t->battery_mv;
}

/* ------------------------------------------------------------------ shared */

/* Absent sub-messages read as their defaults, as protobuf defines. */
static const Pl__Preset *preset_of(const Pl__SessionRecord *rec)
{
	static const Pl__Preset empty = PL__PRESET__INIT;
	return rec->preset ? rec->preset : &empty;
}

static const Pl__Cartridge *cartridge_of(const Pl__SessionRecord *rec)
{
	static const Pl__Cartridge empty = PL__CARTRIDGE__INIT;
	return rec->cartridge ? rec->cartridge : &empty;
}

static const Pl__Summary *summary_of(const Pl__SessionRecord *rec)
{
	static const Pl__Summary empty = PL__SUMMARY__INIT;
	return rec->summary ? rec->summary : &empty;
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

/* "depth_change" from the schema's EVENT_KIND_DEPTH_CHANGE, so kinds added
 * to record.proto are named without touching this file; NULL for a kind
 * this build does not know. */
static const char *event_kind_name(char buf[32], int kind)
{
	static const char prefix[] = "EVENT_KIND_";
	const ProtobufCEnumValue *v =
	    protobuf_c_enum_descriptor_get_value(&pl__event_kind__descriptor, kind);
	size_t i = 0;

	if (!v || strncmp(v->name, prefix, sizeof prefix - 1) != 0)
		return NULL;
	for (const char *q = v->name + sizeof prefix - 1; *q && i < 31; q++)
		buf[i++] = (char)tolower((unsigned char)*q);
	buf[i] = '\0';
	return buf;
}

/* The public name getter hands out static strings, so the lowercased names
 * are built once for every kind the schema declares. */
#define KIND_NAMES_MAX 64
static struct {
	int kind;
	char name[32];
} kind_names[KIND_NAMES_MAX];
static size_t n_kind_names;
static pthread_once_t kind_names_once = PTHREAD_ONCE_INIT;

static void kind_names_init(void)
{
	const ProtobufCEnumDescriptor *d = &pl__event_kind__descriptor;

	for (unsigned i = 0; i < d->n_values && n_kind_names < KIND_NAMES_MAX; i++) {
		int kind = d->values[i].value;
		if (event_kind_name(kind_names[n_kind_names].name, kind)) {
			kind_names[n_kind_names].kind = kind;
			n_kind_names++;
		}
	}
}

const char *pl_record_event_kind_name(int kind)
{
	if (pthread_once(&kind_names_once, kind_names_init) != 0)
		return NULL;
	for (size_t i = 0; i < n_kind_names; i++)
		if (kind_names[i].kind == kind)
			return kind_names[i].name;
	return NULL;
}

const char *pl_record_error_meaning(int32_t code)
{
	switch (code) {
	case PL__PEN_ERROR__PEN_ERROR_MOTOR_STALLED: return "motor stalled";
	case PL__PEN_ERROR__PEN_ERROR_MOTOR_OVERCURRENT: return "motor over-current";
	case PL__PEN_ERROR__PEN_ERROR_DEPTH_STOP_NOT_REACHED:
		return "depth stop not reached";
	case PL__PEN_ERROR__PEN_ERROR_OVER_TEMPERATURE: return "over-temperature";
	case PL__PEN_ERROR__PEN_ERROR_CARTRIDGE_NOT_SEATED:
		return "cartridge not seated";
	case PL__PEN_ERROR__PEN_ERROR_BATTERY_CRITICAL: return "battery critical";
	default: return "unknown error code";
	}
}

size_t pl_record_events(const struct pl_record *r, struct pl_event_row *out,
                        size_t max)
{
	if (!r)
		return 0;
	for (size_t i = 0; out && i < max && i < r->rec->n_events; i++) {
		const Pl__Event *ev = r->rec->events[i];
		out[i].offset_ms = ev->offset_ms;
		out[i].kind = (int)ev->kind;
		out[i].value = ev->value;
	}
	return r->rec->n_events;
}

struct stats {
	uint32_t min, max;
	double avg;
};

static struct stats stats_of(const uint32_t *v, size_t n)
{
	struct stats s = {0, 0, 0.0};
	uint64_t sum = 0;

	if (n == 0)
		return s;
	s.min = s.max = v[0];
	for (size_t i = 0; i < n; i++) {
		if (v[i] < s.min)
			s.min = v[i];
		if (v[i] > s.max)
			s.max = v[i];
		sum += v[i];
	}
	s.avg = (double)sum / (double)n;
	return s;
}

/* ------------------------------------------------------------------ report */

/* Local time with its UTC offset (the one rule for people), or uptime
 * when the pen had no clock. */
static const char *fmt_time(char buf[PL_TIME_TEXT_MAX], int64_t ms, bool rtc)
{
	if (!rtc) {
		int64_t secs = ms / 1000, frac = ms % 1000;
		if (frac < 0) {
			frac += 1000;
			secs--;
		}
		snprintf(buf, PL_TIME_TEXT_MAX, "uptime +%" PRId64 ".%03d s", secs,
		         (int)frac);
	} else {
		pl_time_format_local(ms, buf);
	}
	return buf;
}

/* h:mm:ss.mmm, or mm:ss.mmm under an hour. */
static const char *fmt_span(char buf[32], uint64_t ms)
{
	uint64_t s = ms / 1000;

	if (s >= 3600)
		snprintf(buf, 32, "%" PRIu64 ":%02u:%02u.%03u", s / 3600,
		         (unsigned)(s / 60 % 60), (unsigned)(s % 60),
		         (unsigned)(ms % 1000));
	else
		snprintf(buf, 32, "%02u:%02u.%03u", (unsigned)(s / 60),
		         (unsigned)(s % 60), (unsigned)(ms % 1000));
	return buf;
}

/* Whole seconds as h:mm:ss, or mm:ss under an hour. */
static const char *fmt_secs(char buf[32], uint64_t s)
{
	if (s >= 3600)
		snprintf(buf, 32, "%" PRIu64 ":%02u:%02u", s / 3600,
		         (unsigned)(s / 60 % 60), (unsigned)(s % 60));
	else
		snprintf(buf, 32, "%02u:%02u", (unsigned)(s / 60), (unsigned)(s % 60));
	return buf;
}

static const char *area_text(char buf[24], int area)
{
	const char *n = area == PL_AREA_UNSPECIFIED
	                    ? "unspecified"
	                    : pl_area_name((enum pl_area)area);
	if (n)
		return n;
	snprintf(buf, 24, "area %d", area);
	return buf;
}

/* The event's value with its unit, "" for kinds that carry none. */
static const char *event_value(char buf[32], const Pl__Event *ev)
{
	char mm[24];

	buf[0] = '\0';
	switch (ev->kind) {
	case PL__EVENT_KIND__EVENT_KIND_DEPTH_CHANGE:
		snprintf(buf, 32, "%s mm",
		         ev->value < 0 ? "?" : pl_depth_format_mm((uint32_t)ev->value, PL_MM_FIXED, mm));
		break;
	case PL__EVENT_KIND__EVENT_KIND_SPEED_CHANGE:
		snprintf(buf, 32, "level %" PRId32, ev->value);
		break;
	case PL__EVENT_KIND__EVENT_KIND_AREA_CHANGE:
		snprintf(buf, 32, "%s", area_text(mm, ev->value));
		break;
	case PL__EVENT_KIND__EVENT_KIND_CARTRIDGE_IN:
		if (ev->value == 0)
			snprintf(buf, 32, "nano");
		else
			snprintf(buf, 32, "%" PRId32 " needles", ev->value);
		break;
	case PL__EVENT_KIND__EVENT_KIND_START:
		if (ev->value != 0)
			snprintf(buf, 32, "preset %" PRId32, ev->value);
		break;
	case PL__EVENT_KIND__EVENT_KIND_BATTERY_LOW:
		snprintf(buf, 32, "%" PRId32 " mV", ev->value);
		break;
	case PL__EVENT_KIND__EVENT_KIND_ERROR:
		snprintf(buf, 32, "code %" PRId32, ev->value);
		break;
	default:
		if (ev->value != 0)
			snprintf(buf, 32, "%" PRId32, ev->value);
		break;
	}
	return buf;
}

/* Text from the pen, printed without control characters. */
static void print_text(FILE *out, const char *s)
{
	for (; s && *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, out);
}

int pl_record_print(const struct pl_record *r, FILE *out)
{
	const Pl__SessionRecord *rec;
	const Pl__Preset *p;
	const Pl__Cartridge *c;
	const Pl__Summary *s;
	const Pl__Telemetry *t;
	bool rtc;
	char uuid[37], b1[48], b2[48], mm[24];

	if (!r || !out)
		return pl__fail(PL_ERR_ARG, "pl_record_print: no record or no stream");
	rec = r->rec;
	p = preset_of(rec);
	c = cartridge_of(rec);
	s = summary_of(rec);
	t = rec->telemetry;
	rtc = rec->time_source == PL__TIME_SOURCE__TIME_SOURCE_RTC;

	pl_uuid_format(rec->uuid.data, uuid);
	fprintf(out, "Session %s\n", uuid);
	fputs("  pen          ", out);
	print_text(out, rec->serial);
	fputs(", firmware ", out);
	print_text(out, *str_or_empty(rec->fw_version) ? rec->fw_version : "unknown");
	fprintf(out, "\n  sequence     %" PRIu32 "\n", rec->seq);
	fprintf(out, "  started      %s\n", fmt_time(b1, rec->start_ms, rtc));
	fprintf(out, "  ended        %s\n", fmt_time(b1, rec->end_ms, rtc));
	fprintf(out, "  duration     %s%s\n",
	        fmt_span(b2, pl_time_span_ms(rec->start_ms, rec->end_ms)),
	        rtc ? "" : "  (pen clock not set: times are since power-on)");

	fprintf(out, "\nPreset %" PRIu32 " \"", p->id);
	print_text(out, p->name);
	fprintf(out, "\" (preset set revision %" PRIu32 ")\n", rec->preset_revision);
	fprintf(out, "  depth        %s mm\n", pl_depth_format_mm(p->depth_um, PL_MM_FIXED, mm));
	fprintf(out, "  speed        level %" PRIu32 "\n", p->speed_level);
	fprintf(out, "  area         %s\n", area_text(mm, p->area));
	if (p->needle_count)
		fprintf(out, "  needles      %" PRIu32 "\n", p->needle_count);
	else
		fputs("  needles      nano\n", out);
	if (p->max_duration_s)
		fprintf(out, "  time limit   %s\n", fmt_secs(b2, p->max_duration_s));
	else
		fputs("  time limit   none\n", out);

	fputs("\nCartridge\n", out);
	if (c->needle_count)
		fprintf(out, "  needles      %" PRIu32, c->needle_count);
	else
		fputs("  needles      nano", out);
	fprintf(out, ", %s mm long\n", pl_depth_format_mm(c->needle_length_um, PL_MM_FIXED, mm));
	fputs("  lot          ", out);
	print_text(out, *str_or_empty(c->lot) ? c->lot : "unknown");
	fputs("\n  uid          ", out);
	if (c->uid.len) {
		char hex[2 * 32 + 1];
		size_t n = c->uid.len < 32 ? c->uid.len : 32;
		pl_hex_format(c->uid.data, n, hex);
		fprintf(out, "%s%s\n", hex, c->uid.len > n ? "..." : "");
	} else {
		fputs("none\n", out);
	}

	fputs("\nSummary\n", out);
	fprintf(out, "  run time     %s\n", fmt_secs(b2, s->run_time_s));
	fprintf(out, "  strokes      %" PRIu64 "\n", s->strokes);
	fprintf(out, "  max depth    %s mm\n", pl_depth_format_mm(s->max_depth_um, PL_MM_FIXED, mm));
	fprintf(out, "  errors       %" PRIu32 "\n", s->errors);

	fprintf(out, "\nEvents (%zu)\n", rec->n_events);
	for (size_t i = 0; i < rec->n_events; i++) {
		const Pl__Event *ev = rec->events[i];
		char label[32], when[32], value[32];

		if (event_kind_name(label, ev->kind)) {
			for (char *q = label; *q; q++)
				if (*q == '_')
					*q = ' ';
		} else {
			snprintf(label, sizeof label, "kind %d", (int)ev->kind);
		}
		/* Offsets as mm:ss.mmm, minutes running past 59. */
		snprintf(when, sizeof when, "%02" PRIu32 ":%02" PRIu32 ".%03" PRIu32,
		         ev->offset_ms / 60000u, ev->offset_ms / 1000u % 60u,
		         ev->offset_ms % 1000u);
		event_value(value, ev);
		if (value[0])
			fprintf(out, "  %9s  %-14s %s\n", when, label, value);
		else
			fprintf(out, "  %9s  %s\n", when, label);
	}

	fputs("\nTelemetry\n", out);
	if (!t || t->n_depth_um == 0) {
		fputs("  no samples\n", out);
	} else {
		size_t n = t->n_depth_um;
		struct stats d = stats_of(t->depth_um, n);
		struct stats cu = stats_of(t->current_ma, n);
		struct stats ba = stats_of(t->battery_mv, n);
		char a1[24], a2[24], a3[24];

		fprintf(out, "  samples      %zu, every %s ms (covers %s)\n", n,
		        pl_depth_format_mm(t->interval_us, PL_MM_SHORT, a1),
		        fmt_span(b2, (uint64_t)n * t->interval_us / 1000u));
		fprintf(out, "  depth        min %s  avg %s  max %s mm\n",
		        pl_depth_format_mm(d.min, PL_MM_FIXED, a1),
		        pl_depth_format_mm((uint32_t)(d.avg + 0.5), PL_MM_FIXED, a2),
		        pl_depth_format_mm(d.max, PL_MM_FIXED, a3));
		fprintf(out, "  current      min %" PRIu32 "  avg %.0f  max %" PRIu32 " mA\n",
		        cu.min, cu.avg, cu.max);
		fprintf(out, "  battery      min %" PRIu32 "  avg %.0f  max %" PRIu32 " mV\n",
		        ba.min, ba.avg, ba.max);
	}
	if (ferror(out) || fflush(out) != 0)
		return pl__fail(PL_ERR_IO, "cannot write the session report: %s",
		                strerror(errno));
	return PL_OK;
}

/* ------------------------------------------------------------------ JSON */

/* Builds the tree, remembering whether any allocation failed so the
 * caller checks once at the end. */
struct jb {
	bool oom;
};

static json_object *jchk(struct jb *b, json_object *o)
{
	if (!o)
		b->oom = true;
	return o;
}

static void jadd(struct jb *b, json_object *obj, const char *key, json_object *val)
{
	if (!obj || !val) {
		b->oom = true;
		json_object_put(val);
		return;
	}
	if (json_object_object_add(obj, key, val) != 0) {
		b->oom = true;
		json_object_put(val);
	}
}

static void jadd_null(struct jb *b, json_object *obj, const char *key)
{
	if (!obj || json_object_object_add(obj, key, NULL) != 0)
		b->oom = true;
}

/* Strings from the pen may be any bytes; JSON must be UTF-8. */
static void jadd_str(struct jb *b, json_object *obj, const char *key, const char *s)
{
	char *clean = pl_text_clean_dup(PL_TEXT_JSON, s);

	if (!clean) {
		b->oom = true;
		return;
	}
	jadd(b, obj, key, json_object_new_string(clean));
	free(clean);
}

static void jadd_int(struct jb *b, json_object *obj, const char *key, int64_t v)
{
	jadd(b, obj, key, json_object_new_int64(v));
}

static void jadd_u64(struct jb *b, json_object *obj, const char *key, uint64_t v)
{
	jadd(b, obj, key, json_object_new_uint64(v));
}

/* A number written exactly as given (json-c would print 0.5 as
 * 0.50000000000000000 style digits otherwise). */
static void jadd_num(struct jb *b, json_object *obj, const char *key, double v,
                     const char *text)
{
	jadd(b, obj, key, json_object_new_double_s(v, text));
}

static json_object *jstats(struct jb *b, const uint32_t *v, size_t n)
{
	json_object *o = jchk(b, json_object_new_object());

	if (n == 0) {
		jadd_null(b, o, "min");
		jadd_null(b, o, "avg");
		jadd_null(b, o, "max");
	} else {
		struct stats s = stats_of(v, n);
		char text[32];
		snprintf(text, sizeof text, "%.1f", s.avg);
		jadd_int(b, o, "min", s.min);
		jadd_num(b, o, "avg", s.avg, text);
		jadd_int(b, o, "max", s.max);
	}
	return o;
}

static json_object *jarray_u32(struct jb *b, const uint32_t *v, size_t n)
{
	json_object *a = jchk(b, json_object_new_array_ext((int)(n < 1 ? 1 : n)));

	for (size_t i = 0; a && i < n && !b->oom; i++) {
		json_object *x = json_object_new_int64(v[i]);
		if (!x || json_object_array_add(a, x) != 0) {
			json_object_put(x);
			b->oom = true;
		}
	}
	return a;
}

char *pl_record_to_json(const struct pl_record *r, bool with_samples)
{
	const Pl__SessionRecord *rec;
	const Pl__Preset *p;
	const Pl__Cartridge *c;
	const Pl__Summary *s;
	const Pl__Telemetry *t;
	struct jb b = {false};
	json_object *root, *o, *a;
	char buf[64];
	char *text = NULL;
	size_t n;

	if (!r) {
		pl__fail(PL_ERR_ARG, "pl_record_to_json: no record");
		return NULL;
	}
	rec = r->rec;
	p = preset_of(rec);
	c = cartridge_of(rec);
	s = summary_of(rec);
	t = rec->telemetry;
	n = telemetry_count(rec);

	root = jchk(&b, json_object_new_object());
	jadd_int(&b, root, "format", rec->format);
	pl_uuid_format(rec->uuid.data, buf);
	jadd_str(&b, root, "uuid", buf);
	jadd_str(&b, root, "serial", rec->serial);
	jadd_int(&b, root, "seq", rec->seq);
	jadd_str(&b, root, "fw_version", rec->fw_version);
	jadd_int(&b, root, "start_utc_ms", rec->start_ms);
	jadd_int(&b, root, "end_utc_ms", rec->end_ms);
	jadd_str(&b, root, "time_source",
	         rec->time_source == PL__TIME_SOURCE__TIME_SOURCE_RTC ? "rtc" : "uptime");

	o = jchk(&b, json_object_new_object());
	jadd_int(&b, o, "id", p->id);
	jadd_str(&b, o, "name", p->name);
	jadd_num(&b, o, "depth_mm", p->depth_um / 1000.0, pl_depth_format_mm(p->depth_um, PL_MM_SHORT, buf));
	jadd_int(&b, o, "depth_um", p->depth_um);
	jadd_int(&b, o, "speed_level", p->speed_level);
	{
		const char *area = p->area != PL__AREA__AREA_UNSPECIFIED
		                       ? pl_area_name((enum pl_area)p->area)
		                       : NULL;
		if (area)
			jadd_str(&b, o, "area", area);
		else
			jadd_null(&b, o, "area");
	}
	jadd_int(&b, o, "needle_count", p->needle_count);
	jadd_int(&b, o, "max_duration_s", p->max_duration_s);
	jadd(&b, root, "preset", o);
	jadd_int(&b, root, "preset_revision", rec->preset_revision);

	o = jchk(&b, json_object_new_object());
	jadd_int(&b, o, "needle_count", c->needle_count);
	jadd_int(&b, o, "needle_length_um", c->needle_length_um);
	jadd_str(&b, o, "lot", c->lot);
	{
		char *hex = malloc(2 * c->uid.len + 1);
		if (hex) {
			pl_hex_format(c->uid.data, c->uid.len, hex);
			jadd_str(&b, o, "uid", hex);
			free(hex);
		} else {
			b.oom = true;
		}
	}
	jadd(&b, root, "cartridge", o);

	o = jchk(&b, json_object_new_object());
	jadd_int(&b, o, "run_time_s", s->run_time_s);
	jadd_u64(&b, o, "strokes", s->strokes);
	jadd_int(&b, o, "max_depth_um", s->max_depth_um);
	jadd_int(&b, o, "errors", s->errors);
	jadd(&b, root, "summary", o);

	a = jchk(&b, json_object_new_array_ext((int)(rec->n_events ? rec->n_events : 1)));
	for (size_t i = 0; i < rec->n_events && !b.oom; i++) {
		const Pl__Event *ev = rec->events[i];
		const char *kind = event_kind_name(buf, ev->kind);
		json_object *e = jchk(&b, json_object_new_object());

		jadd_int(&b, e, "offset_ms", ev->offset_ms);
		if (!kind) {
			snprintf(buf, sizeof buf, "%d", (int)ev->kind);
			kind = buf;
		}
		jadd_str(&b, e, "kind", kind);
		jadd_int(&b, e, "value", ev->value);
		if (e && (!a || json_object_array_add(a, e) != 0)) {
			json_object_put(e);
			b.oom = true;
		}
	}
	jadd(&b, root, "events", a);

	o = jchk(&b, json_object_new_object());
	jadd_int(&b, o, "interval_us", t ? t->interval_us : 0);
	jadd_u64(&b, o, "count", n);
	jadd(&b, o, "depth_um", jstats(&b, t ? t->depth_um : NULL, n));
	jadd(&b, o, "current_ma", jstats(&b, t ? t->current_ma : NULL, n));
	jadd(&b, o, "battery_mv", jstats(&b, t ? t->battery_mv : NULL, n));
	if (with_samples) {
		json_object *sm = jchk(&b, json_object_new_object());
		jadd(&b, sm, "depth_um", jarray_u32(&b, t ? t->depth_um : NULL, n));
		jadd(&b, sm, "current_ma", jarray_u32(&b, t ? t->current_ma : NULL, n));
		jadd(&b, sm, "battery_mv", jarray_u32(&b, t ? t->battery_mv : NULL, n));
		jadd(&b, o, "samples", sm);
	}
	jadd(&b, root, "telemetry", o);

	if (!b.oom) {
		const char *j = json_object_to_json_string_ext(
		    root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		text = j ? strdup(j) : NULL;
	}
	json_object_put(root);
	if (!text)
		pl__fail(PL_ERR_MEM, "out of memory writing a session record as JSON");
	return text;
}
