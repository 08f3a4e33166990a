"""The object store on several workers (event loops with a listening socket each): a write answered by one worker
is what every other worker reads from then on. Each connection stays on the worker that accepted it, and the
first four hex digits of x-amz-request-id name that worker, so the test picks connections of different workers
and checks from the ids that the PUT and the GET really went to different ones."""

import hashlib
import http.client
import threading

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from objstore_support import ADMIN, S3Store, deterministic_bytes
from support import LOCALHOST

WORKERS = 4


def worker_of(resp: http.client.HTTPResponse) -> int:
    rid = resp.getheader("x-amz-request-id")
    assert rid and len(rid) == 16, f"request id {rid!r}"
    return int(rid[:4], 16)


class Conn:
    """One keep-alive connection, so one worker."""

    def __init__(self, store: S3Store):
        self.store = store
        self.http = http.client.HTTPConnection(LOCALHOST, store.port, timeout=30)
        self.worker = None

    def request(self, method: str, path: str, body: bytes = b"", sign: bool = True):
        headers = {}
        if sign:
            req = AWSRequest(method=method, url=self.store.endpoint + path, data=body)
            S3SigV4Auth(Credentials(ADMIN[1], ADMIN[2]), "s3", "us-east-1").add_auth(req)
            headers = dict(req.headers)
        self.http.request(method, path, body=body, headers=headers)
        resp = self.http.getresponse()
        data = resp.read()
        w = worker_of(resp)
        if self.worker is None:
            self.worker = w
        assert w == self.worker, "a keep-alive connection moved to another worker"
        return resp, data

    def close(self):
        self.http.close()


def connections_on_distinct_workers(store: S3Store, want: int) -> list:
    """Opens connections until `want` of them are on different workers; closes the rest."""
    by_worker, spare = {}, []
    for _ in range(200):
        c = Conn(store)
        c.request("GET", "/shared/probe", sign=False)  # public bucket: 404 without a signature
        if c.worker in by_worker:
            spare.append(c)
        else:
            by_worker[c.worker] = c
        if len(by_worker) >= want:
            break
    for c in spare:
        c.close()
    assert len(by_worker) >= want, f"200 connections reached only workers {sorted(by_worker)}"
    assert all(0 <= w < WORKERS for w in by_worker), sorted(by_worker)
    return list(by_worker.values())


@pytest.fixture
def store(procs, tmp_path):
    return S3Store(procs, tmp_path, buckets="  - {name: shared, public: true}",
                   extra=f"workers: {WORKERS}\n").start()


@pytest.mark.time_limit(120)
def test_put_on_one_worker_get_on_another(store):
    a, b = connections_on_distinct_workers(store, 2)
    # Small objects go through the read cache, the 1.5 MiB ones (above its per-object limit) through the files;
    # both through the lookup cache. Every GET follows its PUT's reply at once, on the other worker.
    for i in range(300):
        writer, reader = (a, b) if i % 2 == 0 else (b, a)
        size = 1536 * 1024 if i % 25 == 0 else 100 + i
        body = deterministic_bytes(f"v{i}", size)
        resp, _ = writer.request("PUT", "/shared/key", body)
        assert resp.status == 200, resp.status
        resp, got = reader.request("GET", "/shared/key", sign=False)
        assert resp.status == 200, (i, resp.status)
        assert resp.getheader("ETag") == f'"{hashlib.md5(body).hexdigest()}"', i
        assert got == body, f"round {i}: worker {reader.worker} served an older object after worker " \
                            f"{writer.worker} acknowledged the PUT"
        if i % 10 == 9:
            resp, _ = writer.request("DELETE", "/shared/key")
            assert resp.status == 204, resp.status
            resp, _ = reader.request("GET", "/shared/key", sign=False)
            assert resp.status == 404, f"round {i}: a deleted object still served by worker {reader.worker}"
    assert a.worker != b.worker


