#!/bin/bash
# The real-USB scenarios, run inside the VM by /init.  Each scenario prints
# "PLVM BEGIN name", its log, then "PLVM END name pass|fail: why|skip: why"
# on the serial console; vm.sh turns that into one ctest result each.
#
# The pen is a configfs gadget with an acm function bound to a dummy_hcd UDC:
# the host side is the kernel's cdc_acm driver (/dev/ttyACMn), the gadget side
# /dev/ttyGSn, where penemu plays the pen.  Writing "" to the gadget's UDC
# file is an unplug.
set -uo pipefail
export PATH=/pl:/bin:/sbin:/usr/bin
export LD_LIBRARY_PATH=/pl/lib
W=/tmp/pl
SOCK=$W/penlinkd.sock
DB=$W/archive.db
D=(--socket "$SOCK")
mkdir -p "$W"

# ---------------------------------------------------------------- helpers
. /pl/gadget.sh
# Runs in each scenario's subshell: fail and skip end the scenario.
fail() { echo "FAIL: $*"; echo "$*" >"$W/why"; exit 1; }
skip() { echo "SKIP: $*"; echo "$*" >"$W/why"; exit 77; }
CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok $CHECKS - $*"; }
assert_eq() { [ "$1" == "$2" ] || fail "$3: got '$1', expected '$2'"; ok "$3"; }

# run ARGS...: penctl, capturing OUT, ERR and RC.
run() { OUT=$(penctl "$@" 2>"$W/stderr"); RC=$?; ERR=$(cat "$W/stderr"); }
expect() {
  local want=$1; shift
  run "$@"
  [ "$RC" -eq "$want" ] || fail "penctl $* exited $RC, expected $want: $ERR"
}
jqo() { jq -r "$1" <<<"$OUT" || fail "jq '$1' on: $OUT"; }

# emu NAME ARGS...: penemu on the gadget tty GS; sets EMU_PID.
emu() {
  local name=$1; shift
  penemu --tty "$GS" "$@" >"$W/$name.out" 2>"$W/$name.err" &
  EMU_PID=$!
}

DAEMON_PID=
daemon_start() {
  cat >"$W/penlinkd.conf" <<'CONF'
[pens]
# Software emulation is 10-50x slower than a pen on real hardware.
request_timeout_ms = 8000
handshake_timeout_ms = 20000
CONF
  rm -f "$SOCK"
  penlinkd --foreground --config "$W/penlinkd.conf" --socket "$SOCK" --db "$DB" \
    --log-level debug >>"$W/daemon.log" 2>&1 &
  DAEMON_PID=$!
  wait_for 30 "penlinkd's socket" test -S "$SOCK"
}
# pens_idle N: N pens attached through USB, all idle.
pens_idle() {
  run "${D[@]}" --json list
  [ "$RC" -eq 0 ] || return 1
  [ "$(jq '[.pens[] | select(.state == "idle" and .usb)] | length' <<<"$OUT")" -eq "$1" ] &&
    [ "$(jq '.pens | length' <<<"$OUT")" -eq "$1" ]
}
log_has() { grep -Eq "$1" "$W/daemon.log"; }

# pen_digests SERIAL FILE: the pen's own session list (direct, over
# /dev/ttyACMn through libserialport) as uuid -> sha256, sorted.
pen_digests() {
  local tty
  tty=$(acm_of "$1") || fail "no ttyACM for $1"
  expect 0 --port "$tty" --timeout 8000 --json sessions list
  jq -r '.sessions[] | "\(.uuid) \(.sha256)"' <<<"$OUT" | sort >"$2"
  [ -s "$2" ] || fail "pen $1 listed no sessions"
}
# pen_up NAME SERIAL [penemu args...]: a gadget pen played by penemu,
# plugged into dummy_udc.0; its own session digests in $W/NAME.digests.
pen_up() {
  local name=$1 serial=$2; shift 2
  gadget "$name" "$serial"
  emu "$name" --serial "$serial" --flash "$W/$name.flash" "$@"
  plug "$name" dummy_udc.0
  wait_for 20 "the cdc_acm tty of $serial" have_acm "$serial"
  pen_digests "$serial" "$W/$name.digests"
}
# downloaded_over BYTES: penlinkd has downloaded more than BYTES in all.
downloaded_over() {
  run "${D[@]}" --json list
  [ "$RC" -eq 0 ] && [ "$(jq '[.pens[].download_done] | add // 0' <<<"$OUT")" -gt "$1" ]
}
archive_digests() {
  expect 0 "${D[@]}" --json sessions list
  jq -r --arg s "$1" '.sessions[] | select(.serial == $s) | "\(.uuid) \(.sha256)"' <<<"$OUT" | sort
}

