/*
 * libpenlink — talk to a penlink microneedling pen over its USB CDC-ACM link.
 *
 * Conventions (as in libserialport):
 *  - every function that can fail returns an int: PL_OK (0) or a negative
 *    enum pl_return code (functions returning a pointer return NULL
 *    instead, and say which code they record);
 *  - every failure records a message: pl_error_name names a code;
 *    pl_error_message gives the detail of the last failure in the calling
 *    thread, in words a technician can act on ("depth 2.60 mm is above this
 *    pen's maximum of 2.50 mm").  A success does not clear it: read it only
 *    after a call reported a failure;
 *  - PL_ERR_ARG is what any function returns for a NULL argument it needs
 *    (each function's comment says which arguments may be NULL);
 *  - handles (struct pl_transport, struct pl_pen, struct pl_record,
 *    struct pl_policy) are opaque; each is created by one function and
 *    freed by one function named in its comment.  Plain data (presets,
 *    device info, session metadata) is in public structs the caller owns;
 *    memory the library hands out with malloc is freed with free, as each
 *    comment says;
 *  - on failure an output parameter is left as the comment of its function
 *    says: unchanged, zeroed, or NULL; never half-filled unless the comment
 *    says so;
 *  - inside these comments functions are named without parentheses
 *    ("see pl_pen_open").
 *
 * Thread safety:
 *  - libpenlink keeps no global mutable state of its own except the last
 *    error message, which is per thread (thread-local): a failure in one
 *    thread never changes what pl_error_message says in another;
 *  - a pen handle (struct pl_pen) and its transport are used from one
 *    thread at a time: nothing about one pen may be called concurrently,
 *    not even the getters.  Different pens may be used from different
 *    threads at once.  The same holds for a struct pl_transport used on its
 *    own, and for a struct pl_frame_decoder, in penlink_wire.h;
 *  - callbacks (completion callbacks, the event handler, download sinks and
 *    progress, the frame logger) run in the thread that called
 *    pl_pen_handle_events or the blocking call (pl_pen_get_info,
 *    pl_pen_poll, ...) that drove the pen, never in a thread of the
 *    library's own (it starts none);
 *  - a struct pl_policy is read-only once built (after the last
 *    pl_policy_set) and may then be shared by any number of threads;
 *    a parsed struct pl_record is never modified by the functions that read
 *    it and may likewise be read from several threads;
 *  - the model functions (depths, times, text cleaning, session keys, wire
 *    encoding of presets and device info, policy checks) and the helpers
 *    touch no pen and keep no state: they may be called from any thread, on
 *    distinct output buffers;
 *  - where a function differs from these rules its comment says so.
 *
 * Errors of every pen request: every function that sends a request to a pen
 * (pl_pen_ping, pl_pen_get_info, the preset, clock, session and trace calls,
 * blocking or _async) can end with these codes, besides the ones its own
 * comment lists:
 *  - PL_ERR_ARG: pen is NULL or being closed; its handshake has not
 *    finished or has failed; a blocking call was made from inside one of
 *    this pen's callbacks; the request is larger than the pen accepts;
 *  - PL_ERR_MEM: out of memory;
 *  - PL_ERR_TIMEOUT: the pen did not answer within the timeout, after every
 *    retry;
 *  - PL_ERR_UNPLUGGED, PL_ERR_IO: the link died (unplug, hang-up, an I/O
 *    error); the link then stays dead and every later request on the pen
 *    ends with the same code (a custom transport's own negative code takes
 *    their place when its read, write or wait returns one);
 *  - PL_ERR_PROTOCOL: the pen answered with a message of the wrong kind, or
 *    one that makes no sense (an id, size or count out of line);
 *  - what the pen itself refused the request with: PL_ERR_BAD_REQUEST,
 *    PL_ERR_VALIDATION, PL_ERR_CONFLICT, PL_ERR_BUSY, PL_ERR_NOT_FOUND,
 *    PL_ERR_UNSUPPORTED, PL_ERR_DEVICE (an internal failure or an error code
 *    this library does not know);
 *  - blocking calls only: PL_ERR_CANCELLED when a callback closed the pen
 *    (pl_pen_close) while the call was waiting.
 * Outputs of a pen request are written only when it succeeds: on failure
 * they are unchanged unless the function's comment says otherwise.
 *
 * Units: depths in micrometres (um), times in UTC milliseconds since the Unix
 * epoch, as on the wire (proto/penlink.proto).
 */
#ifndef PENLINK_H
#define PENLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "penlink_wire.h" /* framing codec, capability bits, limits */

