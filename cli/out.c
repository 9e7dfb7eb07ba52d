/* Output: errors, JSON documents, formatting, tables, progress bar, frame log. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "penctl.h"

/* ------------------------------------------------------------------ errors */

static int report(struct ctl *c, int exit_code, const char *slug,
                  const char *label, const char *msg)
{
	/* One line per error, whatever the library put in the message. */
	char line[1024];
	snprintf(line, sizeof line, "%s", msg);
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	char shown[2048];
	pl_text_clean(PL_TEXT_TERMINAL, line, shown, sizeof shown);
	/* The library's detail often starts with the code's own name
	 * ("no such port: /dev/x"); do not say it twice. */
	if (label && strncmp(shown, label, strlen(label)) != 0)
		fprintf(stderr, "penctl: %s: %s\n", label, shown);
	else
		fprintf(stderr, "penctl: %s\n", shown);
	if (c->json && !c->emitted) {
		json_object *doc = c->partial ? c->partial : json_object_new_object();
		c->partial = NULL;
		json_object *e = json_object_new_object();
		json_object_object_add(e, "code", json_object_new_string(slug));
		json_object_object_add(e, "message", json_object_new_string(line));
		json_object_object_add(e, "exit_code", json_object_new_int(exit_code));
		json_object_object_add(doc, "error", e);
		ctl_emit_json(c, doc);
	}
	return exit_code;
}

static int vreport(struct ctl *c, int exit_code, const char *slug,
                   const char *label, const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);
	return report(c, exit_code, slug, label, msg);
}

int ctl_fail_pl(struct ctl *c, int pl_code)
{
	return report(c, exit_code_for(pl_code), error_slug_for(pl_code),
	              error_label_for(pl_code), pl_error_message());
}

int ctl_fail_code(struct ctl *c, int pl_code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vreport(c, exit_code_for(pl_code), error_slug_for(pl_code),
	                 error_label_for(pl_code), fmt, ap);
	va_end(ap);
	return rc;
}

int ctl_fail_exit(struct ctl *c, int exit_code, const char *slug,
                  const char *label, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vreport(c, exit_code, slug, label, fmt, ap);
	va_end(ap);
	return rc;
}

int ctl_usage(struct ctl *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vreport(c, PX_USAGE, "usage", NULL, fmt, ap);
	va_end(ap);
	return rc;
}

int ctl_fail_errno(struct ctl *c, int err, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	char full[1024];
	snprintf(full, sizeof full, "%s: %s", msg, strerror(err));
	switch (err) {
	case ENOENT:
	case ENOTDIR:
		return report(c, PX_NOT_FOUND, "not_found", "not found", full);
	case EACCES:
	case EPERM:
	case EROFS:
		return report(c, PX_PERM, "permission_denied", "permission denied",
		              full);
	case ENOMEM:
		return report(c, PX_FAIL, "out_of_memory", "out of memory", full);
	default:
		return report(c, PX_IO, "io", "I/O error", full);
	}
}

void ctl_partial(struct ctl *c, const char *key, json_object *obj)
{
	if (!c->partial)
		c->partial = json_object_new_object();
	json_object_object_add(c->partial, key, obj);
}

/* Every string of a document, cleaned for JSON in place: a serial or a
 * name from a pen may hold any bytes, and the document must stay valid
 * JSON (json-c copies bytes as they are). */
static void clean_json_tree(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_string: {
		const char *s = json_object_get_string(o);
		size_t len = (size_t)json_object_get_string_len(o);
		/* NUL inside a string would cut it short; valid text stays. */
		if (strlen(s) == len && pl_text_utf8_valid(s, len) &&
		    pl_text_clean(PL_TEXT_JSON, s, NULL, 0) == len)
			return;
		char *clean = pl_text_clean_dup(PL_TEXT_JSON, s);
		json_object_set_string(o, clean ? clean : "");
		free(clean);
		return;
	}
	case json_type_object: {
		json_object_object_foreach(o, key, val) {
			(void)key;
			clean_json_tree(val);
		}
		return;
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(o); i++)
			clean_json_tree(json_object_array_get_idx(o, i));
		return;
	default:
		return;
	}
}

