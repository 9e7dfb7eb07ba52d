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
