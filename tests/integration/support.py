"""Helpers for the gateway integration tests: processes, ports, generated configs, raw HTTP, wrk, fake upstreams.

Everything here talks to 127.0.0.1 only, asks the kernel for free ports and stops what it started by PID.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
LOCALHOST = "127.0.0.1"
MISSING_TOOLS = "apt-get install -y curl wrk"


# ---------------------------------------------------------------------------------------------------------------
# binaries and tools


def build_dir() -> Path:
    d = Path(os.environ.get("CUMULO_BUILD", "build/release"))
    return d if d.is_absolute() else REPO / d


def binary(name: str) -> Path:
    path = build_dir() / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"{path} is missing: build it with `scripts/build.sh release cumulo cumulo-webapp` "
            f"(or point CUMULO_BUILD at a build directory that has it)",
            pytrace=False,
        )
    return path


def tool(name: str, package: str | None = None) -> str:
    """A client program the tests need; its absence fails the test (it is part of the test set-up, not optional)."""
    path = shutil.which(name)
    if not path:
        fix = f"apt-get install -y {package}" if package else MISSING_TOOLS
        pytest.fail(f"{name} is missing: {fix}", pytrace=False)
    return path


# ---------------------------------------------------------------------------------------------------------------
# ports


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A port nothing listens on (the kernel just handed it out and it was released)."""
    return free_port()


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((LOCALHOST, port)) == 0


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


# ---------------------------------------------------------------------------------------------------------------
# processes


class Process:
    """A child process with its output in a log file; stopped by PID (SIGTERM, then SIGKILL)."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      cwd=str(cwd or REPO))
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def signal(self, signo: int):
        if self.alive():
            os.kill(self.pid, signo)

    def kill(self):
        """SIGKILL, as a crash would."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=5)

    def wait(self, timeout: float):
        return self.popen.wait(timeout=timeout)

    def stop(self, grace: float = 5.0):
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
            except ProcessLookupError:
                pass
        self._log.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_port(self, port: int, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"{self.name} exited with {self.returncode} before listening on {port}:\n"
                                     f"{self.log_tail()}")
            if port_open(port):
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not listen on {port} within {timeout}s:\n{self.log_tail()}")


