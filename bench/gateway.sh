#!/usr/bin/env bash
# The gateway against HAProxy and nginx (one worker thread / one core each), through the shared peer harness
# ../shared/bench/http-peers.sh: same nginx backend, same wrk load, interleaved rounds, Markdown tables on stdout.
#
#   bench/gateway.sh                                   # small, large, idle, tls; 3 rounds of 10 s each
#   bench/gateway.sh --tests small --rounds 1 --duration 3
#   bench/gateway.sh --varnish                         # Varnish too (it has no TLS: skipped in the tls test)
#
# Options of this script:
#   --tests LIST      comma-separated subset of small,large,idle,tls (also: --test)   default: all four
#   --peers LIST      peers to run                                                   default: haproxy,nginx
#   --varnish         add varnish to the peers
#   --idle-conns N    idle keep-alive connections for the idle test                  default: 10000, see below
# Every other option (--rounds, --duration, --connections, --proxy-cpu, --load-cpu, --keep, ...) goes to
# http-peers.sh unchanged; --out FILE.tsv writes one FILE-TEST.tsv per test.
# The binary is $CUMULO_BUILD/cumulo (default build/release; build: scripts/build.sh release cumulo).
#
# Idle connections: the goal is 10000, but http-peers.sh gives HAProxy maxconn = (hard fd limit - 1000) / 2
# because HAProxy reserves two descriptors per connection. With this machine's hard limit of 20000 that is 9500,
# so when HAProxy runs, the default is the largest count it can hold, min(10000, that); the script says so.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
harness=${HTTP_PEERS:-}
if [ -z "$harness" ]; then
  for h in "$here/../../shared/bench/http-peers.sh" "../shared/bench/http-peers.sh"; do
    [ -x "$h" ] && { harness=$h; break; }
  done
fi
[ -n "$harness" ] && [ -x "$harness" ] || {
  echo "gateway.sh: cannot find ../shared/bench/http-peers.sh (set HTTP_PEERS=/path/to/http-peers.sh)" >&2; exit 2; }
harness=$(cd "$(dirname "$harness")" && pwd)/$(basename "$harness")

tests="small,large,idle,tls"; peers="haproxy,nginx"; idle_conns=""; out=""
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tests|--test) tests=$2; shift 2;;
    --peers) peers=$2; shift 2;;
    --varnish) peers="$peers,varnish"; shift;;
    --idle-conns) idle_conns=$2; shift 2;;
    --out) out=$2; shift 2;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    --keep) pass+=("$1"); shift;;
    --*) [ $# -ge 2 ] || { echo "gateway.sh: $1 needs a value" >&2; exit 2; }; pass+=("$1" "$2"); shift 2;;
    *) echo "gateway.sh: unknown argument $1 (try --help)" >&2; exit 2;;
  esac
done

cd "$repo"
build=${CUMULO_BUILD:-build/release}
[ -x "$build/cumulo" ] || { echo "gateway.sh: $build/cumulo is missing: scripts/build.sh release cumulo" >&2; exit 2; }
[ -f bench/gateway.yaml.in ] || { echo "gateway.sh: bench/gateway.yaml.in is missing" >&2; exit 2; }

if [ -z "$idle_conns" ] && [[ ",$tests," == *,idle,* ]]; then
  idle_conns=10000
  if [[ ",$peers," == *,haproxy,* ]]; then
    hard=$(ulimit -Hn); [ "$hard" = unlimited ] && hard=1000000
    haproxy_max=$(( (hard - 1000) / 2 ))
    if [ "$haproxy_max" -lt "$idle_conns" ]; then
      echo "gateway.sh: idle test with $haproxy_max connections, not 10000: HAProxy's maxconn in http-peers.sh is" \
           "(hard fd limit $hard - 1000) / 2 = $haproxy_max (two descriptors per connection)" >&2
      idle_conns=$haproxy_max
    fi
  fi
fi

# The admin API needs a port too; the kernel picks one when the setup runs.
free_port="\$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])')"
status=0
IFS=, read -r -a test_list <<< "$tests"
for t in "${test_list[@]}"; do
  case "$t" in small|large|idle|tls) ;; *) echo "gateway.sh: unknown test '$t' (small, large, idle, tls)" >&2; exit 2;; esac
  if [ "$t" = tls ]; then tls_lines="-e 's/[[:space:]]*#tls\$//'"; else tls_lines="-e '/#tls\$/d'"; fi
  setup="sed -e 's/@LISTEN@/{listen}/' -e 's#@BACKEND@#{backend}#' -e 's#@CERT@#{cert}#' -e 's#@KEY@#{key}#'"
  setup+=" -e s/@ADMIN@/$free_port/ $tls_lines bench/gateway.yaml.in > {dir}/gw.yaml"
  args=(--test "$t" --peers "$peers" --candidate-name cumulo --candidate-setup "$setup"
        --candidate-cmd "$build/cumulo gateway -c {dir}/gw.yaml")
  [ "$t" = idle ] && args+=(--idle-conns "$idle_conns")
  [ -n "$out" ] && args+=(--out "${out%.tsv}-$t.tsv")
  echo
  echo "## $t"
  echo
  echo "\`bench/gateway.sh --tests $t${pass[*]:+ ${pass[*]}}\` (http-peers.sh --test $t --peers $peers)"
  "$harness" "${args[@]}" "${pass[@]}" || status=$?
done
exit $status
