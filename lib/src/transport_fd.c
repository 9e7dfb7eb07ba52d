/*
 * File-descriptor transport: pseudo-terminals (penemu --pty) and ttys that
 * libserialport cannot drive, opened by path; sockets and pipes handed over
 * as descriptors (pl_transport_from_fd).  Also holds the helpers the
 * libserialport backend shares once it has a descriptor (transport.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "transport.h"

struct fd_ctx {
	struct pl__port base; /* first: the shared wait and fd take it */
	bool own;
	bool is_socket;
	bool is_fifo;
};

int pl__fail_unplugged(const char *name)
{
	return pl__fail(PL_ERR_UNPLUGGED, "the pen on %s went away (unplugged?)",
	                name);
}

int pl__fail_open_errno(int err, const char *path)
{
	switch (err) {
	case ENOENT:
	case ENOTDIR:
	case ENXIO:
	case ENODEV:
		return pl__fail(PL_ERR_NO_PORT, "no such port: %s (is the pen plugged in?)",
		                path);
	case EACCES:
	case EPERM:
		return pl__fail(PL_ERR_ACCESS,
		                "permission denied opening %s: add your user to the "
		                "group that owns it (usually dialout or plugdev), "
		                "then log in again",
		                path);
	case EBUSY:
		return pl__fail(PL_ERR_PORT_BUSY, "port %s is in use by another program",
		                path);
	case ENOMEM:
		return pl__fail(PL_ERR_MEM, "out of memory opening %s", path);
	default:
		return pl__fail(PL_ERR_IO, "cannot open %s: %s", path, strerror(err));
	}
}

/* ------------------------------------------------------------------ what a port is */

/* What a file that is not a character device is, for a refusal. */
static const char *file_kind(mode_t m)
{
	return S_ISDIR(m)    ? "a directory"
	       : S_ISREG(m)  ? "a regular file"
	       : S_ISBLK(m)  ? "a block device"
	       : S_ISFIFO(m) ? "a FIFO"
	       : S_ISSOCK(m) ? "a socket"
	       : S_ISLNK(m)  ? "a symbolic link"
	                     : "not a device";
}

/*
 * The tty driver of rdev as /proc/tty/drivers lists it: its device name
 * ("/dev/ttyS") and type ("serial", "pty:slave", "console", "system...").
 * False when the kernel lists no tty driver for it (or /proc is absent).
 */
static bool tty_driver(dev_t rdev, char *name, size_t name_len, char *type,
                       size_t type_len)
{
	FILE *f = fopen("/proc/tty/drivers", "re");
	if (!f)
		return false;
	char line[256];
	bool found = false;
	unsigned maj = major(rdev), min = minor(rdev);
	while (!found && fgets(line, sizeof line, f)) {
		char drv[64], dev[64], majs[32], mins[32], typ[64];
		if (sscanf(line, "%63s %63s %31s %31s %63s", drv, dev, majs, mins,
		           typ) != 5)
			continue;
		unsigned a, b, lo, hi;
		int n = sscanf(majs, "%u-%u", &a, &b);
		if (n < 1)
			continue;
		if (n == 1)
			b = a;
		n = sscanf(mins, "%u-%u", &lo, &hi);
		if (n < 1)
			continue;
		if (n == 1)
			hi = lo;
		if (maj < a || maj > b || min < lo || min > hi)
			continue;
		snprintf(name, name_len, "%s", dev);
		snprintf(type, type_len, "%s", typ);
		found = true;
	}
	fclose(f);
	return found;
}

/* The character devices /proc/devices names for major maj ("mem",
 * "misc"), or "" if it lists none. */
