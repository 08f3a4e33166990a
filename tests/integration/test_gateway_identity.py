"""What an elastic-IP keeper needs from a gateway (docs/admin-api.md, Elastic IPs): the cumulo-gateway field on
every response, with the leases set by PUT/DELETE /eips; monitor_uri; draining without stopping (POST /drain)."""

import socket
import ssl
import subprocess

import pytest
import requests

from support import LOCALHOST, RawConnection, closed_port, metric_value, wait_for


def assert_json_error(r, status):
    assert r.status_code == status, f"expected {status}, got {r.status_code} {r.text}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"], body


def identity_config(app, server_id="gateway-a"):
    return {
        "server_id": server_id,
        "monitor_uri": "/_gateway/alive",
        "routes": [
            {"name": "cached", "host": "site.test", "path_prefix": "/echo", "target_group": "web",
             "default_cache_control": "public, max-age=60", "cache": {"enabled": True}},
            {"name": "site", "host": "site.test", "target_group": "web"},
            {"name": "dead", "host": "dead.test", "target_group": "dead"},
        ],
        "target_groups": [
            {"name": "web", "targets": [app.target()]},
            # Refused at every request (no ejection, no retry): each is answered 502.
            {"name": "dead", "retries": {"attempts": 0},
             "outlier_detection": {"consecutive_5xx": 0, "consecutive_connect_failures": 0},
             "targets": [{"address": f"{LOCALHOST}:{closed_port()}"}]},
        ],
    }


def get(gw, path, host="site.test", **kw):
    return requests.get(gw.url(path), headers={"Host": host}, timeout=10, **kw)


def answers(gw):
    """One answer of each kind the gateway gives a client: proxied, cached, its own 404 and 502, monitor."""
    cached = get(gw, "/echo?k=1")
    assert cached.headers.get("X-Cache") == "HIT", f"the second GET of /echo?k=1 should hit: {cached.headers}"
    return {
        "proxied": get(gw, "/slow?ms=1"),
        "cached": cached,
        "404": get(gw, "/", host="nowhere.test"),
        "502": get(gw, "/", host="dead.test"),
        "monitor": get(gw, "/_gateway/alive", host="anything.test"),
    }


def assert_field(gw, expected):
    got = answers(gw)
    assert [got[k].status_code for k in got] == [200, 200, 404, 502, 200], {k: r.status_code for k, r in got.items()}
    for kind, r in got.items():
        assert r.headers.get("cumulo-gateway") == expected, f"{kind}: {r.status_code} {dict(r.headers)}"


def test_the_field_names_the_gateway_and_its_leases_on_every_answer(webapp, gateway):
    app = webapp("a")
    gw = gateway(identity_config(app))
    first = get(gw, "/echo?k=1")  # stored in the cache for the HITs below
    assert first.status_code == 200 and first.headers.get("X-Cache") == "MISS", first.headers
    assert first.headers.get("cumulo-gateway") == "gateway-a", first.headers
    assert_field(gw, "gateway-a")
    assert gw.admin("GET", "/eips").json() == {"server_id": "gateway-a", "eips": {}}

    r = gw.admin("PUT", "/eips/web", json={"term": 7})
    assert r.status_code == 200 and r.json() == {"server_id": "gateway-a", "eips": {"web": 7}}, r.text
    r = gw.admin("PUT", "/eips/api", json={"term": 3})
    assert r.status_code == 200, r.text
    # Sorted by name whatever the order they were set in; the PUT's answer means every worker has it.
    assert_field(gw, "gateway-a api=3 web=7")

    assert gw.admin("PUT", "/eips/web", json={"term": 8}).status_code == 200
    r = gw.admin("DELETE", "/eips/api")
    assert r.status_code == 200 and r.json()["eips"] == {"web": 8}, r.text
    assert_json_error(gw.admin("DELETE", "/eips/api"), 404)
    assert gw.admin("GET", "/eips").json() == {"server_id": "gateway-a", "eips": {"web": 8}}
    # The cached object was stored under web=7: it is served with the field of now, not the one it was stored with.
    assert_field(gw, "gateway-a web=8")

    # Leases are run-time state: a reload keeps them, and a new server_id shows at once, on stored objects too.
    gw.write_config({**gw.config, "server_id": "gateway-b"})
    r = gw.reload_post()
    assert r.status_code == 200, r.text
    assert gw.admin("GET", "/eips").json() == {"server_id": "gateway-b", "eips": {"web": 8}}
    # A reload reaches the workers just after its answer (as its routes do).
    wait_for(lambda: get(gw, "/slow?ms=1").headers.get("cumulo-gateway") == "gateway-b web=8", 5,
             what="the reloaded server_id in the field")
    assert_field(gw, "gateway-b web=8")

    # Without server_id there is no field, whatever the leases.
    cfg = dict(gw.config)
    del cfg["server_id"]
    gw.write_config(cfg)
    assert gw.reload_post().status_code == 200
    wait_for(lambda: "cumulo-gateway" not in get(gw, "/slow?ms=1").headers, 5, what="no field after the reload")
    for kind, r in answers(gw).items():
        assert "cumulo-gateway" not in r.headers, f"{kind}: {dict(r.headers)}"


