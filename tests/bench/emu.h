/* Starts penemu on a pseudo-terminal for benchmarks and integration programs. */
#ifndef PL_BENCH_EMU_H
#define PL_BENCH_EMU_H

#include <stddef.h>
#include <sys/types.h>

struct emu {
	pid_t pid;
	char port[256];
};

/* Runs PL_PENEMU with --pty and the given extra arguments (NULL-terminated),
 * waits for the port path on its first line.  Returns 0 or -1 (message on
 * stderr). */
int emu_start(struct emu *e, const char *const *extra_args);
void emu_stop(struct emu *e);

/* Monotonic nanoseconds. */
long long emu_now_ns(void);

#endif
