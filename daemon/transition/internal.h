/*
 * Transitional: device.c, device_work.c and usb.c still include the
 * library's internal header and call two of its former internals.  penlinkd
 * links the shared libpenlink, which exports neither, so this maps them onto
 * the public functions that replaced them.  Delete this folder (and its line
 * in daemon/CMakeLists.txt) once those files use pl_error_set() and
 * pl_time_monotonic_ms() themselves.
 */
#ifndef PLD_TRANSITION_INTERNAL_H
#define PLD_TRANSITION_INTERNAL_H

#include <penlink.h>

#define pl__fail pl_error_set
#define pl__now_ms pl_time_monotonic_ms

#endif
