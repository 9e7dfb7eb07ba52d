/*
 * Session download over a real USB tty, as a ratio to the raw throughput of
 * the same link measured in the same run (brief §6: >= 0.90).  Run inside
 * the USB test VM by bench_usb.sh, once per USB speed, with the pen gadget
 * bound: WRITER is the gadget side (/dev/ttyGS0, where the pen writes),
 * READER the host side (/dev/ttyACM0, the kernel's cdc_acm).
 *
 * Raw: a child writes BYTES into WRITER in frame-sized blocking writes while
 * this process reads READER through poll() and non-blocking reads, the way
 * libpenlink does.  The writer keeps at most as many blocks ahead of the
 * reader as the download keeps requests in flight: the reader sends a
 * credit byte back over the same link for each block it has taken.  A
 * blast without credits outruns a reader in a slow VM and cdc_acm drops
 * what its tty cannot hold, which no reliable transfer can match; with
 * credits both sides move the same bytes with the same window, the
 * download adding only what the protocol costs.  Bytes still lost are
 * reported and the round is not a reference.
 * Download: penemu on WRITER holds one record of BYTES; libpenlink opens
 * READER (libserialport) and downloads it with pl_pen_download_session, timed
 * from the first request to the last byte, exactly as bench_download does
 * over a pty.  Rounds alternate so both see the same machine; the best of
 * each is compared.  The figures are printed last.
 *
 *   bench_usblink WRITER READER BYTES ROUNDS FLASH
 *
 * With BENCH_ONLY=download (or raw) in the environment only that side runs,
 * for profiling one of them; no figure is then printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <penlink.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "emu.h"

#define READ_SIZE 65536
#define STALL_LIMIT_MS 10000
#define QUIET_AFTER_WRITER_MS 2000

static int open_raw(const char *path, int flags)
{
	int fd = open(path, flags | O_NOCTTY);
	if (fd < 0) {
		fprintf(stderr, "bench_usblink: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	struct termios t;
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		t.c_cflag |= CLOCAL | CREAD;
		if (tcsetattr(fd, TCSANOW, &t) != 0) {
			fprintf(stderr, "bench_usblink: cannot make %s raw: %s\n", path,
			        strerror(errno));
			close(fd);
			return -1;
		}
	}
	tcflush(fd, TCIOFLUSH);
	return fd;
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* CPU seconds of a process so far (0: this one), through the benchmarks'
 * one reader (emu_cpu_ns: schedstat, else /proc stat); 0 if unknown. */
static double cpu_seconds(pid_t pid)
{
	long long ns = emu_cpu_ns(pid);
	return ns > 0 ? (double)ns / 1e9 : 0;
}

/* MB/s of WRITER -> READER, or a negative value after printing why;
 * *lost_out: bytes that never arrived; *cpu_s: CPU seconds both sides
 * spent. */
