/* penctl sessions list | pull | show | export: written once for both
 * backends (the pen with --port, penlinkd's archive without). */
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

#include "backend.h"
#include "penctl.h"

enum { S_OUT = 1, S_KEEP, S_SAMPLES, S_SINCE, S_FORMAT, S_DIR, S_CLIENT,
       S_OPERATOR, S_NOTE, S_UNTIL };

/* Records penctl holds in memory for `show` (several MB in practice). */
#define SHOW_MAX ((uint64_t)1 << 30)

/* ------------------------------------------------------------------ list */

/* The backend's sessions, or an exit code (reported). */
static int list_all(struct ctl *c, int64_t since, struct session_entry **v,
                    size_t *n)
{
	*v = NULL;
	*n = 0;
	int rc = ctl_connect(c);
	if (rc != PX_OK)
		return rc;
	int e = c->be.ops->list_sessions(c->be.ctx, since, v, n);
	return e == PL_OK ? PX_OK : ctl_fail_pl(c, e);
}

/* A session's start (local time, or pen uptime when its clock was not set)
 * and duration, as the session table shows them. */
static void fmt_session_span(char *start, size_t start_len, char *dur,
                             size_t dur_len, const struct pl_session_info *s)
{
	if (s->rtc_time)
		pl_time_format_local(s->start_ms, start);
	else
		snprintf(start, start_len, "uptime +%llds",
		         (long long)(s->start_ms / 1000));
	uint64_t span = pl_time_span_ms(s->start_ms, s->end_ms);
	if (s->end_ms >= s->start_ms)
		fmt_duration(dur, span > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)span);
	else
		snprintf(dur, dur_len, "?");
}

static json_object *session_json(const struct ctl *c,
                                 const struct session_entry *s)
{
	json_object *o = json_object_new_object();
	if (c->be.ops->direct)
		json_object_object_add(o, "id", json_object_new_int64(s->info.id));
	json_object_object_add(o, "serial", json_object_new_string(s->key.serial));
	json_object_object_add(o, "seq", json_object_new_int64(s->info.seq));
	json_object_object_add(o, "uuid", json_uuid(s->key.uuid));
	json_object_object_add(o, "size", json_object_new_uint64(s->info.size));
	json_object_object_add(o, "sha256", json_hex(s->info.sha256, 32));
	json_object_object_add(o, "start_ms", json_object_new_int64(s->info.start_ms));
	json_object_object_add(o, "end_ms", json_object_new_int64(s->info.end_ms));
	json_object_object_add(o, "time_source",
	                       json_object_new_string(s->info.rtc_time ? "rtc"
	                                                               : "uptime"));
	/* The same instants as ISO 8601 UTC (null: only the pen's uptime). */
	json_object_object_add(o, "start_utc", json_utc(s->info.rtc_time,
	                                                s->info.start_ms));
	json_object_object_add(o, "end_utc", json_utc(s->info.rtc_time,
	                                              s->info.end_ms));
	if (c->be.ops->direct) {
		json_object_object_add(o, "archived",
		                       json_object_new_boolean(s->info.archived));
	} else {
		json_object_object_add(o, "archived_ms",
		                       json_object_new_int64(s->archived_ms));
		json_object_object_add(o, "archived_utc",
		                       json_utc(s->archived_ms != 0, s->archived_ms));
	}
	return o;
}

struct list_args {
	int64_t since, until;
	const char *client;
};

static const struct optdef list_opts[] = {
	OPT("--since", 0, "DATE", S_SINCE,
	    "sessions that started at or after DATE", OPT_DATE, struct list_args,
	    since),
	OPT("--until", 0, "DATE", S_UNTIL, "sessions that started before DATE",
	    OPT_DATE, struct list_args, until),
	OPT("--client", 0, "REF", S_CLIENT,
	    "sessions annotated with client reference REF (penlinkd, --central)",
	    OPT_TEXT, struct list_args, client),
	OPT_TABLE_END,
};

