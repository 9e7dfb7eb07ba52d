/* penctl sessions list | pull | show */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h" /* pl__fail: fail like the library */
#include "penctl.h"

/* ------------------------------------------------------------------ list */

enum { S_OUT = 1, S_KEEP, S_SAMPLES, S_SINCE, S_FORMAT, S_DIR };

static int list_daemon(struct ctl *c, int64_t since);

/* Sessions that started at or after since (0: all).  A pen without a clock
 * timed its sessions by uptime, so when they happened is unknown: left out. */
static size_t filter_since(struct pl_session_info *ss, size_t n, int64_t since)
{
	if (!since)
		return n;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (ss[i].rtc_time && ss[i].start_ms >= since)
			ss[k++] = ss[i];
	return k;
}

/* A session's start (local time, or pen uptime when its clock was not set)
 * and duration, as both session tables show them. */
static void fmt_session_span(char *start, size_t start_len, char *dur,
                             size_t dur_len, bool rtc, int64_t start_ms,
                             int64_t end_ms)
{
	if (rtc)
		fmt_local_time(start, start_ms);
	else
		snprintf(start, start_len, "uptime +%llds",
		         (long long)(start_ms / 1000));
	if (end_ms >= start_ms)
		/* Unsigned: the pen's two times may lie further apart than an
		 * int64_t holds. */
		fmt_duration(dur, (uint64_t)end_ms - (uint64_t)start_ms > (uint64_t)INT64_MAX
		                      ? INT64_MAX
		                      : (int64_t)((uint64_t)end_ms - (uint64_t)start_ms));
	else
		snprintf(dur, dur_len, "?");
}

static int sessions_list(struct ctl *c, struct opt_iter *it)
{
	static const struct optdef defs[] = {
		{"--since", 0, true, S_SINCE},
		{NULL, 0, false, 0},
	};
	int64_t since = 0;
	const char *v;
	int id;
	while ((id = opt_next(c, it, defs, &v)) != OPT_END) {
		if (id == OPT_BAD)
			return PX_USAGE;
		if (id == S_SINCE) {
			if (parse_date(c, "--since", v, &since) != PX_OK)
				return PX_USAGE;
			continue;
		}
		return ctl_usage(c, "sessions list takes no arguments (got '%.40s')",
		                 v);
	}
	if (ctl_daemon_mode(c))
		return list_daemon(c, since);
	int rc = ctl_connect(c);
	if (rc != PX_OK)
		return rc;
	struct pl_session_info *ss = NULL;
	size_t n = 0;
	rc = c->be.ops->list_sessions(c->be.ctx, &ss, &n);
	if (rc != PL_OK)
		return ctl_fail_pl(c, rc);
	n = filter_since(ss, n, since);
	const char *serial = c->be.ops->serial(c->be.ctx);
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "serial", json_object_new_string(serial));
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(a, json_session(&ss[i]));
		json_object_object_add(o, "sessions", a);
		free(ss);
		return ctl_emit_json(c, o);
	}
	size_t archived = 0;
	for (size_t i = 0; i < n; i++)
		archived += ss[i].archived;
	printf("%s: %zu session%s, %zu archived\n", serial, n, n == 1 ? "" : "s",
	       archived);
	if (n) {
		static const char *const hdr[] = {"id",       "seq",  "uuid",
		                                  "start",    "duration", "size",
		                                  "archived"};
		struct table *t = table_new(7, hdr, "rrllrrl");
		for (size_t i = 0; t && i < n; i++) {
			const struct pl_session_info *s = &ss[i];
			char idb[16], seq[16], uuid[37], start[FMT_BUF + 16],
			    dur[FMT_BUF], size[FMT_BUF];
			snprintf(idb, sizeof idb, "%u", s->id);
			snprintf(seq, sizeof seq, "%u", s->seq);
			pl_uuid_format(s->uuid, uuid);
			fmt_session_span(start, sizeof start, dur, sizeof dur,
			                 s->rtc_time, s->start_ms, s->end_ms);
			const char *row[] = {idb,  seq,  uuid, start,
			                     dur,  fmt_bytes(size, s->size),
			                     s->archived ? "yes" : "no"};
			table_row(t, row);
		}
		table_print(t, stdout, "");
		table_free(t);
	}
	free(ss);
	return PX_OK;
}

/* ------------------------------------------------------------------ pull */

/* mkdir -p with mode 0750 for what it creates. */
static int make_dirs(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char saved = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, 0750) != 0 && errno != EEXIST)
			return -1;
		buf[i] = saved;
	}
	struct stat st;
	if (stat(path, &st) != 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/* The rename of a finished record is only durable once its directory is. */
static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/*
 * Something planted where penctl is about to write - a symbolic link, a
 * folder, a FIFO, or a file with other hard links - is refused, never
 * replaced or written through: whoever put it there meant another file
 * (in a shared folder, a link to a file of the user running penctl).
 */
static bool planted(const struct stat *st)
{
	return !S_ISREG(st->st_mode) || st->st_nlink > 1;
}

static int refuse_planted(struct ctl *c, const char *dir, const char *name,
                          const struct stat *st)
{
	return ctl_fail_exit(c, PX_REFUSED, "refused", "refused",
	                     "%s%s%s is %s; not replacing it (remove it or "
	                     "choose another name)",
	                     dir ? dir : "", dir ? "/" : "", name,
	                     S_ISLNK(st->st_mode)  ? "a symbolic link"
	                     : S_ISDIR(st->st_mode) ? "a folder"
	                     : !S_ISREG(st->st_mode) ? "not a regular file"
	                                             : "a file with other hard links");
}

/* PX_OK if path is absent or a plain file (of its own, unless the caller
 * only ever renames over it: that replaces a hard link's name and leaves
 * its file alone); else refused. */
static int check_target(struct ctl *c, const char *path, bool renamed_over)
{
	struct stat st;
	if (lstat(path, &st) == 0 &&
	    (renamed_over ? !S_ISREG(st.st_mode) : planted(&st)))
		return refuse_planted(c, NULL, path, &st);
	return PX_OK;
}

/*
 * A pen's serial (or any text from a pen) as part of a file name.  It comes
 * from the device and may be hostile ("../../etc/x", "/abs", control
 * bytes, hundreds of characters): only [A-Za-z0-9._-] survive, anything
 * else becomes '_', a leading '.' too (no hidden files, never "." or ".."),
 * at most cap - 1 bytes, and "pen" if nothing is left.  The result never
 * contains '/', so it names an entry of the folder it is joined to.
 */
static void safe_name(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	if (cap == 0)
		return;
	for (; in && *in && n + 1 < cap; in++) {
		char ch = *in;
		bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		          (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		          (ch == '.' && n > 0);
		out[n++] = ok ? ch : '_';
	}
	out[n] = '\0';
	if (n == 0)
		snprintf(out, cap, "pen");
}

struct pull_progress {
	struct progress bar;
	uint64_t done;
};

static void on_progress(void *ud, uint64_t done, uint64_t total)
{
	struct pull_progress *pp = ud;
	pp->done = done;
	progress_update(&pp->bar, done, total);
}

static json_object *pulled_json(const struct pl_session_info *s,
                                const char *path)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_int64(s->id));
	json_object_object_add(o, "seq", json_object_new_int64(s->seq));
	json_object_object_add(o, "uuid", json_uuid(s->uuid));
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "size", json_object_new_uint64(s->size));
	json_object_object_add(o, "sha256", json_hex(s->sha256, 32));
	return o;
}

