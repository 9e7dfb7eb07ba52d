/* Access control for the control socket, and the caller as the clinic's
 * preset policy sees it (see access.h). */
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
	p->presets_policy = cfg->policy;
	const char *group;
	uint32_t um;
	while (p->n_caps < ACCESS_MAX_CAPS &&
	       pl_policy_cap(cfg->policy, p->n_caps, &group, &um) == PL_OK)
		resolve(&p->caps[p->n_caps++], group, "depth_cap");
}

static bool superuser(const struct access_policy *p, const struct caller *c)
{
	return c->uid == 0 || c->uid == p->daemon_uid;
}

static bool member(const struct caller *c, const struct access_group *g)
{
	return g->name[0] && g->exists && caller_in_group(c, g->gid);
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
                 enum access_right right, const char *purpose, char *msg,
                 size_t msglen)
{
	if (access_has_right(p, c, right))
		return PL_OK;
	const struct access_group *g = group_for(p, right);
	if (g->name[0])
		snprintf(msg, msglen,
		         "permission denied: %s is not in group %s (needed to %s)",
		         c->user, g->name, purpose);
	else
		snprintf(msg, msglen,
		         "permission denied: only root and the daemon's user may %s "
		         "(no %s is configured)",
		         purpose,
		         right == ACCESS_READ_LOGS ? "logs_group" : "presets_group");
	return PL_ERR_ACCESS;
}

int access_check_presets(const struct access_policy *p, const struct caller *c,
                         const struct pl_preset_set *old,
                         const struct pl_preset_set *set, bool confirm)
{
	const char *groups[ACCESS_MAX_CAPS];
	struct pl_policy_actor who = {
		.user = c->user,
		.uncapped = superuser(p, c),
		.groups = groups,
		.n_groups = 0,
	};
	for (size_t i = 0; i < p->n_caps; i++)
		if (member(c, &p->caps[i]))
			groups[who.n_groups++] = p->caps[i].name;
	return pl_policy_check_push(p->presets_policy, &who, old, set, confirm);
}
