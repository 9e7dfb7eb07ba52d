/*
 * Transports (lib/src/transport*.c) and discovery (lib/src/discover.c).
 *
 * The pty tests play the pen's side on the pty master, as penemu does, and
 * check what crosses the line byte for byte: a tty left in cooked mode
 * would translate CR to LF, echo input back, or eat ^C, ^D and XON/XOFF.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "penlink_test.h"
#include "penlink.h"

/* ------------------------------------------------------------------ helpers */

/* Reads exactly len bytes from t, waiting at most timeout_ms in total.
 * Returns the count read, or a negative code from the transport. */
static int t_read_all(struct pl_transport *t, uint8_t *buf, size_t len,
                      int timeout_ms)
{
	int64_t end = pl_time_monotonic_ms() + timeout_ms;
	size_t got = 0;
	while (got < len) {
		int64_t left = end - pl_time_monotonic_ms();
		if (left <= 0)
			break;
		int w = pl_transport_wait(t, false, (int)left);
		if (w < 0)
			return w;
		if (w == 0)
			continue;
		int n = pl_transport_read(t, buf + got, len - got);
		if (n < 0)
			return n;
		got += (size_t)n;
	}
	return (int)got;
}

static int t_write_all(struct pl_transport *t, const uint8_t *buf, size_t len,
                       int timeout_ms)
{
	int64_t end = pl_time_monotonic_ms() + timeout_ms;
	size_t put = 0;
	while (put < len) {
		int n = pl_transport_write(t, buf + put, len - put);
		if (n < 0)
			return n;
		put += (size_t)n;
		if (put == len)
			break;
		int64_t left = end - pl_time_monotonic_ms();
		if (left <= 0)
			break;
		int w = pl_transport_wait(t, true, (int)left);
		if (w < 0)
			return w;
	}
	return (int)put;
}

/* Reads exactly len bytes from a plain (master) descriptor. */
static size_t fd_read_all(int fd, uint8_t *buf, size_t len, int timeout_ms)
{
	int64_t end = pl_time_monotonic_ms() + timeout_ms;
	size_t got = 0;
	while (got < len) {
		int64_t left = end - pl_time_monotonic_ms();
		if (left <= 0)
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t n = read(fd, buf + got, len - got);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			break;
	}
	return got;
}

static void fd_write_all(int fd, const uint8_t *buf, size_t len)
{
	size_t put = 0;
	while (put < len) {
		ssize_t n = write(fd, buf + put, len - put);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			poll(&p, 1, 100);
			continue;
		}
		assert_true(n > 0);
		put += (size_t)n;
	}
}

/* Reads until the transport reports a failure, within timeout_ms; returns
 * the code (or 0 if it never failed). */
static int t_until_error(struct pl_transport *t, int timeout_ms)
{
	int64_t end = pl_time_monotonic_ms() + timeout_ms;
	uint8_t buf[256];
	while (pl_time_monotonic_ms() < end) {
		int w = pl_transport_wait(t, false, 50);
		if (w < 0)
			return w;
		if (w == 0)
			continue;
		int n = pl_transport_read(t, buf, sizeof buf);
		if (n < 0)
			return n;
	}
	return 0;
}

static void fill_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
}

struct pty {
	int master;
	char path[128];
};

static void pty_open(struct pty *p)
{
	p->master = posix_openpt(O_RDWR | O_NOCTTY);
	assert_true(p->master >= 0);
	assert_int_equal(grantpt(p->master), 0);
	assert_int_equal(unlockpt(p->master), 0);
	const char *name = ptsname(p->master);
	assert_non_null(name);
	snprintf(p->path, sizeof p->path, "%s", name);
	int fl = fcntl(p->master, F_GETFL);
	assert_int_equal(fcntl(p->master, F_SETFL, fl | O_NONBLOCK), 0);
}

/* ------------------------------------------------------------------ memory */