/* Is path a complete, verified copy of s already? */
static bool have_verified(const char *path, const struct pl_session_info *s,
                          bool *exists)
{
	struct stat st;
	*exists = false;
	if (stat(path, &st) != 0)
		return false;
	*exists = true;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != s->size)
		return false;
	uint8_t sha[32];
	if (pl_sha256_file(path, sha) != PL_OK)
		return false;
	return memcmp(sha, s->sha256, 32) == 0;
}

static uint64_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

struct pull_state {
	json_object *pulled, *skipped, *archived;
	size_t n_pulled, n_present, n_archived;
};

static int pull_fail_partial(struct ctl *c, struct pull_state *ps)
{
	/* Hand what is already done to the JSON error document. */
	ctl_partial(c, "pulled", json_object_get(ps->pulled));
	ctl_partial(c, "skipped", json_object_get(ps->skipped));
	ctl_partial(c, "archived", json_object_get(ps->archived));
	return PX_OK;
}

static int download_one(struct ctl *c, const struct pl_session_info *s,
                        const char *part, struct pull_progress *pp,
                        uint64_t *resumed_at)
{
	bool bar = c->stdout_tty && !c->json && !c->dump_frames;
	for (int attempt = 0;; attempt++) {
		*resumed_at = file_size(part);
		progress_init(&pp->bar, bar, *resumed_at);
		pp->done = *resumed_at;
		int rc = c->be.ops->download_to_file(c->be.ctx, s, part, on_progress,
		                                     pp);
		progress_clear(&pp->bar);
		/* A resumed download whose digest fails may have inherited bad
		 * bytes from the earlier run; the library removed the file, so
		 * one fresh attempt settles it. */
		if (rc == PL_ERR_DIGEST && *resumed_at > 0 && attempt == 0) {
			ctl_warn("session %u: digest mismatch after resuming at %llu "
			         "bytes; downloading it again from the start",
			         s->id, (unsigned long long)*resumed_at);
			continue;
		}
		return rc;
	}
}

static int pull_daemon(struct ctl *c, const char *dir, int64_t since);

static int sessions_pull(struct ctl *c, struct opt_iter *it)
{
	static const struct optdef defs[] = {
		{"--out", 'o', true, S_OUT},
		{"--keep", 0, false, S_KEEP},
		{"--since", 0, true, S_SINCE},
		{NULL, 0, false, 0},
	};
	const char *dir = ".";
	bool keep = false;
	int64_t since = 0;
	const char *v;
	int id;
	while ((id = opt_next(c, it, defs, &v)) != OPT_END) {
		if (id == OPT_BAD)
			return PX_USAGE;
		if (id == S_OUT) {
			if (!*v)
				return ctl_usage(c, "--out needs a directory");
			dir = v;
		} else if (id == S_KEEP) {
			keep = true;
		} else if (id == S_SINCE) {
			if (parse_date(c, "--since", v, &since) != PX_OK)
				return PX_USAGE;
		} else {
			return ctl_usage(c, "sessions pull takes no arguments (got "
			                 "'%.40s'); use --out DIR", v);
		}
	}
	if (strlen(dir) > PATH_MAX - 128)
		return ctl_usage(c, "--out: directory name too long");
	/* Through penlinkd the daemon decides when a pen may reclaim a
	 * session (once it is in the archive), so --keep changes nothing. */
	if (ctl_daemon_mode(c))
		return pull_daemon(c, dir, since);
	int rc = ctl_connect(c);
	if (rc != PX_OK)
		return rc;
	if (make_dirs(dir) != 0)
		return ctl_fail_errno(c, errno, "cannot create %s", dir);

	struct pl_session_info *ss = NULL;
	size_t n = 0;
	int e = c->be.ops->list_sessions(c->be.ctx, &ss, &n);
	if (e != PL_OK)
		return ctl_fail_pl(c, e);
	n = filter_since(ss, n, since);

	char serial[64];
	safe_name(c->be.ops->serial(c->be.ctx), serial, sizeof serial);
	struct pull_state ps = {
		.pulled = json_object_new_array(),
		.skipped = json_object_new_array(),
		.archived = json_object_new_array(),
	};
	struct pull_progress pp;
	rc = PX_OK;
	for (size_t i = 0; i < n && rc == PX_OK; i++) {
		const struct pl_session_info *s = &ss[i];
		if (s->archived)
			continue;
		char uuid[37], name[160], final[PATH_MAX], part[PATH_MAX];
		char sz[FMT_BUF], at[FMT_BUF];
		pl_uuid_format(s->uuid, uuid);
		snprintf(name, sizeof name, "%s-%06u-%s.plrec", serial, s->seq, uuid);
		snprintf(final, sizeof final, "%s/%s", dir, name);
		snprintf(part, sizeof part, "%s/.%s.part", dir, name);
		/* The .part file is resumed (appended to, or truncated): it
		 * must be penctl's own; O_NOFOLLOW in the library closes the
		 * race this check leaves. */
		if ((rc = check_target(c, final, true)) != PX_OK ||
		    (rc = check_target(c, part, false)) != PX_OK) {
			pull_fail_partial(c, &ps);
			break;
		}

		bool exists;
		if (have_verified(final, s, &exists)) {
			ps.n_present++;
			json_object_array_add(ps.skipped, pulled_json(s, final));
			if (!c->json)
				printf("already have %u (seq %u, %s) -> %s\n", s->id, s->seq,
				       fmt_bytes(sz, s->size), final);
		} else {
			if (exists)
				ctl_warn("%s differs from session %u on the pen; "
				         "downloading it again", final, s->id);
			uint64_t resumed_at = 0;
			e = download_one(c, s, part, &pp, &resumed_at);
			if (e != PL_OK) {
				pull_fail_partial(c, &ps);
				uint64_t got = file_size(part);
				if (got == 0)
					got = pp.done;
				fmt_bytes(at, got);
				fmt_bytes(sz, s->size);
				if (e == PL_ERR_UNPLUGGED)
					rc = ctl_fail_code(c, e,
					                   "the pen went away during session %u "
					                   "at %s of %s; run pull again to resume",
					                   s->id, at, sz);
				else if (e == PL_ERR_TIMEOUT || e == PL_ERR_IO)
					rc = ctl_fail_code(c, e,
					                   "session %u stopped at %s of %s (%s); "
					                   "run pull again to resume",
					                   s->id, at, sz, pl_error_message());
				else
					rc = ctl_fail_code(c, e, "session %u: %s", s->id,
					                   pl_error_message());
				break;
			}
			if (rename(part, final) != 0 || fsync_dir(dir) != 0) {
				pull_fail_partial(c, &ps);
				rc = ctl_fail_errno(c, errno, "storing %s", final);
				break;
			}
			ps.n_pulled++;
			json_object_array_add(ps.pulled, pulled_json(s, final));
			if (!c->json) {
				if (resumed_at)
					printf("pulled %u (seq %u, %s, resumed at %s) -> %s\n",
					       s->id, s->seq, fmt_bytes(sz, s->size),
					       fmt_bytes(at, resumed_at), final);
				else
					printf("pulled %u (seq %u, %s) -> %s\n", s->id, s->seq,
					       fmt_bytes(sz, s->size), final);
			}
		}
		if (!keep) {
			e = c->be.ops->archive(c->be.ctx, s->id, s->sha256);
			if (e != PL_OK) {
				pull_fail_partial(c, &ps);
				rc = ctl_fail_code(c, e,
				                   "session %u is stored in %s but the pen "
				                   "did not archive it: %s",
				                   s->id, final, pl_error_message());
				break;
			}
			ps.n_archived++;
			json_object_array_add(ps.archived, json_object_new_int64(s->id));
		}
		fflush(stdout);
	}
	free(ss);
	if (rc == PX_OK) {
		if (c->json) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "serial",
			                       json_object_new_string(c->be.ops->serial(c->be.ctx)));
			json_object_object_add(o, "dir", json_object_new_string(dir));
			json_object_object_add(o, "pulled", json_object_get(ps.pulled));
			json_object_object_add(o, "skipped", json_object_get(ps.skipped));
			json_object_object_add(o, "archived", json_object_get(ps.archived));
			ctl_emit_json(c, o);
		} else {
			printf("%zu pulled, %zu already present, %zu archived on the pen\n",
			       ps.n_pulled, ps.n_present, ps.n_archived);
		}
	}
	json_object_put(ps.pulled);
	json_object_put(ps.skipped);
	json_object_put(ps.archived);
	return rc;
}

