/*
 * penlinkd: the pieces and how they meet.  Split like usbmuxd: the loop,
 * the pens (device.c), USB hotplug (usb.c), the control socket and its
 * clients (ctl.c), the archive (archive.c), configuration (config.c).
 */
#ifndef PLD_DAEMON_H
#define PLD_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <penlink.h>

#include "archive.h"
#include "config.h"
#include "ctl.pb-c.h"
#include "loop.h"

struct pens;
struct ctl;
struct usb;
struct central;

struct daemon {
	struct config cfg;
	struct loop *loop;
	struct archive *archive;
	struct pens *pens;
	struct ctl *ctl;
	struct usb *usb;      /* NULL with --no-usb */
	struct central *central; /* NULL without [central] (central.h) */
	bool stopping;
};

/* ------------------------------------------------------------ pens (device.c) */

struct pen;

struct pens *pens_new(struct daemon *d);
void pens_free(struct pens *p);   /* detaches every pen */

/*
 * Starts serving the port at path: open, handshake (retried until the pen
 * answers), info, clock sync, session list, then download and archive every
 * session the archive lacks.  usb_serial is the USB iSerial when known.
 * PL_ERR_CONFLICT if path is already attached.
 */
int pens_attach(struct pens *p, const char *path, bool usb,
                const char *usb_serial);
/* Detaches by port path or serial (either may be NULL); why is logged and
 * sent on the monitor stream.  PL_ERR_NOT_FOUND if no such pen. */
int pens_detach(struct pens *p, const char *path, const char *serial,
                const char *why);
/* The pen with this serial; serial NULL or "" means the only pen attached.
 * NULL with a message in err ("no pen PEN-9 is attached", "2 pens are
 * attached: PEN-1, PEN-2; name one with -s") otherwise. */
struct pen *pens_lookup(struct pens *p, const char *serial, char *err,
                        size_t errlen);
/* Fills list->pens (malloc'd Plctl__Pen entries; free with
 * pens_list_free). */
/* How many pens are attached (any phase). */
size_t pens_count(const struct pens *p);
int pens_list(struct pens *p, Plctl__PenList *list);
void pens_list_free(Plctl__PenList *list);

/*
 * Operations forwarded from clients.  done is called exactly once, from the
 * loop (never from inside the call), with PL_OK or a negative code
 * (pl_error_message() has the detail during the call); PL_ERR_UNPLUGGED
 * if the pen goes away first.  ud must stay valid until then.  Results point
 * into the pen and are valid only during done.  Busy pens queue operations;
 * a client's request waits at most the configured timeouts.
 */
typedef void (*pen_info_fn)(void *ud, int status, const struct pl_device_info *info);
typedef void (*pen_presets_fn)(void *ud, int status, uint32_t previous_revision,
                               const struct pl_preset_set *set);
typedef void (*pen_clock_fn)(void *ud, int status, bool rtc_was_set, int64_t offset_ms);

const char *pen_serial(const struct pen *pen);
/* The pen's limits (valid once it is past the handshake and info). */
const struct pl_device_info *pen_info(const struct pen *pen);
int pen_get_info(struct pen *pen, pen_info_fn done, void *ud);
int pen_get_presets(struct pen *pen, pen_presets_fn done, void *ud);
/* Writes set (library validation, the pen's own, read-back). */
int pen_put_presets(struct pen *pen, const struct pl_preset_set *set,
                    pen_presets_fn done, void *ud);
int pen_clock_sync(struct pen *pen, pen_clock_fn done, void *ud);
/* Trace subscription: the pen streams while at least one holder wants it;
 * lines go to ctl_trace_line(). */
int pen_trace_hold(struct pen *pen, uint32_t level);
void pen_trace_release(struct pen *pen);

/* ------------------------------------------------------------ USB (usb.c) */

/*
 * libusb hotplug for the configured VID/PIDs, its descriptors served by the
 * loop (libusb_get_pollfds + pollfd notifiers, libusb_get_next_timeout).
 * Arrival: find the tty by serial number / bus / address through
 * libserialport, retrying until the kernel created it, then pens_attach().
 * Departure: pens_detach().  Already-attached devices are enumerated at
 * start.  NULL (and a log line) if libusb cannot start: the daemon goes on
 * without USB.
 */
struct usb *usb_start(struct daemon *d);
void usb_stop(struct usb *u);

/* ------------------------------------------------------------ control (ctl.c) */

/* Listens on cfg.socket_path (0660, group cfg.socket_group); removes a stale
 * socket file, refuses a live one. */
int ctl_start(struct daemon *d, struct ctl **out);
void ctl_stop(struct ctl *c);
/* Appends a row to the archive's audit trail: who (uid, user), which pen,
 * what (action, old and new values as JSON objects) and the result.  Text
 * is cleaned here; a failure to write is logged, never the caller's. */
void ctl_audit(struct daemon *d, uint32_t uid, const char *user,
               const char *pen, const char *action, const char *old_value,
               const char *new_value, const char *result);
/* Re-reads the [access] groups and the [policy] from d->cfg (SIGHUP). */
void ctl_access_reload(struct ctl *c);
/* Monitor stream: sent to every client that asked for Monitor. */
void ctl_broadcast(struct ctl *c, const Plctl__Event *ev);
/* A trace line from a pen, to the clients tracing that pen. */
void ctl_trace_line(struct ctl *c, const char *serial, uint32_t level,
                    const char *text);

/* A state event a pen sent (EVENT_KIND_PEN_EVENT): to every monitor and
 * to the clients tracing that pen, whatever their level. */
void ctl_pen_event(struct ctl *c, const Plctl__Event *ev);

/* Helper for everyone: an event stamped now. */
void event_init(Plctl__Event *ev, Plctl__EventKind kind, const char *serial);

#endif
