"""The object store driven by boto3 (Debian's, in this interpreter): every S3 operation the store implements,
byte-exact round trips, both addressing styles, presigned URLs, public buckets and two users."""

import hashlib
import time

import pytest
import requests
from botocore.exceptions import ClientError

from objstore_support import (BOB, boto3_client, deterministic_bytes, resolve_localhost_subdomains,
                              s3store)  # noqa: F401 (fixture)


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def test_buckets(s3store):
    s3 = boto3_client(s3store)
    s3.create_bucket(Bucket="photos")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == ["assets", "photos"]
    s3.head_bucket(Bucket="photos")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="photos")
    assert error_code(e) == "BucketAlreadyOwnedByYou"
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket="nothere")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    s3.put_object(Bucket="photos", Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket="photos")
    assert error_code(e) == "BucketNotEmpty"
    s3.delete_object(Bucket="photos", Key="k")
    s3.delete_bucket(Bucket="photos")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["assets"]
    assert s3.get_bucket_location(Bucket="assets")["LocationConstraint"] in (None, "")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="Bad_Name")
    assert error_code(e) == "InvalidBucketName"


def test_objects_round_trip_with_metadata(s3store):
    s3 = boto3_client(s3store)
    for size in (0, 1, 65535, 65536, 65537, 3 * 1024 * 1024 + 5):
        data = deterministic_bytes(f"obj{size}", size)
        put = s3.put_object(Bucket="assets", Key=f"dir/obj-{size}.bin", Body=data)
        assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        got = s3.get_object(Bucket="assets", Key=f"dir/obj-{size}.bin")["Body"].read()
        assert got == data, size
    s3.put_object(Bucket="assets", Key="site/app.js", Body=b"console.log(1)", ContentType="application/javascript",
                  CacheControl="public, max-age=31536000", ContentDisposition='attachment; filename="app.js"',
                  ContentEncoding="identity", Metadata={"Build": "42", "team": "web"})
    head = s3.head_object(Bucket="assets", Key="site/app.js")
    assert head["ContentType"] == "application/javascript"
    assert head["CacheControl"] == "public, max-age=31536000"
    assert head["ContentDisposition"] == 'attachment; filename="app.js"'
    assert head["ContentEncoding"] == "identity"
    assert head["Metadata"] == {"build": "42", "team": "web"}
    assert head["ContentLength"] == 14
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="assets", Key="missing")
    assert error_code(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="nobucket", Key="x")
    assert error_code(e) == "NoSuchBucket"


def test_keys_with_odd_characters(s3store):
    s3 = boto3_client(s3store)
    keys = ["a b.txt", "plus+sign", "ümlaut/ß", "q?x=1&y=2", "pct%20literal", "semi;colon", "tilde~", "x/y/z/"]
    for k in keys:
        s3.put_object(Bucket="assets", Key=k, Body=k.encode())
    for k in keys:
        assert s3.get_object(Bucket="assets", Key=k)["Body"].read() == k.encode()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="assets")["Contents"]]
    assert listed == sorted(keys, key=lambda s: s.encode())