/* ------------------------------------------------------------------ show */

static void print_samples(const struct pl_record *r)
{
	struct pl_telemetry t;
	pl_record_telemetry(r, &t);
	printf("\ntelemetry samples: %zu\n", t.count);
	if (!t.count)
		return;
	printf("%12s%12s%12s%12s\n", "t_ms", "depth_um", "current_ma", "battery_mv");
	for (size_t i = 0; i < t.count; i++)
		printf("%12.3f%12" PRIu32 "%12" PRIu32 "%12" PRIu32 "\n",
		       (double)i * t.interval_us / 1000.0, t.depth_um[i],
		       t.current_ma[i], t.battery_mv[i]);
}

static int show_record(struct ctl *c, struct pl_record *r, const char *file,
                       bool samples);
static int show_daemon(struct ctl *c, const char *uuid, bool samples);

static int sessions_show(struct ctl *c, struct opt_iter *it)
{
	static const struct optdef defs[] = {
		{"--samples", 0, false, S_SAMPLES},
		{NULL, 0, false, 0},
	};
	const char *file = NULL;
	bool samples = false;
	const char *v;
	int id;
	while ((id = opt_next(c, it, defs, &v)) != OPT_END) {
		if (id == OPT_BAD)
			return PX_USAGE;
		if (id == S_SAMPLES) {
			samples = true;
		} else if (file) {
			return ctl_usage(c, "sessions show takes one FILE (got '%.40s' "
			                 "and '%.40s')", file, v);
		} else {
			file = v;
		}
	}
	if (!file)
		return ctl_usage(c, "sessions show needs a FILE (a pulled .plrec) "
		                 "or the UUID of an archived session");
	/* A file by that name wins: a pulled record is named after its UUID
	 * but never is exactly one. */
	struct stat st;
	uint8_t uuid[16];
	if (stat(file, &st) != 0 && ctl_daemon_mode(c) && parse_uuid(file, uuid))
		return show_daemon(c, file, samples);
	struct pl_record *r = NULL;
	int e = pl_record_parse_file(file, &r);
	if (e == PL_ERR_PARSE)
		return ctl_fail_exit(c, PX_INTEGRITY, error_slug_for(e), pl_error_name(e),
		                     "%s: not a valid session record: %s", file,
		                     pl_error_message());
	if (e != PL_OK)
		return ctl_fail_code(c, e, "%s: %s", file, pl_error_message());
	return show_record(c, r, file, samples);
}

static int show_record(struct ctl *c, struct pl_record *r, const char *file,
                       bool samples)
{
	int e;
	int rc = PX_OK;
	if (c->json) {
		char *text = pl_record_to_json(r, samples);
		json_object *doc = text ? json_tokener_parse(text) : NULL;
		free(text);
		if (!doc)
			rc = ctl_fail_code(c, PL_ERR_MEM, "cannot render %s as JSON", file);
		else
			rc = ctl_emit_json(c, doc);
	} else {
		e = pl_record_print(r, stdout);
		if (e != PL_OK)
			rc = ctl_fail_pl(c, e);
		else if (samples)
			print_samples(r);
	}
	pl_record_free(r);
	return rc;
}

static int sessions_export(struct ctl *c, struct opt_iter *it);

int cmd_sessions(struct ctl *c, int argc, char **argv, int start)
{
	struct opt_iter it;
	opt_init(&it, argc, argv, start, "sessions");
	const char *sub;
	int id = opt_next(c, &it, NULL, &sub);
	if (id == OPT_BAD)
		return PX_USAGE;
	if (id == OPT_END)
		return ctl_usage(c, "sessions needs a subcommand: list, pull, show "
		                 "or export");
	if (strcmp(sub, "list") == 0) {
		it.cmd = "sessions list";
		return sessions_list(c, &it);
	}
	if (strcmp(sub, "pull") == 0) {
		it.cmd = "sessions pull";
		return sessions_pull(c, &it);
	}
	if (strcmp(sub, "show") == 0) {
		it.cmd = "sessions show";
		return sessions_show(c, &it);
	}
	if (strcmp(sub, "export") == 0) {
		it.cmd = "sessions export";
		return sessions_export(c, &it);
	}
	return ctl_usage(c, "unknown sessions subcommand '%.40s' (list, pull, "
	                 "show, export)", sub);
}

/* ------------------------------------------------------------------ penlinkd: the archive */

/* Records penctl holds in memory for `show` (several MB in practice). */
#define SHOW_MAX ((uint64_t)1 << 30)

static const char *time_source_name(Pl__TimeSource t)
{
	return t == PL__TIME_SOURCE__TIME_SOURCE_RTC ? "rtc" : "uptime";
}

/* An archived session as the pen-side struct (id 0: not the pen's handle),
 * so the direct mode's file checks apply unchanged. */
static int from_archived(const Plctl__ArchivedSession *a,
                         struct pl_session_info *s)
{
	memset(s, 0, sizeof *s);
	if (a->uuid.len != 16 || a->sha256.len != 32)
		return pl__fail(PL_ERR_PROTOCOL, "penlinkd listed a session "
		                "with a %zu-byte uuid and a %zu-byte digest",
		                a->uuid.len, a->sha256.len);
	memcpy(s->uuid, a->uuid.data, 16);
	memcpy(s->sha256, a->sha256.data, 32);
	s->seq = a->seq;
	s->size = a->size;
	s->start_ms = a->start_ms;
	s->end_ms = a->end_ms;
	s->rtc_time = a->time_source == PL__TIME_SOURCE__TIME_SOURCE_RTC;
	s->archived = true;
	return PL_OK;
}