static double raw_mb_s(const char *writer, const char *reader, size_t total,
                       size_t write_size, unsigned window, size_t *lost_out,
                       double *cpu_s)
{
	int rd = open_raw(reader, O_RDWR | O_NONBLOCK);
	if (rd < 0)
		return -1;
	int wr = open_raw(writer, O_RDWR);
	if (wr < 0) {
		close(rd);
		return -1;
	}
	double host0 = cpu_seconds(0);
	long long t0 = emu_now_ns();
	pid_t pid = fork();
	if (pid < 0) {
		perror("bench_usblink: fork");
		close(rd);
		close(wr);
		return -1;
	}
	if (pid == 0) {
		char *buf = malloc(write_size);
		if (!buf)
			_exit(1);
		memset(buf, 0x5a, write_size);
		size_t credits = window;
		for (size_t sent = 0; sent < total;) {
			while (!credits) {
				char c[256];
				ssize_t r = read(wr, c, sizeof c);
				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0)
					_exit(1);
				credits += (size_t)r;
			}
			size_t n = total - sent < write_size ? total - sent : write_size;
			for (size_t off = 0; off < n;) {
				ssize_t w = write(wr, buf + off, n - off);
				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0)
					_exit(1);
				off += (size_t)w;
			}
			sent += n;
			credits--;
		}
		tcdrain(wr);
		_exit(0);
	}
	close(wr);

	static char buf[READ_SIZE];
	static const char credit_bytes[256];
	size_t got = 0, credited = 0;
	int status = 0;
	bool writer_done = false, failed = false;
	long long last = emu_now_ns();
	struct rusage writer_ru = {0};
	while (got < total) {
		struct pollfd p = {rd, POLLIN, 0};
		int n = poll(&p, 1, writer_done ? QUIET_AFTER_WRITER_MS : 100);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("bench_usblink: poll");
			failed = true;
			break;
		}
		if (n == 0 && !writer_done && wait4(pid, &status, WNOHANG, &writer_ru) == pid) {
			writer_done = true;
			if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
				fprintf(stderr, "bench_usblink: the writer on %s failed\n", writer);
				failed = true;
				break;
			}
			continue;
		}
		if (n == 0 && writer_done)
			break; /* the rest was lost on the way */
		/* Lost bytes leave the writer waiting for a credit that never
		 * comes: a quiet link after the first bytes means a loss. */
		if (n == 0 && got && (emu_now_ns() - last) / 1000000 > QUIET_AFTER_WRITER_MS) {
			kill(pid, SIGKILL);
			wait4(pid, &status, 0, &writer_ru);
			writer_done = true;
			break;
		}
		if (n == 0 && (emu_now_ns() - last) / 1000000 > STALL_LIMIT_MS) {
			fprintf(stderr, "bench_usblink: nothing from %s for %d s after %zu of %zu bytes\n",
			        reader, STALL_LIMIT_MS / 1000, got, total);
			failed = true;
			break;
		}
		if (n == 0)
			continue;
		ssize_t r = read(rd, buf, sizeof buf);
		if (r > 0) {
			got += (size_t)r;
			last = emu_now_ns();
			while (credited < got / write_size) {
				size_t k = got / write_size - credited;
				if (k > sizeof credit_bytes)
					k = sizeof credit_bytes;
				ssize_t w = write(rd, credit_bytes, k);
				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0) {
					fprintf(stderr, "bench_usblink: writing credits to %s: %s\n",
					        reader, w < 0 ? strerror(errno) : "nothing written");
					failed = true;
					break;
				}
				credited += (size_t)w;
			}
			if (failed)
				break;
		} else if (r < 0 && errno != EAGAIN && errno != EINTR) {
			fprintf(stderr, "bench_usblink: reading %s: %s\n", reader, strerror(errno));
			failed = true;
			break;
		}
	}
	if (!writer_done) {
		if (failed)
			kill(pid, SIGKILL);
		wait4(pid, &status, 0, &writer_ru);
	}
	close(rd);
	if (failed || got == 0)
		return -1;
	double secs = (double)(last - t0) / 1e9;
	*lost_out = total - got;
	double host_cpu = cpu_seconds(0) - host0;
	double pen_cpu = tv_s(writer_ru.ru_utime) + tv_s(writer_ru.ru_stime);
	*cpu_s = host_cpu + pen_cpu;
	printf("  raw (window %u x %zu bytes): %zu of %zu bytes in %.3f s (%zu lost); "
	       "CPU: host %.2f s, pen %.2f s\n",
	       window, write_size, got, total, secs, total - got, host_cpu, pen_cpu);
	return (double)got / secs / 1e6;
}

struct count_sink {
	uint64_t bytes, expect_next;
	bool out_of_order;
};

static int count(void *ud, uint64_t offset, const uint8_t *data, size_t len)
{
	struct count_sink *c = ud;
	(void)data;
	c->out_of_order |= offset != c->expect_next;
	c->expect_next = offset + len;
	c->bytes += len;
	return PL_OK;
}

/* Starts penemu on the gadget tty and opens the host tty; 0 or -1.  The
 * first start makes the record (bytes long) on the flash. */
