/*
 * penlink_test.h — hooks for libpenlink's own tests, NOT installed and not
 * exported from libpenlink.so: tests link the static library.  Nothing in
 * penctl or penlinkd may use them.
 */
#ifndef PENLINK_TEST_H
#define PENLINK_TEST_H

#include "penlink.h"

/*
 * Two connected in-memory ends.  Nothing blocks: when an end waits for
 * input that is not there, its pump callback (if set) runs once so a test
 * can drive the peer (e.g. a firmware endpoint) in the same thread.
 */
int pl_transport_memory_pair(struct pl_transport **a, struct pl_transport **b);
void pl_transport_memory_set_pump(struct pl_transport *t,
                                  void (*pump)(void *ud), void *ud);
/* Makes the peer look unplugged to t (reads and writes fail UNPLUGGED). */
void pl_transport_memory_unplug(struct pl_transport *t);

/*
 * For firmware testing only: pl_pen_put_presets() without the host-side
 * validation, so a test can prove the pen refuses bad presets on its own
 *.  Revision check and read-back as
 * in pl_pen_put_presets().
 */
int pl_pen_put_presets_unchecked(struct pl_pen *pen,
                             const struct pl_preset_set *set,
                             struct pl_preset_set *result);

/*
 * Which CRC-32 code pl_crc32() uses in this process, so a test reaches
 * each: PL_TEST_CRC_FASTEST (the default: the faster of the two on this
 * CPU, measured at the next call), PL_TEST_CRC_CLMUL (carry-less
 * multiplication, x86-64 with PCLMULQDQ) or PL_TEST_CRC_TABLE (zlib's).
 * Returns 0, or -1 when this build or CPU has no such code (nothing
 * changes then).
 */
enum pl_test_crc { PL_TEST_CRC_FASTEST, PL_TEST_CRC_CLMUL, PL_TEST_CRC_TABLE };
int pl_test_crc32_use(enum pl_test_crc which);

#endif