class ProcessSet:
    """Every process one test started, stopped at teardown in reverse order."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[Process] = []

    def start(self, name: str, argv: list, cwd: Path | None = None) -> Process:
        p = Process(name, argv, self.tmp / f"{name}.log", cwd)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:  # keep stopping the others
                pass

    def report(self) -> str:
        out = []
        for p in self.procs:
            out.append(f"----- {p.name} (pid {p.pid}, exit {p.returncode}) {p.log_path}\n{p.log_tail(40)}")
        return "\n".join(out)


# ---------------------------------------------------------------------------------------------------------------
# the demo web application


class Webapp:
    def __init__(self, procs: ProcessSet, zone: str, instance_id: str):
        self.zone = zone
        self.id = instance_id
        self.port = free_port()
        self.address = f"{LOCALHOST}:{self.port}"
        self.proc = procs.start(instance_id, [binary("cumulo-webapp"), "--listen", self.address, "--zone", zone,
                                              "--id", instance_id])
        self.proc.wait_port(self.port)

    def url(self, path: str = "/") -> str:
        return f"http://{self.address}{path}"

    def target(self, weight: int | None = None) -> dict:
        t = {"address": self.address, "zone": self.zone}
        if weight is not None:
            t["weight"] = weight
        return t

    def fail_health(self):
        r = requests.post(self.url("/healthz/fail"), timeout=5)
        assert r.status_code < 300, r.text

    def ok_health(self):
        r = requests.post(self.url("/healthz/ok"), timeout=5)
        assert r.status_code < 300, r.text

    def kill(self):
        self.proc.kill()


# ---------------------------------------------------------------------------------------------------------------
# YAML (the config files are generated; a tiny emitter avoids a dependency)


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent: int = 0) -> str:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, list) and v:
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, (dict, list)):
                lines.append(f"{pad}{k}: {'{}' if isinstance(v, dict) else '[]'}")
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 2).splitlines()
                lines.append(f"{pad}- {body[0].lstrip()}")
                lines.extend(body[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(obj)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# the gateway


class Gateway:
    """`cumulo gateway -c FILE` with a config generated from a dict.

    Missing parts are filled in: admin.listen and every listener's `listen` get free ports, one listener and one
    route to the first target group are added when absent, workers default to 2 and the log level to info.
    """

    def __init__(self, procs: ProcessSet, tmp: Path, config: dict, name: str = "gateway", start: bool = True):
        self.procs = procs
        self.tmp = tmp
        self.name = name
        self.config_path = tmp / f"{name}.yaml"
        cfg = dict(config)
        cfg.setdefault("workers", 2)
        cfg.setdefault("log_level", "info")
        self.admin_port = free_port()
        cfg["admin"] = {"listen": f"{LOCALHOST}:{self.admin_port}"}
        listeners = [dict(l) for l in cfg.get("listeners", [{"name": "public"}])]
        self.ports: dict[str, int] = {}
        for l in listeners:
            if "listen" not in l:
                l["listen"] = f"{LOCALHOST}:{free_port()}"
            self.ports[l["name"]] = int(l["listen"].rsplit(":", 1)[1])
        cfg["listeners"] = listeners
        if "routes" not in cfg:
            cfg["routes"] = [{"name": "default", "target_group": cfg["target_groups"][0]["name"]}]
        # Key order as in docs/configuration.md, for readable files.
        order = ["zone", "workers", "log_level", "access_log", "admin", "limits", "listeners", "routes", "target_groups"]
        self.config = {k: cfg[k] for k in order if k in cfg}
        self.config.update({k: v for k, v in cfg.items() if k not in self.config})
        self.write_config(self.config)
        self.proc: Process | None = None
        if start:
            self.start()

    # -- life cycle
    def start(self):
        self.proc = self.procs.start(self.name, [binary("cumulo"), "gateway", "-c", self.config_path])
        for port in self.ports.values():
            self.proc.wait_port(port)
        self.proc.wait_port(self.admin_port)
        wait_for(lambda: self._admin_ok(), 10, what="the admin API's /healthz")

    def _admin_ok(self) -> bool:
        try:
            return requests.get(self.admin_url("/healthz"), timeout=1).status_code == 200
        except requests.RequestException:
            return False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def write_config(self, config: dict):
        self.config = config
        self.config_path.write_text(to_yaml(config) + "\n")

    def reload_sighup(self):
        self.proc.signal(signal.SIGHUP)

    def reload_post(self) -> requests.Response:
        return requests.post(self.admin_url("/reload"), timeout=10)

    # -- addresses
    @property
    def port(self) -> int:
        return next(iter(self.ports.values()))

    def url(self, path: str = "/", listener: str | None = None) -> str:
        port = self.ports[listener] if listener else self.port
        return f"http://{LOCALHOST}:{port}{path}"

    def admin_url(self, path: str) -> str:
        return f"http://{LOCALHOST}:{self.admin_port}{path}"

    # -- admin API
    def admin(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, self.admin_url(path), timeout=10, **kw)

    def groups(self) -> list[dict]:
        r = self.admin("GET", "/targets")
        assert r.status_code == 200, r.text
        return r.json()["groups"]

    def targets(self, group: str = "web") -> list[dict]:
        for g in self.groups():
            if g["name"] == group:
                return g["targets"]
        raise AssertionError(f"no group {group} in GET /targets")

    def target(self, address: str, group: str = "web") -> dict | None:
        for t in self.targets(group):
            if t["address"] == address:
                return t
        return None

    def wait_target(self, address: str, predicate, timeout: float = 10.0, group: str = "web", what: str = ""):
        def check():
            t = self.target(address, group)
            return t if predicate(t) else None

        return wait_for(check, timeout, interval=0.05, what=what or f"target {address} in /targets")

    def metrics(self) -> str:
        r = self.admin("GET", "/metrics")
        assert r.status_code == 200, r.text
        return r.text

    def rss_kib(self) -> int:
        return rss_kib(self.pid)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler:
    """Samples a process's VmRSS in the background; `peak_kib` is the largest value seen."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
            except OSError:
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)


def metric_value(text: str, name: str, **labels) -> float | None:
    """The sum of every sample of `name` whose labels include `labels` (None when there is none)."""
    total = None
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == str(v) for k, v in labels.items()):
            total = (total or 0.0) + float(m.group(4))
    return total


# ---------------------------------------------------------------------------------------------------------------
# clients


