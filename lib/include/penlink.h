/*
 * libpenlink — talk to a penlink microneedling pen over its USB CDC-ACM link.
 *
 * Conventions (as in libserialport):
 *  - every function that can fail returns an int: PL_OK (0) or a negative
 *    enum pl_return code;
 *  - pl_error_name() names a code; pl_error_message() gives the detail of
 *    the last failure in the calling thread, in words a technician can act
 *    on ("depth 2.60 mm is above this pen's maximum of 2.50 mm");
 *  - handles are opaque; plain data (presets, device info, session metadata)
 *    is in public structs the caller owns;
 *  - a pen handle is used from one thread at a time.
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

/* Short name of a code, e.g. "timeout".  Never NULL. */
const char *pl_error_name(int code);

/*
 * Detail of the last failure in this thread, e.g. "no answer from the pen on
 * /dev/ttyACM0 within 1000 ms".  Valid until the next libpenlink call in the
 * same thread.  Never NULL.
 */
const char *pl_error_message(void);

/*
 * For programs built on libpenlink (penlinkd, penctl): records a failure of
 * their own exactly as the library records its own, so that
 * pl_error_message() is the one place a caller looks for the detail.
 *
 * code: the negative enum pl_return value to return.
 * fmt:  printf-style message; the result is cut at 1023 bytes and cleaned
 *       for PL_TEXT_LOG (no control characters, valid UTF-8).
 * Returns code, so callers write `return pl_error_set(PL_ERR_IO, ...)`.
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
 * non-blocking; pl_transport_wait() blocks.
 */
struct pl_transport;

/*
 * Opens a port by path.  Uses libserialport when it recognises the port
 * (e.g. /dev/ttyACM0), otherwise opens it as a plain tty.  The port is put in
 * raw mode and locked against other penlink programs (flock).
 * Errors: PL_ERR_NO_PORT, PL_ERR_PORT_BUSY, PL_ERR_ACCESS, PL_ERR_IO.
 */
int pl_transport_open(const char *path, struct pl_transport **out);

/* Forces the libserialport backend. */
int pl_transport_open_serial(const char *path, struct pl_transport **out);

/* Forces the file-descriptor backend (tty put in raw mode, and locked). */
int pl_transport_open_tty(const char *path, struct pl_transport **out);

/* Wraps an open descriptor (socket, pipe, pty).  own: close it on close. */
int pl_transport_from_fd(int fd, bool own, struct pl_transport **out);

/* Custom backends (e.g. the daemon's USB glue). */
struct pl_transport_ops {
	/* >= 0 bytes read (0: nothing available now), or a negative code. */
	int (*read)(void *ctx, void *buf, size_t len);
	/* >= 0 bytes written (0: would block), or a negative code. */
	int (*write)(void *ctx, const void *buf, size_t len);
	/* see pl_transport_wait(). */
	int (*wait)(void *ctx, bool want_write, int timeout_ms);
	/* pollable descriptor, or -1. */
	int (*fd)(void *ctx);
	void (*close)(void *ctx);
};
int pl_transport_new(const struct pl_transport_ops *ops, void *ctx,
                     const char *name, struct pl_transport **out);

#define PL_WAIT_READABLE 1
#define PL_WAIT_WRITABLE 2
int pl_transport_read(struct pl_transport *t, void *buf, size_t len);
int pl_transport_write(struct pl_transport *t, const void *buf, size_t len);
/* Returns a mask of PL_WAIT_*, 0 on timeout, or a negative code.
 * timeout_ms < 0 waits forever. */
int pl_transport_wait(struct pl_transport *t, bool want_write, int timeout_ms);
int pl_transport_fd(const struct pl_transport *t);
/* The path or a description, for messages. */
const char *pl_transport_name(const struct pl_transport *t);
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
 * Lists serial ports on USB whose VID/PID match (vid 0: any USB serial
 * port), via libserialport's USB metadata.  Free *out with free().
 */
