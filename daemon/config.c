/*
 * penlinkd.conf: INI read with inih.  Every key is known here; anything
 * else (a section, a key, a value) is refused with the file, line, section
 * and key named, because a typo in a clinic's policy must not silently
 * turn into a default.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config.h"
#include "log.h"
#include "penlink.h"
#include "penlink_central.h"

int config_defaults(struct config *c)
{
	memset(c, 0, sizeof *c);
	snprintf(c->socket_path, sizeof c->socket_path, "/run/penlink/penlinkd.sock");
	snprintf(c->db_path, sizeof c->db_path, "/var/lib/penlink/archive.db");
	snprintf(c->socket_group, sizeof c->socket_group, "penlink");
	c->socket_mode = 0660;
	c->log_level = LOG_INFO;
	c->usb_enabled = true;
	c->usb_ids[0] = (struct usb_id){PL_USB_VID, PL_USB_PID};
	c->n_usb_ids = 1;
	snprintf(c->logs_group, sizeof c->logs_group, "penlink-logs");
	snprintf(c->presets_group, sizeof c->presets_group, "penlink-tech");
	c->timeout_ms = 1000;
	c->handshake_ms = 5000;
	c->window = 0;
	c->central_retry_max_s = 60;
	c->central_batch_kib = 8192;
	return pl_policy_new(&c->policy);
}

void config_free(struct config *c)
{
	pl_policy_free(c->policy);
	c->policy = NULL;
}

/* ------------------------------------------------------------------ reading */

#define MAX_LINE 1024
#define MAX_SEEN 64

struct parse {
	struct config *c;
	const char *path;
	FILE *f;
	int lineno;        /* of the line inih is handling */
	struct pl_policy *policy; /* this file's [policy], once it has a key */
	int central_line;  /* line of this file's [central] url or site, 0 if none */
	int err_line;      /* first error found by us, 0 if none */
	char err[512];
	struct {
		char key[96];
		int line;
	} seen[MAX_SEEN];
	int nseen;
};

/* Records the first error only, as "FILE:LINE: what"; inih goes on
 * reading, we ignore the rest. */
static int fail_line(struct parse *p, const char *what)
{
	if (p->err_line)
		return 0;
	p->err_line = p->lineno;
	snprintf(p->err, sizeof p->err, "%s:%d: %s", p->path, p->lineno, what);
	return 0;
}

static int fail(struct parse *p, const char *section, const char *key,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* "FILE:LINE: [section] key: why". */
static int fail(struct parse *p, const char *section, const char *key,
                const char *fmt, ...)
{
	char why[256], what[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	snprintf(what, sizeof what, "[%s] %s: %s", section, key, why);
	return fail_line(p, what);
}

/*
 * inih's own line count goes wrong on lines longer than its buffer (it
 * counts each piece), so lines come through this reader, which counts them
 * itself and refuses an over-long line instead of cutting it.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	char buf[MAX_LINE + 2];
	if (!fgets(buf, sizeof buf, p->f))
		return NULL;
	p->lineno++;
	size_t len = strlen(buf);
	bool whole = (len && buf[len - 1] == '\n') || feof(p->f);
	if (!whole || len >= (size_t)num) {
		char what[64];
		snprintf(what, sizeof what, "line longer than %d characters",
		         (num < MAX_LINE ? num : MAX_LINE) - 2);
		fail_line(p, what);
		int ch;
		if (!whole)
			while ((ch = fgetc(p->f)) != EOF && ch != '\n')
				;
		snprintf(str, (size_t)num, ";\n"); /* a comment: inih skips it */
		return str;
	}
	memcpy(str, buf, len + 1);
	return str;
}

static bool parse_bool(const char *v, bool *out)
{
	static const char *yes[] = {"yes", "true", "on", "1"};
	static const char *no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = true;
			return true;
		}
		if (!strcasecmp(v, no[i])) {
			*out = false;
			return true;
		}
	}
	return false;
}

static bool parse_int(const char *v, long min, long max, int *out)
{
	if (!*v || isspace((unsigned char)*v))
		return false;
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || *end || n < min || n > max)
		return false;
	*out = (int)n;
	return true;
}

