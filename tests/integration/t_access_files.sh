#!/usr/bin/env bash
# Access and files: who may reach the socket at all, which group each kind of
# request needs (every refusal audited), exports that never write outside the
# folder they name nor through a planted link whatever a pen calls itself,
# and the modes of the archive and of exports under a permissive umask.
# (t_daemon_access.sh covers nobody-without-groups on a 0666 socket.)
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to run penctl as nobody (setpriv)"; exit 0; }
command -v sqlite3 >/dev/null || fail "sqlite3 is needed (scripts/deps.sh installs it)"
# Three groups nobody is not in: the socket's, the logs', the presets'.
SOCK_G=floppy LOGS_G=voice TECH_G=fax
for g in $SOCK_G $LOGS_G $TECH_G; do getent group "$g" >/dev/null || fail "group $g missing"; done
gid() { getent group "$1" | cut -d: -f3; }
SOCK_GID=$(gid $SOCK_G) LOGS_GID=$(gid $LOGS_G) TECH_GID=$(gid $TECH_G)

chmod 0755 "$T"
cp "$PENCTL" "$T/penctl-copy" && chmod 0755 "$T/penctl-copy"
# as_nobody GROUPS ARGS...: penctl as uid/gid 65534 with exactly these
# supplementary groups ("" for none).
as_nobody() {
  local groups=$1; shift
  local g=(--clear-groups)
  [ -n "$groups" ] && g=(--groups "$groups")
  OUT=$(cd "$T" && setpriv --reuid=65534 --regid=65534 "${g[@]}" "$T/penctl-copy" "$@" 2>"$T/stderr"); RC=$?
  ERR=$(cat "$T/stderr")
}

# Pens: a well-behaved one and hostile serial numbers (penemu accepts any
# printable ASCII up to 63 characters; control bytes are tested below).
HOSTILE=('../../etc/x' '/abs' '..')
start_emu good --serial PEN-AF-1 --sessions 2 --session-bytes 20000 --seed 61
PORTS=(--port "$EMU_PORT")
i=0
for s in "${HOSTILE[@]}"; do
  i=$((i + 1))
  start_emu "h$i" --serial "$s" --sessions 1 --session-bytes 8000 --seed $((61 + i))
  PORTS+=(--port "$EMU_PORT")
done
cat >"$T/penlinkd.conf" <<CONF
[daemon]
socket_mode = 0660
socket_group = $SOCK_G

[access]
logs_group = $LOGS_G
presets_group = $TECH_G
CONF

# ---- 4a. the archive under umask 000
umask 000
start_daemon --config "$T/penlinkd.conf" "${PORTS[@]}"
umask 022
for i in $(seq 200); do
  run "${D[@]}" --json sessions list
  [ "$RC" -eq 0 ] && [ "$(jqo '.sessions | length')" -ge 2 ] && break
  sleep 0.1
done
[ "$(jqo '.sessions | length')" -ge 2 ] || { cat "$T/daemon.log" >&2; fail "PEN-AF-1's sessions were not archived"; }
# 0600: the daemon's group is also the socket's (everyone who may connect);
# a group-readable file would bypass logs_group.  See daemon/archive.c.
assert_eq "$(stat -c %a "$DB")" "600" "archive created 0600 under umask 000"
for f in "$DB-wal" "$DB-shm" "$DB.lock"; do
  [ -e "$f" ] || fail "$f does not exist while the daemon runs"
  assert_eq "$(stat -c %a "$f")" "600" "$(basename "$f") is 0600 under umask 000"
done

# ---- 1. the socket's mode and group keep nobody out
assert_eq "$(stat -c '%a %G' "$SOCK")" "660 $SOCK_G" "socket 0660, group $SOCK_G"
as_nobody "" "${D[@]}" list
assert_eq "$RC" "5" "nobody outside $SOCK_G cannot connect (exit 5)"
assert_contains "$ERR" "permission denied: cannot connect to $SOCK" "connect refusal says why and where"
assert_contains "$ERR" "ask to be added to group $SOCK_G" "connect refusal names the socket's own group"
as_nobody "" "${D[@]}" --json list
assert_eq "$(jqo '.error.code')" "permission_denied" "JSON error code for a refused connect"
as_nobody "$SOCK_GID" "${D[@]}" --json list
assert_eq "$RC" "0" "nobody in $SOCK_G connects and lists pens"

