"""`cumulo up`: a stack of demo instances in two zones behind a gateway, supervised, stopped by Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import time

import requests

from support import Process, binary, free_port, port_open, wait_for, wait_stack_running


def write_stack(tmp_path, gw_port: int, admin_port: int, control_port: int) -> str:
    stack = tmp_path / "stack.yaml"
    stack.write_text(f"""name: itest
zones: [a, b]
gateway:
  listen: 127.0.0.1:{gw_port}
  admin: 127.0.0.1:{admin_port}
  workers: 1
  health_check: {{path: /healthz, interval: 500ms, timeout: 500ms}}
control:
  listen: 127.0.0.1:{control_port}
groups:
  - name: web
    min: 4
    max: 4
    launch_template:
      command: ["{{bin_dir}}/cumulo-webapp", "--listen", "127.0.0.1:{{port}}", "--zone", "{{zone}}", "--id", "{{instance_id}}"]
""")
    return str(stack)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_up_runs_zones_restarts_crashes_and_stops_on_ctrl_c(tmp_path):
    gw_port, admin_port = free_port(), free_port()
    state = tmp_path / "state"
    up = Process("cumulo-up", [binary("cumulo"), "up", write_stack(tmp_path, gw_port, admin_port, free_port()), "--state-dir",
                               state], tmp_path / "up.log")
    try:
        up.wait_port(gw_port, timeout=20)
        status = wait_stack_running(state, timeout=20)
        instances = [i for i in status["instances"] if i["state"] == "in_service"]
        assert sorted(i["id"] for i in instances) == ["web-a-1", "web-a-2", "web-b-1", "web-b-2"]
        assert {i["zone"] for i in instances} == {"a", "b"}

        # Every instance of both zones answers through the gateway.
        seen = set()
        with requests.Session() as s:
            for _ in range(40):
                r = s.get(f"http://127.0.0.1:{gw_port}/", timeout=5)
                assert r.status_code == 200
                seen.add(r.headers["X-Instance-Id"])
        assert seen == {"web-a-1", "web-a-2", "web-b-1", "web-b-2"}

        # A crashed instance is replaced by a new one; requests keep being answered meanwhile.
        victim = next(i for i in instances if i["id"] == "web-a-1")
        os.kill(victim["pid"], signal.SIGKILL)
        for _ in range(20):
            assert requests.get(f"http://127.0.0.1:{gw_port}/", timeout=5).status_code == 200
        def replaced():
            cur = [i for i in json.loads((state / "stack.json").read_text())["instances"] if i["state"] == "in_service"]
            return len(cur) == 4 and "web-a-1" not in {i["id"] for i in cur} and all(
                port_open(int(i["address"].rsplit(":", 1)[1])) for i in cur)
        wait_for(replaced, timeout=10, what="web-a-1 replaced")

        pids = [status["gateway"]["pid"]] + [i["pid"] for i in json.loads((state / "stack.json").read_text())["instances"]
                                              if i["pid"]]
        up.signal(signal.SIGINT)
        assert up.wait(timeout=20) == 0, up.log_tail()
        for pid in pids:
            wait_for(lambda: not pid_alive(pid), timeout=5, what=f"pid {pid} stopped")
        assert not port_open(gw_port)
    finally:
        up.stop()


def test_up_refuses_a_bad_stack_file_with_its_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nzones: [a]\ngateway: {listen: 127.0.0.1:1, admin: 127.0.0.1:2}\ngroups:\n"
                   "  - name: web\n    instances_per_zone: 0\n    command: [\"/bin/true\", \"{port}\"]\n")
    p = Process("cumulo-up", [binary("cumulo"), "up", bad, "--state-dir", tmp_path / "s"], tmp_path / "bad.log")
    assert p.wait(timeout=10) == 2
    p.stop()
    text = p.log_text()
    assert f"{bad}:6:" in text, text
    assert "instances_per_zone" in text, text