static void chr_driver(unsigned maj, char *name, size_t name_len)
{
	name[0] = 0;
	FILE *f = fopen("/proc/devices", "re");
	if (!f)
		return;
	char line[128];
	bool chr = false;
	while (fgets(line, sizeof line, f)) {
		if (!strncmp(line, "Character devices:", 18)) {
			chr = true;
			continue;
		}
		if (!strncmp(line, "Block devices:", 14))
			break;
		unsigned m;
		char drv[64];
		if (chr && sscanf(line, "%u %63s", &m, drv) == 2 && m == maj) {
			snprintf(name, name_len, "%s", drv);
			break;
		}
	}
	fclose(f);
}

/*
 * True if rdev is a serial kind of tty (see transport.h); else false with
 * why not in why: " of mem, not a tty", ", a tty of kind console (...)".
 */
static bool serial_kind(dev_t rdev, char *why, size_t why_len)
{
	unsigned maj = major(rdev);
	why[0] = 0;
	if (maj == 166 || maj == 188 || (maj >= 136 && maj <= 143))
		return true; /* ttyACM, ttyUSB, pts: no need to ask /proc */
	char dev[64], type[64];
	if (tty_driver(rdev, dev, sizeof dev, type, sizeof type)) {
		if (!strcmp(type, "serial") || !strcmp(type, "pty:slave"))
			return true;
		snprintf(why, why_len, ", a tty of kind %s (%s), not a serial line",
		         type, dev);
		return false;
	}
	char drv[64];
	chr_driver(maj, drv, sizeof drv);
	snprintf(why, why_len, "%s%s, not a tty", drv[0] ? " of " : "", drv);
	return false;
}

int pl__port_check_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return pl__fail_open_errno(errno, path);
	/* Files are opened first (harmless), so that a port the user may
	 * not open says so; a folder cannot be opened read-write at all. */
	if (S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode))
		return PL_OK;
	if (!S_ISCHR(st.st_mode))
		return pl__fail(PL_ERR_NO_PORT, "%s is not a serial port (%s)", path,
		                file_kind(st.st_mode));
	char why[256];
	if (!serial_kind(st.st_rdev, why, sizeof why))
		return pl__fail(PL_ERR_NO_PORT,
		                "%s is not a serial port (character device %u:%u%s)",
		                path, major(st.st_rdev), minor(st.st_rdev), why);
	return PL_OK;
}

int pl__port_check_open(const char *fn, const char *path,
                        struct pl_transport **out)
{
	if (!out)
		return pl__fail(PL_ERR_ARG, "%s: out is NULL", fn);
	*out = NULL;
	if (!path || !*path)
		return pl__fail(PL_ERR_ARG, "no port given");
	return pl__port_check_path(path);
}

int pl__port_check_fd(int fd, const char *path)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return pl__fail(PL_ERR_IO, "cannot check %s: %s", path, strerror(errno));
	if (!S_ISCHR(st.st_mode))
		return pl__fail(PL_ERR_NO_PORT, "%s is not a serial port (%s)", path,
		                file_kind(st.st_mode));
	unsigned maj = major(st.st_rdev), min = minor(st.st_rdev);
	char why[256];
	/* Checked again on the descriptor: the path may have changed since. */
	if (!serial_kind(st.st_rdev, why, sizeof why))
		return pl__fail(PL_ERR_NO_PORT,
		                "%s is not a serial port (character device %u:%u%s)",
		                path, maj, min, why);
	if (!isatty(fd))
		return pl__fail(PL_ERR_NO_PORT,
		                "%s is not a serial port (character device %u:%u, not "
		                "a tty)", path, maj, min);
	struct termios tio;
	if (tcgetattr(fd, &tio) != 0)
		return pl__fail(PL_ERR_NO_PORT,
		                "%s is not a serial port (character device %u:%u: "
		                "its terminal settings cannot be read: %s)",
		                path, maj, min, strerror(errno));
	return PL_OK;
}

int pl__lock_port(int fd, const char *path)
{
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			return pl__fail(PL_ERR_PORT_BUSY,
			                "port %s is in use by another program", path);
		return pl__fail(PL_ERR_IO, "cannot lock %s: %s", path, strerror(errno));
	}
	return PL_OK;
}

