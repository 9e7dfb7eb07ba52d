/* Shared by libpenlink's own files only; not installed. */
#ifndef PL_INTERNAL_H
#define PL_INTERNAL_H

#include "penlink.h"

#if defined(__GNUC__)
#define PL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PL_PRINTF(a, b)
/*
 * Copies an option struct the caller filled (its first member is its size
 * as the caller was compiled) over dst, which holds the defaults: fields
 * the caller's build did not know keep them.  A size of 0 (a struct the
 * caller zeroed without the init function) counts as today's full size.
 */
void pl__options_copy(void *dst, size_t dst_size, const void *src);

#endif

/* The library records its failures through the public pl_error_set(), the
 * one message path for the library and the programs built on it. */
#define pl__fail pl_error_set

/*
 * Copies an option struct the caller filled (its first member is its size
 * as the caller was compiled) over dst, which holds the defaults: fields
 * the caller's build did not know keep them.  A size of 0 (a struct the
 * caller zeroed without the init function) counts as today's full size.
 */
void pl__options_copy(void *dst, size_t dst_size, const void *src);

#endif