int pl_ports_find(uint16_t vid, uint16_t pid, struct pl_port_info **out,
                  size_t *count);

/* ------------------------------------------------------------------ opening */

struct pl_pen;

enum pl_frame_dir { PL_FRAME_IN, PL_FRAME_OUT, PL_FRAME_DROPPED };

/*
 * Frame logger (penctl --dump-frames): text is one line describing the
 * frame, e.g. `id=7 read_session{id:3 offset:65536 length:16384}` or, for a
 * dropped frame, the reason.  raw_len is the payload length.
 */
typedef void (*pl_frame_log_fn)(void *ud, enum pl_frame_dir dir,
                                const char *text, size_t raw_len);

struct pl_open_options {
	/* sizeof(struct pl_open_options) as the caller was compiled, set by
	 * pl_open_options_init(): the library reads only the fields a caller
	 * knows, so fields added at the end later keep the ABI. */
	size_t size;
	int timeout_ms;         /* per request before a retry; default 1000 */
	int retries;            /* retries after a timeout; default 2 */
	int handshake_ms;       /* keep retrying the handshake this long; default 5000 */
	uint32_t max_frame;     /* largest envelope we accept; default 65536 */
	uint32_t max_in_flight; /* requests we allow outstanding; default 16 */
	pl_frame_log_fn frame_log;
	void *frame_log_ud;
};

/* Fills in the defaults. */
void pl_open_options_init(struct pl_open_options *o);

/*
 * Opens the port (pl_transport_open) and performs the handshake, retrying
 * until the pen answers or handshake_ms passes.  opts may be NULL.
 */
int pl_pen_open(const char *path, const struct pl_open_options *opts,
                struct pl_pen **out);

/* Same over an existing transport; takes ownership of t, even on failure. */
int pl_pen_open_transport(struct pl_transport *t,
                          const struct pl_open_options *opts,
                          struct pl_pen **out);

/*
 * Closes the pen and its transport.  Asynchronous calls still outstanding
 * are dropped: their callbacks are NOT called (nor sinks, progress or the
 * event handler any more), and what they hold is freed.  May be called
 * from a callback running inside pl_pen_handle_events(); the memory is then
 * freed when that returns, so the pen must not be used after this call.
 */
void pl_pen_close(struct pl_pen *pen);

/* Negotiated parameters. */
const char *pl_pen_serial(const struct pl_pen *pen);
uint32_t pl_pen_protocol_version(const struct pl_pen *pen);
uint32_t pl_pen_max_frame(const struct pl_pen *pen);     /* min of both sides */
uint32_t pl_pen_max_in_flight(const struct pl_pen *pen); /* min of both sides */
uint32_t pl_pen_capabilities(const struct pl_pen *pen);
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
void pl_pen_link_stats(const struct pl_pen *pen, struct pl_link_stats *out);

/* Round trip of one ping, in microseconds. */
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

/* Reads the device info (and caches its limits for preset validation). */
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

/* "forehead", "glabella", ..., "chin-jaw", "decollete", "stretch-marks",
 * "body-scar", "other"; NULL for unknown values. */
const char *pl_area_name(enum pl_area area);
/* Accepts the names above (case-insensitive, '_' or '-' or ' ', "décolleté").
 * Returns the area or PL_ERR_ARG. */
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
 * Checks a preset against a pen's limits: depth within range and on the
 * step, speed level within range, level 1 at or above the slow-lock depth,
 * name non-empty, at most 32 bytes and valid UTF-8, area known.  On failure
 * returns PL_ERR_VALIDATION and the message names the field, the value and
 * the limit.  Used by pl_pen_put_presets(); exposed for policy layers.
 */
int pl_preset_validate(const struct pl_device_info *limits,
                       const struct pl_preset *p);
