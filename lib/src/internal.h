/* Shared by libpenlink's own files only; not installed. */
#ifndef PL_INTERNAL_H
#define PL_INTERNAL_H

#include "penlink.h"

#if defined(__GNUC__)
#define PL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PL_PRINTF(a, b)
#endif

/*
 * Records the detail of a failure for pl_error_message() in this
 * thread and returns code, so callers write
 *     return pl__fail(PL_ERR_TIMEOUT, "no answer from %s within %d ms", ...);
 */
int pl__fail(int code, const char *fmt, ...) PL_PRINTF(2, 3);

/* Monotonic milliseconds, for timeouts. */
int64_t pl__now_ms(void);

#endif
