/* penctl sessions list | pull | show */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "penctl.h"

/* ------------------------------------------------------------------ list */

static int sessions_list(struct ctl *c, struct opt_iter *it)
{
	const char *v;
	int id;
	while ((id = opt_next(c, it, NULL, &v)) != OPT_END) {
		if (id == OPT_BAD)
			return PX_USAGE;
		return ctl_usage(c, "sessions list takes no arguments (got '%.40s')",
		                 v);
	}
	int rc = ctl_connect(c);
	if (rc != PX_OK)
		return rc;
	struct pl_session_info *ss = NULL;
	size_t n = 0;
	rc = c->be.ops->list_sessions(c->be.ctx, &ss, &n);
	if (rc != PL_OK)
		return ctl_fail_pl(c, rc);
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
			if (s->rtc_time)
				fmt_local_time(start, s->start_ms);
			else
				snprintf(start, sizeof start, "uptime +%llds",
				         (long long)(s->start_ms / 1000));
			if (s->end_ms >= s->start_ms)
				fmt_duration(dur, s->end_ms - s->start_ms);
			else
				snprintf(dur, sizeof dur, "?");
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

enum { S_OUT = 1, S_KEEP, S_SAMPLES };

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

static int sessions_pull(struct ctl *c, struct opt_iter *it)
{
	static const struct optdef defs[] = {
		{"--out", 'o', true, S_OUT},
		{"--keep", 0, false, S_KEEP},
		{NULL, 0, false, 0},
	};
	const char *dir = ".";
	bool keep = false;
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
		} else {
			return ctl_usage(c, "sessions pull takes no arguments (got "
			                 "'%.40s'); use --out DIR", v);
		}
	}
	if (strlen(dir) > PATH_MAX - 128)
		return ctl_usage(c, "--out: directory name too long");
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
		return ctl_usage(c, "sessions show needs a FILE (a pulled .plrec)");
	struct pl_record *r = NULL;
	int e = pl_record_parse_file(file, &r);
	if (e == PL_ERR_PARSE)
		return ctl_fail_exit(c, PX_INTEGRITY, error_slug_for(e), pl_strerror(e),
		                     "%s: not a valid session record: %s", file,
		                     pl_last_error_message());
	if (e != PL_OK)
		return ctl_fail_code(c, e, "%s: %s", file, pl_last_error_message());
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

int cmd_sessions(struct ctl *c, int argc, char **argv, int start)
{
	struct opt_iter it;
	opt_init(&it, argc, argv, start, "sessions");
	const char *sub;
	int id = opt_next(c, &it, NULL, &sub);
	if (id == OPT_BAD)
		return PX_USAGE;
	if (id == OPT_END)
		return ctl_usage(c, "sessions needs a subcommand: list, pull or show");
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
	return ctl_usage(c, "unknown sessions subcommand '%.40s' (list, pull, show)",
	                 sub);
}