/* The archive's sessions, from however many pieces they came in. */
struct archive_list {
	struct dc_pages pages;
	const Plctl__ArchivedSession **v;
	size_t n;
};

static void archive_list_free(struct archive_list *l)
{
	dc_pages_free(&l->pages);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int fetch_list(struct ctl *c, int64_t since, struct archive_list *out)
{
	memset(out, 0, sizeof *out);
	int rc = ctl_connect(c);
	if (rc != PX_OK)
		return rc;
	Plctl__ListSessions ls = PLCTL__LIST_SESSIONS__INIT;
	ls.serial = (char *)(c->serial ? c->serial : "");
	ls.since_ms = since;
	Plctl__Request req = PLCTL__REQUEST__INIT;
	req.op_case = PLCTL__REQUEST__OP_LIST_SESSIONS;
	req.list_sessions = &ls;
	int e = dc_collect(c, &req, PLCTL__RESPONSE__BODY_SESSIONS, &out->pages);
	if (e != PL_OK)
		return ctl_fail_pl(c, e);
	size_t total = 0;
	for (size_t p = 0; p < out->pages.n; p++) {
		const Plctl__SessionList *sl = out->pages.v[p]->sessions;
		total += sl ? sl->n_sessions : 0;
	}
	out->v = calloc(total ? total : 1, sizeof *out->v);
	if (!out->v) {
		archive_list_free(out);
		return ctl_fail_code(c, PL_ERR_MEM, "out of memory");
	}
	for (size_t p = 0; p < out->pages.n; p++) {
		const Plctl__SessionList *sl = out->pages.v[p]->sessions;
		for (size_t i = 0; sl && i < sl->n_sessions; i++) {
			/* Check every entry once, so the commands can trust them. */
			struct pl_session_info si;
			e = from_archived(sl->sessions[i], &si);
			if (e != PL_OK) {
				archive_list_free(out);
				return ctl_fail_pl(c, e);
			}
			out->v[out->n++] = sl->sessions[i];
		}
	}
	return PX_OK;
}

static int list_daemon(struct ctl *c, int64_t since)
{
	struct archive_list l;
	int rc = fetch_list(c, since, &l);
	if (rc != PX_OK)
		return rc;
	size_t n = l.n;
	const Plctl__ArchivedSession **as = l.v;
	if (c->json) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "serial",
			                       json_object_new_string(as[i]->serial
			                                                  ? as[i]->serial
			                                                  : ""));
			json_object_object_add(o, "uuid", json_uuid(as[i]->uuid.data));
			json_object_object_add(o, "seq", json_object_new_int64(as[i]->seq));
			json_object_object_add(o, "size", json_object_new_uint64(as[i]->size));
			json_object_object_add(o, "sha256", json_hex(as[i]->sha256.data, 32));
			json_object_object_add(o, "start_ms",
			                       json_object_new_int64(as[i]->start_ms));
			json_object_object_add(o, "end_ms",
			                       json_object_new_int64(as[i]->end_ms));
			json_object_object_add(
			    o, "time_source",
			    json_object_new_string(time_source_name(as[i]->time_source)));
			json_object_object_add(o, "archived_ms",
			                       json_object_new_int64(as[i]->archived_ms));
			json_object_array_add(a, o);
		}
		json_object *o = json_object_new_object();
		json_object_object_add(o, "sessions", a);
		archive_list_free(&l);
		return ctl_emit_json(c, o);
	}
	printf("%zu session%s in the archive\n", n, n == 1 ? "" : "s");
	if (n) {
		static const char *const hdr[] = {"serial", "seq",  "uuid",
		                                  "start",  "duration", "size",
		                                  "archived"};
		struct table *t = table_new(7, hdr, "lrllrrl");
		for (size_t i = 0; t && i < n; i++) {
			const Plctl__ArchivedSession *a = as[i];
			char serial[64], seq[16], uuid[37], start[FMT_BUF + 16],
			    dur[FMT_BUF], size[FMT_BUF], when[FMT_BUF];
			safe_text(serial, sizeof serial, a->serial);
			snprintf(seq, sizeof seq, "%u", a->seq);
			pl_uuid_format(a->uuid.data, uuid);
			fmt_session_span(start, sizeof start, dur, sizeof dur,
			                 a->time_source == PL__TIME_SOURCE__TIME_SOURCE_RTC,
			                 a->start_ms, a->end_ms);
			const char *row[] = {serial, seq, uuid, start, dur,
			                     fmt_bytes(size, a->size),
			                     fmt_local_time(when, a->archived_ms)};
			table_row(t, row);
		}
		table_print(t, stdout, "");
		table_free(t);
	}
	archive_list_free(&l);
	return PX_OK;
}

/* Receives one archived record's bytes in order (RecordChunk stream). */
typedef int (*record_sink)(void *ud, const uint8_t *data, size_t len,
                           uint64_t done, uint64_t total);

static int fetch_record(struct ctl *c, const char *uuid, uint64_t max,
                        record_sink sink, void *ud)
{
	Plctl__ShowSession ss = PLCTL__SHOW_SESSION__INIT;
	ss.uuid = (char *)uuid;
	Plctl__Request req = PLCTL__REQUEST__INIT;
	req.op_case = PLCTL__REQUEST__OP_SHOW_SESSION;
	req.show_session = &ss;
	int e = dc_send(c, &req);
	if (e != PL_OK)
		return e;
	uint64_t got = 0, size = 0;
	bool sized = false;
	unsigned empty = 0;
	for (;;) {
		Plctl__Response *r;
		/* The timeout bounds each piece, not the whole record. */
		e = dc_next(c, req.id, dc_timeout(c), &r);
		if (e != PL_OK)
			return e;
		const Plctl__RecordChunk *ch =
		    r->body_case == PLCTL__RESPONSE__BODY_RECORD ? r->record : NULL;
		bool last = r->last;
		if (!ch) {
			dc_free(r);
			return pl__fail(PL_ERR_PROTOCOL, "penlinkd answered show "
			                "with something other than the record");
		}
		if (!sized) {
			size = ch->size;
			sized = true;
			if (size > max) {
				dc_free(r);
				return pl__fail(PL_ERR_PARSE, "session %s is %llu bytes; "
				                "penctl shows records up to %llu bytes",
				                uuid, (unsigned long long)size,
				                (unsigned long long)max);
			}
		}
		if (ch->size != size || ch->offset != got ||
		    ch->data.len > size - got) {
			dc_free(r);
			return pl__fail(PL_ERR_PROTOCOL, "penlinkd sent bytes %llu+%zu "
			                "of a %llu-byte record after %llu bytes",
			                (unsigned long long)ch->offset, ch->data.len,
			                (unsigned long long)ch->size,
			                (unsigned long long)got);
		}
		/* A stream of empty pieces would never end. */
		if (!ch->data.len && !last && ++empty > 1000) {
			dc_free(r);
			return pl__fail(PL_ERR_PROTOCOL, "penlinkd sends empty pieces "
			                "of session %s", uuid);
		}
		if (ch->data.len) {
			e = sink(ud, ch->data.data, ch->data.len, got + ch->data.len, size);
			got += ch->data.len;
		}
		dc_free(r);
		if (e != PL_OK)
			return e;
		if (last)
			break;
	}
	if (got != size)
		return pl__fail(PL_ERR_PROTOCOL, "penlinkd ended session %s after "
		                "%llu of %llu bytes", uuid, (unsigned long long)got,
		                (unsigned long long)size);
	return PL_OK;
}

