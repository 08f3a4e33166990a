"""The control API and CLI of `cumulo up`: token auth, manual scaling within min/max, events with their reasons,
custom metrics driving a policy, scheduled actions, and a launch template that cannot run being backed off."""

from __future__ import annotations

import re
import time

import pytest
import requests

from support import cpu_seconds, event_epoch, scaling_group, wait_for
from support import scaling_stack  # noqa: F401 (a fixture)


@pytest.mark.time_limit(60)
def test_control_api_needs_the_token_and_keeps_desired_within_min_max(scaling_stack):
    stack = scaling_stack([scaling_group("web", min=1, max=3, desired=2)])

    # No token, or a wrong one: 401 on every endpoint, reads and writes alike.
    for method, path, body in [("GET", "/v1/status", None), ("GET", "/v1/instances", None),
                               ("GET", "/v1/events", None), ("POST", "/v1/groups/web/desired", {"desired": 3}),
                               ("POST", "/v1/metrics", {"group": "web", "name": "queue_depth", "value": 1})]:
        for token in (None, "not-the-token"):
            r = stack.api(method, path, token=token, json=body)
            assert r.status_code == 401, f"{method} {path} with token {token!r}: {r.status_code} {r.text}"
    assert stack.group("web")["desired"] == 2, "a refused request must not change anything"

    st = stack.status()
    g = next(x for x in st["groups"] if x["name"] == "web")
    assert (g["min"], g["max"], g["desired"], g["in_service"], g["pending"], g["draining"]) == (1, 3, 2, 2, 0, 0), g
    assert sum(g["zones"].values()) == 2 and set(g["zones"]) <= {"a", "b"}, g
    listed = stack.api("GET", "/v1/instances").json()
    listed = listed["instances"] if isinstance(listed, dict) else listed
    assert sorted(i["id"] for i in listed if i["state"] == "in_service") == \
        sorted(i["id"] for i in stack.instances("web")), (listed, stack.state())

    # Outside min/max (or not a number): 400 from the API, a failing exit from the CLI, and nothing changes.
    for bad in (4, 0, -1, "two"):
        r = stack.set_desired("web", bad)
        assert r.status_code == 400, f"desired {bad!r}: {r.status_code} {r.text}"
        assert "error" in r.json(), r.text
    r = stack.set_desired("nosuchgroup", 2)
    assert r.status_code in (400, 404), f"unknown group: {r.status_code} {r.text}"
    out = stack.cli("scale", "web", "--desired", "9")
    assert out.returncode != 0, f"cumulo scale outside max succeeded: {out.stdout}{out.stderr}"
    assert "max" in (out.stdout + out.stderr).lower(), f"the error should name the limit: {out.stdout}{out.stderr}"
    assert stack.group("web")["desired"] == 2

    # Inside: the CLI scales, the group follows, and the event says what changed and why.
    out = stack.cli("scale", "web", "--desired", "3")
    assert out.returncode == 0, f"cumulo scale: {out.returncode} {out.stdout}{out.stderr}"
    stack.wait_settled("web", timeout=15, desired=3)
    events = stack.events("web")
    assert all({"seq", "time", "group", "message"} <= set(e) for e in events), events
    seqs = [e["seq"] for e in stack.events()]
    assert seqs in (sorted(seqs), sorted(seqs, reverse=True)) and len(set(seqs)) == len(seqs), (
        f"events should be in seq order, each seq once: {seqs}")
    manual = [e["message"] for e in events if "2 -> 3" in e["message"] or "2->3" in e["message"]]
    assert manual and manual[-1].startswith("web"), f"no event for desired 2 -> 3: {[e['message'] for e in events]}"

    # The CLI's read commands, with an explicit --state-dir.
    for cmd in ("status", "instances", "events"):
        out = stack.cli(cmd, "--state-dir", stack.state_dir)
        assert out.returncode == 0, f"cumulo {cmd}: {out.returncode} {out.stdout}{out.stderr}"
        assert "web" in out.stdout, f"cumulo {cmd} should mention the group:\n{out.stdout}"
    out = stack.cli("instances", "--state-dir", stack.state_dir)
    for i in stack.instances("web"):
        assert i["id"] in out.stdout, f"cumulo instances should list {i['id']}:\n{out.stdout}"
    out = stack.cli("events", "--state-dir", stack.state_dir)
    assert "2 -> 3" in out.stdout or "2->3" in out.stdout, f"cumulo events should show the scale-out:\n{out.stdout}"

    # The CLI without a running stack: a clear error, not a hang.
    out = stack.cli("status", "--state-dir", stack.tmp / "nothing-here", timeout=10)
    assert out.returncode != 0 and (out.stderr or out.stdout).strip(), out


