#!/usr/bin/env bash
# Central over TLS: PostgreSQL with ssl=on on a TCP port of 127.0.0.1 (this
# test only; the others stay socket-only), its certificate from a
# self-signed CA made here.  penlinkd replicates with sslmode=verify-full,
# sslrootcert=the CA and host=localhost, and the connection is encrypted;
# a site given another CA is refused with a clear logged error and sends
# nothing; penctl --central reads over TLS and refuses a host name the
# certificate does not name.
. "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || { echo "SKIP: no openssl"; exit 77; }

pg_init
TLS="$T/tls"
mkdir -p "$TLS"
ossl() { openssl "$@" >>"$TLS/openssl.log" 2>&1 || { cat "$TLS/openssl.log" >&2; fail "openssl $1 failed"; }; }
# The clinic's CA, the server's certificate for localhost signed by it, and
# an unrelated CA.
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=penlink test CA" \
  -keyout "$TLS/ca.key" -out "$TLS/ca.crt"
ossl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$TLS/server.key" -out "$TLS/server.csr"
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$TLS/ext.cnf"
ossl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" \
  -CAcreateserial -days 2 -extfile "$TLS/ext.cnf" -out "$TLS/server.crt"
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=some other CA" \
  -keyout "$TLS/other.key" -out "$TLS/other.crt"
chmod 644 "$TLS"/*.crt
ok "a CA, a server certificate for localhost, and another CA"

# The server: its key where PostgreSQL wants it (its own, mode 0600), TLS
# on 127.0.0.1, TCP only with TLS.
PGPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
install -m 600 "$TLS/server.key" "$PGDATA/server.key"
install -m 644 "$TLS/server.crt" "$PGDATA/server.crt"
[ "$(id -u)" -eq 0 ] && chown postgres: "$PGDATA/server.key" "$PGDATA/server.crt"
cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
EOF
{ echo "hostnossl all all 0.0.0.0/0 reject"; echo "hostssl all all 127.0.0.1/32 trust"; cat "$PGDATA/pg_hba.conf"; } >"$T/hba"
as_pg cp "$T/hba" "$PGDATA/pg_hba.conf"
pg_stop fast
pg_start
# The socket moved with the port: lib.sh's psql helpers follow PGPORT.
export PGPORT
central_init
ok "PostgreSQL with ssl=on on 127.0.0.1:$PGPORT"

TCP="host=localhost port=$PGPORT dbname=$PGDB"
run_tls_site() { # NAME CA: a site whose url is TLS-verified against CA
  local name=$1 ca=$2
  cat >"$T/$name.conf" <<EOF
[central]
url = $TCP user=site_$name sslmode=verify-full sslrootcert=$ca
site = site-$name
retry_max_s = 1
EOF
  "${WRAP[@]}" "$PENLINKD" --foreground --no-usb --socket "$T/$name.sock" \
    --db "$T/$name.db" --config "$T/$name.conf" --log-level debug "${@:3}" >>"$T/$name.log" 2>&1 &
  SITE_PID=$!
  SITE_PIDS+=("$SITE_PID")
  local i
  for i in $(seq 400); do [ -S "$T/$name.sock" ] && return 0; sleep 0.05; done
  cat "$T/$name.log" >&2; fail "penlinkd $name did not start"
}

start_emu a1 --serial PEN-TLS-A --flash "$T/a1.flash" --sessions 3 --session-bytes 60000 --seed 51
PA=$EMU_PORT
start_emu b1 --serial PEN-TLS-B --flash "$T/b1.flash" --sessions 2 --session-bytes 60000 --seed 52
PB=$EMU_PORT
run_tls_site a "$TLS/ca.crt" --port "$PA"
A=$SITE_PID
run_tls_site b "$TLS/other.crt" --port "$PB"
B=$SITE_PID
site_idle a 1
site_idle b 1
site_synced a
ok "site a replicated over verify-full TLS"
assert_eq "$(central_digests)" "$(local_digests a)" "central holds exactly site a's sessions"
records_equal a
# The encryption itself, seen from the server: site a's connection.
assert_eq "$(psql_su -c "SELECT bool_and(s.ssl)::text || ' ' || count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'site_a'")" "true 1" "site a's connection is TLS"

# Site b trusts another CA: refused, said in its log and its status, and
# nothing of it reaches central.
for i in $(seq 100); do grep -q "certificate verify failed" "$T/b.log" && break; sleep 0.1; done
grep "central" "$T/b.log" | grep -m1 "certificate verify failed" >"$T/b.err" || { tail -n 20 "$T/b.log" >&2; fail "site b did not log the certificate failure"; }
ok "site b logged: $(cut -c1-160 "$T/b.err")"
central_status b
assert_eq "$(jqo .connected)" "false" "site b: not connected"
assert_contains "$(jqo .last_error)" "certificate verify failed" "site b: status names the certificate failure"
assert_eq "$(jqo .pending)" "2" "site b: its 2 sessions stay queued"
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.sessions WHERE serial = 'PEN-TLS-B'")" "0" "nothing from site b in central"

# Staff read over TLS too; a name the certificate does not carry is refused.
expect 0 --central "$TCP user=reader sslmode=verify-full sslrootcert=$TLS/ca.crt" --json sessions list
assert_eq "$(jqo '.sessions | length')" "3" "penctl --central over verify-full TLS"
run --central "host=127.0.0.1 port=$PGPORT dbname=$PGDB user=reader sslmode=verify-full sslrootcert=$TLS/ca.crt" sessions list
assert_eq "$RC" "6" "a host name the certificate does not name: refused (exit 6)"
assert_contains "$ERR" "does not match host name" "the refusal says why"
run --central "$TCP user=reader sslmode=disable" sessions list
[ "$RC" -ne 0 ] || fail "a connection without TLS was accepted"
ok "the server refuses connections without TLS"

stop_site "$A"
stop_site "$B"
done_testing
