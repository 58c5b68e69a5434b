#!/usr/bin/env bash
# A throwaway Samba AD domain controller (realm GEWISWG.TEST) for tests and the demo.
#   samba.sh start DIR   provisions a domain in DIR, writes its own CA and a server certificate
#                        for its address before the first start, starts samba, loads the
#                        fixture of fixtures/ldap over LDAPS, prints KEY=VALUE lines.
#                        SAMBA_FIXTURE=DIR: loads DIR/{entries,groups,links}.ldif instead (a
#                        benchmark's own directory, as bench/ldap-scale.py writes it).
#   samba.sh stop DIR    stops it (its root process), removes its address and DIR.
# Samba's ports are fixed (389, 636, 88, 445), so two instances on 127.0.0.1 would collide
# (several engineers' test runs on one machine). Each instance therefore gets a loopback
# address of its own, 127.0.0.N, added to `lo` for its lifetime: still loopback only.
source "$(dirname "$0")/common.sh"
cmd=${1:?usage: samba.sh start|stop DIR}; dir=${2:?usage: samba.sh start|stop DIR}
root=$(repo_root)
base="DC=gewiswg,DC=test"

case "$cmd" in
start)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # Everything of this instance under DIR (pid file, sockets, logs): instances must not meet in
  # /run/samba or /var/log/samba.
  mkdir -p "$dir/run" "$dir/ncalrpc" "$dir/winbindd"
  if ss -ltn | grep -qE '\*:636 |0\.0\.0\.0:636 '; then
    echo "samba.sh: port 636 is taken on every address: a system-wide LDAPS server runs here" >&2
    exit 1
  fi
  addr=""
  for _ in $(seq 1 50); do
    candidate="127.0.0.$((RANDOM % 200 + 20))"
    ip -4 addr show dev lo | grep -q "inet $candidate/" && continue
    ss -ltn | grep -q "$candidate:636 " && continue
    if ip addr add "$candidate/8" dev lo 2>/dev/null; then addr=$candidate; break; fi
  done
  [[ -n $addr ]] || { echo "samba.sh: found no free loopback address for Samba" >&2; exit 1; }
  echo "$addr" >"$dir/address"
  # Upper, lower, digit: AD's password complexity rule.
  admin_pw="Sy$(head -c 12 /dev/urandom | base64 | tr -d '/+=')9a"
  samba-tool domain provision --targetdir="$dir" --realm=GEWISWG.TEST --domain=GEWISWG \
    --adminpass="$admin_pw" --server-role=dc --dns-backend=NONE --use-rfc2307 \
    --option="interfaces=$addr/8" --option="bind interfaces only=yes" \
    --option="pid directory=$dir/run" --option="ncalrpc dir=$dir/ncalrpc" \
    --option="winbindd socket directory=$dir/winbindd" --option="log file=$dir/log.%m" \
    >"$dir/provision.log" 2>&1 \
    || { tail -20 "$dir/provision.log" >&2; exit 1; }
  # Our own CA and a certificate naming the instance's IP, so clients verify against that CA.
  tls="$dir/private/tls"; mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sudosos-sync test CA" \
    -keyout "$dir/ca-key.pem" -out "$tls/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$addr" -keyout "$tls/key.pem" -out "$dir/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$addr" >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$tls/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
    -days 2 -extfile "$dir/server.ext" -out "$tls/cert.pem" >/dev/null 2>&1
  chmod 600 "$tls/key.pem"
  # stdin from /dev/null: started with a closed or odd standard input, samba exits at once, silently.
  (setsid samba -s "$dir/etc/smb.conf" --foreground --no-process-group </dev/null >"$dir/samba.log" 2>&1 & echo $! >"$dir/samba.pid")
  export LDAPTLS_CACERT="$tls/ca.pem"
  url="ldaps://$addr:636"
  bind_dn="CN=Administrator,CN=Users,$base"
  wait_for "Samba AD on $url (log: $dir/log.samba)" 90 ldapsearch -x -H "$url" -D "$bind_dn" -w "$admin_pw" -b "$base" -s base
  fixture=${SAMBA_FIXTURE:-$dir/fixture}
  [[ -n ${SAMBA_FIXTURE:-} ]] || python3 "$root/fixtures/ldap/generate.py" samba "$base" "$fixture"
  for f in entries groups; do
    ldapadd -x -H "$url" -D "$bind_dn" -w "$admin_pw" -f "$fixture/$f.ldif" >>"$dir/load.log" 2>&1 \
      || { tail -20 "$dir/load.log" >&2; exit 1; }
  done
  ldapmodify -x -H "$url" -D "$bind_dn" -w "$admin_pw" -f "$fixture/links.ldif" >>"$dir/load.log" 2>&1 \
    || { tail -20 "$dir/load.log" >&2; exit 1; }
  echo "SUDOSOS_TEST_AD_URL=$url"
  echo "SUDOSOS_TEST_AD_HOST=$addr"
  echo "SUDOSOS_TEST_AD_CA=$tls/ca.pem"
  echo "SUDOSOS_TEST_AD_BASE=$base"
  echo "SUDOSOS_TEST_AD_BIND_DN=$bind_dn"
  echo "SUDOSOS_TEST_AD_BIND_PW=$admin_pw"
  ;;
stop)
  if [[ -f "$dir/samba.pid" ]]; then
    pid=$(cat "$dir/samba.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      # Its worker processes are in the session setsid gave it.
      pkill -KILL -s "$pid" 2>/dev/null || true
    fi
  fi
  if [[ -f "$dir/address" ]]; then ip addr del "$(cat "$dir/address")/8" dev lo 2>/dev/null || true; fi
  rm -rf "$dir"
  ;;
*) echo "usage: samba.sh start|stop DIR" >&2; exit 64 ;;
esac
