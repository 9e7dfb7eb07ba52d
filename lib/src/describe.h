/* One-line text of a frame's Envelope, for penctl --dump-frames. */
#ifndef PL_DESCRIBE_H
#define PL_DESCRIBE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Writes e.g. `id=7 read_session{id:3 offset:65536 length:16384}` into out
 * (always NUL-terminated, truncated with "..." if cap is short).  Bytes
 * fields show their length and first bytes in hex.  A payload that is not a
 * valid Envelope is described as such, with its length.  Returns strlen(out).
 */
size_t pl__describe_envelope(const uint8_t *payload, size_t len, char *out,
                             size_t cap);

#endif
