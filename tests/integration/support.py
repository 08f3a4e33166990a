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


_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before in this run: the kernel may offer a port it just gave back, and two
    ports of one configuration taken before anything binds them would then be the same."""
    while True:
        with socket.socket() as s:
            s.bind((LOCALHOST, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


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


def running_stack_status(state_dir) -> dict | None:
    """STATE_DIR/stack.json of `cumulo up` when it says the stack is running; None otherwise or while rewritten."""
    try:
        status = json.loads((Path(state_dir) / "stack.json").read_text())
        return status if status["state"] == "running" else None
    except (OSError, ValueError, KeyError):
        return None


def wait_stack_running(state_dir, timeout: float, what: str = "stack.json says running") -> dict:
    return wait_for(lambda: running_stack_status(state_dir), timeout, what=what)


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


# ---------------------------------------------------------------------------------------------------------------
# auto scaling: `cumulo up` with scaling groups, its state directory (stack.json, api-token), control API and CLI


def pid_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def webapp_launch_template(**overrides) -> dict:
    """A launch template running the demo application, a quarter of a CPU per instance."""
    t = {
        "command": ["{bin_dir}/cumulo-webapp", "--listen", "127.0.0.1:{port}", "--zone", "{zone}",
                    "--id", "{instance_id}"],
        "health_check": {"path": "/healthz", "grace_period": "10s"},
        "stop_signal": "SIGTERM",
        "stop_timeout": "5s",
        "cpu": 0.25,
    }
    t.update(overrides)
    return t


def scaling_group(name: str = "web", min: int = 2, max: int = 8, desired: int | None = None, **extra) -> dict:
    g = {"name": name, "min": min, "max": max, "desired": min if desired is None else desired,
         "launch_template": webapp_launch_template()}
    g.update(extra)
    return g


def cpu_target_policy(target: int = 60, window: str = "10s", stabilization: str = "20s") -> dict:
    return {"name": "cpu-target", "type": "target_tracking", "metric": "cpu", "statistic": "average",
            "target": target, "window": window, "scale_in_stabilization": stabilization}


def event_epoch(event: dict) -> float | None:
    """An event's time as seconds since the epoch, whether the API gives a number or an ISO 8601 string."""
    import datetime

    t = event.get("time")
    if isinstance(t, (int, float)):
        return t / 1000.0 if t > 1e11 else float(t)
    if isinstance(t, str):
        try:
            return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


