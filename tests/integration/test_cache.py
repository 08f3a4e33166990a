"""The gateway's HTTP cache: coalescing, stale-if-error, revalidation, purge, ranges, Vary, edges."""

from __future__ import annotations

import hashlib
import http.server
import selectors
import socket
import threading
import time

import pytest
import requests

from support import LOCALHOST, metric_value


class Origin:
    """An origin whose answers a test steers: cache headers, delay, down (503 or refusing), ETag validation."""

    def __init__(self):
        self.counts: dict[str, int] = {}
        self.conditional = 0
        self.lock = threading.Lock()
        self.cache_control = "public, max-age=60"
        self.delay = 0.0
        self.down = False
        self.version = 1
        self.extra_headers: dict[str, str] = {}
        self.big = bytes(range(256)) * (50 * 1024 * 1024 // 256)
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                with origin.lock:
                    origin.counts[path] = origin.counts.get(path, 0) + 1
                if origin.delay:
                    time.sleep(origin.delay)
                if origin.down:
                    self.send_response(503)
                    self.send_header("Content-Length", "5")
                    self.end_headers()
                    self.wfile.write(b"down\n")
                    return
                etag = f'"v{origin.version}"'
                if self.headers.get("If-None-Match") == etag:
                    with origin.lock:
                        origin.conditional += 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Cache-Control", origin.cache_control)
                    self.end_headers()
                    return
                if path == "/big":
                    body = origin.big
                elif path.startswith("/text"):
                    body = (f"{path} version {origin.version}\n" * 200).encode()
                elif path == "/vary":
                    body = f"encoding={self.headers.get('Accept-Encoding', '')}\n".encode()
                else:
                    body = f"{path} version {origin.version}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Cache-Control", origin.cache_control)
                self.send_header("ETag", etag)
                if path == "/vary":
                    self.send_header("Vary", "Accept-Encoding")
                for name, value in origin.extra_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def target(self) -> dict:
        return {"address": f"{LOCALHOST}:{self.port}", "zone": "a"}

    def count(self, path: str) -> int:
        with self.lock:
            return self.counts.get(path, 0)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.stop()


def caching_gateway(gateway, targets: list[dict], **route_cache):
    cache = {"enabled": True}
    cache.update(route_cache)
    return gateway({"routes": [{"name": "site", "target_group": "web", "cache": cache}],
                    "target_groups": [{"name": "web", "targets": targets}]})


def test_cold_key_from_500_concurrent_clients_is_one_origin_request(origin, gateway):
    origin.delay = 0.5  # the first fetch is still running when every other client asks
    gw = caching_gateway(gateway, [origin.target()])
    sel = selectors.DefaultSelector()
    socks, data = [], {}
    for _ in range(500):
        s = socket.create_connection((LOCALHOST, gw.port), timeout=10)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
        data[s] = bytearray()
    for s in socks:
        s.sendall(b"GET /cold HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
    done, deadline = 0, time.monotonic() + 20
    while done < len(socks) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            chunk = key.fileobj.recv(65536)
            if chunk:
                data[key.fileobj].extend(chunk)
            else:
                sel.unregister(key.fileobj)
                done += 1
    for s in socks:
        s.close()
    assert done == 500, f"only {done} of 500 responses completed"
    for raw in data.values():
        assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"/cold version 1\n"), raw[:200]
    assert origin.count("/cold") == 1, f"the origin saw {origin.count('/cold')} requests for one cold key"
    hits = metric_value(gw.metrics(), "cumulo_gateway_cache_requests_total", route="site", result="hit") or 0
    assert hits == 499, f"every waiter should be answered from the stored object, hits: {hits}"