static bool copy_str(char *dst, size_t cap, const char *v)
{
	if (strlen(v) >= cap)
		return false;
	memcpy(dst, v, strlen(v) + 1);
	return true;
}

/* A Unix group name: no blanks, separators or control characters. */
static bool valid_group(const char *v)
{
	for (const unsigned char *s = (const unsigned char *)v; *s; s++)
		if (*s <= ' ' || *s == ':' || *s == ',' || *s == 0x7f)
			return false;
	return true;
}

static int set_group(struct parse *p, const char *section, const char *key,
                     const char *v, char *dst, size_t cap, bool may_be_empty)
{
	if (!*v && !may_be_empty)
		return fail(p, section, key, "a group name is required");
	if (!valid_group(v))
		return fail(p, section, key, "'%s' is not a valid group name", v);
	if (!copy_str(dst, cap, v))
		return fail(p, section, key, "group name longer than %zu bytes", cap - 1);
	return 1;
}

static int set_path(struct parse *p, const char *section, const char *key,
                    const char *v, char *dst, size_t cap)
{
	/* The daemon runs from / once detached, so a relative path would
	 * name something other than what the admin meant. */
	if (v[0] != '/')
		return fail(p, section, key, "'%s' is not an absolute path", v);
	if (!copy_str(dst, cap, v))
		return fail(p, section, key, "path longer than %zu bytes", cap - 1);
	return 1;
}

static bool parse_hex16(const char *s, size_t len, uint16_t *out)
{
	if (len < 1 || len > 4)
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < len; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return false;
		v = v * 16 + (unsigned)(isdigit((unsigned char)s[i])
		                            ? s[i] - '0'
		                            : tolower((unsigned char)s[i]) - 'a' + 10);
	}
	*out = (uint16_t)v;
	return true;
}

static int set_usb_ids(struct parse *p, const char *section, const char *key,
                       const char *v)
{
	struct usb_id ids[CONFIG_MAX_USB_IDS] = {{0, 0}};
	int n = 0;
	const char *s = v;
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		const char *end = s + strcspn(s, ",");
		const char *last = end;
		while (last > s && (last[-1] == ' ' || last[-1] == '\t'))
			last--;
		const char *colon = memchr(s, ':', (size_t)(last - s));
		uint16_t vid, pid;
		if (last == s)
			return fail(p, section, key,
			            "expected a comma-separated list of VID:PID "
			            "in hexadecimal, e.g. 1209:0001");
		if (!colon || !parse_hex16(s, (size_t)(colon - s), &vid) ||
		    !parse_hex16(colon + 1, (size_t)(last - colon - 1), &pid))
			return fail(p, section, key,
			            "'%.*s' is not VID:PID in hexadecimal (e.g. 1209:0001)",
			            (int)(last - s), s);
		if (n == CONFIG_MAX_USB_IDS)
			return fail(p, section, key, "more than %d ids", CONFIG_MAX_USB_IDS);
		ids[n++] = (struct usb_id){vid, pid};
		if (!*end)
			break;
		s = end + 1;
	}
	memcpy(p->c->usb_ids, ids, sizeof ids);
	p->c->n_usb_ids = n;
	return 1;
}

/* One [policy] key, read and checked by the library (the same reading
 * penctl --policy gives the same section); depth_cap.GROUP must also name
 * a Unix group, which is the daemon's business. */
static int set_policy(struct parse *p, const char *section, const char *key,
                      const char *v)
{
	if (!strncmp(key, "depth_cap.", 10) && (!key[10] || !valid_group(key + 10)))
		return fail(p, section, key,
		            "expected depth_cap.GROUP with a Unix group name");
	if (!p->policy && pl_policy_new(&p->policy) != PL_OK)
		return fail(p, section, key, "out of memory");
	/* The library's message names the section, key and value itself. */
	if (pl_policy_set(p->policy, key, v) != PL_OK)
		return fail_line(p, pl_error_message());
	return 1;
}

