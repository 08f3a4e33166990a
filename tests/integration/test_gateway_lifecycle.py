"""Start-up errors in the config file, and graceful shutdown on SIGTERM."""

import re
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from support import LOCALHOST, binary, free_port


def test_sigterm_drains_in_flight_request_then_exits_0(webapp, gateway):
    app = webapp("a")
    gw = gateway({"limits": {"drain_timeout": "10s"}, "target_groups": [{"name": "web", "targets": [app.target()]}]})
    # An idle keep-alive connection is closed at shutdown rather than kept waiting.
    idle = socket.create_connection((LOCALHOST, gw.port), timeout=5)
    idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")

    result = {}

    def slow():
        try:
            r = requests.get(gw.url("/slow?ms=1500"), timeout=10)
            result.update(status=r.status_code, body=r.content, done=time.monotonic(), alive=gw.proc.alive())
        except requests.RequestException as e:
            result.update(error=repr(e))

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.4)  # the request is with the target now
    gw.proc.signal(signal.SIGTERM)
    signalled = time.monotonic()
    time.sleep(0.3)

    assert gw.proc.alive(), "the gateway must wait for the in-flight request"
    with socket.socket() as s:
        s.settimeout(2)
        refused = s.connect_ex((LOCALHOST, gw.port))
    assert refused != 0, "new connections should be refused while draining"
    idle.settimeout(3)
    try:
        leftover = idle.recv(65536)
    except ConnectionResetError:
        leftover = b""
    assert leftover == b"", "an idle keep-alive connection should be closed when draining starts"
    idle.close()

    t.join(timeout=10)
    assert result.get("status") == 200, f"the in-flight request should complete: {result}"
    assert result["done"] - signalled >= 0.8, "the slow request cannot have ended this soon after SIGTERM"
    code = gw.proc.wait(timeout=10)
    exited = time.monotonic()
    assert code == 0, f"exit status {code}:\n{gw.proc.log_tail()}"
    assert exited - result["done"] < 3, f"exit took {exited - result['done']:.1f}s after the last request ended"


GOOD = """\
listeners:
  - name: public
    listen: 127.0.0.1:{port}
admin:
  listen: 127.0.0.1:{admin}
routes:
  - name: default
    target_group: web
    timeouts:
      connect: 2s
target_groups:
  - name: web
    targets:
      - address: 127.0.0.1:9
"""


def run_gateway_with(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text.format(port=free_port(), admin=free_port()))
    p = subprocess.run([str(binary("cumulo")), "gateway", "-c", str(path)], capture_output=True, text=True,
                       timeout=10)
    return p, path


def line_of(text, needle):
    return next(i + 1 for i, l in enumerate(text.splitlines()) if needle in l)


@pytest.mark.parametrize("case", ["unknown-key", "bad-duration", "missing-target-group", "unknown-target-group"])
def test_config_errors_exit_2_with_file_line_column(tmp_path, case):
    if case == "unknown-key":
        text = GOOD.replace("    target_group: web\n", "    target_group: web\n    path_prefx: /api\n")
        line, cols, must = line_of(text, "path_prefx"), (5,), ["path_prefx"]
    elif case == "bad-duration":
        text = GOOD.replace("connect: 2s", "connect: 2 parsecs")
        line, cols, must = line_of(text, "connect:"), (16, 7), ["connect", "2 parsecs"]  # the value (or its key)
    elif case == "missing-target-group":
        text = GOOD.replace("    target_group: web\n", "")
        line, cols, must = None, None, ["target_group"]
    else:
        text = GOOD.replace("target_group: web", "target_group: webb")
        line, cols, must = line_of(text, "target_group: webb"), (19, 5), ["webb"]
    p, path = run_gateway_with(tmp_path, text)
    assert p.returncode == 2, f"exit {p.returncode}, stderr: {p.stderr}"
    err = p.stderr
    m = re.search(re.escape(str(path)) + r":(\d+):(\d+)", err)
    assert m, f"the message should name {path}:LINE:COL: {err!r}"
    for word in must:
        assert word in err, f"the message should mention {word!r}: {err!r}"
    if line is not None:
        assert int(m.group(1)) == line, f"wrong line (expected {line}): {err!r}"
        assert int(m.group(2)) in cols, f"wrong column (expected {cols[0]}): {err!r}"
    else:
        route_lines = range(line_of(text, "- name: default"), line_of(text, "target_groups:"))
        assert int(m.group(1)) in route_lines, f"should point into the route without target_group: {err!r}"
    assert len(err.strip().splitlines()) <= 3, f"one clear message, not a dump: {err!r}"
