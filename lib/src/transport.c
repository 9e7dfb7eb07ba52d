/*
 * The transport handle and the choice of backend for a path.  Backends live
 * in transport_fd.c (ttys, ptys, sockets), transport_serial.c (libserialport)
 * and transport_mem.c (tests).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <libserialport.h>

#include "transport.h"

struct pl_transport {
	/* A copy, so callers may pass ops built on their stack. */
	struct pl_transport_ops ops;
	void *ctx;
	char name[256];
};

int pl_transport_new(const struct pl_transport_ops *ops, void *ctx,
                     const char *name, struct pl_transport **out)
{
	if (!out)
		return pl__fail(PL_ERR_ARG, "pl_transport_new: out is NULL");
	*out = NULL;
	if (!ops || !ops->read || !ops->write || !ops->wait)
		return pl__fail(PL_ERR_ARG,
		                "pl_transport_new: read, write and wait are required");
	struct pl_transport *t = calloc(1, sizeof *t);
	if (!t)
		return pl__fail(PL_ERR_MEM, "out of memory opening a transport");
	t->ops = *ops;
	t->ctx = ctx;
	snprintf(t->name, sizeof t->name, "%s", name ? name : "custom transport");
	*out = t;
	return PL_OK;
}

/* Results are ints, so one call never moves more than INT_MAX bytes. */
static size_t clamp_len(size_t len)
{
	return len > INT_MAX ? INT_MAX : len;
}

int pl_transport_read(struct pl_transport *t, void *buf, size_t len)
{
	if (!t || (!buf && len))
		return pl__fail(PL_ERR_ARG, "pl_transport_read: bad argument");
	if (len == 0)
		return 0;
	return t->ops.read(t->ctx, buf, clamp_len(len));
}

int pl_transport_write(struct pl_transport *t, const void *buf, size_t len)
{
	if (!t || (!buf && len))
		return pl__fail(PL_ERR_ARG, "pl_transport_write: bad argument");
	if (len == 0)
		return 0;
	return t->ops.write(t->ctx, buf, clamp_len(len));
}

/*
 * Input is always waited for (a reply or an unplug can arrive at any time);
 * want_write adds output room.  The mask says which are ready.
 */
int pl_transport_wait(struct pl_transport *t, bool want_write, int timeout_ms)
{
	if (!t)
		return pl__fail(PL_ERR_ARG, "pl_transport_wait: transport is NULL");
	return t->ops.wait(t->ctx, want_write, timeout_ms);
}

int pl_transport_fd(const struct pl_transport *t)
{
	if (!t || !t->ops.fd)
		return -1;
	return t->ops.fd(t->ctx);
}

const char *pl_transport_name(const struct pl_transport *t)
{
	return t ? t->name : "(no transport)";
}

void pl_transport_close(struct pl_transport *t)
{
	if (!t)
		return;
	if (t->ops.close)
		t->ops.close(t->ctx);
	free(t);
}

void *pl__transport_ctx(struct pl_transport *t,
                        int (*read)(void *ctx, void *buf, size_t len))
{
	return t && t->ops.read == read ? t->ctx : NULL;
}

/* Unix98 pty slaves (/dev/pts/N) use majors 136..143. */
static bool is_pty_slave(const struct stat *st)
{
	unsigned maj = major(st->st_rdev);
	return S_ISCHR(st->st_mode) && maj >= 136 && maj <= 143;
}

/*
 * Serial ttys only (pl__port_check_path, then each backend checks the
 * descriptor it opened before reading).  libserialport for ports it knows
 * (found through sysfs: ttyACM, ttyUSB, native UARTs), because it handles
 * their line settings and modem lines; the fd backend for the others.  A
 * pty must never reach libserialport: 0.1.1's sp_open needs TIOCMGET,
 * which ptys lack.
 */
int pl_transport_open(const char *path, struct pl_transport **out)
{
	int rc = pl__port_check_open("pl_transport_open", path, out);
	if (rc != PL_OK)
		return rc;
	struct stat st;
	if (stat(path, &st) != 0)
		return pl__fail_open_errno(errno, path);
	if (!S_ISCHR(st.st_mode) || is_pty_slave(&st))
		return pl_transport_open_tty(path, out);

	struct sp_port *port = NULL;
	if (sp_get_port_by_name(path, &port) != SP_OK)
		return pl_transport_open_tty(path, out);
	sp_free_port(port);

	rc = pl_transport_open_serial(path, out);
	/*
	 * A driver libserialport lists but cannot configure (no modem-line
	 * ioctls, e.g. some gadget or virtual serial drivers) still works as a
	 * plain raw tty.  Missing, busy and forbidden ports are final.
	 */
	if (rc == PL_ERR_IO)
		rc = pl_transport_open_tty(path, out);
	return rc;
}

int pl__port_wait(void *port, bool want_write, int timeout_ms)
{
	struct pl__port *p = port;
	return pl__fd_wait(p->fd, want_write, timeout_ms, p->name);
}

int pl__port_fd(void *port)
{
	return ((struct pl__port *)port)->fd;
}
