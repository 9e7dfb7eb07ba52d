#!/usr/bin/env bash
# A hostile pen that answers under request ids it was never sent is detached by penlinkd with the reason, while
# a good pen beside it is archived intact (see hostile_lib.sh).
. "$(dirname "$0")/hostile_lib.sh"
hostile_test wrongid 'answered with unknown request ids: [0-9]+ replies to ids it was never sent'
