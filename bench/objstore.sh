#!/usr/bin/env bash
# The object store against its peers on this machine, in the same run, as CPU time per request (the steady
# figure on two cores; req/s is printed beside it):
#   GET of a 4 KiB and a 1 MiB object (anonymous, public bucket), the store with its read cache off and on,
#   vs nginx serving the same bytes from files with open_file_cache and sendfile, as an operator would;
#   PUT of 4 KiB objects (SigV4, UNSIGNED-PAYLOAD, one key overwritten) vs a raw loop in C with the same
#   concurrency and the same fsyncs per object (the new file, then its directory); the fsyncs per PUT of the
#   store counted with strace; AES-256-GCM's cost per MiB on this CPU (openssl speed), the part of a
#   1 MiB GET nginx does not pay; the time to list 100k keys (ListObjectsV2 pages of 1000).
# Every server runs one worker on core 0; wrk runs on core 1. Prints a Markdown table.
#
#   bench/objstore.sh [--duration S] [--connections N] [--only get|put] [--put-rounds N]
#                                          defaults: 10 s, 32 connections, all, 5 PUT rounds
#   CUMULO_BIN=path/to/cumulo bench/objstore.sh ...            another build (default $CUMULO_BUILD/cumulo)
#
# Needs: the cumulo binary (scripts/build.sh release cumulo), nginx, wrk, strace, cc, openssl, python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
duration=10; conns=32; only=all; put_rounds=5
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2;;
    --connections) conns=$2; shift 2;;
    --only) only=$2; shift 2;;
    --put-rounds) put_rounds=$2; shift 2;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "objstore.sh: unknown argument $1 (try --help)" >&2; exit 2;;
  esac
done
build=${CUMULO_BUILD:-$repo/build/release}
cumulo=${CUMULO_BIN:-$build/cumulo}
[ -x "$cumulo" ] || { echo "objstore.sh: $cumulo is missing: scripts/build.sh release cumulo" >&2; exit 2; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || { echo "objstore.sh: nginx is missing: scripts/install-deps.sh" >&2; exit 2; }
for t in wrk strace cc openssl; do
  command -v $t >/dev/null || { echo "objstore.sh: $t is missing: scripts/install-deps.sh" >&2; exit 2; }
done

work=$(mktemp -d -t cumulo-objbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pin_server=(); pin_load=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin_server=(taskset -c 0); pin_load=(taskset -c 1); fi

s3_port=$(free_port); s3c_port=$(free_port); nginx_port=$(free_port)
openssl rand -hex 32 > "$work/key"
# One worker, as nginx gets one; builds from before `workers` existed run one loop anyway.
workers_line="workers: 1"
printf 'listen: 127.0.0.1:1\ndata_dir: %s/probe\nmaster_key_file: %s/key\nworkers: 1\nusers: [{name: a, access_key: AKA, secret_key: aaaaaaaa}]\n' \
  "$work" "$work" > "$work/probe.yaml"
"$cumulo" s3 -c "$work/probe.yaml" --check >/dev/null 2>&1 || workers_line=""
store_config() {  # PORT DATA_DIR READ_CACHE_BYTES
  cat <<YAML
listen: 127.0.0.1:$1
data_dir: $2
master_key_file: $work/key
log_level: warn
$workers_line
read_cache: {max_bytes: $3}
users:
  - {name: bench, access_key: AKBENCH, secret_key: bench-secret-key}
buckets:
  - {name: bench, public: true}
YAML
}
store_config "$s3_port" "$work/data" 0 > "$work/s3.yaml"            # read cache off
store_config "$s3c_port" "$work/data-c" 64MiB > "$work/s3c.yaml"   # read cache on (the default)
start_store() {  # CONFIG PORT: the pid in $store_pid
  "${pin_server[@]}" "$cumulo" s3 -c "$1" 2>>"$work/s3.log" &
  store_pid=$!
  pids+=($store_pid)
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$2) 2>/dev/null && return 0; sleep 0.05; done
  echo "objstore.sh: the store did not start:"; tail "$work/s3.log"; exit 1
}
start_store "$work/s3.yaml" "$s3_port"; s3_pid=$store_pid
start_store "$work/s3c.yaml" "$s3c_port"; s3c_pid=$store_pid

# A SigV4 signer for the few requests this script makes (stdlib only).
cat > "$work/s3req.py" <<'PY'
import datetime, hashlib, hmac, http.client, sys
def sign(method, path, port, payload_hash="UNSIGNED-PAYLOAD", query=""):
    now = datetime.datetime.utcnow()
    amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    host = f"127.0.0.1:{port}"
    creq = "\n".join([method, path, query, f"host:{host}", f"x-amz-content-sha256:{payload_hash}",
                      f"x-amz-date:{amz}", "", "host;x-amz-content-sha256;x-amz-date", payload_hash])
    scope = f"{day}/us-east-1/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = b"AWS4bench-secret-key"
    for part in (day, "us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return {"x-amz-content-sha256": payload_hash, "x-amz-date": amz,
            "Authorization": f"AWS4-HMAC-SHA256 Credential=AKBENCH/{scope}, "
                             f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}"}
def request(method, path, port, body=b"", query=""):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, path + ("?" + query if query else ""), body=body, headers=sign(method, path, port, query=query))
    r = c.getresponse()
    data = r.read()
    if r.status >= 300: raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return data