@pytest.mark.time_limit(60)
def test_custom_metric_push_drives_target_tracking(scaling_stack):
    """A target-tracking policy on custom:queue_depth (target 10): pushing 40 scales out, with its event."""
    policy = {"name": "queue", "type": "target_tracking", "metric": "custom:queue_depth", "statistic": "average",
              "target": 10, "window": "5s", "scale_in_stabilization": "60s"}
    stack = scaling_stack([scaling_group("web", min=1, max=4, desired=1, warmup="2s", cooldown="2s",
                                         policies=[policy])])
    assert stack.group("web")["in_service"] == 1

    r = stack.put_metric("web", "queue_depth", 5)
    assert r.status_code == 204, f"POST /v1/metrics: {r.status_code} {r.text}"
    for bad in ({"group": "nosuchgroup", "name": "queue_depth", "value": 1},
                {"group": "web", "name": "queue_depth", "value": "lots"},
                {"group": "web", "value": 1}):
        r = stack.api("POST", "/v1/metrics", json=bad)
        assert 400 <= r.status_code < 500, f"POST /v1/metrics {bad}: {r.status_code} {r.text}"

    pushed_at = time.monotonic()
    deadline = pushed_at + 20
    n = 0
    while stack.group("web")["desired"] == 1:
        assert time.monotonic() < deadline, (
            f"no scale-out 20 s after pushing queue_depth 40 (target 10): {stack.group('web')}\n"
            f"{[e['message'] for e in stack.events('web')]}")
        # Every other push through the CLI, the rest through the API.
        if n % 2:
            out = stack.cli("metrics", "put", "web", "queue_depth", "40")
            assert out.returncode == 0, f"cumulo metrics put: {out.returncode} {out.stdout}{out.stderr}"
        else:
            r = stack.put_metric("web", "queue_depth", 40)
            assert r.status_code == 204, r.text
        n += 1
        time.sleep(0.5)
    took = time.monotonic() - pushed_at
    g = stack.group("web")
    assert 1 < g["desired"] <= 4, g
    events = [e["message"] for e in stack.events("web")]
    print(f"scaled out to {g['desired']} {took:.1f} s after the first push of 40; events: {events}")
    assert any("queue_depth" in m and "->" in m for m in events), f"no event naming queue_depth: {events}"
    stack.wait_settled("web", timeout=15)


@pytest.mark.time_limit(90)
def test_scheduled_action_sets_min_and_desired(scaling_stack):
    """A scheduled action with cron "* * * * *" fires within the next minute: min 2, desired 3, with its event."""
    stack = scaling_stack([scaling_group("web", min=1, max=4, desired=1, scheduled=[
        {"name": "every-minute", "cron": "* * * * *", "min": 2, "max": 4, "desired": 3}])])
    started = time.time()

    def applied():
        g = stack.group("web")
        return g if g["min"] == 2 and g["desired"] == 3 else None

    wait_for(applied, 70, interval=0.5, what="the scheduled action applied (min 2, desired 3)")
    took = time.time() - started
    events = [e["message"] for e in stack.events("web")]
    print(f"scheduled action applied {took:.1f} s after start (next minute boundary was "
          f"{60 - started % 60:.1f} s away): {events}")
    assert took <= 60 - started % 60 + 5, f"the action should fire at the minute boundary, not {took:.1f} s later"
    assert any("every-minute" in m for m in events), f"no event naming the scheduled action: {events}"
    stack.wait_settled("web", timeout=15, desired=3)
    r = stack.set_desired("web", 1)
    assert r.status_code == 400, f"desired 1 is below the scheduled min 2: {r.status_code} {r.text}"


