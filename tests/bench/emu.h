/* Starts penemu on a pseudo-terminal for benchmarks and integration
 * programs; and the measuring helpers the benchmarks share. */
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

/*
 * CPU time (user + system) a process has used so far, in nanoseconds:
 * /proc/PID/schedstat's run time (nanosecond resolution), else utime +
 * stime from /proc/PID/stat (clock ticks).  pid 0 is this process.  The
 * processes measured are single-threaded.  -1 if unknown.
 */
long long emu_cpu_ns(pid_t pid);

/* Context switches (voluntary and not) of a process so far; pid 0 is this
 * process.  -1 if unknown. */
long long emu_ctx_switches(pid_t pid);

/* Median of n values (sorts v); 0 for n == 0. */
double emu_median(double *v, int n);

/* Sorts v and gives its smallest and largest value. */
void emu_range(double *v, int n, double *lo, double *hi);

#endif