static int sessions_list(struct ctl *c, struct opt_iter *it)
{
	struct list_args a = {0};
	int rc = opt_parse(c, it, &a, NULL);
	if (rc != PX_OK)
		return rc;
	/* --central filters on it itself (backend_central.c) */
	c->until_ms = a.until;
	int64_t since = a.since;
	const char *client = a.client;
	struct session_entry *ss;
	size_t n;
	if (client) {
		/* Annotations live in an archive (penlinkd's, central's), not
		 * on a pen. */
		rc = ctl_need_daemon(c, "sessions list --client");
		if (rc == PX_OK && !*client)
			rc = ctl_usage(c, "--client needs a client reference");
		if (rc == PX_OK)
			rc = ctl_connect(c);
		if (rc != PX_OK)
			return rc;
		int e = dc_list_sessions(c, since, client, &ss, &n);
		if (e != PL_OK)
			return ctl_fail_pl(c, e);
	} else {
		rc = list_all(c, since, &ss, &n);
		if (rc != PX_OK)
			return rc;
	}
	if (c->until_ms) { /* --central filters it itself; the others here */
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (ss[i].info.rtc_time && ss[i].info.start_ms < c->until_ms)
				ss[k++] = ss[i];
		n = k;
	}
	bool direct = c->be.ops->direct;
	const char *serial = c->be.ops->serial(c->be.ctx);
	if (c->json) {
		json_object *o = json_object_new_object();
		if (direct)
			json_object_object_add(o, "serial", json_object_new_string(serial));
		if (client)
			json_object_object_add(o, "client_ref", json_str(client));
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(a, session_json(c, &ss[i]));
		json_object_object_add(o, "sessions", a);
		free(ss);
		return ctl_emit_json(c, o);
	}
	size_t archived = 0;
	for (size_t i = 0; i < n; i++)
		archived += ss[i].info.archived;
	if (direct)
		ctl_say("%s: %zu session%s, %zu archived", serial, n,
		        n == 1 ? "" : "s", archived);
	else if (client)
		ctl_say("%zu session%s in the archive for client %s", n,
		        n == 1 ? "" : "s", client);
	else
		ctl_say("%zu session%s in the archive", n, n == 1 ? "" : "s");
	if (n) {
		/* The pen's table names its handle and whether it may reclaim
		 * the session; the archive's names the pen and when it came. */
		const char *hdr[] = {direct ? "id" : "serial", "seq", "uuid", "start",
		                     "duration", "size", "archived"};
		struct table *t = table_new(7, hdr, direct ? "rrllrrl" : "lrllrrl");
		for (size_t i = 0; t && i < n; i++) {
			const struct session_entry *s = &ss[i];
			char idb[16], seq[16], uuid[37], start[PL_TIME_TEXT_MAX + 16],
			    dur[FMT_BUF], size[FMT_BUF], when[PL_TIME_TEXT_MAX];
			snprintf(idb, sizeof idb, "%u", s->info.id);
			snprintf(seq, sizeof seq, "%u", s->info.seq);
			pl_uuid_format(s->key.uuid, uuid);
			fmt_session_span(start, sizeof start, dur, sizeof dur, &s->info);
			const char *row[] = {
			    direct ? idb : s->key.serial, seq, uuid, start, dur,
			    fmt_bytes(size, s->info.size),
			    direct ? (s->info.archived ? "yes" : "no")
			           : pl_time_format_local(s->archived_ms, when)};
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

struct pull_progress {
	struct ctl *c;
	struct progress bar; /* over the whole pull */
	uint64_t done;       /* bytes of the current session there */
	bool cancelled;
};

static void on_progress(void *ud, uint64_t done, uint64_t total)
{
	struct pull_progress *pp = ud;
	pp->done = done;
	if (ctl_interrupted && !pp->cancelled && pp->c->be.ops->cancel) {
		/* Ctrl-C: stop the copy; the bytes so far stay for a resume. */
		pp->cancelled = true;
		pp->c->be.ops->cancel(pp->c->be.ctx);
		return;
	}
	progress_update(&pp->bar, done, total);
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


/* "session 4" on a pen (its handle, as the pen's list shows it); the key
 * "PEN-0001/0f1e..." in the archive, which holds several pens. */
static const char *session_label(const struct ctl *c,
                                 const struct session_entry *s, char *buf,
                                 size_t cap)
{
	if (c->be.ops->direct) {
		snprintf(buf, cap, "session %u", s->info.id);
		return buf;
	}
	char key[160];
	pl_session_key_format(&s->key, PL_TEXT_TERMINAL, key, sizeof key);
	snprintf(buf, cap, "session %s", key);
	return buf;
}

static json_object *pulled_json(const struct ctl *c,
                                const struct session_entry *s, const char *path)
{
	json_object *o = json_object_new_object();
	/* The pen's handle means nothing in the archive. */
	json_object_object_add(o, "id", c->be.ops->direct
	                                    ? json_object_new_int64(s->info.id)
	                                    : NULL);
	json_object_object_add(o, "serial", json_object_new_string(s->key.serial));
	json_object_object_add(o, "seq", json_object_new_int64(s->info.seq));
	json_object_object_add(o, "uuid", json_uuid(s->key.uuid));
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "size", json_object_new_uint64(s->info.size));
	json_object_object_add(o, "sha256", json_hex(s->info.sha256, 32));
	return o;
}

struct pull_state {
	json_object *pulled, *skipped, *archived, *damaged;
	size_t n_pulled, n_present, n_archived, n_damaged;
	size_t index;             /* of the session being handled, from 1 */
	struct pull_progress pp;  /* the progress line, over every session */
	uint64_t bytes_pulled;    /* sizes of the sessions pulled */
};

static void pull_fail_partial(struct ctl *c, struct pull_state *ps)
{
	/* Hand what is already done to the JSON error document. */
	ctl_partial(c, "pulled", json_object_get(ps->pulled));
	ctl_partial(c, "skipped", json_object_get(ps->skipped));
	ctl_partial(c, "archived", json_object_get(ps->archived));
	ctl_partial(c, "damaged", json_object_get(ps->damaged));
}

static int fetch_one(struct ctl *c, const struct session_entry *s,
                     const char *part, struct pull_state *ps,
                     uint64_t *resumed_at)
{
	struct pull_progress *pp = &ps->pp;
	for (int attempt = 0;; attempt++) {
		*resumed_at = c->be.ops->resume_point(c->be.ctx, part);
		progress_session(&pp->bar, ps->index, *resumed_at);
		pp->done = *resumed_at;
		int rc = c->be.ops->fetch_to_file(c->be.ctx, s, part, on_progress, pp);
		progress_clear(&pp->bar);
		if (ctl_interrupted)
			return PL_ERR_CANCELLED;
		/* A resumed download whose digest fails may have inherited bad
		 * bytes from the earlier run; the file is gone, so one fresh
		 * attempt settles it. */
		if (rc == PL_ERR_DIGEST && *resumed_at > 0 && attempt == 0) {
			char what[200];
			ctl_warn("%s: digest mismatch after resuming at %llu bytes; "
			         "copying it again from the start",
			         session_label(c, s, what, sizeof what),
			         (unsigned long long)*resumed_at);
			continue;
		}
		return rc;
	}
}

/* Why a copy stopped, in the words the user acts on. */
static int pull_failed(struct ctl *c, const struct session_entry *s,
                       const char *part, const struct pull_progress *pp, int e)
{
	char what[200], at[FMT_BUF], sz[FMT_BUF];
	session_label(c, s, what, sizeof what);
	uint64_t got = file_size(part);
	fmt_bytes(at, got ? got : pp->done);
	fmt_bytes(sz, s->info.size);
	if (e == PL_ERR_UNPLUGGED)
		return ctl_fail_code(c, e, "the pen went away during %s at %s of %s; "
		                     "run pull again to resume", what, at, sz);
	if (c->be.ops->direct && (e == PL_ERR_TIMEOUT || e == PL_ERR_IO))
		return ctl_fail_code(c, e, "%s stopped at %s of %s (%s); run pull "
		                     "again to resume", what, at, sz,
		                     pl_error_message());
	return ctl_fail_code(c, e, "%s: %s", what, pl_error_message());
}

/* The command line as typed, quoted for a shell where it needs it: the
 * command that resumes an interrupted pull is the same pull. */
static void command_line(const struct ctl *c, char *out, size_t cap)
{
	size_t n = 0;
	out[0] = '\0';
	for (int i = 0; i < c->argc && n + 1 < cap; i++) {
		const char *a = i == 0 ? "penctl" : c->argv[i];
		bool plain = *a != '\0';
		for (const char *p = a; *p; p++)
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			            "0123456789-_./:=,+@%", *p))
				plain = false;
		n += (size_t)snprintf(out + n, cap - n, "%s", i ? " " : "");
		if (plain) {
			n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s", a);
			continue;
		}
		n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "'");
		for (const char *p = a; *p && n + 5 < cap; p++)
			n += (size_t)snprintf(out + n, cap - n, *p == '\'' ? "'\\''" : "%c",
			                      *p);
		n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "'");
	}
}