static int pen_up(struct emu *e, struct pl_pen **pen, const char *writer,
                  const char *reader, const char *flash, const char *bytes)
{
	bool first = access(flash, F_OK) != 0;
	const char *args[] = {"--tty", writer, "--flash", flash, "--serial", "PEN-BENCH-1",
	                      first ? "--sessions" : NULL, "1", "--session-bytes", bytes,
	                      "--seed", "77", NULL};
	if (emu_start(e, args) != 0)
		return -1;
	struct pl_open_options o;
	pl_open_options_init(&o);
	o.timeout_ms = 10000;   /* software emulation is slow */
	o.handshake_ms = 30000; /* penemu makes the record before it answers */
	if (pl_pen_open(reader, &o, pen) != PL_OK) {
		fprintf(stderr, "bench_usblink: open %s: %s\n", reader, pl_error_message());
		emu_stop(e);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: bench_usblink WRITER READER BYTES ROUNDS FLASH\n");
		return 2;
	}
	const char *writer = argv[1], *reader = argv[2], *bytes = argv[3], *flash = argv[5];
	int rounds = atoi(argv[4]);
	if (strtoull(bytes, NULL, 10) == 0 || rounds <= 0) {
		fprintf(stderr, "bench_usblink: BYTES and ROUNDS must be positive\n");
		return 2;
	}
	struct emu e;
	struct pl_pen *pen;
	struct pl_session_info *s = NULL;
	size_t n = 0;
	if (pen_up(&e, &pen, writer, reader, flash, bytes) != 0)
		return 1;
	if (pl_pen_list_sessions(pen, &s, &n) != PL_OK || n != 1) {
		fprintf(stderr, "bench_usblink: list: %s\n", pl_error_message());
		return 1;
	}
	size_t frame = pl_pen_max_frame(pen);
	unsigned window = pl_pen_max_in_flight(pen);
	pl_pen_close(pen);
	emu_stop(&e);

	/* A round that lost bytes only shows that the link outran its reader:
	 * no reliable transfer can match it, so the reference is the best
	 * lossless round (the best lossy one only when every round lost). */
	double best_raw = 0, best_lossy = 0, best_dl = 0;
	/* CPU per byte moved, summed over all rounds: in a CPU-bound VM it,
	 * not the link, sets what a protocol costs against raw bytes. */
	double raw_cpu_sum = 0, raw_bytes = 0, dl_cpu_sum = 0, dl_bytes = 0;
	/* And per round, download over the raw copy beside it: their median
	 * holds still where best-of figures swing with the VM's load. */
	double ratios[64], cpu_ratios[64];
	int n_ratios = 0;
	if (rounds > 64)
		rounds = 64;
	const char *only = getenv("BENCH_ONLY");
	bool want_raw = !only || strcmp(only, "download") != 0;
	bool want_download = !only || strcmp(only, "download") == 0;
	for (int r = 1; r <= rounds; r++) {
		printf("round %d\n", r);
		size_t lost = 0;
		double raw_cpu = 0, raw = 0;
		if (want_raw &&
		    (raw = raw_mb_s(writer, reader, s[0].size, frame, window, &lost,
		                    &raw_cpu)) < 0)
			return 1;
		if (!want_download)
			continue;
		if (pen_up(&e, &pen, writer, reader, flash, bytes) != 0)
			return 1;
		struct count_sink c = {0};
		struct pl_download_options o = {.sink = count, .ud = &c};
		double host0 = cpu_seconds(0), pen0 = cpu_seconds(e.pid);
		long long t0 = emu_now_ns();
		int rc = pl_pen_download_session(pen, &s[0], 0, &o);
		long long t1 = emu_now_ns();
		double host_cpu = cpu_seconds(0) - host0, pen_cpu = cpu_seconds(e.pid) - pen0;
		struct pl_link_stats st;
		pl_pen_link_stats(pen, &st);
		pl_pen_close(pen);
		emu_stop(&e);
		if (rc != PL_OK || c.bytes != s[0].size || c.out_of_order) {
			fprintf(stderr, "bench_usblink: download failed: %s (%llu of %llu bytes)\n",
			        pl_error_message(), (unsigned long long)c.bytes,
			        (unsigned long long)s[0].size);
			return 1;
		}
		double dl = (double)c.bytes / 1e6 / ((double)(t1 - t0) / 1e9);
		/* CPU time tells a busy processor from an idle link. */
		printf("  download: %llu bytes in %.3f s, %llu frames, %llu retries; "
		       "CPU: host %.2f s, pen %.2f s\n",
		       (unsigned long long)c.bytes, (double)(t1 - t0) / 1e9,
		       (unsigned long long)st.frames_in, (unsigned long long)st.retries,
		       host_cpu, pen_cpu);
		if (only)
			continue;
		printf("  raw %.3f MB/s, download %.3f MB/s\n", raw, dl);
		raw_cpu_sum += raw_cpu;
		raw_bytes += (double)(s[0].size - lost);
		dl_cpu_sum += host_cpu + pen_cpu;
		dl_bytes += (double)c.bytes;
		if (lost == 0) {
			ratios[n_ratios] = dl / raw;
			cpu_ratios[n_ratios++] = ((host_cpu + pen_cpu) / (double)c.bytes) /
			                         (raw_cpu / (double)(s[0].size - lost));
		}
		if (lost == 0 && raw > best_raw)
			best_raw = raw;
		if (lost && raw > best_lossy)
			best_lossy = raw;
		if (dl > best_dl)
			best_dl = dl;
	}
	free(s);
	if (only) {
		printf("BENCH_ONLY=%s: no figure\n", only);
		return 0;
	}
	if (best_raw == 0) {
		printf("every raw round lost bytes: the reference is the best lossy one\n");
		best_raw = best_lossy;
	}
	double raw_ms_mb = raw_cpu_sum * 1e3 / (raw_bytes / 1e6);
	double dl_ms_mb = dl_cpu_sum * 1e3 / (dl_bytes / 1e6);
	printf("CPU per MB moved, host + pen, all rounds: raw %.1f ms, download "
	       "%.1f ms (%.2f x)\n", raw_ms_mb, dl_ms_mb, dl_ms_mb / raw_ms_mb);
	double med = n_ratios ? emu_median(ratios, n_ratios) : best_dl / best_raw;
	double cmed = n_ratios ? emu_median(cpu_ratios, n_ratios) : dl_ms_mb / raw_ms_mb;
	printf("per-round ratios over %d lossless rounds: download/raw median %.2f, "
	       "CPU per MB median %.2f x raw's\n", n_ratios, med, cmed);
	printf("%.2f %.3f %.3f %.2f\n", med, best_dl, best_raw, cmed);
	return 0;
}