class ScalingStack:
    """`cumulo up STACK.yaml` with scaling groups, run from `tmp` with the state directory `tmp/.cumulo`.

    The stack file is generated: the gateway's listen and admin addresses and the control API get free ports,
    the gateway gets one worker, a fast health check and a short drain timeout unless `gateway` says otherwise.
    CLI commands run in `tmp`, so they find the state directory by its default name too.
    """

    def __init__(self, tmp: Path, groups: list[dict], zones=("a", "b"), gateway: dict | None = None,
                 name: str = "itest", start: bool = True, settle: bool = True, settle_groups=None):
        self.tmp = tmp
        self.gw_port, self.admin_port, self.control_port = free_port(), free_port(), free_port()
        gw = {"listen": f"{LOCALHOST}:{self.gw_port}", "admin": f"{LOCALHOST}:{self.admin_port}", "workers": 1,
              "drain_timeout": "5s",
              "health_check": {"path": "/healthz", "interval": "500ms", "timeout": "500ms", "healthy_threshold": 2,
                               "unhealthy_threshold": 2}}
        gw.update(gateway or {})
        self.spec = {"name": name, "zones": list(zones), "control": {"listen": f"{LOCALHOST}:{self.control_port}"},
                     "gateway": gw, "groups": groups}
        self.path = tmp / "stack.yaml"
        self.path.write_text(to_yaml(self.spec) + "\n")
        self.state_dir = tmp / ".cumulo"
        self.proc: Process | None = None
        self._token: str | None = None
        self._last_state: dict = {}
        self._session = requests.Session()
        if start:
            self.start(settle=settle, settle_groups=settle_groups)

    # -- life cycle
    def start(self, settle: bool = True, settle_groups=None, timeout: float = 30.0, wait_running: bool = True):
        """Starts `cumulo up` and waits for the gateway, stack.json (state running unless `wait_running` is
        false), the token, the control API and, when `settle`, every group (or those named) settled."""
        self.proc = Process("cumulo-up", [binary("cumulo"), "up", self.path, "--state-dir", self.state_dir],
                            self.tmp / "cumulo-up.log", cwd=self.tmp)
        self.proc.wait_port(self.gw_port, timeout=timeout)

        def running():
            if not self.proc.alive():
                raise AssertionError(f"cumulo up exited with {self.proc.returncode}:\n{self.proc.log_tail()}")
            return self.state().get("state") in (("running",) if wait_running else ("starting", "running"))

        wait_for(running, timeout, interval=0.1, what="stack.json state running")
        wait_for(lambda: self.token, 10, interval=0.1, what=f"{self.state_dir}/api-token")
        wait_for(lambda: port_open(self.control_port), 10, what="the control API listening")
        if settle:
            names = settle_groups if settle_groups is not None else [g["name"] for g in self.spec["groups"]]
            for name in names:
                self.wait_settled(name, timeout=timeout)

    def stop(self, timeout: float = 30.0):
        """SIGINT (as Ctrl-C), then SIGKILL if it hangs; then any instance it left behind, by PID."""
        if self.proc is None:
            return
        known = self.state() if self.proc.alive() else self._last_state
        if self.proc.alive():
            self.proc.signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.stop()
        pids = [i.get("pid") for i in known.get("instances", [])] + [known.get("gateway", {}).get("pid")]
        for pid in pids:
            if isinstance(pid, int) and pid > 0 and pid_running(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._session.close()

    def report(self) -> str:
        out = [f"----- cumulo up (pid {self.proc.pid if self.proc else '-'}) {self.tmp / 'cumulo-up.log'}"]
        if self.proc:
            out.append(self.proc.log_tail(60))
        gw_log = self.state_dir / "logs" / "gateway.log"
        if gw_log.exists():
            out.append(f"----- {gw_log}\n" + "\n".join(gw_log.read_text(errors="replace").splitlines()[-30:]))
        try:
            out.append("----- events\n" + "\n".join(f"{e.get('time')} {e.get('message')}" for e in self.events()))
            out.append("----- status\n" + json.dumps(self.status(), indent=1))
        except Exception as e:  # the stack may be gone already
            out.append(f"(control API not available: {e!r})")
        out.append("----- stack.json\n" + json.dumps(self._last_state, indent=1))
        return "\n".join(out)

    # -- state directory
    def state(self) -> dict:
        """STATE_DIR/stack.json; the last good read when it is being rewritten."""
        for _ in range(20):
            try:
                self._last_state = json.loads((self.state_dir / "stack.json").read_text())
                return self._last_state
            except (OSError, ValueError):
                time.sleep(0.02)
        return self._last_state

    @property
    def token(self) -> str | None:
        if self._token is None:
            try:
                self._token = (self.state_dir / "api-token").read_text().strip() or None
            except OSError:
                return None
        return self._token

    def instances(self, group: str | None = None, states=("in_service",), zone: str | None = None) -> list[dict]:
        """Instances from stack.json in one of `states` (all states when `states` is None)."""
        return [i for i in self.state().get("instances", [])
                if (group is None or i.get("group") == group) and (states is None or i.get("state") in states)
                and (zone is None or i.get("zone") == zone)]

    # -- control API
    def control_url(self, path: str) -> str:
        return f"http://{LOCALHOST}:{self.control_port}{path}"

    def api(self, method: str, path: str, token: str | None | bool = True, **kw) -> requests.Response:
        """A control API request; token=True uses the stack's token, None sends none, a string sends that."""
        headers = dict(kw.pop("headers", {}))
        if token is True:
            token = self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self._session.request(method, self.control_url(path), headers=headers, timeout=10, **kw)

    def status(self) -> dict:
        r = self.api("GET", "/v1/status")
        assert r.status_code == 200, f"GET /v1/status: {r.status_code} {r.text}"
        return r.json()

    def group(self, name: str = "web") -> dict:
        for g in self.status()["groups"]:
            if g["name"] == name:
                return g
        raise AssertionError(f"no group {name} in GET /v1/status")

    def events(self, group: str | None = None) -> list[dict]:
        r = self.api("GET", "/v1/events")
        assert r.status_code == 200, f"GET /v1/events: {r.status_code} {r.text}"
        return [e for e in r.json()["events"] if group is None or e.get("group") == group]

    def set_desired(self, group: str, desired) -> requests.Response:
        return self.api("POST", f"/v1/groups/{group}/desired", json={"desired": desired})

    def put_metric(self, group: str, name: str, value: float, instance: str | None = None) -> requests.Response:
        body = {"group": group, "name": name, "value": value}
        if instance is not None:
            body["instance"] = instance
        return self.api("POST", "/v1/metrics", json=body)

    def wait_settled(self, group: str = "web", timeout: float = 30.0, desired: int | None = None) -> dict:
        """Waits until the group has `desired` (default: its own desired) instances in service and none pending
        or draining; returns its status."""

        def settled():
            g = self.group(group)
            want = g["desired"] if desired is None else desired
            return g if (g["desired"] == want and g["in_service"] == want and g["pending"] == 0
                         and g["draining"] == 0) else None

        return wait_for(settled, timeout, interval=0.1, what=f"group {group} settled")

    # -- CLI
    def cli(self, *args, timeout: float = 20.0) -> subprocess.CompletedProcess:
        """`cumulo ARGS...` run in the stack's directory (so the default state directory is this stack's)."""
        return subprocess.run([str(binary("cumulo")), *[str(a) for a in args]], cwd=str(self.tmp), text=True,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)

    # -- the gateway
    def url(self, path: str = "/") -> str:
        return f"http://{LOCALHOST}:{self.gw_port}{path}"


class StackWatcher:
    """Polls stack.json in the background and keeps what it saw: each instance's states in order (with the time
    each was first seen) and in-service counts per zone over time."""

    def __init__(self, stack: ScalingStack, group: str = "web", interval: float = 0.05):
        self.stack = stack
        self.group = group
        self.interval = interval
        self.lock = threading.Lock()
        self.history: dict[tuple[str, int], list[tuple[float, str]]] = {}  # (id, pid) -> [(time, state)]
        self.samples: list[tuple[float, dict[str, int]]] = []  # (time, {zone: in-service count})
        self.ever_seen: dict[tuple[str, int], dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)

    def poll(self):
        now = time.monotonic()
        try:
            instances = [i for i in self.stack.state().get("instances", []) if i.get("group") == self.group]
        except Exception:
            return
        zones: dict[str, int] = {}
        with self.lock:
            for i in instances:
                key = (i.get("id"), i.get("pid"))
                self.ever_seen[key] = i
                h = self.history.setdefault(key, [])
                if not h or h[-1][1] != i.get("state"):
                    h.append((now, i.get("state")))
                if i.get("state") == "in_service":
                    zones[i.get("zone")] = zones.get(i.get("zone"), 0) + 1
            self.samples.append((now, zones))

    def in_service(self, zone: str | None = None) -> int:
        with self.lock:
            if not self.samples:
                return 0
            zones = self.samples[-1][1]
        return zones.get(zone, 0) if zone else sum(zones.values())

    def states_of(self, instance_id: str, pid: int | None = None) -> list[str]:
        with self.lock:
            return [s for (iid, p), h in self.history.items() if iid == instance_id and (pid is None or p == pid)
                    for _, s in h]

    def first_time(self, predicate, since: float = 0.0) -> float | None:
        """The first sample time >= since whose zone counts satisfy predicate(zones)."""
        with self.lock:
            for t, zones in self.samples:
                if t >= since and predicate(zones):
                    return t
        return None

    def max_in_zone(self, zone: str, since: float = 0.0) -> int:
        with self.lock:
            return max((z.get(zone, 0) for t, z in self.samples if t >= since), default=0)

    def __enter__(self):
        self.poll()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)