/* Ctrl-C during a copy: what is kept, and the command that goes on; exit
 * 130 as a shell reports a command killed by SIGINT. */
static int pull_interrupted(struct ctl *c, const struct session_entry *s,
                            const char *part, const char *dir,
                            struct pull_state *ps)
{
	char what[200], at[FMT_BUF], sz[FMT_BUF], bytes[FMT_BUF], cmd[2048];
	session_label(c, s, what, sizeof what);
	uint64_t got = file_size(part);
	fmt_bytes(at, got);
	fmt_bytes(sz, s->info.size);
	fmt_bytes(bytes, ps->bytes_pulled);
	command_line(c, cmd, sizeof cmd);
	ctl_note("interrupted: %zu session%s pulled (%s) and %zu already present "
	         "in %s are kept", ps->n_pulled, ps->n_pulled == 1 ? "" : "s",
	         bytes, ps->n_present, dir);
	if (got && c->be.ops->direct)
		ctl_note("%s stopped at %s of %s; the %s copied so far are kept in "
		         "%s", what, at, sz, at, part);
	else
		ctl_note("%s stopped at %s of %s; nothing of it is kept", what, at,
		         sz);
	ctl_note("to resume: %s", cmd);
	ctl_partial(c, "pulled", json_object_get(ps->pulled));
	ctl_partial(c, "skipped", json_object_get(ps->skipped));
	ctl_partial(c, "archived", json_object_get(ps->archived));
	ctl_partial(c, "damaged", json_object_get(ps->damaged));
	ctl_partial(c, "resume", json_object_new_string(cmd));
	ctl_partial(c, "partial", got && c->be.ops->direct
	                              ? json_object_new_string(part)
	                              : NULL);
	if (c->json)
		return ctl_fail_exit(c, PX_INTERRUPTED, "interrupted", "interrupted",
		                     "interrupted during %s at %s of %s", what, at, sz);
	return PX_INTERRUPTED;
}

/* Copies one session to DIR/name through DIR/.name.part, verified; then
 * lets the pen reclaim it unless keep. */
static int pull_one(struct ctl *c, const struct session_entry *s,
                    const char *dir, bool keep, struct pull_state *ps)
{
	char name[160], final[PATH_MAX], part[PATH_MAX], sz[FMT_BUF], at[FMT_BUF],
	    what[200];
	pl_session_file_name(&s->key, s->info.seq, name, sizeof name);
	snprintf(final, sizeof final, "%s/%s", dir, name);
	snprintf(part, sizeof part, "%s/.%s.part", dir, name);
	session_label(c, s, what, sizeof what);
	int rc = check_target(c, final, true);
	/* A pen's .part file is resumed (appended to, or truncated): it must
	 * be penctl's own; O_NOFOLLOW in the library closes the race this
	 * check leaves.  penlinkd's copy removes whatever is there first. */
	if (rc == PX_OK && c->be.ops->direct)
		rc = check_target(c, part, false);
	if (rc != PX_OK)
		return rc;
	bool exists;
	if (have_verified(final, &s->info, &exists)) {
		progress_session_done(&ps->pp.bar, s->info.size, false);
		ps->n_present++;
		json_object_array_add(ps->skipped, pulled_json(c, s, final));
		if (!c->json)
			ctl_say("already have %s (seq %u, %s) -> %s", what, s->info.seq,
			        fmt_bytes(sz, s->info.size), final);
	} else {
		if (exists)
			ctl_warn("%s differs from %s; copying it again", final, what);
		uint64_t resumed_at = 0;
		int e = fetch_one(c, s, part, ps, &resumed_at);
		if (e == PL_ERR_CANCELLED && ctl_interrupted)
			return pull_interrupted(c, s, part, dir, ps);
		if (e == PL_ERR_DIGEST) {
			/* A damaged record would stop every later pull at the same
			 * place: it is left out (never written, never reclaimed),
			 * the others go on, and the pull ends in its error. */
			ctl_warn("%s: %s; not written, pulling the others", what,
			         pl_error_message());
			progress_session_done(&ps->pp.bar, s->info.size, false);
			ps->n_damaged++;
			json_object *o = pulled_json(c, s, final);
			json_object_object_add(o, "error",
			                       json_object_new_string(pl_error_message()));
			json_object_array_add(ps->damaged, o);
			return PX_OK;
		}
		if (e != PL_OK)
			return pull_failed(c, s, part, &ps->pp, e);
		if (rename(part, final) != 0 || fsync_dir(dir) != 0)
			return ctl_fail_errno(c, errno, "storing %s", final);
		progress_session_done(&ps->pp.bar, s->info.size, true);
		ps->bytes_pulled += s->info.size;
		ps->n_pulled++;
		json_object_array_add(ps->pulled, pulled_json(c, s, final));
		if (!c->json && resumed_at)
			ctl_say("pulled %s (seq %u, %s, resumed at %s) -> %s", what,
			        s->info.seq, fmt_bytes(sz, s->info.size),
			        fmt_bytes(at, resumed_at), final);
		else if (!c->json)
			ctl_say("pulled %s (seq %u, %s) -> %s", what, s->info.seq,
			        fmt_bytes(sz, s->info.size), final);
	}
	if (!keep && c->be.ops->release) {
		int e = c->be.ops->release(c->be.ctx, s);
		if (e != PL_OK)
			return ctl_fail_code(c, e, "%s is stored in %s but the pen did "
			                     "not archive it: %s", what, final,
			                     pl_error_message());
		ps->n_archived++;
		json_object_array_add(ps->archived, json_object_new_int64(s->info.id));
	}
	fflush(stdout);
	return PX_OK;
}