static void test_mem_round_trip(void **state)
{
	(void)state;
	struct pl_transport *a, *b;
	assert_int_equal(pl_transport_memory_pair(&a, &b), PL_OK);
	assert_int_equal(pl_transport_fd(a), -1);
	assert_string_equal(pl_transport_name(a), "memory:a");
	assert_string_equal(pl_transport_name(b), "memory:b");

	/* Nothing there yet: reads return 0, wait times out. */
	uint8_t buf[64];
	assert_int_equal(pl_transport_read(b, buf, sizeof buf), 0);
	assert_int_equal(pl_transport_wait(b, false, 0), 0);
	/* Room to write is reported when asked for. */
	assert_int_equal(pl_transport_wait(a, true, 0), PL_WAIT_WRITABLE);

	const uint8_t msg[] = {0x00, 'h', 'i', 0x0d, 0x0a, 0xff, 0x00};
	assert_int_equal(pl_transport_write(a, msg, sizeof msg), (int)sizeof msg);
	assert_int_equal(pl_transport_wait(b, false, 0), PL_WAIT_READABLE);
	assert_int_equal(pl_transport_wait(b, true, 0),
	                 PL_WAIT_READABLE | PL_WAIT_WRITABLE);
	/* Reads may come in pieces, in order. */
	assert_int_equal(pl_transport_read(b, buf, 3), 3);
	assert_int_equal(pl_transport_read(b, buf + 3, sizeof buf - 3), 4);
	assert_memory_equal(buf, msg, sizeof msg);
	assert_int_equal(pl_transport_read(b, buf, sizeof buf), 0);
	/* Nothing leaked back to the writer's own input. */
	assert_int_equal(pl_transport_read(a, buf, sizeof buf), 0);

	/* And the other direction. */
	assert_int_equal(pl_transport_write(b, "pong", 4), 4);
	assert_int_equal(pl_transport_read(a, buf, sizeof buf), 4);
	assert_memory_equal(buf, "pong", 4);

	pl_transport_close(a);
	pl_transport_close(b);
}

static void test_mem_full_partial_writes(void **state)
{
	(void)state;
	struct pl_transport *a, *b;
	assert_int_equal(pl_transport_memory_pair(&a, &b), PL_OK);

	const size_t cap = 1u << 20;
	size_t total = cap + 5000;
	uint8_t *src = malloc(total), *dst = malloc(total);
	assert_non_null(src);
	assert_non_null(dst);
	fill_pattern(src, total, 7);

	/* A write that does not fit writes what fits. */
	assert_int_equal(pl_transport_write(a, src, 1000), 1000);
	assert_int_equal(pl_transport_write(a, src + 1000, total - 1000),
	                 (int)(cap - 1000));
	/* Full: 0, and not writable. */
	assert_int_equal(pl_transport_write(a, src + cap, 1), 0);
	assert_int_equal(pl_transport_wait(a, true, 0), 0);

	/* Draining some makes room; the ring wraps around. */
	assert_int_equal(pl_transport_read(b, dst, 3000), 3000);
	assert_int_equal(pl_transport_wait(a, true, 0), PL_WAIT_WRITABLE);
	assert_int_equal(pl_transport_write(a, src + cap, total - cap), 3000);
	assert_int_equal(pl_transport_read(b, dst + 3000, total), (int)cap);
	assert_int_equal(pl_transport_write(a, src + cap + 3000, total - cap - 3000),
	                 2000);
	assert_int_equal(pl_transport_read(b, dst + cap + 3000, total), 2000);
	assert_memory_equal(dst, src, total);

	free(src);
	free(dst);
	pl_transport_close(a);
	pl_transport_close(b);
}

struct pump_state {
	struct pl_transport *peer;
	int calls;
	const char *reply; /* written by the pump, NULL: write nothing */
};

static void pump(void *ud)
{
	struct pump_state *ps = ud;
	ps->calls++;
	if (ps->reply)
		assert_int_equal(pl_transport_write(ps->peer, ps->reply,
		                                    strlen(ps->reply)),
		                 (int)strlen(ps->reply));
}