int ctl_emit_json(struct ctl *c, json_object *obj)
{
	if (!c->emitted && c->stream) {
		/* A stream (trace, monitor) is one object per line, its closing
		 * error too. */
		c->emitted = true;
		ctl_emit_json_line(obj);
		return PX_OK;
	}
	if (!c->emitted) {
		clean_json_tree(obj);
		puts(json_object_to_json_string_ext(
		    obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
		             JSON_C_TO_STRING_NOSLASHESCAPE));
		c->emitted = true;
	}
	json_object_put(obj);
	return PX_OK;
}

void ctl_emit_json_line(json_object *obj)
{
	clean_json_tree(obj);
	puts(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
	                                             JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(obj);
	fflush(stdout);
}

static void vsay(FILE *out, const char *prefix, const char *fmt, va_list ap)
{
	char line[2048], shown[4096];
	vsnprintf(line, sizeof line, fmt, ap);
	pl_text_clean(PL_TEXT_TERMINAL, line, shown, sizeof shown);
	fprintf(out, "%s%s\n", prefix, shown);
}

void ctl_say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(stdout, "", fmt, ap);
	va_end(ap);
}

void ctl_note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(stderr, "penctl: ", fmt, ap);
	va_end(ap);
}

void ctl_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(stderr, "penctl: warning: ", fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ formatting */

const char *fmt_bytes(char *buf, uint64_t n)
{
	static const char *const unit[] = {"kB", "MB", "GB", "TB"};
	if (n < 1000) {
		snprintf(buf, FMT_BUF, "%llu B", (unsigned long long)n);
		return buf;
	}
	double v = (double)n / 1000.0;
	size_t u = 0;
	while (v >= 1000.0 && u < 3) {
		v /= 1000.0;
		u++;
	}
	if (v < 100.0)
		snprintf(buf, FMT_BUF, "%.1f %s", v, unit[u]);
	else
		snprintf(buf, FMT_BUF, "%.0f %s", v, unit[u]);
	return buf;
}

const char *fmt_duration(char *buf, int64_t ms)
{
	if (ms < 0)
		ms = 0;
	int64_t s = (ms + 500) / 1000;
	if (s < 60)
		snprintf(buf, FMT_BUF, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, FMT_BUF, "%lldm %02llds", (long long)(s / 60),
		         (long long)(s % 60));
	else
		snprintf(buf, FMT_BUF, "%lldh %02lldm %02llds", (long long)(s / 3600),
		         (long long)(s / 60 % 60), (long long)(s % 60));
	return buf;
}

const char *fmt_time_of_day(char buf[PL_TIME_TEXT_MAX], int64_t utc_ms,
                            bool with_ms)
{
	/* The library's local time is "YYYY-MM-DD HH:MM:SS +HH:MM": the part
	 * after the date, so the two never disagree (milliseconds go before
	 * the offset). */
	char full[PL_TIME_TEXT_MAX];
	pl_time_format_local(utc_ms, full);
	if (strlen(full) < 20 || full[10] != ' ' || full[19] != ' ')
		return "--:--:--";
	int ms = (int)((utc_ms % 1000 + 1000) % 1000);
	if (with_ms)
		snprintf(buf, PL_TIME_TEXT_MAX, "%.8s.%03d%s", full + 11, ms,
		         full + 19);
	else
		snprintf(buf, PL_TIME_TEXT_MAX, "%s", full + 11);
	return buf;
}

const char *fmt_area(enum pl_area a)
{
	const char *n = pl_area_name(a);
	return n && a != PL_AREA_UNSPECIFIED ? n : "-";
}

/* ------------------------------------------------------------------ JSON */

json_object *json_depth_mm(uint32_t um)
{
	char text[PL_MM_TEXT_MAX];
	return json_object_new_double_s((double)um / 1000.0,
	                                pl_depth_format_mm(um, PL_MM_SHORT, text));
}

json_object *json_str(const char *s)
{
	return json_object_new_string(s ? s : "");
}

void json_add_fields(json_object *o, const void *obj,
                     const struct json_field *f, size_t n)
{
	static const size_t size[] = {
	    [JK_STR] = sizeof(const char *), [JK_BOOL] = sizeof(bool),
	    [JK_PBOOL] = sizeof(protobuf_c_boolean), [JK_U32] = sizeof(uint32_t),
	    [JK_U64] = sizeof(uint64_t), [JK_I64] = sizeof(int64_t),
	    [JK_MM] = sizeof(uint32_t), [JK_UTC] = sizeof(int64_t),
	};
	for (; n--; f++) {
		json_object *to = o;
		if (f->group && !json_object_object_get_ex(o, f->group, &to)) {
			to = json_object_new_object();
			json_object_object_add(o, f->group, to);
		}
		if (f->kind != JK_CHARS && f->kind != JK_MAKE &&
		    f->size != size[f->kind]) {
			fprintf(stderr, "penctl: JSON field %s: member of %zu bytes "
			        "for its kind\n", f->key, f->size);
			abort();
		}
		const void *m = (const char *)obj + f->offset;
		json_object *v = NULL;
		switch (f->kind) {
		case JK_STR: v = json_str(*(const char *const *)m); break;
		case JK_CHARS: v = json_str(m); break;
		case JK_BOOL: v = json_object_new_boolean(*(const bool *)m); break;
		case JK_PBOOL:
			v = json_object_new_boolean(*(const protobuf_c_boolean *)m);
			break;
		case JK_U32: v = json_object_new_int64(*(const uint32_t *)m); break;
		case JK_U64: v = json_object_new_uint64(*(const uint64_t *)m); break;
		case JK_I64: v = json_object_new_int64(*(const int64_t *)m); break;
		case JK_MM: v = json_depth_mm(*(const uint32_t *)m); break;
		case JK_UTC: v = json_utc(true, *(const int64_t *)m); break;
		case JK_MAKE: v = f->make(obj); break;
		}
		json_object_object_add(to, f->key, v);
	}
}

json_object *json_utc(bool known, int64_t utc_ms)
{
	char buf[PL_TIME_TEXT_MAX];
	if (!known || !pl_time_format_utc(utc_ms, buf)[0])
		return NULL;
	return json_object_new_string(buf);
}

json_object *json_hex(const uint8_t *data, size_t len)
{
	char buf[2 * 64 + 1];
	if (len > 64)
		len = 64;
	pl_hex_format(data, len, buf);
	return json_object_new_string(buf);
}

json_object *json_uuid(const uint8_t uuid[16])
{
	char buf[37];
	pl_uuid_format(uuid, buf);
	return json_object_new_string(buf);
}

json_object *json_preset(const struct pl_preset *p)
{
	/* The keys of the preset-set file format, so `penctl --json preset
	 * list` output can be edited and pushed back. */
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_int64(p->id));
	json_object_object_add(o, "name", json_object_new_string(p->name));
	json_object_object_add(o, "depth_mm", json_depth_mm(p->depth_um));
	json_object_object_add(o, "speed", json_object_new_int64(p->speed_level));
	const char *area = pl_area_name(p->area);
	if (area && p->area != PL_AREA_UNSPECIFIED)
		json_object_object_add(o, "area", json_object_new_string(area));
	json_object_object_add(o, "needles", json_object_new_int64(p->needle_count));
	json_object_object_add(o, "max_duration_s",
	                       json_object_new_int64(p->max_duration_s));
	return o;
}

