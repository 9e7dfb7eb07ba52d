/*
 * penlink firmware bridge: the pen's protocol endpoint (see pl_fw.h).
 *
 * Portable C99 with no heap.  Every request is unpacked by protobuf-c into
 * fw->arena through a bump allocator that is reset per frame; the reply's
 * own sub-messages and chunk data come from the same arena, so the only
 * stack use is a handful of small structs.  Replies are packed straight
 * into their frame in fw->tx_frame (protobuf-c hands each piece to the
 * frame writer, chunk data from where the flash read put it) and handed
 * to ops->send.
 *
 * Re-entrancy: pl_fw_trace() and pl_fw_state_event() may be called from the
 * storage, clock and log callbacks (they only touch the tx buffers, which are
 * free whenever a callback other than send runs), never from send itself.
 */
#include "pl_fw.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "penlink.pb-c.h"

/* The negotiated protocol version this endpoint speaks. */
#define FW_PROTOCOL_VERSION 1u

/*
 * Bytes a SessionChunk envelope needs around its data: id (1+5), body tag
 * (2) and length (3), chunk id (1+5), offset (1+10), data tag and length
 * (1+3), eof (2) = 34; rounded up so a rounding slip can never push a reply
 * over the host's limit.
 */
#define FW_CHUNK_OVERHEAD 48u

/* Envelope bytes around a SessionList's entries: id, body tag and length,
 * the `more` flag. */
#define FW_LIST_OVERHEAD 16u

/* A host that cannot take even a page of one session or a useful chunk is
 * refused at the handshake rather than failing obscurely later. */
#define FW_MIN_HOST_FRAME 256u

#define FW_ALIGN 8u

/* ------------------------------------------------------------------ arena */

struct arena_ctx {
	struct pl_fw *fw;
	int exhausted; /* an allocation failed: the request was too large */
};

static void *arena_take(struct pl_fw *fw, size_t size)
{
	uintptr_t base = (uintptr_t)(fw->arena + fw->arena_used);
	size_t pad = (size_t)((FW_ALIGN - (base % FW_ALIGN)) % FW_ALIGN);
	size_t avail = sizeof fw->arena - fw->arena_used;
	void *p;

	if (size == 0)
		size = 1; /* distinct non-NULL pointers for empty allocations */
	if (pad > avail || size > avail - pad)
		return NULL;
	p = fw->arena + fw->arena_used + pad;
	fw->arena_used += pad + size;
	return p;
}

/* Bytes still free in the arena for one allocation (alignment included). */
static size_t arena_left(const struct pl_fw *fw)
{
	size_t avail = sizeof fw->arena - fw->arena_used;
	return avail > FW_ALIGN ? avail - FW_ALIGN : 0;
}

static void *pb_alloc(void *data, size_t size)
{
	struct arena_ctx *a = data;
	void *p = arena_take(a->fw, size);

	if (!p)
		a->exhausted = 1;
	return p;
}

static void pb_free(void *data, void *ptr)
{
	/* The arena is released as a whole when the next frame arrives. */
	(void)data;
	(void)ptr;
}

/* ------------------------------------------------------------------ sending */

/* Largest envelope we may send: ours, and the host's once it told us. */
static size_t out_limit(const struct pl_fw *fw)
{
	if (fw->host_max_frame != 0 && fw->host_max_frame < PL_FW_MAX_FRAME)
		return fw->host_max_frame;
	return PL_FW_MAX_FRAME;
}

/* protobuf-c's output, framed as it comes. */
struct frame_sink {
	ProtobufCBuffer base;
	struct pl_frame_writer w;
};

static void frame_sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
	pl_frame_writer_add(&((struct frame_sink *)b)->w, data, len);
}

static int send_packed(struct pl_fw *fw, const Pl__Envelope *env)
{
	struct frame_sink sink = {.base = {frame_sink_append}};
	size_t n = pl__envelope__get_packed_size(env);
	size_t f;

	if (n > out_limit(fw))
		return PL_FW_BAD_REQUEST; /* caller decides what to say instead */
	pl_frame_writer_start(&sink.w, 0, fw->tx_frame, sizeof fw->tx_frame);
	pl__envelope__pack_to_buffer(env, &sink.base);
	f = pl_frame_writer_finish(&sink.w);
	if (f == 0)
		return PL_FW_INTERNAL;
	return fw->ops->send(fw->ctx, fw->tx_frame, f) == PL_FW_OK
	           ? PL_FW_OK
	           : PL_FW_INTERNAL;
}

static Pl__ErrorCode wire_code(int status)
{
	switch (status) {
	case PL_FW_BAD_REQUEST: return PL__ERROR_CODE__ERROR_CODE_BAD_REQUEST;
	case PL_FW_VALIDATION: return PL__ERROR_CODE__ERROR_CODE_VALIDATION;
	case PL_FW_CONFLICT: return PL__ERROR_CODE__ERROR_CODE_CONFLICT;
	case PL_FW_BUSY: return PL__ERROR_CODE__ERROR_CODE_BUSY;
	case PL_FW_NOT_FOUND: return PL__ERROR_CODE__ERROR_CODE_NOT_FOUND;
	case PL_FW_UNSUPPORTED: return PL__ERROR_CODE__ERROR_CODE_UNSUPPORTED;
	default: return PL__ERROR_CODE__ERROR_CODE_INTERNAL;
	}
}

static const char *status_name(int status)
{
	switch (status) {
	case PL_FW_OK: return "ok";
	case PL_FW_BAD_REQUEST: return "BAD_REQUEST";
	case PL_FW_VALIDATION: return "VALIDATION";
	case PL_FW_CONFLICT: return "CONFLICT";
	case PL_FW_BUSY: return "BUSY";
	case PL_FW_NOT_FOUND: return "NOT_FOUND";
	case PL_FW_UNSUPPORTED: return "UNSUPPORTED";
	default: return "INTERNAL";
	}
}

