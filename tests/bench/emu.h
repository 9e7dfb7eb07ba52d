/* Starts penemu on a pseudo-terminal for benchmarks and integration programs. */
#ifndef PL_BENCH_EMU_H
#define PL_BENCH_EMU_H

#include <stddef.h>
#include <sys/types.h>

struct emu {
	pid_t pid;
	char port[256];
};

/* Runs penemu ($PENEMU, else PL_PENEMU) with --pty, unless the extra
 * arguments (NULL-terminated) name a --tty, and those arguments; waits for
 * the port path on its first line.  Returns 0 or -1 (message on
 * stderr). */
int emu_start(struct emu *e, const char *const *extra_args);
void emu_stop(struct emu *e);

/* Monotonic nanoseconds. */
long long emu_now_ns(void);

#endif