# ---- 2. rights by group, each refusal audited
expect 0 "${D[@]}" --json sessions list -s PEN-AF-1
UUID=$(jqo '.sessions[0].uuid')
expect 0 "${D[@]}" --json audit
AUDIT0=$(jqo '.entries | length')

# SERIAL/UUID goes straight to the record (a bare UUID would list first).
as_nobody "$SOCK_GID" "${D[@]}" sessions show "PEN-AF-1/$UUID"
assert_eq "$RC" "5" "without $LOGS_G: sessions show refused"
assert_contains "$ERR" "not in group $LOGS_G" "show refusal names the group"
[ -z "$OUT" ] && ok "a refused show prints no record" || fail "refused show printed: $OUT"
as_nobody "$SOCK_GID" "${D[@]}" audit
assert_eq "$RC" "5" "without $LOGS_G: audit refused"
as_nobody "$SOCK_GID" "${D[@]}" sessions pull --out "$T/nb-pull"
assert_eq "$RC" "5" "without $LOGS_G: pull refused"
[ ! -e "$T/nb-pull" ] || [ -z "$(ls -A "$T/nb-pull")" ] && ok "a refused pull wrote nothing" || fail "refused pull wrote files"
as_nobody "$SOCK_GID" "${D[@]}" -s PEN-AF-1 clock sync
assert_eq "$RC" "5" "without $TECH_G: clock sync refused"
as_nobody "$SOCK_GID" "${D[@]}" attach /dev/null
assert_eq "$RC" "5" "without $TECH_G: attach refused"
as_nobody "$SOCK_GID" "${D[@]}" detach -s PEN-AF-1
assert_eq "$RC" "5" "without $TECH_G: detach refused"
expect 0 "${D[@]}" --json list
assert_eq "$(jqo '[.pens[] | select(.serial == "PEN-AF-1")] | length')" "1" "the refused detach left the pen attached"

# A logs member reads but may not change anything.
mkdir -m 0777 "$T/nb"
as_nobody "$SOCK_GID,$LOGS_GID" "${D[@]}" --json sessions list -s PEN-AF-1
assert_eq "$RC" "0" "a $LOGS_G member lists sessions"
assert_eq "$(jqo '.sessions | length')" "2" "and sees both of PEN-AF-1's"
as_nobody "$SOCK_GID,$LOGS_GID" "${D[@]}" -s PEN-AF-1 sessions export --out "$T/nb/logs.csv"
assert_eq "$RC" "0" "a $LOGS_G member exports"
as_nobody "$SOCK_GID,$LOGS_GID" "${D[@]}" -s PEN-AF-1 preset push --id 1 --name Fine --depth 0.5 --speed 2 --area forehead
assert_eq "$RC" "5" "a $LOGS_G member may not push presets"
assert_contains "$ERR" "not in group $TECH_G" "push refusal names $TECH_G"
# A technician changes presets but may not read logs.
as_nobody "$SOCK_GID,$TECH_GID" "${D[@]}" -s PEN-AF-1 sessions export --dir "$T/nb/tech"
assert_eq "$RC" "5" "a $TECH_G member may not export"
[ ! -e "$T/nb/tech" ] || [ -z "$(ls -A "$T/nb/tech")" ] && ok "the refused export wrote no file" || fail "refused export wrote: $(ls "$T/nb/tech")"
as_nobody "$SOCK_GID,$TECH_GID" "${D[@]}" --json -s PEN-AF-1 preset push --id 1 --name Fine --depth 0.5 --speed 2 --area forehead
assert_eq "$RC" "0" "a $TECH_G member pushes a preset"

expect 0 "${D[@]}" --json audit --limit 1000
NEW=$(jq --argjson n "$AUDIT0" '.entries[: (.entries | length) - $n]' <<<"$OUT")
for a in sessions.show audit sessions.list clock.sync attach detach presets.push sessions.export; do
  n=$(jq --arg a "denied:$a" '[.[] | select(.action == $a and .user == "nobody")] | length' <<<"$NEW")
  [ "$n" -ge 1 ] && ok "refused $a audited ($n)" || fail "no audit entry denied:$a by nobody in: $NEW"