/* Every preset, plus: ids unique and in 1..max_presets, count <= max_presets. */
int pl_preset_set_validate(const struct pl_device_info *limits,
                           const struct pl_preset_set *set);

int pl_pen_get_presets(struct pl_pen *pen, struct pl_preset_set *out);

/*
 * Replaces the pen's presets with set->presets, provided the pen's revision
 * is still set->revision (else PL_ERR_CONFLICT).  Validates first against
 * the pen's limits, then reads the set back and compares
 * (PL_ERR_VERIFY on a difference).  result (may be NULL) receives the set
 * as read back, with its new revision.
 */
int pl_pen_put_presets(struct pl_pen *pen, const struct pl_preset_set *set,
                   struct pl_preset_set *result);

/*
 * Preset-set files (JSON, depths in millimetres):
 *   {"presets": [{"id": 1, "name": "Forehead fine", "depth_mm": 0.5,
 *                 "speed": 3, "area": "forehead", "needles": 12,
 *                 "max_duration_s": 600}, ...]}
 * "area" (default "other"), "needles" and "max_duration_s" are optional.  Errors name the
 * place: "presets[2].depth_mm: expected a number".  revision is left 0.
 */
int pl_preset_set_from_json(const char *text, struct pl_preset_set *out);
/* The same format; returns a malloc'd string. */
char *pl_preset_set_to_json(const struct pl_preset_set *set);
/* Millimetre text ("0.25", "1.5") to micrometres, exactly; PL_ERR_PARSE. */
int pl_depth_parse_mm(const char *text, uint32_t *um);

/* ------------------------------------------------------------------ clock */

/* Sets the pen's clock to the host's UTC time.  offset_ms (may be NULL)
 * receives pen minus host before the sync (0 if the pen had no RTC time). */
int pl_pen_clock_sync(struct pl_pen *pen, int64_t *offset_ms);
int pl_pen_clock_get(struct pl_pen *pen, int64_t *utc_ms, bool *rtc_set,
                 uint64_t *uptime_ms);

/* ------------------------------------------------------------------ sessions */

/* struct pl_session_info (a session as a pen lists it) is in
 * penlink_wire.h: the firmware bridge fills the very same struct. */

/* All sessions on the pen (all pages).  Free *out with free(). */
int pl_pen_list_sessions(struct pl_pen *pen, struct pl_session_info **out,
                     size_t *count);

/* Receives the record's bytes in order.  Return PL_OK, or a negative code
 * to abort the download with it. */
typedef int (*pl_sink_fn)(void *ud, uint64_t offset, const uint8_t *data,
                          size_t len);
typedef void (*pl_progress_fn)(void *ud, uint64_t done, uint64_t total);

struct pl_download_options {
	size_t size;              /* as in pl_open_options; set by pl_download_options_init() */
	pl_sink_fn sink;
	pl_progress_fn progress;  /* may be NULL */
	void *ud;
	uint32_t window;          /* requests in flight; 0 = as many as the pen allows */
	uint32_t chunk;           /* bytes per request; 0 = as large as frames allow */
};

/* Zeroes o and sets its size; a sink must then be set.  Never fails. */
void pl_download_options_init(struct pl_download_options *o);

/*
 * Downloads s's record from byte `offset` to its end, pipelined.  Bytes
 * reach the sink strictly in order.  Digest checking is the caller's (see
 * pl_pen_download_session_to_file) because only it holds the earlier bytes of a
 * resumed download.
 */
int pl_pen_download_session(struct pl_pen *pen, const struct pl_session_info *s,
                        uint64_t offset, const struct pl_download_options *o);

/*
 * Downloads into path, resuming from the bytes already there: appends,
 * fsyncs, then re-reads the whole file and checks its SHA-256 against s
 * (PL_ERR_DIGEST, and the file is removed, if it differs; a file longer
 * than the record is also removed).  On PL_OK the file is complete,
 * verified and durable.
 */
