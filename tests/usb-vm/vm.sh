#!/usr/bin/env bash
# Boots a small Linux VM in which a real USB CDC-ACM pen appears: Debian's
# kernel and modules, dummy_hcd + a configfs `acm` gadget, systemd-udevd, and
# the project's binaries in a busybox initramfs.  The guest runs
# guest/scenarios.sh and reports over the serial console; this script splits
# the console into one result per scenario for result.sh (one ctest each).
#
#   vm.sh BUILD_DIR OUT_DIR
#
# OUT_DIR/results/NAME holds "pass", "fail: why" or "skip: why";
# OUT_DIR/logs/NAME the scenario's own output; OUT_DIR/console.log all of it.
# Nothing outside OUT_DIR is written but the packages apt installs; what is
# unpacked is removed after the boot unless PL_VM_KEEP is set.
# PL_VM_QEMU names another QEMU binary (tests use /bin/false to see the skip);
# PL_VM_TIMEOUT (seconds, default 480) bounds the whole boot; PLVM_ONLY
# (comma-separated scenario names) runs only those, for debugging.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: vm.sh BUILD_DIR OUT_DIR}" && pwd)
out=${2:?usage: vm.sh BUILD_DIR OUT_DIR}
timeout_s=${PL_VM_TIMEOUT:-480}
scenarios=(udev hotplug presets unplug twopens restart hostile bench)
[ -n "${PLVM_ONLY:-}" ] && IFS=, read -r -a scenarios <<<"$PLVM_ONLY"

rm -rf "$out"
mkdir -p "$out/results" "$out/logs" "$out/pkg"
out=$(cd "$out" && pwd)

# Every scenario gets the same verdict when the VM cannot be had at all:
# skipped, with the reason, never passed.
skip_all() {
  local why=$1 s
  echo "usb-vm: skipping every scenario: $why" >&2
  for s in "${scenarios[@]}"; do echo "skip: $why" >"$out/results/$s"; done
  exit 0
}

# ---------------------------------------------------------------- packages
need=()
qemu=${PL_VM_QEMU:-qemu-system-x86_64}
[ -n "${PL_VM_QEMU:-}" ] || command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
/bin/busybox --list 2>/dev/null | grep -qx insmod || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
  echo "usb-vm: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
    >"$out/apt.log" 2>&1 || skip_all "cannot install ${need[*]} (see $out/apt.log)"
fi
command -v "$qemu" >/dev/null || skip_all "$qemu is not available"

# The kernel and udev are extracted, not installed: the VM needs their files,
# the host keeps its own kernel and device manager.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kpkg" ]; then
  apt-get update -qq >"$out/apt.log" 2>&1 || true
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$kpkg" ] || skip_all "apt knows no linux-image-amd64 package (no Debian package lists)"
(cd "$out/pkg" && apt-get download "$kpkg" udev >"$out/download.log" 2>&1) ||
  skip_all "cannot download $kpkg and udev (see $out/download.log)"