static void test_mem_pump(void **state)
{
	(void)state;
	struct pl_transport *a, *b;
	assert_int_equal(pl_transport_memory_pair(&a, &b), PL_OK);
	struct pump_state ps = {.peer = b, .reply = "answer"};
	pl_transport_memory_set_pump(a, pump, &ps);

	/* Nothing queued: the pump runs once and its bytes are seen. */
	assert_int_equal(pl_transport_wait(a, false, 1000), PL_WAIT_READABLE);
	assert_int_equal(ps.calls, 1);
	uint8_t buf[32];
	assert_int_equal(pl_transport_read(a, buf, sizeof buf), 6);
	assert_memory_equal(buf, "answer", 6);

	/* Readable already: the pump is not called. */
	assert_int_equal(pl_transport_write(b, "x", 1), 1);
	assert_int_equal(pl_transport_wait(a, false, 1000), PL_WAIT_READABLE);
	assert_int_equal(ps.calls, 1);
	assert_int_equal(pl_transport_read(a, buf, sizeof buf), 1);

	/* A pump that produces nothing: one call, then a short timeout. */
	ps.reply = NULL;
	int64_t t0 = pl_time_monotonic_ms();
	assert_int_equal(pl_transport_wait(a, false, 5000), 0);
	assert_true(pl_time_monotonic_ms() - t0 < 1000);
	assert_int_equal(ps.calls, 2);

	/* Cleared pump: never called again. */
	pl_transport_memory_set_pump(a, NULL, NULL);
	assert_int_equal(pl_transport_wait(a, false, 1), 0);
	assert_int_equal(ps.calls, 2);

	pl_transport_close(a);
	pl_transport_close(b);
}

static void test_mem_unplug(void **state)
{
	(void)state;
	struct pl_transport *a, *b;
	assert_int_equal(pl_transport_memory_pair(&a, &b), PL_OK);
	assert_int_equal(pl_transport_write(b, "lost", 4), 4);

	pl_transport_memory_unplug(a);
	uint8_t buf[8];
	/* Cut cable: even queued bytes are gone. */
	assert_int_equal(pl_transport_read(a, buf, sizeof buf), PL_ERR_UNPLUGGED);
	assert_non_null(strstr(pl_error_message(), "went away"));
	assert_non_null(strstr(pl_error_message(), "memory:a"));
	assert_int_equal(pl_transport_write(a, "x", 1), PL_ERR_UNPLUGGED);
	assert_int_equal(pl_transport_wait(a, false, 10), PL_ERR_UNPLUGGED);
	assert_int_equal(pl_transport_read(a, buf, sizeof buf), PL_ERR_UNPLUGGED);

	/* The helpers ignore handles of other backends. */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct pl_transport *s;
	assert_int_equal(pl_transport_from_fd(sv[0], true, &s), PL_OK);
	pl_transport_memory_unplug(s);
	pl_transport_memory_set_pump(s, pump, NULL);
	assert_int_equal(pl_transport_write(s, "ok", 2), 2);
	assert_int_equal(read(sv[1], buf, sizeof buf), 2);
	pl_transport_close(s);
	close(sv[1]);
	pl_transport_memory_unplug(NULL);

	pl_transport_close(a);
	pl_transport_close(b);
}

static void test_mem_close_one_end(void **state)
{
	(void)state;
	struct pl_transport *a, *b;
	assert_int_equal(pl_transport_memory_pair(&a, &b), PL_OK);
	assert_int_equal(pl_transport_write(b, "last", 4), 4);
	pl_transport_close(b);

	/* What b sent before closing still arrives, then the unplug. */
	uint8_t buf[8];
	assert_int_equal(pl_transport_wait(a, false, 10), PL_WAIT_READABLE);
	assert_int_equal(pl_transport_read(a, buf, sizeof buf), 4);
	assert_memory_equal(buf, "last", 4);
	assert_int_equal(pl_transport_read(a, buf, sizeof buf), PL_ERR_UNPLUGGED);
	assert_int_equal(pl_transport_wait(a, false, 10), PL_ERR_UNPLUGGED);
	assert_int_equal(pl_transport_write(a, "x", 1), PL_ERR_UNPLUGGED);
	pl_transport_close(a); /* frees the shared state (ASan checks) */

	/* Closing in the other order too. */
	assert_int_equal(pl_transport_memory_pair(&a, &b), PL_OK);
	pl_transport_close(a);
	assert_int_equal(pl_transport_write(b, "x", 1), PL_ERR_UNPLUGGED);
	pl_transport_close(b);
	pl_transport_close(NULL);
}