/* What one request is answered with, and the line it leaves in the log. */
struct req {
	uint32_t id;
	int status;
	char log[256];
	char msg[192]; /* room for a refusal's field, ": " and message */
	/* The envelope as it came and the arena's allocator, for a second
	 * reading of what protobuf-c's strings lose (preset names). */
	const uint8_t *payload;
	size_t payload_len;
	ProtobufCAllocator *alloc;
};

static void send_error_full(struct pl_fw *fw, uint32_t id, int status,
                            const char *message, const char *field,
                            int64_t value, int64_t limit)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__Error err = PL__ERROR__INIT;

	err.code = wire_code(status);
	err.message = (char *)message;
	if (field) {
		err.field = (char *)field;
		err.value = value;
		err.limit = limit;
	}
	env.id = id;
	env.body_case = PL__ENVELOPE__BODY_ERROR;
	env.error = &err;
	fw->stats.errors_sent++;
	if (send_packed(fw, &env) == PL_FW_BAD_REQUEST) {
		/* Even the error is over the host's limit (a long message and a
		 * tiny frame size): send the bare code. */
		err.message = (char *)"";
		err.field = (char *)"";
		(void)send_packed(fw, &env);
	}
}

static void fail(struct pl_fw *fw, struct req *r, int status, const char *msg)
{
	r->status = status;
	if (msg != r->msg)
		snprintf(r->msg, sizeof r->msg, "%s", msg);
	send_error_full(fw, r->id, status, r->msg, NULL, 0, 0);
}

/* Sends a reply; one that does not fit the host's frames becomes an error. */
static void reply(struct pl_fw *fw, struct req *r, Pl__Envelope *env)
{
	int rc;

	env->id = r->id;
	rc = send_packed(fw, env);
	if (rc == PL_FW_BAD_REQUEST) {
		char m[96];
		snprintf(m, sizeof m,
		         "reply of %lu bytes exceeds the frame limit of %lu bytes",
		         (unsigned long)pl__envelope__get_packed_size(env),
		         (unsigned long)out_limit(fw));
		fail(fw, r, PL_FW_INTERNAL, m);
	} else if (rc != PL_FW_OK) {
		r->status = PL_FW_INTERNAL;
		snprintf(r->msg, sizeof r->msg, "send failed");
	}
}

/* ------------------------------------------------------------------ validation */

/*
 * Offset of the first byte that is not part of well-formed UTF-8 (no
 * overlong forms, no surrogates, nothing above U+10FFFF), or -1 if all is
 * well.
 */
static long utf8_bad_offset(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n, k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1fu;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0fu;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07u;
		} else {
			return (long)i;
		}
		if (len - i <= n)
			return (long)i;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0u) != 0x80u)
				return (long)i;
			cp = (cp << 6) | (s[i + k] & 0x3fu);
		}
		if ((n == 2 && cp < 0x800u) || (n == 3 && cp < 0x10000u) ||
		    (cp >= 0xd800u && cp <= 0xdfffu) || cp > 0x10ffffu)
			return (long)i;
		i += n + 1;
	}
	return -1;
}

/*
 * Offset of the first control character (C0, DEL, or C1: U+0080-U+009F,
 * the bytes C2 80-C2 9F) in len bytes of well-formed UTF-8, or -1; its code
 * point in *cp.  A name is printed by every host, so it must be text.
 */
static long control_offset(const unsigned char *s, size_t len, unsigned *cp)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] < 0x20u || s[i] == 0x7fu) {
			*cp = s[i];
			return (long)i;
		}
		if (s[i] == 0xc2u && i + 1 < len && s[i + 1] <= 0x9fu) {
			*cp = s[i + 1];
			return (long)i;
		}
	}
	return -1;
}

#if defined(__GNUC__)
__attribute__((format(printf, 6, 7)))
#endif
static int refuse(struct pl_fw_refusal *why, size_t index, const char *name,
                  int64_t value, int64_t limit, const char *fmt, ...)
{
	va_list ap;

	if (!why)
		return PL_FW_VALIDATION;
	if (index == (size_t)-1)
		snprintf(why->field, sizeof why->field, "%s", name);
	else
		snprintf(why->field, sizeof why->field, "presets[%lu].%s",
		         (unsigned long)index, name);
	why->value = value;
	why->limit = limit;
	va_start(ap, fmt);
	vsnprintf(why->message, sizeof why->message, fmt, ap);
	va_end(ap);
	return PL_FW_VALIDATION;
}

/* strnlen() is POSIX, not C99. */
static size_t bounded_len(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n] != '\0')
		n++;
	return n;
}

int pl_fw_validate_presets(const struct pl_fw_device_info *info,
                           const struct pl_fw_preset *p, size_t count,
                           struct pl_fw_refusal *why)
{
	size_t max = info->max_presets;
	size_t i, j;

