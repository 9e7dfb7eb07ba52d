/*
 * USB hotplug: libusb tells us when a pen with a configured VID/PID comes
 * and goes; libserialport tells us which tty the kernel gave it (matched by
 * bus and address, and by serial number when we could read it).  libusb's
 * descriptors are served by the daemon's loop through the pollfd notifiers,
 * so hotplug callbacks run in the loop's thread.
 *
 * The tty appears a little after the USB device, so an arrival is resolved
 * by a short retry timer that exists only while some device is pending.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <libusb.h>

#include "daemon.h"
#include "log.h"

#define RETRY_MS 100
#define GIVE_UP_MS 5000

struct usb_dev {
	struct usb_dev *next;
	libusb_device *dev;     /* referenced */
	uint16_t vid, pid;
	int bus, address;
	char serial[64];
	bool serial_tried;
	bool gave_up;
	char path[256];         /* "" while the tty is not found */
	int64_t since;
};

struct usb {
	struct daemon *d;
	libusb_context *ctx;
	libusb_hotplug_callback_handle cb[CONFIG_MAX_USB_IDS];
	int ncb;
	struct usb_dev *devs;
	uint64_t retry_timer;
	uint64_t usb_timer;
	bool timerfd;           /* libusb keeps its own timeouts on a timerfd */
};

/* ------------------------------------------------------------------ libusb's fds */

static void usb_rearm(struct usb *u);

static void usb_handle(struct usb *u)
{
	struct timeval zero = {0, 0};
	int rc = libusb_handle_events_timeout_completed(u->ctx, &zero, NULL);
	if (rc < 0)
		log_warn("usb: %s", libusb_strerror(rc));
	usb_rearm(u);
}

static void on_usb_fd(void *ud, int fd, unsigned events)
{
	(void)fd;
	(void)events;
	usb_handle(ud);
}

static void on_usb_timer(void *ud)
{
	struct usb *u = ud;
	u->usb_timer = 0;
	usb_handle(u);
}

/* Arms a loop timer only when libusb has a timeout pending and does not
 * keep it on a descriptor of its own. */