/* ------------------------------------------------------------------ custom */

struct custom {
	int reads, writes, waits, closes;
};
static int c_read(void *ctx, void *buf, size_t len)
{
	struct custom *c = ctx;
	c->reads++;
	memset(buf, 'r', len);
	return (int)len;
}
static int c_write(void *ctx, const void *buf, size_t len)
{
	(void)buf;
	((struct custom *)ctx)->writes++;
	return (int)len / 2;
}
static int c_wait(void *ctx, bool want_write, int timeout_ms)
{
	((struct custom *)ctx)->waits++;
	return want_write && timeout_ms == 7 ? PL_WAIT_WRITABLE : 0;
}
static void c_close(void *ctx)
{
	((struct custom *)ctx)->closes++;
}

static void test_custom_backend(void **state)
{
	(void)state;
	struct custom c = {0};
	struct pl_transport_ops ops = {
		.read = c_read, .write = c_write, .wait = c_wait, .close = c_close};
	struct pl_transport *t;
	assert_int_equal(pl_transport_new(&ops, &c, "usb:1-2", &t), PL_OK);
	memset(&ops, 0, sizeof ops); /* the handle keeps its own copy */
	assert_string_equal(pl_transport_name(t), "usb:1-2");
	assert_int_equal(pl_transport_fd(t), -1); /* no fd op */
	uint8_t buf[10];
	assert_int_equal(pl_transport_read(t, buf, sizeof buf), 10);
	assert_int_equal(buf[9], 'r');
	assert_int_equal(pl_transport_write(t, buf, 10), 5);
	assert_int_equal(pl_transport_wait(t, true, 7), PL_WAIT_WRITABLE);
	assert_int_equal(pl_transport_read(t, NULL, 4), PL_ERR_ARG);
	assert_int_equal(c.reads, 1);
	assert_int_equal(c.writes, 1);
	assert_int_equal(c.waits, 1);
	pl_transport_close(t);
	assert_int_equal(c.closes, 1);

	struct pl_transport_ops bad = {.read = c_read};
	t = (struct pl_transport *)&c;
	assert_int_equal(pl_transport_new(&bad, &c, "x", &t), PL_ERR_ARG);
	assert_null(t);
	assert_int_equal(pl_transport_new(NULL, &c, "x", &t), PL_ERR_ARG);
	assert_int_equal(pl_transport_wait(NULL, false, 0), PL_ERR_ARG);
	assert_int_equal(pl_transport_fd(NULL), -1);
}

/* ------------------------------------------------------------------ fd */

