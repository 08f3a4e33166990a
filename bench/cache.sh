#!/usr/bin/env bash
# The gateway's cache against Varnish, nginx (proxy_cache) and HAProxy (its small-object cache), through the
# shared peer harness ../shared/bench/http-peers.sh --test cache: the same cacheable 12-byte response served
# from each cache, one core each, the same wrk load. Markdown table on stdout.
#
#   bench/cache.sh                          # 3 rounds of 10 s
#   bench/cache.sh --rounds 1 --duration 3  # a quick look
# Every option goes to http-peers.sh unchanged. The binary is $CUMULO_BUILD/cumulo (default build/release).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
harness=${HTTP_PEERS:-}
if [ -z "$harness" ]; then
  for h in "$repo/../shared/bench/http-peers.sh" "../shared/bench/http-peers.sh"; do
    [ -x "$h" ] && { harness=$h; break; }
  done
fi
[ -n "$harness" ] && [ -x "$harness" ] || {
  echo "cache.sh: cannot find ../shared/bench/http-peers.sh (set HTTP_PEERS=/path/to/http-peers.sh)" >&2; exit 2; }
cd "$repo"
build=${CUMULO_BUILD:-build/release}
[ -x "$build/cumulo" ] || { echo "cache.sh: $build/cumulo is missing: scripts/build.sh release cumulo" >&2; exit 2; }
command -v varnishd >/dev/null || { echo "cache.sh: varnishd is missing: apt-get install -y varnish" >&2; exit 2; }
admin_port="\$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])')"
setup="sed -e 's/@LISTEN@/{listen}/' -e 's#@BACKEND@#{backend}#' -e s/@ADMIN@/$admin_port/ bench/cache.yaml.in > {dir}/gw.yaml"
echo "## cache"
echo
echo "\`bench/cache.sh $*\` (http-peers.sh --test cache --peers varnish,nginx,haproxy)"
"$harness" --test cache --peers varnish,nginx,haproxy --candidate-name cumulo --candidate-setup "$setup" \
  --candidate-cmd "$build/cumulo gateway -c {dir}/gw.yaml" "$@"
