#!/usr/bin/env bash
# A hostile pen that floods the host with unsolicited frames is detached by penlinkd with the reason, while
# a good pen beside it is archived intact (see hostile_lib.sh).
. "$(dirname "$0")/hostile_lib.sh"
hostile_test flood 'unsolicited frame flood: [0-9]+ frames in [0-9.]+ s'
