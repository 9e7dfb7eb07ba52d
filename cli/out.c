/* Output: errors, JSON documents, formatting, tables, progress bar, frame log. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
	/* The library's detail often starts with the code's own name
	 * ("no such port: /dev/x"); do not say it twice. */
	if (label && strncmp(line, label, strlen(label)) != 0)
		fprintf(stderr, "penctl: %s: %s\n", label, line);
	else
		fprintf(stderr, "penctl: %s\n", line);
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

int ctl_emit_json(struct ctl *c, json_object *obj)
{
	if (!c->emitted) {
		puts(json_object_to_json_string_ext(
		    obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
		             JSON_C_TO_STRING_NOSLASHESCAPE));
		c->emitted = true;
	}
	json_object_put(obj);
	return PX_OK;
}

void ctl_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("penctl: warning: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ------------------------------------------------------------------ formatting */

const char *fmt_mm(char *buf, uint32_t um)
{
	/* Two decimals as technicians read them, three when the value needs it
	 * (a 0.125 mm step must not print as 0.13). */
	if (um % 10 == 0)
		snprintf(buf, FMT_BUF, "%u.%02u", um / 1000, (um % 1000) / 10);
	else
		snprintf(buf, FMT_BUF, "%u.%03u", um / 1000, um % 1000);
	return buf;
}

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

const char *fmt_local_time(char *buf, int64_t utc_ms)
{
	time_t t = (time_t)(utc_ms / 1000);
	struct tm tm;
	if (!localtime_r(&t, &tm) ||
	    strftime(buf, FMT_BUF, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, FMT_BUF, "@%lld ms", (long long)utc_ms);
	return buf;
}

const char *fmt_area(enum pl_area a)
{
	const char *n = pl_area_name(a);
	return n && a != PL_AREA_UNSPECIFIED ? n : "-";
}

/* ------------------------------------------------------------------ JSON */

json_object *json_mm(uint32_t um)
{
	char text[FMT_BUF];
	snprintf(text, sizeof text, "%u.%03u", um / 1000, um % 1000);
	/* keep at least one decimal: "1.500" -> "1.5", "2.000" -> "2.0" */
	size_t n = strlen(text);
	while (n > 0 && text[n - 1] == '0' && text[n - 2] != '.')
		text[--n] = '\0';
	return json_object_new_double_s((double)um / 1000.0, text);
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
	json_object_object_add(o, "depth_mm", json_mm(p->depth_um));
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

json_object *json_session(const struct pl_session_info *s)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_int64(s->id));
	json_object_object_add(o, "seq", json_object_new_int64(s->seq));
	json_object_object_add(o, "uuid", json_uuid(s->uuid));
	json_object_object_add(o, "size", json_object_new_uint64(s->size));
	json_object_object_add(o, "sha256", json_hex(s->sha256, 32));
	json_object_object_add(o, "start_ms", json_object_new_int64(s->start_ms));
	json_object_object_add(o, "end_ms", json_object_new_int64(s->end_ms));
	json_object_object_add(o, "time_source",
	                       json_object_new_string(s->rtc_time ? "rtc" : "uptime"));
	json_object_object_add(o, "archived", json_object_new_boolean(s->archived));
	return o;
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
		row[i] = strdup(cells[i] ? cells[i] : "");
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
		char id[16], depth[FMT_BUF + 4], mm[FMT_BUF], speed[16], needles[16],
		    dur[FMT_BUF];
		snprintf(id, sizeof id, "%u", p->id);
		snprintf(depth, sizeof depth, "%s mm", fmt_mm(mm, p->depth_um));
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

/* ------------------------------------------------------------------ progress */

int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void progress_init(struct progress *p, bool enabled, uint64_t base)
{
	memset(p, 0, sizeof *p);
	p->enabled = enabled;
	p->start_ms = mono_ms();
	p->start_done = base;
}

void progress_update(struct progress *p, uint64_t done, uint64_t total)
{
	if (!p->enabled)
		return;
	int64_t now = mono_ms();
	/* At most 10 redraws a second: a terminal is slower than a pty. */
	if (p->drawn && now - p->last_ms < 100 && done < total)
		return;
	p->last_ms = now;
	p->drawn = true;

	enum { W = 24 };
	char bar[W + 1];
	size_t fill = total ? (size_t)(done >= total ? W : done * W / total) : 0;
	for (size_t i = 0; i < W; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[W] = '\0';
	unsigned pct = total ? (unsigned)(done >= total ? 100 : done * 100 / total)
	                     : 0;
	char d[FMT_BUF], t[FMT_BUF], r[FMT_BUF], e[FMT_BUF];
	int64_t elapsed = now - p->start_ms;
	uint64_t moved = done > p->start_done ? done - p->start_done : 0;
	if (elapsed > 0 && moved > 0) {
		uint64_t rate = moved * 1000 / (uint64_t)elapsed;
		fmt_bytes(r, rate);
		if (rate > 0)
			fmt_duration(e, (int64_t)((total > done ? total - done : 0) *
			                          1000 / rate));
		else
			snprintf(e, sizeof e, "?");
	} else {
		snprintf(r, sizeof r, "--- kB");
		snprintf(e, sizeof e, "?");
	}
	fprintf(stderr, "\r[%s] %3u%%  %s/%s  %s/s  ETA %s\033[K", bar, pct,
	        fmt_bytes(d, done), fmt_bytes(t, total), r, e);
	fflush(stderr);
}

void progress_clear(struct progress *p)
{
	if (p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->drawn = false;
	}
}

/* ------------------------------------------------------------------ frame log */

void frame_log_stderr(void *ud, enum pl_frame_dir dir, const char *text,
                      size_t raw_len)
{
	(void)ud;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	time_t sec = ts.tv_sec;
	localtime_r(&sec, &tm);
	char mark = dir == PL_FRAME_IN ? '<' : dir == PL_FRAME_OUT ? '>' : '!';
	fprintf(stderr, "%02d:%02d:%02d.%03ld  %c  %s  (%zu bytes)\n", tm.tm_hour,
	        tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, mark,
	        text ? text : "", raw_len);
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
