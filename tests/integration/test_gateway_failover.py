"""Targets that fail, die or leave: SIGKILL under load, deregistration with draining, health checks, outlier
ejection, retries."""

import threading
import time

import pytest
import requests

from support import FakeUpstream, Wrk, closed_port, instance_counts, metric_value, wait_for

FAST_CHECK = {"interval": "200ms", "timeout": "500ms", "healthy_threshold": 2, "unhealthy_threshold": 2}


@pytest.mark.time_limit(60)
def test_target_killed_during_load_costs_no_request(webapp, gateway, wrk, tmp_path):
    """MUST: SIGKILL of one target in the middle of a wrk run: zero non-2xx, zero socket errors."""
    apps = [webapp("a"), webapp("a"), webapp("b")]
    gw = gateway({"target_groups": [{"name": "web", "targets": [a.target() for a in apps]}]})
    victim = apps[1]
    run = Wrk(tmp_path, gw.url("/"), duration_s=5, connections=16, threads=1)
    run.sleep_until(2.0)
    served_before = metric_value(gw.metrics(), "cumulo_gateway_target_responses_total", target=victim.address,
                                 code="2xx")
    victim.kill()
    result = run.result()
    result.assert_clean(min_requests=1000)
    assert served_before and served_before > 0, "the killed target should have served traffic before it died"
    assert gw.proc.alive(), gw.proc.log_tail()


@pytest.mark.time_limit(40)
def test_deregistered_target_finishes_in_flight_request_then_disappears(webapp, gateway):
    """MUST: DELETE /targets/GROUP/ADDRESS drains: the in-flight slow request completes, new ones go elsewhere."""
    a, b = webapp("a"), webapp("b")
    gw = gateway({"target_groups": [{"name": "web", "drain_timeout": "20s", "targets": [a.target(), b.target()]}]})
    slow = {}

    def slow_request():
        try:
            r = requests.get(gw.url("/slow?ms=2000"), timeout=15)
            slow.update(status=r.status_code, instance=r.headers.get("X-Instance-Id"), body=r.text,
                        done=time.monotonic())
        except requests.RequestException as e:
            slow.update(error=repr(e))

    t = threading.Thread(target=slow_request)
    t.start()
    busy = wait_for(lambda: [x for x in gw.targets() if x["in_flight"] >= 1], 3, what="the slow request in flight")
    leaving = busy[0]["address"]
    leaving_id = a.id if leaving == a.address else b.id
    staying_id = b.id if leaving_id == a.id else a.id

    r = gw.admin("DELETE", f"/targets/web/{leaving}")
    assert r.status_code == 202, f"{r.status_code} {r.text}"
    deleted_at = time.monotonic()
    entry = gw.target(leaving)
    assert entry is not None, "a draining target should still be listed while its request is in flight"
    assert entry["state"] == "draining" and entry["in_flight"] == 1, entry

    counts = instance_counts(gw.url("/"), 30)
    assert counts == {staying_id: 30}, f"new requests reached the deregistered target: {counts}"
    assert gw.target(leaving)["state"] == "draining", "still draining while the slow request runs"

    t.join(timeout=15)
    assert slow.get("status") == 200, f"the in-flight request did not complete: {slow}"
    assert slow["instance"] == leaving_id, slow
    assert slow["done"] > deleted_at
    wait_for(lambda: gw.target(leaving) is None, 2, what=f"{leaving} gone from /targets after its request ended")
    counts = instance_counts(gw.url("/"), 10)
    assert counts == {staying_id: 10}, counts


@pytest.mark.time_limit(30)
def test_drain_timeout_cuts_requests_still_running(webapp, gateway):
    """A request outliving the drain timeout ends (502) when the timeout passes; the target is then gone."""
    a = webapp("a")
    gw = gateway({"target_groups": [{"name": "web", "targets": [a.target()]}]})
    slow = {}

    def slow_request():
        started = time.monotonic()
        try:
            r = requests.get(gw.url("/slow?ms=8000"), timeout=15)
            slow.update(status=r.status_code, body=r.text, took=time.monotonic() - started)
        except requests.RequestException as e:
            slow.update(error=repr(e), took=time.monotonic() - started)

    t = threading.Thread(target=slow_request)
    t.start()
    wait_for(lambda: [x for x in gw.targets() if x["in_flight"] >= 1], 3, what="the slow request in flight")
    r = gw.admin("DELETE", f"/targets/web/{a.address}?drain_timeout=1s")
    assert r.status_code == 202, r.text
    t.join(timeout=10)
    assert slow.get("took", 99) < 4, f"the request should end at the drain timeout, not run its 8 s: {slow}"
    assert slow.get("status") == 502 and "drain timeout" in slow.get("body", ""), slow
    wait_for(lambda: gw.target(a.address) is None, 2, what="the target gone after its drain timeout")


