#!/usr/bin/env bash
# The DNS server against Knot DNS and NSD (one worker each, the same CPU) through the shared peer harness
# ../shared/bench/dns-peers.sh: the same generated 10k-name zone, the same dnsperf query mix (85% A, 5% CNAME,
# 5% NODATA, 5% NXDOMAIN), interleaved rounds, a Markdown table on stdout.
#
#   bench/dns.sh                              # UDP, 3 rounds of 10 s
#   bench/dns.sh --tcp                        # over TCP
#   bench/dns.sh --rounds 1 --duration 3      # a quick look
# Every option goes to dns-peers.sh unchanged. The binary is $CUMULO_BUILD/cumulo (default build/release).
# Run it under the build lock on a shared machine: flock /tmp/cumulo-build.lock bench/dns.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
harness=${DNS_PEERS:-}
if [ -z "$harness" ]; then
  for h in "$repo/../shared/bench/dns-peers.sh" "../shared/bench/dns-peers.sh"; do
    [ -x "$h" ] && { harness=$h; break; }
  done
fi
[ -n "$harness" ] && [ -x "$harness" ] || {
  echo "dns.sh: cannot find ../shared/bench/dns-peers.sh (set DNS_PEERS=/path/to/dns-peers.sh)" >&2; exit 2; }
cd "$repo"
build=${CUMULO_BUILD:-build/release}
[ -x "$build/cumulo" ] || { echo "dns.sh: $build/cumulo is missing: scripts/build.sh release cumulo" >&2; exit 2; }
for t in knotd:knot nsd:nsd dnsperf:dnsperf; do
  command -v "${t%%:*}" >/dev/null || { echo "dns.sh: ${t%%:*} is missing: apt-get install -y ${t##*:}" >&2; exit 2; }
done
echo "## dns"
echo
echo "\`bench/dns.sh $*\` (dns-peers.sh --peers knot,nsd)"
"$harness" --peers knot,nsd --candidate-name cumulo \
  --candidate-cmd "$repo/$build/cumulo dns --listen {listen} --zone {zone} --origin {origin} --workers 1" "$@"