static void test_fd_socketpair(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct pl_transport *a, *b;
	assert_int_equal(pl_transport_from_fd(sv[0], true, &a), PL_OK);
	assert_int_equal(pl_transport_from_fd(sv[1], false, &b), PL_OK);
	assert_int_equal(pl_transport_fd(a), sv[0]);
	assert_true(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(sv[1], F_GETFL) & O_NONBLOCK);

	/* Idle: read gives 0, not an error; wait times out. */
	uint8_t buf[300000];
	assert_int_equal(pl_transport_read(b, buf, 10), 0);
	assert_int_equal(pl_transport_wait(b, false, 0), 0);
	assert_int_equal(pl_transport_wait(b, true, 0), PL_WAIT_WRITABLE);

	/* More than a socket buffer holds, so partial writes happen. */
	static uint8_t src[300000];
	fill_pattern(src, sizeof src, 3);
	size_t put = 0, got = 0;
	int64_t end = pl_time_monotonic_ms() + 5000;
	while (got < sizeof src && pl_time_monotonic_ms() < end) {
		if (put < sizeof src) {
			int n = pl_transport_write(a, src + put, sizeof src - put);
			assert_true(n >= 0);
			put += (size_t)n;
		}
		int w = pl_transport_wait(b, false, 10);
		assert_true(w >= 0);
		if (w & PL_WAIT_READABLE) {
			int n = pl_transport_read(b, buf + got, sizeof buf - got);
			assert_true(n >= 0);
			got += (size_t)n;
		}
	}
	assert_int_equal(got, sizeof src);
	assert_memory_equal(buf, src, sizeof src);

	/* Peer closes after a last message: the message first, then UNPLUGGED. */
	assert_int_equal(pl_transport_write(b, "bye", 3), 3);
	pl_transport_close(b); /* not owned: sv[1] stays open */
	assert_true(fcntl(sv[1], F_GETFD) >= 0);
	close(sv[1]);
	assert_int_equal(t_read_all(a, buf, 3, 1000), 3);
	assert_memory_equal(buf, "bye", 3);
	assert_int_equal(t_until_error(a, 1000), PL_ERR_UNPLUGGED);
	assert_non_null(strstr(pl_error_message(), "went away"));
	/* Writing to the closed peer: an error, not a SIGPIPE death. */
	assert_int_equal(pl_transport_write(a, "x", 1), PL_ERR_UNPLUGGED);
	pl_transport_close(a);
	assert_int_equal(fcntl(sv[0], F_GETFD), -1); /* owned: closed */

	assert_int_equal(pl_transport_from_fd(-1, false, &a), PL_ERR_ARG);
	assert_null(a);
}

static void test_fd_pipe_no_sigpipe(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	struct pl_transport *w;
	assert_int_equal(pl_transport_from_fd(p[1], true, &w), PL_OK);
	assert_int_equal(pl_transport_write(w, "abc", 3), 3);
	close(p[0]);
	/* SIGPIPE's default action would end this test program here. */
	assert_int_equal(pl_transport_write(w, "abc", 3), PL_ERR_UNPLUGGED);
	sigset_t pending;
	sigpending(&pending);
	assert_false(sigismember(&pending, SIGPIPE));
	pl_transport_close(w);
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void test_fd_wait_survives_signals(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct pl_transport *t;
	assert_int_equal(pl_transport_from_fd(sv[0], true, &t), PL_OK);

	/* No SA_RESTART: poll() fails with EINTR every 40 ms. */
	struct sigaction sa = {.sa_handler = on_alarm}, old_sa;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, &old_sa), 0);
	struct itimerval it = {{0, 40000}, {0, 40000}}, off = {{0, 0}, {0, 0}};
	alarms = 0;
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	int64_t t0 = pl_time_monotonic_ms();
	int w = pl_transport_wait(t, false, 300);
	int64_t took = pl_time_monotonic_ms() - t0;
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old_sa, NULL);

	/* Interrupted several times, yet one timeout of the full length: not
	 * cut short, not restarted from scratch each time. */
	assert_int_equal(w, 0);
	assert_true(alarms >= 3);
	assert_true(took >= 295);
	assert_true(took < 800);
	pl_transport_close(t);
	close(sv[1]);
}

/* ------------------------------------------------------------------ pty */

