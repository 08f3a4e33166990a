#!/usr/bin/env bash
# The gateway through the stack's network namespaces against the same gateway on loopback: what network mode
# (docs/network.md) costs per request. One build, one stack file run two ways by `cumulo up`, rounds alternating:
#   loopback  the stack without `network:`: wrk, the gateway and the backend all on 127.0.0.1
#   netns     the same stack with `network: {}`: the gateway in its namespace (public subnet), the backend in
#             another (private subnet), both routed and filtered by the router namespace (the stack's real
#             nftables ruleset, connection tracking on), wrk in the outside namespace
# The backend is the small test's nginx of ../shared/bench/http-peers.sh (one process, GET /small answers
# "hello world\n"), launched by the stack as the one instance of its group. The gateway (one worker) runs on
# --proxy-cpu, wrk, the backend and the supervisor on --load-cpu; a warm-up of 2 s precedes each measured run.
#
#   flock /tmp/cumulo-build.lock bash bench/gateway-netns.sh                   # 3 rounds of 10 s, 50 connections
#   flock /tmp/cumulo-build.lock bash bench/gateway-netns.sh --rounds 1 --duration 3
#
# Options: --rounds N (3)  --duration SECONDS (10)  --connections N (50)  --proxy-cpu N (0)  --load-cpu N (1)
#          --keep (keep the scratch directory: stack files, state directories, logs)
# The binary is $CUMULO_BUILD/cumulo (default build/release). Needs root, iproute2, nftables, nginx and wrk.
#
# Columns, medians over the rounds (the ratio row divides the medians):
#   gateway CPU us/req   utime+stime of the gateway process (/proc/PID/stat) over the requests wrk completed.
#                        It holds the kernel's work done while the gateway is on its CPU: its system calls, and
#                        the softirq work that runs in its context (the kernel here has no IRQ time accounting,
#                        so softirq time is charged to the task it interrupts): in netns mode that is most of the
#                        forwarding (veths, the router's routing, nftables and conntrack) of the packets the
#                        gateway sends. The forwarding of the packets wrk and the backend send runs on the load CPU
#                        and is charged to them (or to ksoftirqd): it is not in this column.
#   stack+client CPU     the same over the supervisor's whole process tree (supervisor, gateway, backend), wrk
#                        and the ksoftirqd threads: the traffic's whole cost, both directions, router included,
#                        except softirq work that lands on an idle CPU or on someone else's process.
#   machine CPU, softirq busy time of every CPU (/proc/stat: user nice system irq softirq) per request, and its
#                        softirq column alone: everything, including anything else running on the machine.
set -euo pipefail

rounds=3; duration=10; conns=50; proxy_cpu=0; load_cpu=1; keep=0
usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2;; --duration) duration=${2%s}; shift 2;; --connections) conns=$2; shift 2;;
    --proxy-cpu) proxy_cpu=$2; shift 2;; --load-cpu) load_cpu=$2; shift 2;; --keep) keep=1; shift;;
    -h|--help) usage; exit 0;;
    *) echo "gateway-netns: unknown option $1 (try --help)" >&2; exit 2;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
build=$(cd "${CUMULO_BUILD:-build/release}" 2>/dev/null && pwd) || build=${CUMULO_BUILD:-build/release}
[ -x "$build/cumulo" ] || { echo "gateway-netns: $build/cumulo is missing: scripts/build.sh release cumulo" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "gateway-netns: network mode needs root (namespaces, nftables)" >&2; exit 2; }
PY=/usr/bin/python3
need() { command -v "$1" >/dev/null 2>&1 || { echo "gateway-netns: $1 missing: apt-get install -y $2" >&2; exit 2; }; }
need wrk wrk; need nginx nginx-light; need taskset util-linux; need ip iproute2; need nft nftables; need "$PY" python3
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
hz=$(getconf CLK_TCK)

