"""Auto scaling on CPU: a load step through the gateway grows the group, latency falls back as the new instances
join, and the group shrinks back to its minimum once the load is gone and the stabilization window has passed.

The machine these run on may have only two cores: instances get a quarter of a CPU each (`cpu: 0.25`) and the
load is one wrk thread with eight connections on /burn?ms=20, so that eight instances fit next to the gateway,
wrk and the supervisor.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from support import StackWatcher, WrkLoad, cpu_target_policy, scaling_group, tool, wait_for
from support import scaling_stack  # noqa: F401 (a fixture)

STABILIZATION_S = 15
WINDOW_S = 10
WARMUP_S = 3
# The step hits a group at rest: its instances past warm-up and a whole metric window of idle seconds behind
# it, as in production (a fresh stack has no values yet, and its first window would hold only the load).
IDLE_BEFORE_STEP_S = WARMUP_S + WINDOW_S + 1


def check_cpu_limits(stack):
    """Where the cgroup v1 cpu hierarchy is writable, each instance runs in its own cgroup with a quota of a
    quarter of a CPU (docs/scaling.md, "Resource limits"); the latency part of this test depends on it."""
    root = Path("/sys/fs/cgroup/cpu")
    if not os.access(root, os.W_OK):
        print("cgroup v1 cpu hierarchy not writable here: instances run without a CPU limit")
        return
    for i in stack.instances("web"):
        d = root / "cumulo" / stack.spec["name"] / i["id"]
        assert d.is_dir(), f"no cgroup {d} for {i['id']}"
        quota, period = (int((d / n).read_text()) for n in ("cpu.cfs_quota_us", "cpu.cfs_period_us"))
        assert quota == period // 4, f"{d}: quota {quota} per period {period}, expected a quarter of a CPU"
        procs = {int(p) for p in (d / "cgroup.procs").read_text().split()}
        assert i["pid"] in procs, f"{i['id']} (pid {i['pid']}) is not in {d}: {procs}"


@pytest.mark.time_limit(90)
def test_cpu_load_step_scales_out_latency_recovers_and_scales_back_in(scaling_stack, tmp_path):
    """MUST: min 2, max 8, target CPU 60% over 10 s: at least 4 in service within 15 s of the step, p99 falls
    back once they serve, and the group is back at min after the load stops and the stabilization window."""
    tool("wrk")
    stack = scaling_stack([scaling_group(
        "web", min=2, max=8, desired=2, warmup=f"{WARMUP_S}s", cooldown="3s", drain_timeout="3s",
        policies=[cpu_target_policy(target=60, window=f"{WINDOW_S}s", stabilization=f"{STABILIZATION_S}s")])])
    before = {i["id"] for i in stack.instances("web")}
    assert len(before) == 2, stack.state()
    check_cpu_limits(stack)
    time.sleep(IDLE_BEFORE_STEP_S)
    assert stack.group("web")["desired"] == 2, f"the idle group should not have scaled: {stack.events('web')}"

    windows = []  # (start, end, in service at start, in service at end, result)
    with StackWatcher(stack, "web") as watch:
        step = time.monotonic()
        four_at = None
        # Successive 3 s wrk windows make one continuous load step of ~21 s with a p99 for each part of it.
        while time.monotonic() - step < 21:
            n_start = watch.in_service()
            run = WrkLoad(tmp_path, stack.url("/burn?ms=20"), duration_s=3, connections=8)
            try:
                res = run.result()
            finally:
                run.stop()
            windows.append((run.started - step, run.ended - step, n_start, watch.in_service(), res))
            if four_at is None:
                t = watch.first_time(lambda z: sum(z.values()) >= 4, since=step)
                four_at = None if t is None else t - step
        load_stopped = time.monotonic()
        summary = "\n".join(f"  {a:5.1f}-{b:5.1f}s in service {n0}->{n1}: {r.requests} requests, "
                            f"p50 {r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms, failed {r.failed}"
                            for a, b, n0, n1, r in windows)
        print("load step windows:\n" + summary)

        assert four_at is not None and four_at <= 15.0, (
            f"the group did not reach 4 in-service instances within 15 s of the load step "
            f"(reached at {four_at} s)\n{summary}\nevents: {[e['message'] for e in stack.events('web')]}")

        events = [e["message"] for e in stack.events("web")]
        assert any("cpu" in m and "target 60" in m and "->" in m for m in events), (
            f"no scale-out event giving its reason (cpu against target 60%): {events}")

        # p99 of the first window (2 instances) against a window that started once >= 4 had served for 3 s.
        first = windows[0][4]
        later = [w for w in windows if w[0] >= four_at + 3.0 and w[2] >= 4]
        assert later, f"no load window after the new instances joined:\n{summary}"
        best_later = min(w[4].p99_ms for w in later)
        assert best_later < 0.7 * first.p99_ms, (
            f"p99 latency did not fall back after the new instances joined: first window {first.p99_ms:.0f} ms, "
            f"best later window {best_later:.0f} ms\n{summary}")
        for a, b, n0, n1, r in windows:
            assert r.requests > 0, f"a load window got no answers:\n{summary}"

        # The load is gone: back to min, but not before the stabilization window has passed.
        def back_to_min():
            g = stack.group("web")
            return g if g["desired"] == 2 and g["in_service"] == 2 and g["pending"] == 0 and g["draining"] == 0 \
                else None

        # Scale-in waits for a whole stabilization window of evaluations that all asked for fewer and goes to the
        # largest of them, so while the metric window still remembers the load it may take two such steps.
        g = wait_for(back_to_min, 2 * STABILIZATION_S + WINDOW_S + 12, interval=0.25,
                     what="the group back at min 2 after the load stopped")
        back_after = time.monotonic() - load_stopped
        with watch.lock:
            peak = max(sum(z.values()) for _, z in watch.samples)
        print(f"4 in service {four_at:.1f} s after the step; peak {peak}; back at min {back_after:.1f} s after the "
              f"load stopped")
        assert back_after >= STABILIZATION_S - 2, (
            f"scaled in {back_after:.1f} s after the load stopped, before the {STABILIZATION_S} s stabilization "
            f"window: {[e['message'] for e in stack.events('web')]}")
        assert g["zones"] == {"a": 1, "b": 1}, f"min capacity should stay balanced over the zones: {g}"
        events = [e["message"] for e in stack.events("web")]
        assert any("-> 2" in m or "->2" in m for m in events), f"no scale-in event: {events}"

    # Not the point of this test, but growing must not cost requests either.
    failed = sum(w[4].failed for w in windows)
    assert failed == 0, f"{failed} requests failed during the load step:\n{summary}\n" + "\n".join(
        w[4].describe() for w in windows if w[4].failed)
