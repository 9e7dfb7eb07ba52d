/* What penctl's backends (penctl.h: direct in backend.c, penlinkd's in
 * daemon.c, central's in backend_central.c) share among themselves; the
 * commands see only struct backend_ops. */
#ifndef PENCTL_BACKEND_H
#define PENCTL_BACKEND_H

#include "penctl.h"

/* ------------------------------------------------------------------ no pen at hand
 *
 * penlinkd and central have no pen on the line: ping, trace and waiting
 * for a pen's events are refused, a fetch_to_file() starts afresh, and no
 * pen's events come.  A backend whose context starts with a struct
 * penless points those operations at these; they refuse through its
 * refuse(), which names the operation and says where it can be done.
 */
struct penless {
	int (*refuse)(const char *what);
};

int penless_ping(void *ctx, uint32_t *rtt_us);
int penless_trace(void *ctx, bool enable, uint32_t level);
void penless_set_event_handler(void *ctx, pl_event_fn fn, void *ud);
int penless_poll(void *ctx, int timeout_ms);
uint64_t penless_resume_point(void *ctx, const char *path);

/* ------------------------------------------------------------------ an archive's copy
 *
 * fetch_to_file() of an archive (penlinkd's, central's): path is made
 * afresh, never one found there (a link planted at the predictable name is
 * removed, not followed, and O_EXCL makes sure of it); fill() writes the
 * record through fd; the file is made durable and what is on the disk,
 * not what went through memory, is checked against sha256
 * (PL_ERR_DIGEST).  On any failure path is removed.
 */
int archive_copy_to_file(const char *path, const uint8_t sha256[32],
                         int (*fill)(void *ud, int fd), void *ud);
/* All of data into fd (a file at path, for messages), across short writes
 * and signals. */
int fd_write_all(int fd, const char *path, const uint8_t *data, size_t len);

#endif
