/* Presets and device info between libpenlink's structs and the wire. */
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "pen.h"

/*
 * pb converted, its names measured by view (the same bytes read with the
 * names as bytes), never by strlen: a name's length on the wire, a NUL in
 * it, and a view that does not match pb are the sender's errors.
 */
static int preset_set_from_pb(const Pl__PresetSet *pb,
                              const Pl__PresetSetNameView *view,
                              const char *who, struct pl_preset_set *out)
{
	if (!pb)
		return pl__fail(PL_ERR_PROTOCOL, "%s sent no preset set", who);
	if (pb->n_presets > PL_MAX_PRESETS)
		return pl__fail(PL_ERR_PROTOCOL,
		                "%s sent %zu presets; at most %d are possible", who,
		                pb->n_presets, PL_MAX_PRESETS);
	/* Both readings run protobuf-c over the same bytes, so they agree;
	 * a disagreement is refused rather than trusted. */
	if (!view || view->n_presets != pb->n_presets)
		return pl__fail(PL_ERR_PROTOCOL,
		                "%s sent a preset set whose names cannot be read",
		                who);
	for (size_t i = 0; i < pb->n_presets; i++) {
		const ProtobufCBinaryData *wire = &view->presets[i]->name;
		const char *name = pb->presets[i]->name ? pb->presets[i]->name : "";
		uint32_t id = pb->presets[i]->id;
		const uint8_t *nul = wire->len ? memchr(wire->data, 0, wire->len)
		                               : NULL;
		if (wire->len > PL_PRESET_NAME_MAX)
			return pl__fail(PL_ERR_PROTOCOL,
			                "%s sent preset %u with a name of %zu bytes; "
			                "at most %u are possible",
			                who, id, wire->len, PL_PRESET_NAME_MAX);
		/* Shown as the part before it would be another name. */
		if (nul)
			return pl__fail(PL_ERR_PROTOCOL,
			                "%s sent preset %u with a name holding a NUL "
			                "byte (byte %td of %zu); names are text",
			                who, id, nul - wire->data, wire->len);
		if (strlen(name) != wire->len ||
		    (wire->len && memcmp(name, wire->data, wire->len)))
			return pl__fail(PL_ERR_PROTOCOL,
			                "%s sent a preset set whose names cannot be "
			                "read", who);
	}
	memset(out, 0, sizeof *out);
	out->revision = pb->revision;
	out->count = pb->n_presets;
	for (size_t i = 0; i < pb->n_presets; i++) {
		const Pl__Preset *w = pb->presets[i];
		struct pl_preset *p = &out->presets[i];
		const char *name = w->name ? w->name : "";
		p->id = w->id;
		memcpy(p->name, name, strlen(name) + 1);
		p->depth_um = w->depth_um;
		p->speed_level = w->speed_level;
		p->area = (enum pl_area)w->area;
		p->needle_count = w->needle_count;
		p->max_duration_s = w->max_duration_s;
	}
	return PL_OK;
}

int pl__preset_set_from_reply(const Pl__Envelope *rep, const uint8_t *wire,
                              size_t len, const char *who,
                              struct pl_preset_set *out)
{
	if (!rep->preset_set)
		return pl__fail(PL_ERR_PROTOCOL, "%s sent no preset set", who);
	Pl__EnvelopeNameView *v =
	    wire ? pl__envelope_name_view__unpack(NULL, len, wire) : NULL;
	/* The bytes unpacked as an Envelope, so only memory can fail here. */
	if (wire && !v)
		return pl__fail(PL_ERR_MEM, "out of memory reading the names "
		                "%s sent", who);
	int rc = preset_set_from_pb(
	    rep->preset_set,
	    v && v->body_case == PL__ENVELOPE_NAME_VIEW__BODY_PRESET_SET
	        ? v->preset_set
	        : NULL,
	    who, out);
	if (v)
		pl__envelope_name_view__free_unpacked(v, NULL);
	return rc;
}

void pl__preset_set_to_pb(const struct pl_preset_set *set,
                          struct pl__preset_set_pb *out)
{
	size_t n = set->count < PL_MAX_PRESETS ? set->count : PL_MAX_PRESETS;
	pl__preset_set__init(&out->set);
	for (size_t i = 0; i < n; i++) {
		const struct pl_preset *ps = &set->presets[i];
		Pl__Preset *w = &out->presets[i];
		pl__preset__init(w);
		w->id = ps->id;
		size_t len = strnlen(ps->name, sizeof ps->name);
		memcpy(out->names[i], ps->name, len);
		out->names[i][len] = 0;
		w->name = out->names[i];
		w->depth_um = ps->depth_um;
		w->speed_level = ps->speed_level;
		w->area = (Pl__Area)ps->area;
		w->needle_count = ps->needle_count;
		w->max_duration_s = ps->max_duration_s;
		out->ptrs[i] = w;
	}
	out->set.revision = set->revision;
	out->set.n_presets = n;
	out->set.presets = out->ptrs;
}

/* The members struct pl_device_info and pl.DeviceInfo share by name: the
 * one list both directions copy, so a field added to both is converted
 * both ways.  The text, the stroke rates and the battery differ in form
 * and are converted by hand. */
#define DEVICE_INFO_TEXT(X) X(serial) X(model) X(hw_revision) X(fw_version)
#define DEVICE_INFO_NUMBERS(X)                                               \
	X(protocol_version) X(capabilities) X(depth_min_um) X(depth_max_um)  \
	X(depth_step_um) X(speed_levels) X(slow_lock_depth_um) X(max_presets) \
	X(total_strokes) X(motor_seconds)

