/*
 * Raw throughput of one tty to another: the reference a session download
 * over USB is compared with (bench_usb.sh, inside the USB test VM).  A child
 * writes BYTES into WRITER (the gadget side, /dev/ttyGS0, where the pen
 * writes) while this process reads them from READER (/dev/ttyACM0, where the
 * host reads), both in raw mode, the way the pen and libpenlink use them:
 * the writer in frame-sized writes, the reader through poll() and
 * non-blocking reads.  The clock runs from the first write to the last byte
 * read.  The figure, in MB/s (10^6 bytes), is printed last.
 *
 *   bench_ttyraw WRITER READER BYTES [WRITE_SIZE]
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE 65536
#define STALL_LIMIT_MS 10000

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int open_raw(const char *path, int flags)
{
	int fd = open(path, flags | O_NOCTTY);
	if (fd < 0) {
		fprintf(stderr, "bench_ttyraw: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	struct termios t;
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		t.c_cflag |= CLOCAL | CREAD;
		if (tcsetattr(fd, TCSANOW, &t) != 0) {
			fprintf(stderr, "bench_ttyraw: cannot make %s raw: %s\n", path,
			        strerror(errno));
			close(fd);
			return -1;
		}
	}
	tcflush(fd, TCIOFLUSH);
	return fd;
}

static int parse_size(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > (1ull << 32)) {
		fprintf(stderr, "bench_ttyraw: '%s' is not a byte count (1..4 GiB)\n", s);
		return -1;
	}
	*out = (size_t)v;
	return 0;
}

int main(int argc, char **argv)
{
	size_t total, write_size = 32768;
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: bench_ttyraw WRITER READER BYTES [WRITE_SIZE]\n");
		return 2;
	}
	if (parse_size(argv[3], &total) || (argc == 5 && parse_size(argv[4], &write_size)))
		return 2;

	int rd = open_raw(argv[2], O_RDONLY | O_NONBLOCK);
	if (rd < 0)
		return 1;
	int wr = open_raw(argv[1], O_WRONLY);
	if (wr < 0)
		return 1;

	long long t0 = now_ns();
	pid_t pid = fork();
	if (pid < 0) {
		perror("bench_ttyraw: fork");
		return 1;
	}
	if (pid == 0) {
		char *buf = malloc(write_size);
		if (!buf)
			_exit(1);
		memset(buf, 0x5a, write_size);
		size_t sent = 0;
		while (sent < total) {
			size_t n = total - sent < write_size ? total - sent : write_size;
			ssize_t w = write(wr, buf, n);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				_exit(1);
			sent += (size_t)w;
		}
		tcdrain(wr);
		_exit(0);
	}
	close(wr);

	static char buf[READ_SIZE];
	size_t got = 0;
	int rc = 0;
	while (got < total) {
		struct pollfd p = {rd, POLLIN, 0};
		int n = poll(&p, 1, STALL_LIMIT_MS);
		if (n == 0) {
			fprintf(stderr, "bench_ttyraw: nothing from %s for %d s after %zu of %zu bytes\n",
			        argv[2], STALL_LIMIT_MS / 1000, got, total);
			rc = 1;
			break;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("bench_ttyraw: poll");
			rc = 1;
			break;
		}
		ssize_t r = read(rd, buf, sizeof buf);
		if (r > 0)
			got += (size_t)r;
		else if (r < 0 && errno != EAGAIN && errno != EINTR) {
			fprintf(stderr, "bench_ttyraw: reading %s: %s\n", argv[2], strerror(errno));
			rc = 1;
			break;
		}
	}
	long long t1 = now_ns();
	if (rc)
		kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	if (!rc && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		fprintf(stderr, "bench_ttyraw: the writer on %s failed\n", argv[1]);
		rc = 1;
	}
	close(rd);
	if (rc)
		return rc;
	double secs = (double)(t1 - t0) / 1e9;
	printf("raw %s -> %s: %zu bytes in %.3f s\n", argv[1], argv[2], total, secs);
	printf("%.3f\n", (double)total / secs / 1e6);
	return 0;
}
