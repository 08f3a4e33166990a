"""Bodies and connections: 1 GiB both ways in bounded memory, chunked uploads, Expect: 100-continue, keep-alive,
pipelining."""

import hashlib
import json
import subprocess
import time

import pytest
import requests

from support import PatternBody, RawConnection, RssSampler, metric_value, pattern_bytes, wait_for

GIB = 1 << 30
RSS_LIMIT_KIB = 64 * 1024


@pytest.mark.time_limit(120)
def test_one_gib_upload_and_download_stream_in_bounded_memory(webapp, gateway, curl):
    app = webapp("a")
    gw = gateway({"target_groups": [{"name": "web", "targets": [app.target()]}]})
    with RssSampler(gw.pid) as rss:
        # Upload: curl reads 1 GiB from a pipe and sends it with Content-Length (no file on disk).
        body = PatternBody(GIB)
        up = subprocess.Popen([curl, "-sS", "--max-time", "90", "-T", "-", "-H", "Transfer-Encoding:",
                               "-H", f"Content-Length: {GIB}", gw.url("/upload")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            body.write_to(up.stdin)
        except BrokenPipeError:
            pass
        up.stdin.close()
        out = up.stdout.read()
        err = up.stderr.read()
        assert up.wait(timeout=60) == 0, f"curl upload failed: {err.decode(errors='replace')}"
        answer = json.loads(out)
        assert answer["bytes"] == GIB, answer
        assert answer["sha256"] == body.sha256, "the uploaded bytes arrived changed"

        # Download: 1 GiB from /bytes, every byte checked as it streams out of curl.
        down = subprocess.Popen([curl, "-sS", "--max-time", "90", "-o", "-", gw.url(f"/bytes?n={GIB}")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        offset = 0
        while True:
            chunk = down.stdout.read(1 << 20)
            if not chunk:
                break
            if chunk != pattern_bytes(offset, len(chunk)):
                down.kill()
                pytest.fail(f"downloaded bytes differ from the pattern near offset {offset}")
            offset += len(chunk)
        err = down.stderr.read()
        assert down.wait(timeout=30) == 0, f"curl download failed: {err.decode(errors='replace')}"
        assert offset == GIB, f"downloaded {offset} bytes of {GIB}"
    assert rss.peak_kib < RSS_LIMIT_KIB, f"gateway RSS peaked at {rss.peak_kib / 1024:.1f} MiB while streaming 1 GiB"


def test_chunked_upload_arrives_whole(webapp, gateway):
    app = webapp("a")
    gw = gateway({"target_groups": [{"name": "web", "targets": [app.target()]}]})
    body = PatternBody(16 << 20, block_size=65536 + 17)  # odd chunk sizes
    r = requests.post(gw.url("/upload"), data=iter(body), timeout=30)  # a generator: Transfer-Encoding: chunked
    assert r.status_code == 200, r.text
    assert r.json()["bytes"] == 16 << 20 and r.json()["sha256"] == body.sha256, r.text

    # Tiny chunks, a chunk extension and a trailer, written by hand.
    with RawConnection(gw.port) as c:
        c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n")
        resp = c.read_response()
    assert resp.status == 200, resp
    answer = json.loads(resp.body)
    assert answer["bytes"] == 11 and answer["sha256"] == hashlib.sha256(b"hello world").hexdigest(), answer


def test_expect_100_continue_with_curl(webapp, gateway, curl, tmp_path):
    app = webapp("a")
    gw = gateway({"target_groups": [{"name": "web", "targets": [app.target()]}]})
    data = tmp_path / "body.bin"
    payload = PatternBody(3 << 20)
    with open(data, "wb") as f:
        payload.write_to(f)
    # curl waits up to --expect100-timeout for the 100 before it sends the body anyway; 10 s shows a missing 100.
    p = subprocess.run([curl, "-sS", "-v", "--expect100-timeout", "10", "--max-time", "20",
                        "-H", "Expect: 100-continue", "--data-binary", f"@{data}", gw.url("/upload")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "< HTTP/1.1 100 Continue" in p.stderr, f"no 100 Continue reached curl:\n{p.stderr}"
    answer = json.loads(p.stdout)
    assert answer["bytes"] == 3 << 20 and answer["sha256"] == payload.sha256, answer


def test_keep_alive_connection_is_reused(webapp, gateway, curl):
    app = webapp("a")
    gw = gateway({"target_groups": [{"name": "web", "targets": [app.target()]}]})
    def accepted():
        return metric_value(gw.metrics(), "cumulo_gateway_client_connections_accepted_total") or 0
    # The start-up probe's connection may be accepted a moment later: start from a settled count.
    before = accepted()
    for _ in range(50):
        time.sleep(0.1)
        now = accepted()
        if now == before:
            break
        before = now
    with requests.Session() as s:
        for _ in range(25):
            r = s.get(gw.url("/"), timeout=5)
            assert r.status_code == 200
            assert r.headers.get("Connection", "").lower() != "close", r.headers
    after = metric_value(gw.metrics(), "cumulo_gateway_client_connections_accepted_total")
    assert after - before == 1, f"25 keep-alive requests should use one connection, the gateway accepted {after - before}"

    p = subprocess.run([curl, "-sS", "-v", "-o", "/dev/null", "-o", "/dev/null", gw.url("/"), gw.url("/echo")],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    assert "Re-using existing connection" in p.stderr, p.stderr


def test_pipelined_requests_get_responses_in_order(webapp, gateway):
    app = webapp("a")
    gw = gateway({"target_groups": [{"name": "web", "targets": [app.target()]}]})
    with RawConnection(gw.port) as c:
        # The slow one first: its answer must still come first.
        c.send(b"GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /echo?n=3 HTTP/1.1\r\nHost: x\r\n\r\n")
        first = c.read_response()
        second = c.read_response()
        third = c.read_response()
    def echo_target(resp):
        try:
            return json.loads(resp.body).get("target")
        except ValueError:
            return None

    assert first.status == 200 and echo_target(first) is None, f"the /slow answer should come first: {first}"
    assert second.status == 200 and echo_target(second) == "/echo?n=2", second
    assert third.status == 200 and echo_target(third) == "/echo?n=3", third


def test_head_and_http10_framing_on_one_connection(webapp, gateway):
    app = webapp("a")
    gw = gateway({"target_groups": [{"name": "web", "targets": [app.target()]}]})
    with RawConnection(gw.port) as c:
        # HEAD: a Content-Length but no body; the next response must start right after the head.
        c.send(b"HEAD /bytes?n=1000 HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes?n=10 HTTP/1.1\r\nHost: x\r\n\r\n")
        head = c.read_response(head_request=True)
        assert head.status == 200 and head.header("Content-Length") == "1000" and head.body == b"", head
        get = c.read_response()
        assert get.status == 200 and get.body == pattern_bytes(0, 10), get
    # An HTTP/1.0 client without keep-alive gets an HTTP/1.0 answer and the connection closes after it.
    with RawConnection(gw.port) as c:
        c.send(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200 and resp.raw_head.startswith(b"HTTP/1.0 200"), resp
        assert resp.body.startswith(b"hello from"), resp
        assert c.closed_by_peer(), "an HTTP/1.0 request without keep-alive ends the connection"


def test_client_leaving_mid_download_leaves_the_gateway_serving(webapp, gateway):
    app = webapp("a")
    gw = gateway({"target_groups": [{"name": "web", "targets": [app.target()]}]})
    for _ in range(3):
        with RawConnection(gw.port) as c:
            c.send(b"GET /bytes?n=536870912 HTTP/1.1\r\nHost: x\r\n\r\n")
            got = c.sock.recv(65536)
            assert got.startswith(b"HTTP/1.1 200"), got[:100]
    r = requests.get(gw.url("/bytes?n=100000"), timeout=5)
    assert r.status_code == 200 and r.content == pattern_bytes(0, 100000)
    with requests.Session() as s:
        for _ in range(5):
            assert s.get(gw.url("/"), timeout=5).status_code == 200
    assert gw.proc.alive()
    # Nothing leaks: no client connection stays open and nothing stays counted in flight.
    wait_for(lambda: metric_value(gw.metrics(), "cumulo_gateway_client_connections") == 0, 5,
             what="the open client connections gauge to return to 0")
    assert gw.target(app.address)["in_flight"] == 0, gw.target(app.address)