json_object *json_preset_set(const struct pl_preset_set *set)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < set->count; i++)
		json_object_array_add(a, json_preset(&set->presets[i]));
	return a;
}

json_object *json_link_stats(const struct pl_link_stats *st)
{
	json_object *o = json_object_new_object();
#define F(name) json_object_object_add(o, #name, json_object_new_uint64(st->name))
	F(frames_in);
	F(frames_out);
	F(bytes_in);
	F(bytes_out);
	F(dropped_crc);
	F(dropped_oversize);
	F(dropped_short);
	F(dropped_cobs);
	F(dropped_version);
	F(timeouts);
	F(retries);
	F(stray_replies);
	F(bad_envelopes);
#undef F
	return o;
}

/* ------------------------------------------------------------------ tables */

struct table {
	size_t ncols, nrows, cap;
	char **cells;
	char align[16];
};

#define TABLE_MAX_COLS 16

struct table *table_new(size_t ncols, const char *const *headers,
                        const char *align)
{
	if (ncols == 0 || ncols > TABLE_MAX_COLS)
		return NULL;
	struct table *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->ncols = ncols;
	for (size_t i = 0; i < ncols; i++)
		t->align[i] = align && align[i] == 'r' ? 'r' : 'l';
	if (headers && table_row(t, headers) != 0) {
		table_free(t);
		return NULL;
	}
	return t;
}