	if (max > PL_FW_MAX_PRESETS)
		max = PL_FW_MAX_PRESETS;
	if (why)
		memset(why, 0, sizeof *why);
	if (count > max)
		return refuse(why, (size_t)-1, "presets", (int64_t)count,
		              (int64_t)max,
		              "%lu presets is more than this pen holds (%lu)",
		              (unsigned long)count, (unsigned long)max);
	for (i = 0; i < count; i++) {
		const struct pl_fw_preset *q = &p[i];
		size_t nlen = bounded_len(q->name, sizeof q->name);
		unsigned cp = 0;
		long bad;

		if (q->id < 1)
			return refuse(why, i, "id", q->id, 1,
			              "preset id %u is below 1", q->id);
		if (q->id > max)
			return refuse(why, i, "id", q->id, (int64_t)max,
			              "preset id %u is above this pen's maximum of %lu",
			              q->id, (unsigned long)max);
		for (j = 0; j < i; j++)
			if (p[j].id == q->id)
				return refuse(why, i, "id", q->id, 1,
				              "preset id %u is used twice (presets[%lu] and presets[%lu])",
				              q->id, (unsigned long)j, (unsigned long)i);
		if (nlen == 0)
			return refuse(why, i, "name", 0, 1,
			              "preset %u has an empty name", q->id);
		if (nlen > PL_PRESET_NAME_MAX)
			return refuse(why, i, "name", (int64_t)nlen, PL_PRESET_NAME_MAX,
			              "name is %lu bytes, longer than %u",
			              (unsigned long)nlen, (unsigned)PL_PRESET_NAME_MAX);
		bad = utf8_bad_offset((const unsigned char *)q->name, nlen);
		if (bad >= 0)
			return refuse(why, i, "name", bad, 0,
			              "name is not valid UTF-8 (byte %ld)", bad);
		bad = control_offset((const unsigned char *)q->name, nlen, &cp);
		if (bad >= 0)
			return refuse(why, i, "name", bad, 0,
			              "name holds the control character U+%04X (byte %ld)",
			              cp, bad);
		if (q->depth_um < info->depth_min_um)
			return refuse(why, i, "depth_um", q->depth_um,
			              info->depth_min_um,
			              "depth %u um is below this pen's minimum of %u um",
			              q->depth_um, info->depth_min_um);
		if (q->depth_um > info->depth_max_um)
			return refuse(why, i, "depth_um", q->depth_um,
			              info->depth_max_um,
			              "depth %u um is above this pen's maximum of %u um",
			              q->depth_um, info->depth_max_um);
		if (info->depth_step_um != 0 &&
		    (q->depth_um - info->depth_min_um) % info->depth_step_um != 0)
			return refuse(why, i, "depth_um", q->depth_um,
			              info->depth_step_um,
			              "depth %u um is not on this pen's %u um steps from %u um",
			              q->depth_um, info->depth_step_um,
			              info->depth_min_um);
		if (q->speed_level < 1)
			return refuse(why, i, "speed_level", q->speed_level, 1,
			              "speed level %u is below 1", q->speed_level);
		if (q->speed_level > info->speed_levels)
			return refuse(why, i, "speed_level", q->speed_level,
			              info->speed_levels,
			              "speed level %u is above this pen's %u levels",
			              q->speed_level, info->speed_levels);
		if (info->slow_lock_depth_um != 0 &&
		    q->depth_um >= info->slow_lock_depth_um && q->speed_level != 1)
			return refuse(why, i, "speed_level", q->speed_level, 1,
			              "at %u um (slow lock from %u um) only speed level 1 is allowed, not %u",
			              q->depth_um, info->slow_lock_depth_um,
			              q->speed_level);
		if (q->area < PL__AREA__AREA_FOREHEAD)
			return refuse(why, i, "area", q->area, PL__AREA__AREA_FOREHEAD,
			              "area %u is not a known treatment area", q->area);
		if (q->area > PL__AREA__AREA_OTHER)
			return refuse(why, i, "area", q->area, PL__AREA__AREA_OTHER,
			              "area %u is not a known treatment area", q->area);
	}
	return PL_FW_OK;
}

/* ------------------------------------------------------------------ handlers */

static void get_info(struct pl_fw *fw, struct pl_fw_device_info *info)
{
	memset(info, 0, sizeof *info);
	fw->ops->get_info(fw->ctx, info);
	if (!info->serial)
		info->serial = "";
	if (!info->model)
		info->model = "";
	if (!info->hw_revision)
		info->hw_revision = "";
	if (!info->fw_version)
		info->fw_version = "";
}

static void on_hello(struct pl_fw *fw, struct req *r, const Pl__Hello *h)
{
	struct pl_fw_device_info info;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__HelloReply hr = PL__HELLO_REPLY__INIT;

	snprintf(r->log, sizeof r->log, "req %u hello v%u..%u max_frame=%u",
	         r->id, h->version_min, h->version_max, h->max_frame);
	/* A new host: whatever the previous one subscribed to ends here. */
	fw->trace_on = false;
	fw->trace_level = 0;
	if (h->version_min > FW_PROTOCOL_VERSION ||
	    h->version_max < FW_PROTOCOL_VERSION) {
		snprintf(r->msg, sizeof r->msg,
		         "host speaks protocol versions %u..%u, this pen speaks %u",
		         h->version_min, h->version_max, FW_PROTOCOL_VERSION);
		r->status = PL_FW_UNSUPPORTED;
		send_error_full(fw, r->id, r->status, r->msg, NULL, 0, 0);
		return;
	}
	if (h->max_frame != 0 && h->max_frame < FW_MIN_HOST_FRAME) {
		snprintf(r->msg, sizeof r->msg,
		         "host max_frame %u is below the %u bytes this pen needs",
		         h->max_frame, FW_MIN_HOST_FRAME);
		r->status = PL_FW_BAD_REQUEST;
		send_error_full(fw, r->id, r->status, r->msg, NULL, 0, 0);
		return;
	}
	/* 0 means the host did not say: assume it takes what we send. */
	fw->host_max_frame = h->max_frame;
	fw->version = FW_PROTOCOL_VERSION;
	get_info(fw, &info);
	hr.version = FW_PROTOCOL_VERSION;
	hr.max_frame = PL_FW_MAX_FRAME;
	hr.max_in_flight = PL_FW_MAX_IN_FLIGHT;
	hr.capabilities = info.capabilities;
	hr.serial = (char *)info.serial;
	env.body_case = PL__ENVELOPE__BODY_HELLO_REPLY;
	env.hello_reply = &hr;
	reply(fw, r, &env);
}