def instance_counts(urls_or_url, n: int, session: requests.Session | None = None, **kw) -> dict[str, int]:
    """GETs `n` times (one new connection each unless a session is given) and counts X-Instance-Id."""
    counts: dict[str, int] = {}
    getter = session.get if session else requests.get
    for i in range(n):
        r = getter(urls_or_url, timeout=10, **kw)
        assert r.status_code == 200, f"request {i}: {r.status_code} {r.text[:300]}"
        iid = r.headers.get("X-Instance-Id", "?")
        counts[iid] = counts.get(iid, 0) + 1
    return counts


def echo_headers(resp_json: dict) -> dict[str, list[str]]:
    """/echo's headers with lower-case names (values kept in order, merged across name spellings)."""
    out: dict[str, list[str]] = {}
    for k, v in resp_json["headers"].items():
        out.setdefault(k.lower(), []).extend(v if isinstance(v, list) else [v])
    return out


class RawResponse:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes, raw_head: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.raw_head = raw_head

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return f"<{self.status} {self.reason} {self.headers} {self.body[:200]!r}>"


class RawConnection:
    """A plain socket that sends exact bytes and reads HTTP/1.1 responses one by one."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((LOCALHOST, port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_response(self, head_request: bool = False) -> RawResponse | None:
        """The next response, or None when the connection closed before one began."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                if self.buf:
                    raise AssertionError(f"connection closed inside a response head: {self.buf[:300]!r}")
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        resp = RawResponse(status, parts[2] if len(parts) > 2 else "", headers, b"", head)
        if status < 200:
            return resp  # interim response: no body
        if head_request or status in (204, 304):
            return resp
        te = (resp.header("transfer-encoding") or "").lower()
        cl = resp.header("content-length")
        if "chunked" in te:
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    if not self._fill():
                        raise AssertionError("connection closed inside a chunked body")
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    if not self._fill():
                        raise AssertionError("connection closed inside a chunk")
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if size == 0:
                    break
            resp.body = body
        elif cl is not None:
            n = int(cl)
            while len(self.buf) < n:
                if not self._fill():
                    raise AssertionError(f"connection closed after {len(self.buf)} of {n} body bytes")
            resp.body, self.buf = self.buf[:n], self.buf[n:]
        else:
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def closed_by_peer(self, timeout: float = 3.0) -> bool:
        """True when the peer closes (EOF or reset) within `timeout` with nothing more to read."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> tuple[RawResponse | None, bool]:
    """Sends `data` on a new connection, reads one response; returns it and whether the gateway then closed."""
    with RawConnection(port, timeout) as c:
        c.send(data)
        try:
            resp = c.read_response()
        except (ConnectionResetError, BrokenPipeError):
            return None, True
        closed = c.closed_by_peer(timeout=3.0)
        return resp, closed


# ---------------------------------------------------------------------------------------------------------------
# wrk

WRK_SCRIPT = r"""
-- Counts responses by status in every thread and prints one summary line at the end.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {} end
function response(status, headers, body) codes[status] = (codes[status] or 0) + 1 end
function done(summary, latency, requests)
  local e = summary.errors
  local all = {}
  for _, t in ipairs(threads) do
    local c = t:get("codes")
    if c then for k, v in pairs(c) do all[k] = (all[k] or 0) + v end end
  end
  local parts = {}
  for k, v in pairs(all) do table.insert(parts, string.format("%d:%d", k, v)) end
  io.write(string.format("WRKRESULT requests=%d status=%d connect=%d read=%d write=%d timeout=%d codes=%s\n",
    summary.requests, e.status, e.connect, e.read, e.write, e.timeout, table.concat(parts, ",")))
