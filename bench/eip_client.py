#!/usr/bin/python3
"""Load client and analyzer for elastic IP failover benchmarks (bench/eip-keepalived.sh and its cumulo twin).

Load mode, meant to run inside a network namespace against one stable address:

  ip netns exec NS /usr/bin/python3 bench/eip_client.py --url http://192.0.2.100:80/ --duration 10 \
      --out run.jsonl [--concurrency 4] [--interval-ms 5] [--timeout 2] [--id-header cumulo-gateway]
      [--rate REQUESTS_PER_SECOND]

Each of the --concurrency threads sends GET requests one after another, each on a NEW TCP connection
(Connection: close), pausing --interval-ms between them, so that every request finds out afresh who holds the
address: a kept-alive connection would stay on its old holder, or die with it, and hide the move. Every request
is one JSON line in --out:

  {"sent": 1765148400.123456, "done": 1765148400.125012, "thread": 0, "status": 200, "id": "gateway-a web=7"}
  {"sent": 1765148401.004100, "done": 1765148403.004380, "thread": 2, "error": "timeout"}

With --rate R the client runs an open loop instead: one thread starts a request every 1/R seconds on a
non-blocking socket, however many are still in flight (each record then has "seq" instead of "thread"). A failover
bench wants this one: in a closed loop all the threads soon wait on the dead holder (a SYN retransmitted after
1 s, a stopped server's silence until --timeout) and send nothing meanwhile, so the gap comes out rounded up to
those timers rather than to when the address moved.

sent is the wall clock (time.time()) just before connect(), done when the response was complete or the request
failed. id is the value of the --id-header header, or the first line of the body when the header is absent (so a
plain server can say who it is). error is one of: refused, reset, connect-timeout, timeout (after connecting),
unreachable, net-unreachable, closed (the server closed before a whole response), bad-response, or the lower-case
errno name of anything else. A response is successful when its status is 2xx or 3xx; any other status is a
failure with that status. The client stops after --duration or on SIGTERM/SIGINT, lets requests in flight end
(at most --timeout), flushes the file and prints counts to stderr.

Analysis mode:

  /usr/bin/python3 bench/eip_client.py --analyze run.jsonl --faults faults.txt [--json]

The faults file has one line per event, "TIME KIND [MOVED_AT]" (wall-clock seconds; '#' starts a comment):
TIME is when the fault was injected (kind: kill, stop, cont, ...), MOVED_AT, when known, when the address was
seen on its new holder. Requests are attributed to the last event at or before their send time, except a failed
one that failed after the next event: that event cut it, and counts it as in flight. Per event:

  gap                  from TIME to the earliest finish of a successful request sent at or after TIME: how long
                       new requests went unanswered (the client's outage)
  failed before move   failed requests sent from TIME to MOVED_AT
  failed after move    failed requests sent from MOVED_AT on (before the next event): must be 0 for a correct
                       system, once the address has moved every new connection should reach the new holder
  in flight            requests sent before TIME that failed after it (connections the fault cut)
  slowest ok           the longest successful request sent from TIME on (before the next event): a request that
                       waited for the move (a retransmitted SYN) succeeds late rather than fails

Overlap check: successful responses ordered by finish time. When ids carry a term (a last token NAME=NUMBER,
as in "gateway-a web=7"), a response whose term is lower than the highest term already seen is an overlap, and so
is a response from another holder with the same term. Without terms, a holder that answered before another one
took over (an earlier holder) is an overlap when it answers again with no event in between; after an event (a
fault, or a cont that lets a stopped holder take the address back) it may legitimately hold the address again.
An overlap is "certain" when its request was sent after the newer holder's response had finished: that request
reached the old holder although the new one was already answering (two holders at once), whereas otherwise it
may have been accepted just before the move.
"""

import argparse
import bisect
import errno
import json
import math
import os
import re
import resource
import selectors
import signal
import socket
import sys
import threading
import time
import urllib.parse

# ---------------------------------------------------------------- load