static void on_ping(struct pl_fw *fw, struct req *r, const Pl__Ping *p)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__Pong pong = PL__PONG__INIT;

	snprintf(r->log, sizeof r->log, "req %u ping %lu bytes", r->id,
	         (unsigned long)p->payload.len);
	pong.payload = p->payload;
	env.body_case = PL__ENVELOPE__BODY_PONG;
	env.pong = &pong;
	reply(fw, r, &env);
}

static void on_get_info(struct pl_fw *fw, struct req *r)
{
	struct pl_fw_device_info info;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__DeviceInfo di = PL__DEVICE_INFO__INIT;
	Pl__Battery bat = PL__BATTERY__INIT;

	snprintf(r->log, sizeof r->log, "req %u get_info", r->id);
	get_info(fw, &info);
	di.serial = (char *)info.serial;
	di.model = (char *)info.model;
	di.hw_revision = (char *)info.hw_revision;
	di.fw_version = (char *)info.fw_version;
	di.protocol_version = FW_PROTOCOL_VERSION;
	di.capabilities = info.capabilities;
	di.depth_min_um = info.depth_min_um;
	di.depth_max_um = info.depth_max_um;
	di.depth_step_um = info.depth_step_um;
	di.speed_levels = info.speed_levels;
	di.n_stroke_rate_hz = info.speed_levels < PL_MAX_SPEED_LEVELS
	                          ? info.speed_levels
	                          : PL_MAX_SPEED_LEVELS;
	di.stroke_rate_hz = info.stroke_rate_hz;
	di.slow_lock_depth_um = info.slow_lock_depth_um;
	di.max_presets = info.max_presets < PL_FW_MAX_PRESETS
	                     ? info.max_presets
	                     : PL_FW_MAX_PRESETS;
	di.total_strokes = info.total_strokes;
	di.motor_seconds = info.motor_seconds;
	bat.percent = info.battery_percent;
	bat.millivolts = info.battery_mv;
	bat.charging = info.charging;
	di.battery = &bat;
	env.body_case = PL__ENVELOPE__BODY_DEVICE_INFO;
	env.device_info = &di;
	reply(fw, r, &env);
}

/* Loads the stored set into presets_scratch. */
static int load_presets(struct pl_fw *fw, size_t *count, uint32_t *revision)
{
	int rc;

	*count = 0;
	*revision = 0;
	rc = fw->ops->presets_load(fw->ctx, fw->presets_scratch,
	                           PL_FW_MAX_PRESETS, count, revision);
	if (rc != PL_FW_OK || *count > PL_FW_MAX_PRESETS)
		return PL_FW_INTERNAL;
	return PL_FW_OK;
}

/* Replies with the set in presets_scratch. */
static void reply_preset_set(struct pl_fw *fw, struct req *r, size_t count,
                             uint32_t revision)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__PresetSet set = PL__PRESET_SET__INIT;
	Pl__Preset *items = NULL;
	Pl__Preset **ptrs = NULL;
	size_t i;

	if (count > 0) {
		items = arena_take(fw, count * sizeof *items);
		ptrs = arena_take(fw, count * sizeof *ptrs);
		if (!items || !ptrs) {
			fail(fw, r, PL_FW_INTERNAL, "out of working memory");
			return;
		}
	}
	for (i = 0; i < count; i++) {
		const struct pl_fw_preset *s = &fw->presets_scratch[i];
		Pl__Preset *d = &items[i];

		pl__preset__init(d);
		d->id = s->id;
		d->name = fw->presets_scratch[i].name;
		d->depth_um = s->depth_um;
		d->speed_level = s->speed_level;
		d->area = (Pl__Area)s->area;
		d->needle_count = s->needle_count;
		d->max_duration_s = s->max_duration_s;
		ptrs[i] = d;
	}
	set.revision = revision;
	set.n_presets = count;
	set.presets = ptrs;
	env.body_case = PL__ENVELOPE__BODY_PRESET_SET;
	env.preset_set = &set;
	reply(fw, r, &env);
}

static void on_get_presets(struct pl_fw *fw, struct req *r)
{
	size_t count;
	uint32_t revision;

	snprintf(r->log, sizeof r->log, "req %u get_presets", r->id);
	if (load_presets(fw, &count, &revision) != PL_FW_OK) {
		fail(fw, r, PL_FW_INTERNAL, "could not read the stored presets");
		return;
	}
	reply_preset_set(fw, r, count, revision);
}

static bool same_preset(const struct pl_fw_preset *a,
                        const struct pl_fw_preset *b)
{
	return a->id == b->id && strcmp(a->name, b->name) == 0 &&
	       a->depth_um == b->depth_um && a->speed_level == b->speed_level &&
	       a->area == b->area && a->needle_count == b->needle_count &&
	       a->max_duration_s == b->max_duration_s;
}

/* Same set regardless of order (storage may return it sorted by id); ids
 * are unique in both, so matching every requested preset by id suffices. */
static bool same_set(const struct pl_fw_preset *a, size_t na,
                     const struct pl_fw_preset *b, size_t nb)
{
	size_t i, j;

	if (na != nb)
		return false;
	for (i = 0; i < na; i++) {
		for (j = 0; j < nb; j++)
			if (a[i].id == b[j].id)
				break;
		if (j == nb || !same_preset(&a[i], &b[j]))
			return false;
	}
	return true;
}

static void refuse_reply(struct pl_fw *fw, struct req *r,
                         const struct pl_fw_refusal *why)
{
	fw->stats.validation_refusals++;
	r->status = PL_FW_VALIDATION;
	snprintf(r->msg, sizeof r->msg, "%s: %s", why->field, why->message);
	send_error_full(fw, r->id, PL_FW_VALIDATION, why->message, why->field,
	                why->value, why->limit);
}