dir=$(mktemp -d /tmp/gateway-netns.XXXXXX); chmod 755 "$dir"
# The stack's namespaces are cu-NAME.*; a name of this run alone, so that clean-up touches nothing else.
name="gwn$$"
up_pid=""
stop_stack() { # ends the running `cumulo up` (it removes its namespaces), then whatever of ours is left
  if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
    kill -TERM "$up_pid" 2>/dev/null || true
    local i; for i in $(seq 1 600); do kill -0 "$up_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$up_pid" 2>/dev/null; then
      echo "gateway-netns: cumulo up (pid $up_pid) still running after 60 s: killed" >&2
      kill -KILL "$up_pid" 2>/dev/null || true
    fi
    wait "$up_pid" 2>/dev/null || true
  fi
  up_pid=""
  local ns
  for ns in $(ip netns list | awk '{print $1}' | grep -F "cu-$name." || true); do
    echo "gateway-netns: namespace $ns left behind: deleted" >&2
    ip netns del "$ns" 2>/dev/null || true
  done
}
cleanup() {
  stop_stack
  if [ "$keep" = 0 ]; then rm -rf "$dir"; else echo "gateway-netns: kept $dir" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------- the backend: http-peers.sh's nginx, one process, plus the health check's /healthz ----------
cat > "$dir/backend.sh" <<'EOF'
#!/bin/sh
# backend.sh HOST PORT INSTANCE_ID
set -e
d=$(cd "$(dirname "$0")" && pwd)/backend-$3
mkdir -p "$d/tmp"
cat > "$d/nginx.conf" <<EOC
daemon off; master_process off; worker_processes 1; pid $d/nginx.pid; error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  client_body_temp_path $d/tmp; proxy_temp_path $d/tmp; fastcgi_temp_path $d/tmp; uwsgi_temp_path $d/tmp;
  scgi_temp_path $d/tmp;
  server {
    listen $1:$2 backlog=4096;
    location = /small { default_type text/plain; add_header Cache-Control "public, max-age=3600"; return 200 "hello world\n"; }
    location = /healthz { default_type text/plain; return 200 "ok\n"; }
  }
}
EOC
exec nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log"
EOF
chmod 755 "$dir/backend.sh"

# ---------- one stack file, two modes ----------
gw_port=$(free_port); admin_port=$(free_port); control_port=$(free_port)
write_stack() { # $1 mode, $2 gateway listen
  cat > "$dir/stack-$1.yaml" <<EOF
name: $name
zones: [a]
control:
  listen: 127.0.0.1:$control_port
gateway:
  listen: $2
  admin: 127.0.0.1:$admin_port
  zone: a
  workers: 1
  log_level: warn
  access_log: off
groups:
  - name: web
    min: 1
    max: 1
    desired: 1
    launch_template:
      command: ["$dir/backend.sh", "{host}", "{port}", "{instance_id}"]
      health_check: {path: /healthz, grace_period: 10s}
EOF
}
write_stack loopback "127.0.0.1:$gw_port"
write_stack netns "0.0.0.0:$gw_port"
echo "network: {}" >> "$dir/stack-netns.yaml"
for m in loopback netns; do
  "$build/cumulo" up --check "$dir/stack-$m.yaml" >/dev/null || { echo "gateway-netns: stack-$m.yaml refused" >&2; exit 1; }
done

cat > "$dir/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
EOF

tree_pids() { local p=$1 c; echo "$p"; for c in $(pgrep -P "$p" 2>/dev/null); do tree_pids "$c"; done; }
pid_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12+$13}' || echo 0; }
tree_ticks() { local s=0 p t; for p in $(tree_pids "$1"); do t=$(pid_ticks "$p"); s=$((s + ${t:-0})); done; echo $s; }
ksoftirqd_ticks() { local s=0 p t; for p in $(pgrep -x 'ksoftirqd/[0-9]+'); do t=$(pid_ticks "$p"); s=$((s + ${t:-0})); done; echo $s; }
# busy and softirq ticks of the whole machine: user nice system irq softirq (idle, iowait and steal left out)
machine_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8, $8}' /proc/stat; }
json_get() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d=d.get(k) if isinstance(d,dict) else None
print("" if d is None else d)' "$1" "$2" 2>/dev/null || true; }