int pl_pen_download_session_to_file(struct pl_pen *pen,
                                const struct pl_session_info *s,
                                const char *path, pl_progress_fn progress,
                                void *ud);

/* Tells the pen the record is stored durably and verified, so it may reclaim
 * it.  Idempotent. */
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

typedef void (*pl_event_fn)(void *ud, const struct pl_event *ev);
void pl_pen_set_event_handler(struct pl_pen *pen, pl_event_fn fn, void *ud);

/* Starts (or stops) the pen's trace stream at the given level (0..3). */
int pl_pen_trace_subscribe(struct pl_pen *pen, bool enable, uint32_t level);

/*
 * Waits up to timeout_ms (< 0: forever) for frames and dispatches
 * unsolicited ones to the event handler.  Returns PL_OK on timeout, or a
 * negative code (PL_ERR_UNPLUGGED when the pen goes away).
 */
int pl_pen_poll(struct pl_pen *pen, int timeout_ms);

/* ------------------------------------------------------------------ asynchronous use
 *
 * For programs with their own event loop (penlinkd), as in libusb: every
 * blocking call above is this asynchronous core plus a loop that waits.
 *
 * Driving a pen from a poll()/epoll loop:
 *   - watch pl_pen_fd() for input, and for output while pl_pen_want_write();
 *   - sleep no longer than pl_pen_next_timeout();
 *   - call pl_pen_handle_events() with what the loop saw (PL_WAIT_* mask,
 *     0 when only the timeout passed).
 * Completion callbacks run inside pl_pen_handle_events() (or inside
 * pl_pen_open_async() never: it only queues).  A callback may start further
 * asynchronous calls on the same pen; it must not call blocking ones.
 * Output pointers passed to an _async call must stay valid until its
 * callback ran.  status is PL_OK or a negative code; on failure
 * pl_error_message() (in the callback) has the detail.
 * If the link dies (unplug), every outstanding call completes with that
 * code, and pl_pen_handle_events() returns it.
 * The blocking calls must not be used on a pen while asynchronous calls are
 * outstanding on it.
 *
 * Every _async call returns PL_OK when the call is under way: done then
 * runs exactly once, from pl_pen_handle_events(), even when the call fails
 * at once (a validation error, a dead link, a pen whose handshake has not
 * finished); meanwhile pl_pen_next_timeout() returns 0.  It returns a
 * negative code, and done is never called, only when the call could not be
 * queued at all (no pen, a pen being closed, out of memory).  Several calls
 * may be outstanding on one pen; they share its window of requests.
 */
typedef void (*pl_done_fn)(void *ud, int status);

/* Queues the handshake (retried until handshake_ms as in pl_pen_open) on t
 * (taken over, even on failure) and returns the pen at once; done runs
 * when the pen answered or the handshake failed.  Close the pen with
 * pl_pen_close() either way. */
int pl_pen_open_async(struct pl_transport *t, const struct pl_open_options *opts,
                      pl_done_fn done, void *ud, struct pl_pen **out);

int pl_pen_fd(const struct pl_pen *pen);
bool pl_pen_want_write(const struct pl_pen *pen);
/* Milliseconds until the pen needs pl_pen_handle_events() without I/O
 * (a request deadline), or -1 when nothing is pending: an idle pen costs
 * no wake-ups. */
int pl_pen_next_timeout(const struct pl_pen *pen);
int pl_pen_handle_events(struct pl_pen *pen, int mask);
/* Asynchronous calls not yet completed. */
unsigned pl_pen_outstanding(const struct pl_pen *pen);

int pl_pen_get_info_async(struct pl_pen *pen, struct pl_device_info *out,
                      pl_done_fn done, void *ud);
int pl_pen_get_presets_async(struct pl_pen *pen, struct pl_preset_set *out,
                         pl_done_fn done, void *ud);