#ifdef __cplusplus
extern "C" {
#endif

#define PL_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------ errors */

enum pl_return {
	PL_OK = 0,
	PL_ERR_ARG = -1,          /* invalid argument from the caller */
	PL_ERR_MEM = -2,          /* out of memory */
	PL_ERR_NO_PORT = -3,      /* the port does not exist */
	PL_ERR_PORT_BUSY = -4,    /* another program has the port open */
	PL_ERR_ACCESS = -5,       /* permission denied */
	PL_ERR_IO = -6,           /* an I/O error on the port or a file */
	PL_ERR_UNPLUGGED = -7,    /* the pen went away (HUP / EIO) */
	PL_ERR_TIMEOUT = -8,      /* the pen did not answer in time */
	PL_ERR_PROTOCOL = -9,     /* the pen sent something we cannot understand */
	PL_ERR_VERSION = -10,     /* no protocol version in common */
	PL_ERR_VALIDATION = -11,  /* a value is outside the pen's limits */
	PL_ERR_CONFLICT = -12,    /* changed meanwhile (revision) or digest mismatch */
	PL_ERR_BUSY = -13,        /* the pen is busy (treating) */
	PL_ERR_NOT_FOUND = -14,   /* no such session / preset / pen */
	PL_ERR_DEVICE = -15,      /* the pen reported an internal failure */
	PL_ERR_BAD_REQUEST = -16, /* the pen rejected our request as malformed */
	PL_ERR_DIGEST = -17,      /* downloaded data does not match its SHA-256 */
	PL_ERR_VERIFY = -18,      /* read-back differs from what was written */
	PL_ERR_UNSUPPORTED = -19, /* the pen does not support this */
	PL_ERR_CANCELLED = -20,   /* a callback asked to stop */
	PL_ERR_PARSE = -21,       /* malformed input (JSON file, record) */
	PL_ERR_POLICY = -22,      /* refused by the clinic's policy (cap, confirmation) */
};

/*
 * Short name of a code, e.g. "timeout" for PL_ERR_TIMEOUT, "ok" for PL_OK.
 *
 * code: any int; a positive or unknown value gives "unknown error".
 * Returns a static string, never NULL.  Never fails, records nothing.
 */
const char *pl_error_name(int code);

/*
 * Detail of the last failure recorded in the calling thread, e.g. "no answer
 * from the pen on /dev/ttyACM0 within 1000 ms"; "no error" before any.
 *
 * Returns a pointer to a per-thread buffer, never NULL, cleaned for
 * PL_TEXT_LOG (printable, valid UTF-8).  The pointer stays valid for the
 * life of the thread, but its text is replaced by the next failure any
 * libpenlink call records in this thread (even a call that then succeeds
 * may record one on the way): copy it before calling libpenlink again.
 * Successful calls do not reset it.
 * Thread safety: per thread; see "Thread safety" above.
 */
const char *pl_error_message(void);

/*
 * For programs built on libpenlink (penlinkd, penctl): records a failure of
 * their own exactly as the library records its own, so that
 * pl_error_message is the one place a caller looks for the detail.
 *
 * code: the negative enum pl_return value to return (not checked: any int
 *       is returned as given).
 * fmt:  printf-style message; NULL records an empty message.  The result is
 *       cut at 1023 bytes and cleaned for PL_TEXT_LOG (no control
 *       characters, valid UTF-8).
 * Returns code, so a caller records and returns a failure in one
 * statement (return the result of pl_error_set).
 * Never fails.
 * Thread safety: the message is per thread.
 */
int pl_error_set(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ------------------------------------------------------------------ transports
 *
 * A transport moves bytes.  Backends: libserialport for real serial ports,
 * a plain file descriptor for pseudo-terminals and sockets (libserialport
 * cannot open a pty), and an in-memory pair for tests.  All are
 * non-blocking; pl_transport_wait blocks.
 *
 * Every open function below sets *out to NULL first (when out is not NULL)
 * and leaves it NULL on failure; on PL_OK *out is a transport the caller
 * owns and frees with pl_transport_close, or hands to pl_pen_open_transport
 * or pl_pen_open_async, which take it over.
 * Thread safety: a transport is used from one thread at a time.
 */
struct pl_transport;

/*
 * Opens a port by path.  A port is a serial tty: ttyACM, ttyUSB, a
 * pseudo-terminal's slave, or another driver the kernel lists as serial in
 * /proc/tty/drivers.  Anything else (/dev/null, /dev/urandom, a console, a
 * file, a folder) is refused before anything is read from it, with a
 * message naming the path and what it is.  Uses libserialport when it
 * recognises the port (e.g. /dev/ttyACM0), otherwise (pseudo-terminals,
 * ports libserialport lists but cannot configure) opens it as a plain tty,
 * as pl_transport_open_tty does.  The port is put in raw mode and locked
 * against other penlink programs (flock).
 *
 * path: the port, not NULL, not "".
 * out:  receives the transport; NULL on failure.
 * Errors: PL_ERR_ARG (NULL out, NULL or empty path), PL_ERR_NO_PORT (no
 *         such path, or "PATH is not a serial port (what it is)"),
 *         PL_ERR_PORT_BUSY (another program holds the port or its lock),
 *         PL_ERR_ACCESS, PL_ERR_MEM, PL_ERR_IO, PL_ERR_UNPLUGGED (the device
 *         went away while being configured).
 */
int pl_transport_open(const char *path, struct pl_transport **out);

/*
 * As pl_transport_open, forcing the libserialport backend (8N1, no flow
 * control, DTR and RTS on, input flushed).
 *
 * Errors: as pl_transport_open; PL_ERR_IO also for a path libserialport
 *         does not know as a serial port (e.g. a pseudo-terminal).
 */
int pl_transport_open_serial(const char *path, struct pl_transport **out);

/*
 * As pl_transport_open, forcing the file-descriptor backend: refuses what
 * is not a serial tty as pl_transport_open does, opens path non-blocking,
 * locks it (flock), puts it in raw mode and flushes its input.
 *
 * Errors: PL_ERR_ARG (NULL out, NULL or empty path), PL_ERR_NO_PORT,
 *         PL_ERR_PORT_BUSY, PL_ERR_ACCESS, PL_ERR_MEM, PL_ERR_IO.
 */
int pl_transport_open_tty(const char *path, struct pl_transport **out);

/*
 * Wraps an open descriptor (socket, pipe, pty) as a transport, without
 * locking it or changing its line settings.  The descriptor is made
 * non-blocking (this stays so even if the call then fails).
 *
 * fd:   an open descriptor.
 * own:  true: pl_transport_close closes fd; false: fd stays the caller's.
 *       On failure fd is never closed, whatever own says.
 * out:  receives the transport; NULL on failure.
 * Errors: PL_ERR_ARG (NULL out, fd not open), PL_ERR_IO (cannot make it
 *         non-blocking), PL_ERR_MEM.
 */
int pl_transport_from_fd(int fd, bool own, struct pl_transport **out);

/*
 * Custom backends (e.g. the daemon's USB glue).  Each operation gets the
 * ctx given to pl_transport_new and runs in the thread using the
 * transport.  A negative code an operation returns becomes the result of
 * the call that invoked it; on a pen it kills the link with that code.
 * Record a message with pl_error_set before returning one.
 */
struct pl_transport_ops {
	/* >= 0 bytes read (0: nothing available now), or a negative code. */
	int (*read)(void *ctx, void *buf, size_t len);
	/* >= 0 bytes written (0: would block), or a negative code. */
	int (*write)(void *ctx, const void *buf, size_t len);
	/* see pl_transport_wait. */
	int (*wait)(void *ctx, bool want_write, int timeout_ms);
	/* pollable descriptor, or -1. */
	int (*fd)(void *ctx);
	void (*close)(void *ctx);
};

/*
 * Makes a transport of a custom backend.
 *
 * ops:  read, write and wait are required; fd and close may be NULL (no
 *       pollable descriptor; nothing to close).  *ops is copied, so it may
 *       live on the caller's stack.
 * ctx:  passed to every operation.  On PL_OK the transport owns it in the
 *       sense that pl_transport_close calls ops->close(ctx); on failure
 *       nothing is called and ctx stays the caller's.
 * name: the path or a description for messages, copied (cut at 255
 *       bytes); NULL gives "custom transport".
 * out:  receives the transport; NULL on failure.
 * Errors: PL_ERR_ARG (NULL out; NULL ops or a required operation missing),
 *         PL_ERR_MEM.
 */
int pl_transport_new(const struct pl_transport_ops *ops, void *ctx,
                     const char *name, struct pl_transport **out);

#define PL_WAIT_READABLE 1
#define PL_WAIT_WRITABLE 2

/*
 * Reads what is available now, without blocking.
 *
 * t:   the transport.
 * buf: room for len bytes; may be NULL only when len is 0.
 * len: at most this many bytes (at most INT_MAX are read in one call).
 * Returns the number of bytes read (> 0), 0 when nothing is available (or
 * len is 0), or a negative code: PL_ERR_ARG (NULL t, NULL buf with len >
 * 0), PL_ERR_UNPLUGGED (the other end is gone: hang-up, end of file),
 * PL_ERR_IO, or a custom backend's own code.  buf is unspecified on
 * failure.
 */
int pl_transport_read(struct pl_transport *t, void *buf, size_t len);

/*
 * Writes what the transport takes now, without blocking.
 *
 * buf: len bytes; may be NULL only when len is 0.
 * Returns the number of bytes written (at most INT_MAX; 0: it would block
 * or len is 0), or a negative code: PL_ERR_ARG (NULL t, NULL buf with len >
 * 0), PL_ERR_UNPLUGGED, PL_ERR_IO, or a custom backend's own code.  The
 * built-in backends never raise SIGPIPE (sockets and pipes whose reader is
 * gone give PL_ERR_UNPLUGGED).
 */
int pl_transport_write(struct pl_transport *t, const void *buf, size_t len);

/*
 * Waits until input is available (always waited for: a reply or an unplug
 * can come at any time), or, when want_write, until output room is too.
 *
 * timeout_ms: < 0 waits forever; 0 only polls.
 * Returns a mask of PL_WAIT_* (a hang-up with input still queued counts as
 * readable, so the bytes are read first), 0 on timeout, or a negative code:
 * PL_ERR_ARG (NULL t), PL_ERR_UNPLUGGED (hang-up with nothing left to
 * read), PL_ERR_IO, or a custom backend's own code.
 */
int pl_transport_wait(struct pl_transport *t, bool want_write, int timeout_ms);

/*
 * The descriptor to poll for t, or -1 (NULL t, or a custom backend without
 * one).  It stays owned by the transport: do not close it or change its
 * flags; valid until pl_transport_close.  Never fails, records nothing.
 */
int pl_transport_fd(const struct pl_transport *t);

/*
 * The path or a description, for messages; "(no transport)" for NULL.
 * Owned by t, valid until pl_transport_close.  Never fails.
 */
const char *pl_transport_name(const struct pl_transport *t);

/*
 * Closes t: calls its backend's close (the built-in backends close the
 * port, which drops the lock; pl_transport_from_fd's descriptor only if it
 * was given with own) and frees t.  t may be NULL.  Do not close a
 * transport a pen has taken over: pl_pen_close does.
 */
void pl_transport_close(struct pl_transport *t);

/* ------------------------------------------------------------------ discovery */

struct pl_port_info {
	char path[256];          /* e.g. /dev/ttyACM0 */
	char serial[64];         /* USB iSerial, "" if unknown */
	char description[128];
	uint16_t vid, pid;
	int bus, address;        /* -1 if unknown */
};

/*
 * Lists serial ports on USB whose VID/PID match, read from sysfs (Linux):
 * each tty in /sys/class/tty whose device has a USB device above it (the
 * idVendor, idProduct, serial, product, busnum and devnum attributes
 * libserialport reads too).  Sorted by path (ttyACM2 before ttyACM10).
 * Opens no port.  Same as pl_ports_find_in(NULL, vid, pid, out, count).
 *
 * vid, pid: the ids to match; vid 0 lists every USB serial port (pid is
 *           then ignored).
 * out:      receives a malloc'd array of *count entries; free it with free.
 *           NULL when no port matches (free(NULL) is fine, so free it
 *           unconditionally).
 * count:    receives the number of entries.
 * On failure *out is NULL and *count 0.
 * Errors: PL_ERR_ARG (NULL out or count), PL_ERR_MEM, PL_ERR_IO
 *         (libserialport cannot list the ports).
 */
int pl_ports_find(uint16_t vid, uint16_t pid, struct pl_port_info **out,
                  size_t *count);

/*
 * pl_ports_find under another root: sysfs is read from ROOT/sys and the
 * ports are named ROOT/dev/NAME.  For tests, which build a fake tree (the
 * tty class, its device links, a USB device's attribute files) on
 * machines without USB.
 *
 * root: NULL, "" or "/" for the real system; else a directory.
 * A root without sys/class/tty lists no port (PL_OK, *count 0).
 * Errors: those of pl_ports_find, and PL_ERR_ACCESS (the tty class
 *         cannot be read).
 */
int pl_ports_find_in(const char *root, uint16_t vid, uint16_t pid,
                     struct pl_port_info **out, size_t *count);

/* Who holds a port's lock (pl_port_holder). */
struct pl_port_holder {
	bool busy;     /* some process holds the port's flock */
	int pid;       /* that process, 0 if it is not visible from here */
	char name[32]; /* its command name (/proc/PID/comm), "" if unknown */
};

/*
 * Whether a program holds path: every penlink transport flocks the port it
 * opens (penlinkd, penctl --port, penemu's clients), so a locked port is
 * in use and pl_transport_open would fail on it with PL_ERR_BUSY.  Read
 * from /proc/locks without opening the port (opening a serial port raises
 * DTR, which a pen may notice).  A program that opens the port without a
 * lock (a terminal emulator) is not seen.
 *
 * path: the port, not NULL; a symbolic link is followed.
 * out:  not NULL; zeroed, then filled.
 * Errors: PL_ERR_ARG (NULL path or out), PL_ERR_NO_PORT (no such path),
 *         PL_ERR_ACCESS, PL_ERR_IO (/proc/locks cannot be read).
 * Thread-safe.
 */
int pl_port_holder(const char *path, struct pl_port_holder *out);

/* ------------------------------------------------------------------ opening */

struct pl_pen;

enum pl_frame_dir { PL_FRAME_IN, PL_FRAME_OUT, PL_FRAME_DROPPED };

/*
 * Frame logger (penctl --dump-frames): text is one line describing the
 * frame, e.g. `id=7 read_session{id:3 offset:65536 length:16384}` or, for a
 * dropped frame, the reason.  raw_len is the payload length.  text is valid
 * during the call only.  Runs in the thread driving the pen, while it
 * handles I/O.
 */
typedef void (*pl_frame_log_fn)(void *ud, enum pl_frame_dir dir,
                                const char *text, size_t raw_len);

struct pl_open_options {
	/* sizeof(struct pl_open_options) as the caller was compiled, set by
	 * pl_open_options_init: the library reads only the fields a caller
	 * knows, so fields added at the end later keep the ABI.  0 (a struct
	 * zeroed without the init function) counts as today's size. */
	size_t size;
	int timeout_ms;         /* per request before a retry; default 1000 (0: default) */
	int retries;            /* retries after a timeout; default 2 (0 means none) */
	int handshake_ms;       /* keep retrying the handshake this long; default 5000 (0: default) */
	uint32_t max_frame;     /* largest envelope we accept, 256..16 MiB; default 65536 (0: default) */
	uint32_t max_in_flight; /* requests we allow outstanding; default 16 (0: default) */
	pl_frame_log_fn frame_log; /* may be NULL */
	void *frame_log_ud;
};

/*
 * Fills in the defaults (and size).  o may be NULL (nothing happens).
 * Never fails.
 */
void pl_open_options_init(struct pl_open_options *o);

/*
 * Opens the port (pl_transport_open) and performs the handshake, retrying
 * until the pen answers or handshake_ms passes.  Blocks.
 *
 * path: the port, not NULL.
 * opts: copied; NULL takes the defaults.
 * out:  receives the pen; NULL on failure.  Close it with pl_pen_close.
 * Errors: PL_ERR_ARG (NULL path or out; negative timeout_ms, retries or
 *         handshake_ms; max_frame outside 256..16 MiB); the errors of
 *         pl_transport_open; PL_ERR_TIMEOUT (no answer to the handshake),
 *         PL_ERR_VERSION (no protocol version in common), PL_ERR_PROTOCOL
 *         (the pen's frames are too small, or a wrong answer), and the
 *         other errors of every pen request.
 */
int pl_pen_open(const char *path, const struct pl_open_options *opts,
                struct pl_pen **out);

/*
 * As pl_pen_open over an existing transport.  Takes ownership of t, even
 * on failure (t is then closed).  t may not be NULL (PL_ERR_ARG, and
 * nothing to close).
 * Errors: as pl_pen_open, without those of opening a port.
 */
int pl_pen_open_transport(struct pl_transport *t,
                          const struct pl_open_options *opts,
                          struct pl_pen **out);

/*
 * Closes the pen and its transport.  pen may be NULL.  Asynchronous calls
 * still outstanding are dropped: their callbacks are NOT called (nor sinks,
 * progress or the event handler any more), and what they hold is freed.
 * May be called from a callback running inside pl_pen_handle_events or a
 * blocking call; the memory is then freed when that returns (a blocking
 * call interrupted so returns PL_ERR_CANCELLED), so the pen must not be
 * used after this call.  Strings the pen handed out (pl_pen_serial) are
 * freed with it.
 */
void pl_pen_close(struct pl_pen *pen);

/*
 * Negotiated parameters, known once the handshake succeeded: 0 (or "")
 * before that, and for a NULL pen.  Never fail, record nothing.
 *
 * pl_pen_serial: the serial the pen gave in the handshake, control bytes
 *   replaced by '?' and cut to 63 bytes, but otherwise untrusted (it may
 *   hold invalid UTF-8: clean it with pl_text_clean before output).  Owned
 *   by the pen, valid until pl_pen_close.
 * pl_pen_max_frame, pl_pen_max_in_flight: the smaller of both sides.
 * pl_pen_capabilities: PL_CAP_* bits.
 */
const char *pl_pen_serial(const struct pl_pen *pen);
uint32_t pl_pen_protocol_version(const struct pl_pen *pen);
uint32_t pl_pen_max_frame(const struct pl_pen *pen);     /* min of both sides */
uint32_t pl_pen_max_in_flight(const struct pl_pen *pen); /* min of both sides */
uint32_t pl_pen_capabilities(const struct pl_pen *pen);

/*
 * Sets the per-attempt timeout of requests started from now on.  A NULL pen
 * or timeout_ms <= 0 is ignored (no error is recorded).
 */
void pl_pen_set_timeout(struct pl_pen *pen, int timeout_ms);

/* Framing counters: good frames and frames dropped, per reason; and what
 * tells a hostile pen from a noisy line (penlinkd's budgets read these). */
struct pl_link_stats {
	uint64_t frames_in, frames_out, bytes_in, bytes_out;
	uint64_t dropped_crc, dropped_oversize, dropped_short, dropped_cobs,
	    dropped_version;
	uint64_t timeouts, retries, stray_replies;
	uint64_t bad_envelopes;   /* frames intact but not a decodable Envelope */
	uint64_t unsolicited;     /* intact id-0 frames (trace, state, or junk) */
	uint64_t unknown_ids;     /* replies to ids this link never issued */
	uint64_t replies;         /* replies matched to a request in flight */
	uint64_t frames_ended;    /* frames that ended: delivered or dropped */
	uint64_t bytes_at_frame;  /* bytes_in when an intact frame last arrived */
	uint64_t outstanding;     /* requests submitted and not yet completed */
};

/*
 * Copies the pen's link counters into *out.  out may be NULL (nothing
 * happens); a NULL pen gives all zeros.  Never fails.
 */
void pl_pen_link_stats(const struct pl_pen *pen, struct pl_link_stats *out);

/*
 * Round trip of one ping, in microseconds.  Blocks.
 *
 * rtt_us: may be NULL; written only on PL_OK (UINT32_MAX if longer).
 * Errors: PL_ERR_PROTOCOL when the pen echoes a different payload, and
 *         the errors of every pen request.
 */
int pl_pen_ping(struct pl_pen *pen, uint32_t *rtt_us);

/* ------------------------------------------------------------------ device info */

struct pl_device_info {
	char serial[64];
	char model[64];
	char hw_revision[32];
	char fw_version[32];
	uint32_t protocol_version;
	uint32_t capabilities;
	uint32_t depth_min_um;
	uint32_t depth_max_um;
	uint32_t depth_step_um;
	uint32_t speed_levels;
	uint32_t stroke_rate_hz[PL_MAX_SPEED_LEVELS]; /* [i] = level i+1 */
	uint32_t slow_lock_depth_um;
	uint32_t max_presets;
	uint64_t total_strokes;
	uint64_t motor_seconds;
	uint32_t battery_percent;
	uint32_t battery_mv;
	bool charging;
};

/*
 * Reads the device info, and caches its limits in the pen for
 * pl_pen_put_presets.  Blocks.
 *
 * out: may be NULL (only refreshes the cache); written only on PL_OK.
 *      Text fields are cut at a character boundary to their sizes and
 *      control bytes become '?'; they are otherwise untrusted.
 * Errors: the errors of every pen request.
 */
int pl_pen_get_info(struct pl_pen *pen, struct pl_device_info *out);

/* ------------------------------------------------------------------ presets */

enum pl_area {
	PL_AREA_UNSPECIFIED = 0,
	PL_AREA_FOREHEAD,
	PL_AREA_GLABELLA,
	PL_AREA_PERIORBITAL,
	PL_AREA_NOSE,
	PL_AREA_CHEEK,
	PL_AREA_CHEEKBONE,
	PL_AREA_PERIORAL,
	PL_AREA_CHIN_JAW,
	PL_AREA_NECK,
	PL_AREA_DECOLLETE,
	PL_AREA_SCALP,
	PL_AREA_STRETCH_MARKS,
	PL_AREA_BODY_SCAR,
	PL_AREA_OTHER,
	PL_AREA_COUNT
};

/*
 * "unspecified", "forehead", "glabella", ..., "chin-jaw", "decollete",
 * "stretch-marks", "body-scar", "other": a static string; NULL for a value
 * outside the enum.  Never records an error.
 */
const char *pl_area_name(enum pl_area area);

/*
 * Accepts the names above, case-insensitive, with '_', ' ', '/' or '-'
 * between words and "é"/"É" for 'e' ("Décolleté").
 *
 * name: not NULL.
 * Returns the area (>= 0), or PL_ERR_ARG for a NULL or unknown name (the
 * message lists the known ones).
 */
int pl_area_from_name(const char *name);

#define PL_MAX_PRESETS 64

struct pl_preset {
	uint32_t id;
	char name[PL_PRESET_NAME_MAX + 1];
	uint32_t depth_um;
	uint32_t speed_level;
	enum pl_area area;
	uint32_t needle_count;    /* 0 = nano */
	uint32_t max_duration_s;  /* 0 = no limit */
};

struct pl_preset_set {
	uint32_t revision;
	size_t count;
	struct pl_preset presets[PL_MAX_PRESETS];
};

/*
 * Checks a preset against a pen's limits: name non-empty, at most 32 bytes
 * (measured as the bytes that go on the wire: up to the first NUL of the
 * field, or all of it), valid UTF-8 and free of control characters (C0,
 * DEL, C1), the one name rule pl_policy_check_push and the firmware apply
 * too; area known and not PL_AREA_UNSPECIFIED; depth within
 * range and on the step; speed level from 1 to the pen's levels, and level
 * 1 at or above the slow-lock depth.  Used by pl_pen_put_presets; exposed
 * for policy layers.
 *
 * limits: a pen's device info (pl_pen_get_info), not NULL.
 * p:      the preset, not NULL.
 * Returns PL_OK, PL_ERR_ARG (NULL argument) or PL_ERR_VALIDATION, whose
 * message names the first bad field, its value and the limit.
 */
int pl_preset_validate(const struct pl_device_info *limits,
                       const struct pl_preset *p);

/*
 * Every preset as pl_preset_validate, plus: count at most max_presets (and
 * PL_MAX_PRESETS), ids unique and in 1..max_presets.
 * Returns PL_OK, PL_ERR_ARG (NULL argument) or PL_ERR_VALIDATION.
 */
int pl_preset_set_validate(const struct pl_device_info *limits,
                           const struct pl_preset_set *set);

/*
 * Reads the pen's presets and their revision.  Blocks.
 *
 * Names are measured by their length on the wire, never by strlen: a name
 * holding a NUL byte cannot be shown as the pen stores it (the part before
 * the NUL would be another name), and a pen that stores one is broken, so
 * the whole set is refused, naming the preset and the byte ("the pen on
 * /dev/ttyACM0 sent preset 2 with a name holding a NUL byte (byte 5 of
 * 14)").  Other control characters are kept: the pen's text travels raw
 * and is cleaned at each output (pl_text_clean).  The same holds for the
 * set read back by pl_pen_put_presets.
 *
 * out: not NULL (PL_ERR_ARG); written only on PL_OK.
 * Errors: PL_ERR_PROTOCOL (more than PL_MAX_PRESETS presets, a name over
 *         PL_PRESET_NAME_MAX bytes on the wire or holding a NUL), and the
 *         errors of every pen request.
 */
int pl_pen_get_presets(struct pl_pen *pen, struct pl_preset_set *out);

/*
 * Replaces the pen's presets with set->presets, provided the pen's revision
 * is still set->revision.  Validates first against the pen's limits (read
 * with a GetInfo first unless pl_pen_get_info already cached them), then
 * writes, then reads the set back and compares.  Blocks.
 *
 * set:    not NULL (PL_ERR_ARG); copied at the call.
 * result: may be NULL; receives the set as read back, with its new
 *         revision.  Written only on PL_OK.
 * Errors: PL_ERR_VALIDATION (the set breaks the pen's limits, found here or
 *         by the pen), PL_ERR_CONFLICT (the pen's revision is no longer
 *         set->revision; the message names both), PL_ERR_VERIFY (the set
 *         read back differs; the pen may hold the new set), PL_ERR_PROTOCOL
 *         (a read-back set that cannot be a preset set), and the errors of
 *         every pen request.
 */
int pl_pen_put_presets(struct pl_pen *pen, const struct pl_preset_set *set,
                   struct pl_preset_set *result);

/*
 * Preset-set files (JSON, depths in millimetres):
 *   {"presets": [{"id": 1, "name": "Forehead fine", "depth_mm": 0.5,
 *                 "speed": 3, "area": "forehead", "needles": 12,
 *                 "max_duration_s": 600}, ...]}
 * "area" (default "other"), "needles" and "max_duration_s" are optional; a
 * top-level "revision" (written by pl_preset_set_to_json) is accepted and
 * ignored.  Ranges: id 1..64, speed 1..16, needles 0..100, depth at most
 * 10 mm with at most 3 decimals, name 1..32 bytes of UTF-8; unknown keys
 * are refused.  These are file checks, not a pen's limits
 * (pl_preset_set_validate).
 *
 * text: the whole file, NUL-terminated, not NULL.
 * out:  not NULL; on PL_OK the set, with revision 0.  On failure unchanged
 *       (NULL argument, JSON syntax error) or zeroed (any other error).
 * Errors: PL_ERR_ARG (NULL argument), PL_ERR_MEM, PL_ERR_PARSE, whose
 *         message names the place: "presets[2].depth_mm: expected a number",
 *         or "line 3, column 7: ..." for a syntax error.
 */
int pl_preset_set_from_json(const char *text, struct pl_preset_set *out);

/*
 * The same format, pretty-printed; "revision" is included when non-zero,
 * "area" left out for PL_AREA_UNSPECIFIED.  The set is not validated.
 * Returns a malloc'd string (free it with free), or NULL with PL_ERR_ARG
 * (NULL set, count above PL_MAX_PRESETS) or PL_ERR_MEM recorded.
 */
char *pl_preset_set_to_json(const struct pl_preset_set *set);

/*
 * What pushing one preset set over another changes, preset by preset: the
 * one diff that penctl prints before a push, penlinkd returns to its
 * clients and audits, and pl_policy_check_push reads ("which presets this
 * push adds or whose depth it changes").  Presets are matched by id.
 */
enum pl_preset_change_kind {
	PL_PRESET_ADDED = 1,   /* in next only */
	PL_PRESET_REMOVED = 2, /* in old only */
	PL_PRESET_CHANGED = 3, /* in both, some fields differing */
};

/* A preset's fields, as bits of struct pl_preset_change's fields. */
enum pl_preset_field {
	PL_PRESET_FIELD_NAME = 1u << 0,
	PL_PRESET_FIELD_DEPTH = 1u << 1,
	PL_PRESET_FIELD_SPEED = 1u << 2,
	PL_PRESET_FIELD_AREA = 1u << 3,
	PL_PRESET_FIELD_NEEDLES = 1u << 4,
	PL_PRESET_FIELD_MAX_DURATION = 1u << 5,
};

struct pl_preset_change {
	enum pl_preset_change_kind kind;
	uint32_t id;
	unsigned fields;         /* CHANGED: the PL_PRESET_FIELD_* that differ;
	                          * 0 otherwise */
	struct pl_preset before; /* REMOVED, CHANGED: as in old; zero if ADDED */
	struct pl_preset after;  /* ADDED, CHANGED: as in next; zero if REMOVED */
};

/* Every id of two sets of PL_MAX_PRESETS presets each, at most. */
#define PL_PRESET_DIFF_MAX (2 * PL_MAX_PRESETS)

struct pl_preset_diff {
	size_t count; /* entries of changes, in order of id */
	size_t added, removed, changed;
	size_t unchanged; /* presets of next equal to old's: not in changes */
	struct pl_preset_change changes[PL_PRESET_DIFF_MAX];
};

/*
 * The diff of next against old (the pen's current set; NULL: an empty
 * set).  Only the first PL_MAX_PRESETS presets of either set are looked
 * at; of presets sharing an id (which pl_preset_set_validate refuses) the
 * first counts.  Names compare as their bytes up to the first NUL.
 * Revisions are not compared.
 *
 * next, out: not NULL.  out is overwritten (about 17 kB: keep it off small
 * stacks).
 * Returns PL_OK or PL_ERR_ARG (NULL next or out).
 */
int pl_preset_set_diff(const struct pl_preset_set *old,
                       const struct pl_preset_set *next,
                       struct pl_preset_diff *out);

/*
 * The rule that a push removes presets only when the user said so: with
 * replace false, a diff that removes any preset is refused (penctl's
 * --replace; penlinkd applies it to pushes through the daemon, penctl to
 * pushes with --port).  Returns PL_OK; PL_ERR_POLICY with a message naming
 * the presets (the first 8, then a count) and the flag, e.g. `this push
 * removes preset 3 "Scar deep"; add --replace to push it`, or `this push
 * empties the pen's set, removing every preset (...)`; or PL_ERR_ARG for a
 * NULL diff.
 */
int pl_preset_diff_check_removals(const struct pl_preset_diff *diff,
                                  bool replace);

/*
 * Millimetre text ("0.25", "1.5", surrounding white space allowed) to
 * micrometres, exactly: at most 3 decimals, not negative, at most 10 mm.
 *
 * text, um: not NULL.  *um is written only on PL_OK.
 * Errors: PL_ERR_ARG (NULL argument), PL_ERR_PARSE (the message says why).
 */
int pl_depth_parse_mm(const char *text, uint32_t *um);

/* ------------------------------------------------------------------ clock */

/*
 * Sets the pen's clock to the host's UTC time (reads it first, then sets
 * it).  Blocks.
 *
 * offset_ms: may be NULL; receives pen minus host before the sync (0 if the
 *            pen had no RTC time).  Written only on PL_OK.
 * Errors: the errors of every pen request (a pen without a clock answers
 *         with its own refusal, e.g. PL_ERR_UNSUPPORTED).
 */
int pl_pen_clock_sync(struct pl_pen *pen, int64_t *offset_ms);

/*
 * Reads the pen's clock.  Blocks.
 *
 * utc_ms:    may be NULL; the pen's UTC time in ms (meaningful when
 *            *rtc_set).
 * rtc_set:   may be NULL; whether the pen's clock has been set.
 * uptime_ms: may be NULL; ms since the pen powered on.
 * Each is written only on PL_OK.
 * Errors: the errors of every pen request.
 */
int pl_pen_clock_get(struct pl_pen *pen, int64_t *utc_ms, bool *rtc_set,
                 uint64_t *uptime_ms);

/* ------------------------------------------------------------------ sessions */

/* struct pl_session_info, a session as a pen lists it, is in
 * penlink_wire.h: the firmware bridge fills the very same struct. */

/*
 * All sessions on the pen (all pages), in rising id order.  Blocks.
 *
 * out:   not NULL; receives a malloc'd array of *count entries, free it
 *        with free; NULL when the pen holds no session.
 * count: not NULL; receives the number of entries.
 * *out and *count are set to NULL and 0 first, and stay so on failure.
 * Errors: PL_ERR_ARG (NULL out or count), PL_ERR_PROTOCOL (a page whose ids
 *         do not rise, a malformed entry, more than a million sessions),
 *         and the errors of every pen request.
 */
int pl_pen_list_sessions(struct pl_pen *pen, struct pl_session_info **out,
                     size_t *count);

/*
 * A stretch of the pen's sessions: those with ids above after_id, in
 * rising id order, at most max of them.  Pages are asked for until max
 * entries arrived or the pen has no more, so a caller holds at most max
 * entries however many the pen lists: go on with after_id = the last id
 * returned while *more.  Blocks.
 *
 * after_id: 0 for the first stretch.
 * max:      1 .. 1000000.
 * out:      not NULL; receives a malloc'd array of *count entries (at most
 *           max), free it with free; NULL when there is none.
 * count:    not NULL; receives the number of entries.
 * more:     not NULL; whether the pen lists sessions after the last one
 *           returned (true when entries were left out for max).
 * *out, *count and *more are set to NULL, 0 and false first, and stay so
 * on failure.
 * Errors: PL_ERR_ARG (NULL out, count or more; max out of range),
 *         PL_ERR_PROTOCOL (a page whose ids do not rise, a malformed
 *         entry), and the errors of every pen request.
 */
int pl_pen_list_sessions_from(struct pl_pen *pen, uint32_t after_id, size_t max,
                              struct pl_session_info **out, size_t *count,
                              bool *more);

/* Receives the record's bytes in order; data is valid during the call
 * only.  Return PL_OK to go on, or a negative code to abort the download
 * with it (a positive value aborts it with PL_ERR_CANCELLED).  Runs in the
 * thread driving the pen; must not call blocking functions on it. */
typedef int (*pl_sink_fn)(void *ud, uint64_t offset, const uint8_t *data,
                          size_t len);
/* After each chunk handed to the sink: bytes done so far of total. */
typedef void (*pl_progress_fn)(void *ud, uint64_t done, uint64_t total);

struct pl_download_options {
	size_t size;              /* as in pl_open_options; set by pl_download_options_init */
	pl_sink_fn sink;          /* required */
	pl_progress_fn progress;  /* may be NULL */
	void *ud;                 /* passed to sink and progress */
	uint32_t window;          /* requests in flight; 0 = as many as the pen allows */
	uint32_t chunk;           /* bytes per request; 0 = as large as frames allow */
};

/* Zeroes o and sets its size; a sink must then be set.  o may be NULL
 * (nothing happens).  Never fails. */
void pl_download_options_init(struct pl_download_options *o);

/*
 * Downloads s's record from byte `offset` to its end, pipelined.  Bytes
 * reach the sink strictly in order.  Digest checking is the caller's (see
 * pl_pen_download_session_to_file) because only it holds the earlier bytes
 * of a resumed download.  Blocks; the sink and progress run inside this
 * call.
 *
 * s:      the session as listed (pl_pen_list_sessions), not NULL; copied.
 * offset: where to start, at most s->size (offset == s->size succeeds at
 *         once without a request).
 * o:      not NULL, with a sink; copied.
 * On failure the sink has received a prefix of the record (possibly
 * empty): whole chunks from offset up to where it stopped.
 * Errors: PL_ERR_ARG (NULL s or o, no sink, offset past the end),
 *         PL_ERR_PROTOCOL (a chunk for another record or offset, of the
 *         wrong size, or an end of record where the listing does not put
 *         it), PL_ERR_CANCELLED or the sink's own negative code, and the
 *         errors of every pen request.
 */
int pl_pen_download_session(struct pl_pen *pen, const struct pl_session_info *s,
                        uint64_t offset, const struct pl_download_options *o);

/*
 * Downloads into path, resuming from the bytes already there: appends,
 * fsyncs, then re-reads the whole file and checks its SHA-256 against s.
 * A file longer than the record is not a prefix of it: it is truncated and
 * the download starts over.  The file is created with mode 0640 (less the
 * umask); path may not be a symbolic link (PL_ERR_IO).  On PL_OK the file
 * is complete, verified and durable.  Blocks.
 *
 * s:        not NULL.
 * path:     not NULL.
 * progress: may be NULL; called first with the bytes already there, then
 *           after each chunk, with ud.
 * On failure: after PL_ERR_DIGEST the file is removed; after any other
 * error what is in the file is a good prefix, kept so a later call
 * resumes.
 * Errors: PL_ERR_ARG (NULL pen, s or path), PL_ERR_ACCESS or PL_ERR_IO
 *         (opening, writing, flushing or re-reading the file),
 *         PL_ERR_DIGEST, the errors of pl_pen_download_session and of
 *         pl_sha256_file.
 */
int pl_pen_download_session_to_file(struct pl_pen *pen,
                                const struct pl_session_info *s,
                                const char *path, pl_progress_fn progress,
                                void *ud);

/*
 * Tells the pen the record is stored durably and verified, so it may
 * reclaim it.  Idempotent.  Blocks.
 *
 * id:     the session's id (struct pl_session_info).
 * sha256: the record's digest, not NULL (PL_ERR_ARG).
 * Errors: the errors of every pen request (the pen answers PL_ERR_NOT_FOUND
 *         for an unknown id, and refuses a digest that is not the
 *         record's).
 */
int pl_pen_archive_session(struct pl_pen *pen, uint32_t id,
                       const uint8_t sha256[32]);

/* ------------------------------------------------------------------ unsolicited */

enum pl_event_kind { PL_EVENT_TRACE, PL_EVENT_STATE };

enum pl_state_kind {
	PL_STATE_UNSPECIFIED = 0,
	PL_STATE_IDLE,
	PL_STATE_TREATING,
	PL_STATE_SESSION_RECORDED,
	PL_STATE_BATTERY_LOW,
	PL_STATE_CARTRIDGE,
	PL_STATE_ERROR,
};

struct pl_event {
	enum pl_event_kind kind;
	uint64_t uptime_ms;
	uint32_t level;          /* trace: 0 error .. 3 debug */
	const char *text;        /* trace line or state detail; valid during the call */
	enum pl_state_kind state;
	uint32_t value;
};

/* ev and ev->text are valid during the call only; text is the pen's raw,
 * untrusted bytes (clean it with pl_text_clean before output). */
typedef void (*pl_event_fn)(void *ud, const struct pl_event *ev);

/*
 * Sets (fn) or removes (fn NULL) the handler of unsolicited frames: trace
 * lines and state events.  It runs in the thread driving the pen, from
 * pl_pen_handle_events, pl_pen_poll or any blocking call on the pen; it may
 * start _async calls or call pl_pen_close, but not blocking calls.  A NULL
 * pen, or one being closed, is ignored.  Never fails.
 */
void pl_pen_set_event_handler(struct pl_pen *pen, pl_event_fn fn, void *ud);

/*
 * Starts (enable) or stops the pen's trace stream at the given level;
 * lines then reach the event handler.  Blocks.
 *
 * level: 0 (errors) .. 3 (debug); more is PL_ERR_ARG.
 * Errors: PL_ERR_ARG (level above 3), and the errors of every pen request.
 */
int pl_pen_trace_subscribe(struct pl_pen *pen, bool enable, uint32_t level);

/*
 * Waits up to timeout_ms (< 0: forever; 0: one look) for frames and
 * dispatches unsolicited ones to the event handler (and runs the callbacks
 * of _async calls that complete meanwhile).  Returns as soon as an intact
 * frame arrived, or when timeout_ms passed.
 *
 * Returns PL_OK (a frame arrived, or the time passed), or a negative code:
 * PL_ERR_ARG (NULL pen; called from inside one of its callbacks), or the
 * error that killed the link (PL_ERR_UNPLUGGED when the pen goes away,
 * PL_ERR_IO, or a custom transport's code).
 */
int pl_pen_poll(struct pl_pen *pen, int timeout_ms);

/* ------------------------------------------------------------------ asynchronous use
 *
 * For programs with their own event loop (penlinkd), as in libusb: every
 * blocking call above is this asynchronous core plus a loop that waits.
 *
 * Driving a pen from a poll()/epoll loop:
 *   - watch pl_pen_fd for input, and for output while pl_pen_want_write;
 *   - sleep no longer than pl_pen_next_timeout;
 *   - call pl_pen_handle_events with what the loop saw (PL_WAIT_* mask,
 *     0 when only the timeout passed).
 * Completion callbacks run inside pl_pen_handle_events, or inside a
 * blocking call or pl_pen_poll driving the same pen; never inside the
 * _async call that started them, nor inside pl_pen_open_async: those only
 * queue.
 * A callback may start further asynchronous calls on the same pen and may
 * call pl_pen_close; it must not call blocking ones (they return
 * PL_ERR_ARG).  done may be NULL (nothing is called).
 * Output pointers passed to an _async call must stay valid until its
 * callback ran (or the pen is closed), and are written only when status is
 * PL_OK.  status is PL_OK or a negative code: the errors listed for the
 * matching blocking call; on failure pl_error_message, read in the
 * callback, has the detail.
 * If the link dies (unplug), every outstanding call completes with that
 * code, and pl_pen_handle_events returns it.
 * The blocking calls must not be used on a pen while asynchronous calls are
 * outstanding on it.
 *
 * Every _async call returns PL_OK when the call is under way: done then
 * runs exactly once, from pl_pen_handle_events, even when the call fails
 * at once (a validation error, a missing argument, a dead link, a pen
 * whose handshake has not finished); meanwhile pl_pen_next_timeout
 * returns 0.  It returns a negative code, and done is never called, only
 * when the call could not be queued at all: PL_ERR_ARG (NULL pen, a pen
 * being closed) or PL_ERR_MEM.  Several calls may be outstanding on one
 * pen; they share its window of requests.
 * Thread safety: as every pen function, the thread that calls them is the
 * one the callbacks run in.
 */
typedef void (*pl_done_fn)(void *ud, int status);

/*
 * Queues the handshake (retried until handshake_ms as in pl_pen_open) on t
 * and returns the pen at once; done runs when the pen answered or the
 * handshake failed (bad opts are reported there too, as PL_ERR_ARG).
 * Close the pen with pl_pen_close either way.
 *
 * t:    taken over, even on failure (closed then).
 * opts: copied; NULL takes the defaults.
 * out:  receives the pen; NULL on failure.
 * Returns PL_OK, or PL_ERR_ARG (NULL t or out) or PL_ERR_MEM, with *out
 * NULL and done never called.  done's status: PL_OK or the errors of
 * pl_pen_open, without those of opening a port.
 */
int pl_pen_open_async(struct pl_transport *t, const struct pl_open_options *opts,
                      pl_done_fn done, void *ud, struct pl_pen **out);

/* The descriptor to poll for the pen (its transport's), or -1 (NULL pen, a
 * transport without one).  Owned by the pen; valid until pl_pen_close. */
int pl_pen_fd(const struct pl_pen *pen);

/* Whether output is queued: poll pl_pen_fd for writing too.  false for a
 * NULL pen, a pen being closed or a dead link. */
bool pl_pen_want_write(const struct pl_pen *pen);

/* Milliseconds until the pen needs pl_pen_handle_events without I/O
 * (a request deadline; 0 when callbacks are due), or -1 when nothing is
 * pending (and for a NULL pen or one being closed): an idle pen costs
 * no wake-ups. */
int pl_pen_next_timeout(const struct pl_pen *pen);

/*
 * Handles what the caller's loop saw, without blocking: runs due
 * callbacks, reads (mask has PL_WAIT_READABLE), writes what is queued,
 * expires deadlines, then runs the callbacks this finished.
 *
 * mask: PL_WAIT_* bits, 0 when only the timeout passed.
 * Returns PL_OK, PL_ERR_ARG (NULL pen, a pen being closed), or the error
 * that killed the link (PL_ERR_UNPLUGGED, PL_ERR_IO, or a custom
 * transport's code), returned again by every later call.
 */
int pl_pen_handle_events(struct pl_pen *pen, int mask);

/* Asynchronous calls started whose callback has not yet run; 0 for a NULL
 * pen. */
unsigned pl_pen_outstanding(const struct pl_pen *pen);

/* As pl_pen_get_info; out (may be NULL) is written when done gets PL_OK. */
int pl_pen_get_info_async(struct pl_pen *pen, struct pl_device_info *out,
                      pl_done_fn done, void *ud);

/* As pl_pen_get_presets; a NULL out is reported through done. */
int pl_pen_get_presets_async(struct pl_pen *pen, struct pl_preset_set *out,
                         pl_done_fn done, void *ud);

/* Validation, write and read-back as pl_pen_put_presets.  set is copied at
 * the call; result (may be NULL) must stay valid until done. */
int pl_pen_put_presets_async(struct pl_pen *pen, const struct pl_preset_set *set,
                         struct pl_preset_set *result, pl_done_fn done,
                         void *ud);

/* As pl_pen_clock_sync. */
int pl_pen_clock_sync_async(struct pl_pen *pen, int64_t *offset_ms,
                        pl_done_fn done, void *ud);

/* As pl_pen_list_sessions, except that *out and *count are not touched
 * unless done reports PL_OK; *out is then malloc'd (free it with free). */
int pl_pen_list_sessions_async(struct pl_pen *pen, struct pl_session_info **out,
                           size_t *count, pl_done_fn done, void *ud);
/* As pl_pen_list_sessions_from, except that *out, *count and *more are
 * not touched unless done reports PL_OK; *out is then malloc'd (free it
 * with free). */
int pl_pen_list_sessions_from_async(struct pl_pen *pen, uint32_t after_id,
                                    size_t max, struct pl_session_info **out,
                                    size_t *count, bool *more, pl_done_fn done,
                                    void *ud);

/* As pl_pen_download_session; the sink and progress run from
 * pl_pen_handle_events.  *s and *o are copied at the call; what o->ud
 * points to must stay valid until done. */
int pl_pen_download_session_async(struct pl_pen *pen,
                              const struct pl_session_info *s, uint64_t offset,
                              const struct pl_download_options *o,
                              pl_done_fn done, void *ud);

/* As pl_pen_archive_session; sha256 is copied at the call. */
int pl_pen_archive_session_async(struct pl_pen *pen, uint32_t id,
                             const uint8_t sha256[32], pl_done_fn done,
                             void *ud);

/* As pl_pen_trace_subscribe. */
int pl_pen_trace_subscribe_async(struct pl_pen *pen, bool enable, uint32_t level,
                             pl_done_fn done, void *ud);

/* ------------------------------------------------------------------ records */

/* A decoded session record (proto/record.proto).  Created by
 * pl_record_parse or pl_record_parse_file, freed by pl_record_free.  The
 * functions below only read it; NULL r is accepted by every getter (it
 * gives 0, "" or zeros). */
struct pl_record;

/*
 * Decodes a record and checks it makes sense as a whole (format version,
 * 16-byte uuid, end not before start, telemetry arrays of one length).
 *
 * data: len bytes; may be NULL only when len is 0.  Copied: the caller may
 *       free it afterwards.
 * out:  receives the record; NULL on failure.  Free it with pl_record_free.
 * Errors: PL_ERR_ARG (NULL out; NULL data with len > 0), PL_ERR_PARSE
 *         (empty, not a record, a newer format, damaged), PL_ERR_MEM.
 */
int pl_record_parse(const uint8_t *data, size_t len, struct pl_record **out);

/*
 * As pl_record_parse on the whole content of a file (at most 1 GiB).
 *
 * path: not NULL.
 * Errors: PL_ERR_ARG (NULL out or path), PL_ERR_NOT_FOUND, PL_ERR_ACCESS,
 *         PL_ERR_IO, PL_ERR_MEM, PL_ERR_PARSE (a directory, more than 1 GiB,
 *         or as pl_record_parse).
 */
int pl_record_parse_file(const char *path, struct pl_record **out);

/* Frees r and everything it handed out.  r may be NULL. */
void pl_record_free(struct pl_record *r);

/*
 * A report for people: identity, times, preset, cartridge, summary,
 * events, and a telemetry overview, written to out.  Times are local
 * ($TZ) with their UTC offset, as pl_time_format_local writes them.
 * Control bytes of the pen's text are printed as '?'.
 * Returns PL_OK, PL_ERR_ARG (NULL r or out) or PL_ERR_IO (the stream
 * reported an error; part of the report may have been written).
 */
int pl_record_print(const struct pl_record *r, FILE *out);

/*
 * JSON (documented in README and lib/src/record.c); with_samples includes
 * every telemetry sample.  The pen's strings are made valid UTF-8.
 * Returns a malloc'd string (free it with free), or NULL with PL_ERR_ARG
 * (NULL r) or PL_ERR_MEM recorded.
 */
char *pl_record_to_json(const struct pl_record *r, bool with_samples);

/*
 * Identity and times of a parsed record (CSV export, file names).  Never
 * fail, record nothing.
 *
 * pl_record_serial: the serial as the record holds it, "" if none: raw,
 *   untrusted bytes (clean it with pl_text_clean before output).  Owned by
 *   r, valid until pl_record_free.
 * pl_record_uuid: out (not NULL) receives the 16 bytes; zeros for NULL r.
 */
const char *pl_record_serial(const struct pl_record *r);
uint32_t pl_record_seq(const struct pl_record *r);
void pl_record_uuid(const struct pl_record *r, uint8_t out[16]);
/* UTC ms if the pen's clock was set (pl_record_rtc_time), else uptime ms. */
int64_t pl_record_start_ms(const struct pl_record *r);
int64_t pl_record_end_ms(const struct pl_record *r);
bool pl_record_rtc_time(const struct pl_record *r);

/* Telemetry samples, taken every interval_us from the start: three arrays
 * of *count values each, owned by r (valid until pl_record_free). */
struct pl_telemetry {
	uint32_t interval_us;
	size_t count;
	const uint32_t *depth_um;
	const uint32_t *current_ma;
	const uint32_t *battery_mv;
};

/* Fills *out (out not NULL); all zeros and NULL arrays when r is NULL or
 * holds no telemetry.  Never fails. */
void pl_record_telemetry(const struct pl_record *r, struct pl_telemetry *out);

/* The record's events in order.  kind is the record.proto EventKind number
 * (newer pens may send numbers this build does not name).  Fills at most
 * max rows of out (out may be NULL when max is 0, or to only count) and
 * returns the total count, so a caller can size its buffer with a first
 * call; 0 for NULL r.  Never fails. */
struct pl_event_row {
	uint32_t offset_ms;  /* since the start */
	int kind;
	int32_t value;       /* meaning depends on kind (record.proto) */
};
size_t pl_record_events(const struct pl_record *r, struct pl_event_row *out,
                        size_t max);

/* "start", "depth_change", ... as in the JSON form; NULL for a kind this
 * build does not know.  The string is static.  Never records an error. */
const char *pl_record_event_kind_name(int kind);
/* What an error event's code (its value) means, for people: "motor
 * stalled", ...; "unknown error code" for a code this build does not know
 * (record.proto's PenError lists them).  The string is static.  Never
 * fails. */
const char *pl_record_error_meaning(int32_t code);

/* ------------------------------------------------------------------ model
 *
 * The one home of the domain's conversions, for every program and every
 * output: depths as millimetre text, times, a session's identity, text from
 * pens and clients cleaned for the place it goes, the wire encoding of
 * presets and device info, and the clinic's preset policy.  penlinkd and
 * penctl use these instead of keeping copies of their own.
 * None of these functions touches a pen; all are safe to call from any
 * thread on distinct objects (a struct pl_policy is read-only once built,
 * and may then be shared).  Output buffers must not be NULL unless a
 * comment says so.
 */

/* ---- depths */

#define PL_MM_TEXT_MAX 24 /* bytes a depth text needs, NUL included */

enum pl_mm_style {
	/* For people: two decimals, three when the value needs them:
	 * 1500 -> "1.50", 125 -> "0.125".  Never rounds. */
	PL_MM_FIXED,
	/* For JSON and CSV numbers: the shortest exact text with at least one
	 * decimal: 1500 -> "1.5", 2000 -> "2.0", 125 -> "0.125". */
	PL_MM_SHORT,
};

/*
 * Micrometres as millimetre text in out (PL_MM_TEXT_MAX bytes, not NULL).
 * Returns out; an unknown style is taken as PL_MM_FIXED.  Never fails.
 */
const char *pl_depth_format_mm(uint32_t um, enum pl_mm_style style,
                               char out[PL_MM_TEXT_MAX]);

/* ---- times */

#define PL_TIME_TEXT_MAX 48 /* bytes a time text needs, NUL included */

/*
 * UTC milliseconds as ISO 8601 with milliseconds, "2024-05-01T12:03:22.120Z",
 * in out (PL_TIME_TEXT_MAX bytes, not NULL).  A time the C library cannot
 * represent gives "" (never a wrong date).  Returns out.  Never fails.
 */
const char *pl_time_format_utc(int64_t utc_ms, char out[PL_TIME_TEXT_MAX]);
/* The same instant in the host's local time zone ($TZ), to the second,
 * with the zone's UTC offset then, for people: "2024-05-01 14:03:22 +02:00"
 * (TZ=UTC gives "+00:00"); "@<ms> ms" when it cannot be represented.
 * out: PL_TIME_TEXT_MAX bytes, not NULL.
 * Returns out.  Never fails. */
const char *pl_time_format_local(int64_t utc_ms, char out[PL_TIME_TEXT_MAX]);
/* The span from start_ms to end_ms in milliseconds, 0 when end_ms is not
 * after start_ms.  Two times from a pen (or an archive row) may lie
 * further apart than an int64_t holds: the span is unsigned and computed
 * without overflow.  Never fails. */
uint64_t pl_time_span_ms(int64_t start_ms, int64_t end_ms);
/* Milliseconds of CLOCK_MONOTONIC: for deadlines and rates, never for
 * dates.  Never fails. */
int64_t pl_time_monotonic_ms(void);
/* The host's UTC time in milliseconds since the Unix epoch.  Never
 * fails. */
int64_t pl_time_utc_ms(void);

/* ---- untrusted text
 *
 * Serials, models, preset names, trace lines, notes and error messages come
 * from pens and clients that may be broken or hostile.  Whatever they hold,
 * what penlink prints, stores as a file name or writes as JSON/CSV is
 * cleaned by pl_text_clean for that place first.
 */
enum pl_text_target {
	/* Tables and messages for a terminal: invalid UTF-8 bytes become
	 * U+FFFD; control characters (C0, DEL, C1) and the invisible
	 * direction overrides (U+200E-F, U+2028-9, U+202A-E, U+2066-9)
	 * become visible escapes: "\x1b", "\u202e". */
	PL_TEXT_TERMINAL,
	/* One log or audit line: as PL_TEXT_TERMINAL. */
	PL_TEXT_LOG,
	/* A JSON string value: valid UTF-8 (invalid bytes become U+FFFD);
	 * C0 controls are left for the JSON writer to escape, while DEL, C1
	 * and the direction overrides become U+FFFD. */
	PL_TEXT_JSON,
	/* A CSV field: as PL_TEXT_TERMINAL, and a field a spreadsheet would
	 * run as a formula (starting with = + - @, a tab or a carriage
	 * return) gets a leading apostrophe.  Quoting is the CSV writer's. */
	PL_TEXT_CSV,
	/* One path component: only A-Z a-z 0-9 - _ . are kept, every other
	 * byte becomes '_', a leading '.' or '-' too (no hidden file, no "..",
	 * nothing a command takes for an option); empty text gives "_". */
	PL_TEXT_FILENAME,
};

/*
 * Cleans the NUL-terminated text (NULL counts as "") for target into out.
 * An unknown target is treated as PL_TEXT_TERMINAL.
 *
 * out/cap: cap bytes; when cap > 0 out is always NUL-terminated, cut at a
 * character (or escape) boundary if the cleaned text does not fit.  out
 * may be NULL when cap is 0 (to measure).
 * Returns the length the whole cleaned text needs, NUL not counted, as
 * snprintf does: a result >= cap means out was cut.  Never fails.
 */
size_t pl_text_clean(enum pl_text_target target, const char *text, char *out,
                     size_t cap);
/* As pl_text_clean into a malloc'd string (free it with free); NULL only
 * when out of memory (PL_ERR_MEM recorded). */
char *pl_text_clean_dup(enum pl_text_target target, const char *text);
/* Whether len bytes at s are strict UTF-8 (no overlong forms, surrogates,
 * code points above U+10FFFF or NUL bytes).  s may be NULL only when len is
 * 0 (true).  Never fails. */
bool pl_text_utf8_valid(const char *s, size_t len);

/* ---- session identity
 *
 * A session is named by its pen's serial and its UUID together, everywhere:
 * two pens may record sessions with equal UUIDs.  Its text form is
 * "SERIAL/UUID" (penctl sessions show PEN-0001/1b4e28ba-...).
 */
struct pl_session_key {
	char serial[64];  /* as the pen reported it: any bytes but NUL */
	uint8_t uuid[16];
};

/*
 * Parses "SERIAL/UUID": the UUID is what follows the last '/', in the
 * canonical 8-4-4-4-12 form (either case); SERIAL is what precedes it,
 * 1 to 63 bytes.
 * Returns PL_OK, PL_ERR_ARG (NULL text or out), or PL_ERR_PARSE with a
 * message naming what was wrong; *out is unchanged on failure.
 */
int pl_session_key_parse(const char *text, struct pl_session_key *out);
/* "SERIAL/UUID" into out (cap bytes; out may be NULL when cap is 0), the
 * whole text cleaned for target (so with PL_TEXT_FILENAME the '/' becomes
 * '_').  key: not NULL.  Returns as pl_text_clean.  Never fails. */
size_t pl_session_key_format(const struct pl_session_key *key,
                             enum pl_text_target target, char *out,
                             size_t cap);
/* True when both name the same session; false if either is NULL. */
bool pl_session_key_equal(const struct pl_session_key *a,
                          const struct pl_session_key *b);
/*
 * The file name a pulled or exported record gets:
 * "<serial>-<seq, 6 digits>-<uuid>.plrec", the serial cleaned with
 * PL_TEXT_FILENAME ("pen" when empty), so no serial can name another
 * folder.  key: not NULL; out/cap as pl_text_clean.  Returns as
 * pl_text_clean.  Never fails.
 */
size_t pl_session_file_name(const struct pl_session_key *key, uint32_t seq,
                            char *out, size_t cap);

/* ---- wire encoding of presets and device info
 *
 * pl.PresetSet and pl.DeviceInfo of proto/penlink.proto, for programs that
 * carry them inside messages of their own (penlinkd's control protocol
 * does).  The conversion is the one the library uses on the link.
 */

/*
 * Decodes len bytes of a serialized pl.PresetSet (data may be NULL only
 * when len is 0: an empty set).  At most PL_MAX_PRESETS presets, names of
 * at most PL_PRESET_NAME_MAX bytes measured on the wire and without a NUL
 * byte (the message names the preset and the byte: "preset 1 with a name
 * holding a NUL byte (byte 5 of 14)"); more presets or such a name:
 * PL_ERR_PARSE.  Values are not validated (pl_preset_set_validate says
 * what is wrong with them, control characters in names included).
 * Decode sets from the bytes they came in: a message already unpacked by
 * protobuf-c holds a name only up to its first NUL.
 * Returns PL_OK, PL_ERR_ARG (NULL out, NULL data with len > 0),
 * PL_ERR_PARSE or PL_ERR_MEM; *out is unchanged on failure.
 */
int pl_preset_set_decode(const uint8_t *data, size_t len,
                         struct pl_preset_set *out);
/* Serializes set as pl.PresetSet into a malloc'd buffer (*out, free it
 * with free; *len bytes).  The set is not validated; presets past
 * PL_MAX_PRESETS are left out.  PL_ERR_ARG (NULL set, out or len),
 * PL_ERR_MEM; *out is NULL (when out is not NULL) and *len unchanged on
 * failure. */
int pl_preset_set_encode(const struct pl_preset_set *set, uint8_t **out,
                         size_t *len);
/* As pl_preset_set_decode for pl.DeviceInfo.  Text fields are cut at a
 * character boundary to their struct sizes and control bytes become '?';
 * more than PL_MAX_SPEED_LEVELS stroke rates is PL_ERR_PARSE.  PL_ERR_ARG,
 * PL_ERR_PARSE; *out is unchanged on failure. */
int pl_device_info_decode(const uint8_t *data, size_t len,
                          struct pl_device_info *out);
/* As pl_preset_set_encode for pl.DeviceInfo; the first speed_levels
 * stroke rates (at most PL_MAX_SPEED_LEVELS) are encoded.  PL_ERR_ARG
 * (NULL info, out or len), PL_ERR_MEM; *out is NULL on failure. */
int pl_device_info_encode(const struct pl_device_info *info, uint8_t **out,
                          size_t *len);

/* ---- the clinic's preset policy
 *
 * On top of a pen's own limits (pl_preset_validate, and the pen itself),
 * a clinic may cap depths per group of users and ask for an explicit
 * confirmation above a depth.  This is the one implementation of that
 * decision: penlinkd applies it to every push through the daemon, penctl
 * applies it to pushes with --port.  Caps come first (a push the user may
 * not make at all is not first asked to be confirmed); only presets a push
 * adds or whose depth it changes count, so a deep preset already on the
 * pen, left as it is, needs no new confirmation.
 * Thread safety: pl_policy_set changes a policy and must not run
 * concurrently with anything else on it; once built, a policy is only read
 * and may be shared between threads.
 */
struct pl_policy;

#define PL_POLICY_CONFIRM_ABOVE_UM 1500u /* the default threshold, 1.50 mm */

/* A policy with the defaults: confirmation above 1.50 mm, no caps.  Free it
 * with pl_policy_free.  PL_ERR_ARG (NULL out), PL_ERR_MEM; *out is NULL on
 * failure (when out is not NULL). */
int pl_policy_new(struct pl_policy **out);
/* Frees policy; NULL is fine.  Strings it handed out (pl_policy_cap's
 * group) go with it. */
void pl_policy_free(struct pl_policy *policy);

/*
 * Sets one key of a configuration's [policy] section from its text:
 *   confirm_above_mm = MM    deeper presets need a confirmation
 *   depth_cap.GROUP = MM     members of GROUP may push at most MM
 *                            (GROUP 1 to 63 bytes; at most 16 groups;
 *                            setting a group again replaces its cap; a
 *                            member of several capped groups gets the
 *                            largest cap)
 * MM is millimetre text (pl_depth_parse_mm).  Returns PL_OK, PL_ERR_ARG
 * (NULL policy, key or value), or PL_ERR_PARSE with a message naming the
 * key and the value (unknown key, bad group name, bad depth, too many
 * groups); the policy is unchanged on failure.
 */
int pl_policy_set(struct pl_policy *policy, const char *key,
                  const char *value);
/* The confirmation threshold; PL_POLICY_CONFIRM_ABOVE_UM for NULL.  Never
 * fails. */
uint32_t pl_policy_confirm_above_um(const struct pl_policy *policy);
/* The i-th cap (0-based) in *group (owned by the policy, valid until
 * pl_policy_free or the next pl_policy_set) and *depth_um.  Returns PL_OK,
 * PL_ERR_ARG (NULL argument), or PL_ERR_NOT_FOUND past the last, which
 * records no message (it is the normal end of a loop).  Outputs are
 * unchanged on failure. */
int pl_policy_cap(const struct pl_policy *policy, size_t i,
                  const char **group, uint32_t *depth_um);

/* Who asks for a push. */
struct pl_policy_actor {
	const char *user;          /* for messages, e.g. "alice"; may be NULL */
	bool uncapped;             /* root and penlinkd's own user: no cap */
	const char *const *groups; /* names of the groups the user belongs to */
	size_t n_groups;
};

/*
 * The decision for a push of next over old (the pen's current set; NULL:
 * every preset counts as new), with confirmed the user's explicit
 * confirmation (penctl --confirm).  Only the first PL_MAX_PRESETS presets
 * of either set are looked at.  The names of next are held to the one
 * name rule of pl_preset_validate first (no other field is validated), so a
 * name is refused the same way whichever layer sees it.  Returns PL_OK;
 * PL_ERR_VALIDATION with pl_preset_validate's message for a bad name;
 * PL_ERR_POLICY with a message naming the preset (its name cleaned for a
 * terminal), its depth and the limit, e.g. `preset 3 "Scar": depth 2.00 mm
 * is above 1.50 mm; add --confirm to push it`; or PL_ERR_ARG for a NULL
 * policy, actor or next.
 */
int pl_policy_check_push(const struct pl_policy *policy,
                         const struct pl_policy_actor *actor,
                         const struct pl_preset_set *old,
                         const struct pl_preset_set *next, bool confirmed);

/* ------------------------------------------------------------------ helpers */

/* Lower-case hex of len bytes, "0f0e...": out must hold 2*len+1 bytes;
 * data may be NULL only when len is 0.  Never fails. */
void pl_hex_format(const uint8_t *data, size_t len, char *out);
/* Canonical 8-4-4-4-12 form, lower case; out must hold 37 bytes.  Never
 * fails. */
void pl_uuid_format(const uint8_t uuid[16], char out[37]);
/* SHA-256 of a file's whole content into out (not NULL).  Returns PL_OK,
 * PL_ERR_ARG (NULL path or out), PL_ERR_NOT_FOUND, PL_ERR_ACCESS, PL_ERR_IO,
 * or PL_ERR_MEM (also when libcrypto fails); out is unchanged on failure,
 * except after a libcrypto failure at the very end. */
int pl_sha256_file(const char *path, uint8_t out[32]);
/* SHA-256 of a buffer (data may be NULL only when len is 0).  Never fails;
 * on a broken libcrypto out is all zeros (which matches no record). */
void pl_sha256(const void *data, size_t len, uint8_t out[32]);

#ifdef __cplusplus
}
#endif

#endif