struct pull_args {
	const char *dir;
	bool keep;
	int64_t since;
};

static const struct optdef pull_opts[] = {
	OPT("--out", 'o', "DIR", S_OUT, "where the records go (default .)",
	    OPT_NAME, struct pull_args, dir, .what = "a directory"),
	OPT("--since", 0, "DATE", S_SINCE,
	    "sessions that started at or after DATE", OPT_DATE, struct pull_args,
	    since),
	OPT("--keep", 0, NULL, S_KEEP,
	    "--port: leave the sessions for the pen to keep", OPT_FLAG,
	    struct pull_args, keep),
	OPT_TABLE_END,
};

static int sessions_pull(struct ctl *c, struct opt_iter *it)
{
	struct pull_args a = {.dir = "."};
	int rc = opt_parse(c, it, &a, NULL);
	if (rc != PX_OK)
		return rc;
	const char *dir = a.dir;
	bool keep = a.keep;
	int64_t since = a.since;
	if (strlen(dir) > PATH_MAX - 256)
		return ctl_usage(c, "--out: directory name too long");
	struct session_entry *ss;
	size_t n;
	rc = list_all(c, since, &ss, &n);
	if (rc != PX_OK)
		return rc;
	if (make_dirs(dir) != 0) {
		int err = errno;
		free(ss);
		return ctl_fail_errno(c, err, "cannot create %s", dir);
	}
	struct pull_state ps = {
		.pulled = json_object_new_array(),
		.skipped = json_object_new_array(),
		.archived = json_object_new_array(),
		.damaged = json_object_new_array(),
		.pp = {.c = c},
	};
	/* A session the pen marked archived was stored by an earlier pull
	 * (the archive's are all "archived": its own). */
#define PULL_SKIPS(s) (c->be.ops->direct && (s)->info.archived)
	size_t todo = 0;
	uint64_t todo_bytes = 0;
	for (size_t i = 0; i < n; i++)
		if (!PULL_SKIPS(&ss[i])) {
			todo++;
			todo_bytes += ss[i].info.size;
		}
	/* For people, on stderr, and only when that is a terminal: a
	 * redirected stderr (a log) gets no carriage returns. */
	progress_init(&ps.pp.bar, c->stderr_tty && !c->json && !c->dump_frames,
	              todo, todo_bytes);
	ctl_catch_signals();
	for (size_t i = 0; i < n && rc == PX_OK; i++) {
		if (PULL_SKIPS(&ss[i]))
			continue;
		ps.index++;
		rc = pull_one(c, &ss[i], dir, keep, &ps);
		if (rc != PX_OK && rc != PX_INTERRUPTED)
			pull_fail_partial(c, &ps);
	}
#undef PULL_SKIPS
	free(ss);
	if (rc == PX_OK && ps.n_damaged) {
		pull_fail_partial(c, &ps);
		rc = ctl_fail_code(c, PL_ERR_DIGEST, "%zu session%s did not match %s "
		                   "SHA-256 and %s not written (named above); %zu "
		                   "pulled, %zu already present",
		                   ps.n_damaged, ps.n_damaged == 1 ? "" : "s",
		                   ps.n_damaged == 1 ? "its" : "their",
		                   ps.n_damaged == 1 ? "was" : "were", ps.n_pulled,
		                   ps.n_present);
	} else if (rc == PX_OK && c->json) {
		json_object *o = json_object_new_object();
		/* The pen's serial, or through penlinkd the -s filter. */
		const char *serial = c->be.ops->direct ? c->be.ops->serial(c->be.ctx)
		                                       : c->serial;
		json_object_object_add(o, "serial",
		                       serial ? json_object_new_string(serial) : NULL);
		json_object_object_add(o, "dir", json_object_new_string(dir));
		json_object_object_add(o, "pulled", json_object_get(ps.pulled));
		json_object_object_add(o, "skipped", json_object_get(ps.skipped));
		json_object_object_add(o, "archived", json_object_get(ps.archived));
		ctl_emit_json(c, o);
	} else if (rc == PX_OK && c->be.ops->release) {
		ctl_say("%zu pulled, %zu already present, %zu archived on the pen",
		        ps.n_pulled, ps.n_present, ps.n_archived);
	} else if (rc == PX_OK) {
		ctl_say("%zu pulled, %zu already present (from the archive)",
		        ps.n_pulled, ps.n_present);
	}
	json_object_put(ps.pulled);
	json_object_put(ps.skipped);
	json_object_put(ps.archived);
	json_object_put(ps.damaged);
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


/* A session's annotations as JSON (the export's form). */
static json_object *annotations_json(const Plctl__AnnotationList *al)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; al && i < al->n_annotations; i++) {
		const Plctl__Annotation *an = al->annotations[i];
		char t[PL_TIME_TEXT_MAX];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_int64(an->id));
		json_object_object_add(o, "utc_ms", json_object_new_int64(an->utc_ms));
		json_object_object_add(o, "utc", json_str(pl_time_format_utc(an->utc_ms, t)));
		json_object_object_add(o, "user", json_str(an->user));
		json_object_object_add(o, "client_ref", json_str(an->client_ref));
		json_object_object_add(o, "operator", json_str(an->operator_));
		json_object_object_add(o, "note", json_str(an->note));
		json_object_array_add(a, o);
	}
	return a;
}

/* For people: one line per annotation, oldest first (ctl_say cleans each
 * for the terminal). */
static void print_annotations(const Plctl__AnnotationList *al)
{
	size_t n = al ? al->n_annotations : 0;
	ctl_say("%s", "");
	if (!n) {
		ctl_say("annotations: none");
		return;
	}
	ctl_say("annotations: %zu", n);
	for (size_t i = 0; i < n; i++) {
		const Plctl__Annotation *an = al->annotations[i];
		char when[PL_TIME_TEXT_MAX];
		pl_time_format_local(an->utc_ms, when);
		ctl_say("  %s by %s", when, an->user);
		if (an->client_ref && *an->client_ref)
			ctl_say("    client:   %s", an->client_ref);
		if (an->operator_ && *an->operator_)
			ctl_say("    operator: %s", an->operator_);
		if (an->note && *an->note)
			ctl_say("    note:     %s", an->note);
	}
}

