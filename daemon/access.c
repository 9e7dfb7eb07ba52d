/* Access control and preset policy for the control socket (see access.h). */
#include "access.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

/* A peer could belong to tens of thousands of groups (NGROUPS_MAX); beyond
 * this many the rest are ignored rather than letting one client make the
 * daemon allocate without bound. */
#define MAX_CALLER_GROUPS 4096

/* ------------------------------------------------------------------ callers */

static void add_group(struct caller *c, size_t cap, gid_t g)
{
	if (caller_in_group(c, g) || c->n_groups >= cap)
		return;
	c->groups[c->n_groups++] = g;
}

/* The group database's view of the user (getgrouplist), which also counts a
 * membership granted after the client's session started. */
static void add_db_groups(struct caller *c, size_t cap, const char *user,
                          gid_t base)
{
	int n = 64;
	for (;;) {
		gid_t *g = malloc((size_t)n * sizeof *g);
		if (!g)
			return;
		int want = n;
		if (getgrouplist(user, base, g, &want) >= 0) {
			for (int i = 0; i < want; i++)
				add_group(c, cap, g[i]);
			free(g);
			return;
		}
		free(g);
		/* want now holds the size needed; glibc guarantees it grows. */
		if (want <= n || want > MAX_CALLER_GROUPS)
			return;
		n = want;
	}
}

int caller_from_socket(int fd, struct caller *c)
{
	memset(c, 0, sizeof *c);
	struct ucred cr;
	socklen_t len = sizeof cr;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -errno;
	c->uid = cr.uid;
	c->gid = cr.gid;
	c->pid = cr.pid;
	snprintf(c->user, sizeof c->user, "%u", (unsigned)cr.uid);

	c->groups = malloc(MAX_CALLER_GROUPS * sizeof *c->groups);
	if (!c->groups)
		return -ENOMEM;
	add_group(c, MAX_CALLER_GROUPS, cr.gid);

#ifdef SO_PEERGROUPS
	/* The groups the peer process actually holds (Linux >= 4.13). */
	{
		gid_t pg[256];
		socklen_t pl = sizeof pg;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, pg, &pl) == 0)
			for (size_t i = 0; i < pl / sizeof pg[0]; i++)
				add_group(c, MAX_CALLER_GROUPS, pg[i]);
	}
#endif

	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t bufsz = sz > 0 ? (size_t)sz : 16384;
	for (int tries = 0; tries < 5; tries++, bufsz *= 4) {
		char *buf = malloc(bufsz);
		if (!buf)
			break;
		struct passwd pw, *res = NULL;
		int rc = getpwuid_r(cr.uid, &pw, buf, bufsz, &res);
		if (rc == ERANGE) {
			free(buf);
			continue;
		}
		if (rc == 0 && res && res->pw_name && res->pw_name[0]) {
			snprintf(c->user, sizeof c->user, "%s", res->pw_name);
			add_db_groups(c, MAX_CALLER_GROUPS, res->pw_name, res->pw_gid);
		}
		free(buf);
		break;
	}
	return 0;
}

void caller_free(struct caller *c)
{
	free(c->groups);
	c->groups = NULL;
	c->n_groups = 0;
}

int caller_copy(struct caller *dst, const struct caller *src)
{
	*dst = *src;
	dst->groups = NULL;
	if (src->n_groups) {
		dst->groups = malloc(src->n_groups * sizeof *dst->groups);
		if (!dst->groups) {
			dst->n_groups = 0;
			return -ENOMEM;
		}
		memcpy(dst->groups, src->groups, src->n_groups * sizeof *dst->groups);
	}
	return 0;
}

bool caller_in_group(const struct caller *c, gid_t gid)
{
	for (size_t i = 0; i < c->n_groups; i++)
		if (c->groups[i] == gid)
			return true;
	return false;
}

/* ------------------------------------------------------------------ policy */

static void resolve(struct access_group *g, const char *name, const char *key)
{
	memset(g, 0, sizeof *g);
	snprintf(g->name, sizeof g->name, "%s", name ? name : "");
	if (!g->name[0])
		return;
	char buf[16384];
	struct group gr, *res = NULL;
	int rc = getgrnam_r(g->name, &gr, buf, sizeof buf, &res);
	if (rc == 0 && res) {
		g->exists = true;
		g->gid = res->gr_gid;
	} else {
		log_warn("%s: group %s does not exist; only root and the daemon's "
		         "user have what it grants", key, g->name);
	}
}

