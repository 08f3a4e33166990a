"""kill -9 the store in the middle of a stream of PUTs: after a restart every acknowledged object reads back
byte-exact, and nothing that was not acknowledged is half visible (a listed key always reads whole)."""

import hashlib
import threading
import time

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from objstore_support import S3Store, boto3_client, deterministic_bytes


@pytest.mark.time_limit(120)
def test_kill9_during_puts(procs, tmp_path):
    store = S3Store(procs, tmp_path).start()
    s3 = boto3_client(store)
    s3.create_bucket(Bucket="crash")
    acked = {}
    attempted = {}
    lock = threading.Lock()
    stop = threading.Event()

    # Clients are made here: boto3's default session is not safe to use from several threads at once.
    clients = [boto3_client(store) for _ in range(4)]

    def writer(w):
        client = clients[w]
        i = 0
        while not stop.is_set():
            key = f"w{w}/obj-{i:05d}"
            # Sizes from a few bytes to several frames, so kills land inside bodies too.
            size = (i * 7919 + w * 104729) % 400000 + 1
            data = deterministic_bytes(key, size)
            with lock:
                attempted[key] = data
            try:
                r = client.put_object(Bucket="crash", Key=key, Body=data)
                assert r["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
                with lock:
                    acked[key] = data
            except (BotoCoreError, ClientError, ConnectionError):
                return
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(acked) < 150:
        time.sleep(0.05)
    store.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) >= 20, "too few PUTs acknowledged before the kill to mean anything"

    store.start()
    s3 = boto3_client(store)
    for key, data in acked.items():
        assert s3.get_object(Bucket="crash", Key=key)["Body"].read() == data, key
    listed = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="crash"):
        listed += [o["Key"] for o in page.get("Contents", [])]
    assert set(acked) <= set(listed)
    # Anything else that is visible was written whole before the kill (committed, answer lost in flight).
    for key in set(listed) - set(acked):
        assert s3.get_object(Bucket="crash", Key=key)["Body"].read() == attempted[key], key
    # The store still takes writes after the restart.
    s3.put_object(Bucket="crash", Key="after", Body=b"after restart")
    assert s3.get_object(Bucket="crash", Key="after")["Body"].read() == b"after restart"