/*
 * The names of a PutPresets into want[0..n), measured by their length on
 * the wire: the request is read a second time with the names as bytes
 * (pl.EnvelopeNameView), since protobuf-c ends a string at its first NUL
 * and "Cheek\0<anything>" would otherwise be stored as "Cheek".  A name
 * longer than the stored form or holding a NUL is refused here; the rest
 * of the rule is pl_fw_validate_presets's.  The second reading's arena
 * space is given back.  PL_FW_OK, or the request was answered.
 */
static int put_names(struct pl_fw *fw, struct req *r, struct pl_fw_preset *want,
                     size_t n)
{
	struct arena_ctx *actx = r->alloc->allocator_data;
	size_t mark = fw->arena_used;
	Pl__EnvelopeNameView *v;
	struct pl_fw_refusal why;
	size_t i;

	memset(&why, 0, sizeof why);
	v = pl__envelope_name_view__unpack(r->alloc, r->payload_len, r->payload);
	/* Both readings run the same parser over the same bytes, so they
	 * agree; a disagreement is refused rather than trusted. */
	if (!v || v->body_case != PL__ENVELOPE_NAME_VIEW__BODY_PUT_PRESETS ||
	    v->put_presets->n_presets != n) {
		fw->arena_used = mark;
		fail(fw, r, PL_FW_BAD_REQUEST,
		     actx->exhausted ? "request too large"
		                     : "malformed request (preset names unreadable)");
		return PL_FW_BAD_REQUEST;
	}
	for (i = 0; i < n; i++) {
		const ProtobufCBinaryData *name = &v->put_presets->presets[i]->name;
		const uint8_t *nul = name->len ? memchr(name->data, 0, name->len) : NULL;

		memset(&want[i], 0, sizeof want[i]);
		/* The stored form holds at most PL_PRESET_NAME_MAX bytes, so the
		 * length is checked here, before copying. */
		if (name->len > PL_PRESET_NAME_MAX)
			(void)refuse(&why, i, "name", (int64_t)name->len,
			             PL_PRESET_NAME_MAX, "name is %lu bytes, longer than %u",
			             (unsigned long)name->len,
			             (unsigned)PL_PRESET_NAME_MAX);
		else if (nul)
			(void)refuse(&why, i, "name", (int64_t)(nul - name->data), 0,
			             "name holds a NUL byte (byte %ld of %lu)",
			             (long)(nul - name->data), (unsigned long)name->len);
		if (why.field[0]) {
			fw->arena_used = mark;
			refuse_reply(fw, r, &why);
			return PL_FW_VALIDATION;
		}
		if (name->len)
			memcpy(want[i].name, name->data, name->len);
		want[i].name[name->len] = '\0';
	}
	fw->arena_used = mark;
	return PL_FW_OK;
}

static void on_put_presets(struct pl_fw *fw, struct req *r,
                           const Pl__PutPresets *put)
{
	struct pl_fw_device_info info;
	struct pl_fw_refusal why;
	struct pl_fw_preset *want;
	size_t n = put->n_presets;
	size_t max, i, stored_count;
	uint32_t stored_rev;

	snprintf(r->log, sizeof r->log,
	         "req %u put_presets expected_revision=%u count=%lu", r->id,
	         put->expected_revision, (unsigned long)n);
	get_info(fw, &info);
	max = info.max_presets < PL_FW_MAX_PRESETS ? info.max_presets
	                                           : PL_FW_MAX_PRESETS;
	memset(&why, 0, sizeof why);
	if (n > max) {
		(void)refuse(&why, (size_t)-1, "presets", (int64_t)n, (int64_t)max,
		             "%lu presets is more than this pen holds (%lu)",
		             (unsigned long)n, (unsigned long)max);
		refuse_reply(fw, r, &why);
		return;
	}
	want = arena_take(fw, n * sizeof *want);
	if (!want) {
		fail(fw, r, PL_FW_BAD_REQUEST, "request too large");
		return;
	}
	if (put_names(fw, r, want, n) != PL_FW_OK)
		return;
	for (i = 0; i < n; i++) {
		const Pl__Preset *q = put->presets[i];

		want[i].id = q->id;
		want[i].depth_um = q->depth_um;
		want[i].speed_level = q->speed_level;
		/* Unknown wire values (even negative ones) stay unknown and
		 * fail the area check. */
		want[i].area = (uint32_t)(int32_t)q->area;
		want[i].needle_count = q->needle_count;
		want[i].max_duration_s = q->max_duration_s;
	}
	if (pl_fw_validate_presets(&info, want, n, &why) != PL_FW_OK) {
		refuse_reply(fw, r, &why);
		return;
	}
	if (load_presets(fw, &stored_count, &stored_rev) != PL_FW_OK) {
		fail(fw, r, PL_FW_INTERNAL, "could not read the stored presets");
		return;
	}
	if (stored_rev != put->expected_revision) {
		if (put->expected_revision != UINT32_MAX &&
		    stored_rev == put->expected_revision + 1u &&
		    same_set(want, n, fw->presets_scratch, stored_count)) {
			/* Our earlier reply was lost and the host retried. */
			reply_preset_set(fw, r, stored_count, stored_rev);
			return;
		}
		snprintf(r->msg, sizeof r->msg,
		         "presets changed meanwhile: expected revision %u, the pen has revision %u",
		         put->expected_revision, stored_rev);
		r->status = PL_FW_CONFLICT;
		send_error_full(fw, r->id, PL_FW_CONFLICT, r->msg, NULL, 0, 0);
		return;
	}
	if (fw->ops->presets_store(fw->ctx, want, n, stored_rev + 1u) != PL_FW_OK) {
		fail(fw, r, PL_FW_INTERNAL, "could not store the presets");
		return;
	}
	if (load_presets(fw, &stored_count, &stored_rev) != PL_FW_OK) {
		fail(fw, r, PL_FW_INTERNAL, "could not read the stored presets");
		return;
	}
	reply_preset_set(fw, r, stored_count, stored_rev);
}