def test_a_restart_starts_without_leases(webapp, gateway):
    app = webapp("a")
    gw = gateway(identity_config(app))
    assert gw.admin("PUT", "/eips/web", json={"term": 2}).status_code == 200
    gw.proc.stop()
    gw.start()
    assert gw.admin("GET", "/eips").json() == {"server_id": "gateway-a", "eips": {}}
    assert get(gw, "/slow?ms=1").headers.get("cumulo-gateway") == "gateway-a"


def test_bad_admin_input_is_refused_and_changes_nothing(webapp, gateway):
    app = webapp("a")
    gw = gateway(identity_config(app))
    assert gw.admin("PUT", "/eips/web", json={"term": 5}).status_code == 200
    for body in [{"term": 0}, {"term": -1}, {"term": 1.5}, {"term": "7"}, {"term": True}, {"term": 2 ** 63},
                 {"term": None}, {}, [], "7"]:
        assert_json_error(gw.admin("PUT", "/eips/web", json=body), 400)
    assert_json_error(gw.admin("PUT", "/eips/web", data=b"{not json"), 400)
    for name in ["bad.name", "a=b", "x" * 65, "a%20b"]:
        assert_json_error(gw.admin("PUT", f"/eips/{name}", json={"term": 1}), 400)
    assert gw.admin("PUT", "/eips/" + "x" * 64, json={"term": 9223372036854775807}).status_code == 200
    assert gw.admin("DELETE", "/eips/" + "x" * 64).status_code == 200
    assert_json_error(gw.admin("DELETE", "/eips/nothere"), 404)
    assert_json_error(gw.admin("POST", "/eips/web", json={"term": 1}), 404)
    for body in [{"on": "yes"}, {"on": 1}, {}, {"off": True}, [True]]:
        assert_json_error(gw.admin("POST", "/drain", json=body), 400)
    assert_json_error(gw.admin("POST", "/drain", data=b"on"), 400)
    assert gw.admin("GET", "/eips").json()["eips"] == {"web": 5}, "failed calls must not change the leases"
    assert gw.admin("GET", "/drain").json()["draining"] is False, "failed calls must not start a drain"
    assert get(gw, "/slow?ms=1").headers.get("cumulo-gateway") == "gateway-a web=5"


def drain(gw, on):
    r = gw.admin("POST", "/drain", json={"on": on})
    assert r.status_code == 200 and r.json()["draining"] is on, r.text
    return r.json()


def client_connections(gw):
    return gw.admin("GET", "/drain").json()["client_connections"]


