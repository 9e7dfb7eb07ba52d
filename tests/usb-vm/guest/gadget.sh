# Sourced by the VM's scenarios and by tests/bench/bench_usb.sh: a USB pen
# made of a configfs gadget with an acm function on a dummy_hcd UDC, and
# polling with a bound.  Callers define fail().
VID=0x1209
PID=0x0001
CFG=/sys/kernel/config/usb_gadget

# wait_for SECONDS WHAT CMD...: polls CMD every 0.1 s, against the clock
# (under software emulation one poll may itself take a good part of a second).
wait_for() {
  local limit=$1 what=$2 end; shift 2
  end=$((SECONDS + limit))
  while [ "$SECONDS" -lt "$end" ]; do
    "$@" && return 0
    sleep 0.1
  done
  fail "timed out after ${limit}s waiting for $what"
}

# gadget NAME SERIAL: a pen-shaped gadget (our VID:PID, that serial number)
# with one acm function; sets GS to its gadget-side tty.
gadget() {
  local g=$CFG/$1
  mkdir -p "$g" || fail "cannot create gadget $1 (configfs)"
  echo $VID >"$g/idVendor"
  echo $PID >"$g/idProduct"
  mkdir -p "$g/strings/0x409" "$g/configs/c.1/strings/0x409" "$g/functions/acm.pen"
  echo "$2" >"$g/strings/0x409/serialnumber"
  echo "penlink test" >"$g/strings/0x409/manufacturer"
  echo "Virtual pen" >"$g/strings/0x409/product"
  echo "acm" >"$g/configs/c.1/strings/0x409/configuration"
  [ -e "$g/configs/c.1/acm.pen" ] || ln -s "$g/functions/acm.pen" "$g/configs/c.1/"
  GS=/dev/ttyGS$(cat "$g/functions/acm.pen/port_num")
  wait_for 5 "$GS" test -c "$GS"
}
plug() { echo "$2" >"$CFG/$1/UDC" || fail "cannot bind gadget $1 to $2"; }
unplug() { echo "" >"$CFG/$1/UDC" 2>/dev/null || true; }
gadget_remove() {
  local g=$CFG/$1
  [ -d "$g" ] || return 0
  unplug "$1"
  rm -f "$g/configs/c.1/acm.pen"
  rmdir "$g/configs/c.1/strings/0x409" "$g/configs/c.1" "$g/functions/acm.pen" \
    "$g/strings/0x409" "$g" 2>/dev/null
}
# acm_of SERIAL: the host-side tty of the USB device with that serial.
acm_of() {
  local d
  for d in /sys/class/tty/ttyACM*; do
    [ -e "$d" ] || continue
    [ "$(cat "$d/device/../serial" 2>/dev/null)" = "$1" ] && { echo "/dev/${d##*/}"; return 0; }
  done
  return 1
}
have_acm() { acm_of "$1" >/dev/null; }