/* Validation, write and read-back as pl_pen_put_presets(). */
int pl_pen_put_presets_async(struct pl_pen *pen, const struct pl_preset_set *set,
                         struct pl_preset_set *result, pl_done_fn done,
                         void *ud);
int pl_pen_clock_sync_async(struct pl_pen *pen, int64_t *offset_ms,
                        pl_done_fn done, void *ud);
/* *out is malloc'd (free() it) once done reports PL_OK. */
int pl_pen_list_sessions_async(struct pl_pen *pen, struct pl_session_info **out,
                           size_t *count, pl_done_fn done, void *ud);
/* As pl_pen_download_session(); the sink and progress run from
 * pl_pen_handle_events().  *s and *o must stay valid until done. */
int pl_pen_download_session_async(struct pl_pen *pen,
                              const struct pl_session_info *s, uint64_t offset,
                              const struct pl_download_options *o,
                              pl_done_fn done, void *ud);
int pl_pen_archive_session_async(struct pl_pen *pen, uint32_t id,
                             const uint8_t sha256[32], pl_done_fn done,
                             void *ud);
int pl_pen_trace_subscribe_async(struct pl_pen *pen, bool enable, uint32_t level,
                             pl_done_fn done, void *ud);

/* ------------------------------------------------------------------ records */

/* A decoded session record (proto/record.proto). */
struct pl_record;

int pl_record_parse(const uint8_t *data, size_t len, struct pl_record **out);
int pl_record_parse_file(const char *path, struct pl_record **out);
void pl_record_free(struct pl_record *r);

/* A report for people: identity, times, preset, cartridge, summary,
 * events, and a telemetry overview. */
int pl_record_print(const struct pl_record *r, FILE *out);
/* JSON (documented in README); with_samples includes every telemetry
 * sample.  Returns a malloc'd string or NULL (PL_ERR_MEM). */
char *pl_record_to_json(const struct pl_record *r, bool with_samples);

/* Identity and times of a parsed record (CSV export, file names). */
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
void pl_record_telemetry(const struct pl_record *r, struct pl_telemetry *out);

/* The record's events in order.  kind is the record.proto EventKind number
 * (newer pens may send numbers this build does not name).  Fills at most
 * max rows of out (out may be NULL when max is 0) and returns the total
 * count, so a caller can size its buffer with a first call. */
struct pl_event_row {
	uint32_t offset_ms;  /* since the start */
	int kind;
	int32_t value;       /* meaning depends on kind (record.proto) */
};
size_t pl_record_events(const struct pl_record *r, struct pl_event_row *out,
                        size_t max);
/* "start", "depth_change", ... as in the JSON form; NULL for a kind this
 * build does not know.  The string is static. */
const char *pl_record_event_kind_name(int kind);

/* ------------------------------------------------------------------ model
 *
 * The one home of the domain's conversions, for every program and every
 * output: depths as millimetre text, times, a session's identity, text from
 * pens and clients cleaned for the place it goes, the wire encoding of
 * presets and device info, and the clinic's preset policy.  penlinkd and
 * penctl use these instead of keeping copies of their own.
 * None of these functions touches a pen; all are safe to call from any
 * thread on distinct objects (a struct pl_policy is read-only once built,
 * and may then be shared).
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
 * Micrometres as millimetre text in out (PL_MM_TEXT_MAX bytes).  Returns
 * out; an unknown style is taken as PL_MM_FIXED.  Never fails.
 */
const char *pl_depth_format_mm(uint32_t um, enum pl_mm_style style,
                               char out[PL_MM_TEXT_MAX]);

/* ---- times */

#define PL_TIME_TEXT_MAX 48 /* bytes a time text needs, NUL included */

/*
 * UTC milliseconds as ISO 8601 with milliseconds, "2024-05-01T12:03:22.120Z",
 * in out (PL_TIME_TEXT_MAX bytes).  A time the C library cannot represent
 * gives "" (never a wrong date).  Returns out.
 */
