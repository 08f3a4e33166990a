"""Cache slices (route cache.slice): a 50 MiB object fetched from the origin in aligned 1 MiB Range slices, each
stored on its own; seeks are answered byte-exact from slices, and a second pass touches no origin."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading

import pytest
import requests

from support import LOCALHOST, metric_value

MIB = 1024 * 1024
SIZE = 50 * MIB


class RangeOrigin:
    """An origin for one large video-like object that honours single byte ranges (206, or 416 past the end)."""

    def __init__(self):
        self.body = bytes(range(256)) * (SIZE // 256)
        self.version = 1
        self.ranges: list[str | None] = []
        self.lock = threading.Lock()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                with origin.lock:
                    origin.ranges.append(rng)
                body, size = origin.body, len(origin.body)
                common = [("Content-Type", "video/mp4"), ("Cache-Control", "public, max-age=600"),
                          ("ETag", f'"v{origin.version}"'), ("Accept-Ranges", "bytes")]
                m = re.fullmatch(r"bytes=(\d+)-(\d+)", rng or "")
                if m and int(m.group(1)) >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if m:
                    first, last = int(m.group(1)), min(int(m.group(2)), size - 1)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
                    body = body[first:last + 1]
                else:
                    self.send_response(200)
                for name, value in common:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def requests_seen(self) -> list[str | None]:
        with self.lock:
            return list(self.ranges)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origin():
    o = RangeOrigin()
    yield o
    o.stop()


def slicing_gateway(gateway, origin, **cache):
    return gateway({"cache": {"max_bytes": "160MiB"},
                    "routes": [{"name": "media", "target_group": "media", "cache": {"slice": True, **cache}}],
                    "target_groups": [{"name": "media", "targets": [{"address": f"{LOCALHOST}:{origin.port}"}]}]})


# (Range header, first, last): seeks inside a slice, across slice boundaries, open-ended, suffix, the last byte.
SEEKS = [
    ("bytes=0-0", 0, 0),
    ("bytes=1000-1999", 1000, 1999),
    ("bytes=1048000-1049000", 1048000, 1049000),
    (f"bytes={17 * MIB - 10}-{19 * MIB + 10}", 17 * MIB - 10, 19 * MIB + 10),
    (f"bytes={31 * MIB + 123}-", 31 * MIB + 123, SIZE - 1),
    ("bytes=-5000", SIZE - 5000, SIZE - 1),
    (f"bytes={SIZE - 1}-{SIZE + 100}", SIZE - 1, SIZE - 1),
]


def test_seeks_are_byte_exact_from_slices_and_a_second_pass_needs_no_origin(origin, gateway):
    gw = slicing_gateway(gateway, origin)
    url, h = gw.url("/movie.mp4"), {"Host": "media.test"}
    with requests.Session() as s:
        for rng, first, last in SEEKS:
            r = s.get(url, headers={**h, "Range": rng}, timeout=30)
            assert r.status_code == 206, (rng, r.status_code, r.text[:200])
            assert r.headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}", rng
            assert r.headers["Content-Type"] == "video/mp4" and r.headers["ETag"] == '"v1"'
            assert r.content == origin.body[first:last + 1], rng
        # The origin saw only aligned slice requests, never the client's ranges.
        seen = origin.requests_seen()
        for rng in seen:
            m = re.fullmatch(r"bytes=(\d+)-(\d+)", rng or "")
            assert m and int(m.group(1)) % MIB == 0 and int(m.group(2)) == int(m.group(1)) + MIB - 1, rng
        assert len(seen) == len(set(seen)), "a slice was fetched twice"
        # The whole object: every missing slice fetched once, in order, streamed.
        r = s.get(url, headers=h, timeout=60)
        assert r.status_code == 200 and int(r.headers["Content-Length"]) == SIZE
        assert hashlib.sha256(r.content).digest() == hashlib.sha256(origin.body).digest()
        assert len(origin.requests_seen()) == SIZE // MIB
        # Second pass: everything from the cache.
        before = len(origin.requests_seen())
        served = metric_value(gw.metrics(), "cumulo_gateway_cache_served_bytes_total", route="media")
        for rng, first, last in SEEKS:
            r = s.get(url, headers={**h, "Range": rng}, timeout=30)
            assert r.status_code == 206 and r.headers["X-Cache"] == "HIT", rng
            assert r.content == origin.body[first:last + 1], rng
        r = s.get(url, headers=h, timeout=60)
        assert r.headers["X-Cache"] == "HIT" and r.content == origin.body
        head = s.head(url, headers=h, timeout=10)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == SIZE and not head.content
        r = s.get(url, headers={**h, "If-None-Match": '"v1"'}, timeout=10)
        assert r.status_code == 304
        r = s.get(url, headers={**h, "Range": f"bytes={SIZE}-"}, timeout=10)
        assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{SIZE}"
        assert len(origin.requests_seen()) == before
    # Body bytes from the cache: exactly the second pass's.
    expected = sum(last + 1 - first for _, first, last in SEEKS) + SIZE
    assert metric_value(gw.metrics(), "cumulo_gateway_cache_served_bytes_total", route="media") - served == expected


def test_purge_of_the_url_drops_its_slices_and_a_new_version_is_not_mixed_in(origin, gateway):
    gw = slicing_gateway(gateway, origin, slice_bytes="256KiB")
    url, h = gw.url("/clip.mp4"), {"Host": "media.test"}
    rng = {"Range": f"bytes=0-{MIB - 1}"}
    r = requests.get(url, headers={**h, **rng}, timeout=10)
    assert r.status_code == 206 and r.content == origin.body[:MIB] and r.headers["X-Cache"] == "MISS"
    assert len(origin.requests_seen()) == 4  # 256 KiB slices
    r = gw.admin("POST", "/cache/purge", json={"host": "media.test", "path": "/clip.mp4"})
    assert r.status_code == 200 and r.json()["purged"] == 4, r.text
    origin.version = 2
    r = requests.get(url, headers={**h, **rng}, timeout=10)
    assert r.headers["X-Cache"] == "MISS" and r.headers["ETag"] == '"v2"'
    assert len(origin.requests_seen()) == 8


def test_concurrent_cold_seeks_fetch_each_slice_once(origin, gateway):
    from concurrent.futures import ThreadPoolExecutor

    gw = slicing_gateway(gateway, origin)
    url, h = gw.url("/live.mp4"), {"Host": "media.test", "Range": f"bytes={5 * MIB + 7}-{8 * MIB + 7}"}

    def get(_):
        return requests.get(url, headers=h, timeout=30)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(get, range(20)))
    want = origin.body[5 * MIB + 7:8 * MIB + 8]
    assert all(r.status_code == 206 and r.content == want for r in answers)
    seen = origin.requests_seen()
    assert sorted(seen) == [f"bytes={i * MIB}-{(i + 1) * MIB - 1}" for i in (5, 6, 7, 8)], seen


def test_a_representation_changing_mid_response_is_cut_not_mixed(origin, gateway):
    gw = slicing_gateway(gateway, origin, slice_bytes="256KiB")
    url, h = gw.url("/changing.mp4"), {"Host": "media.test"}
    assert requests.get(url, headers={**h, "Range": "bytes=0-0"}, timeout=10).headers["ETag"] == '"v1"'
    origin.version = 2  # same bytes here, but another ETag: the slices may not be combined
    try:
        cut = requests.get(url, headers={**h, "Range": f"bytes=0-{MIB - 1}"}, timeout=10)
        # Slice 0 (v1) went out under a head that promised a MiB; slice 1 is v2: the connection ends short.
        assert cut.headers["ETag"] == '"v1"' and len(cut.content) == 256 * 1024, len(cut.content)
    except requests.exceptions.RequestException:
        pass  # a urllib3 that enforces Content-Length says the same with an exception
    r = requests.get(url, headers={**h, "Range": f"bytes=0-{MIB - 1}"}, timeout=10)
    assert r.status_code == 206 and r.headers["ETag"] == '"v2"' and r.content == origin.body[:MIB]


def test_slices_on_disk_are_served_after_a_restart_without_the_origin(origin, gateway, tmp_path):
    # 8 MiB of memory for 50 slices of 1 MiB: most are read back from the disk tier, on its reader thread.
    config = {"cache": {"max_bytes": "8MiB", "disk_path": str(tmp_path / "disk"), "disk_max_bytes": "256MiB"},
              "routes": [{"name": "media", "target_group": "media", "cache": {"slice": True}}],
              "target_groups": [{"name": "media", "targets": [{"address": f"{LOCALHOST}:{origin.port}"}]}]}
    first = gateway(config, name="first")
    h = {"Host": "media.test"}
    r = requests.get(first.url("/movie.mp4"), headers=h, timeout=60)
    assert r.status_code == 200 and hashlib.sha256(r.content).digest() == hashlib.sha256(origin.body).digest()
    assert len(origin.requests_seen()) == SIZE // MIB
    first.proc.stop()
    second = gateway(config, name="second")
    assert metric_value(second.metrics(), "cumulo_gateway_cache_disk_objects") == SIZE // MIB
    failures: list[str] = []

    def seeks():
        with requests.Session() as s:
            for rng, lo, hi in SEEKS:
                r = s.get(second.url("/movie.mp4"), headers={**h, "Range": rng}, timeout=60)
                if r.status_code != 206 or r.headers["X-Cache"] != "HIT" or r.content != origin.body[lo:hi + 1]:
                    failures.append(f"{rng}: {r.status_code} {r.headers.get('X-Cache')}")

    threads = [threading.Thread(target=seeks) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    r = requests.get(second.url("/movie.mp4"), headers=h, timeout=60)
    assert r.headers["X-Cache"] == "HIT"
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(origin.body).digest()
    assert len(origin.requests_seen()) == SIZE // MIB