/* ann: the session's annotations (through penlinkd), or NULL. */
static int show_record(struct ctl *c, struct pl_record *r, const char *what,
                       bool samples, const Plctl__AnnotationList *ann)
{
	int rc = PX_OK;
	if (c->json) {
		char *text = pl_record_to_json(r, samples);
		json_object *doc = text ? json_tokener_parse(text) : NULL;
		free(text);
		if (doc && ann)
			json_object_object_add(doc, "annotations", annotations_json(ann));
		if (!doc)
			rc = ctl_fail_code(c, PL_ERR_MEM, "cannot render %s as JSON", what);
		else
			rc = ctl_emit_json(c, doc);
	} else {
		/* The report quotes the record's serial and notes: through the
		 * terminal door line by line, like every other message. */
		char *text = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&text, &len);
		int e = mem ? pl_record_print(r, mem)
		            : pl_error_set(PL_ERR_MEM, "out of memory");
		if (mem && fclose(mem) != 0 && e == PL_OK)
			e = pl_error_set(PL_ERR_MEM, "out of memory");
		for (char *line = text, *nl; e == PL_OK && line && *line;
		     line = nl + 1) {
			if (!(nl = strchr(line, '\n')))
				nl = line + strlen(line) - 1;
			else
				*nl = '\0';
			ctl_say("%s", line);
		}
		free(text);
		if (e != PL_OK)
			rc = ctl_fail_pl(c, e);
		else if (samples)
			print_samples(r);
		if (e == PL_OK && ann)
			print_annotations(ann);
	}
	pl_record_free(r);
	return rc;
}

int record_parse_failed(struct ctl *c, int e, const char *what)
{
	if (e == PL_ERR_PARSE)
		return ctl_fail_exit(c, PX_INTEGRITY, error_slug_for(e),
		                     pl_error_name(e), "%s is not a valid session "
		                     "record: %s", what, pl_error_message());
	return ctl_fail_code(c, e, "%s: %s", what, pl_error_message());
}

bool session_arg_valid(const char *arg)
{
	uint8_t uuid[16];
	struct pl_session_key key;
	return parse_uuid(arg, uuid) ||
	       (strchr(arg, '/') && pl_session_key_parse(arg, &key) == PL_OK);
}

/* Two pens may record equal UUIDs: a bare one with more than one pen's
 * session is ambiguous, and the error shows how to name each. */
int session_arg_resolve(struct ctl *c, const char *arg,
                        struct pl_session_key *key, struct session_entry *found)
{
	memset(key, 0, sizeof *key);
	if (parse_uuid(arg, key->uuid)) {
		if (c->serial && strlen(c->serial) >= sizeof key->serial)
			return ctl_usage(c, "-s: a serial has at most %zu bytes",
			                 sizeof key->serial - 1);
		if (c->serial)
			snprintf(key->serial, sizeof key->serial, "%s", c->serial);
	} else {
		pl_session_key_parse(arg, key);
	}
	int rc = ctl_connect(c);
	if (rc != PX_OK || (key->serial[0] && !found))
		return rc; /* named whole: reading it says whether it is there */
	struct session_entry *ss;
	size_t n;
	rc = list_all(c, 0, &ss, &n);
	if (rc != PX_OK)
		return rc;
	const struct pl_session_key want = *key;
	size_t hits = 0;
	char names[1024] = "";
	size_t len = 0;
	for (size_t i = 0; (i = session_find(ss, n, &want, i)) < n; i++) {
		if (!hits++) {
			*key = ss[i].key;
			if (found)
				*found = ss[i];
		}
		char k[160];
		pl_session_key_format(&ss[i].key, PL_TEXT_TERMINAL, k, sizeof k);
		if (len < sizeof names)
			len += (size_t)snprintf(names + len, sizeof names - len, "%s%s",
			                        len ? ", " : "", k);
	}
	free(ss);
	if (hits == 1)
		return PX_OK;
	if (!hits)
		return ctl_fail_code(c, PL_ERR_NOT_FOUND, "no session %s", arg);
	return ctl_usage(c, "session %s is ambiguous: %zu pens recorded a "
	                 "session with that UUID (%s); name one as SERIAL/UUID "
	                 "or with -s SERIAL", arg, hits, names);
}

void session_file_name_as(const struct pl_session_key *key, uint32_t seq,
                          const char *ext, char *out, size_t cap)
{
	char base[200];
	pl_session_file_name(key, seq, base, sizeof base);
	char *dot = strrchr(base, '.');
	if (dot)
		*dot = '\0';
	snprintf(out, cap, "%s%s", base, ext);
}

struct show_args {
	bool samples;
};

static const struct optdef show_opts[] = {
	OPT("--samples", 0, NULL, S_SAMPLES, "every telemetry sample too",
	    OPT_FLAG, struct show_args, samples),
	OPT_TABLE_END,
};

