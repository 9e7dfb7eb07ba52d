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

#endif
