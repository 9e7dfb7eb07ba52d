/* Choosing and opening the backend; the direct (libpenlink on --port) one.
 * penlinkd's is in daemon.c. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"

int ctl_connect(struct ctl *c)
{
	if (c->be.ops)
		return PX_OK;
	if (c->central) {
		if (c->port || c->socket)
			return ctl_usage(c, "--central reads the central archive; "
			                 "--%s talks to a %s: give one of them",
			                 c->port ? "port" : "socket",
			                 c->port ? "pen" : "penlinkd");
		if (c->policy_file)
			return ctl_usage(c, "--policy is for --port, not --central");
		return central_open(c, &c->be);
	}
	if (c->site)
		return ctl_usage(c, "--site picks a site's sessions in the central "
		                 "archive: it needs --central URL");
	if (c->port && c->socket)
		return ctl_usage(c, "--port and --socket exclude each other: "
		                 "--port talks to a pen directly, --socket to "
		                 "penlinkd");
	if (!c->port) {
		if (c->policy_file)
			return ctl_usage(c, "--policy is for --port: through penlinkd "
			                 "the daemon's own policy applies");
		/* -s is passed on with every request; penlinkd resolves it. */
		return daemon_open(c, &c->be);
	}
	int rc = direct_open(c, &c->be);
	if (rc != PX_OK)
		return rc;
	if (c->serial) {
		const char *have = c->be.ops->serial(c->be.ctx);
		if (strcmp(have, c->serial) != 0)
			return ctl_fail_code(c, PL_ERR_NOT_FOUND,
			                     "the pen on %s is %s, not %s",
			                     c->be.ops->where(c->be.ctx), have,
			                     c->serial);
	}
	return PX_OK;
}

void ctl_disconnect(struct ctl *c)
{
	if (c->be.ops) {
		c->be.ops->close(c->be.ctx);
		c->be.ops = NULL;
		c->be.ctx = NULL;
	}
}

/* ------------------------------------------------------------------ no pen at hand */

static int penless_refuse(void *ctx, const char *what)
{
	return ((const struct penless *)ctx)->refuse(what);
}

int penless_ping(void *ctx, uint32_t *rtt_us)
{
	*rtt_us = 0;
	return penless_refuse(ctx, "ping");
}

int penless_trace(void *ctx, bool enable, uint32_t level)
{
	(void)enable;
	(void)level;
	return penless_refuse(ctx, "the pen's trace subscription");
}

void penless_set_event_handler(void *ctx, pl_event_fn fn, void *ud)
{
	(void)ctx;
	(void)fn;
	(void)ud;
}

int penless_poll(void *ctx, int timeout_ms)
{
	(void)timeout_ms;
	return penless_refuse(ctx, "waiting for a pen's events");
}

uint64_t penless_resume_point(void *ctx, const char *path)
{
	(void)ctx;
	(void)path;
	return 0;
}

/* ------------------------------------------------------------------ an archive's copy */

static int io_code(int err)
{
	return err == EACCES || err == EPERM ? PL_ERR_ACCESS : PL_ERR_IO;
}

int fd_write_all(int fd, const char *path, const uint8_t *data, size_t len)
{
	while (len) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* errno stays what write() said, for callers that
			 * report it their own way. */
			int err = errno;
			pl_error_set(PL_ERR_IO, "writing %s: %s", path, strerror(err));
			errno = err;
			return PL_ERR_IO;
		}
		data += n;
		len -= (size_t)n;
	}
	return PL_OK;
}

int archive_copy_to_file(const char *path, const uint8_t sha256[32],
                         int (*fill)(void *ud, int fd), void *ud)
{
	if (unlink(path) != 0 && errno != ENOENT)
		return pl_error_set(io_code(errno), "cannot remove %s: %s", path,
		                    strerror(errno));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	              0640);
	if (fd < 0)
		return pl_error_set(io_code(errno), "cannot create %s: %s", path,
		                    strerror(errno));
	int e = fill(ud, fd);
	if (e == PL_OK && fsync(fd) != 0)
		e = pl_error_set(PL_ERR_IO, "fsync %s: %s", path, strerror(errno));
	if (close(fd) != 0 && e == PL_OK)
		e = pl_error_set(PL_ERR_IO, "close %s: %s", path, strerror(errno));
	if (e == PL_OK) {
		uint8_t sha[32];
		e = pl_sha256_file(path, sha);
		if (e == PL_OK && memcmp(sha, sha256, 32) != 0)
			e = pl_error_set(PL_ERR_DIGEST, "the copy's SHA-256 differs "
			                 "from the archive's");
	}
	if (e != PL_OK)
		unlink(path);
	return e;
}

