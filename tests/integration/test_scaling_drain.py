"""Scale-in drains: instances leaving the group are deregistered from the gateway, finish their in-flight requests
(draining) and only then are stopped (terminated); clients see no failed request."""

from __future__ import annotations

import pytest

from support import StackWatcher, WrkLoad, pid_running, scaling_group, tool, wait_for
from support import scaling_stack  # noqa: F401 (a fixture)


@pytest.mark.time_limit(60)
def test_scale_in_during_load_drains_and_drops_no_request(scaling_stack, tmp_path):
    """MUST: `cumulo scale web --desired 2` from 6 while wrk runs on /slow?ms=500: zero non-2xx and socket errors;
    every removed instance goes draining, then terminated (its process gone); what stays is zone-balanced."""
    tool("wrk")
    stack = scaling_stack([scaling_group("web", min=2, max=6, desired=6, drain_timeout="5s")])
    before = {(i["id"], i["pid"]) for i in stack.instances("web")}
    assert len(before) == 6, stack.state()

    with StackWatcher(stack, "web", interval=0.03) as watch:
        run = WrkLoad(tmp_path, stack.url("/slow?ms=500"), duration_s=9, connections=16)
        try:
            run.sleep_until(2.5)
            out = stack.cli("scale", "web", "--desired", "2")
            assert out.returncode == 0, f"cumulo scale failed ({out.returncode}): {out.stdout}{out.stderr}"
            g = stack.wait_settled("web", timeout=15, desired=2)
            res = run.result()
        finally:
            run.stop()
        watch.poll()

        after = {(i["id"], i["pid"]) for i in stack.instances("web")}
        removed = before - after
        assert len(removed) == 4 and after <= before, f"expected 4 of the 6 removed: before {before}, after {after}"
        # Instance ids are never reused within a run; a terminated instance may stay listed with pid 0.
        histories = {k: watch.states_of(k[0]) for k in removed}
        print(f"scale-in: {res.describe().splitlines()[0]}\nremoved instances' states: {histories}")
        for (iid, pid), states in histories.items():
            assert "draining" in states, f"{iid} (pid {pid}) was never seen draining: {states}"
            after_draining = states[states.index("draining") + 1:]
            gone = not any(i["id"] == iid and i.get("pid") == pid and i.get("state") != "terminated"
                           for i in stack.instances("web", states=None))
            assert gone and ("terminated" in after_draining or not after_draining), (
                f"{iid} (pid {pid}) did not go draining -> terminated: {states}")
            assert "in_service" not in after_draining, f"{iid} went back in service while draining: {states}"
            wait_for(lambda: not pid_running(pid), 5, what=f"{iid}'s process (pid {pid}) gone")

    assert g["zones"] == {"a": 1, "b": 1}, f"scale-in should keep the zones balanced: {g}"
    events = [e["message"] for e in stack.events("web")]
    assert any("6 -> 2" in m or "6->2" in m for m in events), f"no event for the manual scale-in: {events}"
    res.assert_clean(min_requests=100)
