/* What a push changes against the pen's set, preset by preset: one rule
 * for pl_preset_set_diff and pl_policy_check_push ("which presets this
 * push adds or whose depth it changes"). */
#ifndef PL_PRESET_DIFF_H
#define PL_PRESET_DIFF_H

#include "internal.h"

/* Set in pl__preset_change_of's answer when old has no preset with p's id. */
#define PL__PRESET_NEW (1u << 31)

/*
 * How pushing p changes old (the pen's set; NULL or empty: p is new):
 * PL__PRESET_NEW if old has no preset with p's id, else the
 * PL_PRESET_FIELD_* bits of the fields that differ from old's first preset
 * with that id (0: unchanged).  Only the first PL_MAX_PRESETS presets of old
 * are looked at.  Never fails.
 */
unsigned pl__preset_change_of(const struct pl_preset_set *old,
                              const struct pl_preset *p);

#endif