static void reply_clock(struct pl_fw *fw, struct req *r)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__Clock clk = PL__CLOCK__INIT;
	bool is_set = false;
	int64_t utc = fw->ops->rtc_get(fw->ctx, &is_set);

	clk.utc_ms = is_set ? utc : 0;
	clk.source = is_set ? PL__TIME_SOURCE__TIME_SOURCE_RTC
	                    : PL__TIME_SOURCE__TIME_SOURCE_UPTIME;
	clk.uptime_ms = fw->ops->uptime_ms(fw->ctx);
	env.body_case = PL__ENVELOPE__BODY_CLOCK;
	env.clock = &clk;
	reply(fw, r, &env);
}

static void on_set_clock(struct pl_fw *fw, struct req *r, const Pl__SetClock *s)
{
	struct pl_fw_device_info info;

	snprintf(r->log, sizeof r->log, "req %u set_clock utc_ms=%lld", r->id,
	         (long long)s->utc_ms);
	get_info(fw, &info);
	if (!(info.capabilities & PL_CAP_RTC)) {
		fail(fw, r, PL_FW_UNSUPPORTED, "this pen has no real-time clock");
		return;
	}
	if (s->utc_ms <= 0) {
		fail(fw, r, PL_FW_BAD_REQUEST, "utc_ms must be a positive time");
		return;
	}
	fw->ops->rtc_set(fw->ctx, s->utc_ms);
	reply_clock(fw, r);
}

static void on_get_clock(struct pl_fw *fw, struct req *r)
{
	snprintf(r->log, sizeof r->log, "req %u get_clock", r->id);
	reply_clock(fw, r);
}

/* Bytes a length-delimited field with payload n takes (tag + length + n). */
static size_t ld_size(size_t n)
{
	size_t v = 1;

	while (n >= ((size_t)1 << (7 * v)) && v < 5)
		v++;
	return 1 + v + n;
}

static void fill_meta(Pl__SessionMeta *m, struct pl_session_info *s)
{
	pl__session_meta__init(m);
	m->id = s->id;
	m->uuid.data = s->uuid;
	m->uuid.len = sizeof s->uuid;
	m->seq = s->seq;
	m->size = s->size;
	m->sha256.data = s->sha256;
	m->sha256.len = sizeof s->sha256;
	m->start_ms = s->start_ms;
	m->end_ms = s->end_ms;
	m->time_source = s->rtc_time ? PL__TIME_SOURCE__TIME_SOURCE_RTC
	                             : PL__TIME_SOURCE__TIME_SOURCE_UPTIME;
	m->archived = s->archived;
}

static void on_list_sessions(struct pl_fw *fw, struct req *r,
                             const Pl__ListSessions *ls)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__SessionList list = PL__SESSION_LIST__INIT;
	size_t budget = out_limit(fw) - FW_LIST_OVERHEAD;
	size_t used = 0, n = 0, cap;
	uint32_t after = ls->start_after_id;
	Pl__SessionMeta **ptrs;
	bool more = false;

	snprintf(r->log, sizeof r->log, "req %u list_sessions after=%u", r->id,
	         after);
	/* The pointer array comes first, sized for the most entries the
	 * arena could hold, so entries can follow it contiguously. */
	cap = arena_left(fw) /
	      (sizeof(Pl__SessionMeta *) + sizeof(Pl__SessionMeta) +
	       sizeof(struct pl_session_info) + 2 * FW_ALIGN);
	if (cap == 0 || !(ptrs = arena_take(fw, cap * sizeof *ptrs))) {
		fail(fw, r, PL_FW_INTERNAL, "out of working memory");
		return;
	}
	for (;;) {
		struct pl_session_info s;
		struct pl_session_info *keep;
		Pl__SessionMeta *m;
		size_t cost;
		int rc;

		memset(&s, 0, sizeof s);
		rc = fw->ops->session_next(fw->ctx, after, &s);
		if (rc == PL_FW_NOT_FOUND)
			break;
		if (rc != PL_FW_OK || s.id <= after) {
			fail(fw, r, PL_FW_INTERNAL, "could not read the session list");
			return;
		}
		if (n == cap) {
			more = true;
			break;
		}
		keep = arena_take(fw, sizeof *keep);
		m = arena_take(fw, sizeof *m);
		if (!keep || !m) {
			more = true;
			break;
		}
		*keep = s;
		fill_meta(m, keep);
		cost = ld_size(pl__session_meta__get_packed_size(m));
		if (used + cost > budget) {
			more = true;
			break;
		}
		used += cost;
		ptrs[n++] = m;
		after = s.id;
	}
	if (n == 0 && more) {
		fail(fw, r, PL_FW_INTERNAL, "a session entry does not fit in a frame");
		return;
	}
	list.n_sessions = n;
	list.sessions = ptrs;
	list.more = more;
	snprintf(r->log + strlen(r->log), sizeof r->log - strlen(r->log),
	         " -> %lu%s", (unsigned long)n, more ? " more" : "");
	env.body_case = PL__ENVELOPE__BODY_SESSION_LIST;
	env.session_list = &list;
	reply(fw, r, &env);
}

/* The session with that id, or a NOT_FOUND reply and false. */
static bool get_session(struct pl_fw *fw, struct req *r, uint32_t id,
                        struct pl_session_info *s)
{
	memset(s, 0, sizeof *s);
	if (fw->ops->session_get(fw->ctx, id, s) == PL_FW_OK)
		return true;
	snprintf(r->msg, sizeof r->msg, "no session %u on this pen", (unsigned)id);
	fail(fw, r, PL_FW_NOT_FOUND, r->msg);
	return false;
}