/* [pens] holds only whole numbers, each with its range. */
static int set_pen_number(struct parse *p, const char *section,
                          const char *key, const char *v)
{
	struct config *c = p->c;
	const struct {
		const char *key;
		int *dst;
		int min, max;
		const char *what;
	} keys[] = {
	    {"request_timeout_ms", &c->timeout_ms, 10, 600000,
	     "a number of milliseconds from 10 to 600000"},
	    {"handshake_timeout_ms", &c->handshake_ms, 10, 600000,
	     "a number of milliseconds from 10 to 600000"},
	    {"download_window", &c->window, 0, 1024,
	     "a number from 0 (as the pen allows) to 1024"},
	};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (strcmp(key, keys[i].key))
			continue;
		if (!parse_int(v, keys[i].min, keys[i].max, keys[i].dst))
			return fail(p, section, key, "'%s' is not %s", v, keys[i].what);
		return 1;
	}
	return fail(p, section, key, "unknown key");
}

/* A site's name: what central stores with every session it delivers, so
 * one word people can read in reports. */
static bool valid_site(const char *v)
{
	size_t n = strlen(v);
	if (n < 1 || n > 63)
		return false;
	for (const unsigned char *s = (const unsigned char *)v; *s; s++)
		if (!isalnum(*s) && *s != '-' && *s != '_' && *s != '.')
			return false;
	return isalnum((unsigned char)v[0]);
}

/* [central]: url and site (both or neither), and the replicator's knobs.
 * The url is checked by libpq's own parser and never echoed back: it may
 * carry secrets even when it is wrong. */
static int set_central(struct parse *p, const char *section, const char *key,
                       const char *v)
{
	struct config *c = p->c;
	if (!strcmp(key, "url")) {
		if (pc_conninfo_check(v) != PL_OK)
			return fail(p, section, key, "%s", pl_error_message());
		if (!copy_str(c->central_url, sizeof c->central_url, v))
			return fail(p, section, key, "longer than %zu bytes",
			            sizeof c->central_url - 1);
		if (!p->central_line)
			p->central_line = p->lineno;
		return 1;
	}
	if (!strcmp(key, "site")) {
		if (!valid_site(v))
			return fail(p, section, key,
			            "'%s' is not a site name (1 to 63 letters, digits, "
			            "'-', '_' or '.', starting with a letter or digit)",
			            v);
		copy_str(c->central_site, sizeof c->central_site, v);
		if (!p->central_line)
			p->central_line = p->lineno;
		return 1;
	}
	if (!strcmp(key, "retry_max_s")) {
		if (!parse_int(v, 1, 3600, &c->central_retry_max_s))
			return fail(p, section, key, "'%s' is not a number of seconds "
			            "from 1 to 3600", v);
		return 1;
	}
	if (!strcmp(key, "batch_kib")) {
		if (!parse_int(v, 64, 262144, &c->central_batch_kib))
			return fail(p, section, key, "'%s' is not a number of KiB "
			            "from 64 to 262144", v);
		return 1;
	}
	return fail(p, section, key, "unknown key (known: url, site, "
	            "retry_max_s, batch_kib)");
}

static int set_level(struct parse *p, const char *section, const char *key,
                     const char *v)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {{"err", LOG_ERR},       {"error", LOG_ERR},
	             {"warn", LOG_WARN},     {"warning", LOG_WARN},
	             {"notice", LOG_NOTICE}, {"info", LOG_INFO},
	             {"debug", LOG_DEBUG}};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcasecmp(v, names[i].name)) {
			p->c->log_level = names[i].level;
			return 1;
		}
	return fail(p, section, key,
	            "'%s' is not a level (err, warn, notice, info or debug)", v);
}

/* A key given twice is refused: the second would silently win, and inih
 * also reports an indented line as a continuation of the key above. */
static int check_twice(struct parse *p, const char *section, const char *key)
{
	char k[96];
	snprintf(k, sizeof k, "%s\n%s", section, key);
	for (int i = 0; i < p->nseen; i++)
		if (!strcmp(p->seen[i].key, k))
			return fail(p, section, key, "given twice (first on line %d)",
			            p->seen[i].line);
	if (p->nseen == MAX_SEEN)
		return fail(p, section, key, "too many keys");
	snprintf(p->seen[p->nseen].key, sizeof p->seen[0].key, "%s", k);
	p->seen[p->nseen++].line = p->lineno;
	return 1;
}

