#!/usr/bin/env bash
# The object store against its peers on this machine, in the same run:
#   GET of a 4 KiB and a 1 MiB object (anonymous, public bucket) vs nginx serving the same files from disk;
#   PUT of 4 KiB objects (SigV4, UNSIGNED-PAYLOAD, one key overwritten) vs a raw write+fsync+rename loop on
#   the same disk; the time to list 100k keys (ListObjectsV2 pages of 1000).
# Prints a Markdown table with ratios (goals from the object store issue: GET >= 0.9x nginx, PUT >= 0.8x raw).
#
#   bench/objstore.sh [--duration S] [--connections N]        defaults: 10 s, 32 connections
#
# Needs: $CUMULO_BUILD/cumulo (default build/release; scripts/build.sh release cumulo), nginx, wrk, python3.
# The store and nginx each get one core (taskset, when there are at least 2); wrk the other.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
duration=10; conns=32
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2;;
    --connections) conns=$2; shift 2;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "objstore.sh: unknown argument $1 (try --help)" >&2; exit 2;;
  esac
done
build=${CUMULO_BUILD:-$repo/build/release}
cumulo=$build/cumulo
[ -x "$cumulo" ] || { echo "objstore.sh: $cumulo is missing: scripts/build.sh release cumulo" >&2; exit 2; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || { echo "objstore.sh: nginx is missing: scripts/install-deps.sh" >&2; exit 2; }
command -v wrk >/dev/null || { echo "objstore.sh: wrk is missing: scripts/install-deps.sh" >&2; exit 2; }

work=$(mktemp -d -t cumulo-objbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pin_server=(); pin_load=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin_server=(taskset -c 0); pin_load=(taskset -c 1); fi

s3_port=$(free_port); nginx_port=$(free_port)
openssl rand -hex 32 > "$work/key"
cat > "$work/s3.yaml" <<YAML
listen: 127.0.0.1:$s3_port
data_dir: $work/data
master_key_file: $work/key
log_level: warn
users:
  - {name: bench, access_key: AKBENCH, secret_key: bench-secret-key}
buckets:
  - {name: bench, public: true}
YAML
start_store() {
  "${pin_server[@]}" "$cumulo" s3 -c "$work/s3.yaml" 2>>"$work/s3.log" &
  pids+=($!)
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$s3_port) 2>/dev/null && return 0; sleep 0.05; done
  echo "objstore.sh: the store did not start:"; tail "$work/s3.log"; exit 1
}
start_store

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
python3 "$work/s3req.py" put "$s3_port" /bench/obj-4k "$work/www/bench/obj-4k"
python3 "$work/s3req.py" put "$s3_port" /bench/obj-1m "$work/www/bench/obj-1m"
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
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$nginx_port; root $work/www; }
}
NGX
"${pin_server[@]}" "$nginx_bin" -c "$work/nginx.conf" -p "$work" 2>>"$work/nginx-error.log" &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$nginx_port) 2>/dev/null && break; sleep 0.05; done

rps() {  # wrk's Requests/sec for URL [extra wrk args...]; an error answer makes the number meaningless
  local url=$1; shift
  local out
  out=$("${pin_load[@]}" wrk -t1 -c"$conns" -d"${duration}s" "$@" "$url")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "objstore.sh: $url answered with errors:" >&2; echo "$out" >&2; curl -sS -i "$url" | head -20 >&2; exit 1
  fi
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}
ratio() { python3 -c "print(f'{$1/$2:.2f}x' if $2 > 0 else 'n/a')"; }

get4_s3=$(rps "http://127.0.0.1:$s3_port/bench/obj-4k"); get4_ng=$(rps "http://127.0.0.1:$nginx_port/bench/obj-4k")
get1_s3=$(rps "http://127.0.0.1:$s3_port/bench/obj-1m"); get1_ng=$(rps "http://127.0.0.1:$nginx_port/bench/obj-1m")

# PUT: one signed request replayed (UNSIGNED-PAYLOAD, within the clock-skew window), overwriting one key.
{
  echo 'wrk.method = "PUT"'
  echo "wrk.body = string.rep(\"x\", 4096)"
  python3 "$work/s3req.py" headers "$s3_port" /bench/put-4k
} > "$work/put.lua"
put_s3=$(rps "http://127.0.0.1:$s3_port/bench/put-4k" -s "$work/put.lua")
# The raw loop: as many writers as connections would be unfair to the disk either way; it gets 4 threads, and
# the store's core (as nginx does for the GETs), so that both sides have the same CPU in front of the same disk.
put_raw=$("${pin_server[@]}" python3 - "$work/data" "$duration" <<'PY'
import os, sys, threading, time
d, dur = sys.argv[1] + "/rawbench", float(sys.argv[2])
os.makedirs(d, exist_ok=True)
data, count, stop = os.urandom(4096), [0], time.monotonic() + dur
def run(t):
    i = 0
    while time.monotonic() < stop:
        tmp, dst = f"{d}/t{t}-{i}", f"{d}/f{t}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, data); os.fsync(fd); os.close(fd)
        os.rename(tmp, dst)
        dfd = os.open(d, os.O_RDONLY); os.fsync(dfd); os.close(dfd)
        i += 1
    count[0] += i
ts = [threading.Thread(target=run, args=(t,)) for t in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(f"{count[0] / dur:.1f}")
PY
)

# Listing: 100k keys seeded straight into the index (rows sharing one object's data), then paged through.
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
python3 - "$work/data/index.sqlite" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
row = db.execute("SELECT size, etag, mtime_ms, content_type, headers, segments FROM objects "
                 "WHERE bucket='bench' AND key='obj-4k'").fetchone()
db.executemany("INSERT OR REPLACE INTO objects VALUES('bench', ?, ?, ?, ?, ?, ?, ?)",
               ((f"list/{i // 1000:03d}/{i:06d}", *row) for i in range(100000)))
db.commit()
PY
start_store
read -r listed list_s < <(python3 "$work/s3req.py" list "$s3_port" bench)

cat <<MD
| test | cumulo s3 | peer | ratio | goal |
|---|---|---|---|---|
| GET 4 KiB (req/s, $conns conns) | $get4_s3 | nginx $get4_ng | $(ratio "$get4_s3" "$get4_ng") | >= 0.9x |
| GET 1 MiB (req/s, $conns conns) | $get1_s3 | nginx $get1_ng | $(ratio "$get1_s3" "$get1_ng") | >= 0.9x |
| PUT 4 KiB (objects/s) | $put_s3 | write+fsync+rename $put_raw | $(ratio "$put_s3" "$put_raw") | >= 0.8x |
| list $listed keys (s, pages of 1000) | $list_s | | | |
MD