static void usb_rearm(struct usb *u)
{
	if (u->timerfd)
		return;
	struct timeval tv;
	int rc = libusb_get_next_timeout(u->ctx, &tv);
	loop_cancel_timer(u->d->loop, u->usb_timer);
	u->usb_timer = 0;
	if (rc == 1)
		u->usb_timer = loop_add_timer(u->d->loop,
		                              (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000,
		                              on_usb_timer, u);
}

static unsigned loop_events(short ev)
{
	return (ev & POLLIN ? LOOP_IN : 0) | (ev & POLLOUT ? LOOP_OUT : 0);
}

static void fd_added(int fd, short events, void *ud)
{
	struct usb *u = ud;
	int rc = loop_add_fd(u->d->loop, fd, loop_events(events), on_usb_fd, u);
	if (rc == -EEXIST)
		rc = loop_mod_fd(u->d->loop, fd, loop_events(events));
	if (rc < 0)
		log_err("usb: cannot watch descriptor %d: %s", fd, strerror(-rc));
}

static void fd_removed(int fd, void *ud)
{
	struct usb *u = ud;
	loop_del_fd(u->d->loop, fd);
}

/* ------------------------------------------------------------------ devices */

static void dev_free(struct usb_dev *x)
{
	libusb_unref_device(x->dev);
	free(x);
}

static struct usb_dev *dev_find(struct usb *u, libusb_device *dev)
{
	int bus = libusb_get_bus_number(dev), addr = libusb_get_device_address(dev);
	for (struct usb_dev *x = u->devs; x; x = x->next)
		if (x->dev == dev || (x->bus == bus && x->address == addr))
			return x;
	return NULL;
}

/* Reading the serial needs the device opened, which needs permission on
 * its usbfs node; without it we match by bus and address alone. */
static void read_serial(struct usb_dev *x)
{
	x->serial_tried = true;
	struct libusb_device_descriptor dd;
	if (libusb_get_device_descriptor(x->dev, &dd) || !dd.iSerialNumber)
		return;
	libusb_device_handle *h = NULL;
	int rc = libusb_open(x->dev, &h);
	if (rc) {
		log_debug("usb %03d/%03d: cannot read its serial number: %s", x->bus,
		          x->address, libusb_strerror(rc));
		return;
	}
	unsigned char s[64];
	rc = libusb_get_string_descriptor_ascii(h, dd.iSerialNumber, s, sizeof s);
	libusb_close(h);
	if (rc <= 0)
		return;
	/* It goes into logs and messages: nothing but printable ASCII. */
	size_t n = (size_t)rc < sizeof x->serial - 1 ? (size_t)rc : sizeof x->serial - 1;
	for (size_t i = 0; i < n; i++)
		x->serial[i] = s[i] > ' ' && s[i] < 0x7f ? (char)s[i] : '?';
	x->serial[n] = '\0';
}

/* The tty of x, if the kernel created it yet. */
static bool find_tty(struct usb_dev *x)
{
	struct pl_port_info *ports = NULL;
	size_t n = 0;
	if (pl_ports_find(x->vid, x->pid, &ports, &n)) {
		log_warn("usb: %s", pl_error_message());
		return false;
	}
	bool found = false;
	for (size_t i = 0; i < n && !found; i++) {
		if (ports[i].bus != x->bus || ports[i].address != x->address)
			continue;
		if (*x->serial && *ports[i].serial && strcmp(x->serial, ports[i].serial))
			continue;
		snprintf(x->path, sizeof x->path, "%s", ports[i].path);
		if (!*x->serial)
			snprintf(x->serial, sizeof x->serial, "%s", ports[i].serial);
		found = true;
	}
	free(ports);
	return found;
}

static void on_retry(void *ud);

static void resolve_pending(struct usb *u)
{
	int64_t now = pl_time_monotonic_ms();
	bool pending = false;
	for (struct usb_dev *x = u->devs; x; x = x->next) {
		if (*x->path || x->gave_up)
			continue;
		if (!x->serial_tried)
			read_serial(x);
		if (find_tty(x)) {
			log_info("usb %03d/%03d (%04x:%04x%s%s) is %s", x->bus, x->address,
			         x->vid, x->pid, *x->serial ? ", serial " : "", x->serial,
			         x->path);
			if (pens_attach(u->d->pens, x->path, true, x->serial))
				log_warn("cannot attach %s: %s", x->path, pl_error_message());
		} else if (now - x->since >= GIVE_UP_MS) {
			x->gave_up = true;
			log_warn("usb %03d/%03d (%04x:%04x): no serial port appeared for it "
			         "within %d s; is the cdc_acm driver loaded?",
			         x->bus, x->address, x->vid, x->pid, GIVE_UP_MS / 1000);
		} else {
			pending = true;
		}
	}
	if (pending && !u->retry_timer)
		u->retry_timer = loop_add_timer(u->d->loop, RETRY_MS, on_retry, u);
}

static void on_retry(void *ud)
{
	struct usb *u = ud;
	u->retry_timer = 0;
	resolve_pending(u);
}

static int LIBUSB_CALL on_hotplug(libusb_context *ctx, libusb_device *dev,
                                  libusb_hotplug_event event, void *ud)
{
	(void)ctx;
	struct usb *u = ud;
	struct usb_dev *x = dev_find(u, dev);
	if (event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED) {
		if (x)
			return 0; /* enumerated and then reported again */
		x = calloc(1, sizeof *x);
		struct libusb_device_descriptor dd;
		if (!x || libusb_get_device_descriptor(dev, &dd)) {
			free(x);
			log_err("usb: cannot take note of a new device (out of memory)");
			return 0;
		}
		x->dev = libusb_ref_device(dev);
		x->vid = dd.idVendor;
		x->pid = dd.idProduct;
		x->bus = libusb_get_bus_number(dev);
		x->address = libusb_get_device_address(dev);
		x->since = pl_time_monotonic_ms();
		x->next = u->devs;
		u->devs = x;
		log_info("usb %03d/%03d: pen %04x:%04x arrived", x->bus, x->address,
		         x->vid, x->pid);
		/* Opening the device is not for inside a hotplug callback:
		 * resolve it from the loop. */
		if (!u->retry_timer)
			u->retry_timer = loop_add_timer(u->d->loop, 0, on_retry, u);
		return 0;
	}
	if (!x)
		return 0;
	for (struct usb_dev **pp = &u->devs; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	log_info("usb %03d/%03d: pen left%s%s", x->bus, x->address,
	         *x->path ? ", was " : "", x->path);
	if (*x->path)
		pens_detach(u->d->pens, x->path, NULL, "unplugged");
	dev_free(x);
	return 0;
}

/* ------------------------------------------------------------------ start, stop */

struct usb *usb_start(struct daemon *d)
{
	struct usb *u = calloc(1, sizeof *u);
	if (!u) {
		log_warn("usb: out of memory; going on without USB");
		return NULL;
	}
	u->d = d;
#if LIBUSB_API_VERSION >= 0x0100010A
	int rc = libusb_init_context(&u->ctx, NULL, 0);
#else
	int rc = libusb_init(&u->ctx);
#endif
	if (rc) {
		log_warn("usb: cannot start libusb (%s); going on without USB "
		         "(pens can still be attached by port)", libusb_strerror(rc));
		free(u);
		return NULL;
	}
	if (!libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG)) {
		log_warn("usb: this libusb cannot report hotplug; going on without USB");
		libusb_exit(u->ctx);
		free(u);
		return NULL;
	}
	u->timerfd = libusb_pollfds_handle_timeouts(u->ctx) != 0;
	libusb_set_pollfd_notifiers(u->ctx, fd_added, fd_removed, u);
	const struct libusb_pollfd **fds = libusb_get_pollfds(u->ctx);
	for (size_t i = 0; fds && fds[i]; i++)
		fd_added(fds[i]->fd, fds[i]->events, u);
	libusb_free_pollfds(fds);

	for (int i = 0; i < d->cfg.n_usb_ids; i++) {
		rc = libusb_hotplug_register_callback(
		    u->ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT,
		    LIBUSB_HOTPLUG_ENUMERATE, d->cfg.usb_ids[i].vid, d->cfg.usb_ids[i].pid,
		    LIBUSB_HOTPLUG_MATCH_ANY, on_hotplug, u, &u->cb[u->ncb]);
		if (rc) {
			log_warn("usb: cannot watch for %04x:%04x: %s; going on without USB",
			         d->cfg.usb_ids[i].vid, d->cfg.usb_ids[i].pid,
			         libusb_strerror(rc));
			usb_stop(u);
			return NULL;
		}
		u->ncb++;
	}
	log_info("usb: watching for %d VID:PID pair%s", d->cfg.n_usb_ids,
	         d->cfg.n_usb_ids == 1 ? "" : "s");
	usb_rearm(u);
	return u;
}

void usb_stop(struct usb *u)
{
	if (!u)
		return;
	for (int i = 0; i < u->ncb; i++)
		libusb_hotplug_deregister_callback(u->ctx, u->cb[i]);
	loop_cancel_timer(u->d->loop, u->retry_timer);
	loop_cancel_timer(u->d->loop, u->usb_timer);
	libusb_set_pollfd_notifiers(u->ctx, NULL, NULL, NULL);
	const struct libusb_pollfd **fds = libusb_get_pollfds(u->ctx);
	for (size_t i = 0; fds && fds[i]; i++)
		loop_del_fd(u->d->loop, fds[i]->fd);
	libusb_free_pollfds(fds);
	while (u->devs) {
		struct usb_dev *x = u->devs;
		u->devs = x->next;
		dev_free(x);
	}
	libusb_exit(u->ctx);
	free(u);
}
