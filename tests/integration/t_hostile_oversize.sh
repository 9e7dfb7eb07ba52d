#!/usr/bin/env bash
# A hostile pen that sends frames twice the size agreed in the handshake is detached by penlinkd with the reason, while
# a good pen beside it is archived intact (see hostile_lib.sh).
. "$(dirname "$0")/hostile_lib.sh"
hostile_test oversize '[0-9]+ oversized frames \(over the 32768 bytes agreed in the handshake\) in [0-9.]+ s'