/* ------------------------------------------------------------------ direct */

struct direct {
	struct pl_pen *pen;
	char where[256];
	const char *policy_file; /* --policy, or NULL for the default */
};

static const char *d_serial(void *ctx)
{
	return pl_pen_serial(((struct direct *)ctx)->pen);
}

static const char *d_where(void *ctx)
{
	return ((struct direct *)ctx)->where;
}

static int d_info(void *ctx, struct pl_device_info *out)
{
	return pl_pen_get_info(((struct direct *)ctx)->pen, out);
}

static int d_link(void *ctx, struct link_info *out)
{
	struct pl_pen *pen = ((struct direct *)ctx)->pen;
	out->protocol_version = pl_pen_protocol_version(pen);
	out->max_frame = pl_pen_max_frame(pen);
	out->max_in_flight = pl_pen_max_in_flight(pen);
	out->capabilities = pl_pen_capabilities(pen);
	pl_pen_link_stats(pen, &out->stats);
	return PL_OK;
}

static int d_get_presets(void *ctx, struct pl_preset_set *out)
{
	return pl_pen_get_presets(((struct direct *)ctx)->pen, out);
}

/* The [policy] section of a penlinkd.conf-style file, key by key into the
 * library's one parser of policy values. */
struct policy_load {
	struct pl_policy *policy;
	int rc;
	char msg[512];
};

static int policy_key(void *ud, const char *section, const char *key,
                      const char *value)
{
	struct policy_load *pl = ud;
	if (strcmp(section, "policy") != 0 || pl->rc != PL_OK)
		return 1;
	pl->rc = pl_policy_set(pl->policy, key, value);
	if (pl->rc != PL_OK)
		snprintf(pl->msg, sizeof pl->msg, "%s", pl_error_message());
	return pl->rc == PL_OK;
}

static int load_policy(const char *path, struct pl_policy **out)
{
	int rc = pl_policy_new(out);
	if (rc != PL_OK || !path)
		return rc;
	FILE *f = fopen(path, "re");
	if (!f) {
		int err = errno;
		pl_policy_free(*out);
		*out = NULL;
		return pl_error_set(err == ENOENT   ? PL_ERR_NOT_FOUND
		                    : err == EACCES ? PL_ERR_ACCESS
		                                    : PL_ERR_IO,
		                    "--policy %s: %s", path, strerror(err));
	}
	struct policy_load pl = {.policy = *out, .rc = PL_OK};
	int line = ini_parse_file(f, policy_key, &pl);
	fclose(f);
	if (line == 0)
		return PL_OK;
	pl_policy_free(*out);
	*out = NULL;
	if (line < 0)
		return pl_error_set(PL_ERR_MEM, "--policy %s: out of memory", path);
	return pl_error_set(PL_ERR_PARSE, "--policy %s, line %d: %s", path, line,
	                    pl.msg[0] ? pl.msg : "not an INI line");
}

#define MAX_GROUPS 256

/* The user as the policy sees them: their groups may be capped; root is
 * not, as penlinkd treats it. */
static int policy_check(const struct direct *d, const struct pl_preset_set *cur,
                        const struct pl_preset_set *next, bool confirm)
{
	gid_t gids[MAX_GROUPS + 1];
	int n = getgroups(MAX_GROUPS, gids + 1);
	if (n < 0)
		return pl_error_set(PL_ERR_IO, "reading your groups for the policy: "
		                    "%s", strerror(errno));
	gids[0] = getegid();
	/* getgrgid() reuses one buffer: keep copies of the names. */
	static char names[MAX_GROUPS + 1][128];
	const char *groups[MAX_GROUPS + 1];
	size_t n_groups = 0;
	for (int i = 0; i <= n; i++) {
		const struct group *g = getgrgid(gids[i]);
		if (!g)
			continue;
		snprintf(names[n_groups], sizeof names[n_groups], "%s", g->gr_name);
		groups[n_groups] = names[n_groups];
		n_groups++;
	}
	const struct passwd *pw = getpwuid(geteuid());
	struct pl_policy_actor actor = {
		.user = pw ? pw->pw_name : "this user",
		.uncapped = geteuid() == 0,
		.groups = groups,
		.n_groups = n_groups,
	};
	struct pl_policy *policy;
	int rc = load_policy(d->policy_file, &policy);
	if (rc != PL_OK)
		return rc;
	rc = pl_policy_check_push(policy, &actor, cur, next, confirm);
	pl_policy_free(policy);
	return rc;
}