def test_responses_are_byte_exact_and_marked(origin, gateway):
    gw = caching_gateway(gateway, [origin.target()])
    with requests.Session() as s:
        first = s.get(gw.url("/a"), headers={"Host": "site.test"}, timeout=5)
        second = s.get(gw.url("/a"), headers={"Host": "site.test"}, timeout=5)
    assert first.headers["X-Cache"] == "MISS" and second.headers["X-Cache"] == "HIT"
    assert first.content == second.content == b"/a version 1\n"
    assert second.headers["ETag"] == '"v1"' and "Age" in second.headers
    assert origin.count("/a") == 1


def test_purge_makes_the_next_request_a_miss(origin, gateway):
    gw = caching_gateway(gateway, [origin.target()])
    url, h = gw.url("/p"), {"Host": "site.test"}
    assert requests.get(url, headers=h, timeout=5).headers["X-Cache"] == "MISS"
    assert requests.get(url, headers=h, timeout=5).headers["X-Cache"] == "HIT"
    r = gw.admin("POST", "/cache/purge", json={"host": "site.test", "path": "/p"})
    assert r.status_code == 200 and r.json()["purged"] == 1, r.text
    assert requests.get(url, headers=h, timeout=5).headers["X-Cache"] == "MISS"
    assert origin.count("/p") == 2
    # By prefix.
    requests.get(gw.url("/p/1"), headers=h, timeout=5)
    requests.get(gw.url("/p/2"), headers=h, timeout=5)
    r = gw.admin("POST", "/cache/purge", json={"host": "site.test", "path": "/p/", "prefix": True})
    assert r.json()["purged"] == 2, r.text


def test_stale_if_error_serves_stale_while_the_origin_is_down_then_refreshes(origin, gateway):
    origin.cache_control = "public, max-age=1, stale-if-error=60"
    gw = caching_gateway(gateway, [origin.target()])
    url, h = gw.url("/s"), {"Host": "site.test"}
    assert requests.get(url, headers=h, timeout=5).content == b"/s version 1\n"
    time.sleep(1.6)
    origin.down = True
    r = requests.get(url, headers=h, timeout=5)
    assert r.status_code == 200 and r.headers["X-Cache"] == "STALE", (r.status_code, r.headers, r.text)
    assert r.content == b"/s version 1\n"
    origin.down = False
    origin.version = 2
    r = requests.get(url, headers=h, timeout=5)
    assert r.status_code == 200 and r.content == b"/s version 2\n", (r.headers, r.text)
    assert r.headers["X-Cache"] == "MISS"
    r = requests.get(url, headers=h, timeout=5)
    assert r.headers["X-Cache"] == "HIT" and r.content == b"/s version 2\n"


def test_stale_entry_is_revalidated_with_its_etag(origin, gateway):
    origin.cache_control = "public, max-age=1"
    gw = caching_gateway(gateway, [origin.target()])
    url, h = gw.url("/r"), {"Host": "site.test"}
    requests.get(url, headers=h, timeout=5)
    time.sleep(1.6)
    r = requests.get(url, headers=h, timeout=5)
    assert r.headers["X-Cache"] == "REVALIDATED" and r.content == b"/r version 1\n", r.headers
    assert origin.conditional == 1
    assert requests.get(url, headers=h, timeout=5).headers["X-Cache"] == "HIT"
    # A client's own conditional request is answered 304 from the cache.
    r = requests.get(url, headers={**h, "If-None-Match": '"v1"'}, timeout=5)
    assert r.status_code == 304 and r.headers["X-Cache"] == "HIT"