@pytest.mark.time_limit(60)
def test_launch_template_that_exits_at_once_is_backed_off(scaling_stack):
    """A command that exits immediately is retried with growing delays (each failure an event), `cumulo up` uses
    little CPU meanwhile, and the healthy group beside it is unaffected."""
    broken = {"name": "broken", "min": 1, "max": 2, "desired": 1, "path_prefix": "/broken",
              "launch_template": {"command": ["/bin/sh", "-c", "exit 3"], "env": {"PORT": "{port}"},
                                  "health_check": {"path": "/healthz", "grace_period": "5s"}}}
    # The stack as a whole may call itself running or still starting while one group cannot start.
    stack = scaling_stack([scaling_group("web", min=1, max=1, desired=1), broken], settle_groups=["web"],
                          wait_running=False)
    up_pid = stack.proc.pid

    seen: dict = {}  # seq -> (first seen, event)
    cpu0, t0 = cpu_seconds(up_pid), time.monotonic()
    while time.monotonic() - t0 < 22:
        for e in stack.events("broken"):
            seen.setdefault(e["seq"], (time.monotonic(), e))
        time.sleep(0.25)
    cpu_used = cpu_seconds(up_pid) - cpu0
    elapsed = time.monotonic() - t0
    events = [e for _, e in sorted(seen.values(), key=lambda x: x[1]["seq"])]
    messages = [e["message"] for e in events]
    print(f"cumulo up used {cpu_used:.2f} s of CPU in {elapsed:.1f} s; broken group events:\n  " +
          "\n  ".join(f"{e.get('time')} {e['message']}" for e in events))

    assert stack.proc.alive(), f"cumulo up died:\n{stack.proc.log_tail()}"
    assert cpu_used < 0.1 * elapsed, f"cumulo up used {cpu_used:.2f} s of CPU in {elapsed:.1f} s while backing off"
    assert stack.group("broken")["in_service"] == 0
    assert stack.group("web")["in_service"] == 1
    assert requests.get(stack.url("/"), timeout=5).status_code == 200

    # One attempt per cluster of events (an exit and its "retrying in ..." may come as two events at once).
    times = [event_epoch(e) for e in events]
    if any(t is None for t in times):
        times = [t for t, _ in sorted(seen.values(), key=lambda x: x[1]["seq"])]
    attempts = []
    for t in times:
        if not attempts or t - attempts[-1] > 0.4:
            attempts.append(t)
    gaps = [round(b - a, 2) for a, b in zip(attempts, attempts[1:])]
    assert len(attempts) >= 3, f"the failing launches should be events (at least 3 in {elapsed:.0f} s): {messages}"
    assert len(attempts) <= 10, f"{len(attempts)} launch attempts in {elapsed:.0f} s is not backing off: {gaps}"
    assert gaps[-1] >= 2 * gaps[0] and gaps[-1] >= 2.0, f"the delays between attempts should grow: {gaps}"

    # When the events name their delays ("retrying in 4s"), those grow too.
    announced = re.compile(r"(?:retry|retrying|backoff|back off|again|restart\w*|next|delay|wait\w*)\D{0,20}?"
                           r"(\d+(?:\.\d+)?)\s*(ms|s)\b")
    delays = []
    for m in messages:
        d = announced.search(m)
        if d:
            delays.append(float(d.group(1)) / (1000 if d.group(2) == "ms" else 1))
    if len(delays) >= 3:
        assert delays == sorted(delays) and delays[-1] > delays[0], f"announced delays should grow: {delays}"