def raw_get(conn, path, host="site.test"):
    conn.send(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return conn.read_response()


def test_monitor_uri_and_draining_without_stopping(webapp, gateway):
    app = webapp("a")
    gw = gateway(identity_config(app))
    port = gw.port

    # The monitor answer keeps the connection, is never routed nor counted as a route's request.
    with RawConnection(port) as c:
        for path in ["/_gateway/alive", "/_gateway/alive?probe=1"]:
            r = raw_get(c, path, host="anything.test")
            assert r.status == 200 and r.body == b"ok\n", r
            assert r.header("connection") is None and r.header("cumulo-gateway") == "gateway-a", r
    text = gw.metrics()
    assert metric_value(text, "cumulo_gateway_monitor_requests_total", code="2xx") == 2, text
    assert not metric_value(text, "cumulo_gateway_requests_total", route="site", code="2xx"), \
        "monitor answers are not a route's traffic"
    wait_for(lambda: client_connections(gw) == 0, 5, what="the monitor connection to be counted closed")

    idle = RawConnection(port)
    busy = RawConnection(port)
    assert raw_get(idle, "/slow?ms=1").status == 200  # then idle between requests
    busy.send(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: site.test\r\n\r\n")  # in use when the drain starts
    wait_for(lambda: client_connections(gw) == 2, 5, what="client_connections to count both connections")
    assert gw.admin("GET", "/drain").json() == {"draining": False, "client_connections": 2}

    answer = drain(gw, True)
    # The answer comes once every worker has applied it: the idle connection is gone already.
    assert answer["client_connections"] == 1, answer
    assert idle.closed_by_peer(timeout=2), "an idle keep-alive connection must be closed when the drain starts"
    idle.close()
    r = busy.read_response()
    assert r.status == 200 and r.body == b"waited 1500 ms\n", r
    assert (r.header("connection") or "").lower() == "close", f"the last response must say so: {r}"
    assert busy.closed_by_peer(timeout=2)
    busy.close()
    wait_for(lambda: client_connections(gw) == 0, 5, what="client_connections to reach 0")

    # New connections are still accepted and served, one response each; the monitor says draining.
    r, closed = raw_once(port, "/slow?ms=1")
    assert r.status == 200 and (r.header("connection") or "").lower() == "close" and closed, r
    r, closed = raw_once(port, "/_gateway/alive")
    assert r.status == 503 and r.body == b"draining\n" and closed, r
    assert r.header("cumulo-gateway") == "gateway-a", r
    assert metric_value(gw.metrics(), "cumulo_gateway_monitor_requests_total", code="5xx") == 1
    assert metric_value(gw.metrics(), "cumulo_gateway_draining") == 1

    # Off: keep-alive again.
    answer = drain(gw, False)
    with RawConnection(port) as c:
        for path in ["/slow?ms=1", "/_gateway/alive", "/echo?k=2"]:
            r = raw_get(c, path)
            assert r.status == 200 and r.header("connection") is None, r
        assert not c.closed_by_peer(timeout=0.3)
        assert client_connections(gw) == 1
    wait_for(lambda: client_connections(gw) == 0, 5, what="client_connections to reach 0 again")
    assert metric_value(gw.metrics(), "cumulo_gateway_draining") == 0


def raw_once(port, path):
    with RawConnection(port) as c:
        r = raw_get(c, path)
        return r, c.closed_by_peer(timeout=2)


@pytest.fixture
def cert(tmp_path, openssl):
    cert, key = tmp_path / "site.pem", tmp_path / "site.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=site.test", "-addext", "subjectAltName=DNS:site.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return {"cert": str(cert), "key": str(key)}


def test_drain_closes_idle_tls_keep_alive_connections(webapp, gateway, cert):
    app = webapp("a")
    gw = gateway({**identity_config(app), "listeners": [{"name": "https", "tls": {"certificates": [cert]}}]})
    ctx = ssl.create_default_context(cafile=cert["cert"])
    with socket.create_connection((LOCALHOST, gw.port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="site.test") as tls:
        for _ in range(2):
            tls.sendall(b"GET /_gateway/alive HTTP/1.1\r\nHost: site.test\r\n\r\n")
            got = b""
            while not got.endswith(b"ok\n"):
                chunk = tls.recv(4096)
                assert chunk, f"closed before the answer: {got!r}"
                got += chunk
            assert got.startswith(b"HTTP/1.1 200 ") and b"\r\ncumulo-gateway: gateway-a\r\n" in got, got
            assert b"Connection: close" not in got, got
        assert client_connections(gw) == 1
        drain(gw, True)
        try:
            end = tls.recv(4096)  # close_notify, then the end of the stream
        except (ssl.SSLEOFError, ConnectionResetError):
            end = b""
        assert end == b"", f"an idle TLS connection must be closed by the drain: {end!r}"
    wait_for(lambda: client_connections(gw) == 0, 5, what="client_connections to reach 0")
    drain(gw, False)