static void on_read_session(struct pl_fw *fw, struct req *r,
                            const Pl__ReadSession *rs)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__SessionChunk chunk = PL__SESSION_CHUNK__INIT;
	struct pl_session_info s;
	size_t n = rs->length;
	size_t max_data = out_limit(fw) - FW_CHUNK_OVERHEAD;
	uint8_t *buf;

	snprintf(r->log, sizeof r->log, "req %u read_session id=%u off=%llu len=%u",
	         r->id, rs->id, (unsigned long long)rs->offset, rs->length);
	if (!get_session(fw, r, rs->id, &s))
		return;
	if (rs->offset > s.size) {
		snprintf(r->msg, sizeof r->msg,
		         "offset %llu is past the end of session %u (%llu bytes)",
		         (unsigned long long)rs->offset, rs->id,
		         (unsigned long long)s.size);
		fail(fw, r, PL_FW_BAD_REQUEST, r->msg);
		return;
	}
	if (n > max_data)
		n = max_data;
	if ((uint64_t)n > s.size - rs->offset)
		n = (size_t)(s.size - rs->offset);
	if (n > arena_left(fw))
		n = arena_left(fw);
	buf = arena_take(fw, n);
	if (!buf) {
		fail(fw, r, PL_FW_INTERNAL, "out of working memory");
		return;
	}
	if (n > 0 && fw->ops->session_read(fw->ctx, rs->id, rs->offset, buf, n) !=
	                 PL_FW_OK) {
		snprintf(r->msg, sizeof r->msg, "flash read of session %u failed",
		         rs->id);
		fail(fw, r, PL_FW_INTERNAL, r->msg);
		return;
	}
	chunk.id = rs->id;
	chunk.offset = rs->offset;
	chunk.data.data = buf;
	chunk.data.len = n;
	chunk.eof = rs->offset + n == s.size;
	snprintf(r->log + strlen(r->log), sizeof r->log - strlen(r->log),
	         " -> %lu bytes%s", (unsigned long)n, chunk.eof ? " eof" : "");
	env.body_case = PL__ENVELOPE__BODY_SESSION_CHUNK;
	env.session_chunk = &chunk;
	reply(fw, r, &env);
}

static void on_archive(struct pl_fw *fw, struct req *r,
                       const Pl__ArchiveSession *a)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__Ack ack = PL__ACK__INIT;
	struct pl_session_info s;

	snprintf(r->log, sizeof r->log, "req %u archive_session id=%u", r->id,
	         a->id);
	if (!get_session(fw, r, a->id, &s))
		return;
	if (a->sha256.len != sizeof s.sha256) {
		snprintf(r->msg, sizeof r->msg,
		         "the digest for session %u is %lu bytes, not a 32-byte SHA-256",
		         a->id, (unsigned long)a->sha256.len);
		fail(fw, r, PL_FW_CONFLICT, r->msg);
		return;
	}
	if (memcmp(a->sha256.data, s.sha256, sizeof s.sha256) != 0) {
		snprintf(r->msg, sizeof r->msg,
		         "the digest does not match session %u's; it stays on the pen",
		         a->id);
		fail(fw, r, PL_FW_CONFLICT, r->msg);
		return;
	}
	if (!s.archived && fw->ops->session_archive(fw->ctx, a->id) != PL_FW_OK) {
		snprintf(r->msg, sizeof r->msg, "could not mark session %u archived",
		         a->id);
		fail(fw, r, PL_FW_INTERNAL, r->msg);
		return;
	}
	if (s.archived)
		snprintf(r->log + strlen(r->log), sizeof r->log - strlen(r->log),
		         " (already archived)");
	env.body_case = PL__ENVELOPE__BODY_ACK;
	env.ack = &ack;
	reply(fw, r, &env);
}

static void on_subscribe(struct pl_fw *fw, struct req *r,
                         const Pl__SubscribeTrace *st)
{
	struct pl_fw_device_info info;
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__Ack ack = PL__ACK__INIT;

	snprintf(r->log, sizeof r->log, "req %u subscribe_trace %s level=%u",
	         r->id, st->enable ? "on" : "off", st->level);
	get_info(fw, &info);
	if (!(info.capabilities & PL_CAP_TRACE)) {
		fail(fw, r, PL_FW_UNSUPPORTED, "this pen has no trace stream");
		return;
	}
	fw->trace_on = st->enable;
	fw->trace_level = st->level > 3 ? 3 : st->level;
	env.body_case = PL__ENVELOPE__BODY_ACK;
	env.ack = &ack;
	reply(fw, r, &env);
}

/* ------------------------------------------------------------------ dispatch */

/*
 * The request id of an envelope protobuf-c could not unpack, so the host's
 * request gets an error instead of a timeout.  Encoders write fields in
 * number order, so the id (field 1, varint) is the first thing if present.
 */
static uint32_t peek_id(const uint8_t *p, size_t len)
{
	uint64_t v = 0;
	size_t i;

	if (len < 2 || p[0] != 0x08u)
		return 0;
	for (i = 1; i < len && i < 11; i++) {
		v |= (uint64_t)(p[i] & 0x7fu) << (7 * (i - 1));
		if (!(p[i] & 0x80u))
			return (uint32_t)v;
	}
	return 0;
}

static const char *body_name(Pl__Envelope__BodyCase c)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field(&pl__envelope__descriptor,
	                                            (unsigned)c);
	return f ? f->name : "nothing";
}

