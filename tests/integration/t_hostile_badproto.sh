#!/usr/bin/env bash
# A hostile pen that sends intact frames that are not protobuf is detached by penlinkd with the reason, while
# a good pen beside it is archived intact (see hostile_lib.sh).
. "$(dirname "$0")/hostile_lib.sh"
hostile_test badproto '[0-9]+ intact frames that were not valid messages'
