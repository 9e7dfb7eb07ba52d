/* penctl sessions list | pull | show */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h" /* pl__fail: fail like the library */
#include "penctl.h"

/* ------------------------------------------------------------------ list */

enum { S_OUT = 1, S_KEEP, S_SAMPLES, S_SINCE, S_FORMAT };

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
		fmt_duration(dur, end_ms - start_ms);
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

/* The serial goes into file names: keep it to a safe alphabet. */
static void safe_name(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	for (; *in && n + 1 < cap; in++) {
		char ch = *in;
		bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		          (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		          ch == '.';
		out[n++] = ok ? ch : '_';
	}
	out[n] = '\0';
	if (n == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
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
					                   s->id, at, sz, pl_last_error_message());
				else
					rc = ctl_fail_code(c, e, "session %u: %s", s->id,
					                   pl_last_error_message());
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
				                   s->id, final, pl_last_error_message());
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
		return ctl_fail_exit(c, PX_INTEGRITY, error_slug_for(e), pl_strerror(e),
		                     "%s: not a valid session record: %s", file,
		                     pl_last_error_message());
	if (e != PL_OK)
		return ctl_fail_code(c, e, "%s: %s", file, pl_last_error_message());
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
		return ctl_fail_exit(c, PX_INTEGRITY, error_slug_for(e), pl_strerror(e),
		                     "archived session %s is not a valid record: %s",
		                     uuid, pl_last_error_message());
	if (e != PL_OK)
		return ctl_fail_code(c, e, "session %s: %s", uuid,
		                     pl_last_error_message());
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
	f.fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	            0640);
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
			                   pl_last_error_message());
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

static int write_out(FILE *f, int fd, const uint8_t *data, size_t len)
{
	if (f) {
		if (fwrite(data, 1, len, f) != len)
			return pl__fail(PL_ERR_IO, "writing standard output: %s",
			                strerror(errno));
		return PL_OK;
	}
	while (len) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pl__fail(PL_ERR_IO, "writing: %s", strerror(errno));
		data += n;
		len -= (size_t)n;
	}
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

static int sessions_export(struct ctl *c, struct opt_iter *it)
{
	static const struct optdef defs[] = {
		{"--format", 'f', true, S_FORMAT},
		{"--since", 0, true, S_SINCE},
		{"--out", 'o', true, S_OUT},
		{NULL, 0, false, 0},
	};
	Plctl__ExportFormat format = PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_CSV;
	int64_t since = 0;
	const char *out = NULL;
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
		} else {
			return ctl_usage(c, "sessions export takes no arguments (got "
			                 "'%.40s'); use --out FILE", v);
		}
	}
	if (out && strlen(out) > PATH_MAX - 16)
		return ctl_usage(c, "--out: file name too long");
	int rc = ctl_need_daemon(c, "sessions export");
	if (rc != PX_OK || (rc = ctl_connect(c)) != PX_OK)
		return rc;
	const char *fmt_name =
	    format == PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON ? "json" : "csv";

	/* A file appears whole or not at all: write a temporary next to it,
	 * then rename over FILE (which replaces an older export). */
	char tmp[PATH_MAX];
	int fd = -1;
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
	}

	Plctl__ExportSessions ex = PLCTL__EXPORT_SESSIONS__INIT;
	ex.format = format;
	ex.serial = (char *)(c->serial ? c->serial : "");
	ex.since_ms = since;
	Plctl__Request req = PLCTL__REQUEST__INIT;
	req.op_case = PLCTL__REQUEST__OP_EXPORT_SESSIONS;
	req.export_sessions = &ex;
	uint64_t bytes = 0;
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
		if (len) {
			e = write_out(out ? NULL : stdout, fd, r->export->data.data, len);
			bytes += len;
			/* Data is on stdout now: an error document after it would
			 * corrupt it; the error goes to stderr only. */
			if (!out)
				c->emitted = true;
		}
		dc_free(r);
		if (last)
			break;
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
	if (e == PL_OK && rename(tmp, out) != 0)
		e = pl__fail(errno == EACCES ? PL_ERR_ACCESS : PL_ERR_IO,
		             "cannot store %s: %s", out, strerror(errno));
	if (e != PL_OK) {
		unlink(tmp);
		return ctl_fail_pl(c, e);
	}
	char dir[PATH_MAX];
	dir_of(out, dir, sizeof dir);
	if (fsync_dir(dir) != 0)
		return ctl_fail_errno(c, errno, "fsync %s", dir);
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
