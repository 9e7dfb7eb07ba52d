#include "emu.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PL_PENEMU
#error "PL_PENEMU must name the penemu binary"
#endif

long long emu_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int emu_start(struct emu *e, const char *const *extra_args)
{
	/* $PENEMU: where penemu is when this runs elsewhere than it was
	 * built (the USB test VM). */
	const char *bin = getenv("PENEMU") ? getenv("PENEMU") : PL_PENEMU;
	const char *argv[32] = {bin};
	size_t n = 1;
	bool tty = false;
	for (size_t i = 0; extra_args && extra_args[i]; i++)
		tty = tty || strcmp(extra_args[i], "--tty") == 0;
	if (!tty)
		argv[n++] = "--pty";
	for (size_t i = 0; extra_args && extra_args[i] && n < 31; i++)
		argv[n++] = extra_args[i];
	argv[n] = NULL;

	int out[2];
	if (pipe(out) != 0) {
		perror("pipe");
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return -1;
	}
	if (pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		close(out[0]);
		close(out[1]);
		execv(argv[0], (char *const *)argv);
		perror(argv[0]);
		_exit(127);
	}
	close(out[1]);
	/* The first line is the port; penemu may take a while to generate
	 * large sessions before it prints it. */
	size_t len = 0;
	while (len < sizeof e->port - 1) {
		ssize_t r = read(out[0], e->port + len, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (e->port[len] == '\n')
			break;
		len++;
	}
	e->port[len] = '\0';
	close(out[0]);
	e->pid = pid;
	if (len == 0) {
		fprintf(stderr, "penemu did not print its port\n");
		emu_stop(e);
		return -1;
	}
	return 0;
}

void emu_stop(struct emu *e)
{
	if (e->pid > 0) {
		kill(e->pid, SIGTERM);
		waitpid(e->pid, NULL, 0);
		e->pid = 0;
	}
}

static long long read_schedstat(pid_t pid)
{
	char path[64];
	if (pid)
		snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
	else
		snprintf(path, sizeof path, "/proc/self/schedstat");
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	unsigned long long run = 0;
	int ok = fscanf(f, "%llu", &run) == 1;
	fclose(f);
	return ok ? (long long)run : -1;
}

static long long read_stat(pid_t pid)
{
	char path[64], buf[1024];
	if (pid)
		snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	else
		snprintf(path, sizeof path, "/proc/self/stat");
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields 14 and 15 (utime, stime) follow the ")" that ends the name. */
	const char *p = strrchr(buf, ')');
	unsigned long long ut = 0, st = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
	                 &ut, &st) != 2)
		return -1;
	return (long long)((ut + st) * (1000000000ull / (unsigned long long)sysconf(_SC_CLK_TCK)));
}

long long emu_cpu_ns(pid_t pid)
{
	long long v = read_schedstat(pid);
	return v >= 0 ? v : read_stat(pid);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double emu_median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void emu_range(double *v, int n, double *lo, double *hi)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	*lo = n > 0 ? v[0] : 0;
	*hi = n > 0 ? v[n - 1] : 0;
}

long long emu_ctx_switches(pid_t pid)
{
	char path[64], line[256];
	if (pid)
		snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	else
		snprintf(path, sizeof path, "/proc/self/status");
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long long sum = 0, v;
	while (fgets(line, sizeof line, f))
		if ((sscanf(line, "voluntary_ctxt_switches: %lld", &v) == 1) ||
		    (sscanf(line, "nonvoluntary_ctxt_switches: %lld", &v) == 1))
			sum += v;
	fclose(f);
	return sum;
}