bool pl__errno_is_unplug(int err)
{
	/* EIO: pty master closed or tty hung up; ENODEV/ENXIO: USB device gone;
	 * EPIPE/ECONNRESET/ENOTCONN: socket or pipe peer gone. */
	return err == EIO || err == ENODEV || err == ENXIO || err == EPIPE ||
	       err == ECONNRESET || err == ENOTCONN;
}

int pl__fd_wait(int fd, bool want_write, int timeout_ms, const char *name)
{
	struct pollfd p = {.fd = fd, .events = POLLIN | (want_write ? POLLOUT : 0)};
	int64_t deadline = timeout_ms >= 0 ? pl_time_monotonic_ms() + timeout_ms : 0;
	int left = timeout_ms;
	for (;;) {
		int n = poll(&p, 1, left);
		if (n > 0)
			break;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return pl__fail(PL_ERR_IO, "waiting on %s failed: %s", name,
			                strerror(errno));
		if (timeout_ms >= 0) {
			int64_t rest = deadline - pl_time_monotonic_ms();
			left = rest > 0 ? (int)rest : 0;
		}
	}
	if (p.revents & POLLNVAL)
		return pl__fail(PL_ERR_IO, "%s is not open", name);
	int mask = 0;
	if (p.revents & POLLIN)
		mask |= PL_WAIT_READABLE;
	/* A hang-up with input still queued is reported as readable: the
	 * remaining bytes are delivered first, then read() reports the unplug. */
	if (!(p.revents & POLLIN) && (p.revents & (POLLHUP | POLLERR)))
		return pl__fail_unplugged(name);
	if (p.revents & POLLOUT)
		mask |= PL_WAIT_WRITABLE;
	return mask;
}

/* errno of a failed read or write (not EINTR): 0 when it would block, the
 * unplug when the pen went away, else an I/O error naming the port. */
static int io_failure(const struct fd_ctx *c, const char *doing)
{
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	if (pl__errno_is_unplug(errno))
		return pl__fail_unplugged(c->base.name);
	return pl__fail(PL_ERR_IO, "%s %s failed: %s", doing, c->base.name,
	                strerror(errno));
}

static int fd_read(void *vctx, void *buf, size_t len)
{
	struct fd_ctx *c = vctx;
	for (;;) {
		ssize_t n = read(c->base.fd, buf, len);
		if (n > 0)
			return (int)n;
		/* read() == 0 on a non-blocking fd is end of file: a hung-up tty
		 * or a closed socket peer. */
		if (n == 0)
			return pl__fail_unplugged(c->base.name);
		if (errno == EINTR)
			continue;
		return io_failure(c, "reading from");
	}
}

/*
 * A write to a pipe whose reader is gone raises SIGPIPE, which would kill a
 * program that did not ignore it.  Block it around the write and swallow
 * the one this write caused, leaving any other pending SIGPIPE alone.
 */
static ssize_t write_fifo(int fd, const void *buf, size_t len)
{
	sigset_t pipe_set, old, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &pipe_set, &old) != 0)
		return write(fd, buf, len);
	sigpending(&pending);
	bool was_pending = sigismember(&pending, SIGPIPE);
	ssize_t n = write(fd, buf, len);
	int err = errno;
	if (n < 0 && err == EPIPE && !was_pending) {
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = err;
	return n;
}

static int fd_write(void *vctx, const void *buf, size_t len)
{
	struct fd_ctx *c = vctx;
	for (;;) {
		ssize_t n;
		if (c->is_socket)
			n = send(c->base.fd, buf, len, MSG_NOSIGNAL);
		else if (c->is_fifo)
			n = write_fifo(c->base.fd, buf, len);
		else
			n = write(c->base.fd, buf, len);
		if (n >= 0)
			return (int)n;
		if (errno == EINTR)
			continue;
		return io_failure(c, "writing to");
	}
}

static void fd_close(void *vctx)
{
	struct fd_ctx *c = vctx;
	if (c->own)
		close(c->base.fd); /* also drops the flock */
	free(c);
}

