/* The one conversion between libpenlink's structs and the pl.* messages of
 * proto/penlink.proto, used on the link and by the public encode/decode
 * functions (which penlinkd's control protocol uses). */
#ifndef PL_CONVERT_H
#define PL_CONVERT_H

#include "internal.h"
#include "penlink.pb-c.h"

/*
 * The preset set of a reply: rep->preset_set, unpacked from the len bytes
 * at wire (pl__engine_reply_wire), which are read a second time through
 * pl.EnvelopeNameView so that every name is measured by its length on the
 * wire, never by strlen (protobuf-c ends a string at its first NUL).  who
 * names the sender in messages ("the pen on /dev/ttyACM0").
 * PL_ERR_PROTOCOL, naming the preset, for no set, more than PL_MAX_PRESETS
 * presets, a name over PL_PRESET_NAME_MAX bytes or holding a NUL (shown as
 * the part before the NUL it would be another name), or bytes that do not
 * read as rep (no wire included); *out is unchanged on failure.
 * pl_preset_set_decode is the same conversion on a bare pl.PresetSet.
 */
int pl__preset_set_from_reply(const Pl__Envelope *rep, const uint8_t *wire,
                              size_t len, const char *who,
                              struct pl_preset_set *out);

/* A message that points into itself; fill with pl__preset_set_to_pb(). */
struct pl__preset_set_pb {
	Pl__PresetSet set;
	Pl__Preset presets[PL_MAX_PRESETS];
	Pl__Preset *ptrs[PL_MAX_PRESETS];
	/* Unvalidated sets may hold names without a terminator. */
	char names[PL_MAX_PRESETS][PL_PRESET_NAME_MAX + 2];
};
void pl__preset_set_to_pb(const struct pl_preset_set *set,
                          struct pl__preset_set_pb *out);

/* Text fields are cut at a character boundary to their struct sizes and
 * control bytes become '?' (they name the pen in every message). */
void pl__device_info_from_pb(const Pl__DeviceInfo *pb,
                             struct pl_device_info *out);

struct pl__device_info_pb {
	Pl__DeviceInfo info;
	Pl__Battery battery;
	uint32_t rates[PL_MAX_SPEED_LEVELS];
};
/* Points into info, which must outlive out. */
void pl__device_info_to_pb(const struct pl_device_info *info,
                           struct pl__device_info_pb *out);

#endif