struct mem_sink {
	uint8_t *buf;
	size_t len, cap;
};

static int to_memory(void *ud, const uint8_t *data, size_t len, uint64_t done,
                     uint64_t total)
{
	(void)done;
	struct mem_sink *m = ud;
	if (!m->buf) {
		/* total is bounded by SHOW_MAX and every piece by it. */
		m->cap = total ? (size_t)total : 1;
		m->buf = malloc(m->cap);
		if (!m->buf)
			return pl__fail(PL_ERR_MEM, "out of memory for a %llu-byte "
			                "record", (unsigned long long)total);
	}
	if (len > m->cap - m->len)
		return pl__fail(PL_ERR_PROTOCOL, "record longer than announced");
	memcpy(m->buf + m->len, data, len);
	m->len += len;
	return PL_OK;
}

static int show_daemon(struct ctl *c, const char *uuid_text, bool samples)
{
	int rc = ctl_connect(c);
	if (rc != PX_OK)
		return rc;
	/* The canonical form the contract asks for. */
	char uuid[37];
	for (size_t i = 0; i < 37; i++)
		uuid[i] = (char)tolower((unsigned char)uuid_text[i]);
	struct mem_sink m = {0};
	int e = fetch_record(c, uuid, SHOW_MAX, to_memory, &m);
	if (e != PL_OK) {
		free(m.buf);
		return ctl_fail_pl(c, e);
	}
	struct pl_record *r = NULL;
	e = pl_record_parse(m.buf ? m.buf : (const uint8_t *)"", m.len, &r);
	free(m.buf);
	if (e == PL_ERR_PARSE)
		return ctl_fail_exit(c, PX_INTEGRITY, error_slug_for(e), pl_error_name(e),
		                     "archived session %s is not a valid record: %s",
		                     uuid, pl_error_message());
	if (e != PL_OK)
		return ctl_fail_code(c, e, "session %s: %s", uuid,
		                     pl_error_message());
	return show_record(c, r, uuid, samples);
}

struct file_sink {
	int fd;
	struct progress bar;
};

static int to_file(void *ud, const uint8_t *data, size_t len, uint64_t done,
                   uint64_t total)
{
	struct file_sink *f = ud;
	while (len) {
		ssize_t n = write(f->fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pl__fail(PL_ERR_IO, "writing: %s", strerror(errno));
		data += n;
		len -= (size_t)n;
	}
	progress_update(&f->bar, done, total);
	return PL_OK;
}

static json_object *pulled_json_daemon(const Plctl__ArchivedSession *a,
                                       const char *path)
{
	/* The direct mode's keys ("id" is the pen's handle: none here) plus
	 * the pen, since one pull may span several. */
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", NULL);
	json_object_object_add(o, "serial",
	                       json_object_new_string(a->serial ? a->serial : ""));
	json_object_object_add(o, "seq", json_object_new_int64(a->seq));
	json_object_object_add(o, "uuid", json_uuid(a->uuid.data));
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "size", json_object_new_uint64(a->size));
	json_object_object_add(o, "sha256", json_hex(a->sha256.data, 32));
	return o;
}

/* Copies one archived record to final through part, verified. */
static int pull_one(struct ctl *c, const struct pl_session_info *s,
                    const char *uuid, const char *part, const char *final,
                    const char *dir)
{
	struct file_sink f;
	/* The copy starts from zero: a fresh file, never one found there (a
	 * link planted at the predictable .part name is removed, not
	 * followed, and O_EXCL makes sure of it). */
	if (unlink(part) != 0 && errno != ENOENT)
		return pl__fail(errno == EACCES ? PL_ERR_ACCESS : PL_ERR_IO,
		                "cannot remove %s: %s", part, strerror(errno));
	f.fd = open(part,
	            O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (f.fd < 0)
		return pl__fail(errno == EACCES ? PL_ERR_ACCESS : PL_ERR_IO,
		                "cannot create %s: %s", part, strerror(errno));
	progress_init(&f.bar, c->stdout_tty && !c->json, 0);
	int e = fetch_record(c, uuid, UINT64_MAX, to_file, &f);
	progress_clear(&f.bar);
	if (e == PL_OK && fsync(f.fd) != 0)
		e = pl__fail(PL_ERR_IO, "fsync %s: %s", part, strerror(errno));
	if (close(f.fd) != 0 && e == PL_OK)
		e = pl__fail(PL_ERR_IO, "close %s: %s", part, strerror(errno));
	if (e == PL_OK) {
		/* Re-read what is on the disk, not what went through memory. */
		uint8_t sha[32];
		e = pl_sha256_file(part, sha);
		if (e == PL_OK && memcmp(sha, s->sha256, 32) != 0)
			e = pl__fail(PL_ERR_DIGEST, "the copy's SHA-256 differs from "
			             "the archive's");
	}
	if (e == PL_OK && rename(part, final) != 0)
		e = pl__fail(PL_ERR_IO, "storing %s: %s", final, strerror(errno));
	if (e == PL_OK && fsync_dir(dir) != 0)
		e = pl__fail(PL_ERR_IO, "fsync %s: %s", dir, strerror(errno));
	if (e != PL_OK)
		unlink(part);
	return e;
}

static int pull_daemon(struct ctl *c, const char *dir, int64_t since)
{
	struct archive_list l;
	int rc = fetch_list(c, since, &l);
	if (rc != PX_OK)
		return rc;
	if (make_dirs(dir) != 0) {
		int err = errno;
		archive_list_free(&l);
		return ctl_fail_errno(c, err, "cannot create %s", dir);
	}
	size_t n = l.n;
	struct pull_state ps = {
		.pulled = json_object_new_array(),
		.skipped = json_object_new_array(),
		.archived = json_object_new_array(),
	};
	rc = PX_OK;
	for (size_t i = 0; i < n; i++) {
		const Plctl__ArchivedSession *a = l.v[i];
		struct pl_session_info s;
		from_archived(a, &s); /* checked by fetch_list */
		char serial[64], uuid[37], name[160], final[PATH_MAX], part[PATH_MAX],
		    sz[FMT_BUF];
		safe_name(a->serial ? a->serial : "", serial, sizeof serial);
		pl_uuid_format(s.uuid, uuid);
		snprintf(name, sizeof name, "%s-%06u-%s.plrec", serial, s.seq, uuid);
		snprintf(final, sizeof final, "%s/%s", dir, name);
		snprintf(part, sizeof part, "%s/.%s.part", dir, name);
		if ((rc = check_target(c, final, true)) != PX_OK) {
			pull_fail_partial(c, &ps);
			break;
		}
		bool exists;
		if (have_verified(final, &s, &exists)) {
			ps.n_present++;
			json_object_array_add(ps.skipped, pulled_json_daemon(a, final));
			if (!c->json)
				printf("already have %s seq %u (%s) -> %s\n", serial, s.seq,
				       fmt_bytes(sz, s.size), final);
			continue;
		}
		if (exists)
			ctl_warn("%s differs from the archived session; copying it again",
			         final);
		int e = pull_one(c, &s, uuid, part, final, dir);
		if (e != PL_OK) {
			pull_fail_partial(c, &ps);
			rc = ctl_fail_code(c, e, "session %s: %s", uuid,
			                   pl_error_message());
			break;
		}
		ps.n_pulled++;
		json_object_array_add(ps.pulled, pulled_json_daemon(a, final));
		if (!c->json)
			printf("pulled %s seq %u (%s) -> %s\n", serial, s.seq,
			       fmt_bytes(sz, s.size), final);
		fflush(stdout);
	}
	archive_list_free(&l);
	if (rc == PX_OK) {
		if (c->json) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "serial",
			                       c->serial ? json_object_new_string(c->serial)
			                                 : NULL);
			json_object_object_add(o, "dir", json_object_new_string(dir));
			json_object_object_add(o, "pulled", json_object_get(ps.pulled));
			json_object_object_add(o, "skipped", json_object_get(ps.skipped));
			json_object_object_add(o, "archived", json_object_get(ps.archived));
			ctl_emit_json(c, o);
		} else {
			printf("%zu pulled, %zu already present (from the archive)\n",
			       ps.n_pulled, ps.n_present);
		}
	}
	json_object_put(ps.pulled);
	json_object_put(ps.skipped);
	json_object_put(ps.archived);
	return rc;
}

