#!/usr/bin/env bash
# A throwaway OpenLDAP slapd with an AD-like schema, for tests and the demo.
#   slapd.sh start DIR [--minimal]   slapd.conf in DIR, a free loopback port, the fixture of
#                                    fixtures/ldap (people and bulk people loaded with slapadd,
#                                    groups added online so the memberof overlay sees them);
#                                    --minimal loads only the containers and the bind user.
#                                    Prints KEY=VALUE lines for the test environment.
#                                    With SLAPD_TLS_CERT and SLAPD_TLS_KEY (PEM files) set, it
#                                    also serves LDAPS on a second free port with that
#                                    certificate (SUDOSOS_TEST_SLAPD_LDAPS_URL).
#   slapd.sh stop DIR                stops it (also when SIGSTOPped) and removes DIR.
# The bind user is an ordinary entry (not the rootdn), so the size limit applies to it:
# 1,000 entries per search, more only through the paged-results control.
source "$(dirname "$0")/common.sh"
cmd=${1:?usage: slapd.sh start|stop DIR [--minimal]}; dir=${2:?usage: slapd.sh start|stop DIR}
mode=${3:-full}
root=$(repo_root)
base="DC=gewiswg,DC=test"
slapd=${SLAPD_BIN:-/usr/sbin/slapd}

pid_of() { [[ -f "$dir/slapd.pid" ]] && cat "$dir/slapd.pid"; }

case "$cmd" in
start)
  mkdir -p "$dir/db" "$dir/fixture"
  dir=$(cd "$dir" && pwd)
  port=$(free_port)
  admin_pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  bind_pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  cp "$root/fixtures/ldap/adlike.schema" "$dir/adlike.schema"
  cat >"$dir/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include $dir/adlike.schema
pidfile $dir/slapd.pid
argsfile $dir/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
database mdb
suffix "$base"
rootdn "cn=admin,$base"
rootpw $admin_pw
directory $dir/db
maxsize 268435456
# A throwaway server: no fsync per write.
dbnosync
# As Active Directory's MaxPageSize: at most 1,000 entries per search or page; paged searches
# may go on beyond it.
sizelimit size.soft=1000 size.hard=1000 size.pr=1000 size.prtotal=unlimited
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by users read by * none
overlay memberof
memberof-group-oc group
memberof-member-ad member
memberof-memberof-ad memberOf
CONF
  listen="ldap://127.0.0.1:$port/"
  if [[ -n ${SLAPD_TLS_CERT:-} ]]; then
    tls_port=$(free_port)
    cp "$SLAPD_TLS_CERT" "$dir/tls-cert.pem"; cp "${SLAPD_TLS_KEY:?SLAPD_TLS_KEY goes with SLAPD_TLS_CERT}" "$dir/tls-key.pem"
    chmod 600 "$dir/tls-key.pem"
    # Global directives: before the first `database` line.
    sed -i "1i TLSCertificateFile $dir/tls-cert.pem\\nTLSCertificateKeyFile $dir/tls-key.pem" "$dir/slapd.conf"
    listen="$listen ldaps://127.0.0.1:$tls_port/"
  fi
  python3 "$root/fixtures/ldap/generate.py" slapd "$base" "$dir/fixture"
  {
    if [[ $mode == --minimal ]]; then
      awk 'BEGIN{RS="";ORS="\n\n"} /^dn: (DC=gewiswg|OU=System|OU=Scratch|OU=Organisation,DC)/' "$dir/fixture/entries.ldif"
    else
      cat "$dir/fixture/entries.ldif"
    fi
    printf 'dn: cn=sudosos,OU=System,%s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: sudosos\nuserPassword: %s\n\n' "$base" "$bind_pw"
  } >"$dir/load.ldif"
  "/usr/sbin/slapadd" -q -f "$dir/slapd.conf" -l "$dir/load.ldif" >"$dir/slapadd.log" 2>&1 \
    || { cat "$dir/slapadd.log" >&2; exit 1; }
  url="ldap://127.0.0.1:$port"
  "$slapd" -f "$dir/slapd.conf" -h "$listen" -s 0 >"$dir/slapd.log" 2>&1 \
    || { cat "$dir/slapd.log" >&2; exit 1; }
  wait_for "slapd on $url" 30 ldapsearch -x -H "$url" -D "cn=admin,$base" -w "$admin_pw" -b "$base" -s base
  if [[ $mode != --minimal ]]; then
    ldapadd -x -H "$url" -D "cn=admin,$base" -w "$admin_pw" -f "$dir/fixture/groups.ldif" >"$dir/groups.log" 2>&1 \
      || { cat "$dir/groups.log" >&2; exit 1; }
    ldapmodify -x -H "$url" -D "cn=admin,$base" -w "$admin_pw" -f "$dir/fixture/links.ldif" >>"$dir/groups.log" 2>&1 \
      || { cat "$dir/groups.log" >&2; exit 1; }
  fi
  echo "SUDOSOS_TEST_SLAPD_URL=$url"
  if [[ -n ${tls_port:-} ]]; then echo "SUDOSOS_TEST_SLAPD_LDAPS_URL=ldaps://127.0.0.1:$tls_port"; fi
  echo "SUDOSOS_TEST_SLAPD_BASE=$base"
  echo "SUDOSOS_TEST_SLAPD_BIND_DN=cn=sudosos,OU=System,$base"
  echo "SUDOSOS_TEST_SLAPD_BIND_PW=$bind_pw"
  echo "SUDOSOS_TEST_SLAPD_ADMIN_DN=cn=admin,$base"
  echo "SUDOSOS_TEST_SLAPD_ADMIN_PW=$admin_pw"
  echo "SUDOSOS_TEST_SLAPD_PIDFILE=$dir/slapd.pid"
  # Tests that stop or freeze a server start their own: `bash $SCRIPT start DIR --minimal`.
  echo "SUDOSOS_TEST_SLAPD_SCRIPT=$root/scripts/lib/slapd.sh"
  ;;
stop)
  if pid=$(pid_of) && kill -0 "$pid" 2>/dev/null; then
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
  ;;
*) echo "usage: slapd.sh start|stop DIR [--minimal]" >&2; exit 64 ;;
esac
