#!/usr/bin/env bash
# The database tier's soak: tests/integration/db_chaos.py runs 50 rounds of faults at random intervals of 1-5 s
# (kill -9 and SIGSTOP of the primary, some right after a big transaction or triggered by the tier's own log
# events; kill -9 of a replica, of the promotion candidate while it catches up, of `cumulo db run` itself, also
# during a failover) under four writers and big transactions of 20,000 rows, then checks every acknowledged row
# on every instance, whole transactions and equal GTID positions. Prints the summary (rounds by kind, rows
# acknowledged, in doubt and lost, worst and median time to next write, catch-up durations) and exits 1 when any
# acknowledged row is lost or any check fails (its work directory is then kept).
#
#   bench/db-chaos.sh [--rounds N] [--minutes M] [--seed S] [--big-rows R] [--ballast-rows B] [--keep]
#                     defaults: 50 rounds, at most 20 minutes, a random seed (printed), 20000, 5500
#
# Needs: $CUMULO_BUILD/cumulo (default build/release), mariadb-server, mariadb-client and Debian's python3-pymysql,
# python3-requests and python3-pytest (the integration tests' helpers) for /usr/bin/python3. One run at a time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds|--minutes|--seed|--big-rows|--ballast-rows) [ $# -ge 2 ] || { echo "db-chaos.sh: $1 needs a value" >&2; exit 2; }
      args+=("$1" "$2"); shift 2;;
    --keep) args+=(--keep); shift;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "db-chaos.sh: unknown argument $1 (try --help)" >&2; exit 2;;
  esac
done
build=${CUMULO_BUILD:-$repo/build/release}
case $build in /*) ;; *) build=$repo/$build;; esac
[ -x "$build/cumulo" ] || { echo "db-chaos.sh: $build/cumulo is missing: scripts/build.sh release cumulo" >&2; exit 2; }
[ -x /usr/sbin/mariadbd ] || { echo "db-chaos.sh: mariadbd is missing: scripts/install-deps.sh" >&2; exit 2; }
/usr/bin/python3 -c 'import pymysql, requests, pytest' 2>/dev/null ||
  { echo "db-chaos.sh: apt-get install -y python3-pymysql python3-requests python3-pytest" >&2; exit 2; }
cd "$repo"
CUMULO_BUILD=$build exec /usr/bin/python3 tests/integration/db_chaos.py "${args[@]}"
