/* The clinic's preset policy: depth caps per group and the confirmation
 * threshold, decided here for penlinkd and penctl alike. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "preset_diff.h"
#include "validate.h"

#define POLICY_MAX_CAPS 16
#define POLICY_GROUP_MAX 64

struct pl_policy {
	uint32_t confirm_above_um;
	size_t n_caps;
	struct {
		char group[POLICY_GROUP_MAX];
		uint32_t depth_um;
	} caps[POLICY_MAX_CAPS];
};

int pl_policy_new(struct pl_policy **out)
{
	if (!out)
		return pl__fail(PL_ERR_ARG, "pl_policy_new: missing argument");
	*out = calloc(1, sizeof **out);
	if (!*out)
		return pl__fail(PL_ERR_MEM, "out of memory");
	(*out)->confirm_above_um = PL_POLICY_CONFIRM_ABOVE_UM;
	return PL_OK;
}

void pl_policy_free(struct pl_policy *policy)
{
	free(policy);
}

static int depth_value(const char *key, const char *value, uint32_t *um)
{
	if (pl_depth_parse_mm(value, um) != PL_OK)
		return pl__fail(PL_ERR_PARSE,
		                "[policy] %s = \"%.40s\": expected a depth in "
		                "millimetres, e.g. 1.5",
		                key, value);
	return PL_OK;
}

int pl_policy_set(struct pl_policy *policy, const char *key, const char *value)
{
	static const char cap_prefix[] = "depth_cap.";
	uint32_t um;

	if (!policy || !key || !value)
		return pl__fail(PL_ERR_ARG, "pl_policy_set: missing argument");
	if (strcmp(key, "confirm_above_mm") == 0) {
		if (depth_value(key, value, &um) != PL_OK)
			return PL_ERR_PARSE;
		policy->confirm_above_um = um;
		return PL_OK;
	}
	if (strncmp(key, cap_prefix, sizeof cap_prefix - 1) != 0)
		return pl__fail(PL_ERR_PARSE,
		                "[policy] unknown key \"%.40s\" (known: "
		                "confirm_above_mm, depth_cap.GROUP)",
		                key);
	const char *group = key + sizeof cap_prefix - 1;
	size_t glen = strlen(group);
	if (glen == 0 || glen >= POLICY_GROUP_MAX)
		return pl__fail(PL_ERR_PARSE,
		                "[policy] %.80s: the group name must be 1 to %d bytes",
		                key, POLICY_GROUP_MAX - 1);
	if (depth_value(key, value, &um) != PL_OK)
		return PL_ERR_PARSE;
	size_t i = 0;
	while (i < policy->n_caps && strcmp(policy->caps[i].group, group) != 0)
		i++;
	if (i == POLICY_MAX_CAPS)
		return pl__fail(PL_ERR_PARSE,
		                "[policy] %.80s: at most %d groups may have a cap", key,
		                POLICY_MAX_CAPS);
	memcpy(policy->caps[i].group, group, glen + 1);
	policy->caps[i].depth_um = um;
	if (i == policy->n_caps)
		policy->n_caps++;
	return PL_OK;
}

uint32_t pl_policy_confirm_above_um(const struct pl_policy *policy)
{
	return policy ? policy->confirm_above_um : PL_POLICY_CONFIRM_ABOVE_UM;
}

int pl_policy_cap(const struct pl_policy *policy, size_t i, const char **group,
                  uint32_t *depth_um)
{
	if (!policy || !group || !depth_um)
		return pl__fail(PL_ERR_ARG, "pl_policy_cap: missing argument");
	if (i >= policy->n_caps)
		return PL_ERR_NOT_FOUND;
	*group = policy->caps[i].group;
	*depth_um = policy->caps[i].depth_um;
	return PL_OK;
}

static bool member(const struct pl_policy_actor *a, const char *group)
{
	for (size_t i = 0; i < a->n_groups; i++)
		if (a->groups[i] && strcmp(a->groups[i], group) == 0)
			return true;
	return false;
}

/* The largest cap of the capped groups the actor belongs to (a senior
 * group grants more); false when none applies. */