static int d_put_presets(void *ctx, const struct pl_preset_set *cur,
                         const struct pl_preset_set *next,
                         const struct push_flags *flags,
                         struct pl_preset_set *result,
                         struct pl_preset_diff *diff)
{
	struct direct *d = ctx;
	int rc = pl_preset_set_diff(cur, next, diff);
	if (rc == PL_OK)
		rc = pl_preset_diff_check_removals(diff, flags->replace);
	if (rc == PL_OK)
		rc = policy_check(d, cur, next, flags->confirm);
	if (rc != PL_OK || !flags->dry_run)
		return rc != PL_OK ? rc : pl_pen_put_presets(d->pen, next, result);
	/* A dry run: the pen's limits as pl_pen_put_presets checks them
	 * before writing, and the set as it would be written. */
	struct pl_device_info info;
	rc = pl_pen_get_info(d->pen, &info);
	if (rc == PL_OK)
		rc = pl_preset_set_validate(&info, next);
	if (rc == PL_OK)
		*result = *next;
	return rc;
}

static int d_clock_get(void *ctx, int64_t *utc_ms, bool *rtc_set,
                       uint64_t *uptime_ms)
{
	return pl_pen_clock_get(((struct direct *)ctx)->pen, utc_ms, rtc_set,
	                    uptime_ms);
}

static int d_clock_sync(void *ctx, int64_t *offset_ms, int *rtc_was_set)
{
	*rtc_was_set = -1;
	return pl_pen_clock_sync(((struct direct *)ctx)->pen, offset_ms);
}

static int d_list_sessions(void *ctx, int64_t since,
                           struct session_entry **out, size_t *count)
{
	struct direct *d = ctx;
	struct pl_session_info *ss = NULL;
	size_t n = 0;
	*out = NULL;
	*count = 0;
	int rc = pl_pen_list_sessions(d->pen, &ss, &n);
	if (rc != PL_OK)
		return rc;
	struct session_entry *v = calloc(n ? n : 1, sizeof *v);
	if (!v) {
		free(ss);
		return pl_error_set(PL_ERR_MEM, "out of memory");
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		/* A pen without a clock timed its sessions by uptime, so when
		 * they happened is unknown: --since leaves them out. */
		if (since && (!ss[i].rtc_time || ss[i].start_ms < since))
			continue;
		snprintf(v[k].key.serial, sizeof v[k].key.serial, "%s",
		         pl_pen_serial(d->pen));
		memcpy(v[k].key.uuid, ss[i].uuid, 16);
		v[k].info = ss[i];
		k++;
	}
	free(ss);
	*out = v;
	*count = k;
	return PL_OK;
}

static int d_fetch_to_file(void *ctx, const struct session_entry *s,
                           const char *path, pl_progress_fn progress, void *ud)
{
	return pl_pen_download_session_to_file(((struct direct *)ctx)->pen, &s->info,
	                                       path, progress, ud);
}

