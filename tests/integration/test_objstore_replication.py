"""Replication across zones: two `cumulo s3` nodes, each the other's peer (ack: all, on_peer_down: degrade).

Writes to either zone reach the other before they are acknowledged; with zone b's node killed, zone a keeps
acknowledging writes and serving reads; when b returns it catches up (every object byte-exact, deletes
applied, buckets created and deleted) and serves reads."""

import hashlib
import json
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from objstore_support import S3Store, boto3_client, deterministic_bytes
from support import wait_for


def replication(zone: str, peer: S3Store, peer_zone: str) -> str:
    return ("replication:\n"
            f"  zone: {zone}\n"
            f"  peers: [{{zone: {peer_zone}, url: \"{peer.endpoint}\"}}]\n"
            "  ack: all\n"
            "  on_peer_down: degrade\n"
            "  ack_timeout: 3s\n"
            "  retry_interval: 200ms\n")


def status(store: S3Store) -> dict:
    with urllib.request.urlopen(f"{store.endpoint}/_cumulo/replication/status", timeout=5) as r:
        return json.loads(r.read())


def contents(s3, bucket: str) -> dict:
    """key -> (bytes, etag) of every object of the bucket."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            r = s3.get_object(Bucket=bucket, Key=o["Key"])
            out[o["Key"]] = (r["Body"].read(), r["ETag"])
    return out


def bucket_names(s3) -> set:
    return {b["Name"] for b in s3.list_buckets()["Buckets"]}


@pytest.mark.time_limit(90)
def test_two_zones_node_down_and_catch_up(procs, tmp_path):
    a = S3Store(procs, tmp_path, name="zone-a")
    b = S3Store(procs, tmp_path, name="zone-b")
    with open(a.config, "a") as f:
        f.write(replication("a", b, "b"))
    with open(b.config, "a") as f:
        f.write(replication("b", a, "a"))
    a.start()
    b.start()
    wait_for(lambda: status(a)["peers"][0]["state"] == "in_sync" and status(b)["peers"][0]["state"] == "in_sync",
             10, what="both nodes to see their peer in sync")
    sa, sb = boto3_client(a), boto3_client(b)

    # Both zones up: an acknowledged write is already in the other zone.
    sa.create_bucket(Bucket="site")
    sa.create_bucket(Bucket="scratch")
    expected = {}
    for i in range(12):
        key = f"before/{i:03d}.bin"
        expected[key] = deterministic_bytes(key, (i * 37_001) % 200_000 + 1)
        sa.put_object(Bucket="site", Key=key, Body=expected[key], ContentType="application/x-test",
                      Metadata={"n": str(i)})
        got = sb.get_object(Bucket="site", Key=key)
        assert got["Body"].read() == expected[key], key
        assert got["ContentType"] == "application/x-test" and got["Metadata"] == {"n": str(i)}
    # The other direction, a copy, a multipart upload (ETag "-N") and deletes.
    sb.put_object(Bucket="site", Key="from-b.txt", Body=b"written in zone b")
    expected["from-b.txt"] = b"written in zone b"
    assert sa.get_object(Bucket="site", Key="from-b.txt")["Body"].read() == b"written in zone b"
    sa.copy_object(Bucket="site", Key="copy.bin", CopySource={"Bucket": "site", "Key": "before/003.bin"})
    expected["copy.bin"] = expected["before/003.bin"]
    part1, part2 = deterministic_bytes("mp1", 5 << 20), deterministic_bytes("mp2", 300_000)
    up = sa.create_multipart_upload(Bucket="site", Key="multi.bin")["UploadId"]
    e1 = sa.upload_part(Bucket="site", Key="multi.bin", UploadId=up, PartNumber=1, Body=part1)["ETag"]
    e2 = sa.upload_part(Bucket="site", Key="multi.bin", UploadId=up, PartNumber=2, Body=part2)["ETag"]
    done = sa.complete_multipart_upload(Bucket="site", Key="multi.bin", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert done["ETag"].endswith('-2"')
    expected["multi.bin"] = part1 + part2
    multi_b = sb.get_object(Bucket="site", Key="multi.bin")
    assert multi_b["ETag"] == done["ETag"] and multi_b["Body"].read() == part1 + part2
    sa.delete_object(Bucket="site", Key="before/000.bin")
    del expected["before/000.bin"]
    with pytest.raises(ClientError):
        sb.head_object(Bucket="site", Key="before/000.bin")

    # Zone b's node goes away (kill -9 by PID): zone a keeps acknowledging writes and serving reads.
    b.kill9()
    down_writes = []
    for i in range(25):
        key = f"during/{i:03d}.bin"
        expected[key] = deterministic_bytes(key, (i * 51_511) % 150_000 + 1)
        t0 = time.monotonic()
        r = sa.put_object(Bucket="site", Key=key, Body=expected[key])
        down_writes.append(time.monotonic() - t0)
        assert r["ETag"] == f'"{hashlib.md5(expected[key]).hexdigest()}"'
        # Reads from zone a throughout.
        back = f"before/{(i % 11) + 1:03d}.bin"
        assert sa.get_object(Bucket="site", Key=back)["Body"].read() == expected[back]
    # At most the first write waits to find the peer gone; then writes do not wait for it.
    assert sorted(down_writes)[-2] < 1.0, down_writes
    sa.put_object(Bucket="site", Key="before/005.bin", Body=b"overwritten while b was down")
    expected["before/005.bin"] = b"overwritten while b was down"
    sa.delete_object(Bucket="site", Key="before/001.bin")
    del expected["before/001.bin"]
    sa.delete_objects(Bucket="site", Delete={"Objects": [{"Key": "before/002.bin"}, {"Key": "from-b.txt"}]})
    del expected["before/002.bin"], expected["from-b.txt"]
    sa.delete_bucket(Bucket="scratch")
    sa.create_bucket(Bucket="later")
    sa.put_object(Bucket="later", Key="new.txt", Body=b"bucket made while b was down")

    st = status(a)["peers"][0]
    assert st["zone"] == "b" and st["state"] == "down", st
    assert st["behind"] >= 25 and st["lag_ms"] > 0, st
    assert "peer down" in a.proc.log_text()
    assert contents(sa, "site") == {k: (v, f'"{hashlib.md5(v).hexdigest()}"' if k != "multi.bin"
                                        else done["ETag"]) for k, v in expected.items()}

    # Zone b's node returns and catches up.
    b.start()
    wait_for(lambda: status(a)["peers"][0]["behind"] == 0, 20, what="zone b to catch up")
    st = status(a)["peers"][0]
    assert st["state"] == "in_sync" and st["lag_ms"] == 0, st
    assert "catching up" in a.proc.log_text() and "peer in sync" in a.proc.log_text()

    # Every object byte-exact on b (with the same ETag and Last-Modified), deletes applied, buckets too.
    in_a, in_b = contents(sa, "site"), contents(sb, "site")
    assert set(in_b) == set(expected), set(in_b) ^ set(expected)
    for k, v in expected.items():
        assert in_b[k][0] == v, k
        assert in_b[k][1] == in_a[k][1], k
    assert sb.head_object(Bucket="site", Key="during/007.bin")["LastModified"] == \
        sa.head_object(Bucket="site", Key="during/007.bin")["LastModified"]
    assert bucket_names(sb) == bucket_names(sa) == {"site", "later"}
    assert sb.get_object(Bucket="later", Key="new.txt")["Body"].read() == b"bucket made while b was down"

    # Reads from b, and b's writes reach a again before they are acknowledged.
    sb.put_object(Bucket="site", Key="after.txt", Body=b"zone b is back")
    assert sa.get_object(Bucket="site", Key="after.txt")["Body"].read() == b"zone b is back"
    assert status(b)["peers"][0]["behind"] == 0


@pytest.mark.time_limit(30)
def test_a_write_right_after_start_reaches_a_peer_that_was_not_listening_yet(procs, tmp_path):
    """Node a starts first and finds zone b's node not listening; b starts; a write to a right away must not be
    acknowledged without b only because a's next attempt is a long retry_interval away."""
    a = S3Store(procs, tmp_path, name="zone-a")
    b = S3Store(procs, tmp_path, name="zone-b")
    with open(a.config, "a") as f:
        f.write(replication("a", b, "b").replace("retry_interval: 200ms", "retry_interval: 60s"))
    with open(b.config, "a") as f:
        f.write(replication("b", a, "a"))
    a.start()
    wait_for(lambda: status(a)["peers"][0]["state"] == "down", 10, what="zone a to find zone b down")
    b.start()
    sa, sb = boto3_client(a), boto3_client(b)
    t0 = time.monotonic()
    sa.create_bucket(Bucket="site")
    sa.put_object(Bucket="site", Key="first.txt", Body=b"written right after the start")
    assert time.monotonic() - t0 < 3.0
    # Acknowledged once durable in both zones: zone b has it at once.
    assert sb.get_object(Bucket="site", Key="first.txt")["Body"].read() == b"written right after the start"
    assert status(a)["peers"][0]["state"] == "in_sync"


