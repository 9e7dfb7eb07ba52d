#!/usr/bin/env bash
# Progress for people: drawn on stderr only when stderr is a terminal, over
# the whole pull (session i/N, total bytes, ETA); Ctrl-C says what was kept
# and the command that resumes, and exits 130.
. "$(dirname "$0")/lib.sh"

start_emu pen --serial PEN-IT-PROG --sessions 3 --session-bytes 60000
P=(--port "$EMU_PORT")

# stderr redirected to a file (stdout a file too): not one \r or ESC[.
expect 0 "${P[@]}" sessions pull --keep --out "$T/a"
if grep -q $'\r' "$T/stderr" || grep -q $'\e\[' "$T/stderr"; then
  fail "redirected stderr has terminal controls: $(od -c "$T/stderr" | head)"
fi
ok "redirected stderr: no carriage returns or escape sequences"
assert_contains "$OUT" "3 pulled" "the pull itself worked"

# stderr a terminal (a pty), stdout a file: the overall progress is drawn
# there, and stdout gets none of it.
cat >"$T/on_tty.py" <<'PY'
import os, pty, subprocess, sys
master, slave = pty.openpty()
with open(sys.argv[1], "wb") as out:
    p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=out, stderr=slave)
os.close(slave)
data = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
sys.stdout.buffer.write(data)
sys.exit(p.wait())
PY
python3 "$T/on_tty.py" "$T/b.out" "${WRAP[@]}" "$PENCTL" "${P[@]}" sessions pull --keep --out "$T/b" >"$T/b.tty"
rc=$?
assert_eq "$rc" "0" "pull with stderr on a pty"
tty=$(tr '\r' '\n' <"$T/b.tty")
for i in 1 2 3; do
  assert_contains "$tty" "session $i/3 [" "the terminal shows session $i/3"
done
assert_contains "$tty" "ETA " "the terminal shows an ETA"
total=$(jq -s 'map(.size) | add' <("$PENCTL" "${P[@]}" --json sessions list | jq -c '.sessions[]'))
assert_contains "$tty" "/$(awk -v n="$total" 'BEGIN{v=n/1000; printf (v < 100 ? "%.1f kB" : "%.0f kB"), v}')" "the line counts every session's bytes ($total)"
grep -q $'\e\[K' "$T/b.tty" && ok "the line is redrawn in place" || fail "no ESC[K on the terminal"
if grep -q $'\r' "$T/b.out" || grep -q 'session 1/3' "$T/b.out"; then fail "progress leaked to stdout"; fi
assert_contains "$(cat "$T/b.out")" "3 pulled" "stdout has the results only"

# Ctrl-C during a slow pull: what was kept and the command that resumes.
# 50 ms before every frame: a session takes about a second, so a loaded
# machine still sees its .part before the first session completes.
start_emu slow --serial PEN-IT-INT --sessions 2 --session-bytes 400000 --fault-delay 50
S=(--port "$EMU_PORT")
"${WRAP[@]}" "$PENCTL" "${S[@]}" sessions pull --keep --out "$T/c" >"$T/c.out" 2>"$T/c.err" &
PULL=$!
for i in $(seq 400); do
  part=$(ls -a "$T/c" 2>/dev/null | grep '\.part$' | head -n1)
  [ -n "$part" ] && [ "$(stat -c %s "$T/c/$part")" -gt 0 ] && break
  sleep 0.05
done
[ -n "$part" ] || fail "no .part file appeared in 20 s: $(ls -la "$T/c" 2>&1); penctl said: $(cat "$T/c.err")"
kill -INT "$PULL"
wait "$PULL"
rc=$?
err=$(cat "$T/c.err")
assert_eq "$rc" "130" "Ctrl-C exits 130"
assert_contains "$err" "interrupted: 0 sessions pulled" "it says how many sessions were pulled"
# The pull may have moved on to the next session between the last look at
# the folder and the signal: the message names the one it stopped in.
grep -Eq "session [0-9]+ stopped at" <<<"$err" && ok "it names the session it stopped in" ||
  fail "no 'session N stopped at' in: $err"
kept=$(sed -n "s|.*kept in \($T/c/[^ ]*\.part\).*|\1|p" <<<"$err" | head -n1)
[ -n "$kept" ] && ok "it says where the partial copy is kept" || fail "no 'kept in $T/c/...part' in: $err"
assert_contains "$err" "to resume: penctl --port $EMU_PORT sessions pull --keep --out $T/c" "it gives the command that resumes"
[ -s "$kept" ] && ok "the partial copy is there" || fail "$kept is gone"
expect 0 "${S[@]}" sessions pull --keep --out "$T/c"
assert_contains "$OUT" "resumed at" "running that command resumes the copy"
assert_contains "$OUT" "2 pulled" "and finishes the pull"

# --json: the interruption is the one error document, with the command.
rm -rf "$T/d"
"${WRAP[@]}" "$PENCTL" "${S[@]}" --json sessions pull --keep --out "$T/d" >"$T/d.out" 2>"$T/d.err" &
PULL=$!
for i in $(seq 400); do
  part=$(ls -a "$T/d" 2>/dev/null | grep '\.part$' | head -n1)
  [ -n "$part" ] && [ "$(stat -c %s "$T/d/$part")" -gt 0 ] && break
  sleep 0.05
done
kill -INT "$PULL"; wait "$PULL"; rc=$?
OUT=$(cat "$T/d.out")
assert_eq "$rc" "130" "--json: Ctrl-C exits 130"
assert_eq "$(jqo .error.code)" "interrupted" "--json: error code interrupted"
assert_eq "$(jqo .error.exit_code)" "130" "--json: exit_code 130"
assert_contains "$(jqo .resume)" "sessions pull --keep --out $T/d" "--json: the command that resumes"
partial=$(jqo .partial)
case "$partial" in "$T"/d/*.part) ;; *) fail "--json: partial is '$partial'" ;; esac
[ -s "$partial" ] && ok "--json: the partial file, and it is there" || fail "--json: $partial is gone"
done_testing
