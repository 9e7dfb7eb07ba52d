/*
 * penlinkd's control protocol, shared by the daemon and its clients (see
 * penlink_control.h).
 *
 * Presets and device info are not converted field by field here: a
 * protobuf-c message is packed to the pl.* bytes the pen itself sends and
 * handed to libpenlink's decoder, and the library's encoding is unpacked
 * into a message.  The library's conversion stays the only one, so a field
 * added to penlink.proto cannot be forgotten on the socket.
 */
#include <stdlib.h>
#include <string.h>

#include <penlink_wire.h>

#include "penlink_control.h"

int plc_frame_message(const ProtobufCMessage *msg, uint8_t **out, size_t *len)
{
	if (out)
		*out = NULL;
	if (!msg || !out || !len)
		return pl_error_set(PL_ERR_ARG, "plc_frame_message: missing argument");
	size_t n = protobuf_c_message_get_packed_size(msg);
	if (n > PLC_MAX_MESSAGE)
		return pl_error_set(PL_ERR_ARG,
		                    "a %zu-byte %s is larger than the %u bytes the "
		                    "control protocol allows",
		                    n, msg->descriptor->short_name, PLC_MAX_MESSAGE);
	size_t cap = PL_FRAME_ENCODED_MAX(n);
	uint8_t *packed = malloc(n ? n : 1);
	uint8_t *framed = malloc(cap);
	if (!packed || !framed) {
		free(packed);
		free(framed);
		return pl_error_set(PL_ERR_MEM, "out of memory framing a %zu-byte %s",
		                    n, msg->descriptor->short_name);
	}
	protobuf_c_message_pack(msg, packed);
	size_t k = pl_frame_encode(packed, n, 0, framed, cap);
	free(packed);
	if (!k) {
		/* PL_FRAME_ENCODED_MAX is the encoder's own bound: unreachable
		 * unless the two disagree, which must not pass silently. */
		free(framed);
		return pl_error_set(PL_ERR_ARG, "cannot frame a %zu-byte %s", n,
		                    msg->descriptor->short_name);
	}
	*out = framed;
	*len = k;
	return PL_OK;
}

/*
 * msg (a pl.PresetSet or pl.DeviceInfo) packed to the bytes the pen sends
 * and decoded by the library into whichever of set and info is not NULL.
 * What the library cannot take is the peer's error: PL_ERR_PROTOCOL.
 */
static int decode(const ProtobufCMessage *msg, struct pl_preset_set *set,
                  struct pl_device_info *info)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return pl_error_set(PL_ERR_MEM, "out of memory converting a %s",
		                    msg->descriptor->short_name);
	size_t len = protobuf_c_message_pack(msg, buf);
	int rc = set ? pl_preset_set_decode(buf, len, set)
	             : pl_device_info_decode(buf, len, info);
	free(buf);
	return rc == PL_ERR_PARSE ? PL_ERR_PROTOCOL : rc;
}

/*
 * set or info (whichever is not NULL) encoded by the library and unpacked
 * into a protobuf-c message of type desc, so that the wire format has one
 * author.  fn names the public function in the argument error.
 */
static int encode(const char *fn, const struct pl_preset_set *set,
                  const struct pl_device_info *info,
                  const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
	if (out)
		*out = NULL;
	if (!(set || info) || !out)
		return pl_error_set(PL_ERR_ARG, "%s: missing argument", fn);
	uint8_t *buf;
	size_t len;
	int rc = set ? pl_preset_set_encode(set, &buf, &len)
	             : pl_device_info_encode(info, &buf, &len);
	if (rc)
		return rc;
	*out = protobuf_c_message_unpack(desc, NULL, len, buf);
	free(buf);
	if (!*out)
		return pl_error_set(PL_ERR_MEM, "out of memory converting a %s",
		                    desc->short_name);
	return PL_OK;
}

int plc_preset_set_from_pb(const Pl__PresetSet *pb, struct pl_preset_set *out)
{
	if (!out)
		return pl_error_set(PL_ERR_ARG, "plc_preset_set_from_pb: no output");
	if (!pb)
		return pl_error_set(PL_ERR_PROTOCOL, "no preset set in the message");
	/* The library's decoder would cut these; over the socket they are a
	 * peer's mistake to name, not to repair. */
	if (pb->n_presets > PL_MAX_PRESETS)
		return pl_error_set(PL_ERR_PROTOCOL,
		                    "%zu presets; a pen holds at most %d",
		                    pb->n_presets, PL_MAX_PRESETS);
	for (size_t i = 0; i < pb->n_presets; i++) {
		const char *name = pb->presets[i]->name ? pb->presets[i]->name : "";
		size_t nl = strlen(name);
		if (nl > PL_PRESET_NAME_MAX)
			return pl_error_set(PL_ERR_PROTOCOL,
			                    "preset %u: name is %zu bytes long; at most "
			                    "%d bytes are allowed",
			                    pb->presets[i]->id, nl, PL_PRESET_NAME_MAX);
	}
	return decode(&pb->base, out, NULL);
}