# Between scenarios: nothing of the last one may leak into the next.
reset_world() {
  local g p
  [ -n "$DAEMON_PID" ] && kill -9 "$DAEMON_PID" 2>/dev/null
  for p in $(pidof penlinkd penemu penctl bench_usblink 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  for g in "$CFG"/*/; do [ -d "$g" ] && gadget_remove "$(basename "$g")"; done
  sleep 0.3
  rm -rf "$W"; mkdir -p "$W"
  DAEMON_PID=
}

scenario() {
  local name=$1 rc why start
  echo "PLVM BEGIN $name"
  start=$(date +%s)
  ( "scn_$name" )
  rc=$?
  why=$(cat "$W/why" 2>/dev/null)
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -f "$W/daemon.log" ]; then
    echo "--- penlinkd's log (last 40 lines but client connections)"; grep -v " client pid " "$W/daemon.log" | tail -n 40
  fi
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    for f in "$W"/*.err; do [ -s "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done
  fi
  echo "(${name}: $(( $(date +%s) - start ))s)"
  reset_world
  case $rc in
    0) echo "PLVM END $name pass" ;;
    77) echo "PLVM END $name skip: $why" ;;
    *) echo "PLVM END $name fail: ${why:-exit status $rc}" ;;
  esac
}

# ---------------------------------------------------------------- scenarios

# 5. The udev rule: before it is installed the tty is udev's default
# (group dialout); after, it carries our tag, the ModemManager opt-out, and
# the group and mode the rule sets.
scn_udev() {
  gadget pen PEN-UDEV-1
  plug pen dummy_udc.0
  wait_for 20 "the cdc_acm tty" have_acm PEN-UDEV-1
  local acm; acm=$(acm_of PEN-UDEV-1)
  udevadm settle -t 20
  echo "before the rule: $(stat -c '%G %a' "$acm")"
  udevadm info "$acm" | grep -q 'ID_MM_DEVICE_IGNORE=1' && fail "ID_MM_DEVICE_IGNORE set before our rule was installed"
  ok "without our rule the tty has no ID_MM_DEVICE_IGNORE"
  cp /pl/70-penlink.rules /etc/udev/rules.d/70-penlink.rules
  udevadm control --reload || fail "udevadm control --reload"
  unplug pen
  wait_for 20 "the tty to go" eval "! have_acm PEN-UDEV-1"
  plug pen dummy_udc.0
  wait_for 20 "the cdc_acm tty again" have_acm PEN-UDEV-1
  acm=$(acm_of PEN-UDEV-1)
  udevadm settle -t 20
  local info; info=$(udevadm info "$acm")
  echo "$info"
  grep -q '^E: ID_MM_DEVICE_IGNORE=1$' <<<"$info" && ok "ID_MM_DEVICE_IGNORE=1 on $acm" ||
    fail "no ID_MM_DEVICE_IGNORE=1 in udevadm info $acm"
  grep -Eq '^(E: TAGS=.*:uaccess:|G: uaccess)' <<<"$info" && ok "tag uaccess on $acm" ||
    fail "no uaccess tag in udevadm info $acm"
  assert_eq "$(stat -c '%G %a' "$acm")" "penlink 660" "group and mode of $acm"
  local usbdev; usbdev=$(udevadm info -q path "$acm")
  usbdev=/dev/bus/usb/$(udevadm info -q property -p "${usbdev%/*/*/*}" | sed -n 's/^BUSNUM=//p')/$(udevadm info -q property -p "${usbdev%/*/*/*}" | sed -n 's/^DEVNUM=//p')
  assert_eq "$(stat -c '%G %a' "$usbdev")" "penlink 660" "group and mode of the USB node $usbdev"
}

# 1. Hotplug: the gadget is bound after penlinkd is running; penlinkd sees
# it through libusb hotplug, maps it to its tty through libserialport, and
# archives every session with matching digests.
scn_hotplug() {
  # The pen's own view first, over the real tty, without the daemon.
  pen_up pen PEN-HOT-1 --sessions 4 --session-bytes 300000 --seed 41
  assert_eq "$(wc -l <"$W/pen.digests")" "4" "the pen lists its 4 sessions over /dev/ttyACM"
  unplug pen
  wait_for 20 "the tty to go" eval "! have_acm PEN-HOT-1"

  daemon_start
  run "${D[@]}" --json list
  assert_eq "$(jqo '.pens | length')" "0" "no pen before the plug"
  plug pen dummy_udc.0
  wait_for 120 "the pen archived and idle" pens_idle 1
  assert_eq "$(jqo '.pens[0].serial')" "PEN-HOT-1" "penlinkd's pen is the gadget's serial"
  assert_eq "$(jqo '.pens[0].port')" "$(acm_of PEN-HOT-1)" "penlinkd mapped the pen to its ttyACM"
  log_has 'usb [0-9]+/[0-9]+: pen 1209:0001 arrived' && ok "libusb hotplug reported the arrival" ||
    fail "no hotplug arrival in the log"
  log_has "serial PEN-HOT-1\) is /dev/ttyACM" && ok "libserialport matched the USB serial to the tty" ||
    fail "no tty mapping in the log"
  archive_digests PEN-HOT-1 >"$W/archive.digests"
  diff "$W/pen.digests" "$W/archive.digests" || fail "archive digests differ from the pen's"
  ok "all 4 sessions archived, every digest equal to the pen's"
}

# 4. Presets over real USB: push, read back, a refused out-of-range push; then
# the same read directly over the tty (libserialport) with penlinkd stopped.
scn_presets() {
  gadget pen PEN-PRE-1
  emu pen --serial PEN-PRE-1 --flash "$W/pen.flash" --sessions 0
  daemon_start
  plug pen dummy_udc.0
  wait_for 60 "the pen idle" pens_idle 1
  cat >"$W/presets.json" <<'JSON'
{"presets": [
  {"id": 1, "name": "Forehead", "depth_mm": 0.25, "speed": 3},
  {"id": 2, "name": "Cheeks", "depth_mm": 1.0, "speed": 5},
  {"id": 3, "name": "Scar", "depth_mm": 2.0, "speed": 1}
]}
JSON
  expect 0 "${D[@]}" -s PEN-PRE-1 preset push "$W/presets.json" --confirm
  expect 0 "${D[@]}" -s PEN-PRE-1 --json preset list
  assert_eq "$(jqo '[.presets[] | "\(.id):\(.name):\(.depth_mm):\(.speed)"] | join(",")')" \
    "1:Forehead:0.25:3,2:Cheeks:1:5,3:Scar:2:1" "presets read back through penlinkd"
  run "${D[@]}" -s PEN-PRE-1 preset push --id 4 --name Deep --depth 9.5 --speed 3 --confirm
  [ "$RC" -ne 0 ] || fail "a 9.5 mm preset was accepted"
  grep -qi 'depth' <<<"$ERR" && ok "out-of-range push refused (exit $RC): $ERR" || fail "refusal does not name the depth: $ERR"
  expect 0 "${D[@]}" -s PEN-PRE-1 --json preset list
  assert_eq "$(jqo '.presets | length')" "3" "the refused push changed nothing"
  kill "$DAEMON_PID"; wait "$DAEMON_PID"
  expect 0 --port "$(acm_of PEN-PRE-1)" --timeout 8000 --json preset list
  assert_eq "$(jqo '[.presets[].name] | join(",")')" "Forehead,Cheeks,Scar" "presets read directly over the tty"
}

# 2. Unplug mid-download, then replug: penlinkd keeps running and the
# partial download, and resumes from its offset.
scn_unplug() {
  # Paced (8 ms a frame: at least 3 s for the session) so the unplug lands
  # mid-download however fast the emulation runs: unpaced, the rest of the
  # session once arrived before the unbind took effect.
  pen_up pen PEN-UNP-1 --sessions 1 --session-bytes 6000000 --seed 42 --fault-delay 8
  daemon_start
  wait_for 60 "the download to pass 1 MB" downloaded_over 1000000
  unplug pen
  ok "unplugged $(jqo '.pens[0].download_done') bytes into a $(jqo '.pens[0].download_total')-byte session"
  wait_for 30 "the pen detached" eval 'run "${D[@]}" --json list; [ "$(jq ".pens | length" <<<"$OUT")" = 0 ]'
  kill -0 "$DAEMON_PID" && ok "penlinkd keeps running after the unplug" || fail "penlinkd died"
  log_has 'pen left' && ok "libusb reported the departure" || fail "no departure in the log"
  expect 0 "${D[@]}" --json sessions list
  assert_eq "$(jqo '.sessions | length')" "0" "nothing committed from half a session"
  plug pen dummy_udc.0
  wait_for 180 "the pen archived and idle after the replug" pens_idle 1
  log_has 'resum.*offset [1-9][0-9]*' && ok "the download resumed from a stored offset: $(grep -Eo 'resum.*offset [0-9]+' "$W/daemon.log" | tail -n1)" ||
    fail "no resume from a non-zero offset in the log"
  archive_digests PEN-UNP-1 >"$W/archive.digests"
  diff "$W/pen.digests" "$W/archive.digests" || fail "archive digest differs from the pen's"
  ok "the resumed session's digest equals the pen's"
}

# 3. Two pens on two virtual host controllers: both archived, each
# addressed by its serial.
scn_twopens() {
  gadget a PEN-TWO-A; GA=$GS
  gadget b PEN-TWO-B; GB=$GS
  GS=$GA emu a --serial PEN-TWO-A --flash "$W/a.flash" --sessions 3 --session-bytes 200000 --seed 43
  GS=$GB emu b --serial PEN-TWO-B --flash "$W/b.flash" --sessions 2 --session-bytes 200000 --seed 44
  plug a dummy_udc.0
  plug b dummy_udc.1
  wait_for 20 "two cdc_acm ttys" eval 'have_acm PEN-TWO-A && have_acm PEN-TWO-B'
  pen_digests PEN-TWO-A "$W/a.digests"
  pen_digests PEN-TWO-B "$W/b.digests"
  # penctl scan reads the real sysfs: both pens, their ttys, free...
  expect 0 --json scan
  assert_eq "$(jqo '[.pens[] | .vid_pid + " " + .serial + " " + .state] | sort | join(",")')" \
    "1209:0001 PEN-TWO-A free,1209:0001 PEN-TWO-B free" "penctl scan lists both pens, free"
  jqo '.pens[].port' | grep -qvx '/dev/ttyACM[0-9]*' && fail "scan ports: $OUT"
  ok "penctl scan names their /dev/ttyACM* ports"
  daemon_start
  wait_for 180 "both pens archived and idle" pens_idle 2
  # ... and busy, held by penlinkd, once it serves them.
  expect 0 --json scan
  assert_eq "$(jqo '[.pens[] | .state + " " + .holder] | unique | join(",")')" \
    "busy penlinkd" "penctl scan: both busy, held by penlinkd"
  archive_digests PEN-TWO-A >"$W/a.archive"
  archive_digests PEN-TWO-B >"$W/b.archive"
  diff "$W/a.digests" "$W/a.archive" || fail "pen A's digests differ"
  diff "$W/b.digests" "$W/b.archive" || fail "pen B's digests differ"
  ok "3 + 2 sessions archived with the pens' digests"
  local s
  for s in PEN-TWO-A PEN-TWO-B; do
    expect 0 "${D[@]}" -s "$s" --json info
    assert_eq "$(jqo '.serial')" "$s" "penctl -s $s info answers for that pen"
  done
  run "${D[@]}" info
  [ "$RC" -ne 0 ] && ok "info without -s is refused with two pens (exit $RC)" || fail "info without -s picked a pen"
}

# 6. penlinkd killed with SIGKILL while a pen is attached and downloading;
# restarted, it enumerates the pen already there and carries on.
scn_restart() {
  # Paced (5 ms a frame) so the kill lands mid-download, as in scn_unplug.
  pen_up pen PEN-RST-1 --sessions 2 --session-bytes 3000000 --seed 45 --fault-delay 5
  daemon_start
  wait_for 60 "the download to pass 500 kB" downloaded_over 500000
  kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
  [ "$(grep -c 'SHA-256 verified' "$W/daemon.log")" -lt 2 ] &&
    ok "penlinkd killed with SIGKILL mid-download" || fail "both sessions were archived before the kill"
  echo "--- restart" >>"$W/daemon.log"
  daemon_start
  wait_for 180 "the pen archived and idle after the restart" pens_idle 1
  sed -n '/^--- restart/,$p' "$W/daemon.log" | grep -Eq 'pen 1209:0001 arrived' &&
    ok "the restarted penlinkd found the attached pen by enumeration" || fail "no arrival after the restart"
  sed -n '/^--- restart/,$p' "$W/daemon.log" | grep -Eq 'resum.*offset [1-9][0-9]*' &&
    ok "the restarted penlinkd resumed from the offset stored before the kill" ||
    fail "no resume from a non-zero offset after the restart"
  archive_digests PEN-RST-1 >"$W/archive.digests"
  diff "$W/pen.digests" "$W/archive.digests" || fail "digests differ after the restart"
  ok "both sessions archived once, digests equal"
}

# The good pen idle and the hostile one listed as failed (a USB pen stays
# listed, failed, until it is unplugged).
good_idle_bad_failed() {
  run "${D[@]}" --json list
  [ "$RC" -eq 0 ] &&
    [ "$(jq -r '[.pens[] | "\(.serial)=\(.state)"] | sort | join(",")' <<<"$OUT")" = "PEN-HB-USB=failed,PEN-HG-USB=idle" ]
}
hostile_detached() { [ "$(grep -Ec "PEN-HB-USB on /dev/ttyACM[0-9]+: detached: " "$W/daemon.log")" -ge "$1" ]; }
# A hostile pen on a real USB port beside a good one (issue 5's hostile pen,
# over cdc_acm and libusb hotplug): penlinkd detaches it with the reason,
# once per plug, and the good pen is archived intact meanwhile.
scn_hostile() {
  gadget good PEN-HG-USB; local GG=$GS
  gadget bad PEN-HB-USB; local GB=$GS
  GS=$GG emu good --serial PEN-HG-USB --flash "$W/good.flash" --sessions 3 --session-bytes 400000 --seed 61
  plug good dummy_udc.0
  wait_for 20 "the good pen's tty" have_acm PEN-HG-USB
  pen_digests PEN-HG-USB "$W/good.digests"
  GS=$GB emu bad --serial PEN-HB-USB --flash "$W/bad.flash" --hostile oversize
  local BAD_PID=$EMU_PID
  daemon_start
  plug bad dummy_udc.1
  wait_for 120 "the oversize pen detached" hostile_detached 1
  local line
  line=$(grep -E "PEN-HB-USB on /dev/ttyACM[0-9]+: detached: " "$W/daemon.log" | tail -n1)
  grep -Eq 'detached: [0-9]+ oversized frames \(over the [0-9]+ bytes agreed in the handshake\)' <<<"$line" &&
    ok "oversize over USB: ${line#*detached: }" || fail "oversize: unexpected reason: $line"

  # Re-plugged with another attack: attached again on the arrival, and
  # detached again for what it does now.
  unplug bad
  kill "$BAD_PID"; wait "$BAD_PID" 2>/dev/null
  GS=$GB emu bad --serial PEN-HB-USB --flash "$W/bad.flash" --hostile flood
  plug bad dummy_udc.1
  wait_for 120 "the flooding pen detached" hostile_detached 2
  line=$(grep -E "PEN-HB-USB on /dev/ttyACM[0-9]+: detached: " "$W/daemon.log" | tail -n1)
  grep -Eq 'detached: unsolicited frame flood: [0-9]+ frames in [0-9.]+ s' <<<"$line" &&
    ok "flood over USB after a replug: ${line#*detached: }" || fail "flood: unexpected reason: $line"

  wait_for 180 "the good pen archived and idle" good_idle_bad_failed
  local why; why=$(jqo '.pens[] | select(.serial == "PEN-HB-USB") | .last_error')
  grep -Eq '^detached: unsolicited frame flood: [0-9]+ frames.*until it is unplugged' <<<"$why" &&
    ok "penctl list shows the hostile pen failed, with the reason: $why" || fail "last_error of the hostile pen: '$why'"
  sleep 2
  good_idle_bad_failed || fail "the hostile pen left the failed state by itself: $OUT"
  ok "the hostile pen, still plugged in, stays failed: not attached again by itself"
  kill -0 "$DAEMON_PID" && ok "penlinkd kept running" || fail "penlinkd died"
  local hwm; hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$DAEMON_PID/status")
  [ -n "$hwm" ] && [ "$hwm" -le 24576 ] && ok "penlinkd's peak RSS stayed at $hwm kB (bound 24576)" ||
    fail "penlinkd's peak RSS reached $hwm kB (bound 24576)"
  archive_digests PEN-HG-USB >"$W/good.archive"
  diff "$W/good.digests" "$W/good.archive" || fail "the good pen's digests differ"
  ok "the good pen's 3 sessions archived, digests equal"
  expect 0 "${D[@]}" --json sessions list
  assert_eq "$(jqo '[.sessions[] | select(.serial == "PEN-HB-USB")] | length')" "0" \
    "nothing archived from the hostile pen"
}

# The benchmark: session download over ttyACM vs raw ttyACM <- ttyGS
# throughput in this boot, at high speed and at full speed.
scn_bench() {
  bash /pl/bench_usb.sh || fail "bench_usb.sh failed"
}

echo "PLVM kernel $(uname -r), $(nproc) cpus"
# udevd from the initramfs: libusb's hotplug listens to its events.
systemd-udevd --daemon 2>/dev/null || echo "PLVM systemd-udevd failed to start"
udevadm trigger --action=add >/dev/null 2>&1
udevadm settle -t 30
ls /sys/class/udc

PLVM_ONLY=${PLVM_ONLY:-udev,hotplug,presets,unplug,twopens,restart,hostile,bench}
for s in ${PLVM_ONLY//,/ }; do
  scenario "$s"
done