static int sessions_show(struct ctl *c, struct opt_iter *it)
{
	const char *arg = NULL;
	struct show_args a = {0};
	struct opt_args args = {"FILE or session", 1, &arg, 0};
	int rc = opt_parse(c, it, &a, &args);
	if (rc != PX_OK)
		return rc;
	bool samples = a.samples;
	if (!arg)
		return ctl_usage(c, "sessions show needs a FILE (a pulled .plrec) or "
		                 "a session: SERIAL/UUID, or a UUID");
	/* A file by that name wins: a pulled record is named after its key
	 * but never is exactly one. */
	struct stat st;
	struct pl_record *r = NULL;
	if (stat(arg, &st) == 0) {
		int e = pl_record_parse_file(arg, &r);
		return e == PL_OK ? show_record(c, r, arg, samples, NULL)
		                  : record_parse_failed(c, e, arg);
	}
	if (!session_arg_valid(arg))
		return ctl_fail_code(c, PL_ERR_NOT_FOUND, "%s: no such file, and not "
		                     "a session (SERIAL/UUID or UUID)", arg);
	struct pl_session_key key;
	rc = session_arg_resolve(c, arg, &key, NULL);
	if (rc != PX_OK)
		return rc;
	char what[160];
	pl_session_key_format(&key, PL_TEXT_TERMINAL, what, sizeof what);
	uint8_t *data = NULL;
	size_t len = 0;
	int e = c->be.ops->read_record(c->be.ctx, &key, SHOW_MAX, &data, &len);
	if (e != PL_OK)
		return ctl_fail_code(c, e, "session %s: %s", what, pl_error_message());
	e = pl_record_parse(data ? data : (const uint8_t *)"", len, &r);
	free(data);
	if (e != PL_OK)
		return record_parse_failed(c, e, what);
	/* Through penlinkd (or central, which answers the same request) the
	 * session's annotations come with it; a pen has none. */
	Plctl__Response *ar = NULL;
	if (c->dc || c->cc) {
		char uuid[37];
		pl_uuid_format(key.uuid, uuid);
		Plctl__ListAnnotations la = PLCTL__LIST_ANNOTATIONS__INIT;
		la.serial = key.serial;
		la.uuid = uuid;
		e = dc_call(c, &DC_REQUEST(LIST_ANNOTATIONS, list_annotations, &la),
		            PLCTL__RESPONSE__BODY_ANNOTATIONS, &ar);
		if (e != PL_OK) {
			pl_record_free(r);
			return ctl_fail_code(c, e, "annotations of session %s: %s", what,
			                     pl_error_message());
		}
	}
	rc = show_record(c, r, what, samples, ar ? ar->annotations : NULL);
	dc_free(ar);
	return rc;
}

/* ------------------------------------------------------------------ annotate */

struct annotate_args {
	const char *client, *oper, *note;
};

static const struct optdef annotate_opts[] = {
	OPT("--client", 0, "REF", S_CLIENT,
	    "an opaque reference to the client treated (at most 64 bytes)",
	    OPT_TEXT, struct annotate_args, client),
	OPT("--operator", 0, "NAME", S_OPERATOR, "who treated (at most 64 bytes)",
	    OPT_TEXT, struct annotate_args, oper),
	OPT("--note", 0, "TEXT", S_NOTE, "a note (at most 2000 bytes)", OPT_TEXT,
	    struct annotate_args, note),
	OPT_TABLE_END,
};

static int sessions_annotate(struct ctl *c, struct opt_iter *it)
{
	const char *arg = NULL;
	struct annotate_args a = {"", "", ""};
	struct opt_args args = {"session", 1, &arg, 0};
	int rc = opt_parse(c, it, &a, &args);
	if (rc != PX_OK)
		return rc;
	const char *client = a.client, *oper = a.oper, *note = a.note;
	if (!arg)
		return ctl_usage(c, "sessions annotate needs a session: SERIAL/UUID, "
		                 "or a UUID");
	if (!*client && !*oper && !*note)
		return ctl_usage(c, "sessions annotate needs --client, --operator or "
		                 "--note");
	rc = ctl_need_daemon(c, "sessions annotate");
	if (rc != PX_OK)
		return rc;
	if (!session_arg_valid(arg))
		return ctl_usage(c, "%s is not a session (SERIAL/UUID or UUID)", arg);
	struct pl_session_key key;
	rc = session_arg_resolve(c, arg, &key, NULL);
	if (rc != PX_OK)
		return rc;
	char uuid[37], what[160];
	pl_uuid_format(key.uuid, uuid);
	pl_session_key_format(&key, PL_TEXT_TERMINAL, what, sizeof what);
	Plctl__Annotate an = PLCTL__ANNOTATE__INIT;
	an.serial = key.serial;
	an.uuid = uuid;
	an.client_ref = (char *)client;
	an.operator_ = (char *)oper;
	an.note = (char *)note;
	Plctl__Response *r;
	int e = dc_call(c, &DC_REQUEST(ANNOTATE, annotate, &an),
	                PLCTL__RESPONSE__BODY_ANNOTATIONS, &r);
	if (e != PL_OK)
		return ctl_fail_code(c, e, "session %s: %s", what, pl_error_message());
	const Plctl__AnnotationList *al = r->annotations;
	int64_t aid = al && al->n_annotations ? al->annotations[0]->id : 0;
	if (c->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "serial", json_str(key.serial));
		json_object_object_add(o, "uuid", json_object_new_string(uuid));
		json_object *a = annotations_json(al);
		json_object *first = json_object_array_length(a)
		                         ? json_object_get(json_object_array_get_idx(a, 0))
		                         : NULL;
		json_object_put(a);
		json_object_object_add(o, "annotation", first);
		dc_free(r);
		return ctl_emit_json(c, o);
	}
	ctl_say("annotated session %s (annotation %lld)", what, (long long)aid);
	dc_free(r);
	return PX_OK;
}

/* ------------------------------------------------------------------ export */