static uint64_t d_resume_point(void *ctx, const char *path)
{
	(void)ctx;
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

struct mem_sink {
	uint8_t *buf;
	size_t len, cap;
};

static int to_memory(void *ud, uint64_t offset, const uint8_t *data, size_t len)
{
	struct mem_sink *m = ud;
	if (offset != m->len || len > m->cap - m->len)
		return pl_error_set(PL_ERR_PROTOCOL, "the pen sent more of the "
		                    "record than it listed");
	memcpy(m->buf + m->len, data, len);
	m->len += len;
	return PL_OK;
}

size_t session_find(const struct session_entry *v, size_t n,
                    const struct pl_session_key *key, size_t from)
{
	for (size_t i = from; i < n; i++)
		if (key->serial[0] ? pl_session_key_equal(&v[i].key, key)
		                   : memcmp(v[i].key.uuid, key->uuid, 16) == 0)
			return i;
	return n;
}

static int d_read_record(void *ctx, const struct pl_session_key *key,
                         uint64_t max, uint8_t **data, size_t *len)
{
	struct direct *d = ctx;
	*data = NULL;
	*len = 0;
	char name[160];
	pl_session_key_format(key, PL_TEXT_LOG, name, sizeof name);
	if (strcmp(key->serial, pl_pen_serial(d->pen)) != 0)
		return pl_error_set(PL_ERR_NOT_FOUND, "no session %s: the pen on %s "
		                    "is another pen", name, d->where);
	struct session_entry *v;
	size_t n;
	int rc = d_list_sessions(ctx, 0, &v, &n);
	if (rc != PL_OK)
		return rc;
	size_t i = session_find(v, n, key, 0);
	if (i == n) {
		free(v);
		return pl_error_set(PL_ERR_NOT_FOUND, "the pen on %s has no session "
		                    "%s", d->where, name);
	}
	struct pl_session_info s = v[i].info;
	free(v);
	if (s.size > max)
		return pl_error_set(PL_ERR_PARSE, "session %s is %llu bytes; penctl "
		                    "shows records up to %llu bytes", name,
		                    (unsigned long long)s.size,
		                    (unsigned long long)max);
	struct mem_sink m = {.buf = malloc(s.size ? (size_t)s.size : 1),
	                     .cap = (size_t)s.size};
	if (!m.buf)
		return pl_error_set(PL_ERR_MEM, "out of memory for a %llu-byte record",
		                    (unsigned long long)s.size);
	struct pl_download_options o;
	pl_download_options_init(&o);
	o.sink = to_memory;
	o.ud = &m;
	rc = pl_pen_download_session(d->pen, &s, 0, &o);
	uint8_t sha[32];
	if (rc == PL_OK) {
		pl_sha256(m.buf, m.len, sha);
		if (m.len != s.size || memcmp(sha, s.sha256, 32) != 0)
			rc = pl_error_set(PL_ERR_DIGEST, "session %s: the record's "
			                  "SHA-256 differs from the pen's", name);
	}
	if (rc != PL_OK) {
		free(m.buf);
		return rc;
	}
	*data = m.buf;
	*len = m.len;
	return PL_OK;
}

static int d_release(void *ctx, const struct session_entry *s)
{
	return pl_pen_archive_session(((struct direct *)ctx)->pen, s->info.id,
	                              s->info.sha256);
}

static int d_ping(void *ctx, uint32_t *rtt_us)
{
	return pl_pen_ping(((struct direct *)ctx)->pen, rtt_us);
}

static int d_trace(void *ctx, bool enable, uint32_t level)
{
	return pl_pen_trace_subscribe(((struct direct *)ctx)->pen, enable, level);
}

static void d_set_event_handler(void *ctx, pl_event_fn fn, void *ud)
{
	pl_pen_set_event_handler(((struct direct *)ctx)->pen, fn, ud);
}

static int d_poll(void *ctx, int timeout_ms)
{
	return pl_pen_poll(((struct direct *)ctx)->pen, timeout_ms);
}

static void d_cancel(void *ctx)
{
	/* Closing the pen from inside the download's callback makes the
	 * download return PL_ERR_CANCELLED; what it wrote stays (a prefix). */
	struct direct *d = ctx;
	pl_pen_close(d->pen);
	d->pen = NULL;
}

static void d_close(void *ctx)
{
	struct direct *d = ctx;
	pl_pen_close(d->pen);
	free(d);
}

static const struct backend_ops direct_ops = {
	.direct = true,
	.serial = d_serial,
	.where = d_where,
	.info = d_info,
	.link = d_link,
	.get_presets = d_get_presets,
	.put_presets = d_put_presets,
	.clock_get = d_clock_get,
	.clock_sync = d_clock_sync,
	.list_sessions = d_list_sessions,
	.fetch_to_file = d_fetch_to_file,
	.resume_point = d_resume_point,
	.read_record = d_read_record,
	.release = d_release,
	.ping = d_ping,
	.trace = d_trace,
	.set_event_handler = d_set_event_handler,
	.poll = d_poll,
	.cancel = d_cancel,
	.close = d_close,
};

int direct_open(struct ctl *c, struct backend *out)
{
	struct pl_open_options o;
	pl_open_options_init(&o);
	if (c->timeout_ms > 0) {
		o.timeout_ms = c->timeout_ms;
		/* A patient user also waits longer for a pen that is booting. */
		if (o.handshake_ms < c->timeout_ms)
			o.handshake_ms = c->timeout_ms;
	}
	if (c->dump_frames) {
		o.frame_log = frame_log_stderr;
		o.frame_log_ud = NULL;
	}
	struct direct *d = calloc(1, sizeof *d);
	if (!d)
		return ctl_fail_code(c, PL_ERR_MEM, "out of memory");
	snprintf(d->where, sizeof d->where, "%s", c->port);
	d->policy_file = c->policy_file;
	int rc = pl_pen_open(c->port, &o, &d->pen);
	if (rc != PL_OK) {
		free(d);
		return ctl_fail_pl(c, rc);
	}
	if (c->timeout_ms > 0)
		pl_pen_set_timeout(d->pen, c->timeout_ms);
	out->ops = &direct_ops;
	out->ctx = d;
	return PX_OK;
}