/* ------------------------------------------------------------------ export */

static int write_fd(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_out(FILE *f, int fd, const uint8_t *data, size_t len)
{
	if (f) {
		if (fwrite(data, 1, len, f) != len)
			return pl__fail(PL_ERR_IO, "writing standard output: %s",
			                strerror(errno));
		return PL_OK;
	}
	if (write_fd(fd, data, len) != 0)
		return pl__fail(PL_ERR_IO, "writing: %s", strerror(errno));
	return PL_OK;
}

/* The directory part of path, for fsync after the rename. */
static void dir_of(const char *path, char *out, size_t cap)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(out, cap, ".");
	else if (slash == path)
		snprintf(out, cap, "/");
	else
		snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

/* ---- export --dir: one file per session, split from the export stream */

/* The most one session's text may take (a JSON object carries every event
 * of the session; a CSV row is short): beyond it the stream is not an
 * export, and penctl stops instead of growing without bound. */
#define EXPORT_ITEM_MAX ((size_t)256 << 20)

struct split {
	struct ctl *c;
	bool json;
	const char *dir;
	int dirfd;
	/* The scanner: the session being received. */
	char *buf;
	size_t len, cap;
	char *header;       /* CSV: the header line, CRLF included */
	size_t header_len;
	bool in_quotes;     /* CSV: inside a quoted field */
	bool in_str, esc;   /* JSON: inside a string, after a backslash */
	int depth;          /* JSON: 0 outside the array, 1 in it, 2+ in an object */
	bool closed;        /* JSON: the array's ']' was seen */
	/* What was written. */
	json_object *files;
	unsigned long n;
	uint64_t bytes;
	char **names;       /* every name this export wrote, for collisions */
	size_t n_names, cap_names;
};

static void split_free(struct split *sp)
{
	free(sp->buf);
	free(sp->header);
	for (size_t i = 0; i < sp->n_names; i++)
		free(sp->names[i]);
	free(sp->names);
	json_object_put(sp->files);
}

static int split_push(struct split *sp, char ch)
{
	if (sp->len + 2 > sp->cap) {
		if (sp->cap >= EXPORT_ITEM_MAX)
			return ctl_fail_code(sp->c, PL_ERR_PROTOCOL,
			                     "penlinkd sent more than %zu MB for one "
			                     "session of the export",
			                     EXPORT_ITEM_MAX >> 20);
		size_t cap = sp->cap ? sp->cap * 2 : 4096;
		char *p = realloc(sp->buf, cap);
		if (!p)
			return ctl_fail_code(sp->c, PL_ERR_MEM, "out of memory "
			                     "splitting the export");
		sp->buf = p;
		sp->cap = cap;
	}
	sp->buf[sp->len++] = ch;
	sp->buf[sp->len] = '\0';
	return PX_OK;
}

/* Field i (0-based) of a CSV row, unquoted, truncated to cap - 1 bytes. */
static void csv_nth(const char *row, size_t len, int i, char *out, size_t cap)
{
	size_t p = 0, n = 0;
	for (int f = 0; f < i && p < len; f++) {
		bool q = false;
		for (; p < len; p++) {
			if (row[p] == '"')
				q = !q;
			else if (row[p] == ',' && !q)
				break;
		}
		p++;
	}
	if (p < len && row[p] == '"') {
		for (p++; p < len; p++) {
			if (row[p] == '"') {
				if (p + 1 < len && row[p + 1] == '"')
					p++;
				else
					break;
			}
			if (n + 1 < cap)
				out[n++] = row[p];
		}
	} else {
		for (; p < len && row[p] != ',' && row[p] != '\r' && row[p] != '\n';
		     p++)
			if (n + 1 < cap)
				out[n++] = row[p];
	}
	out[n] = '\0';
}

/* Writes parts a and b to DIR/name through a temporary in DIR: opened
 * O_EXCL|O_NOFOLLOW (a planted link at the temporary's name is never
 * followed), renamed over name (a hard link planted there is replaced, not
 * written through), and a symbolic link or non-file at name is refused. */
static int store_in_dir(struct split *sp, const char *name, const char *a,
                        size_t alen, const char *b, size_t blen)
{
	struct ctl *c = sp->c;
	char tmp[64];
	int fd = -1, err = EEXIST;
	for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
		uint64_t r = 0;
		if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
			r = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^
			    ((uint64_t)attempt << 48) ^ sp->n;
		snprintf(tmp, sizeof tmp, ".penctl-export-%016" PRIx64 ".tmp", r);
		fd = openat(sp->dirfd, tmp,
		            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
		if (fd < 0 && (err = errno) != EEXIST)
			break;
	}
	if (fd < 0)
		return ctl_fail_errno(c, err, "cannot create a file in %s", sp->dir);
	if (write_fd(fd, a, alen) != 0 || write_fd(fd, b, blen) != 0 ||
	    fsync(fd) != 0) {
		err = errno;
		close(fd);
		unlinkat(sp->dirfd, tmp, 0);
		return ctl_fail_errno(c, err, "writing %s/%s", sp->dir, name);
	}
	if (close(fd) != 0) {
		err = errno;
		unlinkat(sp->dirfd, tmp, 0);
		return ctl_fail_errno(c, err, "writing %s/%s", sp->dir, name);
	}
	struct stat st;
	/* A hard link at name is fine: the rename replaces the name, and
	 * the other file keeps its content. */
	if (fstatat(sp->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    !S_ISREG(st.st_mode)) {
		unlinkat(sp->dirfd, tmp, 0);
		return refuse_planted(c, sp->dir, name, &st);
	}
	if (renameat(sp->dirfd, tmp, sp->dirfd, name) != 0) {
		err = errno;
		unlinkat(sp->dirfd, tmp, 0);
		return ctl_fail_errno(c, err, "cannot store %s/%s", sp->dir, name);
	}
	return PX_OK;
}

/* One complete session (sp->buf): its file name from the pen's serial, its
 * sequence number and UUID, all sanitised; then the file. */
static int split_emit(struct split *sp)
{
	char serial_raw[256], uuid_raw[64], seq_raw[24];
	json_object *doc = NULL;
	if (sp->json) {
		doc = json_tokener_parse(sp->buf);
		if (!doc || !json_object_is_type(doc, json_type_object)) {
			json_object_put(doc);
			return ctl_fail_code(sp->c, PL_ERR_PROTOCOL, "penlinkd sent an "
			                     "export item that is not a JSON object");
		}
		json_object *v;
		snprintf(serial_raw, sizeof serial_raw, "%s",
		         json_object_object_get_ex(doc, "serial", &v) && v
		             ? json_object_get_string(v) : "");
		snprintf(uuid_raw, sizeof uuid_raw, "%s",
		         json_object_object_get_ex(doc, "uuid", &v) && v
		             ? json_object_get_string(v) : "");
		snprintf(seq_raw, sizeof seq_raw, "%s",
		         json_object_object_get_ex(doc, "seq", &v) && v
		             ? json_object_get_string(v) : "");
	} else {
		csv_nth(sp->buf, sp->len, 0, serial_raw, sizeof serial_raw);
		csv_nth(sp->buf, sp->len, 1, uuid_raw, sizeof uuid_raw);
		csv_nth(sp->buf, sp->len, 2, seq_raw, sizeof seq_raw);
	}
	char serial[65], uuid[40];
	uint8_t ub[16];
	safe_name(serial_raw, serial, sizeof serial);
	if (parse_uuid(uuid_raw, ub))
		pl_uuid_format(ub, uuid);
	else
		safe_name(uuid_raw, uuid, sizeof uuid);
	char *end;
	unsigned long long seq = strtoull(seq_raw, &end, 10);
	if (end == seq_raw || *end || seq > UINT32_MAX)
		seq = 0;
	const char *ext = sp->json ? "json" : "csv";
	char name[200];
	snprintf(name, sizeof name, "%s-%06llu-%s.%s", serial, seq, uuid, ext);
	/* Two sessions never share a file: hostile serials may sanitise to
	 * the same text. */
	for (unsigned k = 2;; k++) {
		bool taken = false;
		for (size_t i = 0; i < sp->n_names && !taken; i++)
			taken = strcmp(sp->names[i], name) == 0;
		if (!taken)
			break;
		snprintf(name, sizeof name, "%s-%06llu-%s-%u.%s", serial, seq, uuid, k,
		         ext);
	}
	int rc = sp->json ? store_in_dir(sp, name, sp->buf, sp->len, "\n", 1)
	                  : store_in_dir(sp, name, sp->header, sp->header_len,
	                                 sp->buf, sp->len);
	json_object_put(doc);
	if (rc != PX_OK)
		return rc;
	if (sp->n_names == sp->cap_names) {
		size_t cap = sp->cap_names ? sp->cap_names * 2 : 64;
		char **p = realloc(sp->names, cap * sizeof *p);
		if (!p)
			return ctl_fail_code(sp->c, PL_ERR_MEM, "out of memory");
		sp->names = p;
		sp->cap_names = cap;
	}
	if (!(sp->names[sp->n_names] = strdup(name)))
		return ctl_fail_code(sp->c, PL_ERR_MEM, "out of memory");
	sp->n_names++;
	size_t bytes = sp->len + (sp->json ? 1 : sp->header_len);
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", sp->dir, name);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "serial", json_object_new_string(serial_raw));
	json_object_object_add(o, "uuid", json_object_new_string(uuid));
	json_object_object_add(o, "seq", json_object_new_int64((int64_t)seq));
	json_object_object_add(o, "bytes", json_object_new_uint64(bytes));
	json_object_array_add(sp->files, o);
	sp->n++;
	sp->bytes += bytes;
	if (!sp->c->json)
		printf("exported seq %llu %s -> %s\n", seq, uuid, path);
	return PX_OK;
}

/* Feeds export text: CSV rows end at a line break outside quotes (RFC
 * 4180), the first being the header; JSON is "[", objects and "]", and an
 * object ends where its braces balance outside strings. */
static int split_feed(struct split *sp, const uint8_t *p, size_t len)
{
	int rc;
	for (size_t i = 0; i < len; i++) {
		char ch = (char)p[i];
		if (sp->json) {
			if (sp->depth < 2) {
				if (ch == '[' && sp->depth == 0 && !sp->closed) {
					sp->depth = 1;
				} else if (ch == '{' && sp->depth == 1) {
					sp->depth = 2;
					sp->len = 0;
					if ((rc = split_push(sp, ch)) != PX_OK)
						return rc;
				} else if (ch == ']' && sp->depth == 1) {
					sp->depth = 0;
					sp->closed = true;
				} else if (ch != ',' && ch != ' ' && ch != '\n' &&
				           ch != '\r' && ch != '\t') {
					return ctl_fail_code(sp->c, PL_ERR_PROTOCOL,
					                     "penlinkd's JSON export has '%c' "
					                     "between sessions",
					                     ch >= 0x20 && ch < 0x7f ? ch : '?');
				}
				continue;
			}
			if ((rc = split_push(sp, ch)) != PX_OK)
				return rc;
			if (sp->esc) {
				sp->esc = false;
			} else if (sp->in_str) {
				if (ch == '\\')
					sp->esc = true;
				else if (ch == '"')
					sp->in_str = false;
			} else if (ch == '"') {
				sp->in_str = true;
			} else if (ch == '{' || ch == '[') {
				sp->depth++;
			} else if ((ch == '}' || ch == ']') && --sp->depth == 1) {
				if ((rc = split_emit(sp)) != PX_OK)
					return rc;
				sp->len = 0;
			}
			continue;
		}
		if ((rc = split_push(sp, ch)) != PX_OK)
			return rc;
		if (ch == '"') {
			sp->in_quotes = !sp->in_quotes;
		} else if (ch == '\n' && !sp->in_quotes) {
			if (!sp->header) {
				sp->header = sp->buf;
				sp->header_len = sp->len;
				sp->buf = NULL;
				sp->cap = 0;
			} else if ((rc = split_emit(sp)) != PX_OK) {
				return rc;
			}
			sp->len = 0;
		}
	}
	return PX_OK;
}

static int split_finish(struct split *sp)
{
	bool whole = sp->json ? sp->closed && sp->depth == 0 : sp->len == 0;
	if (!whole)
		return ctl_fail_code(sp->c, PL_ERR_PROTOCOL,
		                     "penlinkd's export ended in the middle of a "
		                     "session");
	if (fsync(sp->dirfd) != 0)
		return ctl_fail_errno(sp->c, errno, "fsync %s", sp->dir);
	return PX_OK;
}

static int sessions_export(struct ctl *c, struct opt_iter *it)
{
	static const struct optdef defs[] = {
		{"--format", 'f', true, S_FORMAT},
		{"--since", 0, true, S_SINCE},
		{"--out", 'o', true, S_OUT},
		{"--dir", 0, true, S_DIR},
		{NULL, 0, false, 0},
	};
	Plctl__ExportFormat format = PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_CSV;
	int64_t since = 0;
	const char *out = NULL, *dir = NULL;
	const char *v;
	int id;
	while ((id = opt_next(c, it, defs, &v)) != OPT_END) {
		if (id == OPT_BAD)
			return PX_USAGE;
		if (id == S_FORMAT) {
			if (strcmp(v, "csv") == 0)
				format = PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_CSV;
			else if (strcmp(v, "json") == 0)
				format = PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON;
			else
				return ctl_usage(c, "--format: '%.40s' is not csv or json", v);
		} else if (id == S_SINCE) {
			if (parse_date(c, "--since", v, &since) != PX_OK)
				return PX_USAGE;
		} else if (id == S_OUT) {
			if (!*v)
				return ctl_usage(c, "--out needs a file name");
			out = v;
		} else if (id == S_DIR) {
			if (!*v)
				return ctl_usage(c, "--dir needs a folder");
			dir = v;
		} else {
			return ctl_usage(c, "sessions export takes no arguments (got "
			                 "'%.40s'); use --out FILE or --dir DIR", v);
		}
	}
	if (out && dir)
		return ctl_usage(c, "sessions export: --out FILE and --dir DIR "
		                 "exclude each other");
	if (out && strlen(out) > PATH_MAX - 16)
		return ctl_usage(c, "--out: file name too long");
	if (dir && strlen(dir) > PATH_MAX - 256)
		return ctl_usage(c, "--dir: folder name too long");
	int rc = ctl_need_daemon(c, "sessions export");
	if (rc != PX_OK || (rc = ctl_connect(c)) != PX_OK)
		return rc;
	const char *fmt_name =
	    format == PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON ? "json" : "csv";

	/* --out: a file appears whole or not at all: write a temporary next
	 * to it, then rename over FILE (which replaces an older export).
	 * --dir: every file is written relative to the folder's descriptor. */
	char tmp[PATH_MAX];
	int fd = -1;
	struct split sp;
	memset(&sp, 0, sizeof sp);
	sp.dirfd = -1;
	if (out) {
		snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", out);
		fd = mkostemp(tmp, O_CLOEXEC);
		if (fd < 0)
			return ctl_fail_errno(c, errno, "cannot create a file next to %s",
			                      out);
		mode_t um = umask(0);
		umask(um);
		if (fchmod(fd, 0640 & ~um) != 0) {
			int err = errno;
			close(fd);
			unlink(tmp);
			return ctl_fail_errno(c, err, "chmod %s", tmp);
		}
	} else if (dir) {
		if (make_dirs(dir) != 0)
			return ctl_fail_errno(c, errno, "cannot create %s", dir);
		sp.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sp.dirfd < 0)
			return ctl_fail_errno(c, errno, "cannot open the folder %s", dir);
		sp.c = c;
		sp.dir = dir;
		sp.json = format == PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON;
		sp.files = json_object_new_array();
	}

	Plctl__ExportSessions ex = PLCTL__EXPORT_SESSIONS__INIT;
	ex.format = format;
	ex.serial = (char *)(c->serial ? c->serial : "");
	ex.since_ms = since;
	Plctl__Request req = PLCTL__REQUEST__INIT;
	req.op_case = PLCTL__REQUEST__OP_EXPORT_SESSIONS;
	req.export_sessions = &ex;
	uint64_t bytes = 0;
	int px = PX_OK; /* a failure split_* already reported */
	int e = dc_send(c, &req);
	while (e == PL_OK) {
		Plctl__Response *r;
		e = dc_next(c, req.id, dc_timeout(c), &r);
		if (e != PL_OK)
			break;
		bool last = r->last;
		if (r->body_case != PLCTL__RESPONSE__BODY_EXPORT || !r->export) {
			dc_free(r);
			e = pl__fail(PL_ERR_PROTOCOL, "penlinkd answered export with "
			             "something other than export data");
			break;
		}
		size_t len = r->export->data.len;
		if (len && dir) {
			px = split_feed(&sp, r->export->data.data, len);
		} else if (len) {
			e = write_out(out ? NULL : stdout, fd, r->export->data.data, len);
			/* Data is on stdout now: an error document after it would
			 * corrupt it; the error goes to stderr only. */
			if (!out)
				c->emitted = true;
		}
		bytes += len;
		dc_free(r);
		if (last || px != PX_OK)
			break;
	}
	if (dir) {
		if (px == PX_OK && e != PL_OK)
			px = ctl_fail_pl(c, e);
		if (px == PX_OK)
			px = split_finish(&sp);
		close(sp.dirfd);
		if (px == PX_OK) {
			if (c->json) {
				json_object *o = json_object_new_object();
				json_object_object_add(o, "dir", json_object_new_string(dir));
				json_object_object_add(o, "format",
				                       json_object_new_string(fmt_name));
				json_object_object_add(o, "sessions",
				                       json_object_new_uint64(sp.n));
				json_object_object_add(o, "files", json_object_get(sp.files));
				ctl_emit_json(c, o);
			} else {
				char sz[FMT_BUF];
				printf("exported %lu session%s (%s of %s) to %s\n", sp.n,
				       sp.n == 1 ? "" : "s", fmt_bytes(sz, sp.bytes),
				       sp.json ? "JSON" : "CSV", dir);
			}
		}
		split_free(&sp);
		return px;
	}
	if (!out) {
		if (e == PL_OK && fflush(stdout) != 0)
			e = pl__fail(PL_ERR_IO, "writing standard output: %s",
			             strerror(errno));
		return e == PL_OK ? PX_OK : ctl_fail_pl(c, e);
	}
	if (e == PL_OK && fsync(fd) != 0)
		e = pl__fail(PL_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
	if (close(fd) != 0 && e == PL_OK)
		e = pl__fail(PL_ERR_IO, "close %s: %s", tmp, strerror(errno));
	/* rename() would replace a symbolic link planted at FILE rather than
	 * follow it, but whoever put it there meant another file: refuse. */
	struct stat st;
	if (e == PL_OK && lstat(out, &st) == 0 && !S_ISREG(st.st_mode)) {
		unlink(tmp);
		return refuse_planted(c, NULL, out, &st);
	}
	if (e == PL_OK && rename(tmp, out) != 0)
		e = pl__fail(errno == EACCES ? PL_ERR_ACCESS : PL_ERR_IO,
		             "cannot store %s: %s", out, strerror(errno));
	if (e != PL_OK) {
		unlink(tmp);
		return ctl_fail_pl(c, e);
	}
	char odir[PATH_MAX];
	dir_of(out, odir, sizeof odir);
	if (fsync_dir(odir) != 0)
		return ctl_fail_errno(c, errno, "fsync %s", odir);
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "path", json_object_new_string(out));
		json_object_object_add(o, "format", json_object_new_string(fmt_name));
		json_object_object_add(o, "bytes", json_object_new_uint64(bytes));
		return ctl_emit_json(c, o);
	}
	char sz[FMT_BUF];
	printf("exported %s of %s to %s\n", fmt_bytes(sz, bytes),
	       format == PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON ? "JSON" : "CSV",
	       out);
	return PX_OK;
}