/* Appends a varint to buf at *n. */
static void put_varint(uint8_t *buf, size_t *n, uint64_t v)
{
	do {
		buf[(*n)++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
}

/* The presets' bytes, each as field 2 (presets) of a pl.PresetSet. */
static int preset_set_bytes(const Plctl__PushPresetsWireView *v, uint8_t **out,
                            size_t *len)
{
	size_t cap = 1;
	for (size_t i = 0; i < v->n_presets; i++)
		cap += 1 + 10 + v->presets[i].len;
	uint8_t *buf = malloc(cap);
	if (!buf)
		return pl_error_set(PL_ERR_MEM, "out of memory reading a PushPresets");
	size_t n = 0;
	for (size_t i = 0; i < v->n_presets; i++) {
		const ProtobufCBinaryData *p = &v->presets[i];
		put_varint(buf, &n, 2u << 3 | 2); /* field 2, length-delimited */
		put_varint(buf, &n, p->len);
		if (p->len)
			memcpy(buf + n, p->data, p->len);
		n += p->len;
	}
	*out = buf;
	*len = n;
	return PL_OK;
}

int plc_push_presets_decode(const Plctl__Request *rq, const uint8_t *wire,
                            size_t len, struct pl_preset_set *out)
{
	if (!rq || !out || (!wire && len))
		return pl_error_set(PL_ERR_ARG, "plc_push_presets_decode: missing argument");
	if (rq->op_case != PLCTL__REQUEST__OP_PUSH_PRESETS || !rq->push_presets)
		return pl_error_set(PL_ERR_ARG,
		                    "plc_push_presets_decode: not a PushPresets");
	const Plctl__PushPresets *pp = rq->push_presets;
	if (pp->n_presets > PL_MAX_PRESETS)
		return pl_error_set(PL_ERR_PROTOCOL,
		                    "%zu presets; a pen holds at most %d",
		                    pp->n_presets, PL_MAX_PRESETS);
	/* The same bytes a second time, each preset as its bytes.  Both
	 * readings run protobuf-c over them, so they agree; a disagreement
	 * (or a wire that is not rq's) is refused rather than trusted. */
	Plctl__RequestWireView *v = plctl__request_wire_view__unpack(NULL, len, wire);
	if (!v || v->op_case != PLCTL__REQUEST_WIRE_VIEW__OP_PUSH_PRESETS ||
	    v->push_presets->n_presets != pp->n_presets) {
		if (v)
			plctl__request_wire_view__free_unpacked(v, NULL);
		return pl_error_set(PL_ERR_PROTOCOL,
		                    "the presets of the PushPresets request cannot "
		                    "be read");
	}
	uint8_t *set_bytes = NULL;
	size_t set_len = 0;
	int rc = preset_set_bytes(v->push_presets, &set_bytes, &set_len);
	plctl__request_wire_view__free_unpacked(v, NULL);
	if (rc)
		return rc;
	struct pl_preset_set *set = malloc(sizeof *set);
	if (!set) {
		free(set_bytes);
		return pl_error_set(PL_ERR_MEM, "out of memory reading a PushPresets");
	}
	rc = pl_preset_set_decode(set_bytes, set_len, set);
	free(set_bytes);
	for (size_t i = 0; !rc && i < set->count; i++)
		if (set->presets[i].id != pp->presets[i]->id ||
		    strcmp(set->presets[i].name,
		           pp->presets[i]->name ? pp->presets[i]->name : ""))
			rc = pl_error_set(PL_ERR_PROTOCOL,
			                  "the presets of the PushPresets request "
			                  "cannot be read");
	if (!rc)
		*out = *set;
	free(set);
	return rc == PL_ERR_PARSE ? PL_ERR_PROTOCOL : rc;
}

int plc_preset_set_to_pb(const struct pl_preset_set *set, Pl__PresetSet **out)
{
	return encode("plc_preset_set_to_pb", set, NULL, &pl__preset_set__descriptor,
	              (ProtobufCMessage **)out);
}

void plc_preset_set_pb_free(Pl__PresetSet *pb)
{
	if (pb)
		pl__preset_set__free_unpacked(pb, NULL);
}

int plc_device_info_from_pb(const Pl__DeviceInfo *pb,
                            struct pl_device_info *out)
{
	if (!out)
		return pl_error_set(PL_ERR_ARG, "plc_device_info_from_pb: no output");
	if (!pb)
		return pl_error_set(PL_ERR_PROTOCOL, "no device info in the message");
	return decode(&pb->base, NULL, out);
}

int plc_device_info_to_pb(const struct pl_device_info *info,
                          Pl__DeviceInfo **out)
{
	return encode("plc_device_info_to_pb", NULL, info,
	              &pl__device_info__descriptor, (ProtobufCMessage **)out);
}

void plc_device_info_pb_free(Pl__DeviceInfo *pb)
{
	if (pb)
		pl__device_info__free_unpacked(pb, NULL);
}

void plc_session_to_pb(const struct pl_session_key *key,
                       const struct pl_session_info *info, int64_t archived_ms,
                       Plctl__ArchivedSession *pb)
{
	plctl__archived_session__init(pb);
	pb->serial = (char *)key->serial;
	pb->uuid.data = (uint8_t *)key->uuid;
	pb->uuid.len = sizeof key->uuid;
	pb->seq = info->seq;
	pb->size = info->size;
	pb->sha256.data = (uint8_t *)info->sha256;
	pb->sha256.len = sizeof info->sha256;
	pb->start_ms = info->start_ms;
	pb->end_ms = info->end_ms;
	pb->time_source = info->rtc_time ? PL__TIME_SOURCE__TIME_SOURCE_RTC
	                                 : PL__TIME_SOURCE__TIME_SOURCE_UPTIME;
	pb->archived_ms = archived_ms;
}

int plc_session_from_pb(const Plctl__ArchivedSession *pb,
                        struct pl_session_key *key,
                        struct pl_session_info *info, int64_t *archived_ms)
{
	if (!pb || !key || !info)
		return pl_error_set(PL_ERR_ARG, "plc_session_from_pb: missing argument");
	if (pb->uuid.len != sizeof key->uuid)
		return pl_error_set(PL_ERR_PROTOCOL,
		                    "an archived session with a %zu-byte UUID; a UUID "
		                    "has 16", pb->uuid.len);
	if (pb->sha256.len != sizeof info->sha256)
		return pl_error_set(PL_ERR_PROTOCOL,
		                    "an archived session with a %zu-byte digest; a "
		                    "SHA-256 has 32", pb->sha256.len);
	const char *serial = pb->serial ? pb->serial : "";
	if (strlen(serial) >= sizeof key->serial)
		return pl_error_set(PL_ERR_PROTOCOL,
		                    "an archived session with a %zu-byte serial; at "
		                    "most %zu bytes are possible",
		                    strlen(serial), sizeof key->serial - 1);
	memset(key, 0, sizeof *key);
	memcpy(key->serial, serial, strlen(serial) + 1);
	memcpy(key->uuid, pb->uuid.data, sizeof key->uuid);
	memset(info, 0, sizeof *info);
	memcpy(info->uuid, pb->uuid.data, sizeof info->uuid);
	info->seq = pb->seq;
	info->size = pb->size;
	memcpy(info->sha256, pb->sha256.data, sizeof info->sha256);
	info->start_ms = pb->start_ms;
	info->end_ms = pb->end_ms;
	info->rtc_time = pb->time_source == PL__TIME_SOURCE__TIME_SOURCE_RTC;
	info->archived = true;
	if (archived_ms)
		*archived_ms = pb->archived_ms;
	return PL_OK;
}

const char *plc_pen_state_name(Plctl__PenState state)
{
	switch (state) {
	case PLCTL__PEN_STATE__PEN_STATE_CONNECTING: return "connecting";
	case PLCTL__PEN_STATE__PEN_STATE_SYNCING: return "syncing";
	case PLCTL__PEN_STATE__PEN_STATE_DOWNLOADING: return "downloading";
	case PLCTL__PEN_STATE__PEN_STATE_IDLE: return "idle";
	case PLCTL__PEN_STATE__PEN_STATE_FAILED: return "failed";
	default: return "unknown";
	}
}

/* ------------------------------------------------------------------ preset diff */

/* One preset as the pl.PresetSet of one that PresetChange carries. */
static int one_preset_to_pb(const struct pl_preset *p, Pl__PresetSet **out)
{
	struct pl_preset_set *s = calloc(1, sizeof *s);
	if (!s)
		return pl_error_set(PL_ERR_MEM, "out of memory converting a diff");
	s->count = 1;
	s->presets[0] = *p;
	int rc = plc_preset_set_to_pb(s, out);
	free(s);
	return rc;
}

void plc_preset_diff_pb_free(Plctl__PresetChange **pb, size_t n)
{
	for (size_t i = 0; pb && i < n; i++) {
		if (!pb[i])
			continue;
		plc_preset_set_pb_free(pb[i]->before);
		plc_preset_set_pb_free(pb[i]->after);
		free(pb[i]);
	}
	free(pb);
}

int plc_preset_diff_to_pb(const struct pl_preset_diff *diff,
                          Plctl__PresetChange ***out, size_t *n)
{
	if (out)
		*out = NULL;
	if (n)
		*n = 0;
	if (!diff || !out || !n || diff->count > PL_PRESET_DIFF_MAX)
		return pl_error_set(PL_ERR_ARG, "plc_preset_diff_to_pb: bad argument");
	if (!diff->count)
		return PL_OK;
	Plctl__PresetChange **v = calloc(diff->count, sizeof *v);
	if (!v)
		return pl_error_set(PL_ERR_MEM, "out of memory converting a diff");
	int rc = PL_OK;
	for (size_t i = 0; !rc && i < diff->count; i++) {
		const struct pl_preset_change *c = &diff->changes[i];
		if (!(v[i] = malloc(sizeof *v[i]))) {
			rc = pl_error_set(PL_ERR_MEM, "out of memory converting a diff");
			break;
		}
		plctl__preset_change__init(v[i]);
		v[i]->kind = (uint32_t)c->kind;
		v[i]->id = c->id;
		v[i]->fields = c->fields;
		if (c->kind != PL_PRESET_ADDED)
			rc = one_preset_to_pb(&c->before, &v[i]->before);
		if (!rc && c->kind != PL_PRESET_REMOVED)
			rc = one_preset_to_pb(&c->after, &v[i]->after);
	}
	if (rc) {
		plc_preset_diff_pb_free(v, diff->count);
		return rc;
	}
	*out = v;
	*n = diff->count;
	return PL_OK;
}

/* The one preset of pb into *p; a missing or other-sized set is the
 * peer's error. */
static int one_preset_from_pb(const Pl__PresetSet *pb, uint32_t id,
                              const char *which, struct pl_preset *p)
{
	if (!pb || pb->n_presets != 1)
		return pl_error_set(PL_ERR_PROTOCOL,
		                    "the diff's change to preset %u has no preset %s "
		                    "it", id, which);
	struct pl_preset_set *s = malloc(sizeof *s);
	if (!s)
		return pl_error_set(PL_ERR_MEM, "out of memory converting a diff");
	int rc = plc_preset_set_from_pb(pb, s);
	if (!rc)
		*p = s->presets[0];
	free(s);
	return rc;
}

int plc_preset_diff_from_pb(Plctl__PresetChange *const *pb, size_t n,
                            struct pl_preset_diff *out)
{
	if (!out || (!pb && n))
		return pl_error_set(PL_ERR_ARG, "plc_preset_diff_from_pb: bad argument");
	if (n > PL_PRESET_DIFF_MAX)
		return pl_error_set(PL_ERR_PROTOCOL,
		                    "a diff of %zu changes; two sets differ in at "
		                    "most %d", n, PL_PRESET_DIFF_MAX);
	struct pl_preset_diff *d = calloc(1, sizeof *d);
	if (!d)
		return pl_error_set(PL_ERR_MEM, "out of memory converting a diff");
	int rc = PL_OK;
	for (size_t i = 0; !rc && i < n; i++) {
		const Plctl__PresetChange *m = pb[i];
		struct pl_preset_change *c = &d->changes[i];
		if (!m || m->kind < PL_PRESET_ADDED || m->kind > PL_PRESET_CHANGED) {
			rc = pl_error_set(PL_ERR_PROTOCOL, "a diff entry of unknown kind %u",
			                  m ? m->kind : 0);
			break;
		}
		c->kind = (enum pl_preset_change_kind)m->kind;
		c->id = m->id;
		c->fields = c->kind == PL_PRESET_CHANGED ? m->fields : 0;
		if (c->kind != PL_PRESET_ADDED)
			rc = one_preset_from_pb(m->before, m->id, "before", &c->before);
		if (!rc && c->kind != PL_PRESET_REMOVED)
			rc = one_preset_from_pb(m->after, m->id, "after", &c->after);
		d->added += c->kind == PL_PRESET_ADDED;
		d->removed += c->kind == PL_PRESET_REMOVED;
		d->changed += c->kind == PL_PRESET_CHANGED;
	}
	d->count = n;
	if (!rc)
		*out = *d;
	free(d);
	return rc;
}