def test_listing_v2_and_v1(s3store):
    s3 = boto3_client(s3store)
    keys = [f"logs/2024/{i:03d}.log" for i in range(25)] + ["logs/readme", "top.txt", "logs/2025/a.log"]
    for k in keys:
        s3.put_object(Bucket="assets", Key=k, Body=b".")
    r = s3.list_objects_v2(Bucket="assets", Prefix="logs/", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["logs/2024/", "logs/2025/"]
    assert [o["Key"] for o in r["Contents"]] == ["logs/readme"]
    # Pagination with continuation tokens visits every key once.
    seen = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="assets", PaginationConfig={"PageSize": 7}):
        seen += [o["Key"] for o in page.get("Contents", [])]
    assert seen == sorted(keys)
    r = s3.list_objects_v2(Bucket="assets", StartAfter="logs/2024/020.log", MaxKeys=3)
    assert [o["Key"] for o in r["Contents"]] == [f"logs/2024/{i:03d}.log" for i in (21, 22, 23)]
    assert r["IsTruncated"]
    seen = []
    for page in s3.get_paginator("list_objects").paginate(Bucket="assets", PaginationConfig={"PageSize": 4}):
        seen += [o["Key"] for o in page.get("Contents", [])]
    assert seen == sorted(keys)
    r = s3.list_objects(Bucket="assets", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["logs/"]


def test_range_and_conditional_requests(s3store):
    s3 = boto3_client(s3store)
    data = deterministic_bytes("range", 2 * 1024 * 1024 + 3)
    etag = s3.put_object(Bucket="assets", Key="r.bin", Body=data)["ETag"]
    r = s3.get_object(Bucket="assets", Key="r.bin", Range="bytes=1000-1999999")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert r["ContentRange"] == f"bytes 1000-1999999/{len(data)}"
    assert r["Body"].read() == data[1000:2000000]
    assert s3.get_object(Bucket="assets", Key="r.bin", Range="bytes=-10")["Body"].read() == data[-10:]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="assets", Key="r.bin", Range=f"bytes={len(data)}-")
    assert error_code(e) == "InvalidRange"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="assets", Key="r.bin", IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="assets", Key="r.bin", IfMatch='"0000"')
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3.get_object(Bucket="assets", Key="r.bin", IfMatch=etag)["ContentLength"] == len(data)
    future = time.time() + 3600
    import datetime
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="assets", Key="r.bin", IfModifiedSince=datetime.datetime.fromtimestamp(future))
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="assets", Key="r.bin", IfUnmodifiedSince=datetime.datetime(2015, 1, 1))
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_copy_and_delete_objects(s3store):
    s3 = boto3_client(s3store)
    s3.create_bucket(Bucket="other")
    data = deterministic_bytes("copy", 300000)
    s3.put_object(Bucket="assets", Key="src", Body=data, ContentType="image/png", Metadata={"a": "1"})
    s3.copy_object(Bucket="other", Key="dst", CopySource={"Bucket": "assets", "Key": "src"})
    got = s3.get_object(Bucket="other", Key="dst")
    assert got["Body"].read() == data
    assert got["ContentType"] == "image/png" and got["Metadata"] == {"a": "1"}
    s3.copy_object(Bucket="other", Key="dst2", CopySource="assets/src", MetadataDirective="REPLACE",
                   ContentType="text/plain", Metadata={"b": "2"})
    head = s3.head_object(Bucket="other", Key="dst2")
    assert head["ContentType"] == "text/plain" and head["Metadata"] == {"b": "2"}
    for i in range(5):
        s3.put_object(Bucket="other", Key=f"d{i}", Body=b"x")
    r = s3.delete_objects(Bucket="other", Delete={"Objects": [{"Key": f"d{i}"} for i in range(5)] + [{"Key": "nope"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["d0", "d1", "d2", "d3", "d4", "nope"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="other")["Contents"]] == ["dst", "dst2"]


def test_multipart_upload(s3store):
    s3 = boto3_client(s3store)
    part = 5 * 1024 * 1024
    chunks = [deterministic_bytes(f"mp{i}", part) for i in range(3)] + [b"tail"]
    up = s3.create_multipart_upload(Bucket="assets", Key="big.bin", ContentType="video/mp4")
    uid = up["UploadId"]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="assets")["Uploads"]] == [uid]
    etags = []
    for n, c in enumerate(chunks, 1):
        etags.append(s3.upload_part(Bucket="assets", Key="big.bin", UploadId=uid, PartNumber=n, Body=c)["ETag"])
    parts = s3.list_parts(Bucket="assets", Key="big.bin", UploadId=uid)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1, 2, 3, 4]
    assert [p["Size"] for p in parts] == [part, part, part, 4]
    done = s3.complete_multipart_upload(
        Bucket="assets", Key="big.bin", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    md5s = b"".join(hashlib.md5(c).digest() for c in chunks)
    assert done["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-4"'
    body = s3.get_object(Bucket="assets", Key="big.bin")["Body"].read()
    assert body == b"".join(chunks)
    assert s3.head_object(Bucket="assets", Key="big.bin")["ContentType"] == "video/mp4"
    # Abort another upload; its parts go.
    uid2 = s3.create_multipart_upload(Bucket="assets", Key="x")["UploadId"]
    s3.upload_part(Bucket="assets", Key="x", UploadId=uid2, PartNumber=1, Body=b"abc")
    s3.abort_multipart_upload(Bucket="assets", Key="x", UploadId=uid2)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket="assets", Key="x", UploadId=uid2)
    assert error_code(e) == "NoSuchUpload"
    # Too small a non-final part.
    uid3 = s3.create_multipart_upload(Bucket="assets", Key="y")["UploadId"]
    e1 = s3.upload_part(Bucket="assets", Key="y", UploadId=uid3, PartNumber=1, Body=b"small")["ETag"]
    e2 = s3.upload_part(Bucket="assets", Key="y", UploadId=uid3, PartNumber=2, Body=b"small")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="assets", Key="y", UploadId=uid3, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert error_code(e) == "EntityTooSmall"


def test_multipart_checksums(s3store):
    """Debian's boto3 (which predates default checksums) asking for them: a COMPOSITE SHA256 declared at
    creation, and parts that carry CRC32s without a declaration, which give the object its whole CRC32
    (FULL_OBJECT), validated by botocore on download; GetObjectAttributes lists the parts' checksums."""
    import base64
    import struct
    import zlib
    s3 = boto3_client(s3store)
    part1, part2 = deterministic_bytes("cs1", 5 * 1024 * 1024), b"the end"

    def upload(key, algorithm, declare):
        extra = {"ChecksumAlgorithm": algorithm} if declare else {}
        uid = s3.create_multipart_upload(Bucket="assets", Key=key, **extra)["UploadId"]
        parts = []
        for n, body in ((1, part1), (2, part2)):
            r = s3.upload_part(Bucket="assets", Key=key, UploadId=uid, PartNumber=n, Body=body,
                               ChecksumAlgorithm=algorithm)
            parts.append({"PartNumber": n, "ETag": r["ETag"], f"Checksum{algorithm}": r[f"Checksum{algorithm}"]})
        return s3.complete_multipart_upload(Bucket="assets", Key=key, UploadId=uid, MultipartUpload={"Parts": parts})

    done = upload("composite", "SHA256", True)
    raw = hashlib.sha256(hashlib.sha256(part1).digest() + hashlib.sha256(part2).digest()).digest()
    composite = base64.b64encode(raw).decode() + "-2"
    assert done["ChecksumSHA256"] == composite
    assert s3.head_object(Bucket="assets", Key="composite", ChecksumMode="ENABLED")["ChecksumSHA256"] == composite
    attrs = s3.get_object_attributes(Bucket="assets", Key="composite", ObjectAttributes=["ObjectParts", "Checksum"])
    assert attrs["ObjectParts"]["TotalPartsCount"] == 2
    assert [p["ChecksumSHA256"] for p in attrs["ObjectParts"]["Parts"]] == [
        base64.b64encode(hashlib.sha256(p).digest()).decode() for p in (part1, part2)]

    done = upload("whole", "CRC32", False)
    whole = base64.b64encode(struct.pack(">I", zlib.crc32(part1 + part2))).decode()
    assert done["ChecksumCRC32"] == whole
    got = s3.get_object(Bucket="assets", Key="whole", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == whole and got["Body"].read() == part1 + part2


def test_managed_transfer_uses_multipart(s3store, tmp_path):
    from boto3.s3.transfer import TransferConfig
    s3 = boto3_client(s3store)
    data = deterministic_bytes("managed", 23 * 1024 * 1024 + 11)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    cfg = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024, max_concurrency=4)
    s3.upload_file(str(src), "assets", "managed.bin", Config=cfg)
    assert s3.head_object(Bucket="assets", Key="managed.bin")["ETag"].endswith('-3"')
    dst = tmp_path / "dst.bin"
    s3.download_file("assets", "managed.bin", str(dst), Config=cfg)
    assert dst.read_bytes() == data


def test_virtual_host_style(s3store, monkeypatch):
    resolve_localhost_subdomains(monkeypatch)
    s3 = boto3_client(s3store, addressing="virtual", endpoint=f"http://s3.localhost:{s3store.port}")
    s3.create_bucket(Bucket="vhost")
    s3.put_object(Bucket="vhost", Key="a/b.txt", Body=b"virtual")
    assert s3.get_object(Bucket="vhost", Key="a/b.txt")["Body"].read() == b"virtual"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="vhost")["Contents"]] == ["a/b.txt"]
    path_style = boto3_client(s3store)
    assert path_style.get_object(Bucket="vhost", Key="a/b.txt")["Body"].read() == b"virtual"