static void dispatch(struct pl_fw *fw, struct req *r, const Pl__Envelope *e)
{
	switch (e->body_case) {
	case PL__ENVELOPE__BODY_HELLO: on_hello(fw, r, e->hello); break;
	case PL__ENVELOPE__BODY_PING: on_ping(fw, r, e->ping); break;
	case PL__ENVELOPE__BODY_GET_INFO: on_get_info(fw, r); break;
	case PL__ENVELOPE__BODY_GET_PRESETS: on_get_presets(fw, r); break;
	case PL__ENVELOPE__BODY_PUT_PRESETS: on_put_presets(fw, r, e->put_presets); break;
	case PL__ENVELOPE__BODY_SET_CLOCK: on_set_clock(fw, r, e->set_clock); break;
	case PL__ENVELOPE__BODY_GET_CLOCK: on_get_clock(fw, r); break;
	case PL__ENVELOPE__BODY_LIST_SESSIONS: on_list_sessions(fw, r, e->list_sessions); break;
	case PL__ENVELOPE__BODY_READ_SESSION: on_read_session(fw, r, e->read_session); break;
	case PL__ENVELOPE__BODY_ARCHIVE_SESSION: on_archive(fw, r, e->archive_session); break;
	case PL__ENVELOPE__BODY_SUBSCRIBE_TRACE: on_subscribe(fw, r, e->subscribe_trace); break;
	default:
		snprintf(r->log, sizeof r->log, "req %u %s", r->id,
		         body_name(e->body_case));
		snprintf(r->msg, sizeof r->msg, "%s is not a request this pen answers",
		         e->body_case == PL__ENVELOPE__BODY__NOT_SET
		             ? "an empty envelope"
		             : body_name(e->body_case));
		r->status = PL_FW_BAD_REQUEST;
		send_error_full(fw, r->id, r->status, r->msg, NULL, 0, 0);
		break;
	}
}

static void on_frame(void *ctx, uint8_t flags, const uint8_t *payload,
                     size_t len)
{
	struct pl_fw *fw = ctx;
	struct arena_ctx actx;
	ProtobufCAllocator alloc;
	Pl__Envelope *e;
	struct req r;

	(void)flags; /* no flags are defined in frame version 1 */
	fw->arena_used = 0;
	actx.fw = fw;
	actx.exhausted = 0;
	alloc.alloc = pb_alloc;
	alloc.free = pb_free;
	alloc.allocator_data = &actx;
	memset(&r, 0, sizeof r);
	fw->stats.requests++;

	r.payload = payload;
	r.payload_len = len;
	r.alloc = &alloc;
	e = pl__envelope__unpack(&alloc, len, payload);
	if (!e) {
		fw->stats.unpack_failures++;
		r.id = peek_id(payload, len);
		snprintf(r.log, sizeof r.log, "req %u undecodable (%lu bytes)", r.id,
		         (unsigned long)len);
		fail(fw, &r, PL_FW_BAD_REQUEST,
		     actx.exhausted ? "request too large"
		                    : "malformed request (not a penlink envelope)");
	} else {
		r.id = e->id;
		dispatch(fw, &r, e);
	}
	if (fw->ops->log) {
		size_t l = strlen(r.log);
		if (r.status != PL_FW_OK)
			snprintf(r.log + l, sizeof r.log - l, ": %s %s",
			         status_name(r.status), r.msg);
		fw->ops->log(fw->ctx, r.log);
	}
}

/* ------------------------------------------------------------------ public */

void pl_fw_init(struct pl_fw *fw, const struct pl_fw_ops *ops, void *ctx)
{
	memset(fw, 0, sizeof *fw);
	fw->ops = ops;
	fw->ctx = ctx;
	pl_frame_decoder_init(&fw->dec, fw->rx_buf, sizeof fw->rx_buf, on_frame,
	                      NULL, fw);
}

void pl_fw_rx(struct pl_fw *fw, const uint8_t *data, size_t len)
{
	pl_frame_decoder_feed(&fw->dec, data, len);
	fw->stats.frames = fw->dec.stats;
}

void pl_fw_reset(struct pl_fw *fw)
{
	pl_frame_decoder_reset(&fw->dec);
	fw->trace_on = false;
	fw->trace_level = 0;
	fw->host_max_frame = 0;
	fw->version = 0;
}

/* Copies at most cap-1 bytes of s into out without cutting a UTF-8
 * sequence in half (the host rejects a string that is not UTF-8). */
static void copy_utf8(char *out, size_t cap, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xc0u) == 0x80u)
			n--;
	}
	if (n)
		memcpy(out, s, n);
	out[n] = '\0';
}

int pl_fw_trace(struct pl_fw *fw, uint32_t level, const char *text)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__TraceLine tl = PL__TRACE_LINE__INIT;
	char buf[240];

	if (!fw->trace_on || level > fw->trace_level)
		return PL_FW_OK;
	copy_utf8(buf, sizeof buf, text);
	tl.uptime_ms = fw->ops->uptime_ms(fw->ctx);
	tl.level = level;
	tl.text = buf;
	env.id = 0;
	env.body_case = PL__ENVELOPE__BODY_TRACE_LINE;
	env.trace_line = &tl;
	return send_packed(fw, &env) == PL_FW_OK ? PL_FW_OK : PL_FW_INTERNAL;
}

int pl_fw_state_event(struct pl_fw *fw, uint32_t kind, uint32_t value,
                      const char *detail)
{
	Pl__Envelope env = PL__ENVELOPE__INIT;
	Pl__StateEvent se = PL__STATE_EVENT__INIT;
	char buf[160];

	copy_utf8(buf, sizeof buf, detail);
	se.uptime_ms = fw->ops->uptime_ms(fw->ctx);
	se.kind = (Pl__StateKind)kind;
	se.value = value;
	se.detail = buf;
	env.id = 0;
	env.body_case = PL__ENVELOPE__BODY_STATE_EVENT;
	env.state_event = &se;
	return send_packed(fw, &env) == PL_FW_OK ? PL_FW_OK : PL_FW_INTERNAL;
}

const struct pl_fw_stats *pl_fw_get_stats(const struct pl_fw *fw)
{
	return &fw->stats;
}