done
assert_eq "$(jq '[.[] | select(.action == "denied:presets.push")][0].pen' <<<"$NEW")" '"PEN-AF-1"' "the refused push names the pen"
assert_contains "$(jq -r '[.[] | select(.action == "denied:presets.push")][0].new_value' <<<"$NEW")" "Fine" "the refused push keeps what was tried"
assert_contains "$(jq -r '[.[] | select(.action == "denied:attach")][0].new_value' <<<"$NEW")" "/dev/null" "the refused attach names the port"
assert_eq "$(jq '[.[] | select(.action == "presets.push" and .user == "nobody" and .result == "ok")] | length' <<<"$NEW")" "1" "the technician's push is audited as ok"

# ---- 3. exports stay in their folder, whatever the serial
expect 0 "${D[@]}" --json list
n_hostile=0
for s in "${HOSTILE[@]}"; do
  st=$(jq -r --arg s "$s" '[.pens[] | select(.serial == $s) | .state][0] // "absent"' <<<"$OUT")
  case $st in
    absent)
      # A daemon that refuses such serials must say so.
      grep -qF -- "$s" "$T/daemon.log" && grep -qi "serial" "$T/daemon.log" ||
        fail "pen '$s' is neither attached nor refused with a message"
      ok "pen '$s' refused at attach" ;;
    *) n_hostile=$((n_hostile + 1)) ;;
  esac
done
for i in $(seq 200); do
  run "${D[@]}" --json sessions list
  [ "$(jqo '.sessions | length')" -ge $((2 + n_hostile)) ] && break
  sleep 0.1
done
TOTAL=$(jqo '.sessions | length')
assert_eq "$TOTAL" "$((2 + n_hostile))" "sessions of the good pen and of $n_hostile hostile serials archived"
echo "$OUT" >"$T/archived.json"
expect 0 "${D[@]}" sessions export -s PEN-AF-1
head -n1 <<<"$OUT" >"$T/all-header.csv"

