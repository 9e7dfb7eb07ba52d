/*
 * Who may do what on the control socket, and who the clinic's preset policy
 * sees in a caller.
 *
 * The decisions are pure functions of the caller's credentials (uid and
 * group ids), a policy built from the configuration, the right an operation
 * needs (its entry in ctl_ops.c's table) and the presets, so they are tested
 * without sockets (tests/daemon/test_access.c).  Only caller_from_socket()
 * and access_policy_init() touch the system.  The preset policy itself (caps,
 * confirmation) is libpenlink's struct pl_policy, the same code penctl runs
 * with --port; this module only tells it who is asking.
 *
 * Rules:
 *  - root (uid 0) and the daemon's own uid may do everything, uncapped;
 *  - ListSessions, ShowSession, ExportSessions and Audit need membership in
 *    [access] logs_group;
 *  - PushPresets, ClockSync, Attach and Detach need [access] presets_group;
 *  - Hello, ListPens, GetInfo, GetPresets, Monitor and Trace: anyone who can
 *    connect (the socket's mode and group already decide who that is);
 *  - an empty group name in the config means nobody but root and the
 *    daemon's user;
 *  - "membership" is the union of the caller's gid, the groups its process
 *    holds (SO_PEERGROUPS) and the groups the group database lists for its
 *    user (getgrouplist), all taken once when the client connects;
 *  - group names are resolved to gids when the daemon starts: a group created
 *    later takes effect at the next restart;
 *  - [policy] depth_cap.GROUP = MM: the policy is told the names of the
 *    capped groups the caller belongs to, membership counted as above;
 *    root and the daemon's user are uncapped;
 *  - every preset deeper than [policy] confirm_above_mm needs the client's
 *    confirm flag (penctl --confirm), whoever pushes it.
 */
#ifndef PLD_ACCESS_H
#define PLD_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <penlink.h>

#include "config.h"

/* A connected client, as the kernel reports it (SO_PEERCRED). */
struct caller {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char user[64];      /* login name, or the uid as text */
	gid_t *groups;      /* every group the caller counts as a member of */
	size_t n_groups;
};

/* Fills c from a connected AF_UNIX socket: credentials, user name and groups
 * (resolved once, here).  -errno if SO_PEERCRED fails. */
int caller_from_socket(int fd, struct caller *c);
void caller_free(struct caller *c);
/* A deep copy (for requests that outlive their client); -ENOMEM. */
int caller_copy(struct caller *dst, const struct caller *src);
bool caller_in_group(const struct caller *c, gid_t gid);

/* A configured group name and whether it exists on this system. */
struct access_group {
	char name[64];      /* "" = not configured */
	bool exists;
	gid_t gid;
};

/* pl_policy_set() takes at most this many depth_cap.GROUP keys. */
#define ACCESS_MAX_CAPS 16

struct access_policy {
	uid_t daemon_uid;
	struct access_group logs;
	struct access_group presets;
	/* The clinic's preset policy: the configuration's, which must outlive
	 * this. */
	const struct pl_policy *presets_policy;
	/* Its capped groups, resolved, in pl_policy_cap() order. */
	struct access_group caps[ACCESS_MAX_CAPS];
	size_t n_caps;
};

/* Builds the policy from the config, resolving group names (getgrnam_r);
 * logs a warning for each configured group that does not exist. */
void access_policy_init(struct access_policy *p, const struct config *cfg,
                        uid_t daemon_uid);

enum access_right {
	ACCESS_ANYONE,
	ACCESS_READ_LOGS,
	ACCESS_CHANGE_PRESETS,
};

bool access_has_right(const struct access_policy *p, const struct caller *c,
                      enum access_right right);

/*
 * Whether the caller holds right; purpose says what the right is for, in
 * the refusal ("read session logs").  PL_OK, or PL_ERR_ACCESS with
 * "permission denied: alice is not in group penlink-logs (needed to read
 * session logs)" in msg.
 */
int access_check(const struct access_policy *p, const struct caller *c,
                 enum access_right right, const char *purpose, char *msg,
                 size_t msglen);

/*
 * The clinic's policy for a preset push of set over old (the pen's current
 * set), decided by pl_policy_check_push() for this caller: PL_OK, or
 * PL_ERR_POLICY with the library's message in pl_error_message() (e.g.
 * `preset 3 "Scar": depth 2.00 mm is above 1.50 mm; add --confirm to push
 * it`); PL_ERR_MEM.
 */
int access_check_presets(const struct access_policy *p, const struct caller *c,
                         const struct pl_preset_set *old,
                         const struct pl_preset_set *set, bool confirm);

#endif