class GatewayProbe:
    """GETs `url` every `interval` in the background and keeps (time, status or None, X-Instance-Id, error)."""

    def __init__(self, url: str, interval: float = 0.05, timeout: float = 5.0):
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.results: list[tuple[float, int | None, str | None, str | None]] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with requests.Session() as s:
            while not self._stop.is_set():
                try:
                    r = s.get(self.url, timeout=self.timeout)
                    item = (time.monotonic(), r.status_code, r.headers.get("X-Instance-Id"), None)
                except requests.RequestException as e:
                    item = (time.monotonic(), None, None, repr(e))
                with self.lock:
                    self.results.append(item)
                self._stop.wait(self.interval)

    def first_from_other(self, known_ids, since: float = 0.0) -> tuple[float, str] | None:
        """The first answer at or after `since` from an instance whose id is not in `known_ids`."""
        with self.lock:
            for t, status, iid, _ in self.results:
                if t >= since and status == 200 and iid and iid not in known_ids:
                    return t, iid
        return None

    def failures(self) -> list:
        with self.lock:
            return [r for r in self.results if r[1] is None or r[1] >= 400]

    def count(self) -> int:
        with self.lock:
            return len(self.results)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=self.timeout + 2)


WRK_LOAD_SCRIPT = r"""
-- Counts responses by status, optionally paces each connection, and prints the summary and latency percentiles.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {} end
function response(status, headers, body) codes[status] = (codes[status] or 0) + 1 end
@DELAY@
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
  io.write(string.format("WRKLATENCY p50=%d p90=%d p99=%d max=%d\n", latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max))
end
"""


