#!/usr/bin/env bash
# One time rule: times for people are local with their UTC offset (--utc:
# UTC), the same in `sessions list` and `sessions show`; JSON carries UTC
# (ms and ISO 8601).  Expected texts come from date(1) in the same zone.
. "$(dirname "$0")/lib.sh"

start_emu pen --serial PEN-IT-TIME --sessions 2 --session-bytes 20000
P=(--port "$EMU_PORT")
expect 0 "${P[@]}" --json sessions list
start_ms=$(jqo '.sessions[0].start_ms')
uuid=$(jqo '.sessions[0].uuid')
secs=$((start_ms / 1000))
assert_eq "$(jqo '.sessions[0].start_utc')" \
  "$(date -u -d "@$secs" +%Y-%m-%dT%H:%M:%S).$(printf %03d $((start_ms % 1000)))Z" \
  "json: start_utc is ISO 8601 UTC of start_ms"

# show local: LIST and SHOW in TZ; both must print exactly the date(1) text.
show_local() {
  local tz=$1 want=$2 label=$3
  OUT=$(TZ=$tz "${WRAP[@]}" "$PENCTL" "${P[@]}" sessions list 2>"$T/stderr"); RC=$?; ERR=$(cat "$T/stderr")
  [ "$RC" -eq 0 ] || fail "sessions list in $tz: exit $RC"
  assert_contains "$(grep " $uuid " <<<"$OUT")" "$want" "sessions list, $label: $want"
  OUT=$(TZ=$tz "${WRAP[@]}" "$PENCTL" "${P[@]}" sessions show "PEN-IT-TIME/$uuid" 2>"$T/stderr"); RC=$?; ERR=$(cat "$T/stderr")
  [ "$RC" -eq 0 ] || fail "sessions show in $tz: exit $RC"
  assert_eq "$(grep '^  started' <<<"$OUT" | sed 's/^  started *//')" "$want" "sessions show, $label: the same text"
}
berlin=$(TZ=Europe/Berlin date -d "@$secs" '+%Y-%m-%d %H:%M:%S %:z')
case "$berlin" in *" +01:00"|*" +02:00") ok "tz database gives Berlin its offset ($berlin)" ;;
  *) fail "date(1) in Europe/Berlin gave '$berlin'" ;; esac
show_local Europe/Berlin "$berlin" "TZ=Europe/Berlin"
show_local UTC "$(date -u -d "@$secs" '+%Y-%m-%d %H:%M:%S') +00:00" "TZ=UTC"
# A POSIX rule needs no tz database: 5h30 west of UTC.
show_local '<-0530>5:30' "$(TZ='<-0530>5:30' date -d "@$secs" '+%Y-%m-%d %H:%M:%S') -05:30" "TZ=-05:30"

# --utc: UTC whatever TZ says, before or after the command.
OUT=$(TZ=Europe/Berlin "${WRAP[@]}" "$PENCTL" "${P[@]}" --utc sessions list 2>/dev/null)
assert_contains "$(grep " $uuid " <<<"$OUT")" "$(date -u -d "@$secs" '+%Y-%m-%d %H:%M:%S') +00:00" "--utc: the list in UTC"
OUT=$(TZ=Europe/Berlin "${WRAP[@]}" "$PENCTL" --utc "${P[@]}" sessions show "PEN-IT-TIME/$uuid" 2>/dev/null)
assert_eq "$(grep '^  started' <<<"$OUT" | sed 's/^  started *//')" \
  "$(date -u -d "@$secs" '+%Y-%m-%d %H:%M:%S') +00:00" "--utc: the report in UTC"

# --utc also reads a DATE without a zone as UTC: the minute after the
# session's start, read as UTC, leaves the session out; read as Berlin time
# (1-2 h earlier) it keeps it.
next=$(date -u -d "@$((secs + 60))" +%Y-%m-%dT%H:%M)
OUT=$(TZ=Europe/Berlin "${WRAP[@]}" "$PENCTL" "${P[@]}" --json sessions list --since "$next" --utc 2>/dev/null)
assert_eq "$(jq --arg u "$uuid" '[.sessions[] | select(.uuid == $u)] | length' <<<"$OUT")" "0" \
  "--utc: --since read as UTC (given after it, too)"
OUT=$(TZ=Europe/Berlin "${WRAP[@]}" "$PENCTL" "${P[@]}" --json sessions list --since "$next" 2>/dev/null)
assert_eq "$(jq --arg u "$uuid" '[.sessions[] | select(.uuid == $u)] | length' <<<"$OUT")" "1" \
  "without --utc the same DATE is Berlin time, an hour or two earlier"
expect 0 --help
assert_contains "$OUT" "--utc" "--utc is in penctl --help"
done_testing
