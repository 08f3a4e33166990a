"""Bad input from clients and failing upstreams get a clear HTTP answer (raw sockets, exact bytes)."""

import time

import pytest

from support import FakeUpstream, RawConnection, closed_port, raw_request

LIMITS = {"max_header_bytes": "2KiB", "max_body_bytes": "1MiB", "header_timeout": "1s"}


@pytest.fixture
def gw(webapp, gateway):
    app = webapp("a")
    return gateway({"limits": LIMITS, "target_groups": [{"name": "web", "targets": [app.target()]}]})


def assert_rejected(resp, closed, status):
    assert resp is not None, "the gateway closed without answering"
    assert resp.status == status, f"expected {status}, got {resp}"
    assert closed, f"the gateway should close the connection after a {status}"
    assert resp.body, f"a {status} should say why in its body"


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header Name: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
], ids=["garbage", "extra-token", "control-char", "bad-version", "space-in-name", "no-colon"])
def test_malformed_request_gets_400_and_close(gw, request_bytes):
    resp, closed = raw_request(gw.port, request_bytes)
    if request_bytes.endswith(b"HTTP/9.9\r\nHost: x\r\n\r\n"):
        assert resp is not None and resp.status in (400, 505) and closed, resp
        return
    assert_rejected(resp, closed, 400)


def test_content_length_with_transfer_encoding_is_400(gw):
    resp, closed = raw_request(gw.port, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert_rejected(resp, closed, 400)


def test_two_differing_content_lengths_are_400(gw):
    resp, closed = raw_request(gw.port, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                        b"Content-Length: 6\r\n\r\nhello!")
    assert_rejected(resp, closed, 400)


def test_bad_chunk_size_is_rejected(gw):
    resp, closed = raw_request(gw.port, b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                        b"zz\r\nhello\r\n0\r\n\r\n")
    assert closed, "the connection should be closed after a bad chunk"
    assert resp is None or resp.status == 400, f"a bad chunk size must not be answered with {resp}"


def test_obs_fold_is_400(gw):
    resp, closed = raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: one\r\n two\r\n\r\n")
    assert_rejected(resp, closed, 400)


def test_head_over_max_header_bytes_is_431(gw):
    resp, closed = raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n")
    assert_rejected(resp, closed, 431)
    # Just under the limit is fine.
    resp, _ = raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1500 + b"\r\n\r\n")
    assert resp is not None and resp.status == 200, resp


def test_body_over_max_body_bytes_is_413(gw):
    resp, closed = raw_request(gw.port, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n"
                                        + b"x" * 65536)
    assert_rejected(resp, closed, 413)


def test_chunked_body_over_max_body_bytes_is_413(gw):
    """The limit is on the body, however it is framed (docs/configuration.md: limits.max_body_bytes)."""
    chunk = b"x" * 65536
    body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 32 + b"0\r\n\r\n"  # 2 MiB in 64 KiB chunks
    with RawConnection(gw.port, timeout=10) as c:
        c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            c.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            resp = c.read_response()
        except (ConnectionResetError, BrokenPipeError):
            resp = None
    assert resp is not None and resp.status == 413, f"a 2 MiB chunked body over a 1 MiB limit got {resp}"


def test_client_stalling_in_the_head_gets_408(gw):
    with RawConnection(gw.port, timeout=10) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")  # no blank line: the head never ends
        start = time.monotonic()
        resp = c.read_response()
        elapsed = time.monotonic() - start
        assert resp is not None and resp.status == 408, resp
        assert 0.7 <= elapsed <= 3.0, f"408 after {elapsed:.2f}s with header_timeout 1s"
        assert c.closed_by_peer(), "the connection should be closed after the 408"


def test_no_healthy_target_is_503_naming_the_cause(webapp, gateway):
    down, dead = webapp("a"), webapp("b")
    gw = gateway({"target_groups": [{
        "name": "web", "health_check": {"interval": "200ms", "timeout": "300ms", "unhealthy_threshold": 2},
        "targets": [down.target(), dead.target()]}]})
    down.fail_health()
    dead.kill()
    for t in (down, dead):
        gw.wait_target(t.address, lambda x: x["health"] == "unhealthy", 5, what=f"{t.id} unhealthy")
    resp, closed = raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert resp is not None and resp.status == 503, resp
    assert b"healthy" in resp.body.lower(), f"the 503 body should name the cause: {resp.body!r}"


def test_upstream_closing_without_answer_is_502(gateway):
    closer = FakeUpstream("close")
    try:
        gw = gateway({"target_groups": [{"name": "web", "targets": [closer.target()]}]})
        resp, closed = raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert resp is not None and resp.status == 502, resp
        assert closer.requests >= 1
        # The issue: "upstream failure -> 502/504 with a short body naming the cause".
        assert any(w in resp.body.lower() for w in (b"closed", b"reset", b"without")), \
            f"the 502 body should name the cause (the target closed without answering): {resp.body!r}"
    finally:
        closer.stop()


def test_every_target_refusing_connections_is_502(gateway):
    gw = gateway({"target_groups": [{"name": "web", "outlier_detection": {"consecutive_connect_failures": 0},
                                     "targets": [{"address": f"127.0.0.1:{closed_port()}"}]}]})
    resp, closed = raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert resp is not None and resp.status == 502, resp
    assert b"connect" in resp.body.lower() and b"refused" in resp.body.lower(), \
        f"the 502 body should name the cause (connection refused by the target): {resp.body!r}"


def test_upstream_slower_than_first_byte_timeout_is_504(webapp, gateway):
    app = webapp("a")
    gw = gateway({"routes": [{"name": "default", "target_group": "web", "timeouts": {"first_byte": "500ms"}}],
                  "target_groups": [{"name": "web", "targets": [app.target()]}]})
    start = time.monotonic()
    resp, closed = raw_request(gw.port, b"GET /slow?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
    elapsed = time.monotonic() - start
    assert resp is not None and resp.status == 504, resp
    assert elapsed < 2.0, f"504 after {elapsed:.2f}s with first_byte 500ms"
    # A fast request on the same route is fine.
    resp, _ = raw_request(gw.port, b"GET /slow?ms=50 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert resp is not None and resp.status == 200, resp
    assert gw.proc.alive()


def test_unknown_route_is_404(webapp, gateway):
    app = webapp("a")
    gw = gateway({"routes": [{"name": "api", "host": "api.example.test", "target_group": "web"}],
                  "target_groups": [{"name": "web", "targets": [app.target()]}]})
    resp, _ = raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: other.example.test\r\n\r\n")
    assert resp is not None and resp.status == 404, resp
    resp, _ = raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: api.example.test:8080\r\n\r\n")
    assert resp is not None and resp.status == 200, resp


@pytest.mark.parametrize("framing", [
    b"Content-Length: -1\r\n",
    b"Content-Length: abc\r\n",
    b"Content-Length: +5\r\n",
    b"Content-Length : 5\r\n",
    b"Transfer-Encoding: xchunked\r\n",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
], ids=["cl-negative", "cl-not-a-number", "cl-plus-sign", "space-before-colon", "te-unknown", "te-chunked-not-last"])
def test_ambiguous_body_framing_is_rejected(gw, framing):
    """Request smuggling defence (RFC 9112 sections 6.1 and 6.3): framing a proxy could read differently."""
    resp, closed = raw_request(gw.port, b"POST /upload HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n0\r\n\r\n")
    assert resp is not None and resp.status in (400, 501), f"{framing!r} got {resp}"
    assert closed, "the connection should be closed after rejecting the framing"
