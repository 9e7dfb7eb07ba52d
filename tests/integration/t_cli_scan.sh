#!/usr/bin/env bash
# penctl scan: the pens on USB, from a fake sysfs tree (PENLINK_SYSFS_ROOT)
# laid out as the kernel lays out a cdc_acm device, so the walk is the
# real one on a machine without USB.  The pen's "tty" is a penemu pty.
. "$(dirname "$0")/lib.sh"

R="$T/root"
# usb_dev NAME VID PID SERIAL PRODUCT BUS DEV TTY: a USB device with one
# CDC-ACM interface whose tty is TTY, and its class link.
usb_dev() {
  local name=$1 vid=$2 pid=$3 serial=$4 product=$5 bus=$6 devnum=$7 tty=$8
  local d="$R/sys/devices/pci0000:00/0000:00:14.0/usb$bus/$name"
  mkdir -p "$d/$name:1.0/tty/$tty" "$R/sys/class/tty" "$R/dev"
  echo "$vid" >"$d/idVendor"; echo "$pid" >"$d/idProduct"
  [ -n "$serial" ] && echo "$serial" >"$d/serial"
  echo "$product" >"$d/product"; echo "$bus" >"$d/busnum"; echo "$devnum" >"$d/devnum"
  ln -s "../../../$name:1.0" "$d/$name:1.0/tty/$tty/device"
  ln -s "../../devices/pci0000:00/0000:00:14.0/usb$bus/$name/$name:1.0/tty/$tty" \
    "$R/sys/class/tty/$tty"
}
mkdir -p "$R/sys/class/tty" "$R/dev"
export PENLINK_SYSFS_ROOT="$R"

# No pens: a clear message, exit 3, and JSON with an empty list.
expect 3 scan
assert_contains "$ERR" "no pens (1209:0001) found on USB" "no pens: says so"
assert_eq "$OUT" "" "no pens: nothing on stdout"
expect 3 --json scan
assert_eq "$(jqo '.pens | length')" "0" "no pens: JSON lists none"
assert_eq "$(jqo .error.code)" "not_found" "no pens: JSON error code not_found"
assert_eq "$(jqo .error.exit_code)" "3" "no pens: JSON exit_code 3"

# A virtual tty (no device link) and a USB serial adapter that is no pen.
mkdir -p "$R/sys/devices/virtual/tty/ttyS9"
ln -s ../../devices/virtual/tty/ttyS9 "$R/sys/class/tty/ttyS9"
usb_dev 1-2 0403 6001 FT123 "FT232R USB UART" 1 7 ttyUSB0
expect 3 scan
ok "a USB serial adapter is not a pen"

# One pen, its tty a live penemu pty.
start_emu pen --serial PEN-SCAN-1
usb_dev 1-1 1209 0001 PEN-SCAN-1 "PL-Pen 1" 1 5 ttyACM0
ln -s "$EMU_PORT" "$R/dev/ttyACM0"
expect 0 scan
line=$(grep '^1209:0001' <<<"$OUT")
read -r vp serial port state product <<<"$line"
assert_eq "$vp" "1209:0001" "scan: VID:PID"
assert_eq "$serial" "PEN-SCAN-1" "scan: serial"
assert_eq "$port" "$R/dev/ttyACM0" "scan: tty"
assert_eq "$state" "free" "scan: a port nobody holds is free"
assert_contains "$line" "PL-Pen 1" "scan: product"
assert_contains "$line" "001/005" "scan: USB bus/address"
assert_contains "$(head -n1 <<<"$OUT")" "serial" "scan: a header line"
[ "$(wc -l <<<"$OUT")" -eq 2 ] && ok "scan: only the pen (not the adapter, not ttyS9)" || fail "scan lines: $OUT"

expect 0 --json scan
assert_eq "$(jqo '.pens | length')" "1" "json: one pen"
assert_eq "$(jqo '.pens[0].vid_pid')" "1209:0001" "json: vid_pid"
assert_eq "$(jqo '.pens[0].vid')" "4617" "json: vid as a number"
assert_eq "$(jqo '.pens[0].serial')" "PEN-SCAN-1" "json: serial"
assert_eq "$(jqo '.pens[0].port')" "$R/dev/ttyACM0" "json: port"
assert_eq "$(jqo '.pens[0].state')" "free" "json: state free"
assert_eq "$(jqo '.pens[0].holder_pid')" "null" "json: no holder"
assert_eq "$(jqo '.pens[0].bus'),$(jqo '.pens[0].address')" "1,5" "json: bus and address"

# --all adds the adapter; -s filters by serial.
expect 0 --json scan --all
assert_eq "$(jqo '[.pens[].vid_pid] | join(",")')" "1209:0001,0403:6001" "--all: every USB serial port, by path"
expect 0 -s PEN-SCAN-1 scan
assert_contains "$OUT" "PEN-SCAN-1" "-s: the pen named"
expect 3 -s PEN-OTHER scan
assert_contains "$ERR" "no pen with serial PEN-OTHER on USB" "-s: another serial is not found"

# Busy: penctl --port holds the port's lock while it traces.
"${WRAP[@]}" "$PENCTL" --port "$R/dev/ttyACM0" trace >"$T/tr.out" 2>"$T/tr.err" &
TR=$!
EMU_PIDS+=("$TR")
for i in $(seq 100); do grep -q tracing "$T/tr.err" && break; sleep 0.05; done
expect 0 scan
line=$(grep '^1209:0001' <<<"$OUT")
assert_contains "$line" "busy (" "scan: a port penctl holds is busy"
assert_contains "$line" "pid $TR)" "scan: and names who holds it"
expect 0 --json scan
assert_eq "$(jqo '.pens[0].state')" "busy" "json: state busy"
assert_eq "$(jqo '.pens[0].holder_pid')" "$TR" "json: holder_pid"
# (under valgrind the process is valgrind's)
[ ${#WRAP[@]} -gt 0 ] || assert_eq "$(jqo '.pens[0].holder')" "penctl" "json: holder name"
kill -INT "$TR"; wait "$TR"
expect 0 --json scan
assert_eq "$(jqo '.pens[0].state')" "free" "free again once penctl is gone"

expect 0 scan --help
assert_contains "$OUT" "--all" "scan --help comes from its option table"
done_testing