void access_policy_init(struct access_policy *p, const struct config *cfg,
                        uid_t daemon_uid)
{
	memset(p, 0, sizeof *p);
	p->daemon_uid = daemon_uid;
	resolve(&p->logs, cfg->logs_group, "logs_group");
	resolve(&p->presets, cfg->presets_group, "presets_group");
	for (int i = 0; i < cfg->n_caps && i < CONFIG_MAX_CAPS; i++) {
		resolve(&p->caps[i].group, cfg->caps[i].group, "depth_cap");
		p->caps[i].max_depth_um = cfg->caps[i].max_depth_um;
	}
	p->n_caps = cfg->n_caps < CONFIG_MAX_CAPS ? cfg->n_caps : CONFIG_MAX_CAPS;
	p->confirm_above_um = cfg->confirm_above_um;
}

static bool superuser(const struct access_policy *p, const struct caller *c)
{
	return c->uid == 0 || c->uid == p->daemon_uid;
}

static bool member(const struct caller *c, const struct access_group *g)
{
	return g->name[0] && g->exists && caller_in_group(c, g->gid);
}

static const struct access_op ops[] = {
	[PLCTL__REQUEST__OP_HELLO] = {"hello", ACCESS_ANYONE, NULL},
	[PLCTL__REQUEST__OP_LIST_PENS] = {"pens.list", ACCESS_ANYONE, NULL},
	[PLCTL__REQUEST__OP_GET_INFO] = {"info", ACCESS_ANYONE, NULL},
	[PLCTL__REQUEST__OP_GET_PRESETS] = {"presets.get", ACCESS_ANYONE, NULL},
	[PLCTL__REQUEST__OP_PUSH_PRESETS] = {"presets.push", ACCESS_CHANGE_PRESETS,
	                                     "change presets"},
	[PLCTL__REQUEST__OP_CLOCK_SYNC] = {"clock.sync", ACCESS_CHANGE_PRESETS,
	                                   "set a pen's clock"},
	[PLCTL__REQUEST__OP_LIST_SESSIONS] = {"sessions.list", ACCESS_READ_LOGS,
	                                      "read session logs"},
	[PLCTL__REQUEST__OP_SHOW_SESSION] = {"sessions.show", ACCESS_READ_LOGS,
	                                     "read session logs"},
	[PLCTL__REQUEST__OP_EXPORT_SESSIONS] = {"sessions.export", ACCESS_READ_LOGS,
	                                        "read session logs"},
	[PLCTL__REQUEST__OP_ATTACH] = {"attach", ACCESS_CHANGE_PRESETS,
	                               "attach pens"},
	[PLCTL__REQUEST__OP_DETACH] = {"detach", ACCESS_CHANGE_PRESETS,
	                               "detach pens"},
	[PLCTL__REQUEST__OP_AUDIT] = {"audit", ACCESS_READ_LOGS,
	                              "read the audit trail"},
	[PLCTL__REQUEST__OP_MONITOR] = {"monitor", ACCESS_ANYONE, NULL},
	[PLCTL__REQUEST__OP_TRACE] = {"trace", ACCESS_ANYONE, NULL},
};

const struct access_op *access_op_of(Plctl__Request__OpCase op)
{
	if ((int)op <= 0 || (size_t)op >= sizeof ops / sizeof ops[0] ||
	    !ops[op].name)
		return NULL;
	return &ops[op];
}

static const struct access_group *group_for(const struct access_policy *p,
                                            enum access_right r)
{
	return r == ACCESS_READ_LOGS ? &p->logs : &p->presets;
}

bool access_has_right(const struct access_policy *p, const struct caller *c,
                      enum access_right right)
{
	if (right == ACCESS_ANYONE || superuser(p, c))
		return true;
	return member(c, group_for(p, right));
}