if __name__ == "__main__":
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "put":  # put PATH FILE
        request("PUT", sys.argv[3], port, open(sys.argv[4], "rb").read())
    elif cmd == "headers":  # headers PATH: a signed PUT's headers as a wrk Lua table body
        for k, v in sign("PUT", sys.argv[3], port).items(): print(f'wrk.headers["{k}"] = "{v}"')
    elif cmd == "list":  # list BUCKET: pages through every key, prints the count
        import re, time
        token, n, t0 = None, 0, time.monotonic()
        while True:
            q = "list-type=2&max-keys=1000" + (f"&continuation-token={token}" if token else "")
            q = "&".join(sorted(q.split("&")))
            body = request("GET", "/" + sys.argv[3], port, query=q).decode()
            n += body.count("<Contents>")
            m = re.search(r"<NextContinuationToken>([^<]*)<", body)
            if not m: break
            token = m.group(1)
        print(n, f"{time.monotonic() - t0:.3f}")
PY

mkdir -p "$work/www/bench"
# nginx's workers run as an unprivileged user: they must be able to read the files.
chmod 755 "$work"
head -c 4096 /dev/urandom > "$work/www/bench/obj-4k"
head -c 1048576 /dev/urandom > "$work/www/bench/obj-1m"
for port in "$s3_port" "$s3c_port"; do
  python3 "$work/s3req.py" put "$port" /bench/obj-4k "$work/www/bench/obj-4k"
  python3 "$work/s3req.py" put "$port" /bench/obj-1m "$work/www/bench/obj-1m"
done
chmod -R a+rX "$work/www"

cat > "$work/nginx.conf" <<NGX
worker_processes 1;
daemon off;
error_log $work/nginx-error.log warn;
pid $work/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  open_file_cache max=1000 inactive=60s;
  open_file_cache_valid 60s;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$nginx_port; root $work/www; }
}
NGX
"${pin_server[@]}" "$nginx_bin" -c "$work/nginx.conf" -p "$work" 2>>"$work/nginx-error.log" &
nginx_pid=$!
pids+=($nginx_pid)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$nginx_port) 2>/dev/null && break; sleep 0.05; done

hz=$(getconf CLK_TCK)
tree_pids() { local p=$1 c; echo "$p"; for c in $(pgrep -P "$p" 2>/dev/null); do tree_pids "$c"; done; }
cpu_ticks() { local s=0 p t; for p in $(tree_pids "$1"); do t=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | awk '{print $12+$13}'); s=$((s + ${t:-0})); done; echo $s; }
# measure PID URL [wrk args...]: prints "req/s cpu_us_per_req"; an error answer makes the numbers meaningless.
measure() {
  local pid=$1 url=$2; shift 2
  local out t0 t1
  "${pin_load[@]}" wrk -t1 -c"$conns" -d1s "$@" "$url" >/dev/null  # warm-up
  t0=$(cpu_ticks "$pid")
  out=$("${pin_load[@]}" wrk -t1 -c"$conns" -d"${duration}s" "$@" "$url")
  t1=$(cpu_ticks "$pid")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "objstore.sh: $url answered with errors:" >&2; echo "$out" >&2; curl -sS -i "$url" | head -20 >&2; exit 1
  fi
  local reqs rps
  reqs=$(awk '/requests in/ {print $1}' <<<"$out"); rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  awk -v r="$rps" -v n="$reqs" -v c="$(( (t1 - t0) * 1000000 / hz ))" 'BEGIN { printf "%.0f %.1f\n", r, (n > 0 ? c / n : 0) }'
}
ratio() { python3 -c "print(f'{$1/$2:.2f}x' if '$1' != '-' and $2 > 0 else 'n/a')" 2>/dev/null || echo n/a; }