int table_row(struct table *t, const char *const *cells)
{
	if (!t)
		return -1;
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **n = realloc(t->cells, cap * t->ncols * sizeof *n);
		if (!n)
			return -1;
		t->cells = n;
		t->cap = cap;
	}
	char **row = t->cells + t->nrows * t->ncols;
	for (size_t i = 0; i < t->ncols; i++) {
		/* The door to the terminal: no cell can move the cursor, change
		 * colours or hide what follows. */
		row[i] = pl_text_clean_dup(PL_TEXT_TERMINAL, cells[i]);
		if (!row[i]) {
			while (i-- > 0)
				free(row[i]);
			return -1;
		}
	}
	t->nrows++;
	return 0;
}

/* Display width: UTF-8 code points (names may hold "décolleté"). */
static size_t text_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

void table_print(struct table *t, FILE *out, const char *indent)
{
	if (!t)
		return;
	size_t width[TABLE_MAX_COLS] = {0};
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++) {
			size_t w = text_width(t->cells[r * t->ncols + i]);
			if (w > width[i])
				width[i] = w;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		fputs(indent ? indent : "", out);
		for (size_t i = 0; i < t->ncols; i++) {
			const char *cell = t->cells[r * t->ncols + i];
			size_t pad = width[i] - text_width(cell);
			bool last = i + 1 == t->ncols;
			if (t->align[i] == 'r')
				fprintf(out, "%*s%s", (int)pad, "", cell);
			else if (last)
				fputs(cell, out);
			else
				fprintf(out, "%s%*s", cell, (int)pad, "");
			if (!last)
				fputs("  ", out);
		}
		fputc('\n', out);
	}
}

void table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

void print_preset_table(const struct pl_preset_set *set, FILE *out)
{
	static const char *const hdr[] = {"id", "name", "depth", "speed", "area",
	                                  "needles", "max time"};
	struct table *t = table_new(7, hdr, "rlrrlrr");
	for (size_t i = 0; t && i < set->count; i++) {
		const struct pl_preset *p = &set->presets[i];
		char id[16], depth[PL_MM_TEXT_MAX + 4], mm[PL_MM_TEXT_MAX], speed[16],
		    needles[16], dur[FMT_BUF];
		snprintf(id, sizeof id, "%u", p->id);
		snprintf(depth, sizeof depth, "%s mm",
		         pl_depth_format_mm(p->depth_um, PL_MM_FIXED, mm));
		snprintf(speed, sizeof speed, "%u", p->speed_level);
		if (p->needle_count)
			snprintf(needles, sizeof needles, "%u", p->needle_count);
		else
			snprintf(needles, sizeof needles, "nano");
		if (p->max_duration_s)
			fmt_duration(dur, (int64_t)p->max_duration_s * 1000);
		else
			snprintf(dur, sizeof dur, "-");
		const char *row[] = {id, p->name, depth, speed, fmt_area(p->area),
		                     needles, dur};
		table_row(t, row);
	}
	table_print(t, out, "");
	table_free(t);
}

/* ------------------------------------------------------------------ frame log */

void frame_log_stderr(void *ud, enum pl_frame_dir dir, const char *text,
                      size_t raw_len)
{
	(void)ud;
	int64_t now = pl_time_utc_ms();
	char when[PL_TIME_TEXT_MAX];
	char mark = dir == PL_FRAME_IN ? '<' : dir == PL_FRAME_OUT ? '>' : '!';
	/* A frame's description quotes the pen's strings. */
	char shown[1024];
	pl_text_clean(PL_TEXT_TERMINAL, text, shown, sizeof shown);
	fprintf(stderr, "%s  %c  %s  (%zu bytes)\n",
	        fmt_time_of_day(when, now, true), mark, shown, raw_len);
}

/* ------------------------------------------------------------------ files */

char *read_text_file(const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		errno = EISDIR;
		return NULL;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
		close(fd);
		errno = EFBIG;
		return NULL;
	}
	char *buf = malloc(max + 1);
	if (!buf) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	size_t n = 0;
	for (;;) {
		/* read one byte past max to notice a pipe that is too long */
		ssize_t r = read(fd, buf + n, max + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			close(fd);
			errno = e;
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			free(buf);
			close(fd);
			errno = EFBIG;
			return NULL;
		}
	}
	close(fd);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}
