/*
 * Session download over a pseudo-terminal, against a raw copy of the same
 * bytes over a pseudo-terminal in the same run (brief §6: throughput >= 0.90
 * of raw, CPU per MB, host + pen, <= 1.25 times raw's).
 *
 * Raw: a child process writes the bytes into a pty master in frame-sized
 * blocking writes while this process reads the slave, the direction a
 * download takes (penemu writes the master, the host reads the slave), with
 * blocking reads or with poll() + non-blocking reads (how an event loop
 * reads).
 * Download: libpenlink pulls one record of the same size from penemu.
 *
 * A round is raw, download, raw (one of each kind of read, in turn first):
 * the raw copies bracket the download, and their mean is the round's
 * reference.  The figures are the medians of the per-round ratios, with
 * their spread (lowest..highest), because on a shared machine absolute
 * rates swing by several times from one second to the next while a ratio
 * measured side by side swings far less.  CPU is each process's run time
 * from /proc (nanoseconds): this process and penemu for the download, this
 * process and the writer for raw; it hardly depends on the machine's load.
 *
 *   bench_download [MiB] [rounds]     (default 16 MiB, 11 rounds)
 *
 * With BENCH_ONLY=download (or raw) in the environment only that side runs,
 * for profiling one of them; no figure is then printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <penlink.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "emu.h"

#define MAX_ROUNDS 99

struct run {
	double mb_s;      /* throughput */
	double cpu_ms_mb; /* CPU per MB moved, both ends */
	double host_ms_mb, pen_ms_mb;
	double host_cs_mb, pen_cs_mb; /* context switches per MB */
};

static void raw_pty(size_t total, size_t write_size, bool use_poll, struct run *out)
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
	int cpu_pipe[2];
	if (pipe(cpu_pipe) != 0) {
		perror("pipe");
		exit(1);
	}

	long long host0 = emu_cpu_ns(0), hcs0 = emu_ctx_switches(0);
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
		long long cpu[2] = {emu_cpu_ns(0), emu_ctx_switches(0)};
		if (write(cpu_pipe[1], cpu, sizeof cpu) != sizeof cpu)
			_exit(1);
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
	long long host = emu_cpu_ns(0) - host0, hcs = emu_ctx_switches(0) - hcs0;
	long long pen[2] = {0, 0};
	if (read(cpu_pipe[0], pen, sizeof pen) != sizeof pen)
		pen[0] = pen[1] = 0;
	waitpid(pid, NULL, 0);
	close(cpu_pipe[0]);
	close(cpu_pipe[1]);
	close(slave);
	close(master);
	double mb = (double)total / 1e6;
	out->mb_s = mb / ((double)(t1 - t0) / 1e9);
	out->host_ms_mb = (double)host / 1e6 / mb;
	out->pen_ms_mb = (double)pen[0] / 1e6 / mb;
	out->cpu_ms_mb = out->host_ms_mb + out->pen_ms_mb;
	out->host_cs_mb = (double)hcs / mb;
	out->pen_cs_mb = (double)pen[1] / mb;
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

