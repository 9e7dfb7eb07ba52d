/*
 * penlink_control.h — penlinkd's control protocol (proto/ctl.proto), the one
 * component penlinkd and its clients (penctl) share besides libpenlink, so
 * that both sides frame, convert and name things the same way.
 *
 * It is built on libpenlink's public API only (penlink.h, penlink_wire.h):
 * presets and device info cross the socket as the very pl.PresetSet and
 * pl.DeviceInfo messages the pen sends, converted by the library's one
 * conversion (pl_preset_set_decode() and friends).
 *
 * Conventions as in libpenlink: PL_OK or a negative enum pl_return code,
 * detail in pl_error_message(); outputs are unchanged on failure unless
 * said otherwise.  Nothing here keeps global state: thread-safe on
 * distinct objects.
 */
#ifndef PENLINK_CONTROL_H
#define PENLINK_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <penlink.h>

#include "ctl.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest framed Request or Response either side accepts. */
#define PLC_MAX_MESSAGE (1u << 20)

/* The default socket path and the protocol version Hello carries. */
#define PLC_DEFAULT_SOCKET "/run/penlink/penlinkd.sock"
#define PLC_VERSION 1u

/*
 * Packs a Request or Response (any protobuf-c message) and frames it
 * (penlink_wire.h) into a malloc'd buffer: *out (free() it), *len bytes.
 * PL_ERR_ARG (NULL or larger than PLC_MAX_MESSAGE), PL_ERR_MEM; *out is
 * NULL on failure.
 */
int plc_frame_message(const ProtobufCMessage *msg, uint8_t **out,
                      size_t *len);

/*
 * Presets and device info between libpenlink's structs and the pl.* messages
 * ctl.proto carries.  from_pb: PL_ERR_PROTOCOL when the message is
 * missing or breaks the struct's bounds (more than PL_MAX_PRESETS presets, a
 * name over PL_PRESET_NAME_MAX bytes), naming what was wrong.  An unpacked
 * message knows a name only up to its first NUL, so from_pb cannot see one:
 * a set a client sends is read with plc_push_presets_decode instead.
 * to_pb: a message allocated by protobuf-c; free it with
 * plc_preset_set_pb_free() / plc_device_info_pb_free().  PL_ERR_MEM.
 */
int plc_preset_set_from_pb(const Pl__PresetSet *pb, struct pl_preset_set *out);
/*
 * The preset set of the PushPresets in rq, read from the bytes rq was
 * unpacked from (wire, len: the frame's payload), never from rq's names
 * alone: protobuf-c ends a `string` at its first NUL, so rq holds "Cheek"
 * for a name sent as "Cheek\0...", and only the bytes tell a name's
 * length on the wire.  The presets' own bytes (plctl.RequestWireView) go,
 * as the pl.PresetSet they make, to pl_preset_set_decode, which measures
 * every name on the wire.  penlinkd decodes a client's push with this,
 * not with plc_preset_set_from_pb.
 * Returns PL_OK, PL_ERR_ARG (a NULL rq or out, NULL wire with len > 0, rq
 * not a PushPresets), PL_ERR_MEM, or PL_ERR_PROTOCOL naming what was
 * wrong: more than PL_MAX_PRESETS presets, a name over PL_PRESET_NAME_MAX
 * bytes or holding a NUL ("... preset 1 with a name holding a NUL byte
 * (byte 5 of 14) ..."), or bytes that do not read as rq.  *out is
 * unchanged on failure.
 */
int plc_push_presets_decode(const Plctl__Request *rq, const uint8_t *wire,
                            size_t len, struct pl_preset_set *out);
int plc_preset_set_to_pb(const struct pl_preset_set *set, Pl__PresetSet **out);
void plc_preset_set_pb_free(Pl__PresetSet *pb);
int plc_device_info_from_pb(const Pl__DeviceInfo *pb,
                            struct pl_device_info *out);
int plc_device_info_to_pb(const struct pl_device_info *info,
                          Pl__DeviceInfo **out);
void plc_device_info_pb_free(Pl__DeviceInfo *pb);

/*
 * An archived session as listed by penlinkd: its identity (serial, UUID) and
 * what libpenlink's struct pl_session_info holds (id is 0: the archive
 * does not know the pen's slot; archived is true).  archived_ms may be
 * NULL.  PL_ERR_ARG for a NULL pb, key or info; PL_ERR_PROTOCOL for a UUID
 * that is not 16 bytes, a digest that is not 32 or a serial that does not
 * fit struct pl_session_key.
 */
int plc_session_from_pb(const Plctl__ArchivedSession *pb,
                        struct pl_session_key *key,
                        struct pl_session_info *info, int64_t *archived_ms);
/*
 * The other way (penlinkd's side): initialises *pb and fills it from key,
 * the seq, size, sha256, times and time source of info, and archived_ms.
 * pb points into key and info (serial, uuid, sha256), which must outlive
 * it; nothing is allocated, so there is nothing to free.  Never fails.
 */
void plc_session_to_pb(const struct pl_session_key *key,
                       const struct pl_session_info *info, int64_t archived_ms,
                       Plctl__ArchivedSession *pb);

/* "connecting", "syncing", "downloading", "idle", "failed"; "unknown" for a
 * value this build does not name.  Static, never NULL. */
const char *plc_pen_state_name(Plctl__PenState state);

/*
 * A preset push's diff (pl_preset_set_diff) as the PresetChange entries of
 * a PresetsPushed, and back; each change's before/after travels as a
 * pl.PresetSet of one preset, through the library's one conversion.
 * to_pb: *out is an array of *n messages (NULL and 0 for an empty diff);
 * free it with plc_preset_diff_pb_free.  PL_ERR_ARG, PL_ERR_MEM.
 * from_pb: PL_ERR_PROTOCOL for more than PL_PRESET_DIFF_MAX entries, an
 * unknown kind, or a before/after missing or not one preset where the kind
 * has one; out->unchanged is 0 (not carried).  PL_ERR_ARG for a NULL out.
 */
int plc_preset_diff_to_pb(const struct pl_preset_diff *diff,
                          Plctl__PresetChange ***out, size_t *n);
void plc_preset_diff_pb_free(Plctl__PresetChange **pb, size_t n);
int plc_preset_diff_from_pb(Plctl__PresetChange *const *pb, size_t n,
                            struct pl_preset_diff *out);

#ifdef __cplusplus
}
#endif

#endif