const char *pl_time_format_utc(int64_t utc_ms, char out[PL_TIME_TEXT_MAX]);
/* The same instant in the host's local time zone, to the second, for
 * people: "2024-05-01 14:03:22"; "@<ms> ms" when it cannot be represented.
 * Returns out. */
const char *pl_time_format_local(int64_t utc_ms, char out[PL_TIME_TEXT_MAX]);
/* Milliseconds of CLOCK_MONOTONIC: for deadlines and rates, never for
 * dates. */
int64_t pl_time_monotonic_ms(void);
/* The host's UTC time in milliseconds since the Unix epoch. */
int64_t pl_time_utc_ms(void);

/* ---- untrusted text
 *
 * Serials, models, preset names, trace lines, notes and error messages come
 * from pens and clients that may be broken or hostile.  Whatever they hold,
 * what penlink prints, stores as a file name or writes as JSON/CSV is
 * cleaned by pl_text_clean() for that place first.
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
	 * run as a formula (starting with = + - @ or a tab) gets a leading
	 * apostrophe.  Quoting is the CSV writer's. */
	PL_TEXT_CSV,
	/* One path component: only A-Z a-z 0-9 - _ . are kept, every other
	 * byte becomes '_', a leading '.' too (no hidden file, no ".."); empty
	 * text gives "_". */
	PL_TEXT_FILENAME,
};

/*
 * Cleans the NUL-terminated text (NULL counts as "") for target into out.
 *
 * out/cap: cap bytes; when cap > 0 out is always NUL-terminated, cut at a
 * character boundary if the cleaned text does not fit.  out may be NULL
 * when cap is 0 (to measure).
 * Returns the length the whole cleaned text needs, NUL not counted, as
 * snprintf does: a result >= cap means out was cut.  Never fails.
 */
size_t pl_text_clean(enum pl_text_target target, const char *text, char *out,
                     size_t cap);
/* As pl_text_clean() into a malloc'd string (free() it); NULL only when
 * out of memory (PL_ERR_MEM). */
char *pl_text_clean_dup(enum pl_text_target target, const char *text);
/* Whether len bytes at s are strict UTF-8 (no overlong forms, surrogates,
 * code points above U+10FFFF or NUL bytes). */
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
 * 1 to 63 bytes.  Returns PL_OK, or PL_ERR_PARSE with a message naming what
 * was wrong; *out is unchanged on failure.
 */
int pl_session_key_parse(const char *text, struct pl_session_key *out);
/* "SERIAL/UUID" into out (cap bytes), the serial cleaned for target.
 * Returns as pl_text_clean(). */
size_t pl_session_key_format(const struct pl_session_key *key,
                             enum pl_text_target target, char *out,
                             size_t cap);
/* True when both name the same session. */
bool pl_session_key_equal(const struct pl_session_key *a,
                          const struct pl_session_key *b);
/*
 * The file name a pulled or exported record gets:
 * "<serial>-<seq, 6 digits>-<uuid>.plrec", the serial cleaned with
 * PL_TEXT_FILENAME ("pen" when empty), so no serial can name another
 * folder.  Returns as pl_text_clean().
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
 * Decodes len bytes of a serialized pl.PresetSet.  At most PL_MAX_PRESETS
 * presets (more: PL_ERR_PARSE); names longer than PL_PRESET_NAME_MAX bytes
 * are cut, not refused (validation says what is wrong with them).  Returns
 * PL_OK, PL_ERR_ARG (NULL out) or PL_ERR_PARSE; *out is unchanged on
 * failure.
 */
int pl_preset_set_decode(const uint8_t *data, size_t len,
                         struct pl_preset_set *out);
/* Serializes set as pl.PresetSet into a malloc'd buffer (*out, free() it;
 * *len bytes).  PL_ERR_ARG, PL_ERR_MEM; *out is NULL on failure. */
int pl_preset_set_encode(const struct pl_preset_set *set, uint8_t **out,
                         size_t *len);