static bool actor_cap(const struct pl_policy *p, const struct pl_policy_actor *a,
                      uint32_t *cap, const char **group)
{
	bool capped = false;
	if (a->uncapped)
		return false;
	for (size_t i = 0; i < p->n_caps; i++) {
		if (!member(a, p->caps[i].group))
			continue;
		if (!capped || p->caps[i].depth_um > *cap) {
			*cap = p->caps[i].depth_um;
			*group = p->caps[i].group;
		}
		capped = true;
	}
	return capped;
}

/* Does this push add pr, or change its depth, against old?  The diff's
 * own rule (pl_preset_set_diff), so the policy and the diff a user is
 * shown never disagree on what a push changes. */
static bool depth_is_new(const struct pl_preset_set *old,
                         const struct pl_preset *pr)
{
	return pl__preset_change_of(old, pr) &
	       (PL__PRESET_NEW | PL_PRESET_FIELD_DEPTH);
}

/* The first preset deeper than limit that this push introduces. */
static const struct pl_preset *first_above(const struct pl_preset_set *old,
                                           const struct pl_preset_set *next,
                                           uint32_t limit)
{
	size_t n = next->count < PL_MAX_PRESETS ? next->count : PL_MAX_PRESETS;
	for (size_t i = 0; i < n; i++) {
		const struct pl_preset *pr = &next->presets[i];
		if (pr->depth_um > limit && depth_is_new(old, pr))
			return pr;
	}
	return NULL;
}

/* Every name of next by the library's one name rule: a push is refused
 * the same way, with the same message, whichever layer sees it first. */
static int check_names(const struct pl_preset_set *next)
{
	char w[4 * PL_PRESET_NAME_MAX + 32];
	size_t n = next->count < PL_MAX_PRESETS ? next->count : PL_MAX_PRESETS;
	for (size_t i = 0; i < n; i++) {
		const struct pl_preset *pr = &next->presets[i];
		int rc = pl__preset_name_check(pr->name,
		                               strnlen(pr->name, sizeof pr->name),
		                               pl__preset_who(w, sizeof w, pr));
		if (rc)
			return rc;
	}
	return PL_OK;
}

int pl_policy_check_push(const struct pl_policy *policy,
                         const struct pl_policy_actor *actor,
                         const struct pl_preset_set *old,
                         const struct pl_preset_set *next, bool confirmed)
{
	char w[4 * PL_PRESET_NAME_MAX + 32], d[PL_MM_TEXT_MAX], lim[PL_MM_TEXT_MAX];
	const struct pl_preset *pr;
	const char *group = NULL;
	uint32_t cap = 0;

	if (!policy || !actor || !next)
		return pl__fail(PL_ERR_ARG, "pl_policy_check_push: missing argument");
	int rc = check_names(next);
	if (rc)
		return rc;
	/* Caps first: a push the user may not make at all should not first
	 * ask for a confirmation. */
	if (actor_cap(policy, actor, &cap, &group) &&
	    (pr = first_above(old, next, cap)) != NULL)
		return pl__fail(PL_ERR_POLICY,
		                "%s: depth %s mm is above %s's cap of %s mm (group %s)",
		                pl__preset_who(w, sizeof w, pr),
		                pl_depth_format_mm(pr->depth_um, PL_MM_FIXED, d),
		                actor->user ? actor->user : "this user",
		                pl_depth_format_mm(cap, PL_MM_FIXED, lim), group);
	if (confirmed)
		return PL_OK;
	pr = first_above(old, next, policy->confirm_above_um);
	if (!pr)
		return PL_OK;
	return pl__fail(PL_ERR_POLICY,
	                "%s: depth %s mm is above %s mm; add --confirm to push it",
	                pl__preset_who(w, sizeof w, pr),
	                pl_depth_format_mm(pr->depth_um, PL_MM_FIXED, d),
	                pl_depth_format_mm(policy->confirm_above_um, PL_MM_FIXED,
	                                   lim));
}