g4_rps=-; g4_cpu=-; g4c_rps=-; g4c_cpu=-; g4n_rps=-; g4n_cpu=-; g1_rps=-; g1_cpu=-; g1c_rps=-; g1c_cpu=-
g1n_rps=-; g1n_cpu=-; gcm_us_per_mib=-; put_rps=-; put_cpu=-; put_raw=-; fsyncs_per_put=-; listed=-; list_s=-
if [ "$only" != put ]; then
read -r g4_rps g4_cpu < <(measure "$s3_pid" "http://127.0.0.1:$s3_port/bench/obj-4k")
read -r g4c_rps g4c_cpu < <(measure "$s3c_pid" "http://127.0.0.1:$s3c_port/bench/obj-4k")
read -r g4n_rps g4n_cpu < <(measure "$nginx_pid" "http://127.0.0.1:$nginx_port/bench/obj-4k")
read -r g1_rps g1_cpu < <(measure "$s3_pid" "http://127.0.0.1:$s3_port/bench/obj-1m")
read -r g1c_rps g1c_cpu < <(measure "$s3c_pid" "http://127.0.0.1:$s3c_port/bench/obj-1m")
read -r g1n_rps g1n_cpu < <(measure "$nginx_pid" "http://127.0.0.1:$nginx_port/bench/obj-1m")
# AES-256-GCM on this CPU, in microseconds per MiB (64 KiB blocks: the store's frames are of that order).
gcm_us_per_mib=$("${pin_server[@]}" openssl speed -seconds 2 -bytes 65536 -evp aes-256-gcm 2>/dev/null |
  awk '/^AES-256-GCM|^aes-256-gcm/ {v=$NF; sub(/k$/, "", v); printf "%.0f", 1048576 / (v * 1000) * 1e6}')

fi

if [ "$only" != get ]; then
# PUT: one signed request replayed (UNSIGNED-PAYLOAD, within the clock-skew window), overwriting one key.
{
  echo 'wrk.method = "PUT"'
  echo "wrk.body = string.rep(\"x\", 4096)"
  python3 "$work/s3req.py" headers "$s3_port" /bench/put-4k
} > "$work/put.lua"
# The fsyncs of a PUT, counted: strace on every thread of the store for a short run.
strace -f -qq -c -e trace=fsync,fdatasync,sync_file_range -o "$work/strace.out" -p "$s3_pid" &
strace_pid=$!
sleep 1
puts=$("${pin_load[@]}" wrk -t1 -c"$conns" -d3s -s "$work/put.lua" "http://127.0.0.1:$s3_port/bench/put-4k" |
  awk '/requests in/ {print $1}')
kill -INT "$strace_pid"; wait "$strace_pid" 2>/dev/null || true
syncs=$(awk '$NF ~ /^(fsync|fdatasync|sync_file_range)$/ {n += $4} END {print n + 0}' "$work/strace.out")
fsyncs_per_put=$(awk -v s="$syncs" -v p="$puts" 'BEGIN { printf "%.2f", (p > 0 ? s / p : 0) }')