@pytest.mark.time_limit(120)
def test_concurrent_writers_and_readers_across_workers(store):
    # Each client thread has its own two connections, on two different workers.
    pairs = [connections_on_distinct_workers(store, 2) for _ in range(4)]
    errors = []

    def client(n):
        writer, reader = pairs[n]
        try:
            for i in range(60):
                body = deterministic_bytes(f"c{n}-{i}", 64 + (i * 997) % 300000)
                resp, _ = writer.request("PUT", f"/shared/c{n}", body)
                assert resp.status == 200, resp.status
                resp, got = reader.request("GET", f"/shared/c{n}", sign=False)
                assert resp.status == 200 and got == body, f"round {i}: stale or missing"
        except Exception as e:  # noqa: BLE001 - reported below with the client's number
            errors.append(f"client {n} (writes on worker {writer.worker}, reads on {reader.worker}): {e!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.time_limit(180)
def test_pooled_work_under_concurrent_clients_some_leaving(store):
    """Listings, deletes and large objects run on the I/O pool while the workers keep serving: two clients page
    through the bucket (every page whole), one reads a 6 MiB object (streamed from the pool) and a 2 MiB one,
    one writes and deletes, and one sends listings and GETs and leaves without reading the answer. Every answer
    is right, and the store still serves afterwards."""
    import socket

    setup = Conn(store)
    keys = [f"k/{i:04d}" for i in range(200)]
    for k in keys:
        resp, _ = setup.request("PUT", f"/shared/{k}", deterministic_bytes(k, 100))
        assert resp.status == 200, resp.status
    big = deterministic_bytes("big", 6 << 20)
    mid = deterministic_bytes("mid", 2 << 20)
    for name, body in (("big", big), ("mid", mid)):
        resp, _ = setup.request("PUT", f"/shared/{name}", body)
        assert resp.status == 200, resp.status
    setup.close()
    errors = []

    def guarded(name, fn):
        def run():
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - reported below with the client's name
                errors.append(f"{name}: {e!r}")
        return threading.Thread(target=run)

    def lister():
        c = Conn(store)
        for _ in range(6):
            seen, token = [], ""
            while True:
                path = "/shared?list-type=2&prefix=k%2F&max-keys=37"
                if token:
                    path += f"&continuation-token={token}"
                resp, data = c.request("GET", path)
                assert resp.status == 200, resp.status
                text = data.decode()
                seen += [part.split("</Key>")[0] for part in text.split("<Key>")[1:]]
                if "<IsTruncated>true</IsTruncated>" not in text:
                    break
                token = text.split("<NextContinuationToken>")[1].split("</NextContinuationToken>")[0]
            assert seen == keys, f"a listing of {len(seen)} keys"

    def reader():
        c = Conn(store)
        for _ in range(4):
            for name, body in (("big", big), ("mid", mid)):
                resp, got = c.request("GET", f"/shared/{name}", sign=False)
                assert resp.status == 200 and got == body, (name, resp.status, len(got))

    def churner():
        c = Conn(store)
        for i in range(30):
            resp, _ = c.request("PUT", "/shared/churn", deterministic_bytes(f"churn{i}", 1000))
            assert resp.status == 200, resp.status
            resp, _ = c.request("DELETE", "/shared/churn")
            assert resp.status == 204, resp.status

    def leaver():
        for i in range(40):
            path = "/shared?list-type=2" if i % 2 == 0 else "/shared/big"
            req = AWSRequest(method="GET", url=store.endpoint + path)
            S3SigV4Auth(Credentials(ADMIN[1], ADMIN[2]), "s3", "us-east-1").add_auth(req)
            head = f"GET {path} HTTP/1.1\r\nHost: {LOCALHOST}:{store.port}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in req.headers.items()) + "\r\n"
            with socket.create_connection((LOCALHOST, store.port)) as s:
                s.sendall(head.encode())  # and leaves without reading the answer

    threads = [guarded("lister 1", lister), guarded("lister 2", lister), guarded("reader", reader),
               guarded("churner", churner), guarded("leaver", leaver)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    after = Conn(store)
    resp, got = after.request("GET", "/shared/mid", sign=False)
    assert resp.status == 200 and got == mid
    after.close()