def test_ranges_of_a_cached_50_mib_object_are_byte_exact(origin, gateway):
    gw = caching_gateway(gateway, [origin.target()])
    url, h = gw.url("/big"), {"Host": "site.test"}
    full = requests.get(url, headers=h, timeout=30)
    assert full.status_code == 200 and len(full.content) == len(origin.big)
    assert hashlib.sha256(full.content).digest() == hashlib.sha256(origin.big).digest()
    size = len(origin.big)
    for first, last in [(0, 0), (1000, 1999), (size - 4096, size - 1), (12345678, 23456789)]:
        r = requests.get(url, headers={**h, "Range": f"bytes={first}-{last}"}, timeout=30)
        assert r.status_code == 206, r.status_code
        assert r.headers["X-Cache"] == "HIT"
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert r.content == origin.big[first:last + 1]
    r = requests.get(url, headers={**h, "Range": "bytes=-100"}, timeout=30)
    assert r.status_code == 206 and r.content == origin.big[-100:]
    r = requests.get(url, headers={**h, "Range": f"bytes={size}-"}, timeout=30)
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{size}"
    assert origin.count("/big") == 1


def test_vary_keeps_one_variant_per_accept_encoding(origin, gateway):
    gw = caching_gateway(gateway, [origin.target()])
    url, h = gw.url("/vary"), {"Host": "site.test"}
    a = requests.get(url, headers={**h, "Accept-Encoding": "gzip"}, timeout=5)
    b = requests.get(url, headers={**h, "Accept-Encoding": "identity"}, timeout=5)
    a2 = requests.get(url, headers={**h, "Accept-Encoding": "gzip"}, timeout=5)
    assert a.headers["X-Cache"] == "MISS" and b.headers["X-Cache"] == "MISS" and a2.headers["X-Cache"] == "HIT"
    assert a2.content == a.content != b.content


def test_private_and_no_store_responses_are_not_stored(origin, gateway):
    gw = caching_gateway(gateway, [origin.target()])
    for cc in ["private, max-age=60", "no-store"]:
        origin.cache_control = cc
        path = "/n" + str(len(cc))
        for _ in range(2):
            r = requests.get(gw.url(path), headers={"Host": "site.test"}, timeout=5)
            assert r.headers["X-Cache"] == "MISS"
        assert origin.count(path) == 2


def test_an_edge_in_front_of_the_gateway_serves_repeats_without_the_origin(origin, gateway):
    main = gateway({"target_groups": [{"name": "web", "targets": [origin.target()]}]}, name="main")
    edge = gateway({"routes": [{"name": "edge", "target_group": "main", "cache": {"enabled": True}}],
                    "target_groups": [{"name": "main", "targets": [{"address": f"{LOCALHOST}:{main.port}"}]}]},
                   name="edge")
    with requests.Session() as s:
        answers = [s.get(edge.url("/e"), headers={"Host": "site.test"}, timeout=5) for _ in range(20)]
    assert all(r.status_code == 200 and r.content == b"/e version 1\n" for r in answers)
    assert [r.headers["X-Cache"] for r in answers].count("HIT") == 19
    assert origin.count("/e") == 1


def test_compressible_content_gets_a_gzip_variant(origin, gateway):
    import gzip

    gw = caching_gateway(gateway, [origin.target()])
    url, h = gw.url("/text"), {"Host": "site.test"}
    plain = requests.get(url, headers={**h, "Accept-Encoding": "identity"}, timeout=5)
    assert plain.headers["X-Cache"] == "MISS" and "Content-Encoding" not in plain.headers
    r = requests.get(url, headers={**h, "Accept-Encoding": "gzip, br;q=0.5"}, timeout=5, stream=True)
    raw = r.raw.read(decode_content=False)
    assert r.headers["X-Cache"] == "HIT" and r.headers["Content-Encoding"] == "gzip", r.headers
    assert "Accept-Encoding" in r.headers["Vary"]
    assert r.headers["ETag"] == 'W/"v1"'
    assert len(raw) < len(plain.content) and gzip.decompress(raw) == plain.content
    again = requests.get(url, headers={**h, "Accept-Encoding": "identity"}, timeout=5)
    assert again.headers["X-Cache"] == "HIT" and again.content == plain.content
    no = requests.get(url, headers={**h, "Accept-Encoding": "gzip;q=0"}, timeout=5)
    assert "Content-Encoding" not in no.headers
    assert origin.count("/text") == 1