@pytest.mark.time_limit(60)
def test_a_malformed_change_from_a_peer_is_a_400(procs, tmp_path):
    """A peer's x-cumulo-change header is outside input: every way it can be wrong (not JSON, a field missing or
    of another type, headers that are not pairs, part sizes that do not add up or overflow) is answered 400
    naming what is wrong, and the node keeps serving."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import urllib.error
    import urllib.parse

    unused = S3Store(procs, tmp_path, name="unused")  # never started: the peer is down
    a = S3Store(procs, tmp_path, name="a", extra=replication("a", unused, "b")).start()
    good = {"zone": "b", "seq": 1, "origin": "b", "version_ms": 1000, "owner": "admin", "op": "put",
            "bucket": "site", "key": "k", "size": 3, "etag": "e", "content_type": "text/plain",
            "headers": [["x-amz-meta-a", "1"]], "parts": [3]}

    def send(change: str) -> tuple[int, str]:
        url = f"{a.endpoint}/_cumulo/replication/apply"
        headers = {"x-cumulo-change": urllib.parse.quote(change, safe=""),
                   "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
        req = AWSRequest(method="PUT", url=url, data=b"abc", headers=headers)
        SigV4Auth(Credentials("AKADMINEXAMPLE", "admin-secret-key-0123456789"), "s3", "us-east-1").add_auth(req)
        r = urllib.request.Request(url, data=b"abc", method="PUT", headers=dict(req.headers.items()))
        try:
            with urllib.request.urlopen(r, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def changed(**fields) -> str:
        c = dict(good)
        for k, v in fields.items():
            if v is None:
                c.pop(k)
            else:
                c[k] = v
        return json.dumps(c)

    cases = {
        "not json": ("{", "not a JSON object"),
        "an array": ("[1, 2]", "not a JSON object"),
        "no zone": (changed(zone=None), 'no "zone"'),
        "seq negative": (changed(seq=-1), '"seq" is not a non-negative integer'),
        "seq a string": (changed(seq="1"), '"seq" is not a non-negative integer'),
        "version a float": (changed(version_ms=1.5), '"version_ms" is not an integer'),
        "headers not pairs": (changed(headers=[["a"]]), "not a [name, value] pair"),
        "headers not an array": (changed(headers="x"), '"headers" is not an array'),
        "parts short": (changed(parts=[1, 1]), "parts do not add up"),
        "parts overflow": (changed(parts=[2**64 - 1, 4], size=3), "overflow"),
        "unknown op": (changed(op="rename"), "unknown op 'rename'"),
    }
    for name, (change, why) in cases.items():
        status_code, body = send(change)
        assert status_code == 400, (name, status_code, body)
        assert "bad x-cumulo-change header" in body and why in body, (name, body)
    s3 = boto3_client(a)
    s3.create_bucket(Bucket="still-serving")
    assert "still-serving" in bucket_names(s3)
