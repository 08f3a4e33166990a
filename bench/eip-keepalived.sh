#!/usr/bin/env bash
# Elastic IP failover, the peer: keepalived (VRRPv3) moving one public address between two gateways when the
# holder is killed or hung, measured from a client outside by bench/eip_client.py (one new connection per request,
# open loop). The cumulo elastic IP is measured the same way; both go in one table of docs/benchmarks.md.
#
#   flock /tmp/cumulo-build.lock bash bench/eip-keepalived.sh                  # 5 runs of each scenario and setting
#   flock /tmp/cumulo-build.lock bash bench/eip-keepalived.sh --runs 1 --scenarios b --settings tuned
#
# Options: --runs N (5)  --scenarios LIST (a,b,c,d)  --settings LIST (default,tuned)  --rate N (200 requests/s)
#          --keep (keep the scratch directory: configs, keepalived logs, client logs, monitors, capture)
# Needs root, iproute2, keepalived (apt-get install -y keepalived) and /usr/bin/python3; tcpdump if installed.
#
# Topology, all in namespaces cu-kabench.* (any left by an earlier run are deleted first, and all at exit):
#   cu-kabench.out   the client, 203.0.113.2/24, default via the router
#   cu-kabench.rtr   the router: 203.0.113.1/24 towards the client, and the public segment, a bridge br0 with
#                    192.0.2.1/24 and one port per gateway; ip_forward on
#   cu-kabench.gwa   gateway a: eth0 192.0.2.11/24 on the segment, an HTTP server on :80 that answers every request
#   cu-kabench.gwb   gateway b: 192.0.2.12/24, the same; each answers with its name (header cumulo-gateway and body)
# The elastic IP is 192.0.2.100/24 on the segment, held by one gateway's keepalived (virtual_router_id 51).
# keepalived runs per gateway with its own net_namespace (-s NAME), so that vrrp_track_process works: its process
# event connector only delivers in the host's network namespace, and `ip netns exec keepalived` would leave the
# tracked process unseen and the instance in FAULT.
#
# Scenarios, each fault on whichever gateway holds the address:
#   a  kill -9 of the holder's HTTP server; keepalived tracks it with vrrp_track_process (event driven: the exit
#      is seen at once, the instance goes to FAULT, drops the address and sends a priority 0 advert)
#   b  kill -9 of the holder's keepalived (parent and VRRP child): nobody removes the address
#   c  SIGSTOP of the holder's keepalived and HTTP server (a hung machine), SIGCONT after 5 advert intervals (at
#      least 2 s): the continued holder still has the address and believes it is master
#   d  kill -9 of the holder's keepalived and HTTP server together (a dead machine's processes; its kernel stays)
# Settings:
#   default  keepalived's sample configuration: a MASTER with priority 150, b BACKUP 100, advert_int 1, preempt,
#            gratuitous ARP defaults
#   tuned    advert_int 0.1, both BACKUP with nopreempt (a gateway that comes back does not take the address back
#            and cause a second move), vrrp_higher_prio_send_advert; priorities and ARP settings as in default
#
# Per run: the client (--rate requests/s, --timeout 2) starts 0.7 s before the fault and stops 1 s after the
# address is seen on its new holder (c: 1.5 s after SIGCONT); `ip monitor address` in both gateways says when the
# address came and went where, tcpdump on br0 which gateway sent gratuitous ARPs and adverts. Then the holder is
# restored (process restarted) and the pair left to settle before the next run.
# Columns, over the runs: move = fault to the address added on the other gateway; gap = fault to the first
# successful response to a request sent after it; failed = failed requests sent after the fault, before and after
# the move (after must be 0); slowest = the longest successful request sent after the fault; overlaps = responses
# from the earlier holder after the new one had answered (certain: sent after it had); both = how long both
# gateways had the address configured after the fault, until the client stopped. The per-run lines add, for c,
# what followed SIGCONT (when one holder was left, failures, who answered first), and from the capture the
# gratuitous ARPs, ARP replies for the address and adverts each gateway sent after the fault.
# A whole run (5 runs, 4 scenarios, 2 settings) takes about 5 minutes.
set -euo pipefail