declare -A R   # R[mode,round]="rps p99_us gw_us stack_us machine_us softirq_us non2xx errors"
declare -A forwarded   # forwarded[round]: packets the router received per request (netns rounds)
# packets received by the router on all its links (each is forwarded once, or rejected)
router_packets() { ip -n "$1" -s -j link show | "$PY" -c 'import json,sys
print(sum(l["stats64"]["rx"]["packets"] for l in json.load(sys.stdin) if l["ifname"] != "lo"))'; }
conntrack_note=""
run_round() { # mode round
  local mode=$1 r=$2 state="$dir/state-$1" log="$dir/up-$1-$2.log"
  rm -rf "$state"
  taskset -c "$load_cpu" "$build/cumulo" up --state-dir "$state" "$dir/stack-$mode.yaml" > "$log" 2>&1 &
  up_pid=$!
  local i ready=0 st chk
  for i in $(seq 1 600); do
    kill -0 "$up_pid" 2>/dev/null || break
    st=$(json_get "$state/stack.json" state)
    if [ "$st" = running ]; then
      chk=$(json_get "$state/stack.json" network.check)
      # in network mode the check's probes must be over before the measurement starts
      if [ "$mode" = loopback ] || [ "$chk" = passed ]; then ready=1; break; fi
      [ "$chk" = failed ] && break
    fi
    sleep 0.1
  done
  if [ "$ready" = 0 ]; then
    echo "gateway-netns: the $mode stack did not come up (state '${st:-}', check '${chk:-}'); its log:" >&2
    tail -20 "$log" >&2; stop_stack; R[$mode,$r]="- - - - - - - -"; return
  fi
  local gw_pid url client=()
  gw_pid=$(json_get "$state/stack.json" gateway.pid)
  url="http://$(json_get "$state/stack.json" gateway.address)/small"
  taskset -a -cp "$proxy_cpu" "$gw_pid" >/dev/null
  [ "$mode" = netns ] && client=(ip netns exec "$(json_get "$state/stack.json" network.outside)")
  client+=(taskset -c "$load_cpu" wrk -t1 -c "$conns")

  "${client[@]}" -d 2s "$url" >/dev/null 2>&1 || true
  local g0 s0 k0 m0 g1 s1 k1 m1 wrk_cpu line
  local router="" f0=0 f1=0
  [ "$mode" = netns ] && router=$(json_get "$state/stack.json" network.router)
  [ -n "$router" ] && f0=$(router_packets "$router")
  g0=$(pid_ticks "$gw_pid"); s0=$(tree_ticks "$up_pid"); k0=$(ksoftirqd_ticks); m0=$(machine_ticks)
  # wrk's own CPU: the rusage of the children the subshell waited for (ip netns exec execs what it runs)
  wrk_cpu=$( { TIMEFORMAT='%3U %3S'; time "${client[@]}" -d "${duration}s" --timeout 5s -s "$dir/report.lua" "$url" \
               > "$dir/wrk-$mode-$r.out" 2>&1; } 2>&1 | awk '{print $1+$2}')
  g1=$(pid_ticks "$gw_pid"); s1=$(tree_ticks "$up_pid"); k1=$(ksoftirqd_ticks); m1=$(machine_ticks)
  if [ -n "$router" ]; then
    f1=$(router_packets "$router")
    conntrack_note=$(ip netns exec "$router" cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo "?")
  fi
  line=$(grep '^RESULT' "$dir/wrk-$mode-$r.out" || true)
  if [ -z "$line" ]; then
    echo "gateway-netns: wrk gave no result in $mode round $r: $(tail -3 "$dir/wrk-$mode-$r.out")" >&2
    R[$mode,$r]="- - - - - - - -"
  else
    set -- $line
    local reqs=$2 dur_us=$3 p99=$5 non2xx=$6 errs=$7
    [ -n "$router" ] && forwarded[$r]=$(awk -v f="$((f1 - f0))" -v n="$reqs" 'BEGIN{printf "%.2f", f / n}')
    R[$mode,$r]=$(awk -v n="$reqs" -v d="$dur_us" -v p99="$p99" -v hz="$hz" -v g="$((g1 - g0))" \
      -v s="$((s1 - s0 + k1 - k0))" -v w="$wrk_cpu" -v mb="$(( ${m1% *} - ${m0% *} ))" \
      -v ms="$(( ${m1#* } - ${m0#* } ))" -v x="$non2xx" -v e="$errs" 'BEGIN {
        u = 1e6 / hz / n
        printf "%d %d %.2f %.2f %.2f %.2f %d %d", n * 1e6 / d, p99, g * u, s * u + w * 1e6 / n, mb * u, ms * u, x, e }')
  fi
  echo "gateway-netns: $mode round $r: $(echo "${R[$mode,$r]}" | awk '{printf "%s req/s, gateway %s us/req, stack+client %s, machine %s (softirq %s)", $1, $3, $4, $5, $6}')" >&2
  stop_stack
}

echo "gateway-netns: stack $name, rounds=$rounds duration=${duration}s connections=$conns proxy-cpu=$proxy_cpu" \
     "load-cpu=$load_cpu, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq 1 "$rounds"); do
  for m in loopback netns; do
    echo "gateway-netns: round $r/$rounds: $m" >&2
    run_round "$m" "$r"
  done
done
left=$(ip netns list | awk '{print $1}' | grep -cF "cu-$name." || true)

median() { tr ' ' '\n' | { grep -v '^-\?$' || true; } | sort -g | awk '{a[NR]=$1} END{ if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
col() { local m=$1 k=$2 r v=""; for r in $(seq 1 "$rounds"); do v="$v $(echo ${R[$m,$r]} | cut -d' ' -f$k)"; done; echo $v | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="-"||b=="-"||b==0) print "-"; else printf "%.2f", a/b }'; }
ms() { awk -v u="$1" 'BEGIN{ if (u=="-") print "-"; else printf "%.2f", u/1000 }'; }

echo
echo "gateway through the namespaces, $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')," \
     "$(nproc) cores, median of $rounds rounds of ${duration}s, $conns connections, GET /small;" \
     "load average before the run $load_before"
echo
echo "| mode | req/s | p99 ms | gateway CPU us/req | stack+client CPU us/req | machine CPU us/req | of which softirq us/req | non-2xx | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
for m in loopback netns; do
  echo "| $m | $(col $m 1) | $(ms "$(col $m 2)") | $(col $m 3) | $(col $m 4) | $(col $m 5) | $(col $m 6) | $(col $m 7) | $(col $m 8) |"
done
echo "| ratio netns/loopback | $(ratio "$(col netns 1)" "$(col loopback 1)") | $(ratio "$(col netns 2)" "$(col loopback 2)") |" \
     "$(ratio "$(col netns 3)" "$(col loopback 3)") | $(ratio "$(col netns 4)" "$(col loopback 4)") |" \
     "$(ratio "$(col netns 5)" "$(col loopback 5)") | $(ratio "$(col netns 6)" "$(col loopback 6)") | | |"
echo
echo "Per round (req/s, gateway us/req): $(for r in $(seq 1 "$rounds"); do for m in loopback netns; do
  echo -n "$m $(echo ${R[$m,$r]} | cut -d' ' -f1,3); "; done; done)"
echo "Packets the router forwarded per request, per netns round: ${forwarded[*]:-?}." \
     "Connections tracked in the router at the end of the last netns round: ${conntrack_note:-?}." \
     "Namespaces of the stack left after the run: $left."