def test_brotli_variant_is_preferred_when_the_client_takes_both(origin, gateway, tmp_path):
    import gzip
    import subprocess

    gw = caching_gateway(gateway, [origin.target()])
    url, h = gw.url("/text-br"), {"Host": "site.test"}
    plain = requests.get(url, headers={**h, "Accept-Encoding": "identity"}, timeout=5)
    assert plain.headers["X-Cache"] == "MISS" and "Content-Encoding" not in plain.headers
    r = requests.get(url, headers={**h, "Accept-Encoding": "gzip, deflate, br"}, timeout=5, stream=True)
    raw = r.raw.read(decode_content=False)
    assert r.headers["X-Cache"] == "HIT" and r.headers["Content-Encoding"] == "br", r.headers
    assert "Accept-Encoding" in r.headers["Vary"] and r.headers["ETag"] == 'W/"v1"'
    gz = requests.get(url, headers={**h, "Accept-Encoding": "gzip"}, timeout=5, stream=True).raw.read(
        decode_content=False)
    assert gzip.decompress(gz) == plain.content
    assert len(raw) < len(gz) < len(plain.content), (len(raw), len(gz))
    # curl (built with libbrotli on Debian) decodes it: the bytes are real brotli, not just labelled so.
    headers, body = tmp_path / "h", tmp_path / "b"
    subprocess.run(["curl", "-sS", "--compressed", "-H", "Host: site.test", "-H", "Accept-Encoding: br",
                    "-D", str(headers), "-o", str(body), url], check=True, timeout=10)
    assert "content-encoding: br" in headers.read_text().lower()
    assert body.read_bytes() == plain.content
    prefer_gzip = requests.get(url, headers={**h, "Accept-Encoding": "br;q=0.3, gzip"}, timeout=5, stream=True)
    assert prefer_gzip.headers["Content-Encoding"] == "gzip"
    assert origin.count("/text-br") == 1


def test_multiple_ranges_are_served_as_multipart_byteranges(origin, gateway):
    import email.parser
    import email.policy

    gw = caching_gateway(gateway, [origin.target()])
    url, h = gw.url("/big"), {"Host": "site.test"}
    assert requests.get(url, headers=h, timeout=30).status_code == 200
    big, size = origin.big, len(origin.big)
    r = requests.get(url, headers={**h, "Range": "bytes=-10,0-99,50-149,1000000-1000009"}, timeout=30)
    assert r.status_code == 206 and r.headers["X-Cache"] == "HIT"
    ctype = r.headers["Content-Type"]
    assert ctype.startswith("multipart/byteranges; boundary=") and "Content-Range" not in r.headers
    assert int(r.headers["Content-Length"]) == len(r.content)
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + r.content)
    parts = [(p["Content-Range"], p["Content-Type"], p.get_payload(decode=True)) for p in msg.iter_parts()]
    # Overlapping 0-99 and 50-149 become one part; then ascending order (RFC 9110 section 14.6).
    assert parts == [(f"bytes 0-149/{size}", "text/plain", big[0:150]),
                     (f"bytes 1000000-1000009/{size}", "text/plain", big[1000000:1000010]),
                     (f"bytes {size - 10}-{size - 1}/{size}", "text/plain", big[-10:])]
    # Too many ranges, or several overlapping: the whole representation (RFC 9110 section 14.2).
    many = ",".join(f"{i * 10}-{i * 10}" for i in range(17))
    whole = requests.get(url, headers={**h, "Range": "bytes=" + many}, timeout=30)
    assert whole.status_code == 200 and len(whole.content) == size
    assert origin.count("/big") == 1


