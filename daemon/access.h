/*
 * Who may do what on the control socket, and the clinic's preset policy.
 *
 * The decisions are pure functions of the caller's credentials (uid and
 * group ids), a policy built from the configuration, the operation and the
 * presets, so they are tested without sockets (tests/daemon/test_access.c).
 * Only caller_from_socket() and access_policy_init() touch the system.
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
 *  - [policy] depth_cap.GROUP = MM: a caller's cap is the largest cap of the
 *    capped groups it belongs to (a senior group grants more); a caller in no
 *    capped group has no cap, and neither have root and the daemon's user;
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
#include "ctl.pb-c.h"

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

struct access_cap {
	struct access_group group;
	uint32_t max_depth_um;
};

struct access_policy {
	uid_t daemon_uid;
	struct access_group logs;
	struct access_group presets;
	struct access_cap caps[CONFIG_MAX_CAPS];
	int n_caps;
	uint32_t confirm_above_um;
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

/* What an operation needs, its audit name ("presets.push") and, for the
 * refusal message, what the right is for ("read session logs").  NULL for
 * an op this daemon does not know. */
struct access_op {
	const char *name;
	enum access_right right;
	const char *purpose;
};
const struct access_op *access_op_of(Plctl__Request__OpCase op);

bool access_has_right(const struct access_policy *p, const struct caller *c,
                      enum access_right right);

/*
 * PL_OK, or PL_ERR_ACCESS with "permission denied: alice is not in group
 * penlink-logs (needed to read session logs)" in msg.  Unknown ops:
 * PL_ERR_UNSUPPORTED.
 */
int access_check(const struct access_policy *p, const struct caller *c,
                 Plctl__Request__OpCase op, char *msg, size_t msglen);

/* The caller's depth cap: true and *cap_um / *group (the group granting it)
 * when capped, false when not. */
bool access_depth_cap(const struct access_policy *p, const struct caller *c,
                      uint32_t *cap_um, const char **group);

/*
 * The clinic's policy for a preset push (on top of the pen's limits, which
 * the library and the pen check): first the caller's cap, then the
 * confirmation threshold, each for the presets this push adds or whose
 * depth it changes against old (the pen's current set; NULL: every preset
 * counts as new).  A deep preset already on the pen, left as it is, needs
 * no new confirmation - the same rule penctl applies.  PL_OK, or
 * PL_ERR_VALIDATION with e.g. `preset 3 "Scar": depth 2.00 mm is above
 * 1.50 mm; add --confirm to push it` in msg.
 */
int access_check_presets(const struct access_policy *p, const struct caller *c,
                         const struct pl_preset_set *old,
                         const struct pl_preset_set *set, bool confirm,
                         char *msg, size_t msglen);

/* "1.50", "0.25", "0.125": millimetres with at least two decimals. */
void access_format_mm(uint32_t um, char *out, size_t outlen);

#endif