static void download(struct pl_pen *pen, const struct pl_session_info *s,
                     pid_t emu_pid, struct run *out)
{
	struct count_sink c = {0};
	struct pl_download_options o = {.sink = count, .ud = &c};
	if (getenv("BENCH_WINDOW"))
		o.window = (uint32_t)atoi(getenv("BENCH_WINDOW"));
	long long host0 = emu_cpu_ns(0), pen0 = emu_cpu_ns(emu_pid);
	long long hcs0 = emu_ctx_switches(0), pcs0 = emu_ctx_switches(emu_pid);
	long long t0 = emu_now_ns();
	int rc = pl_pen_download_session(pen, s, 0, &o);
	long long t1 = emu_now_ns();
	long long host = emu_cpu_ns(0) - host0, pencpu = emu_cpu_ns(emu_pid) - pen0;
	long long hcs = emu_ctx_switches(0) - hcs0, pcs = emu_ctx_switches(emu_pid) - pcs0;
	if (rc != PL_OK || c.bytes != s->size || c.out_of_order) {
		fprintf(stderr, "download failed: %s (%llu of %llu bytes)\n",
		        pl_error_message(), (unsigned long long)c.bytes,
		        (unsigned long long)s->size);
		exit(1);
	}
	double mb = (double)s->size / 1e6;
	out->mb_s = mb / ((double)(t1 - t0) / 1e9);
	out->host_ms_mb = (double)host / 1e6 / mb;
	out->pen_ms_mb = (double)pencpu / 1e6 / mb;
	out->cpu_ms_mb = out->host_ms_mb + out->pen_ms_mb;
	out->host_cs_mb = (double)hcs / mb;
	out->pen_cs_mb = (double)pcs / mb;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 16;
	int rounds = argc > 2 ? atoi(argv[2]) : 11;
	if (mib == 0 || mib > 128 || rounds <= 0 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "usage: bench_download [MiB (1..128)] [rounds (1..%d)]\n",
		        MAX_ROUNDS);
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

	double ratio[MAX_ROUNDS], cpu_ratio[MAX_ROUNDS], dl_rate[MAX_ROUNDS],
	    raw_rate[MAX_ROUNDS], dl_cpu[MAX_ROUNDS], raw_cpu[MAX_ROUNDS];
	printf("round  raw MB/s  download MB/s  ratio   CPU ms/MB raw (host+pen)  "
	       "download (host+pen)  ratio\n");
	const char *only = getenv("BENCH_ONLY");
	if (only && *only) {
		for (int r = 0; r < rounds; r++) {
			struct run x;
			if (!strcmp(only, "download"))
				download(pen, &s[0], emu.pid, &x);
			else
				raw_pty(total, frame, r % 2, &x);
			printf("%s: %.1f MB/s, CPU %.2f ms/MB (host %.2f + pen %.2f), "
			       "context switches per MB: host %.0f, pen %.0f\n", only,
			       x.mb_s, x.cpu_ms_mb, x.host_ms_mb, x.pen_ms_mb,
			       x.host_cs_mb, x.pen_cs_mb);
		}
		pl_pen_close(pen);
		emu_stop(&emu);
		return 0;
	}
	for (int r = 0; r < rounds; r++) {
		struct run ra, rb, dl;
		/* Raw, download, raw: the two raw copies (blocking reads, and
		 * poll() with non-blocking reads, in turn first) bracket the
		 * download, so a load that rises or falls during the round
		 * weighs on both sides alike. */
		raw_pty(total, frame, r % 2, &ra);
		download(pen, &s[0], emu.pid, &dl);
		raw_pty(total, frame, !(r % 2), &rb);
		struct run raw = {
		    .mb_s = (ra.mb_s + rb.mb_s) / 2,
		    .cpu_ms_mb = (ra.cpu_ms_mb + rb.cpu_ms_mb) / 2,
		    .host_ms_mb = (ra.host_ms_mb + rb.host_ms_mb) / 2,
		    .pen_ms_mb = (ra.pen_ms_mb + rb.pen_ms_mb) / 2,
		};
		ratio[r] = dl.mb_s / raw.mb_s;
		cpu_ratio[r] = dl.cpu_ms_mb / raw.cpu_ms_mb;
		dl_rate[r] = dl.mb_s;
		raw_rate[r] = raw.mb_s;
		dl_cpu[r] = dl.cpu_ms_mb;
		raw_cpu[r] = raw.cpu_ms_mb;
		printf("%5d  %8.1f  %13.1f  %5.2f   %5.2f (%5.2f+%5.2f)       "
		       "%5.2f (%5.2f+%5.2f)   %5.2f\n",
		       r + 1, raw.mb_s, dl.mb_s, ratio[r], raw.cpu_ms_mb,
		       raw.host_ms_mb, raw.pen_ms_mb, dl.cpu_ms_mb,
		       dl.host_ms_mb, dl.pen_ms_mb, cpu_ratio[r]);
	}
	struct pl_link_stats st;
	pl_pen_link_stats(pen, &st);
	printf("frames in %llu, dropped %llu, retries %llu, window %u, max frame %u\n",
	       (unsigned long long)st.frames_in,
	       (unsigned long long)(st.dropped_crc + st.dropped_cobs + st.dropped_short +
	                            st.dropped_oversize + st.dropped_version),
	       (unsigned long long)st.retries, pl_pen_max_in_flight(pen),
	       pl_pen_max_frame(pen));
	free(s);
	pl_pen_close(pen);
	emu_stop(&emu);

	double lo, hi, clo, chi;
	double m_dl = emu_median(dl_rate, rounds), m_raw = emu_median(raw_rate, rounds);
	double m_dlc = emu_median(dl_cpu, rounds), m_rawc = emu_median(raw_cpu, rounds);
	double m = emu_median(ratio, rounds);
	emu_range(ratio, rounds, &lo, &hi);
	double mc = emu_median(cpu_ratio, rounds);
	emu_range(cpu_ratio, rounds, &clo, &chi);
	printf("medians: download %.1f MB/s, raw %.1f MB/s; CPU per MB download "
	       "%.2f ms, raw %.2f ms\n", m_dl, m_raw, m_dlc, m_rawc);
	printf("download CPU per MB over pty, host + pen: %.2f x raw's (median of %d "
	       "rounds, spread %.2f..%.2f) (target <= 1.25): %s\n",
	       mc, rounds, clo, chi, mc <= 1.25 ? "PASS" : "FAIL");
	printf("session download over pty: %zu MiB, %.2f of raw pty throughput "
	       "(median of %d rounds, spread %.2f..%.2f) (target >= 0.90): %s\n",
	       mib, m, rounds, lo, hi, m >= 0.90 ? "PASS" : "FAIL");
	return 0;
}