def test_purge_by_tag_removes_every_object_carrying_it(origin, gateway):
    gw = caching_gateway(gateway, [origin.target()])
    h = {"Host": "site.test"}
    origin.extra_headers = {"Surrogate-Key": "product-7 catalogue"}
    for p in ["/t1", "/t2"]:
        requests.get(gw.url(p), headers=h, timeout=5)
    origin.extra_headers = {"Cache-Tag": "other"}
    requests.get(gw.url("/t3"), headers=h, timeout=5)
    r = gw.admin("POST", "/cache/purge", json={"tag": "product-7"})
    assert r.json()["purged"] == 2, r.text
    assert requests.get(gw.url("/t1"), headers=h, timeout=5).headers["X-Cache"] == "MISS"
    assert requests.get(gw.url("/t3"), headers=h, timeout=5).headers["X-Cache"] == "HIT"
    r = requests.get(gw.url("/t3"), headers=h, timeout=5)
    assert "Surrogate-Key" not in r.headers and r.headers.get("Cache-Tag") == "other"


def test_stale_while_revalidate_answers_at_once_and_refreshes_behind(origin, gateway):
    origin.cache_control = "public, max-age=1, stale-while-revalidate=30"
    gw = caching_gateway(gateway, [origin.target()])
    url, h = gw.url("/w"), {"Host": "site.test"}
    requests.get(url, headers=h, timeout=5)
    time.sleep(1.6)
    origin.version = 2
    origin.cache_control = "public, max-age=60"  # what the refresh brings stays fresh
    origin.delay = 1.0  # a slow origin: the stale answer must not wait for it
    started = time.monotonic()
    r = requests.get(url, headers=h, timeout=5)
    assert time.monotonic() - started < 0.5, "stale-while-revalidate must not wait for the origin"
    assert r.headers["X-Cache"] == "STALE" and r.content == b"/w version 1\n"
    time.sleep(1.5)  # the background refresh lands
    r = requests.get(url, headers=h, timeout=5)
    assert r.headers["X-Cache"] == "HIT" and r.content == b"/w version 2\n", (r.headers, r.content)
    assert origin.count("/w") == 2


def test_a_large_object_reaches_the_client_while_it_is_being_stored(gateway):
    """The origin sends the head and 1 MiB of an 8 MiB body, then stalls: the client has that MiB before the
    origin sends the rest, and once it has, the object is stored (the next request is a HIT)."""
    body = bytes(range(256)) * (8 * 1024 * 1024 // 256)
    release, requests_seen = threading.Event(), []
    listener = socket.create_server((LOCALHOST, 0))

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                requests_seen.append(head)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nCache-Control: public, max-age=60\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body[:1024 * 1024])
                release.wait(20)
                conn.sendall(body[1024 * 1024:])

    threading.Thread(target=serve, daemon=True).start()
    try:
        gw = caching_gateway(gateway, [{"address": f"{LOCALHOST}:{listener.getsockname()[1]}"}])
        with socket.create_connection((LOCALHOST, gw.port), timeout=10) as c:
            c.sendall(b"GET /large.mp4 HTTP/1.1\r\nHost: site.test\r\n\r\n")
            got = b""
            while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 1024 * 1024:
                chunk = c.recv(1 << 20)
                assert chunk, "the gateway closed before the first MiB arrived"
                got += chunk
            assert not release.is_set()  # everything so far came while the origin was holding the rest back
            head, first = got.split(b"\r\n\r\n", 1)
            assert b"X-Cache: MISS" in head and first == body[:len(first)]
            release.set()
            while len(got.split(b"\r\n\r\n", 1)[1]) < len(body):
                chunk = c.recv(1 << 20)
                assert chunk
                got += chunk
            assert got.split(b"\r\n\r\n", 1)[1] == body
            # On the same connection, so that the request surely follows the first one's end.
            c.sendall(b"GET /large.mp4 HTTP/1.1\r\nHost: site.test\r\n\r\n")
            again = b""
            while b"\r\n\r\n" not in again or len(again.split(b"\r\n\r\n", 1)[1]) < len(body):
                chunk = c.recv(1 << 20)
                assert chunk
                again += chunk
            head, rest = again.split(b"\r\n\r\n", 1)
            assert b"X-Cache: HIT" in head and rest == body
        assert len(requests_seen) == 1
    finally:
        release.set()
        listener.close()