@pytest.mark.time_limit(40)
def test_active_health_check_takes_a_target_out_and_back(webapp, gateway):
    sick, well = webapp("a"), webapp("a")
    gw = gateway({"target_groups": [{"name": "web", "health_check": FAST_CHECK,
                                     "targets": [sick.target(), well.target()]}]})
    assert instance_counts(gw.url("/"), 10).get(sick.id, 0) > 0

    sick.fail_health()
    gw.wait_target(sick.address, lambda t: t["health"] == "unhealthy", 5, what="unhealthy after /healthz/fail")
    assert metric_value(gw.metrics(), "cumulo_gateway_target_healthy", target=sick.address) == 0
    assert metric_value(gw.metrics(), "cumulo_gateway_target_healthy", target=well.address) == 1
    counts = instance_counts(gw.url("/"), 30)
    assert counts == {well.id: 30}, f"an unhealthy target still got traffic: {counts}"

    sick.ok_health()
    gw.wait_target(sick.address, lambda t: t["health"] == "healthy", 5, what="healthy after /healthz/ok")
    counts = instance_counts(gw.url("/"), 30)
    assert counts.get(sick.id, 0) > 0, f"a recovered target should get traffic again: {counts}"


@pytest.mark.time_limit(30)
def test_outlier_detection_ejects_a_target_that_answers_5xx(webapp, gateway):
    bad = FakeUpstream("500")
    good = webapp("a")
    try:
        gw = gateway({"target_groups": [{
            "name": "web", "outlier_detection": {"consecutive_5xx": 3, "base_ejection": "30s"},
            "targets": [bad.target(), good.target()]}]})
        statuses = []
        with requests.Session() as s:  # one connection: round robin alternates exactly
            for _ in range(12):
                statuses.append(s.get(gw.url("/"), timeout=5).status_code)
        assert statuses.count(500) == 3, f"the failing target should be ejected after 3 5xx in a row: {statuses}"
        entry = gw.target(bad.address)
        assert entry["ejected"] is True, entry
        assert gw.target(good.address)["ejected"] is False
        assert metric_value(gw.metrics(), "cumulo_gateway_target_healthy", target=bad.address) == 0
        counts = instance_counts(gw.url("/"), 20)
        assert counts == {good.id: 20}, counts
    finally:
        bad.stop()


def test_connect_failure_is_retried_on_another_target(webapp, gateway):
    good = webapp("a")
    dead = f"127.0.0.1:{closed_port()}"
    gw = gateway({"target_groups": [{"name": "web", "targets": [{"address": dead, "zone": "a"}, good.target()]}]})
    counts = instance_counts(gw.url("/"), 40)
    assert counts == {good.id: 40}, counts
    text = gw.metrics()
    assert (metric_value(text, "cumulo_gateway_target_connect_failures_total", target=dead) or 0) >= 1, \
        "the closed port should have been tried (and failed) at least once"


def test_post_with_body_is_not_retried_after_upstream_reset_but_get_is(webapp, gateway):
    resetter = FakeUpstream("reset_after_body")
    good = webapp("a")
    try:
        gw = gateway({"target_groups": [{
            "name": "web", "outlier_detection": {"consecutive_5xx": 0, "consecutive_connect_failures": 0},
            "targets": [resetter.target(), good.target()]}]})
        body = b"x" * 10000
        posts = []
        with requests.Session() as s:
            for _ in range(4):
                r = s.post(gw.url("/upload"), data=body, timeout=5)
                posts.append(r.status_code)
        assert set(posts) <= {200, 502}, posts
        failed = posts.count(502)
        assert resetter.requests >= 1, f"round robin should have sent some POSTs to the resetting target: {posts}"
        assert failed == resetter.requests, (
            f"a POST whose body reached a target that then reset must not be retried elsewhere: "
            f"{resetter.requests} POSTs reached the resetting target, {failed} answered 502 ({posts})")

        # The same reset on an idempotent GET without a body is retried on the other target.
        before = resetter.requests
        counts = instance_counts(gw.url("/"), 10)
        assert counts == {good.id: 10}, counts
        assert resetter.requests > before, "some GETs should have been tried on the resetting target first"
    finally:
        resetter.stop()
