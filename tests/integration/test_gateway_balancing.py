"""Spreading requests over targets: round robin, weighted, least outstanding, zone aware."""

import threading
import time

import requests

from support import instance_counts, wait_for

FAST_CHECK = {"interval": "200ms", "timeout": "500ms", "healthy_threshold": 2, "unhealthy_threshold": 2}


def test_round_robin_spreads_over_every_target_in_both_zones(webapp, gateway):
    apps = [webapp("a"), webapp("a"), webapp("b"), webapp("b")]
    gw = gateway({"zone": "a", "target_groups": [{"name": "web", "balance": "round_robin",
                                                  "targets": [a.target() for a in apps]}]})
    # A new connection per request lands on either worker; one keep-alive connection stays on one.
    counts = instance_counts(gw.url("/"), 120)
    with requests.Session() as s:
        kept = instance_counts(gw.url("/"), 80, session=s)
    assert set(counts) == {a.id for a in apps}, counts
    for a in apps:
        assert counts[a.id] >= 15, f"{a.id} got too small a share of 120: {counts}"
        # On one connection (one worker) round robin is exact.
        assert kept[a.id] == 20, f"round robin on one connection is not even: {kept}"


def test_weighted_balance_follows_weights(webapp, gateway):
    light, heavy = webapp("a"), webapp("b")
    gw = gateway({"target_groups": [{"name": "web", "balance": "weighted",
                                     "targets": [light.target(weight=1), heavy.target(weight=3)]}]})
    with requests.Session() as s:
        counts = instance_counts(gw.url("/"), 200, session=s)
    counts_new_conns = instance_counts(gw.url("/"), 200)
    for c in (counts, counts_new_conns):
        ratio = c.get(heavy.id, 0) / max(1, c.get(light.id, 0))
        assert 2.4 <= ratio <= 3.6, f"weights 1:3 gave {c} (ratio {ratio:.2f})"


def test_least_outstanding_avoids_a_target_stuck_in_a_slow_request(webapp, gateway):
    apps = [webapp("a"), webapp("a"), webapp("a")]
    gw = gateway({"target_groups": [{"name": "web", "balance": "least_outstanding",
                                     "targets": [a.target() for a in apps]}]})
    slow_result = {}

    def slow():
        r = requests.get(gw.url("/slow?ms=3000"), timeout=10)
        slow_result["status"] = r.status_code
        slow_result["instance"] = r.headers.get("X-Instance-Id")

    t = threading.Thread(target=slow)
    t.start()
    busy = wait_for(lambda: [x for x in gw.targets() if x["in_flight"] >= 1], 3, what="the slow request in flight")
    assert len(busy) == 1, busy
    stuck = busy[0]["address"]
    stuck_id = next(a.id for a in apps if a.address == stuck)
    counts = instance_counts(gw.url("/"), 40)
    t.join(timeout=10)
    assert slow_result.get("status") == 200 and slow_result.get("instance") == stuck_id, slow_result
    assert counts.get(stuck_id, 0) == 0, f"new requests went to {stuck_id}, busy with a slow request: {counts}"
    others = [a.id for a in apps if a.id != stuck_id]
    assert all(counts.get(o, 0) > 0 for o in others), f"idle targets should share the load: {counts}"


def test_zone_aware_prefers_own_zone_and_spills_when_it_is_unhealthy_or_dead(webapp, gateway):
    a1, a2, b1, b2 = webapp("a"), webapp("a"), webapp("b"), webapp("b")
    gw = gateway({"zone": "a", "target_groups": [{
        "name": "web", "balance": "round_robin", "zone_aware": True, "zone_min_healthy_percent": 50,
        "health_check": FAST_CHECK, "targets": [b1.target(), a1.target(), b2.target(), a2.target()]}]})
    zone_of = {a.id: a.zone for a in (a1, a2, b1, b2)}

    def zones(counts):
        out = {}
        for iid, n in counts.items():
            out[zone_of[iid]] = out.get(zone_of[iid], 0) + n
        return out

    counts = instance_counts(gw.url("/"), 40)
    assert zones(counts) == {"a": 40}, f"a gateway in zone a should keep traffic in zone a: {counts}"
    assert counts.get(a1.id, 0) > 0 and counts.get(a2.id, 0) > 0, counts

    # Zone a fails its health checks: traffic spills to zone b.
    a1.fail_health()
    a2.fail_health()
    for a in (a1, a2):
        gw.wait_target(a.address, lambda t: t["health"] == "unhealthy", 5, what=f"{a.id} unhealthy")
    counts = instance_counts(gw.url("/"), 40)
    assert zones(counts) == {"b": 40}, f"zone a is unhealthy, zone b should take it all: {counts}"
    assert counts.get(b1.id, 0) > 0 and counts.get(b2.id, 0) > 0, counts

    # Zone a recovers: traffic comes home.
    a1.ok_health()
    a2.ok_health()
    for a in (a1, a2):
        gw.wait_target(a.address, lambda t: t["health"] == "healthy", 5, what=f"{a.id} healthy again")
    counts = instance_counts(gw.url("/"), 20)
    assert zones(counts) == {"a": 20}, counts

    # Zone a dies outright: no request fails, zone b answers at once (before any health check noticed).
    a1.kill()
    a2.kill()
    time.sleep(0.05)
    counts = instance_counts(gw.url("/"), 40)
    assert zones(counts) == {"b": 40}, counts
    for a in (a1, a2):
        gw.wait_target(a.address, lambda t: t["health"] == "unhealthy" or t["ejected"], 5,
                       what=f"{a.id} (killed) marked unhealthy or ejected")
