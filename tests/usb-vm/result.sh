#!/usr/bin/env bash
# One ctest per VM scenario: prints what the guest logged for NAME and exits
# 0 (passed), 77 (skipped, with the reason) or 1 (failed), from the verdicts
# vm.sh collected in OUT_DIR.
#
#   result.sh OUT_DIR NAME
set -uo pipefail
out=${1:?usage: result.sh OUT_DIR NAME}
name=${2:?usage: result.sh OUT_DIR NAME}
[ -f "$out/logs/$name" ] && cat "$out/logs/$name"
if [ ! -f "$out/results/$name" ]; then
  echo "usb-vm: no verdict for $name in $out (did usbvm.boot run?)"
  exit 1
fi
verdict=$(cat "$out/results/$name")
echo "usb-vm: $name: $verdict"
case $verdict in
  pass) exit 0 ;;
  skip*) exit 77 ;;
  *) exit 1 ;;
esac
