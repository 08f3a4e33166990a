"""Bad input answered with the S3 error a client understands, nothing half-written left visible, and the
store still serving afterwards: malformed XML, bad keys and bucket names, wrong signatures, expired presigned
URLs, bad ranges, a body cut short, corrupted data on disk, a full disk."""

import os
import socket
import subprocess

import pytest
import requests
from botocore.exceptions import ClientError

from objstore_support import (S3Store, boto3_client, data_files, deterministic_bytes,  # noqa: F401 (fixture)
                              s3store, send_cut_off_upload)


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_bad_keys_and_names(s3store):
    s3 = boto3_client(s3store)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="assets", Key="k" * 1025, Body=b"x")
    assert code(e) == "KeyTooLongError"
    # HTTP libraries remove "..", so these requests go by hand over a socket, signed.
    for path in ("/assets/a/../b", "/assets/a%00b", "/assets/..", "/assets/%FF%FE"):
        status, body = raw_request(s3store, "PUT", path, b"x")
        assert status == 400 and b"<Code>InvalidArgument</Code>" in body, (path, body)
    for bad in ("ab", "UPPER", "under_score", "-dash", "1.2.3.4", "a" * 64):
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket=bad)
        assert code(e) in ("InvalidBucketName",), bad


def test_malformed_xml(s3store):
    s3 = boto3_client(s3store)
    uid = s3.create_multipart_upload(Bucket="assets", Key="m")["UploadId"]
    # Built by hand: botocore would produce well-formed XML.
    from botocore.awsrequest import AWSRequest
    from botocore.auth import S3SigV4Auth
    from botocore.credentials import Credentials
    from objstore_support import ADMIN
    for body in (b"<CompleteMultipartUpload><Part>", b"not xml", b"<!DOCTYPE x><x/>",
                 b"<CompleteMultipartUpload></CompleteMultipartUpload>"):
        req = AWSRequest(method="POST", url=f"{s3store.endpoint}/assets/m?uploadId={uid}", data=body)
        req.context["payload_signing_enabled"] = True
        S3SigV4Auth(Credentials(ADMIN[1], ADMIN[2]), "s3", "us-east-1").add_auth(req)
        r = requests.post(req.url, data=body, headers=dict(req.headers), timeout=10)
        assert r.status_code == 400 and b"<Code>MalformedXML</Code>" in r.content, (body, r.content)


def raw_request(store, method, path, body=b""):
    headers = signed_headers(store, method, path, body)
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", store.port)) as sock:
        sock.settimeout(10)
        sock.sendall(head.encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def signed_headers(store, method, path, body):
    """Headers botocore would send for this request (SigV4 over the whole body)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from objstore_support import ADMIN
    req = AWSRequest(method=method, url=f"{store.endpoint}{path}", data=body,
                     headers={"Host": f"127.0.0.1:{store.port}"})
    S3SigV4Auth(Credentials(ADMIN[1], ADMIN[2]), "s3", "us-east-1").add_auth(req)
    return dict(req.headers)


def test_body_cut_short_leaves_nothing(s3store):
    s3 = boto3_client(s3store)
    body = deterministic_bytes("cut", 1000000)
    headers = signed_headers(s3store, "PUT", "/assets/partial", body)
    head = "PUT /assets/partial HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    send_cut_off_upload(s3store, head.encode() + body[:300000])
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="assets", Key="partial")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    s3.put_object(Bucket="assets", Key="still-ok", Body=b"ok")


def test_corrupted_object_is_an_error_never_wrong_bytes(s3store):
    s3 = boto3_client(s3store)
    small = deterministic_bytes("small", 1000)
    big = deterministic_bytes("big", 3 * 1024 * 1024)
    s3.put_object(Bucket="assets", Key="small", Body=small)
    s3.put_object(Bucket="assets", Key="big", Body=big)
    files = sorted((p for p in (s3store.dir / "objects").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    assert len(files) == 2
    for f in files:
        with open(f, "r+b") as fh:
            fh.seek(f.stat().st_size // 2)
            b = fh.read(1)
            fh.seek(-1, 1)
            fh.write(bytes([b[0] ^ 0x55]))
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="assets", Key="small")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    # A large object streams: the damaged frame ends the body early, so the client sees an error.
    try:
        s3.get_object(Bucket="assets", Key="big")["Body"].read()
    except Exception:  # the short body: IncompleteReadError or a connection error, depending on timing
        pass
    else:
        pytest.fail("a corrupted object was served whole")
    # Ranges away from the damage still read.
    assert s3.get_object(Bucket="assets", Key="big", Range="bytes=0-99")["Body"].read() == big[:100]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_full_disk(procs, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (no CAP_SYS_ADMIN)")
    try:
        store = S3Store(procs, mnt, buckets="  - {name: assets}")
        store.start()
        s3 = boto3_client(store)
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="assets", Key="too-big", Body=deterministic_bytes("full", 8 * 1024 * 1024))
        assert code(e) == "InsufficientStorage"
        with pytest.raises(ClientError):
            s3.head_object(Bucket="assets", Key="too-big")
        assert not data_files(store), "the refused upload's file must go"
        s3.put_object(Bucket="assets", Key="small", Body=b"fits")
        assert s3.get_object(Bucket="assets", Key="small")["Body"].read() == b"fits"
        store.stop()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_server_survives_garbage(s3store):
    for junk in (b"\x00\x01\x02garbage\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 x\r\n\r\n",
                 b"PUT /assets/x HTTP/1.1\r\nHost: x\r\nx-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\r\n"
                 b"Content-Length: 5\r\n\r\nhello"):
        with socket.create_connection(("127.0.0.1", s3store.port)) as sock:
            sock.settimeout(5)
            sock.sendall(junk)
            try:
                sock.recv(4096)
            except OSError:
                pass
    s3 = boto3_client(s3store)
    s3.put_object(Bucket="assets", Key="alive", Body=b"yes")
    assert s3.get_object(Bucket="assets", Key="alive")["Body"].read() == b"yes"