class WrkLoadResult(WrkResult):
    """WrkResult plus latency percentiles in milliseconds."""

    def __init__(self, output: str):
        super().__init__(output)
        m = re.search(r"WRKLATENCY p50=(\d+) p90=(\d+) p99=(\d+) max=(\d+)", output)
        if not m:
            raise AssertionError(f"wrk printed no latency line:\n{output}")
        self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms = (int(m.group(i)) / 1000.0 for i in range(1, 5))

    @property
    def failed(self) -> int:
        return self.non2xx + self.errors


class WrkLoad:
    """A bounded wrk run in the background with latency percentiles; `delay_ms` paces every connection (a wait
    before each request) so that cheap requests do not take both cores of a small machine."""

    _n = 0

    def __init__(self, tmp: Path, url: str, duration_s: int = 5, connections: int = 8, threads: int = 1,
                 delay_ms: int = 0, timeout_s: int = 5):
        WrkLoad._n += 1
        script = tmp / f"wrk-load-{WrkLoad._n}.lua"
        script.write_text(WRK_LOAD_SCRIPT.replace(
            "@DELAY@", f"function delay() return {int(delay_ms)} end" if delay_ms else ""))
        self.duration_s = duration_s
        self.argv = [tool("wrk"), f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--timeout",
                     f"{timeout_s}s", "-s", str(script), url]
        self.started = time.monotonic()
        self.popen = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def sleep_until(self, seconds_in: float):
        left = self.started + seconds_in - time.monotonic()
        if left > 0:
            time.sleep(left)

    def result(self) -> WrkLoadResult:
        try:
            out, _ = self.popen.communicate(timeout=self.duration_s + 20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            out, _ = self.popen.communicate()
            raise AssertionError(f"wrk did not finish:\n{out}")
        self.ended = time.monotonic()
        return WrkLoadResult(out)

    def stop(self):
        """Ends a run early (teardown after a failure); its result is not read."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.communicate()


@pytest.fixture
def scaling_stack(tmp_path):
    """scaling_stack(groups, ...) starts `cumulo up` with those groups (see ScalingStack); stopped at teardown,
    with its log, events and state printed when the test failed."""
    stacks: list[ScalingStack] = []

    def start(groups, **kw):
        s = ScalingStack(tmp_path, groups, start=False, **{k: v for k, v in kw.items()
                                                           if k in ("zones", "gateway", "name")})
        stacks.append(s)
        s.start(**{k: v for k, v in kw.items() if k in ("settle", "settle_groups", "timeout", "wait_running")})
        return s

    yield start
    for s in stacks:
        try:
            print(s.report())
        except Exception as e:
            print(f"(no report: {e!r})")
        s.stop()


class TargetTraffic:
    """Polls the gateway's /metrics in the background and keeps, for every target, the first time it was seen
    answering (its 2xx response counter above what it was when watching began)."""

    def __init__(self, admin_url: str, interval: float = 0.05):
        self.admin_url = admin_url
        self.interval = interval
        self.baseline: dict[str, float] = {}
        self.first_answer: dict[str, float] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _counts(self, session: requests.Session) -> dict[str, float]:
        text = session.get(f"{self.admin_url}/metrics", timeout=2).text
        counts: dict[str, float] = {}
        for m in re.finditer(r'^cumulo_gateway_target_responses_total\{([^}]*)\}\s+(\S+)', text, re.M):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            if labels.get("code") == "2xx":
                counts[labels.get("target", "")] = counts.get(labels.get("target", ""), 0.0) + float(m.group(2))
        return counts

    def _run(self):
        with requests.Session() as s:
            first = True
            while not self._stop.is_set():
                try:
                    counts = self._counts(s)
                except (requests.RequestException, ValueError):
                    counts = None
                now = time.monotonic()
                if counts is not None:
                    with self.lock:
                        if first:
                            self.baseline = dict(counts)
                            first = False
                        for target, n in counts.items():
                            if target not in self.first_answer and n > self.baseline.get(target, 0.0):
                                self.first_answer[target] = now
                self._stop.wait(self.interval)

    def first_from(self, addresses, since: float = 0.0) -> tuple[float, str] | None:
        """The earliest first answer at or after `since` among `addresses`."""
        with self.lock:
            hits = [(t, a) for a, t in self.first_answer.items() if a in addresses and t >= since]
        return min(hits) if hits else None

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
