#!/usr/bin/env bash
# The database tier's writer endpoint against HAProxy (TCP mode) and against connecting to the primary directly,
# in the same run: sysbench oltp_read_only and oltp_read_write, the same tables, the same primary (with one
# semi-synchronous replica, as the tier runs it). Prints a Markdown table with transactions/s, p95 latency and
# ratios (issue goals: >= 1.0x HAProxy; within 10% of direct).
#
#   bench/db.sh [--duration S] [--threads N] [--rounds R]      defaults: 10 s, 8 threads, 1 round
#
# Needs: $CUMULO_BUILD/cumulo (default build/release), mariadb-server, haproxy, sysbench, python3.
# Servers (mariadbd, the endpoint, HAProxy) share core 0, sysbench runs on core 1 (taskset, with 2+ cores).
# Both proxies run one thread (cumulo db workers: 1, HAProxy nbthread 1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
duration=10; threads=8; rounds=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2;;
    --threads) threads=$2; shift 2;;
    --rounds) rounds=$2; shift 2;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "db.sh: unknown argument $1 (try --help)" >&2; exit 2;;
  esac
done
build=${CUMULO_BUILD:-$repo/build/release}
cumulo=$build/cumulo
[ -x "$cumulo" ] || { echo "db.sh: $cumulo is missing: scripts/build.sh release cumulo" >&2; exit 2; }
for t in sysbench haproxy mariadbd; do
  command -v $t >/dev/null || [ -x /usr/sbin/$t ] || { echo "db.sh: $t is missing: scripts/install-deps.sh" >&2; exit 2; }
done
haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)

work=$(mktemp -d -t cumulo-dbbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pin_server=(); pin_load=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin_server=(taskset -c 0); pin_load=(taskset -c 1); fi

writer=$(free_port); reader=$(free_port); admin=$(free_port); p1=$(free_port); p2=$(free_port); hap=$(free_port)
cat > "$work/db.yaml" <<YAML
data_dir: $work/db
writer: 127.0.0.1:$writer
reader: 127.0.0.1:$reader
admin: 127.0.0.1:$admin
primary: db-a
instances:
  - {name: db-a, zone: a, port: $p1}
  - {name: db-b, zone: b, port: $p2}
buffer_pool: 256MiB
workers: 1
log_level: warn
replication: {name: repl, password: bench-repl}
users:
  - {name: sbtest, password: bench-pw, databases: [sbtest]}
YAML
"${pin_server[@]}" "$cumulo" db run -c "$work/db.yaml" 2>>"$work/db.log" &
pids+=($!)
for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/$writer) 2>/dev/null && break; sleep 0.1; done
(exec 3<>/dev/tcp/127.0.0.1/$writer) 2>/dev/null || { echo "db.sh: the database tier did not start:"; tail "$work/db.log"; exit 1; }

cat > "$work/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
listen mariadb
  bind 127.0.0.1:$hap
  server primary 127.0.0.1:$p1
CFG
"${pin_server[@]}" "$haproxy_bin" -f "$work/haproxy.cfg" -db >>"$work/haproxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$hap) 2>/dev/null && break; sleep 0.05; done

sb=(sysbench --db-driver=mysql --mysql-host=127.0.0.1 --mysql-user=sbtest --mysql-password=bench-pw
    --mysql-db=sbtest --tables=4 --table-size=20000)
"${sb[@]}" --mysql-port="$p1" oltp_read_write prepare >"$work/prepare.log" 2>&1 ||
  { echo "db.sh: sysbench prepare failed:"; tail "$work/prepare.log"; exit 1; }

declare -A tps lat
for round in $(seq "$rounds"); do
  for test in oltp_read_only oltp_read_write; do
    for target in direct haproxy cumulo; do
      case $target in direct) port=$p1;; haproxy) port=$hap;; cumulo) port=$writer;; esac
      out=$("${pin_load[@]}" "${sb[@]}" --mysql-port="$port" --threads="$threads" --time="$duration" \
              --report-interval=0 --percentile=95 "$test" run 2>&1) || { echo "$out" | tail; exit 1; }
      t=$(echo "$out" | sed -n 's/.*transactions: *[0-9]* *(\([0-9.]*\) per sec.*/\1/p')
      l=$(echo "$out" | sed -n 's/.*95th percentile: *\([0-9.]*\).*/\1/p')
      tps[$test,$target]="${tps[$test,$target]:-} $t"
      lat[$test,$target]="${lat[$test,$target]:-} $l"
    done
  done
done
median() { python3 -c 'import sys,statistics; print("%.1f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
echo
echo "sysbench $threads threads, ${duration}s per run, $rounds round(s), 4 tables x 20000 rows; primary + 1 semi-sync replica"
echo
echo "| test | direct tps | HAProxy tps | cumulo tps | cumulo / HAProxy | cumulo / direct | p95 ms direct / HAProxy / cumulo |"
echo "|---|---|---|---|---|---|---|"
for test in oltp_read_only oltp_read_write; do
  d=$(median ${tps[$test,direct]}); h=$(median ${tps[$test,haproxy]}); c=$(median ${tps[$test,cumulo]})
  ld=$(median ${lat[$test,direct]}); lh=$(median ${lat[$test,haproxy]}); lc=$(median ${lat[$test,cumulo]})
  rh=$(python3 -c "print('%.2fx' % ($c / $h))"); rd=$(python3 -c "print('%.2fx' % ($c / $d))")
  echo "| $test | $d | $h | $c | $rh | $rd | $ld / $lh / $lc |"
done