runs=5; scenarios="a,b,c,d"; settings="default,tuned"; rate=200; keep=0
usage() { sed -n '2,48p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2;; --scenarios) scenarios=$2; shift 2;; --settings) settings=$2; shift 2;;
    --rate) rate=$2; shift 2;; --keep) keep=1; shift;;
    -h|--help) usage; exit 0;;
    *) echo "eip-keepalived: unknown option $1 (try --help)" >&2; exit 2;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "eip-keepalived: needs root (namespaces)" >&2; exit 2; }
command -v keepalived >/dev/null 2>&1 || { echo "eip-keepalived: keepalived is missing: apt-get install -y keepalived" >&2; exit 1; }
command -v ip >/dev/null 2>&1 || { echo "eip-keepalived: ip is missing: apt-get install -y iproute2" >&2; exit 1; }
[ -x "$PY" ] || { echo "eip-keepalived: $PY is missing: apt-get install -y python3" >&2; exit 1; }
have_tcpdump=1; command -v tcpdump >/dev/null 2>&1 || {
  have_tcpdump=0; echo "eip-keepalived: tcpdump missing (apt-get install -y tcpdump): no ARP capture" >&2; }

P=cu-kabench
OUT=$P.out RTR=$P.rtr
GW=(gwa gwb)
declare -A GW_ADDR=([gwa]=192.0.2.11 [gwb]=192.0.2.12) GW_PRIO=([gwa]=150 [gwb]=100) MAC=()
VIP=192.0.2.100
dir=$(mktemp -d /tmp/eip-keepalived.XXXXXX)
# Every process this script starts runs in a process group of its own (setsid, which here execs in place: the
# PID is the group's ID), so that a fault hits all of keepalived's processes in one signal. Killed one by one,
# keepalived's VRRP child gets SIGTERM from the kernel when its parent dies first (PR_SET_PDEATHSIG) and starts a
# clean shutdown (a priority 0 advert, sometimes the address removed) before its own SIGKILL lands: a graceful
# stop, not a death. A group's SIGKILL is queued for every member before any of them can exit.
pids=()                       # every process group this script started, stopped by ID at exit
declare -A SRV KA KA_CHILD    # per gateway: HTTP server, keepalived parent, its VRRP child

