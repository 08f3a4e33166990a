"""Tiers in network mode (docs/network.md, "Tiers"): a public web group proxying /app/ to an internal app group
through the stack's internal load balancer, which only the web group reaches and the public gateway does not
route to. Every address used here exists only inside namespaces the stack made."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
import requests

from support import Process, binary, closed_port, free_port, tool, wait_for, wait_stack_running
from net_support import in_ns, netns_list, reach, require_network_tools

pytestmark = pytest.mark.time_limit(240)


def write_stack(tmp_path, name: str, ports: dict, network: bool = True) -> str:
    stack = tmp_path / "stack.yaml"
    gateway = "0.0.0.0:8080" if network else f"127.0.0.1:{ports['gateway']}"
    internal_lb = "0.0.0.0:8000" if network else f"127.0.0.1:{ports['internal_lb']}"
    stack.write_text(f"""name: {name}
zones: [a, b]
control:
  listen: 127.0.0.1:{ports['control']}
gateway:
  listen: {gateway}
  admin: 127.0.0.1:{ports['admin']}
  workers: 1
  health_check: {{path: /healthz, interval: 500ms, timeout: 500ms}}
groups:
  - name: web
    min: 2
    max: 3
    launch_template:
      command: ["{{bin_dir}}/cumulo-webapp", "--listen", "{{host}}:{{port}}", "--zone", "{{zone}}", "--id", "{{instance_id}}",
                "--backend", "{{internal_lb}}"]
      health_check: {{path: /healthz, grace_period: 10s}}
      stop_timeout: 2s
  - name: app
    path_prefix: /app/
    internal: true
    min: 2
    max: 3
    launch_template:
      command: ["{{bin_dir}}/cumulo-webapp", "--listen", "{{host}}:{{port}}", "--zone", "{{zone}}", "--id", "{{instance_id}}"]
      health_check: {{path: /healthz, grace_period: 10s}}
      stop_timeout: 2s
internal_lb:
  listen: {internal_lb}
  admin: 127.0.0.1:{ports['internal_admin']}
  from: [web]
