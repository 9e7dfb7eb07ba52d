/*
 * libserialport transport for real serial ports (the pen's /dev/ttyACM*).
 * Once the port is open it behaves like the fd backend: same lock, same
 * poll-based wait, same unplug reporting (transport.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libserialport.h>

#include "transport.h"

struct serial_ctx {
	struct pl__port base; /* first; fd is sp_get_port_handle(), for poll and flock */
	struct sp_port *port;
};

/*
 * libserialport leaves the tty with VMIN 0, so a read of 0 bytes means
 * either "nothing yet" or "hung up".  Only poll tells them apart: a hung-up
 * tty reports POLLHUP/POLLERR.
 */
static bool hung_up(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int n;
	do
		n = poll(&p, 1, 0);
	while (n < 0 && errno == EINTR);
	return n > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

static int serial_fail_errno(struct serial_ctx *c, int err, const char *what)
{
	if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
		return 0;
	if (pl__errno_is_unplug(err))
		return pl__fail_unplugged(c->base.name);
	return pl__fail(PL_ERR_IO, "%s %s failed: %s", what, c->base.name, strerror(err));
}

static int serial_read(void *vctx, void *buf, size_t len)
{
	struct serial_ctx *c = vctx;
	errno = 0;
	enum sp_return r = sp_nonblocking_read(c->port, buf, len);
	if (r > 0)
		return (int)r;
	if (r == 0)
		return hung_up(c->base.fd) ? pl__fail_unplugged(c->base.name) : 0;
	if (r == SP_ERR_FAIL)
		return serial_fail_errno(c, errno, "reading from");
	return pl__fail(PL_ERR_IO, "reading from %s failed (libserialport error %d)",
	                c->base.name, (int)r);
}

static int serial_write(void *vctx, const void *buf, size_t len)
{
	struct serial_ctx *c = vctx;
	errno = 0;
	enum sp_return r = sp_nonblocking_write(c->port, buf, len);
	if (r >= 0)
		return (int)r;
	/* 0.1.1 reports a full output buffer (EAGAIN) as SP_ERR_FAIL. */
	if (r == SP_ERR_FAIL)
		return serial_fail_errno(c, errno, "writing to");
	return pl__fail(PL_ERR_IO, "writing to %s failed (libserialport error %d)",
	                c->base.name, (int)r);
}

static void serial_close(void *vctx)
{
	struct serial_ctx *c = vctx;
	sp_close(c->port); /* closing the handle drops the flock */
	sp_free_port(c->port);
	free(c);
}

static const struct pl_transport_ops serial_ops = {
	.read = serial_read, .write = serial_write, .wait = pl__port_wait,
	.fd = pl__port_fd, .close = serial_close};

/* 8N1, no flow control; DTR and RTS on because many CDC-ACM firmwares hold
 * their output until the host raises DTR.  CDC-ACM ignores the baud rate,
 * a real UART does not. */
static int configure(struct sp_port *port, const char *path)
{
	struct sp_port_config *cfg = NULL;
	if (sp_new_config(&cfg) != SP_OK)
		return pl__fail(PL_ERR_MEM, "out of memory configuring %s", path);
	enum sp_return r = sp_set_config_baudrate(cfg, 115200);
	if (r == SP_OK)
		r = sp_set_config_bits(cfg, 8);
	if (r == SP_OK)
		r = sp_set_config_parity(cfg, SP_PARITY_NONE);
	if (r == SP_OK)
		r = sp_set_config_stopbits(cfg, 1);
	if (r == SP_OK)
		r = sp_set_config_flowcontrol(cfg, SP_FLOWCONTROL_NONE);
	if (r == SP_OK)
		r = sp_set_config_dtr(cfg, SP_DTR_ON);
	if (r == SP_OK)
		r = sp_set_config_rts(cfg, SP_RTS_ON);
	if (r == SP_OK) {
		errno = 0;
		r = sp_set_config(port, cfg);
	}
	int err = errno;
	sp_free_config(cfg);
	if (r == SP_OK)
		return PL_OK;
	if (r == SP_ERR_FAIL && pl__errno_is_unplug(err))
		return pl__fail_unplugged(path);
	return pl__fail(PL_ERR_IO, "cannot configure %s: %s", path,
	                r == SP_ERR_FAIL && err ? strerror(err) : "libserialport refused");
}

int pl_transport_open_serial(const char *path, struct pl_transport **out)
{
	int rc = pl__port_check_open("pl_transport_open_serial", path, out);
	if (rc != PL_OK)
		return rc;
	struct sp_port *port = NULL;
	if (sp_get_port_by_name(path, &port) != SP_OK) {
		struct stat st;
		if (stat(path, &st) != 0)
			return pl__fail_open_errno(errno, path);
		return pl__fail(PL_ERR_IO,
		                "%s is not a serial port libserialport knows "
		                "(a pseudo-terminal needs the tty backend)",
		                path);
	}

	errno = 0;
	enum sp_return r = sp_open(port, SP_MODE_READ_WRITE);
	if (r != SP_OK) {
		int err = errno;
		sp_free_port(port);
		if (r == SP_ERR_MEM)
			return pl__fail(PL_ERR_MEM, "out of memory opening %s", path);
		/* SP_ERR_FAIL carries errno from open() or from reading the
		 * port's settings. */
		if (r == SP_ERR_FAIL && err)
			return pl__fail_open_errno(err, path);
		return pl__fail(PL_ERR_IO, "cannot open %s (libserialport error %d)",
		                path, (int)r);
	}

	int fd = -1;
	if (sp_get_port_handle(port, &fd) != SP_OK || fd < 0)
		rc = pl__fail(PL_ERR_IO, "cannot get the descriptor of %s", path);
	/* Before anything is read (the flush below included). */
	if (rc == PL_OK)
		rc = pl__port_check_fd(fd, path);
	if (rc == PL_OK)
		rc = pl__lock_port(fd, path);
	if (rc == PL_OK) {
		/* 0.1.1 opens without O_CLOEXEC; a child must not inherit the pen. */
		int fdflags = fcntl(fd, F_GETFD);
		if (fdflags >= 0)
			(void)fcntl(fd, F_SETFD, fdflags | FD_CLOEXEC);
		rc = configure(port, path);
	}
	/* Bytes that arrived before the port was configured are stale. */
	if (rc == PL_OK)
		(void)sp_flush(port, SP_BUF_INPUT);

	struct serial_ctx *c = NULL;
	if (rc == PL_OK) {
		c = calloc(1, sizeof *c);
		if (!c)
			rc = pl__fail(PL_ERR_MEM, "out of memory opening %s", path);
	}
	if (rc == PL_OK) {
		c->port = port;
		c->base.fd = fd;
		snprintf(c->base.name, sizeof c->base.name, "%s", path);
		rc = pl_transport_new(&serial_ops, c, c->base.name, out);
		if (rc == PL_OK)
			return PL_OK;
		free(c);
	}
	sp_close(port);
	sp_free_port(port);
	return rc;
}
