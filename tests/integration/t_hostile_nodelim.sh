#!/usr/bin/env bash
# A hostile pen that streams bytes without any frame delimiter is detached by penlinkd with the reason, while
# a good pen beside it is archived intact (see hostile_lib.sh).
. "$(dirname "$0")/hostile_lib.sh"
hostile_test nodelim 'no valid frame in [0-9]+ bytes of input'
