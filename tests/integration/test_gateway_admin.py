"""The admin API (docs/admin-api.md): register, weights, errors as JSON, /metrics."""

import http.client
import time

import requests

from support import LOCALHOST, instance_counts, metric_value, wait_for


def assert_json_error(r, status):
    assert r.status_code == status, f"expected {status}, got {r.status_code} {r.text}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"], body


def test_register_change_weight_and_errors(webapp, gateway):
    a, b = webapp("a"), webapp("b")
    gw = gateway({"target_groups": [{"name": "web", "balance": "weighted", "targets": [a.target()]}]})

    r = gw.admin("POST", "/targets/web", json={"address": b.address, "zone": "b", "weight": 1})
    assert r.status_code == 201, r.text
    entry = gw.target(b.address)
    assert entry and entry["source"] == "api" and entry["zone"] == "b" and entry["weight"] == 1, entry
    assert entry["state"] == "active" and entry["health"] == "healthy", entry  # no health check: at once
    counts = instance_counts(gw.url("/"), 20)
    assert counts.get(b.id, 0) > 0, f"a registered target should get traffic: {counts}"

    assert_json_error(gw.admin("POST", "/targets/web", json={"address": b.address, "zone": "b"}), 409)

    r = gw.admin("PUT", f"/targets/web/{b.address}", json={"weight": 3})
    assert r.status_code == 200, r.text
    assert gw.target(b.address)["weight"] == 3
    # The address in the path is percent-decoded (clients encode the ':').
    r = gw.admin("PUT", "/targets/web/" + b.address.replace(":", "%3a").replace(".", "%2E"), json={"weight": 3})
    assert r.status_code == 200 and r.json()["target"] == b.address, r.text
    with requests.Session() as s:
        counts = instance_counts(gw.url("/"), 200, session=s)
    ratio = counts.get(b.id, 0) / max(1, counts.get(a.id, 0))
    assert 2.4 <= ratio <= 3.6, f"weight 3 against 1 should give about 3:1: {counts}"

    # Errors: 4xx with {"error": "..."}.
    assert_json_error(gw.admin("POST", "/targets/nosuchgroup", json={"address": "127.0.0.1:1"}), 404)
    assert_json_error(gw.admin("POST", "/targets/web", data=b"{not json"), 400)
    assert_json_error(gw.admin("POST", "/targets/web", json={"zone": "a"}), 400)
    assert_json_error(gw.admin("POST", "/targets/web", json={"address": "127.0.0.1:1", "weight": 5000}), 400)
    assert_json_error(gw.admin("POST", "/targets/web", json={"address": "not-an-address"}), 400)
    assert_json_error(gw.admin("PUT", "/targets/web/127.0.0.1:1", json={"weight": 2}), 404)
    assert_json_error(gw.admin("PUT", f"/targets/web/{b.address}", json={"weight": "heavy"}), 400)
    assert_json_error(gw.admin("DELETE", "/targets/web/127.0.0.1:1"), 404)
    # A '%' without two hex digits (sent as is: requests would encode the '%' itself).
    for method, path in [("PUT", "/targets/web/127.0.0.1%3"), ("DELETE", "/targets/web/127.0.0.1%zz1")]:
        conn = http.client.HTTPConnection(LOCALHOST, gw.admin_port, timeout=10)
        conn.request(method, path, body=b'{"weight": 2}')
        r = conn.getresponse()
        assert r.status == 400 and b"percent-encoding" in r.read(), (method, path, r.status)
        conn.close()
    assert_json_error(gw.admin("DELETE", f"/targets/web/{b.address}?drain_timeout=soon"), 400)
    assert_json_error(gw.admin("GET", "/nothing-here"), 404)
    assert gw.target(b.address)["weight"] == 3, "failed calls must not change anything"