# check_dir DIR EXT COUNT: COUNT files, all plain, safely named, each one
# session whose UUID matches its name and whose digest is the archive's.
check_dir() {
  local dir=$1 ext=$2 want=$3 f base u
  assert_eq "$(find "$dir" -mindepth 1 | wc -l)" "$want" "$want files in $(basename "$dir")"
  for f in "$dir"/*; do
    base=$(basename "$f")
    [[ $base =~ ^[A-Za-z0-9_-][A-Za-z0-9._-]*\.$ext$ ]] || fail "unsafe export name '$base'"
    [ ${#base} -le 255 ] || fail "export name of ${#base} bytes"
    [ -f "$f" ] && [ ! -L "$f" ] || fail "$base is not a plain file"
    u=$(grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' <<<"$base")
    if [ "$ext" = csv ]; then
      # The header, then one row (a quoted serial may span lines).
      [ "$(head -n1 "$f")" = "$(head -n1 "$T/all-header.csv")" ] || fail "$base does not start with the header"
      [ "$(grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' "$f" | sort -u)" = "$u" ] ||
        fail "$base does not hold exactly session $u: $(cat -v "$f")"
      [ "$(grep -c "$(jq -r --arg u "$u" '[.sessions[] | select(.uuid == $u) | .sha256][0]' "$T/archived.json")" "$f")" = 1 ] ||
        fail "$base: digest differs from the archive's"
    else
      [ "$(jq -r .uuid "$f")" = "$u" ] || fail "$base holds session $(jq -r .uuid "$f")"
      [ "$(jq -r .sha256 "$f")" = "$(jq -r --arg u "$u" '[.sessions[] | select(.uuid == $u) | .sha256][0]' "$T/archived.json")" ] ||
        fail "$base: digest differs from the archive's"
    fi
  done
  ok "every file in $(basename "$dir") is one session, safely named"
}
snapshot_tree() { find "$T" -path "$T/exp*" -prune -o -print | sort; }
BEFORE=$(snapshot_tree)
umask 000
expect 0 "${D[@]}" --json sessions export --dir "$T/exp-csv"
expect 0 "${D[@]}" --json sessions export --format json --dir "$T/exp-json"
umask 022
assert_eq "$(jqo '.sessions')" "$TOTAL" "export --dir reports every session"
check_dir "$T/exp-csv" csv "$TOTAL"
check_dir "$T/exp-json" json "$TOTAL"
[ ! -e /etc/x ] && [ ! -e /abs ] && ok "nothing written at /etc/x or /abs" || fail "an export escaped to /etc/x or /abs"
assert_eq "$(snapshot_tree | grep -vxF -f <(echo "$BEFORE") | grep -v '^$' | grep -vE '/(daemon.log|stderr)$' || true)" "" "nothing else created under the test folder"
# ---- 4b. export modes under umask 000 (and 077)
assert_eq "$(stat -c %a "$T"/exp-csv/* | sort -u)" "640" "--dir files are 0640 under umask 000"
assert_eq "$(stat -c %a "$T/exp-csv")" "750" "the folder --dir creates is 0750 under umask 000"
umask 000
expect 0 "${D[@]}" sessions export --out "$T/all.csv"
expect 0 "${D[@]}" sessions pull --out "$T/pulled"
umask 077
expect 0 "${D[@]}" sessions export --format json --out "$T/all-077.json"
umask 022
assert_eq "$(stat -c %a "$T/all.csv")" "640" "--out file is 0640 under umask 000"
assert_eq "$(stat -c %a "$T/all-077.json")" "600" "--out file is 0600 under umask 077"
assert_eq "$(stat -c %a "$T"/pulled/*.plrec | sort -u)" "640" "pulled records are 0640 under umask 000"

# Re-exporting replaces the files (no duplicates, no leftovers).
expect 0 "${D[@]}" sessions export --dir "$T/exp-csv"
check_dir "$T/exp-csv" csv "$TOTAL"

# A symbolic link planted in DIR where an export will land is refused,
# and what it points at is untouched.
echo victim >"$T/victim"
victim_name=$(basename "$(ls "$T"/exp-csv/PEN-AF-1-*.csv | head -n1)")
rm -f "$T/exp-csv/$victim_name"
ln -s "$T/victim" "$T/exp-csv/$victim_name"
expect 4 "${D[@]}" sessions export --dir "$T/exp-csv"
assert_contains "$ERR" "is a symbolic link; not replacing it" "a planted link in DIR is refused"
assert_eq "$(cat "$T/victim")" "victim" "the link's target is untouched"
[ -L "$T/exp-csv/$victim_name" ] && ok "the planted link is left as it was" || fail "the link was replaced"
assert_eq "$(ls -A "$T/exp-csv" | grep -c '\.tmp$')" "0" "no temporary left behind"
# A hard link planted there is replaced as a name, never written through.
rm "$T/exp-csv/$victim_name"
ln "$T/victim" "$T/exp-csv/$victim_name"
expect 0 "${D[@]}" sessions export --dir "$T/exp-csv"
assert_eq "$(cat "$T/victim")" "victim" "a planted hard link's file is untouched"
assert_contains "$(cat "$T/exp-csv/$victim_name")" "PEN-AF-1" "the export's own file replaced the hard link"
# --out FILE: a planted link is refused too.
ln -s "$T/victim" "$T/out.csv"
expect 4 "${D[@]}" sessions export --out "$T/out.csv"
assert_contains "$ERR" "$T/out.csv is a symbolic link" "--out refuses a planted link"
assert_eq "$(cat "$T/victim")" "victim" "--out left the link's target untouched"
assert_eq "$(ls "$T" | grep -c '^out\.csv\.tmp')" "0" "--out left no temporary"
# sessions pull (through the daemon): a link at the predictable .part name
# is removed, not followed; one at the record's name is refused.
mkdir "$T/pull2"
pname=$(basename "$(ls "$T"/pulled/PEN-AF-1-*.plrec | head -n1)")
ln -s "$T/victim" "$T/pull2/.$pname.part"
expect 0 "${D[@]}" sessions pull --out "$T/pull2"
assert_eq "$(cat "$T/victim")" "victim" "pull did not write through a link at its .part name"
cmp -s "$T/pull2/$pname" "$T/pulled/$pname" && ok "pull stored the record itself" || fail "pull2/$pname differs"
rm "$T/pull2/$pname" && ln -s "$T/victim" "$T/pull2/$pname"
expect 4 "${D[@]}" sessions pull --out "$T/pull2"
assert_contains "$ERR" "is a symbolic link" "pull refuses a link at a record's name"
assert_eq "$(cat "$T/victim")" "victim" "the refused pull left the target alone"
# sessions pull --port (straight from a pen): the .part file is resumed, so
# a link or a hard link planted there is refused.
start_emu direct --serial PEN-AF-D --sessions 1 --session-bytes 20000 --seed 69
expect 0 --port "$EMU_PORT" --json sessions list
dname=$(jq -r '.sessions[0] | "PEN-AF-D-\(.seq | tostring | ("000000" + .)[-6:])-\(.uuid).plrec"' <<<"$OUT")
mkdir "$T/dpull"
ln -s "$T/victim" "$T/dpull/.$dname.part"
expect 4 --port "$EMU_PORT" sessions pull --out "$T/dpull" --keep
assert_contains "$ERR" "is a symbolic link" "direct pull refuses a link at its .part name"
rm "$T/dpull/.$dname.part" && ln "$T/victim" "$T/dpull/.$dname.part"
expect 4 --port "$EMU_PORT" sessions pull --out "$T/dpull" --keep
assert_contains "$ERR" "other hard links" "direct pull refuses a hard link at its .part name"
assert_eq "$(cat "$T/victim")" "victim" "the direct pull wrote nothing through them"
rm "$T/dpull/.$dname.part"
expect 0 --port "$EMU_PORT" sessions pull --out "$T/dpull" --keep
[ -f "$T/dpull/$dname" ] && ok "with the plant gone the pull works" || fail "no $dname after the pull: $(ls -A "$T/dpull")"

expect 2 "${D[@]}" sessions export --out "$T/x.csv" --dir "$T/exp-csv"
assert_contains "$ERR" "exclude each other" "--out and --dir together are a usage error"

# ---- the sanitiser on serials no penemu can send: control bytes, very
# long, empty, "." and "/" (which sanitise alike: no file may be lost).
stop_daemon() { kill "$DAEMON_PID"; wait "$DAEMON_PID"; }
stop_daemon
ID=$(sqlite3 "$DB" "SELECT id FROM sessions WHERE serial = 'PEN-AF-1' ORDER BY id LIMIT 1")
LONG=$(printf 'L%.0s' $(seq 300))
for s in "$(printf 'ctl\001\033[31mred\nnl\r')" "$LONG" "" "." "/" "a/../../b" "$(printf '\xff\xfe')"; do
  sqlite3 "$DB" "INSERT INTO sessions (serial, uuid, seq, size, sha256, start_ms, end_ms, rtc_time,
      archived_ms, sample_interval_us, decode_error, samples_next, record)
    SELECT CAST(X'$(printf '%s' "$s" | od -An -v -tx1 | tr -d ' \n')' AS TEXT), uuid, seq, size, sha256,
      start_ms, end_ms, rtc_time, archived_ms, sample_interval_us, decode_error, NULL, record
    FROM sessions WHERE id = $ID" || fail "cannot add a session with serial '$s'"
done
HTOTAL=$((TOTAL + 7))
start_daemon --config "$T/penlinkd.conf"
rm -rf "$T/exp-csv" "$T/exp-json"
expect 0 "${D[@]}" --json sessions export --dir "$T/exp-csv"
assert_eq "$(jqo '.sessions')" "$HTOTAL" "hostile serials: every session exported"
check_dir "$T/exp-csv" csv "$HTOTAL"
ls "$T/exp-csv" | grep -q '^ctl___31mred_nl_-' && ok "control bytes sanitised" || fail "no sanitised control-byte name in: $(ls "$T/exp-csv")"
ls "$T/exp-csv" | grep -qE '^L{60,64}-' && ok "a 300-byte serial is cut to at most 64 bytes" || fail "long serial: $(ls "$T/exp-csv")"
ls "$T/exp-csv" | grep -qE '^pen-' && ok "an empty serial becomes 'pen'" || fail "empty serial: $(ls "$T/exp-csv")"
ls "$T/exp-csv" | grep -qE -- '-2\.csv$' && ok "names that sanitise alike get a suffix, not overwritten" || fail "no collision suffix in: $(ls "$T/exp-csv")"
expect 0 "${D[@]}" --json sessions export --format json --dir "$T/exp-json"
check_dir "$T/exp-json" json "$HTOTAL"
done_testing
