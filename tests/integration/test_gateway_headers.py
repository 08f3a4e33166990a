"""What the gateway adds to and removes from requests and responses (RFC 9110 section 7.6)."""

import json

import requests

from support import FakeUpstream, RawConnection, echo_headers


def test_forwarding_headers_and_via(webapp, gateway):
    app = webapp("a")
    gw = gateway({"target_groups": [{"name": "web", "targets": [app.target()]}]})
    r = requests.get(gw.url("/echo?x=1"), timeout=5)
    assert r.status_code == 200
    echo = r.json()
    h = echo_headers(echo)
    assert h.get("x-forwarded-for") == ["127.0.0.1"], h
    assert h.get("x-forwarded-proto") == ["http"], h
    assert h.get("x-forwarded-port") == [str(gw.port)], h
    assert any("cumulo" in v for v in h.get("via", [])), f"Via on the forwarded request: {h}"
    assert echo["target"] == "/echo?x=1", echo
    assert "cumulo" in r.headers.get("Via", ""), f"Via on the response: {r.headers}"

    # An incoming X-Forwarded-For is appended to; spoofed -Proto/-Port are replaced.
    r = requests.get(gw.url("/echo"), timeout=5, headers={
        "X-Forwarded-For": "203.0.113.7, 198.51.100.2", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "1"})
    h = echo_headers(r.json())
    assert h.get("x-forwarded-for") == ["203.0.113.7, 198.51.100.2, 127.0.0.1"], h
    assert h.get("x-forwarded-proto") == ["http"], h
    assert h.get("x-forwarded-port") == [str(gw.port)], h


def test_request_id_is_generated_unique_and_kept_when_sent(webapp, gateway):
    app = webapp("a")
    gw = gateway({"target_groups": [{"name": "web", "targets": [app.target()]}]})
    ids = set()
    for _ in range(20):
        h = echo_headers(requests.get(gw.url("/echo"), timeout=5).json())
        assert len(h.get("x-request-id", [])) == 1, h
        ids.add(h["x-request-id"][0])
    assert len(ids) == 20, f"request ids should be unique: {ids}"
    assert all(i.strip() for i in ids)

    h = echo_headers(requests.get(gw.url("/echo"), timeout=5, headers={"X-Request-Id": "abc-123"}).json())
    assert h.get("x-request-id") == ["abc-123"], h


def test_hop_by_hop_request_headers_are_not_forwarded(webapp, gateway):
    app = webapp("a")
    gw = gateway({"target_groups": [{"name": "web", "targets": [app.target()]}]})
    with RawConnection(gw.port) as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, Foo\r\nFoo: secret\r\n"
               b"Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n"
               b"X-Kept: yes\r\n\r\n")
        resp = c.read_response()
    assert resp.status == 200, resp
    h = echo_headers(json.loads(resp.body))
    for gone in ("foo", "connection", "keep-alive", "te", "proxy-connection"):
        assert gone not in h, f"hop-by-hop header {gone} reached the target: {h}"
    assert h.get("x-kept") == ["yes"], h
    assert h.get("host") == ["example.test"], h


def test_hop_by_hop_response_headers_are_not_forwarded(gateway):
    upstream = FakeUpstream("hop_by_hop")
    try:
        gw = gateway({"target_groups": [{"name": "web", "targets": [upstream.target()]}]})
        with RawConnection(gw.port) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            resp = c.read_response()
        assert resp.status == 200 and resp.body == b"ok\n", resp
        names = {k.lower() for k, _ in resp.headers}
        assert "x-secret" not in names and "keep-alive" not in names, resp.headers
        assert resp.header("X-Public") == "yes"
        assert "cumulo" in (resp.header("Via") or ""), resp.headers
    finally:
        upstream.stop()
