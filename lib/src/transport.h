/* Shared by libpenlink's transport backends only; not installed. */
#ifndef PL_TRANSPORT_H
#define PL_TRANSPORT_H

#include <stdbool.h>

#include "internal.h"

/*
 * The fd and libserialport backends differ only in how they open and
 * configure a port; once they hold a descriptor, locking, waiting and
 * unplug detection are the same, so both use these (transport_fd.c).
 */

/* Sets the "pen went away" message for name and returns PL_ERR_UNPLUGGED. */
int pl__fail_unplugged(const char *name);

/* Maps an errno from opening path to a code with a message. */
int pl__fail_open_errno(int err, const char *path);

/*
 * Takes an exclusive flock on fd, so a second penlink program opening the
 * same port fails with PL_ERR_PORT_BUSY instead of stealing half the bytes.
 */
int pl__lock_port(int fd, const char *path);

/*
 * Ports are terminals of a serial kind, nothing else: a pen's ttyACM
 * (major 166), a USB serial adapter's ttyUSB (188), a pseudo-terminal's
 * slave (136-143, penemu), or another driver the kernel lists as "serial"
 * or "pty:slave" in /proc/tty/drivers (e.g. ttyS, ttyGS).  Whoever opens a
 * path may be root (penlinkd): /dev/null, /dev/urandom, /dev/net/tun, a
 * console, a file or a folder must be refused before anything is read.
 *
 * pl__port_check_path: before opening, from stat(): refuses anything but
 * a character device of such a kind (files are still opened first by
 * pl_transport_open_tty, so a permission problem is reported as one).
 * pl__port_check_fd: after opening (O_NONBLOCK|O_NOCTTY) and before any
 * read: the descriptor must be that same kind of device, isatty(), and
 * tcgetattr() must succeed.
 * Both: PL_OK, or PL_ERR_NO_PORT with "PATH is not a serial port (why)";
 * check_path also maps a failed stat() like a failed open().
 */
int pl__port_check_path(const char *path);
int pl__port_check_fd(int fd, const char *path);
/* What every pl_transport_open* (named fn) checks first: out (cleared
 * first), a path, and pl__port_check_path. */
int pl__port_check_open(const char *fn, const char *path,
                        struct pl_transport **out);

/*
 * poll()s fd for input (and for output room when want_write), handling
 * EINTR with the remaining time recomputed.  Returns a PL_WAIT_* mask, 0 on
 * timeout, PL_ERR_UNPLUGGED on hang-up with nothing left to read.
 */
int pl__fd_wait(int fd, bool want_write, int timeout_ms, const char *name);

/*
 * What the descriptor-backed transports (fd, libserialport) start their
 * context with, so they share one wait and one fd operation.
 */
struct pl__port {
	int fd;
	char name[256];
};
int pl__port_wait(void *port, bool want_write, int timeout_ms);
int pl__port_fd(void *port);

/*
 * True for errno values a tty or socket reports once the other end is gone
 * (USB unplug, pty master closed, socket peer closed).
 */
bool pl__errno_is_unplug(int err);

/*
 * t's backend context if t's read op is `read` (that is, t belongs to the
 * calling backend), else NULL; lets a backend's extra functions (e.g.
 * pl_transport_memory_unplug) reject handles of other backends.
 */
void *pl__transport_ctx(struct pl_transport *t,
                        int (*read)(void *ctx, void *buf, size_t len));

#endif