void pl__device_info_from_pb(const Pl__DeviceInfo *d, struct pl_device_info *o)
{
	memset(o, 0, sizeof *o);
#define FROM_TEXT(f) pl__copy_text(o->f, sizeof o->f, d->f);
#define FROM_NUMBER(f) o->f = d->f;
	DEVICE_INFO_TEXT(FROM_TEXT)
	DEVICE_INFO_NUMBERS(FROM_NUMBER)
#undef FROM_TEXT
#undef FROM_NUMBER
	for (size_t i = 0; i < d->n_stroke_rate_hz && i < PL_MAX_SPEED_LEVELS; i++)
		o->stroke_rate_hz[i] = d->stroke_rate_hz[i];
	if (d->battery) {
		o->battery_percent = d->battery->percent;
		o->battery_mv = d->battery->millivolts;
		o->charging = d->battery->charging;
	}
}

void pl__device_info_to_pb(const struct pl_device_info *i,
                           struct pl__device_info_pb *w)
{
	pl__device_info__init(&w->info);
	pl__battery__init(&w->battery);
#define TO_TEXT(f) w->info.f = (char *)i->f;
#define TO_NUMBER(f) w->info.f = i->f;
	DEVICE_INFO_TEXT(TO_TEXT)
	DEVICE_INFO_NUMBERS(TO_NUMBER)
#undef TO_TEXT
#undef TO_NUMBER
	size_t n = i->speed_levels < PL_MAX_SPEED_LEVELS ? i->speed_levels
	                                                  : PL_MAX_SPEED_LEVELS;
	memcpy(w->rates, i->stroke_rate_hz, n * sizeof w->rates[0]);
	w->info.n_stroke_rate_hz = n;
	w->info.stroke_rate_hz = w->rates;
	w->battery.percent = i->battery_percent;
	w->battery.millivolts = i->battery_mv;
	w->battery.charging = i->charging;
	w->info.battery = &w->battery;
}

/* ------------------------------------------------------------------ public */

static int pack(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return pl__fail(PL_ERR_MEM, "out of memory for %zu bytes", n);
	protobuf_c_message_pack(m, buf);
	*out = buf;
	*len = n;
	return PL_OK;
}

/* Checks the arguments of an encode call and clears *out. */
static int encode_args(const void *in, uint8_t **out, size_t *len,
                       const char *fn)
{
	if (out)
		*out = NULL;
	if (!in || !out || !len)
		return pl__fail(PL_ERR_ARG, "%s: missing argument", fn);
	return PL_OK;
}

/* Unpacks len bytes as the message d describes and converts it into out
 * with from_pb, which gets the bytes too (for a second reading). */
static int decode(const ProtobufCMessageDescriptor *d, const uint8_t *data,
                  size_t len, void *out, const char *fn,
                  int (*from_pb)(const ProtobufCMessage *m, const uint8_t *data,
                                 size_t len, void *out))
{
	if (!out || (!data && len))
		return pl__fail(PL_ERR_ARG, "%s: missing argument", fn);
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, data);
	if (!m)
		return pl__fail(PL_ERR_PARSE, "%zu bytes are not a %s", len, d->name);
	int rc = from_pb(m, data, len, out);
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

/* The names measured through pl.PresetSetNameView, a second reading of the
 * same bytes. */
static int preset_set_from_msg(const ProtobufCMessage *m, const uint8_t *data,
                               size_t len, void *out)
{
	Pl__PresetSetNameView *v = pl__preset_set_name_view__unpack(NULL, len, data);
	/* The bytes unpacked as a PresetSet, so only memory can fail here. */
	if (!v)
		return pl__fail(PL_ERR_MEM, "out of memory reading preset names");
	int rc = preset_set_from_pb((const Pl__PresetSet *)m, v, "the preset set",
	                            out);
	if (v)
		pl__preset_set_name_view__free_unpacked(v, NULL);
	return rc == PL_ERR_PROTOCOL ? PL_ERR_PARSE : rc;
}

static int device_info_from_msg(const ProtobufCMessage *m, const uint8_t *data,
                                size_t len, void *out)
{
	(void)data;
	(void)len;
	const Pl__DeviceInfo *pb = (const Pl__DeviceInfo *)m;
	if (pb->n_stroke_rate_hz > PL_MAX_SPEED_LEVELS)
		return pl__fail(PL_ERR_PARSE,
		                "the device info lists %zu stroke rates; at most %u "
		                "are possible",
		                pb->n_stroke_rate_hz, PL_MAX_SPEED_LEVELS);
	pl__device_info_from_pb(pb, out);
	return PL_OK;
}

int pl_preset_set_encode(const struct pl_preset_set *set, uint8_t **out,
                         size_t *len)
{
	int rc = encode_args(set, out, len, "pl_preset_set_encode");
	if (rc)
		return rc;
	struct pl__preset_set_pb *w = malloc(sizeof *w);
	if (!w)
		return pl__fail(PL_ERR_MEM, "out of memory");
	pl__preset_set_to_pb(set, w);
	rc = pack(&w->set.base, out, len);
	free(w);
	return rc;
}

int pl_preset_set_decode(const uint8_t *data, size_t len,
                         struct pl_preset_set *out)
{
	return decode(&pl__preset_set__descriptor, data, len, out,
	              "pl_preset_set_decode", preset_set_from_msg);
}

int pl_device_info_encode(const struct pl_device_info *info, uint8_t **out,
                          size_t *len)
{
	int rc = encode_args(info, out, len, "pl_device_info_encode");
	if (rc)
		return rc;
	struct pl__device_info_pb w;
	pl__device_info_to_pb(info, &w);
	return pack(&w.info.base, out, len);
}

int pl_device_info_decode(const uint8_t *data, size_t len,
                          struct pl_device_info *out)
{
	return decode(&pl__device_info__descriptor, data, len, out,
	              "pl_device_info_decode", device_info_from_msg);
}