int access_check(const struct access_policy *p, const struct caller *c,
                 Plctl__Request__OpCase op, char *msg, size_t msglen)
{
	const struct access_op *o = access_op_of(op);
	if (!o) {
		snprintf(msg, msglen, "unknown operation %d", (int)op);
		return PL_ERR_UNSUPPORTED;
	}
	if (access_has_right(p, c, o->right))
		return PL_OK;
	const struct access_group *g = group_for(p, o->right);
	if (g->name[0])
		snprintf(msg, msglen,
		         "permission denied: %s is not in group %s (needed to %s)",
		         c->user, g->name, o->purpose);
	else
		snprintf(msg, msglen,
		         "permission denied: only root and the daemon's user may %s "
		         "(no %s is configured)",
		         o->purpose,
		         o->right == ACCESS_READ_LOGS ? "logs_group" : "presets_group");
	return PL_ERR_ACCESS;
}

bool access_depth_cap(const struct access_policy *p, const struct caller *c,
                      uint32_t *cap_um, const char **group)
{
	if (superuser(p, c))
		return false;
	bool capped = false;
	for (int i = 0; i < p->n_caps; i++) {
		const struct access_cap *k = &p->caps[i];
		if (!member(c, &k->group))
			continue;
		if (!capped || k->max_depth_um > *cap_um) {
			*cap_um = k->max_depth_um;
			*group = k->group.name;
		}
		capped = true;
	}
	return capped;
}

void access_format_mm(uint32_t um, char *out, size_t outlen)
{
	unsigned frac = um % 1000;
	if (frac % 10 == 0)
		snprintf(out, outlen, "%u.%02u", um / 1000, frac / 10);
	else
		snprintf(out, outlen, "%u.%03u", um / 1000, frac);
}

/* The preset's name as it may appear in a message another user reads (the
 * audit trail): no control bytes, bounded. */
static void safe_name(const struct pl_preset *pr, char *out, size_t outlen)
{
	size_t n = strnlen(pr->name, sizeof pr->name), j = 0;
	for (size_t i = 0; i < n && j + 1 < outlen; i++) {
		unsigned char ch = (unsigned char)pr->name[i];
		out[j++] = (ch < 0x20 || ch == 0x7f || ch == '"') ? '?' : (char)ch;
	}
	out[j] = 0;
}

/* Does this push add pr, or change its depth, against old? */
static bool depth_is_new(const struct pl_preset_set *old, const struct pl_preset *pr)
{
	if (!old)
		return true;
	size_t n = old->count < PL_MAX_PRESETS ? old->count : PL_MAX_PRESETS;
	for (size_t i = 0; i < n; i++)
		if (old->presets[i].id == pr->id)
			return old->presets[i].depth_um != pr->depth_um;
	return true;
}

int access_check_presets(const struct access_policy *p, const struct caller *c,
                         const struct pl_preset_set *old,
                         const struct pl_preset_set *set, bool confirm,
                         char *msg, size_t msglen)
{
	char name[PL_PRESET_NAME_MAX + 1], d[24], lim[24];
	uint32_t cap = 0;
	const char *group = NULL;
	size_t n = set->count < PL_MAX_PRESETS ? set->count : PL_MAX_PRESETS;

	/* Caps first: a push the caller may not make at all should not first
	 * ask for a confirmation. */
	if (access_depth_cap(p, c, &cap, &group)) {
		for (size_t i = 0; i < n; i++) {
			const struct pl_preset *pr = &set->presets[i];
			if (pr->depth_um <= cap || !depth_is_new(old, pr))
				continue;
			safe_name(pr, name, sizeof name);
			access_format_mm(pr->depth_um, d, sizeof d);
			access_format_mm(cap, lim, sizeof lim);
			snprintf(msg, msglen,
			         "preset %u \"%s\": depth %s mm is above %s's cap of "
			         "%s mm (group %s)",
			         pr->id, name, d, c->user, lim, group);
			return PL_ERR_VALIDATION;
		}
	}
	if (confirm)
		return PL_OK;
	for (size_t i = 0; i < n; i++) {
		const struct pl_preset *pr = &set->presets[i];
		if (pr->depth_um <= p->confirm_above_um || !depth_is_new(old, pr))
			continue;
		safe_name(pr, name, sizeof name);
		access_format_mm(pr->depth_um, d, sizeof d);
		access_format_mm(p->confirm_above_um, lim, sizeof lim);
		snprintf(msg, msglen,
		         "preset %u \"%s\": depth %s mm is above %s mm; add "
		         "--confirm to push it",
		         pr->id, name, d, lim);
		return PL_ERR_VALIDATION;
	}
	return PL_OK;
}