# The raw loop: in C, as many threads as wrk has connections, each creating a new 4 KiB file in one of 256
# directories, fsync, fsync of that directory, then unlinking the file its previous object replaced: what the
# store does per PUT (its index row publishes the file, so it is created in place), without the index.
cat > "$work/rawput.c" <<'C'
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
static const char* dir; static double stop_at; static long done[4096];
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static void* run(void* arg) {
  long t = (long)arg, i = 0; char data[4096], dst[512], prev[512] = "", sub[512];
  memset(data, 'x', sizeof data);
  while (now() < stop_at) {
    snprintf(sub, sizeof sub, "%s/objects/%02lx", dir, (t * 7919 + i) & 255);
    snprintf(dst, sizeof dst, "%s/f%ld-%ld", sub, t, i);
    int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, sizeof data) != (ssize_t)sizeof data || fsync(fd) != 0) { perror("raw"); exit(1); }
    close(fd);
    int dfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) { perror("dir"); exit(1); }
    close(dfd);
    if (prev[0] && unlink(prev) != 0) { perror("unlink"); exit(1); }
    memcpy(prev, dst, sizeof prev);
    ++i;
  }
  if (prev[0]) unlink(prev);
  done[t] = i;
  return NULL;
}
int main(int argc, char** argv) {
  dir = argv[1]; int threads = atoi(argv[2]); double dur = atof(argv[3]);
  char p[512]; snprintf(p, sizeof p, "%s/objects", dir); mkdir(p, 0700);
  for (int i = 0; i < 256; ++i) { snprintf(p, sizeof p, "%s/objects/%02x", dir, i); mkdir(p, 0700); }
  pthread_t th[4096]; stop_at = now() + dur;
  for (long t = 0; t < threads; ++t) pthread_create(&th[t], NULL, run, (void*)t);
  long total = 0;
  for (long t = 0; t < threads; ++t) { pthread_join(th[t], NULL); total += done[t]; }
  printf("%.0f\n", total / dur);
  return 0;
}
C
cc -O2 -pthread -o "$work/rawput" "$work/rawput.c"
mkdir -p "$work/raw"
# This disk's fsync latency drifts between runs more than anything measured here, so the store and the raw loop
# alternate in rounds (store first in odd rounds, the raw loop first in even ones) and each round gives one
# ratio; the table shows the median of the rounds' ratios and their range.
put_ratios=(); put_store=(); put_raws=(); put_cpus=()
for r in $(seq "$put_rounds"); do
  if [ $((r % 2)) -eq 1 ]; then
    read -r s_rps s_cpu < <(measure "$s3_pid" "http://127.0.0.1:$s3_port/bench/put-4k" -s "$work/put.lua")
    r_rps=$("${pin_server[@]}" "$work/rawput" "$work/raw" "$conns" "$duration")
  else
    r_rps=$("${pin_server[@]}" "$work/rawput" "$work/raw" "$conns" "$duration")
    read -r s_rps s_cpu < <(measure "$s3_pid" "http://127.0.0.1:$s3_port/bench/put-4k" -s "$work/put.lua")
  fi
  put_store+=("$s_rps"); put_raws+=("$r_rps"); put_cpus+=("$s_cpu")
  put_ratios+=("$(python3 -c "print(f'{$s_rps/$r_rps:.2f}' if $r_rps > 0 else 0)")")
  echo "objstore.sh: PUT round $r: store $s_rps objects/s (CPU $s_cpu us), raw loop $r_rps objects/s" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
put_rps=$(median "${put_store[@]}"); put_raw=$(median "${put_raws[@]}"); put_cpu=$(median "${put_cpus[@]}")
put_ratio="median $(median "${put_ratios[@]}")x of $put_rounds rounds ($(printf '%s\n' "${put_ratios[@]}" | sort -g | head -1)x-$(printf '%s\n' "${put_ratios[@]}" | sort -g | tail -1)x)"
fi

# Listing: 100k keys seeded straight into the index (rows sharing one object's data), then paged through.
if [ "$only" = all ]; then
kill "$s3_pid"; wait "$s3_pid" 2>/dev/null || true
python3 - "$work/data/index.sqlite" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
row = db.execute("SELECT size, etag, mtime_ms, content_type, headers, segments FROM objects "
                 "WHERE bucket='bench' AND key='obj-4k'").fetchone()
db.executemany("INSERT OR REPLACE INTO objects VALUES('bench', ?, ?, ?, ?, ?, ?, ?)",
               ((f"list/{i // 1000:03d}/{i:06d}", *row) for i in range(100000)))
db.commit()
PY
start_store "$work/s3.yaml" "$s3_port"
read -r listed list_s < <(python3 "$work/s3req.py" list "$s3_port" bench)
fi

cat <<MD
| test | cumulo s3 CPU us/req (req/s) | nginx or raw loop | ratio (CPU/req; < 1 is less CPU) |
|---|---|---|---|
| GET 4 KiB, read cache off ($conns conns) | $g4_cpu ($g4_rps) | nginx $g4n_cpu ($g4n_rps) | $(ratio "$g4_cpu" "$g4n_cpu") |
| GET 4 KiB, read cache on | $g4c_cpu ($g4c_rps) | nginx $g4n_cpu ($g4n_rps) | $(ratio "$g4c_cpu" "$g4n_cpu") |
| GET 1 MiB, read cache off | $g1_cpu ($g1_rps) | nginx $g1n_cpu ($g1n_rps) | $(ratio "$g1_cpu" "$g1n_cpu"); AES-256-GCM costs $gcm_us_per_mib us/MiB here |
| GET 1 MiB, read cache on | $g1c_cpu ($g1c_rps) | nginx $g1n_cpu ($g1n_rps) | $(ratio "$g1c_cpu" "$g1n_cpu") |
| PUT 4 KiB, objects/s ($conns conns; $fsyncs_per_put fsyncs per PUT; medians) | $put_rps (CPU $put_cpu us) | raw C loop, $conns threads, 2 fsyncs per object: $put_raw | ${put_ratio:-n/a} objects/s |
| list $listed keys (s, pages of 1000) | $list_s | | |
MD