def test_the_disk_tier_keeps_objects_across_a_restart(origin, gateway, tmp_path):
    disk = {"max_bytes": "8MiB", "disk_path": str(tmp_path / "cache-disk"), "disk_max_bytes": "256MiB"}
    config = {"cache": disk, "routes": [{"name": "site", "target_group": "web", "cache": {"enabled": True}}],
              "target_groups": [{"name": "web", "targets": [origin.target()]}]}
    first = gateway(config, name="first")
    h = {"Host": "site.test"}
    assert requests.get(first.url("/big"), headers=h, timeout=30).headers["X-Cache"] == "MISS"  # 50 MiB: disk only
    assert requests.get(first.url("/d"), headers=h, timeout=5).headers["X-Cache"] == "MISS"
    r = requests.get(first.url("/big"), headers={**h, "Range": "bytes=100-199"}, timeout=30)
    assert r.status_code == 206 and r.headers["X-Cache"] == "HIT" and r.content == origin.big[100:200]
    first.proc.stop()
    second = gateway(config, name="second")
    assert metric_value(second.metrics(), "cumulo_gateway_cache_disk_objects") == 2
    r = requests.get(second.url("/d"), headers=h, timeout=5)
    assert r.headers["X-Cache"] == "HIT" and r.content == b"/d version 1\n"
    r = requests.get(second.url("/big"), headers=h, timeout=30)
    assert r.headers["X-Cache"] == "HIT" and hashlib.sha256(r.content).digest() == hashlib.sha256(origin.big).digest()
    assert origin.count("/big") == 1 and origin.count("/d") == 1
    assert second.admin("POST", "/cache/purge", json={"host": "site.test", "path": "/d"}).json()["purged"] == 1
    assert metric_value(second.metrics(), "cumulo_gateway_cache_disk_objects") == 1
    assert requests.get(second.url("/d"), headers=h, timeout=5).headers["X-Cache"] == "MISS"


def test_concurrent_requests_for_objects_on_disk_are_all_served_from_it(origin, gateway, tmp_path):
    # After a restart every object is on disk only: the reads happen on the disk tier's thread while the
    # workers go on, and requests for the same file share one read.
    disk = {"max_bytes": "8MiB", "disk_path": str(tmp_path / "cache-disk"), "disk_max_bytes": "256MiB"}
    config = {"cache": disk, "workers": 2,
              "routes": [{"name": "site", "target_group": "web", "cache": {"enabled": True}}],
              "target_groups": [{"name": "web", "targets": [origin.target()]}]}
    first = gateway(config, name="first")
    h = {"Host": "site.test"}
    paths = [f"/text{i}" for i in range(8)] + ["/big"]
    for p in paths:
        assert requests.get(first.url(p), headers=h, timeout=30).headers["X-Cache"] == "MISS"
    first.proc.stop()
    second = gateway(config, name="second")
    assert metric_value(second.metrics(), "cumulo_gateway_cache_disk_objects") == len(paths)
    failures: list[str] = []

    def fetch(path: str):
        try:
            with requests.Session() as s:
                r = s.get(second.url(path), headers=h, timeout=60)
            want = origin.big if path == "/big" else (f"{path} version 1\n" * 200).encode()
            if r.status_code != 200 or r.headers["X-Cache"] != "HIT" or r.content != want:
                failures.append(f"{path}: {r.status_code} {r.headers.get('X-Cache')} {len(r.content)} bytes")
        except Exception as e:  # noqa: BLE001 - any failure of a client is the test's failure
            failures.append(f"{path}: {e}")

    threads = [threading.Thread(target=fetch, args=(paths[i % len(paths)],)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert all(origin.count(p) == 1 for p in paths)
