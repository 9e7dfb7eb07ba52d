#!/usr/bin/env bash
# Issue 10: a preset name holding a NUL, sent to penlinkd by a client that
# speaks the control protocol itself (penctl cannot: its names are C
# strings).  protobuf-c ends a `string` at its first NUL, so penlinkd used to
# read "Cheek\0<ESC>[2Jevil" as "Cheek" and write that to the pen: the name
# was silently changed.  penlinkd measures the name by its length on the
# wire and refuses it (PL_ERR_VALIDATION naming the NUL and its byte), audits
# the refusal and leaves the pen's presets alone; the same request with a
# plain name goes through, so the refusal is the NUL's and not the client's
# framing.
. "$(dirname "$0")/lib.sh"

start_emu pen --serial PEN-NUL-1 --sessions 0
start_daemon --port "$EMU_PORT"
wait_idle 1
expect 0 "${D[@]}" --json preset list
before=$(jqo .revision)
names_before=$(jq -c '[.presets[].name]' <<<"$OUT")

# One PushPresets framed as penctl frames it (COBS, version 1, CRC-32),
# the name's bytes given in hex; prints the Response as JSON:
# {"code": N, "message": "..."} for an Error, {"pushed": true} otherwise.
cat >"$T/push.py" <<'PY'
import json, socket, sys, zlib
path, serial, name_hex = sys.argv[1:4]
def varint(n):
    out = b''
    while n >= 0x80:
        out += bytes([n & 0x7f | 0x80]); n >>= 7
    return out + bytes([n])
def ld(num, b): return varint(num << 3 | 2) + varint(len(b)) + b
def vi(num, v): return varint(num << 3) + varint(v)
def cobs(data):
    out, block = b'', b''
    for c in data:
        if c == 0:
            out += bytes([len(block) + 1]) + block; block = b''
        else:
            block += bytes([c])
            if len(block) == 254:
                out += b'\xff' + block; block = b''
    return out + bytes([len(block) + 1]) + block
def uncobs(data):
    out, i = b'', 0
    while i < len(data):
        n = data[i]; out += data[i + 1:i + n]; i += n
        if n < 0xff and i < len(data): out += b'\x00'
    return out
def fields(b):
    i = 0
    while i < len(b):
        key = 0; s = 0
        while True:
            c = b[i]; i += 1; key |= (c & 0x7f) << s; s += 7
            if c < 0x80: break
        num, wt = key >> 3, key & 7
        v = 0; s = 0
        while True:
            c = b[i]; i += 1; v |= (c & 0x7f) << s; s += 7
            if c < 0x80: break
        if wt == 2:
            yield num, b[i:i + v]; i += v
        else:
            yield num, v
# Preset{id 1, name, 0.5 mm, level 2, cheek}
preset = vi(1, 1) + ld(2, bytes.fromhex(name_hex)) + vi(3, 500) + vi(4, 2) + vi(5, 5)
# replace (6): the one preset replaces the pen's set (issue 11: a push that
# removes presets must say so)
push = ld(1, serial.encode()) + ld(3, preset) + vi(6, 1)
req = vi(1, 9) + ld(14, push)
raw = bytes([1, 0]) + req
raw += zlib.crc32(raw).to_bytes(4, 'little')
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(60)
s.connect(path)
s.sendall(cobs(raw) + b'\x00')
buf = b''
while b'\x00' not in buf.lstrip(b'\x00'):
    chunk = s.recv(65536)
    if not chunk: sys.exit("penlinkd hung up without answering")
    buf += chunk
frame = uncobs(buf.lstrip(b'\x00').split(b'\x00')[0])
resp = frame[2:-4]
out = {}
for num, v in fields(resp):
    if num == 1: out['id'] = v
    if num == 10:
        for n2, v2 in fields(v):
            if n2 == 1: out['code'] = (v2 >> 1) ^ -(v2 & 1)
            if n2 == 2: out['message'] = v2.decode('utf-8', 'replace')
    if num == 15: out['pushed'] = True
print(json.dumps(out))
PY

push_raw() { # NAME_HEX
  OUT=$(python3 "$T/push.py" "$SOCK" PEN-NUL-1 "$1" 2>"$T/push.err") \
    || { cat "$T/push.err" >&2; fail "the raw client failed"; }
}
hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

# "Cheek", a NUL, then an escape and more: 14 bytes on the wire.
push_raw "$(hex Cheek)00$(hex $'\e[2Jevil')"
assert_eq "$(jqo .id)" "9" "penlinkd answers the request"
assert_eq "$(jqo .code)" "-11" "a NUL in a name is PL_ERR_VALIDATION"
msg=$(jqo .message)
assert_contains "$msg" "NUL byte (byte 5 of 14)" "the refusal names the NUL and its byte on the wire"
assert_contains "$msg" "preset 1" "the refusal names the preset"

# A NUL first: not an empty name either.
push_raw "00$(hex Cheek)"
assert_eq "$(jqo .code)" "-11" "a leading NUL is refused"
assert_contains "$(jqo .message)" "NUL byte (byte 0 of 6)" "at byte 0"

# Shorter than 32 bytes up to the NUL, longer on the wire.
push_raw "$(hex ok)00$(hex aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa)"
assert_eq "$(jqo .code)" "-11" "a name over 32 bytes on the wire is refused"
assert_contains "$(jqo .message)" "43 bytes" "measured by its wire length (43), not strlen (2)"

expect 0 "${D[@]}" --json preset list
assert_eq "$(jqo .revision)" "$before" "the pen's presets were not written"
assert_eq "$(jq -c '[.presets[].name]' <<<"$OUT")" "$names_before" "the pen's names are unchanged"

expect 0 "${D[@]}" --json audit
nul=$(jq -c '[.entries[] | select(.action == "presets.push" and (.result | contains("NUL byte (byte 5 of 14)")))]' <<<"$OUT")
assert_eq "$(jq length <<<"$nul")" "1" "the refusal is audited once, with its reason"
assert_eq "$(jq -r '.[0].pen' <<<"$nul")" "PEN-NUL-1" "the audit entry names the pen"
assert_eq "$(jq '[.entries[] | select(.action == "presets.push" and .result == "ok")] | length' <<<"$OUT")" "0" \
  "no push is audited as done"
log=$(cat "$T/daemon.log")
if printf '%s' "$log" | LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]'; then
  fail "the daemon log holds a raw control byte"
fi
ok "the daemon log holds no raw control byte"

# The same request with a plain name is taken: the raw client frames
# PushPresets right, so the refusals above are the NUL's.
push_raw "$(hex Cheek)"
assert_eq "$(jqo .pushed)" "true" "the same push with \"Cheek\" goes through"
expect 0 "${D[@]}" --json preset list
assert_eq "$(jqo '.presets | length')" "1" "the pen holds the one preset pushed"
assert_eq "$(jqo '.presets[0].name')" "Cheek" "named as sent"
done_testing