static void test_pty_raw_bytes_both_ways(void **state)
{
	(void)state;
	struct pty p;
	pty_open(&p);
	struct pl_transport *t;
	assert_int_equal(pl_transport_open(p.path, &t), PL_OK);
	assert_string_equal(pl_transport_name(t), p.path);
	int fd = pl_transport_fd(t);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);

	/* Every byte value, plus the ones a cooked tty mangles, in a row. */
	uint8_t out[256 + 8];
	for (int i = 0; i < 256; i++)
		out[i] = (uint8_t)i;
	const uint8_t tricky[8] = {0x0d, 0x0a, 0x00, 0x03, 0x04, 0x11, 0x13, 0x0d};
	memcpy(out + 256, tricky, sizeof tricky);

	/* Host to pen. */
	assert_int_equal(t_write_all(t, out, sizeof out, 1000), (int)sizeof out);
	uint8_t in[sizeof out];
	assert_int_equal(fd_read_all(p.master, in, sizeof in, 1000), sizeof in);
	assert_memory_equal(in, out, sizeof out);

	/* Pen to host. */
	fd_write_all(p.master, out, sizeof out);
	memset(in, 0, sizeof in);
	assert_int_equal(t_read_all(t, in, sizeof in, 1000), (int)sizeof in);
	assert_memory_equal(in, out, sizeof out);

	/* No echo: the pen never sees its own bytes come back. */
	uint8_t extra[16];
	assert_int_equal(fd_read_all(p.master, extra, sizeof extra, 100), 0);
	/* And nothing more arrived at the host than was sent. */
	assert_int_equal(pl_transport_read(t, extra, sizeof extra), 0);

	/* Pen sends a last frame and goes away: the bytes, then UNPLUGGED. */
	fd_write_all(p.master, (const uint8_t *)"end", 3);
	assert_int_equal(t_read_all(t, in, 3, 1000), 3);
	assert_memory_equal(in, "end", 3);
	close(p.master);
	assert_int_equal(t_until_error(t, 1000), PL_ERR_UNPLUGGED);
	assert_non_null(strstr(pl_error_message(), p.path));
	assert_non_null(strstr(pl_error_message(), "unplugged"));
	/* A hung-up tty polls readable (the kernel says so, to wake readers),
	 * so wait may say READABLE; the read then reports the unplug. */
	int w = pl_transport_wait(t, false, 100);
	assert_true(w == PL_WAIT_READABLE || w == PL_ERR_UNPLUGGED);
	assert_int_equal(pl_transport_read(t, in, sizeof in), PL_ERR_UNPLUGGED);
	assert_int_equal(pl_transport_write(t, "x", 1), PL_ERR_UNPLUGGED);
	pl_transport_close(t);
}

static void test_pty_busy(void **state)
{
	(void)state;
	struct pty p;
	pty_open(&p);
	struct pl_transport *t1, *t2;
	assert_int_equal(pl_transport_open(p.path, &t1), PL_OK);
	t2 = (struct pl_transport *)&p;
	assert_int_equal(pl_transport_open(p.path, &t2), PL_ERR_PORT_BUSY);
	assert_null(t2);
	assert_non_null(strstr(pl_error_message(), p.path));
	assert_non_null(strstr(pl_error_message(), "in use"));
	assert_int_equal(pl_transport_open_tty(p.path, &t2), PL_ERR_PORT_BUSY);

	/* The failed open must not have disturbed the first. */
	fd_write_all(p.master, (const uint8_t *)"\r\n", 2);
	uint8_t in[2];
	assert_int_equal(t_read_all(t1, in, 2, 1000), 2);
	assert_memory_equal(in, "\r\n", 2);

	/* Free again once the first closes. */
	pl_transport_close(t1);
	assert_int_equal(pl_transport_open(p.path, &t2), PL_OK);
	pl_transport_close(t2);
	close(p.master);
}

static void test_pty_wait_timeout(void **state)
{
	(void)state;
	struct pty p;
	pty_open(&p);
	struct pl_transport *t;
	assert_int_equal(pl_transport_open(p.path, &t), PL_OK);

	int64_t t0 = pl_time_monotonic_ms();
	assert_int_equal(pl_transport_wait(t, false, 150), 0);
	int64_t took = pl_time_monotonic_ms() - t0;
	assert_true(took >= 145);
	assert_true(took < 600);

	/* Zero timeout: a poll, no wait. */
	t0 = pl_time_monotonic_ms();
	assert_int_equal(pl_transport_wait(t, false, 0), 0);
	assert_true(pl_time_monotonic_ms() - t0 < 50);

	/* Writable is reported only when asked for. */
	assert_int_equal(pl_transport_wait(t, true, 100), PL_WAIT_WRITABLE);

	/* Data arriving during the wait ends it early. */
	fd_write_all(p.master, (const uint8_t *)"z", 1);
	t0 = pl_time_monotonic_ms();
	assert_int_equal(pl_transport_wait(t, false, 5000), PL_WAIT_READABLE);
	assert_true(pl_time_monotonic_ms() - t0 < 1000);

	pl_transport_close(t);
	close(p.master);
}