end
"""


class WrkResult:
    def __init__(self, output: str):
        self.output = output
        m = re.search(r"WRKRESULT requests=(\d+) status=(\d+) connect=(\d+) read=(\d+) write=(\d+) timeout=(\d+) "
                      r"codes=(\S*)", output)
        if not m:
            raise AssertionError(f"wrk printed no summary:\n{output}")
        self.requests, self.non2xx, conn, read, write, tmo = (int(m.group(i)) for i in range(1, 7))
        self.socket_errors = {"connect": conn, "read": read, "write": write, "timeout": tmo}
        self.codes = {int(k): int(v) for k, v in (p.split(":") for p in m.group(7).split(",") if p)}
        # wrk's own text says the same; cross-check it so a summary-script mistake cannot hide failures.
        m2 = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
        self.non2xx_text = int(m2.group(1)) if m2 else 0
        m3 = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
        self.socket_errors_text = sum(int(x) for x in m3.groups()) if m3 else 0

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values())

    def describe(self) -> str:
        return (f"requests={self.requests} non-2xx/3xx={self.non2xx} socket errors={self.socket_errors} "
                f"codes={self.codes}\n{self.output}")

    def assert_clean(self, min_requests: int = 100):
        assert self.requests >= min_requests, f"too few requests: {self.describe()}"
        assert self.non2xx == 0 and self.non2xx_text == 0, f"non-2xx responses: {self.describe()}"
        assert self.errors == 0 and self.socket_errors_text == 0, f"socket errors: {self.describe()}"
        assert set(self.codes) <= {200}, f"statuses other than 200: {self.describe()}"


class Wrk:
    """A bounded wrk run in the background."""

    def __init__(self, tmp: Path, url: str, duration_s: int = 5, connections: int = 16, threads: int = 1):
        script = tmp / "wrk-report.lua"
        script.write_text(WRK_SCRIPT)
        self.duration_s = duration_s
        self.argv = [tool("wrk"), f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--timeout", "5s",
                     "-s", str(script), url]
        self.popen = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.started = time.monotonic()

    def sleep_until(self, seconds_in: float):
        left = self.started + seconds_in - time.monotonic()
        if left > 0:
            time.sleep(left)

    def result(self) -> WrkResult:
        try:
            out, _ = self.popen.communicate(timeout=self.duration_s + 20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            out, _ = self.popen.communicate()
            raise AssertionError(f"wrk did not finish:\n{out}")
        return WrkResult(out)


# ---------------------------------------------------------------------------------------------------------------
# fake upstreams for failure modes the demo app does not have


class FakeUpstream:
    """A tiny threaded HTTP/1.1 server with one behaviour:

    - "500": answers every request with 500 (keep-alive)
    - "close": accepts, reads the request head, closes without answering
    - "reset_after_body": reads the head and the whole Content-Length body, then resets the connection (RST)
    - "hop_by_hop": answers 200 with `Connection: X-Secret` and an `X-Secret` header that must not reach clients
    """

    def __init__(self, behaviour: str):
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOCALHOST, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.address = f"{LOCALHOST}:{self.port}"
        self.requests = 0  # request heads received
        self.lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def target(self, zone: str = "a") -> dict:
        return {"address": self.address, "zone": zone}

    def _accept_loop(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        conn.settimeout(10)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                with self.lock:
                    self.requests += 1
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                length = int(m.group(1)) if m else 0
                while len(buf) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                buf = buf[length:]
                if self.behaviour == "close":
                    return
                if self.behaviour == "reset_after_body":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                if self.behaviour == "500":
                    body = b"upstream says no\n"
                    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                elif self.behaviour == "hop_by_hop":
                    body = b"ok\n"
                    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: 42\r\n"
                                 b"Keep-Alive: timeout=5\r\nX-Public: yes\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body))
                else:
                    raise AssertionError(f"unknown behaviour {self.behaviour}")
        except OSError:
            return
        finally:
            conn.close()

    def stop(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# ---------------------------------------------------------------------------------------------------------------
# bodies


def pattern_bytes(offset: int, length: int) -> bytes:
    """The bytes /bytes?n=N sends at `offset` (byte i is i % 251)."""
    start = offset % 251
    reps = (start + length) // 251 + 1
    return (bytes(range(251)) * reps)[start:start + length]


class PatternBody:
    """`total` bytes made of repetitions of one random block, produced as they are sent (never all in memory).

    Iterate it (or call write_to) once; `sha256` is the digest of what was produced.
    """

    def __init__(self, total: int, block_size: int = 1 << 20):
        self.total = total
        self.block = os.urandom(block_size)
        self._hash = hashlib.sha256()
        self.produced = 0

    def __iter__(self):
        while self.produced < self.total:
            piece = self.block[: min(len(self.block), self.total - self.produced)]
            self._hash.update(piece)
            self.produced += len(piece)
            yield piece

    def write_to(self, f):
        for piece in self:
            f.write(piece)

    @property
    def sha256(self) -> str:
        assert self.produced == self.total, "the body was not produced in full"
        return self._hash.hexdigest()