static int handler(void *ud, const char *section, const char *key,
                   const char *v)
{
	struct parse *p = ud;
	struct config *c = p->c;
	if (p->err_line)
		return 0;
	if (!check_twice(p, section, key))
		return 0;
	bool ok_bool;
	if (!strcmp(section, "daemon")) {
		if (!strcmp(key, "socket"))
			return set_path(p, section, key, v, c->socket_path, sizeof c->socket_path);
		if (!strcmp(key, "database"))
			return set_path(p, section, key, v, c->db_path, sizeof c->db_path);
		if (!strcmp(key, "socket_group"))
			return set_group(p, section, key, v, c->socket_group,
			                 sizeof c->socket_group, true);
		if (!strcmp(key, "socket_mode")) {
			char *end;
			errno = 0;
			unsigned long m = strtoul(v, &end, 8);
			if (!*v || *v == '-' || *v == '+' || isspace((unsigned char)*v) ||
			    errno || *end || m > 0777)
				return fail(p, section, key,
				            "'%s' is not an octal mode from 0000 to 0777 "
				            "(e.g. 0660)", v);
			c->socket_mode = (mode_t)m;
			return 1;
		}
		if (!strcmp(key, "log_level"))
			return set_level(p, section, key, v);
	} else if (!strcmp(section, "usb")) {
		if (!strcmp(key, "enabled")) {
			if (!parse_bool(v, &ok_bool))
				return fail(p, section, key, "'%s' is not yes or no", v);
			c->usb_enabled = ok_bool;
			return 1;
		}
		if (!strcmp(key, "ids"))
			return set_usb_ids(p, section, key, v);
	} else if (!strcmp(section, "access")) {
		if (!strcmp(key, "logs_group"))
			return set_group(p, section, key, v, c->logs_group,
			                 sizeof c->logs_group, true);
		if (!strcmp(key, "presets_group"))
			return set_group(p, section, key, v, c->presets_group,
			                 sizeof c->presets_group, true);
	} else if (!strcmp(section, "policy")) {
		return set_policy(p, section, key, v);
	} else if (!strcmp(section, "pens")) {
		return set_pen_number(p, section, key, v);
	} else if (!strcmp(section, "central")) {
		return set_central(p, section, key, v);
	} else if (!*section) {
		return fail(p, section, key, "key outside any [section]");
	} else {
		return fail(p, section, key,
		            "unknown section (known: daemon, usb, access, policy, "
		            "pens, central)");
	}
	return fail(p, section, key, "unknown key");
}

int config_load(struct config *c, const char *path, bool required, char *err,
                size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	FILE *f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT && !required)
			return 0;
		if (err)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* Parse into a copy: a file with an error changes nothing. */
	struct parse *p = calloc(1, sizeof *p);
	struct config *tmp = malloc(sizeof *tmp);
	if (!p || !tmp) {
		free(p);
		free(tmp);
		fclose(f);
		if (err)
			snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	*tmp = *c;
	p->c = tmp;
	p->path = path;
	p->f = f;
	int rc = ini_parse_stream(read_line, p, handler, p);
	int read_errno = ferror(f) ? (errno ? errno : EIO) : 0;
	fclose(f);
	int ret = -1;
	if (read_errno) {
		if (err)
			snprintf(err, errlen, "%s: %s", path, strerror(read_errno));
	} else if (p->err_line && (rc <= 0 || rc >= p->err_line)) {
		if (err)
			snprintf(err, errlen, "%s", p->err);
	} else if (rc > 0) {
		/* inih found a line that is neither a section nor key = value. */
		if (err)
			snprintf(err, errlen,
			         "%s:%d: expected [section], key = value or a comment "
			         "(# or ;)",
			         path, rc);
	} else if (rc < 0) {
		if (err)
			snprintf(err, errlen, "%s: cannot parse (inih error %d)", path, rc);
	} else if (p->central_line && (!tmp->central_url[0] || !tmp->central_site[0])) {
		if (err)
			snprintf(err, errlen, "%s:%d: [central] %s: missing; central "
			         "replication needs both url and site", path,
			         p->central_line, tmp->central_url[0] ? "site" : "url");
	} else {
		if (p->policy) {
			pl_policy_free(c->policy);
			tmp->policy = p->policy;
			p->policy = NULL;
		}
		*c = *tmp;
		ret = 0;
	}
	pl_policy_free(p->policy);
	free(p);
	free(tmp);
	return ret;
}