static const struct pl_transport_ops fd_ops = {
	.read = fd_read, .write = fd_write, .wait = pl__port_wait,
	.fd = pl__port_fd, .close = fd_close};

/* Wraps fd; on failure fd is left to the caller. */
static int wrap_fd(int fd, bool own, const char *name, struct pl_transport **out)
{
	struct fd_ctx *c = calloc(1, sizeof *c);
	if (!c)
		return pl__fail(PL_ERR_MEM, "out of memory opening %s", name);
	struct stat st;
	if (fstat(fd, &st) == 0) {
		c->is_socket = S_ISSOCK(st.st_mode);
		c->is_fifo = S_ISFIFO(st.st_mode);
	}
	c->base.fd = fd;
	c->own = own;
	snprintf(c->base.name, sizeof c->base.name, "%s", name);
	int rc = pl_transport_new(&fd_ops, c, c->base.name, out);
	if (rc != PL_OK)
		free(c);
	return rc;
}

int pl_transport_from_fd(int fd, bool own, struct pl_transport **out)
{
	if (!out)
		return pl__fail(PL_ERR_ARG, "pl_transport_from_fd: out is NULL");
	*out = NULL;
	int flags = fcntl(fd, F_GETFL);
	if (fd < 0 || flags < 0)
		return pl__fail(PL_ERR_ARG, "descriptor %d is not open", fd);
	/* Every backend is non-blocking; waiting is pl_transport_wait's job. */
	if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
		return pl__fail(PL_ERR_IO, "cannot make descriptor %d non-blocking: %s",
		                fd, strerror(errno));
	char name[32];
	snprintf(name, sizeof name, "fd %d", fd);
	return wrap_fd(fd, own, name, out);
}

/* Raw 8-bit bytes: no echo, no CR/LF translation, no signals from ^C. */
static int make_raw(int fd, const char *path)
{
	struct termios tio;
	if (tcgetattr(fd, &tio) != 0)
		return pl__fail(PL_ERR_IO, "cannot read the settings of %s: %s", path,
		                strerror(errno));
	cfmakeraw(&tio);
	tio.c_cflag |= CLOCAL | CREAD;
	/* VMIN 1 keeps read() returning EAGAIN (not 0) when idle, so 0 can only
	 * mean a hang-up. */
	tio.c_cc[VMIN] = 1;
	tio.c_cc[VTIME] = 0;
	/* CDC-ACM ignores the rate; a real UART wants one. */
	cfsetispeed(&tio, B115200);
	cfsetospeed(&tio, B115200);
	if (tcsetattr(fd, TCSANOW, &tio) != 0)
		return pl__fail(PL_ERR_IO, "cannot put %s in raw mode: %s", path,
		                strerror(errno));
	return PL_OK;
}

int pl_transport_open_tty(const char *path, struct pl_transport **out)
{
	/* Only serial ttys are opened at all (a device may act on open). */
	int rc = pl__port_check_open("pl_transport_open_tty", path, out);
	if (rc != PL_OK)
		return rc;
	int fd;
	do
		fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return pl__fail_open_errno(errno, path);

	/* And before anything is read, the descriptor must be one. */
	rc = pl__port_check_fd(fd, path);
	/* flock, not TIOCEXCL: the exclusive flag outlives our close on a pty
	 * (it stays until the master closes), which would lock out the next
	 * penctl run for good; root ignores it anyway. */
	if (rc == PL_OK)
		rc = pl__lock_port(fd, path);
	if (rc == PL_OK) {
		rc = make_raw(fd, path);
		/* Bytes that arrived before raw mode was set may be mangled. */
		if (rc == PL_OK)
			(void)tcflush(fd, TCIFLUSH);
	}
	if (rc == PL_OK)
		rc = wrap_fd(fd, true, path, out);
	if (rc != PL_OK)
		close(fd);
	return rc;
}