""" + ("network:\n  cidr: 10.20.0.0/16\n" if network else ""))
    return str(stack)


def get_from(ns: str, url: str) -> tuple[int, dict, str]:
    """Status, headers (lower-case names) and body of a GET from inside a namespace."""
    r = in_ns(ns, tool("curl"), "-s", "-i", "--max-time", "5", url)
    head, _, body = r.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    if not lines:
        return 0, {}, r.stderr
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def app_targets(admin_port: int) -> list[dict]:
    """The app group's healthy targets as the internal load balancer's admin API lists them."""
    try:
        groups = requests.get(f"http://127.0.0.1:{admin_port}/targets", timeout=5).json()["groups"]
    except (requests.RequestException, ValueError):
        return []  # restarting
    return [t for g in groups if g["name"] == "app" for t in g["targets"] if t["health"] == "healthy"]


def test_web_proxies_to_an_internal_app_group_that_only_the_internal_load_balancer_reaches(tmp_path):
    require_network_tools()
    name = f"tt{os.getpid() % 100000}"
    ports = {k: free_port() for k in ("admin", "control", "internal_admin")}
    state = tmp_path / "state"
    up = Process("cumulo-up", [binary("cumulo"), "up", write_stack(tmp_path, name, ports), "--state-dir", state],
                 tmp_path / "up.log")
    try:
        status = wait_stack_running(state, timeout=90, what="stack.json says running\n" + up.log_tail(20))
        assert status["network"]["check"] == "passed", status["network"]
        net = json.loads((state / "network.json").read_text())
        members = {m["name"]: m for m in net["members"]}
        addr = lambda member: members[member]["address"]  # noqa: E731
        ns = lambda member: members[member]["namespace"]  # noqa: E731
        outside = net["outside"]["namespace"]
        web = sorted(n for n, m in members.items() if m["group"] == "web")
        app = sorted(n for n, m in members.items() if m["group"] == "app")
        assert len(web) == 2 and len(app) == 2, members
        assert members["internal-lb"]["group"] == "internal_lb"
        gw, lb = addr("gateway"), addr("internal-lb")

        # outside -> gateway -> web -> internal load balancer -> app, the path kept all the way.
        for _ in range(4):
            code, headers, body = get_from(outside, f"http://{gw}:8080/app/orders?id=7")
            assert code == 200, (code, headers, body)
            assert body.startswith("hello from app-") and "(GET /app/orders?id=7)" in body, body
            assert headers["x-via"] in web, headers
        # The public gateway has no route to the internal group: / is the web tier's own answer.
        code, headers, body = get_from(outside, f"http://{gw}:8080/")
        assert code == 200 and body.startswith("hello from web-"), body

        # The internal load balancer's admin API (on the host) has the app instances, healthy.
        wait_for(lambda: sorted(t["address"] for t in app_targets(ports["internal_admin"])) ==
                 sorted(f"{addr(i)}:8080" for i in app), 10, what="the app instances as its targets")
        assert all(t["zone"] in ("a", "b") for t in app_targets(ports["internal_admin"]))

        # The security groups: only web reaches the internal load balancer, only it reaches app.
        assert reach(outside, lb, 8000) == "denied"
        for a in app:
            assert reach(outside, addr(a), 8080) == "denied", a
            assert reach(ns("gateway"), addr(a), 8080) == "denied", a  # internal: not from the gateway
            assert reach(ns(web[0]), addr(a), 8080) == "denied", a     # only through the load balancer
            assert reach(ns("internal-lb"), addr(a), 8080) == "connected", a
        assert reach(ns(web[0]), lb, 8000) == "connected"
        assert reach(ns(web[1]), lb, 8000) == "connected"
        assert reach(ns("gateway"), lb, 8000) == "denied"
        assert reach(ns(app[0]), lb, 8000) == "denied"

        result = subprocess.run([binary("cumulo"), "net", "check", "--state-dir", state, "--json"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        seen = {(r["from_group"], r["to_group"], r["port"]): r["expected"] for r in json.loads(result.stdout)}
        assert seen[("web", "internal_lb", 8000)] == "allowed"
        assert seen[("internal_lb", "app", 8080)] == "allowed"
        assert seen[("gateway", "app", 8080)] == "denied"
        assert seen[("web", "app", 8080)] == "denied"
        assert seen[("outside", "internal_lb", 8000)] == "denied"

        # A killed internal load balancer is restarted and told about every app instance again.
        lb_pid = next(s["pid"] for s in status["services"] if s["id"] == "internal-lb")
        os.kill(lb_pid, signal.SIGKILL)
        wait_for(lambda: len(app_targets(ports["internal_admin"])) == 2, 30, interval=0.5,
                 what="the restarted internal load balancer with its targets")
        wait_for(lambda: get_from(outside, f"http://{gw}:8080/app/")[0] == 200, 15, interval=0.5,
                 what="/app/ answering again")
    finally:
        up.stop(grace=30)
        left = [n for n in netns_list() if n.startswith(f"cu-{name}.")]
        for ns in left:  # a failed test leaves nothing of its own behind
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    assert left == []
    # The tiers stop from the front back: the web tier is gone before the internal load balancer stops, and it is
    # gone before the app tier stops.
    records = [json.loads(line) for line in (tmp_path / "up.log").read_text().splitlines() if line.startswith("{")]
    records = records[next(i for i, r in enumerate(records) if r["msg"] == "stopping stack"):]
    steps = []
    for r in records:
        if r["msg"] == "instance stopped":
            steps.append(r["instance"].split("-")[0] + " instance stopped")
        elif r["msg"] in ("stopping internal-lb", "internal-lb stopped"):
            steps.append(r["msg"])
    assert steps == ["web instance stopped"] * 2 + ["stopping internal-lb", "internal-lb stopped"] + \
        ["app instance stopped"] * 2, steps


def test_loopback_mode_runs_the_tiers_too(tmp_path):
    ports = {k: free_port() for k in ("gateway", "internal_lb", "admin", "control", "internal_admin")}
    state = tmp_path / "state"
    up = Process("cumulo-up", [binary("cumulo"), "up", write_stack(tmp_path, "tl", ports, network=False),
                               "--state-dir", state], tmp_path / "up.log")
    try:
        status = wait_stack_running(state, timeout=60, what="stack.json says running\n" + up.log_tail(20))
        assert status["internal_lb"]["address"] == f"127.0.0.1:{ports['internal_lb']}"
        r = requests.get(f"http://127.0.0.1:{ports['gateway']}/app/x", timeout=5)
        assert r.status_code == 200 and r.text.startswith("hello from app-") and "(GET /app/x)" in r.text, r.text
        assert r.headers["X-Via"].startswith("web-")
        # The public gateway has no target group for the internal group; the internal load balancer has it.
        public = requests.get(f"http://127.0.0.1:{ports['admin']}/targets", timeout=5).json()["groups"]
        assert [g["name"] for g in public] == ["web"]
        wait_for(lambda: len(app_targets(ports["internal_admin"])) == 2, 10, what="the app instances")
    finally:
        up.stop(grace=30)


def test_refusals_name_the_line(tmp_path):
    ports = {k: free_port() for k in ("gateway", "internal_lb", "admin", "control", "internal_admin")}
    f = write_stack(tmp_path, "tr", ports, network=False)
    text = open(f).read()
    open(f, "w").write(text.replace("from: [web]", "from: [app]"))
    r = subprocess.run([binary("cumulo"), "up", "--check", f], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r.stdout + r.stderr
    line = text.splitlines().index("  from: [web]") + 1
    assert f"{f}:{line}:" in r.stderr and "'app' is internal" in r.stderr, r.stderr


def test_the_web_tier_answers_502_when_its_backend_does_not(tmp_path):
    port, backend = free_port(), closed_port()
    web = Process("web", [binary("cumulo-webapp"), "--listen", f"127.0.0.1:{port}", "--id", "web-x-1",
                          "--backend", f"127.0.0.1:{backend}"], tmp_path / "web.log")
    try:
        web.wait_port(port)
        r = requests.get(f"http://127.0.0.1:{port}/app/", timeout=15)
        assert r.status_code == 502, r.text
        assert f"127.0.0.1:{backend}" in r.text and "connect" in r.text, r.text
        assert r.headers["X-Via"] == "web-x-1"
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200  # the rest is its own
    finally:
        web.stop()