def test_presigned_urls_and_public_buckets(s3store):
    s3 = boto3_client(s3store)
    s3.create_bucket(Bucket="private")
    s3.put_object(Bucket="private", Key="doc.txt", Body=b"secret doc", ContentType="text/plain")
    s3.put_object(Bucket="assets", Key="index.html", Body=b"<h1>site</h1>", ContentType="text/html",
                  CacheControl="max-age=60")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "private", "Key": "doc.txt"}, ExpiresIn=60)
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == b"secret doc"
    short = s3.generate_presigned_url("get_object", Params={"Bucket": "private", "Key": "doc.txt"}, ExpiresIn=1)
    time.sleep(2.1)
    r = requests.get(short, timeout=10)
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content and b"expired" in r.content
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "private", "Key": "up.txt"}, ExpiresIn=60)
    assert requests.put(put_url, data=b"uploaded", timeout=10).status_code == 200
    assert s3.get_object(Bucket="private", Key="up.txt")["Body"].read() == b"uploaded"
    # Anonymous: objects of public buckets only, reading only.
    r = requests.get(f"{s3store.endpoint}/assets/index.html", timeout=10)
    assert r.status_code == 200 and r.content == b"<h1>site</h1>"
    assert r.headers["Content-Type"] == "text/html" and r.headers["Cache-Control"] == "max-age=60"
    assert requests.get(f"{s3store.endpoint}/private/doc.txt", timeout=10).status_code == 403
    assert requests.put(f"{s3store.endpoint}/assets/x", data=b"x", timeout=10).status_code == 403
    assert requests.get(f"{s3store.endpoint}/assets", timeout=10).status_code == 403
    assert requests.get(f"{s3store.endpoint}/", timeout=10).status_code == 403


def test_two_users(s3store):
    admin = boto3_client(s3store)
    bob = boto3_client(s3store, user=BOB)
    bob.create_bucket(Bucket="bobs")
    bob.put_object(Bucket="bobs", Key="k", Body=b"bob's")
    assert [b["Name"] for b in bob.list_buckets()["Buckets"]] == ["bobs"]
    assert "bobs" not in [b["Name"] for b in admin.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as e:
        admin.get_object(Bucket="bobs", Key="k")
    assert error_code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        admin.create_bucket(Bucket="bobs")
    assert error_code(e) == "BucketAlreadyExists"


def test_wrong_credentials(s3store):
    bad = boto3_client(s3store, user=("x", "AKADMINEXAMPLE", "wrong-secret"))
    with pytest.raises(ClientError) as e:
        bad.list_buckets()
    assert error_code(e) == "SignatureDoesNotMatch"
    unknown = boto3_client(s3store, user=("x", "AKNOBODY", "whatever-secret"))
    with pytest.raises(ClientError) as e:
        unknown.list_buckets()
    assert error_code(e) == "InvalidAccessKeyId"