/* As above for pl.DeviceInfo.  Text fields are cut to their struct sizes;
 * more than PL_MAX_SPEED_LEVELS stroke rates is PL_ERR_PARSE. */
int pl_device_info_decode(const uint8_t *data, size_t len,
                          struct pl_device_info *out);
int pl_device_info_encode(const struct pl_device_info *info, uint8_t **out,
                          size_t *len);

/* ---- the clinic's preset policy
 *
 * On top of a pen's own limits (pl_preset_validate(), and the pen itself),
 * a clinic may cap depths per group of users and ask for an explicit
 * confirmation above a depth.  This is the one implementation of that
 * decision: penlinkd applies it to every push through the daemon, penctl
 * applies it to pushes with --port.  Caps come first (a push the user may
 * not make at all is not first asked to be confirmed); only presets a push
 * adds or whose depth it changes count, so a deep preset already on the
 * pen, left as it is, needs no new confirmation.
 */
struct pl_policy;

#define PL_POLICY_CONFIRM_ABOVE_UM 1500u /* the default threshold, 1.50 mm */

/* A policy with the defaults: confirmation above 1.50 mm, no caps.
 * PL_ERR_ARG (NULL out), PL_ERR_MEM; *out is NULL on failure. */
int pl_policy_new(struct pl_policy **out);
void pl_policy_free(struct pl_policy *policy);

/*
 * Sets one key of a configuration's [policy] section from its text:
 *   confirm_above_mm = MM    deeper presets need a confirmation
 *   depth_cap.GROUP = MM     members of GROUP may push at most MM
 *                            (at most 16 groups; a member of several
 *                            capped groups gets the largest cap)
 * MM is millimetre text (pl_depth_parse_mm).  Returns PL_OK, or
 * PL_ERR_PARSE with a message naming the key and the value; the policy is
 * unchanged on failure.
 */
int pl_policy_set(struct pl_policy *policy, const char *key,
                  const char *value);
uint32_t pl_policy_confirm_above_um(const struct pl_policy *policy);
/* The i-th cap (0-based) in *group (owned by the policy) and *depth_um;
 * PL_ERR_NOT_FOUND past the last. */
int pl_policy_cap(const struct pl_policy *policy, size_t i,
                  const char **group, uint32_t *depth_um);

/* Who asks for a push. */
struct pl_policy_actor {
	const char *user;          /* for messages, e.g. "alice" */
	bool uncapped;             /* root and penlinkd's own user: no cap */
	const char *const *groups; /* names of the groups the user belongs to */
	size_t n_groups;
};

/*
 * The decision for a push of next over old (the pen's current set; NULL:
 * every preset counts as new), with confirmed the user's explicit
 * confirmation (penctl --confirm).  Returns PL_OK, or PL_ERR_POLICY with a
 * message naming the preset, its depth and the limit, e.g.
 * `preset 3 "Scar": depth 2.00 mm is above 1.50 mm; add --confirm to push
 * it`, or PL_ERR_ARG for a NULL policy, actor or next.
 */
int pl_policy_check_push(const struct pl_policy *policy,
                         const struct pl_policy_actor *actor,
                         const struct pl_preset_set *old,
                         const struct pl_preset_set *next, bool confirmed);

/* ------------------------------------------------------------------ helpers */

/* "0f0e...": out must hold 2*len+1. */
void pl_hex_format(const uint8_t *data, size_t len, char *out);
/* Canonical 8-4-4-4-12 form; out must hold 37 bytes. */
void pl_uuid_format(const uint8_t uuid[16], char out[37]);
/* SHA-256 of a file's whole content. */
int pl_sha256_file(const char *path, uint8_t out[32]);
/* SHA-256 of a buffer. */
void pl_sha256(const void *data, size_t len, uint8_t out[32]);

#ifdef __cplusplus
}
#endif

#endif
