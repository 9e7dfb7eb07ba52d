/* Checks shared by validation and the preset file parser. */
#ifndef PL_VALIDATE_H
#define PL_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF,
 * no truncated sequences.  NUL bytes are refused too (C strings). */
bool pl__utf8_valid(const char *s, size_t len);

/* A malloc'd copy of s in which every byte that is not part of well-formed
 * UTF-8 (the rules above) becomes U+FFFD; NULL if out of memory.  For text
 * from a pen that goes into JSON, which must be UTF-8. */
char *pl__utf8_sanitize(const char *s);

/* Micrometres as millimetres with 2 decimals, or 3 when needed: "2.50",
 * "0.125".  buf must hold 24 bytes. */
const char *pl__fmt_mm(char *buf, uint32_t um);

#endif