def test_registered_target_waits_for_its_first_health_check(webapp, gateway):
    a, b = webapp("a"), webapp("a")
    gw = gateway({"target_groups": [{"name": "web", "health_check": {"interval": "300ms", "healthy_threshold": 2},
                                     "targets": [a.target()]}]})
    b.fail_health()  # its checks fail until it says otherwise: traffic must wait for the first passed check
    r = gw.admin("POST", "/targets/web", json={"address": b.address, "zone": "a"})
    assert r.status_code == 201, r.text
    assert gw.target(b.address)["health"] == "initial", gw.target(b.address)
    time.sleep(0.7)  # a couple of failed checks
    assert gw.target(b.address)["health"] in ("initial", "unhealthy"), gw.target(b.address)
    assert instance_counts(gw.url("/"), 6) == {a.id: 6}, "an unchecked registered target must not get traffic yet"
    b.ok_health()
    gw.wait_target(b.address, lambda t: t["health"] == "healthy", 5, what="the registered target to pass its checks")
    counts = instance_counts(gw.url("/"), 10)
    assert counts.get(b.id, 0) > 0, counts


def test_metrics_have_route_counters_and_target_health(webapp, gateway):
    a, b = webapp("a"), webapp("b")
    gw = gateway({"routes": [{"name": "site", "target_group": "web"}],
                  "target_groups": [{"name": "web", "targets": [a.target(), b.target()]}]})
    before = metric_value(gw.metrics(), "cumulo_gateway_requests_total", route="site", code="2xx") or 0
    with requests.Session() as s:  # one connection, one worker: round robin gives exactly 6 each
        instance_counts(gw.url("/"), 12, session=s)
    text = gw.metrics()
    assert "# TYPE cumulo_gateway_requests_total counter" in text, text[:2000]
    after = metric_value(text, "cumulo_gateway_requests_total", route="site", code="2xx")
    assert after is not None and after - before == 12, f"requests_total{{route=site,code=2xx}} {before} -> {after}"
    for t in (a, b):
        assert metric_value(text, "cumulo_gateway_target_healthy", group="web", target=t.address) == 1, text
        assert metric_value(text, "cumulo_gateway_target_responses_total", target=t.address, code="2xx") == 6
    assert metric_value(text, "cumulo_gateway_request_duration_seconds_count", route="site") is not None, \
        "latency histogram per route"

    b.kill()
    wait_for(lambda: requests.get(gw.url("/"), timeout=5).status_code == 200 and
             metric_value(gw.metrics(), "cumulo_gateway_target_healthy", target=b.address) == 0, 5,
             what="the killed target's health gauge to drop to 0")


def test_access_log_writes_json_lines(webapp, gateway, tmp_path):
    import json

    app = webapp("a")
    log = tmp_path / "access.log"
    gw = gateway({"access_log": str(log), "routes": [{"name": "site", "target_group": "web"}],
                  "target_groups": [{"name": "web", "targets": [app.target()]}]})
    requests.get(gw.url("/echo?q=1"), timeout=5, headers={"X-Request-Id": "log-me-1"})
    requests.get(gw.url("/nope"), timeout=5)

    def entries():
        if not log.exists():
            return None
        lines = [l for l in log.read_text().splitlines() if l.strip()]
        return [json.loads(l) for l in lines] if len(lines) >= 2 else None

    got = wait_for(entries, 5, what="two access log lines")
    first = next(e for e in got if e.get("request_id") == "log-me-1")
    assert first["status"] == 200 and first["method"] == "GET" and first["path"] == "/echo?q=1", first
    assert first["route"] == "site" and first["target"] == app.address, first
    assert any(e.get("status") == 404 for e in got), got


def test_stats_count_requests_bytes_and_latency_per_target(webapp, gateway):
    a, b = webapp("a"), webapp("b")
    gw = gateway({"target_groups": [{"name": "web", "targets": [a.target(), b.target()]}]})
    with requests.Session() as s:
        for _ in range(10):
            assert s.get(gw.url("/slow?ms=20"), timeout=5).status_code == 200
    stats = gw.admin("GET", "/stats").json()["targets"]
    by_addr = {t["address"]: t for t in stats}
    assert set(by_addr) == {a.target()["address"], b.target()["address"]}
    for t in stats:
        assert t["group"] == "web"
        assert t["requests"] == 5, t
        assert t["responses_5xx"] == 0
        assert t["bytes_in"] > 0 and t["bytes_out"] >= 0
        assert t["in_flight"] == 0
        counts, bounds = t["latency_counts"], t["latency_bounds"]
        assert len(counts) == len(bounds) + 1 and counts[-1] == 5
        assert counts == sorted(counts)  # cumulative
        # Every request took at least 20 ms: none in the buckets below that.
        assert all(c == 0 for c, le in zip(counts, bounds) if le < 0.02), t