def parse_url(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise SystemExit(f"eip_client: --url must be http://ADDRESS[:PORT]/PATH, not {url!r}")
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    host_header = u.netloc
    return u.hostname, u.port or 80, path, host_header


def classify(exc, connected):
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout" if connected else "connect-timeout"
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno == errno.EHOSTUNREACH:
            return "unreachable"
        if exc.errno == errno.ENETUNREACH:
            return "net-unreachable"
        if exc.errno == errno.ETIMEDOUT:
            return "timeout" if connected else "connect-timeout"
        return errno.errorcode.get(exc.errno, str(exc.errno)).lower()
    return type(exc).__name__.lower()


def parse_response(data, id_header):
    """Returns (status, id) of a whole response or raises ValueError."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no end of header")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError("bad status line")
    status = int(parts[1])
    ident = None
    length = None
    want = id_header.lower().encode()
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        name = name.strip().lower()
        if name == want and ident is None:
            ident = value.strip().decode("latin-1")
        elif name == b"content-length":
            length = int(value.strip())
    if length is not None and len(body) < length:
        raise ValueError("short body")
    if ident is None:
        first = body.split(b"\n", 1)[0].strip()
        ident = first[:200].decode("utf-8", "replace")
    return status, ident


def one_request(addr, port, request, timeout, id_header, thread):
    rec = {"sent": None, "done": None, "thread": thread}
    connected = False
    sock = None
    start = time.time()
    rec["sent"] = round(start, 6)
    deadline = time.monotonic() + timeout
    data = b""
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect((addr, port))
        connected = True
        rec["connected"] = round(time.time(), 6)
        sock.sendall(request)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > 1 << 20:
                raise ValueError("response over 1 MiB")
        status, ident = parse_response(data, id_header)
        rec["status"] = status
        rec["id"] = ident
    except ValueError:
        rec["error"] = "closed" if b"\r\n\r\n" not in data else "bad-response"
    except socket.timeout as exc:
        # A server that sent a whole response but did not close still answered.
        try:
            rec["status"], rec["id"] = parse_response(data, id_header)
        except ValueError:
            rec["error"] = classify(exc, connected)
    except OSError as exc:
        rec["error"] = classify(exc, connected)
    finally:
        if sock is not None:
            sock.close()
    rec["done"] = round(time.time(), 6)
    return rec


class OpenLoop:
    """--rate: a new request every 1/rate seconds whatever the ones before it are doing, all in one thread on
    non-blocking sockets. In a closed loop every thread ends up waiting on the dead holder (a SYN retransmitted
    after 1 s, a stopped server's silence until --timeout), and nothing is sent until one of them gives up, so
    the measured gap is rounded up to those timers; an open loop keeps sending, and the first request that finds
    the new holder ends the gap."""

    def __init__(self, addr, port, request, timeout, id_header, emit):
        self.addr, self.port, self.request = addr, port, request
        self.timeout, self.id_header, self.emit = timeout, id_header, emit
        self.sel = selectors.DefaultSelector()
        self.inflight = {}  # socket -> state dict
        self.seq = 0

    def start(self):
        rec = {"sent": None, "done": None, "seq": self.seq}
        self.seq += 1
        sock = socket.socket(socket.AF_INET6 if ":" in self.addr else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        rec["sent"] = round(time.time(), 6)
        st = {"rec": rec, "deadline": time.monotonic() + self.timeout, "connected": False, "data": b"",
              "out": self.request}
        err = sock.connect_ex((self.addr, self.port))
        if err not in (0, errno.EINPROGRESS):
            self.finish(sock, st, OSError(err, os.strerror(err)), registered=False)
            return
        self.inflight[sock] = st
        self.sel.register(sock, selectors.EVENT_WRITE, st)

    def finish(self, sock, st, exc=None, registered=True):
        rec = st["rec"]
        if exc is None:
            try:
                rec["status"], rec["id"] = parse_response(st["data"], self.id_header)
            except ValueError:
                rec["error"] = "closed" if b"\r\n\r\n" not in st["data"] else "bad-response"
        elif isinstance(exc, socket.timeout):
            try:
                rec["status"], rec["id"] = parse_response(st["data"], self.id_header)
            except ValueError:
                rec["error"] = classify(exc, st["connected"])
        else:
            rec["error"] = classify(exc, st["connected"])
        if registered:
            self.sel.unregister(sock)
            del self.inflight[sock]
        sock.close()
        rec["done"] = round(time.time(), 6)
        self.emit(rec)

    def on_event(self, sock, st):
        try:
            if not st["connected"]:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, os.strerror(err))
                st["connected"] = True
                st["rec"]["connected"] = round(time.time(), 6)
            if st["out"]:
                st["out"] = st["out"][sock.send(st["out"]):]
                if not st["out"]:
                    self.sel.modify(sock, selectors.EVENT_READ, st)
                return
            chunk = sock.recv(65536)
            if chunk:
                st["data"] += chunk
                if len(st["data"]) > 1 << 20:
                    self.finish(sock, st, ValueError("response over 1 MiB"))
                return
            self.finish(sock, st)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.finish(sock, st, exc)

    def run(self, rate, stop, end):
        period = 1.0 / rate
        next_start = time.monotonic()
        while True:
            now = time.monotonic()
            sending = not stop.is_set() and now < end
            if sending:
                if now - next_start > 1.0:  # far behind (the machine stalled): do not burst to catch up
                    next_start = now
                while next_start <= now:
                    self.start()
                    next_start += period
            elif not self.inflight:
                return
            for sock, st in list(self.inflight.items()):
                if now >= st["deadline"]:
                    self.finish(sock, st, socket.timeout())
            wake = [st["deadline"] for st in self.inflight.values()]
            if sending:
                wake.append(next_start)
            wait = max(0.0, min(wake) - time.monotonic()) if wake else 0.05
            for key, _ in self.sel.select(min(wait, 0.05)):
                if key.fileobj in self.inflight:
                    self.on_event(key.fileobj, key.data)


def run_load(args):
    addr, port, path, host_header = parse_url(args.url)
    request = (f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: eip_client\r\n"
               f"Connection: close\r\n\r\n").encode()
    stop = threading.Event()
    lock = threading.Lock()
    out = open(args.out, "w", buffering=1 << 16)
    counts = {}

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def worker(i):
        pause = args.interval_ms / 1000.0
        while not stop.is_set():
            rec = one_request(addr, port, request, args.timeout, args.id_header, i)
            line = json.dumps(rec, separators=(",", ":")) + "\n"
            key = rec.get("error") or str(rec.get("status"))
            with lock:
                out.write(line)
                counts[key] = counts.get(key, 0) + 1
            if pause > 0:
                stop.wait(pause)

    end = time.monotonic() + args.duration if args.duration else math.inf
    if args.rate:
        # Up to rate x timeout sockets are open at once while the holder is silent.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

        def emit(rec):
            key = rec.get("error") or str(rec.get("status"))
            with lock:
                out.write(json.dumps(rec, separators=(",", ":")) + "\n")
                counts[key] = counts.get(key, 0) + 1

        loop = OpenLoop(addr, port, request, args.timeout, args.id_header, emit)
        threads = [threading.Thread(target=loop.run, args=(args.rate, stop, end), daemon=True)]
    else:
        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.concurrency)]
    for t in threads:
        t.start()
    while not stop.is_set():
        left = end - time.monotonic()
        if left <= 0:
            break
        stop.wait(min(left, 0.5))
        with lock:
            out.flush()
    stop.set()
    for t in threads:
        t.join(args.timeout + 1)
    with lock:
        out.flush()
        out.close()
        total = sum(counts.values())
        parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    print(f"eip_client: {total} requests to {args.url}: {parts or 'none'}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- analysis

TERM_RE = re.compile(r"(?:^|\s)[^\s=]+=(\d+)\s*$")


def is_ok(rec):
    s = rec.get("status")
    return s is not None and 200 <= s < 400


def split_term(ident):
    """'gateway-a web=7' -> ('gateway-a', 7); 'gateway-a' -> ('gateway-a', None)."""
    m = TERM_RE.search(ident or "")
    if not m:
        return ident, None
    return ident[:m.start()].strip(), int(m.group(1))


def failure_kind(rec):
    return rec.get("error") or f"status {rec.get('status')}"


def load_records(path):
    recs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
                float(rec["sent"]), float(rec["done"])
            except (ValueError, KeyError, TypeError) as exc:
                raise SystemExit(f"eip_client: {path}:{n}: not a request record ({exc}): {line[:80]}")
            recs.append(rec)
    return recs


def load_faults(path):
    faults = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) not in (2, 3):
                raise SystemExit(f"eip_client: {path}:{n}: expected 'TIME KIND [MOVED_AT]', got {line!r}")
            try:
                t = float(parts[0])
                moved = float(parts[2]) if len(parts) == 3 and parts[2] != "-" else None
            except ValueError:
                raise SystemExit(f"eip_client: {path}:{n}: TIME and MOVED_AT are seconds since the epoch: {line!r}")
            faults.append({"time": t, "kind": parts[1], "moved_at": moved})
    faults.sort(key=lambda x: x["time"])
    return faults


def find_overlaps(recs, event_times):
    """Successful responses by finish time; see the module's docstring for what counts as an overlap."""
    oks = sorted((r for r in recs if is_ok(r)), key=lambda r: r["done"])
    overlaps = []
    events = sorted(event_times)

    def event_between(a, b):
        i = bisect.bisect_right(events, a)
        return i < len(events) and events[i] <= b

    # With terms: the highest term seen so far, its holder and the first response that carried it.
    top = None  # (term, holder, rec)
    # Without terms: the current holder, its first response, and when each earlier holder was superseded.
    current = None  # (holder, rec)
    superseded = {}  # holder -> (time, rec of the holder that superseded it)
    for r in oks:
        holder, term = split_term(r.get("id"))
        if term is not None:
            if top is None or term > top[0]:
                top = (term, holder, r)
                continue
            if term < top[0] or holder != top[1]:
                newer = top[2]
                overlaps.append(overlap_entry(r, newer, "lower term" if term < top[0] else "same term, other holder"))
            continue
        if current is None:
            current = (holder, r)
            continue
        if holder == current[0]:
            continue
        if holder in superseded and not event_between(superseded[holder][0], r["done"]):
            overlaps.append(overlap_entry(r, superseded[holder][1], "earlier holder"))
            continue
        superseded[current[0]] = (r["done"], r)
        superseded.pop(holder, None)
        current = (holder, r)
    return overlaps


def overlap_entry(rec, newer, why):
    return {
        "sent": rec["sent"],
        "done": rec["done"],
        "id": rec.get("id"),
        "newer_id": newer.get("id"),
        "newer_done": newer["done"],
        "why": why,
        "certain": rec["sent"] > newer["done"],
    }


def analyze(recs, faults):
    recs = sorted(recs, key=lambda r: r["sent"])
    sent = [r["sent"] for r in recs]
    ok = [r for r in recs if is_ok(r)]
    failed = [r for r in recs if not is_ok(r)]
    summary = {
        "requests": len(recs),
        "ok": len(ok),
        "failed": len(failed),
        "first_sent": recs[0]["sent"] if recs else None,
        "last_done": max((r["done"] for r in recs), default=None),
        "failures": count_by(failed, failure_kind),
        "ids": count_by(ok, lambda r: r.get("id")),
        "faults": [],
    }
    overlaps = find_overlaps(recs, [f["time"] for f in faults])
    for i, f in enumerate(faults):
        t, moved = f["time"], f["moved_at"]
        nxt = faults[i + 1]["time"] if i + 1 < len(faults) else math.inf
        window = recs[bisect.bisect_left(sent, t):bisect.bisect_left(sent, nxt)]
        oks = [r for r in window if is_ok(r)]
        first = min(oks, key=lambda r: r["done"]) if oks else None
        # A request sent just before the next event and failed after it was cut by that event: it is counted there,
        # as in flight, not here as well.
        bad = [r for r in window if not is_ok(r) and r["done"] < nxt]
        in_flight = [r for r in recs[:bisect.bisect_left(sent, t)] if not is_ok(r) and r["done"] >= t]
        entry = {
            "time": t,
            "kind": f["kind"],
            "moved_at": moved,
            "moved_after": None if moved is None else round(moved - t, 6),
            "gap": None if first is None else round(first["done"] - t, 6),
            "first_ok_id": None if first is None else first.get("id"),
            "requests": len(window),
            "failed": len(bad),
            "failed_before_move": None if moved is None else sum(1 for r in bad if r["sent"] < moved),
            "failed_after_move": None if moved is None else sum(1 for r in bad if r["sent"] >= moved),
            "failed_in_flight": len(in_flight),
            "slowest_ok": max((round(r["done"] - r["sent"], 6) for r in oks), default=None),
            "failures": count_by(bad + in_flight, failure_kind),
            "last_failure_sent": max((r["sent"] for r in bad), default=None),
            "overlaps": sum(1 for o in overlaps if t <= o["done"] < nxt),
        }
        summary["faults"].append(entry)
    summary["overlaps"] = overlaps
    summary["overlap_count"] = len(overlaps)
    summary["overlap_certain"] = sum(1 for o in overlaps if o["certain"])
    return summary


def count_by(recs, key):
    out = {}
    for r in recs:
        k = key(r)
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def fmt_time(t):
    return time.strftime("%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}"


def fmt_s(x):
    return "-" if x is None else f"{x:.3f} s"


def fmt_counts(d):
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"


def print_table(s, out=sys.stdout):
    rows = [("#", "time (UTC)", "kind", "moved after", "gap", "failed before move", "failed after move", "in flight",
             "slowest ok", "first ok from", "failures")]
    for i, f in enumerate(s["faults"], 1):
        rows.append((str(i), fmt_time(f["time"]), f["kind"], fmt_s(f["moved_after"]),
                     fmt_s(f["gap"]) if f["gap"] is not None else "no success",
                     "-" if f["failed_before_move"] is None else str(f["failed_before_move"]),
                     "-" if f["failed_after_move"] is None else str(f["failed_after_move"]), str(f["failed_in_flight"]),
                     fmt_s(f["slowest_ok"]), f["first_ok_id"] or "-", fmt_counts(f["failures"])))
    if len(rows) > 1:
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        for r in rows:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip(), file=out)
    print(f"requests {s['requests']}: ok {s['ok']}, failed {s['failed']} ({fmt_counts(s['failures'])})", file=out)
    print(f"answered by: {fmt_counts(s['ids'])}", file=out)
    if not s["overlaps"]:
        print("overlaps: none", file=out)
        return
    print(f"overlaps: {s['overlap_count']} ({s['overlap_certain']} certain: sent after the newer holder had answered)",
          file=out)
    for o in s["overlaps"][:10]:
        print(f"  {fmt_time(o['done'])} {o['id']!r} ({o['why']}; sent {fmt_time(o['sent'])}) after {o['newer_id']!r}"
              f" answered at {fmt_time(o['newer_done'])}{' [certain]' if o['certain'] else ''}", file=out)
    if len(s["overlaps"]) > 10:
        print(f"  ... {len(s['overlaps']) - 10} more", file=out)


def run_analyze(args):
    recs = load_records(args.analyze)
    faults = load_faults(args.faults) if args.faults else []
    s = analyze(recs, faults)
    if args.json:
        json.dump(s, sys.stdout, indent=1)
        print()
    else:
        print_table(s)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description="Elastic IP failover: load client (one connection per request) "
                                "and analyzer. See the module docstring for the record and faults formats.")
    p.add_argument("--url", help="http://ADDRESS[:PORT]/PATH to load")
    p.add_argument("--duration", type=float, default=0, help="seconds to run (default: until SIGTERM/SIGINT)")
    p.add_argument("--concurrency", type=int, default=4, help="threads, each one request at a time (4)")
    p.add_argument("--interval-ms", type=float, default=5, help="pause between a thread's requests (5)")
    p.add_argument("--rate", type=float, default=0,
                   help="open loop: start a request every 1/RATE s, whatever is in flight (one thread; "
                   "--concurrency and --interval-ms are then unused)")
    p.add_argument("--timeout", type=float, default=2, help="seconds a request may take in all (2)")
    p.add_argument("--id-header", default="cumulo-gateway", help="response header naming the holder (cumulo-gateway)")
    p.add_argument("--out", help="JSON lines file, one line per request")
    p.add_argument("--analyze", metavar="FILE.jsonl", help="analyze a log instead of loading")
    p.add_argument("--faults", metavar="FILE", help="with --analyze: lines 'TIME KIND [MOVED_AT]'")
    p.add_argument("--json", action="store_true", help="with --analyze: print a JSON summary")
    args = p.parse_args(argv)
    if args.analyze:
        return run_analyze(args)
    if not args.url or not args.out:
        p.error("load mode needs --url and --out (or --analyze FILE)")
    if args.concurrency < 1 or args.timeout <= 0 or args.interval_ms < 0 or args.duration < 0 or args.rate < 0:
        p.error("--concurrency >= 1, --timeout > 0, --interval-ms >= 0, --duration >= 0, --rate >= 0")
    return run_load(args)


if __name__ == "__main__":
    sys.exit(main())
