#!/usr/bin/env bash
# A hostile pen that answers one byte per second is detached by penlinkd with the reason, while
# a good pen beside it is archived intact (see hostile_lib.sh).
. "$(dirname "$0")/hostile_lib.sh"
hostile_test slow 'too slow: [0-9.]+ bytes/s'
