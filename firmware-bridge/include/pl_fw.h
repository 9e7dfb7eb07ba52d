/*
 * penlink firmware bridge: the pen's side of the penlink protocol, in
 * portable C99 with no heap, for firmware to link in.
 *
 * The firmware owns one struct pl_fw (static storage), feeds it the bytes its
 * USB CDC-ACM receive path delivers (any split), and supplies callbacks for
 * sending bytes and for its storage, clock and device info.  The bridge
 * decodes frames (lib/src/frame.c, the same code the host uses), unpacks
 * protobuf into a static arena, validates every request itself — presets
 * against the device limits, independently of the host — and replies.
 *
 * Nothing here blocks or allocates.  Handlers run in the caller's context
 * (call pl_fw_rx from the main loop, not from the USB interrupt).
 */
#ifndef PL_FW_H
#define PL_FW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "penlink_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Compile-time sizing; override with -D for small parts. */
#ifndef PL_FW_MAX_FRAME
#define PL_FW_MAX_FRAME 16384u     /* largest envelope the pen accepts and sends */
#endif
#ifndef PL_FW_MAX_IN_FLIGHT
#define PL_FW_MAX_IN_FLIGHT 8u     /* requests the host may pipeline */
#endif
#ifndef PL_FW_ARENA
#define PL_FW_ARENA (PL_FW_MAX_FRAME + 8192u) /* protobuf-c unpack arena */
#endif
#ifndef PL_FW_MAX_PRESETS
#define PL_FW_MAX_PRESETS 32u
#endif

/* Status codes handlers return; map to the wire's ErrorCode. */
enum pl_fw_status {
	PL_FW_OK = 0,
	PL_FW_BAD_REQUEST = -1,
	PL_FW_VALIDATION = -2,
	PL_FW_CONFLICT = -3,
	PL_FW_BUSY = -4,
	PL_FW_NOT_FOUND = -5,
	PL_FW_INTERNAL = -6,
	PL_FW_UNSUPPORTED = -7,
};

struct pl_fw_device_info {
	const char *serial;
	const char *model;
	const char *hw_revision;
	const char *fw_version;
	uint32_t capabilities;        /* PL_CAP_* */
	uint32_t depth_min_um;
	uint32_t depth_max_um;
	uint32_t depth_step_um;
	uint32_t speed_levels;
	uint32_t stroke_rate_hz[PL_MAX_SPEED_LEVELS];
	uint32_t slow_lock_depth_um;
	uint32_t max_presets;         /* <= PL_FW_MAX_PRESETS */
	uint64_t total_strokes;
	uint64_t motor_seconds;
	uint32_t battery_percent;
	uint32_t battery_mv;
	bool charging;
};


struct pl_fw_preset {
	uint32_t id;
	char name[PL_PRESET_NAME_MAX + 1];
	uint32_t depth_um;
	uint32_t speed_level;
	uint32_t area;               /* pl.Area value, 1..14 */
	uint32_t needle_count;
	uint32_t max_duration_s;
};


/* What the firmware supplies.  ctx is passed back to every call. */
struct pl_fw_ops {
	/* Writes bytes to the USB IN endpoint; must take all of them (block or
	 * queue).  Returns PL_FW_OK or PL_FW_INTERNAL. */
	int (*send)(void *ctx, const uint8_t *data, size_t len);

	/* Fills in the current device info (counters and battery fresh). */
	void (*get_info)(void *ctx, struct pl_fw_device_info *out);

	/* Presets: load the stored set; store a new one atomically. */
	int (*presets_load)(void *ctx, struct pl_fw_preset *out, size_t max,
	                    size_t *count, uint32_t *revision);
	int (*presets_store)(void *ctx, const struct pl_fw_preset *p,
	                     size_t count, uint32_t revision);

	/* Sessions, ordered by id.  session_next: the first session with
	 * id > after_id, or PL_FW_NOT_FOUND when there is none. */
	int (*session_next)(void *ctx, uint32_t after_id,
	                    struct pl_session_info *out);
	int (*session_get)(void *ctx, uint32_t id, struct pl_session_info *out);
	/* Reads len bytes at offset into buf (the caller checked the range). */
	int (*session_read)(void *ctx, uint32_t id, uint64_t offset,
	                    uint8_t *buf, size_t len);
	/* Marks the session archived (the host stored and verified it). */
	int (*session_archive)(void *ctx, uint32_t id);

	/* Clock: uptime always; UTC once a host set it. */
	uint64_t (*uptime_ms)(void *ctx);
	int64_t (*rtc_get)(void *ctx, bool *is_set);
	void (*rtc_set)(void *ctx, int64_t utc_ms);

	/* Optional (may be NULL): a request arrived or was answered, for the
	 * firmware's own trace. */
	void (*log)(void *ctx, const char *line);
};

/* Counters the firmware can show in its diagnostics. */
struct pl_fw_stats {
	uint32_t requests;
	uint32_t errors_sent;
	uint32_t validation_refusals;
	uint32_t unpack_failures;
	struct pl_frame_stats frames;
};

/* All state of the endpoint; allocate it statically.  Fields are private. */
struct pl_fw {
	const struct pl_fw_ops *ops;
	void *ctx;
	struct pl_frame_decoder dec;
	uint8_t rx_buf[PL_FRAME_RAW_LEN(PL_FW_MAX_FRAME)];
	uint8_t tx_frame[PL_FRAME_ENCODED_MAX(PL_FW_MAX_FRAME)];
	uint8_t arena[PL_FW_ARENA];
	size_t arena_used;
	uint32_t host_max_frame;     /* from the handshake; 0 before it */
	uint32_t version;
	bool trace_on;
	uint32_t trace_level;
	struct pl_fw_preset presets_scratch[PL_FW_MAX_PRESETS];
	struct pl_fw_stats stats;
};

void pl_fw_init(struct pl_fw *fw, const struct pl_fw_ops *ops, void *ctx);

/* Feeds bytes received from the host; replies go out through ops->send. */
void pl_fw_rx(struct pl_fw *fw, const uint8_t *data, size_t len);

/* Host disconnected (DTR dropped / USB reset): forget partial frames and
 * the trace subscription. */
void pl_fw_reset(struct pl_fw *fw);

/* Unsolicited frames.  Trace lines are sent only while the host subscribed
 * at a level >= level.  Return PL_FW_OK, or PL_FW_INTERNAL if send failed. */
int pl_fw_trace(struct pl_fw *fw, uint32_t level, const char *text);
int pl_fw_state_event(struct pl_fw *fw, uint32_t kind, uint32_t value,
                      const char *detail);

/*
 * The endpoint's own preset check (brief §2), independent of the host's.
 * A name is 1 to PL_PRESET_NAME_MAX bytes of UTF-8 without control
 * characters (C0, DEL, C1); a NUL inside a name on the wire is refused by
 * the endpoint before this check, which sees the stored, terminated form.
 * On failure fills field ("presets[1].depth_um"), value and limit, and a
 * human message, and returns PL_FW_VALIDATION.
 */
struct pl_fw_refusal {
	char field[48];
	int64_t value;
	int64_t limit;
	char message[128];
};
int pl_fw_validate_presets(const struct pl_fw_device_info *info,
                           const struct pl_fw_preset *p, size_t count,
                           struct pl_fw_refusal *why);

const struct pl_fw_stats *pl_fw_get_stats(const struct pl_fw *fw);

#ifdef __cplusplus
}
#endif

#endif
