/* The preset-name rule and the way messages name a preset: one copy for
 * every host layer (pl_preset_validate and pl_policy_check_push). */
#ifndef PL_VALIDATE_H
#define PL_VALIDATE_H

#include <stddef.h>

#include "internal.h"

/*
 * The name rule, on len bytes at name (its length on the wire, never
 * strlen): 1 to PL_PRESET_NAME_MAX bytes of strict UTF-8 with no NUL and
 * no control character (C0, DEL, C1), since a name is printed in tables,
 * logs and files.  w names the preset in the message ("preset 2").
 * Returns PL_OK or PL_ERR_VALIDATION with a message naming the byte and
 * the rule.
 */
int pl__preset_name_check(const char *name, size_t len, const char *w);

/* "preset 2 \"Cheek\"" into buf (cap bytes), the name cleaned for a
 * terminal, or "preset 2" when the name breaks the rule's length or
 * UTF-8.  Returns buf. */
const char *pl__preset_who(char *buf, size_t cap, const struct pl_preset *p);

#endif