static void test_pty_serial_backend_refuses(void **state)
{
	(void)state;
	struct pty p;
	pty_open(&p);
	struct pl_transport *t = NULL;
	/* libserialport cannot drive a pty; it must say so, not crash. */
	int rc = pl_transport_open_serial(p.path, &t);
	assert_true(rc < 0);
	assert_null(t);
	assert_non_null(strstr(pl_error_message(), p.path));
	close(p.master);
}

/* ------------------------------------------------------------------ open errors */

static void test_open_missing(void **state)
{
	(void)state;
	struct pl_transport *t = (struct pl_transport *)state;
	assert_int_equal(pl_transport_open("/dev/ttyACM9", &t), PL_ERR_NO_PORT);
	assert_null(t);
	assert_string_equal(pl_error_message(),
	                    "no such port: /dev/ttyACM9 (is the pen plugged in?)");
	assert_int_equal(pl_transport_open("/nonexistent/dir/port", &t),
	                 PL_ERR_NO_PORT);
	assert_non_null(strstr(pl_error_message(), "/nonexistent/dir/port"));
	assert_int_equal(pl_transport_open_serial("/dev/ttyACM9", &t),
	                 PL_ERR_NO_PORT);
	assert_non_null(strstr(pl_error_message(), "/dev/ttyACM9"));
	assert_int_equal(pl_transport_open_tty("/dev/ttyACM9", &t), PL_ERR_NO_PORT);
	assert_int_equal(pl_transport_open(NULL, &t), PL_ERR_ARG);
	assert_int_equal(pl_transport_open("", &t), PL_ERR_ARG);
	assert_int_equal(pl_transport_open("/dev/ttyACM9", NULL), PL_ERR_ARG);
}

static void test_open_access_denied(void **state)
{
	(void)state;
	if (geteuid() == 0)
		skip(); /* root opens anything */
	char path[] = "/tmp/pl-transport-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(path, 0), 0);
	struct pl_transport *t;
	assert_int_equal(pl_transport_open(path, &t), PL_ERR_ACCESS);
	assert_non_null(strstr(pl_error_message(), path));
	assert_non_null(strstr(pl_error_message(), "dialout"));
	unlink(path);
}

/* ------------------------------------------------------------------ discovery */

static void test_find_ports(void **state)
{
	(void)state;
	/* This machine has no USB: nothing found, and nothing to free. */
	struct pl_port_info *ports = (struct pl_port_info *)state;
	size_t n = 99;
	assert_int_equal(pl_ports_find(PL_USB_VID, PL_USB_PID, &ports, &n), PL_OK);
	assert_int_equal(n, 0);
	assert_null(ports);
	free(ports);
	/* vid 0: any USB serial port; still none here. */
	assert_int_equal(pl_ports_find(0, 0, &ports, &n), PL_OK);
	for (size_t i = 0; i < n; i++) {
		assert_true(ports[i].path[0] == '/');
		assert_true(ports[i].bus >= -1);
	}
	free(ports);
	assert_int_equal(pl_ports_find(0, 0, NULL, &n), PL_ERR_ARG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mem_round_trip),
		cmocka_unit_test(test_mem_full_partial_writes),
		cmocka_unit_test(test_mem_pump),
		cmocka_unit_test(test_mem_unplug),
		cmocka_unit_test(test_mem_close_one_end),
		cmocka_unit_test(test_custom_backend),
		cmocka_unit_test(test_fd_socketpair),
		cmocka_unit_test(test_fd_pipe_no_sigpipe),
		cmocka_unit_test(test_fd_wait_survives_signals),
		cmocka_unit_test(test_pty_raw_bytes_both_ways),
		cmocka_unit_test(test_pty_busy),
		cmocka_unit_test(test_pty_wait_timeout),
		cmocka_unit_test(test_pty_serial_backend_refuses),
		cmocka_unit_test(test_open_missing),
		cmocka_unit_test(test_open_access_denied),
		cmocka_unit_test(test_find_ports),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