log() { echo "eip-keepalived: $*" >&2; }
delete_namespaces() {
  local ns
  for ns in $(ip netns list | awk '{print $1}' | grep -F "$P." || true); do ip netns del "$ns" 2>/dev/null || true; done
}
stop_pid() { # stop one of our process groups: continue it (it may be stopped), TERM, then KILL after 3 s
  local p=$1 i
  kill -0 -- "-$p" 2>/dev/null || { reap "$p"; return 0; }
  kill -CONT -- "-$p" 2>/dev/null || true
  kill -TERM -- "-$p" 2>/dev/null || true
  for i in $(seq 1 30); do kill -0 -- "-$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$p" 2>/dev/null || true
  reap "$p"
}
reap() { # collect killed children of ours quietly (bash would report each as "Killed")
  local p
  for p in "$@"; do { wait "$p"; } 2>/dev/null || true; done
}
cleanup() {
  local p
  for p in "${pids[@]}"; do stop_pid "$p"; done
  delete_namespaces
  if [ "$keep" = 0 ]; then rm -rf "$dir"; else log "kept $dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------- topology ----------
delete_namespaces
for n in out rtr gwa gwb; do ip netns add "$P.$n"; ip -n "$P.$n" link set lo up; done
ip -n "$RTR" link add eth-out type veth peer name eth0 netns "$OUT"
ip -n "$OUT" addr add 203.0.113.2/24 dev eth0
ip -n "$OUT" link set eth0 up
ip -n "$OUT" route add default via 203.0.113.1
ip -n "$RTR" addr add 203.0.113.1/24 dev eth-out
ip -n "$RTR" link set eth-out up
ip -n "$RTR" link add br0 type bridge forward_delay 0 stp_state 0
ip -n "$RTR" addr add 192.0.2.1/24 dev br0
ip -n "$RTR" link set br0 up
for g in "${GW[@]}"; do
  ip -n "$RTR" link add "eth-$g" type veth peer name eth0 netns "$P.$g"
  ip -n "$RTR" link set "eth-$g" master br0 up
  ip -n "$P.$g" addr add "${GW_ADDR[$g]}/24" dev eth0
  ip -n "$P.$g" link set eth0 up
  ip -n "$P.$g" route add default via 192.0.2.1
  MAC[$g]=$(ip -n "$P.$g" -o link show eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
done
ip netns exec "$RTR" sysctl -qw net.ipv4.ip_forward=1

# ---------- the gateways' HTTP server: its own name, on every request, on a new connection each ----------
cat > "$dir/httpd.py" <<'EOF'
import http.server, sys
name = sys.argv[1].encode()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = name + b"\n"
        self.send_response(200)
        self.send_header("cumulo-gateway", name.decode())
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True
Server(("0.0.0.0", 80), Handler).serve_forever()
EOF
# The server runs as httpd-gwa / httpd-gwb (a link to python3): the process name vrrp_track_process matches.
for g in "${GW[@]}"; do ln -s "$PY" "$dir/httpd-$g"; done

start_server() { # gateway
  setsid ip netns exec "$P.$1" "$dir/httpd-$1" "$dir/httpd.py" "gateway-${1#gw}" >> "$dir/httpd-$1.log" 2>&1 &
  SRV[$1]=$!; pids+=("$!")
}
write_config() { # setting gateway
  local s=$1 g=$2 state=BACKUP advert=1 extra="" globals=""
  if [ "$s" = default ]; then
    [ "$g" = gwa ] && state=MASTER
  else
    advert=0.1; extra="nopreempt"; globals="vrrp_higher_prio_send_advert"
  fi
  cat > "$dir/keepalived-$s-$g.conf" <<EOF
global_defs {
  router_id $g
  vrrp_version 3
  $globals
}
vrrp_track_process httpd {
  process httpd-$g
}
vrrp_instance eip {
  state $state
  interface eth0
  virtual_router_id 51
  priority ${GW_PRIO[$g]}
  advert_int $advert
  $extra
  virtual_ipaddress {
    $VIP/24 dev eth0
  }
  track_process {
    httpd
  }
}
EOF
}
start_keepalived() { # setting gateway
  local s=$1 g=$2 i
  rm -f "$dir/ka-$g.pid" "$dir/ka-$g-vrrp.pid"
  setsid keepalived --dont-fork --log-console --log-detail --no-syslog --namespace "$P.$g" -f "$dir/keepalived-$s-$g.conf" \
    -p "$dir/ka-$g.pid" -r "$dir/ka-$g-vrrp.pid" >> "$dir/keepalived-$s-$g.log" 2>&1 &
  KA[$g]=$!; pids+=("$!")
  KA_CHILD[$g]=""
  for i in $(seq 1 100); do
    [ -s "$dir/ka-$g-vrrp.pid" ] && { KA_CHILD[$g]=$(cat "$dir/ka-$g-vrrp.pid"); break; }
    sleep 0.02
  done
  [ -n "${KA_CHILD[$g]}" ] || {
    log "keepalived in $P.$g did not start its VRRP child:"; tail -5 "$dir/keepalived-$s-$g.log" >&2; exit 1; }
  [ "$(ps -o pgid= -p "${KA_CHILD[$g]}" | tr -d ' ')" = "${KA[$g]}" ] || {
    log "keepalived's VRRP child ${KA_CHILD[$g]} is not in its parent's process group ${KA[$g]}"; exit 1; }
}
holders() { # gateways that have the VIP configured now
  local g a
  for g in "${GW[@]}"; do a=$(ip -n "$P.$g" -o addr show dev eth0); [[ $a == *" $VIP/"* ]] && echo "$g"; done; true
}
wait_settled() { # setting: one holder (a with preempt in default), unchanged for 1 s; at most 20 s
  local s=$1 i h last="" since=0 now
  for i in $(seq 1 400); do
    h=$(holders | tr '\n' ' ')
    now=$EPOCHREALTIME
    if [ "$h" != "$last" ]; then last=$h; since=$now; fi
    if [ "$(echo $h | wc -w)" = 1 ] && { [ "$s" = tuned ] || [ "$h" = "gwa " ]; } &&
       awk -v a="$now" -v b="$since" 'BEGIN{exit !(a - b >= 1)}'; then
      echo "$h" | tr -d ' '; return 0
    fi
    sleep 0.05
  done
  log "the address did not settle on one gateway in 20 s (holders now: ${h:-none})"; return 1
}

# ---------- monitors for the whole run ----------
for g in "${GW[@]}"; do
  TZ=UTC setsid ip -n "$P.$g" -ts monitor address > "$dir/monitor-$g.log" 2>&1 &
  pids+=("$!")
done
if [ "$have_tcpdump" = 1 ]; then
  setsid ip netns exec "$RTR" tcpdump -i br0 -n -l -tt -e 'arp or ip proto 112' > "$dir/capture.txt" 2>"$dir/tcpdump.err" &
  pids+=("$!")
fi
sleep 0.3

# ---------- one run ----------
cat > "$dir/run_report.py" <<'EOF'
# run_report.py CLIENT.jsonl FAULTS HOLDER OTHER START END MONITOR_DIR CAPTURE MAC_A MAC_B VIP: one JSON line
import datetime, json, re, sys
sys.path.insert(0, sys.argv[12])
import eip_client
log, faults_file, holder, other = sys.argv[1:5]
start, end = float(sys.argv[5]), float(sys.argv[6])
mondir, capture, vip = sys.argv[7], sys.argv[8], sys.argv[11]
macs = {sys.argv[9]: "gwa", sys.argv[10]: "gwb"}

def events(g):  # (time, added?) of the VIP on gateway g
    out = []
    for line in open(f"{mondir}/monitor-{g}.log"):
        m = re.match(r"\[(\S+)\]\s+(Deleted )?.*inet " + re.escape(vip) + "/", line)
        if m:
            t = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp()
            out.append((t, m.group(2) is None))
    return out

faults = eip_client.load_faults(faults_file)
ev = {g: events(g) for g in ("gwa", "gwb")}
fault = faults[0]["time"]
# The address on the other gateway: when it came (the move); for a cont, when only one holder was left.
added = [t for t, add in ev[other] if add and t >= fault]
moved = added[0] if added else None
lines = [f"{fault:.6f} {faults[0]['kind']} {moved:.6f}" if moved else f"{fault:.6f} {faults[0]['kind']}"]
if len(faults) > 1:
    cont = faults[1]["time"]
    gone = sorted(t for g in ev for t, add in ev[g] if not add and t >= cont)
    lines.append(f"{cont:.6f} cont {gone[0]:.6f}" if gone else f"{cont:.6f} cont")
with open(faults_file, "w") as f:
    f.write("\n".join(lines) + "\n")
s = eip_client.analyze(eip_client.load_records(log), eip_client.load_faults(faults_file))
# How long both gateways had the address, from the fault to the end of the run.
state = {g: g == holder for g in ("gwa", "gwb")}
allev = sorted((t, g, add) for g in ev for t, add in ev[g])
for t, g, add in allev:
    if t < fault:
        state[g] = add
both, t0 = 0.0, fault
for t, g, add in allev:
    if fault <= t <= end:
        if all(state.values()):
            both += t - t0
        state[g] = add
        t0 = t
if all(state.values()):
    both += end - t0
# The capture: gratuitous ARPs, ARP replies for the VIP and adverts, per sender, after the fault.
garp = {"gwa": 0, "gwb": 0}; replies = {"gwa": 0, "gwb": 0}; adverts = {"gwa": 0, "gwb": 0}
try:
    for line in open(capture, errors="replace"):
        parts = line.split()
        if len(parts) < 3:
            continue
        try:
            t = float(parts[0])
        except ValueError:
            continue
        if not fault <= t <= end or parts[1] not in macs:
            continue
        who = macs[parts[1]]
        if f"who-has {vip} " in line and f"tell {vip}," in line:
            garp[who] += 1
        elif f"Reply {vip} is-at" in line:
            replies[who] += 1
        elif "VRRP" in line and "prio 0," not in line:
            adverts[who] += 1
except FileNotFoundError:
    pass
f0 = s["faults"][0]
out = {"holder": holder, "moved_after": f0["moved_after"], "gap": f0["gap"], "first_ok_id": f0["first_ok_id"],
       "failed_before_move": f0["failed_before_move"], "failed_after_move": f0["failed_after_move"],
       "failed": f0["failed"], "in_flight": f0["failed_in_flight"], "failures": f0["failures"],
       "slowest_ok": f0["slowest_ok"], "overlaps": s["overlap_count"], "overlaps_certain": s["overlap_certain"],
       "both_s": round(both, 3), "both_at_end": all(state.values()), "requests": s["requests"],
       "garp": garp, "arp_replies": replies, "adverts": adverts}
if len(s["faults"]) > 1:
    c = s["faults"][1]
    out.update({"cont_settled_after": c["moved_after"], "cont_failed": c["failed"], "cont_gap": c["gap"],
                "cont_first_ok_id": c["first_ok_id"], "cont_failures": c["failures"]})
print(json.dumps(out))
EOF

client_pid=""
one_run() { # setting scenario run
  local s=$1 sc=$2 r=$3 h other ad hold i t0 t_fault t_end tag="$1-$2-$3"
  ad=1; [ "$s" = tuned ] && ad=0.1
  h=$(wait_settled "$s") || { echo "{\"error\": \"not settled\"}" >> "$dir/results-$s-$sc.jsonl"; return 1; }
  other=gwa; [ "$h" = gwa ] && other=gwb
  t0=$EPOCHREALTIME
  setsid ip netns exec "$OUT" "$PY" "$here/eip_client.py" --url "http://$VIP/" --rate "$rate" --timeout 2 \
    --out "$dir/client-$tag.jsonl" 2>>"$dir/client.err" &
  client_pid=$!; pids+=("$!")
  sleep 0.7
  case $sc in
    a) kill -KILL -- "-${SRV[$h]}"; t_fault=$EPOCHREALTIME; echo "$t_fault kill" > "$dir/faults-$tag"
       reap "${SRV[$h]}";;
    b) kill -KILL -- "-${KA[$h]}"; t_fault=$EPOCHREALTIME; echo "$t_fault kill" > "$dir/faults-$tag"
       reap "${KA[$h]}";;
    d) kill -KILL -- "-${KA[$h]}" "-${SRV[$h]}"; t_fault=$EPOCHREALTIME
       echo "$t_fault kill" > "$dir/faults-$tag"; reap "${KA[$h]}" "${SRV[$h]}";;
    c) kill -STOP -- "-${KA[$h]}" "-${SRV[$h]}"; t_fault=$EPOCHREALTIME
       echo "$t_fault stop" > "$dir/faults-$tag";;
  esac
  if [ "$sc" = c ]; then
    hold=$(awk -v a="$ad" 'BEGIN{h = 5 * a; if (h < 2) h = 2; print h}')
    sleep "$hold"
    # the time before the signal: the continued keepalived may act within microseconds
    echo "$EPOCHREALTIME cont" >> "$dir/faults-$tag"; kill -CONT -- "-${KA[$h]}" "-${SRV[$h]}"
    sleep 1.5
  else
    # (not `holders | grep -q`: grep leaving early fails the pipeline under pipefail when a line follows)
    for i in $(seq 1 200); do [[ " $(holders | tr '\n' ' ') " == *" $other "* ]] && break; sleep 0.05; done
    sleep 1
  fi
  stop_pid "$client_pid"; client_pid=""
  t_end=$EPOCHREALTIME
  sleep 0.1   # the monitors' and the capture's last lines
  "$PY" "$dir/run_report.py" "$dir/client-$tag.jsonl" "$dir/faults-$tag" "$h" "$other" "$t_fault" "$t_end" "$dir" \
    "$dir/capture.txt" "${MAC[gwa]}" "${MAC[gwb]}" "$VIP" "$here" >> "$dir/results-$s-$sc.jsonl"
  log "$s $sc run $r (holder $h): $(tail -1 "$dir/results-$s-$sc.jsonl" | "$PY" -c 'import json,sys; d=json.load(sys.stdin)
