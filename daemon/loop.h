/*
 * penlinkd's event loop: one epoll set, one-shot timers, nothing periodic.
 * Small on purpose (in the spirit of Redis' ae.c): when nothing happens the
 * daemon sleeps in epoll_wait with no timeout at all.
 */
#ifndef PLD_LOOP_H
#define PLD_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#define LOOP_IN 1u
#define LOOP_OUT 2u
#define LOOP_ERR 4u   /* error or hang-up; always reported */

struct loop;

typedef void (*loop_fd_fn)(void *ud, int fd, unsigned events);
typedef void (*loop_timer_fn)(void *ud);

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* One watcher per fd.  events: LOOP_IN | LOOP_OUT.  Returns 0 or -errno. */
int loop_add_fd(struct loop *l, int fd, unsigned events, loop_fd_fn fn, void *ud);
int loop_mod_fd(struct loop *l, int fd, unsigned events);
/* Safe from inside any callback, including the fd's own. */
void loop_del_fd(struct loop *l, int fd);

/* One-shot timer after ms (>= 0) milliseconds.  Returns an id > 0, or 0 on
 * allocation failure.  Cancelling an id that fired or was cancelled is a
 * no-op. */
uint64_t loop_add_timer(struct loop *l, int64_t ms, loop_timer_fn fn, void *ud);
void loop_cancel_timer(struct loop *l, uint64_t id);

/* Runs until loop_stop(); returns 0, or -errno if epoll failed. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

/* Times epoll_wait returned (for the idle-wake-up benchmark). */
uint64_t loop_wakeups(const struct loop *l);

#endif
