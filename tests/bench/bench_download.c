/*
 * Session download over a pseudo-terminal, as a ratio to the raw throughput
 * of a pseudo-terminal measured in the same run (brief §6: >= 0.90).
 *
 * Raw: a child process writes the same number of bytes into a pty master in
 * frame-sized writes while this process reads the slave, the direction a
 * download takes (penemu writes the master, the host reads the slave).  It
 * is measured twice per round, with blocking reads and with poll() +
 * non-blocking reads (how an event loop reads), and the faster counts: in a
 * VM the cost of waking a halted CPU swings the blocking figure widely, and
 * the reference must be the best the pty can do, not the worst.
 * Download: libpenlink pulls one record of the same size from penemu.
 * Rounds alternate so both see the same machine load; the best of each is
 * compared.
 *
 *   bench_download [MiB] [rounds]     (default 16 MiB, 3 rounds)
 */
#include <errno.h>
#include <fcntl.h>
#include <penlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "emu.h"

static double raw_pty_mb_s(size_t total, size_t write_size, bool use_poll)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) || unlockpt(master)) {
		perror("posix_openpt");
		exit(1);
	}
	int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
	struct termios t;
	tcgetattr(slave, &t);
	cfmakeraw(&t);
	tcsetattr(slave, TCSANOW, &t);

	long long t0 = emu_now_ns();
	pid_t pid = fork();
	if (pid == 0) {
		char *buf = malloc(write_size);
		memset(buf, 0x5a, write_size);
		size_t sent = 0;
		while (sent < total) {
			size_t n = total - sent < write_size ? total - sent : write_size;
			ssize_t w = write(master, buf, n);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				_exit(1);
			sent += (size_t)w;
		}
		_exit(0);
	}
	static char rbuf[65536];
	size_t got = 0;
	if (use_poll)
		fcntl(slave, F_SETFL, fcntl(slave, F_GETFL) | O_NONBLOCK);
	while (got < total) {
		if (use_poll) {
			struct pollfd p = {.fd = slave, .events = POLLIN};
			poll(&p, 1, -1);
		}
		ssize_t r = read(slave, rbuf, sizeof rbuf);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0) {
			perror("read pty");
			exit(1);
		}
		got += (size_t)r;
	}
	long long t1 = emu_now_ns();
	waitpid(pid, NULL, 0);
	close(slave);
	close(master);
	return (double)total / 1e6 / ((double)(t1 - t0) / 1e9);
}

struct count_sink {
	uint64_t bytes;
	uint64_t expect_next;
	int out_of_order;
};

static int count(void *ud, uint64_t offset, const uint8_t *data, size_t len)
{
	struct count_sink *c = ud;
	(void)data;
	if (offset != c->expect_next)
		c->out_of_order = 1;
	c->expect_next = offset + len;
	c->bytes += len;
	return PL_OK;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 16;
	int rounds = argc > 2 ? atoi(argv[2]) : 3;
	if (mib == 0 || rounds <= 0) {
		fprintf(stderr, "usage: bench_download [MiB] [rounds]\n");
		return 2;
	}
	char bytes_arg[32];
	snprintf(bytes_arg, sizeof bytes_arg, "%zu", mib << 20);
	const char *args[] = {"--sessions", "1", "--session-bytes", bytes_arg,
	                      "--seed", "7", NULL};
	struct emu emu;
	if (emu_start(&emu, args) != 0)
		return 1;

	struct pl_pen *pen;
	int rc = pl_pen_open(emu.port, NULL, &pen);
	if (rc != PL_OK) {
		fprintf(stderr, "open: %s\n", pl_error_message());
		emu_stop(&emu);
		return 1;
	}
	struct pl_session_info *s;
	size_t n;
	rc = pl_pen_list_sessions(pen, &s, &n);
	if (rc != PL_OK || n < 1) {
		fprintf(stderr, "list: %s\n", pl_error_message());
		return 1;
	}
	size_t total = s[0].size;
	size_t frame = pl_pen_max_frame(pen);

	double best_raw = 0, best_dl = 0;
	printf("round  raw pty MB/s  download MB/s\n");
	for (int r = 0; r < rounds; r++) {
		double raw = raw_pty_mb_s(total, frame, false);
		double raw_poll = raw_pty_mb_s(total, frame, true);
		if (raw_poll > raw)
			raw = raw_poll;
		struct count_sink c = {0};
		struct pl_download_options o = {.sink = count, .ud = &c};
		long long t0 = emu_now_ns();
		rc = pl_pen_download_session(pen, &s[0], 0, &o);
		long long t1 = emu_now_ns();
		if (rc != PL_OK || c.bytes != total || c.out_of_order) {
			fprintf(stderr, "download failed: %s (%llu of %zu bytes)\n",
			        pl_error_message(), (unsigned long long)c.bytes, total);
			return 1;
		}
		double dl = (double)total / 1e6 / ((double)(t1 - t0) / 1e9);
		printf("%5d  %12.1f  %13.1f\n", r + 1, raw, dl);
		if (raw > best_raw)
			best_raw = raw;
		if (dl > best_dl)
			best_dl = dl;
	}
	struct pl_link_stats st;
	pl_pen_link_stats(pen, &st);
	printf("frames in %llu, dropped %llu, window %u, max frame %u\n",
	       (unsigned long long)st.frames_in,
	       (unsigned long long)(st.dropped_crc + st.dropped_cobs + st.dropped_short +
	                            st.dropped_oversize + st.dropped_version),
	       pl_pen_max_in_flight(pen), pl_pen_max_frame(pen));
	free(s);
	pl_pen_close(pen);
	emu_stop(&emu);

	double ratio = best_dl / best_raw;
	printf("session download over pty: %zu MiB at %.1f MB/s vs raw pty %.1f MB/s: ratio %.2f (target >= 0.90): %s\n",
	       mib, best_dl, best_raw, ratio, ratio >= 0.90 ? "PASS" : "FAIL");
	return 0;
}