print("move %s s, gap %s s, failed %s before / %s after the move, overlaps %s, both held %s s%s" % (d["moved_after"],
  d["gap"], d["failed_before_move"], d["failed_after_move"], d["overlaps"], d["both_s"],
  "" if "cont_gap" not in d else ", after SIGCONT: one holder after %s s, %s failed" % (d["cont_settled_after"], d["cont_failed"])))')"
  # Restore the gateway the fault hit.
  case $sc in
    a) start_server "$h";;
    b) start_keepalived "$s" "$h";;
    d) start_server "$h"; start_keepalived "$s" "$h";;
  esac
}

log "dir $dir, runs $runs, scenarios $scenarios, settings $settings, $rate requests/s;" \
    "$(keepalived --version 2>&1 | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for s in ${settings//,/ }; do
  for sc in ${scenarios//,/ }; do
    for g in "${GW[@]}"; do write_config "$s" "$g"; start_server "$g"; start_keepalived "$s" "$g"; done
    for r in $(seq 1 "$runs"); do one_run "$s" "$sc" "$r" || true; done
    for g in "${GW[@]}"; do stop_pid "${KA[$g]}"; stop_pid "${SRV[$g]}"; done
  done
done

# ---------- the table ----------
echo
echo "keepalived elastic IP failover, $(date -u +%Y-%m-%d), $(keepalived --version 2>&1 | head -1 | awk '{print $1, $2}')," \
     "commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $runs runs per row," \
     "client $rate requests/s (a new connection each, timeout 2 s); load average before the run $load_before"
echo
"$PY" - "$dir" "$settings" "$scenarios" <<'EOF'
import json, os, statistics, sys
d, settings, scenarios = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
names = {"a": "a. kill -9 HTTP server (tracked)", "b": "b. kill -9 keepalived", "c": "c. SIGSTOP keepalived + server",
         "d": "d. kill -9 keepalived + server"}
def mm(xs, ints=False):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if ints:
        return f"{statistics.median(xs):g} / {max(xs)}"
    return f"{statistics.median(xs):.2f} / {max(xs):.2f}"
print("| system | scenario | setting | runs | move s (median / max) | gap s (median / max) | failed before move"
      " (median / max) | failed after move (total) | slowest ok s (max) | overlaps (certain) | VIP on both s (median / max) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
details = []
for sc in scenarios:
    for s in settings:
        p = os.path.join(d, f"results-{s}-{sc}.jsonl")
        if not os.path.exists(p):
            continue
        rs = [json.loads(l) for l in open(p)]
        bad = [r for r in rs if "error" in r]
        rs = [r for r in rs if "error" not in r]
        after = [r["failed_after_move"] for r in rs]
        both = [r["both_s"] for r in rs]
        ends = sum(1 for r in rs if r["both_at_end"])
        print(f"| keepalived | {names[sc]} | {s} | {len(rs)}{' (+%d not settled)' % len(bad) if bad else ''} |"
              f" {mm([r['moved_after'] for r in rs])} | {mm([r['gap'] for r in rs])} |"
              f" {mm([r['failed_before_move'] for r in rs], ints=True)} |"
              f" {sum(x for x in after if x is not None)}{'' if None not in after else ' (no move seen in %d)' % after.count(None)} |"
              f" {max((r['slowest_ok'] for r in rs if r['slowest_ok'] is not None), default=0):.2f} |"
              f" {sum(r['overlaps'] for r in rs)} ({sum(r['overlaps_certain'] for r in rs)}) |"
              f" {mm(both)}{' (still both at the end of %d of %d)' % (ends, len(rs)) if ends else ''} |")
        for i, r in enumerate(rs, 1):
            extra = ""
            if "cont_gap" in r:
                extra = (f"; after SIGCONT one holder after {r['cont_settled_after']} s, {r['cont_failed']} failed,"
                         f" first answer from {r['cont_first_ok_id']}")
            details.append(f"- {sc} {s} {i}: holder {r['holder']}, move {r['moved_after']} s, gap {r['gap']} s,"
                           f" failures {r['failures'] or 'none'} ({r['in_flight']} in flight), slowest ok"
                           f" {r['slowest_ok']} s, VIP on both {r['both_s']} s; gratuitous ARPs {r['garp']},"
                           f" ARP replies for the VIP {r['arp_replies']}, adverts {r['adverts']}{extra}")
print()
print("Per run:")
print("\n".join(details))
EOF