x="$out/pkg/root"
mkdir -p "$x"
for deb in "$out"/pkg/*.deb; do dpkg-deb -x "$deb" "$x" || skip_all "cannot unpack $deb"; done
kver=${kpkg#linux-image-}
vmlinuz="$x/boot/vmlinuz-$kver"
[ -f "$vmlinuz" ] || skip_all "$kpkg has no /boot/vmlinuz-$kver"

# ---------------------------------------------------------------- initramfs
r="$out/initramfs"
mkdir -p "$r"/{bin,sbin,lib/modules,etc/udev/rules.d,lib/udev/rules.d,pl,dev,proc,sys,run,tmp,root,var/tmp}
# Binaries come with the shared libraries ldd finds for them, at the same
# paths, so the guest's dynamic loader resolves them as the host's does.
# The build's own libraries (libpenlink, found through the binaries'
# RUNPATH) go to /pl/lib instead, on the guest's LD_LIBRARY_PATH: the build
# may live under /tmp, which the guest mounts a tmpfs over.
copy_bin() {
  local bin=$1 dest=$2 lib
  mkdir -p "$(dirname "$r$dest")"
  cp -L "$bin" "$r$dest"
  for lib in $(ldd "$bin" 2>/dev/null | awk '/=> \// {print $3} /^\t\/lib/ {print $1}'); do
    case "$lib" in
      /lib/*|/lib64/*|/usr/lib/*|/usr/lib64/*) ;;
      *) mkdir -p "$r/pl/lib"; cp -L "$lib" "$r/pl/lib/"; continue ;;
    esac
    [ -e "$r$lib" ] && continue
    mkdir -p "$(dirname "$r$lib")"
    cp -L "$lib" "$r$lib"
  done
}

# busybox-static needs nothing more; a dynamic busybox brings its libraries.
copy_bin /bin/busybox /bin/busybox
for app in $(/bin/busybox --list); do
  [ -e "$r/bin/$app" ] || ln -s busybox "$r/bin/$app"
done

missing=()
for b in daemon/penlinkd cli/penctl firmware-bridge/penemu tests/bench_usblink; do
  [ -x "$build/$b" ] || missing+=("$b")
done
[ ${#missing[@]} -eq 0 ] || { echo "usb-vm: not built in $build: ${missing[*]}" >&2; exit 1; }
copy_bin "$build/daemon/penlinkd" /pl/penlinkd
copy_bin "$build/cli/penctl" /pl/penctl
copy_bin "$build/firmware-bridge/penemu" /pl/penemu
copy_bin "$build/tests/bench_usblink" /pl/bench_usblink
copy_bin "$(command -v bash)" /bin/bash
copy_bin "$(command -v jq)" /usr/bin/jq
copy_bin "$x/bin/udevadm" /bin/udevadm
# PL_VM_EXTRA: more host programs for debugging in the guest (strace, ...).
for b in ${PL_VM_EXTRA:-}; do copy_bin "$(command -v "$b")" "/pl/$(basename "$b")"; done
ln -sf /bin/udevadm "$r/sbin/systemd-udevd"
# libusb and libserialport are loaded through penlinkd's dependencies; the
# udev library libusb uses for hotplug comes the same way.

mods=(configfs usb-common usbcore udc-core libcomposite u_serial usb_f_acm dummy_hcd cdc-acm)
for m in "${mods[@]}"; do
  f=$(find "$x/lib/modules/$kver" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n1)
  [ -n "$f" ] || skip_all "$kpkg has no module $m"
  case "$f" in
    *.xz) xz -dc "$f" >"$r/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" >"$r/lib/modules/$m.ko" ;;
    *) cp "$f" "$r/lib/modules/$m.ko" ;;
  esac
done
echo "${mods[*]}" >"$r/lib/modules/order"

# udev's own rules name and group the nodes as on a Debian host; ours is
# installed by the udev scenario itself (it checks before and after).
cp "$x"/lib/udev/rules.d/50-udev-default.rules "$x"/lib/udev/rules.d/60-serial.rules \
  "$r/lib/udev/rules.d/" 2>/dev/null || true
cp "$src/daemon/70-penlink.rules" "$r/pl/70-penlink.rules"
cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$r/etc/group" <<'EOF'
root:x:0:
tty:x:5:
dialout:x:20:
nogroup:x:65534:
penlink:x:990:
EOF

cp "$here/guest/init" "$r/init"
cp "$here/guest/scenarios.sh" "$here/guest/gadget.sh" "$r/pl/"
cp "$src/tests/bench/bench_usb.sh" "$r/pl/bench_usb.sh"
chmod +x "$r/init" "$r/pl/"*.sh
(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initramfs.gz" ||
  { echo "usb-vm: cannot pack the initramfs" >&2; exit 1; }

# ---------------------------------------------------------------- boot
echo "usb-vm: booting $kpkg under qemu (tcg), at most ${timeout_s}s" >&2
start=$(date +%s)
# The CPU is "max" without ERMS/FSRM: QEMU 7.2's TCG runs `rep movsb` one
# byte per translated iteration, and with those flags glibc's memcpy (past a
# few KiB) and the kernel's user copies all go through it, so every copy
# weighed 10-50 times what it does on hardware, where ERMS makes it the
# fastest copy.  Without them both use vector or 8-byte loops, which TCG runs
# in proportion.  Measured in one boot each: the raw USB copy 0.67 -> 0.52 s
# for 8 MB, the download (which copies more in user space) 0.95 -> 0.58 s.
timeout --kill-after=10 "$timeout_s" "$qemu" \
  -accel tcg -cpu "${PL_VM_CPU:-max,erms=off,fsrm=off}" -smp 2 -m 1024 -no-reboot \
  -display none -monitor none -serial "file:$out/console.log" \
  -kernel "$vmlinuz" -initrd "$out/initramfs.gz" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init${PLVM_ONLY:+ PLVM_ONLY=$PLVM_ONLY}" \
  >"$out/qemu.log" 2>&1 &
vm_pid=$!
# Killed from outside (a ctest timeout): take the VM down too.
trap 'kill "$vm_pid" 2>/dev/null; exit 1' INT TERM HUP
wait "$vm_pid"
rc=$?
trap - INT TERM HUP
echo "usb-vm: qemu exited $rc after $(( $(date +%s) - start ))s" >&2
[ -s "$out/console.log" ] || skip_all "qemu printed nothing (exit $rc): $(tail -n 3 "$out/qemu.log" | tr '\n' ' ')"

# What was unpacked is large (the kernel's modules); the logs stay.
[ -n "${PL_VM_KEEP:-}" ] || rm -rf "$out/pkg" "$out/initramfs" "$out/initramfs.gz"

# ---------------------------------------------------------------- results
# The guest brackets each scenario with "PLVM BEGIN name" and "PLVM END name
# verdict"; everything between is that scenario's log.
tr -d '\r' <"$out/console.log" | awk -v dir="$out" '
  /^PLVM BEGIN / { name = $3; log_file = dir "/logs/" name; printf "" > log_file; next }
  /^PLVM END / {
    verdict = $0; sub(/^PLVM END [^ ]+ /, "", verdict)
    print verdict > (dir "/results/" $3); close(dir "/results/" $3)
    close(log_file); name = ""; next
  }
  name != "" { print >> log_file }
'
for s in "${scenarios[@]}"; do
  [ -s "$out/results/$s" ] && continue
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "fail: the VM ran out of its ${timeout_s}s before this scenario finished" >"$out/results/$s"
  else
    echo "fail: the VM stopped (qemu exit $rc) without reporting this scenario" >"$out/results/$s"
  fi
done
exit 0