static int write_out(FILE *f, int fd, const char *path, const uint8_t *data,
                     size_t len)
{
	if (f) {
		if (fwrite(data, 1, len, f) != len)
			return pl_error_set(PL_ERR_IO, "writing standard output: %s",
			                strerror(errno));
		return PL_OK;
	}
	return fd_write_all(fd, path, data, len);
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

/* ---- export --dir: one file per session, as penlinkd sends them */

struct export_dir {
	struct ctl *c;
	const char *dir, *ext;
	int dirfd;
	json_object *files;
	unsigned long n;
	uint64_t bytes;
	char **names;       /* every name this export wrote, for collisions */
	size_t n_names, cap_names;
};

static void export_dir_free(struct export_dir *sp)
{
	for (size_t i = 0; i < sp->n_names; i++)
		free(sp->names[i]);
	free(sp->names);
	json_object_put(sp->files);
}

/* Writes parts a and b to DIR/name through a temporary in DIR: opened
 * O_EXCL|O_NOFOLLOW (a planted link at the temporary's name is never
 * followed), renamed over name (a hard link planted there is replaced, not
 * written through), and a symbolic link or non-file at name is refused. */
static int store_in_dir(struct export_dir *sp, const char *name, const char *a,
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
	if (fd_write_all(fd, tmp, (const uint8_t *)a, alen) != PL_OK ||
	    fd_write_all(fd, tmp, (const uint8_t *)b, blen) != PL_OK ||
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

/* One session's document: its file is named from its key (the serial
 * cleaned for a file name by the library) and written as it came. */
static int export_item(struct export_dir *sp, const Plctl__ExportChunk *ch)
{
	const Plctl__ArchivedSession *a = ch->session;
	if (a->uuid.len != 16)
		return ctl_fail_code(sp->c, PL_ERR_PROTOCOL, "penlinkd exported a "
		                     "session with a %zu-byte UUID", a->uuid.len);
	/* Only the name is made from the key: a serial longer than a pen can
	 * report (an archive edited by hand) is cut, not refused. */
	struct pl_session_key key;
	memset(&key, 0, sizeof key);
	snprintf(key.serial, sizeof key.serial, "%s", a->serial ? a->serial : "");
	memcpy(key.uuid, a->uuid.data, 16);
	char base[200], name[240], uuid[37];
	session_file_name_as(&key, a->seq, "", base, sizeof base);
	snprintf(name, sizeof name, "%s.%s", base, sp->ext);
	/* Two sessions never share a file: hostile serials may clean to the
	 * same text. */
	for (unsigned k = 2;; k++) {
		bool taken = false;
		for (size_t i = 0; i < sp->n_names && !taken; i++)
			taken = strcmp(sp->names[i], name) == 0;
		if (!taken)
			break;
		snprintf(name, sizeof name, "%s-%u.%s", base, k, sp->ext);
	}
	int rc = store_in_dir(sp, name, (const char *)ch->data.data, ch->data.len,
	                      "", 0);
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
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", sp->dir, name);
	pl_uuid_format(key.uuid, uuid);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "serial", json_str(a->serial));
	json_object_object_add(o, "uuid", json_object_new_string(uuid));
	json_object_object_add(o, "seq", json_object_new_int64(a->seq));
	json_object_object_add(o, "bytes", json_object_new_uint64(ch->data.len));
	json_object_array_add(sp->files, o);
	sp->n++;
	sp->bytes += ch->data.len;
	if (!sp->c->json)
		ctl_say("exported seq %u %s -> %s", a->seq, uuid, path);
	return PX_OK;
}

int export_stream(struct ctl *c, Plctl__ExportSessions *ex,
                  int (*piece)(void *ud, const Plctl__ExportChunk *ch),
                  void *ud)
{
	Plctl__Request req = DC_REQUEST(EXPORT_SESSIONS, export_sessions, ex);
	int e = dc_send(c, &req);
	while (e == PL_OK) {
		Plctl__Response *r;
		e = dc_next(c, req.id, dc_timeout(c), &r);
		if (e != PL_OK)
			break;
		bool last = r->last;
		if (r->body_case != PLCTL__RESPONSE__BODY_EXPORT || !r->export)
			e = pl_error_set(PL_ERR_PROTOCOL, "penlinkd answered export "
			                 "with something other than export data");
		else
			e = piece(ud, r->export);
		dc_free(r);
		if (last)
			break;
	}
	return e;
}

/* Where sessions export puts what penlinkd sends: --dir's files (sp), else
 * fd (--out's temporary) or standard output. */
struct export_sink {
	struct ctl *c;
	struct export_dir *sp; /* NULL: not --dir */
	int fd;
	const char *path;   /* what fd becomes, in messages */
	bool to_stdout;
	uint64_t bytes;
	int px; /* a failure export_item already reported */
};

static int export_piece(void *ud, const Plctl__ExportChunk *ch)
{
	struct export_sink *k = ud;
	size_t len = ch->data.len;
	int e = PL_OK;
	if (k->sp && ch->session) {
		k->px = export_item(k->sp, ch);
		if (k->px != PX_OK)
			e = PL_ERR_CANCELLED; /* stops the stream; px says why */
	} else if (k->sp && len) {
		e = pl_error_set(PL_ERR_PROTOCOL, "penlinkd sent export data "
		                 "without its session");
	} else if (len) {
		e = write_out(k->to_stdout ? stdout : NULL, k->fd, k->path,
		              ch->data.data, len);
		/* Data is on stdout now: an error document after it would
		 * corrupt it; the error goes to stderr only. */
		if (k->to_stdout)
			k->c->emitted = true;
	}
	k->bytes += len;
	return e;
}

struct export_args {
	Plctl__ExportFormat format;
	int64_t since;
	const char *out, *dir;
};

static int parse_export_format(struct ctl *c, const char *opt,
                               const char *val, void *field)
{
	Plctl__ExportFormat *format = field;
	if (strcmp(val, "csv") == 0)
		*format = PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_CSV;
	else if (strcmp(val, "json") == 0)
		*format = PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON;
	else
		return ctl_usage(c, "%s: '%.40s' is not csv or json", opt, val);
	return PX_OK;
}

static const struct optdef export_opts[] = {
	OPT("--format", 'f', "csv|json|fhir", S_FORMAT,
	    "CSV (default), JSON or FHIR R4 Bundles", OPT_CALL,
	    struct export_args, format, .parse = parse_export_format),
	OPT("--since", 0, "DATE", S_SINCE,
	    "sessions that started at or after DATE", OPT_DATE,
	    struct export_args, since),
	OPT("--out", 'o', "FILE", S_OUT, "write to FILE (whole or not at all)",
	    OPT_NAME, struct export_args, out, .what = "a file name"),
	OPT("--dir", 0, "DIR", S_DIR, "one file per session in DIR", OPT_NAME,
	    struct export_args, dir, .what = "a folder"),
	OPT_TABLE_END,
};

static int sessions_export(struct ctl *c, struct opt_iter *it)
{
	if (export_wants_fhir(it)) /* FHIR Bundles: cmd_report.c */
		return sessions_export_fhir(c, it);
	struct export_args a = {.format = PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_CSV};
	struct opt_args none = {"--out FILE or --dir DIR", 0, NULL, 0};
	int rc = opt_parse(c, it, &a, &none);
	if (rc != PX_OK)
		return rc;
	Plctl__ExportFormat format = a.format;
	int64_t since = a.since;
	const char *out = a.out, *dir = a.dir;
	if (out && dir)
		return ctl_usage(c, "sessions export: --out FILE and --dir DIR "
		                 "exclude each other");
	if (out && strlen(out) > PATH_MAX - 16)
		return ctl_usage(c, "--out: file name too long");
	if (dir && strlen(dir) > PATH_MAX - 256)
		return ctl_usage(c, "--dir: folder name too long");
	rc = cmd_connect(c, it);
	if (rc != PX_OK)
		return rc;
	const char *fmt_name =
	    format == PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON ? "json" : "csv";

	/* --out: a file appears whole or not at all: write a temporary next
	 * to it, then rename over FILE (which replaces an older export).
	 * --dir: every file is written relative to the folder's descriptor. */
	char tmp[PATH_MAX];
	int fd = -1;
	struct export_dir sp;
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
		sp.ext = fmt_name;
		sp.files = json_object_new_array();
	}

	Plctl__ExportSessions ex = PLCTL__EXPORT_SESSIONS__INIT;
	ex.format = format;
	ex.serial = (char *)(c->serial ? c->serial : "");
	ex.since_ms = since;
	/* Structured: one document per session, named by its key. */
	ex.per_session = dir != NULL;
	struct export_sink sink = {.c = c, .sp = dir ? &sp : NULL, .fd = fd,
	                           .path = out, .to_stdout = !out, .px = PX_OK};
	int e = export_stream(c, &ex, export_piece, &sink);
	uint64_t bytes = sink.bytes;
	int px = sink.px;
	if (dir) {
		if (px == PX_OK && e != PL_OK)
			px = ctl_fail_pl(c, e);
		if (px == PX_OK && fsync(sp.dirfd) != 0)
			px = ctl_fail_errno(c, errno, "fsync %s", dir);
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
				ctl_say("exported %lu session%s (%s of %s) to %s", sp.n,
				        sp.n == 1 ? "" : "s", fmt_bytes(sz, sp.bytes),
				        fmt_name, dir);
			}
		}
		export_dir_free(&sp);
		return px;
	}
	if (!out) {
		if (e == PL_OK && fflush(stdout) != 0)
			e = pl_error_set(PL_ERR_IO, "writing standard output: %s",
			             strerror(errno));
		return e == PL_OK ? PX_OK : ctl_fail_pl(c, e);
	}
	if (e == PL_OK && fsync(fd) != 0)
		e = pl_error_set(PL_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
	if (close(fd) != 0 && e == PL_OK)
		e = pl_error_set(PL_ERR_IO, "close %s: %s", tmp, strerror(errno));
	/* rename() would replace a symbolic link planted at FILE rather than
	 * follow it, but whoever put it there meant another file: refuse. */
	struct stat st;
	if (e == PL_OK && lstat(out, &st) == 0 && !S_ISREG(st.st_mode)) {
		unlink(tmp);
		return refuse_planted(c, NULL, out, &st);
	}
	if (e == PL_OK && rename(tmp, out) != 0)
		e = pl_error_set(errno == EACCES ? PL_ERR_ACCESS : PL_ERR_IO,
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
	ctl_say("exported %s of %s to %s", fmt_bytes(sz, bytes),
	        format == PLCTL__EXPORT_FORMAT__EXPORT_FORMAT_JSON ? "JSON" : "CSV",
	        out);
	return PX_OK;
}

static const struct cmd_spec sessions_specs[] = {
	{"sessions list", "[--since DATE] [--until DATE] [--client REF]",
	 "--port: the sessions on the pen; penlinkd: its archive",
	 CMD_BOTH | CMD_CENTRAL,
	 list_opts,
	 "Through penlinkd every pen's sessions, or -s SERIAL's.  With --port,\n"
	 "--since leaves out sessions the pen timed by its uptime only.\n"
	 "--client (penlinkd, --central): the sessions whose current client\n"
	 "reference (that of their latest annotation giving one) is REF.\n",
	 sessions_list},
	{"sessions pull", "[--out DIR] [--since DATE] [--keep]",
	 "copy every session to DIR and verify its SHA-256", CMD_BOTH | CMD_CENTRAL,
	 pull_opts,
	 "Records go to DIR/<serial>-<seq>-<uuid>.plrec.  --port: downloaded from\n"
	 "the pen (resuming an interrupted pull), then the pen may reclaim them\n"
	 "(unless --keep); penlinkd: copied from the archive.\n",
	 sessions_pull},
	{"sessions show", "FILE | SERIAL/UUID | UUID [--samples]",
	 "decode a pulled record or a session", CMD_BOTH | CMD_CENTRAL, show_opts,
	 "A session is named by its pen's serial and its UUID: SERIAL/UUID, or\n"
	 "-s SERIAL and the UUID.  A bare UUID is enough when only one pen\n"
	 "recorded a session with it.\n",
	 sessions_show},
	SESSIONS_REPORT_SPEC, /* cmd_report.c */
	{"sessions export", "[--format csv|json] [--since DATE] [--out FILE|--dir DIR]",
	 "the archive as CSV or JSON", CMD_DAEMON | CMD_CENTRAL, export_opts,
	 "To stdout, FILE, or DIR/<serial>-<seq>-<uuid>.csv|json per session.\n",
	 sessions_export},
	{"sessions annotate",
	 "SERIAL/UUID | UUID [--client REF] [--operator NAME] [--note TEXT]",
	 "add a client reference, operator and note to a session", CMD_DAEMON,
	 annotate_opts,
	 "Append-only: a correction is a new annotation (the latest client\n"
	 "reference and operator given are the session's current ones).  At\n"
	 "least one of the three; shown by sessions show, filtered by sessions\n"
	 "list --client, included in exports, recorded in the audit trail.\n",
	 sessions_annotate},
	{NULL, NULL, NULL, CMD_BOTH, NULL, NULL, NULL},
};
const struct cmd_group sessions_cmds = {"sessions", "session", sessions_specs};
