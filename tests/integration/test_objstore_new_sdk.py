"""The store driven by a current boto3 and aws cli (boto3 1.36 or later: CRC32 checksums on every upload by
default, checksum validation on download), run by the `python3` first on PATH when it is not the Debian one and
has such a boto3; skipped otherwise, with the reason (Debian's own boto3 is covered by test_objstore_boto3.py).
Over HTTP and over HTTPS with a test CA: put and get with the default checksums, explicit checksums read back
in checksum mode, a wrong checksum refused, multipart uploads with COMPOSITE and FULL_OBJECT checksums,
GetObjectAttributes, the managed transfer with parallel parts, and an unsigned streamed (aws-chunked) body."""

import json
import os
import shutil
import subprocess

import pytest

from objstore_support import ADMIN, start_tls_store, s3store  # noqa: F401 (fixture)

SCRIPT = r'''
import base64, hashlib, io, json, struct, sys, zlib
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
endpoint, key, secret, ca = sys.argv[1:5]
verify = ca or None
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                  region_name="eu-central-1", verify=verify, config=Config(retries={"max_attempts": 1}))
out = {"version": boto3.__version__}
data = bytes(range(256)) * 4000
s3.put_object(Bucket="assets", Key="new-sdk", Body=data)
r = s3.get_object(Bucket="assets", Key="new-sdk", ChecksumMode="ENABLED")
out["get_ok"] = r["Body"].read() == data
out["crc32"] = r.get("ChecksumCRC32")
out["crc32_expected"] = base64.b64encode(struct.pack(">I", zlib.crc32(data))).decode()
s3.put_object(Bucket="assets", Key="sha", Body=b"hello", ChecksumAlgorithm="SHA256")
out["sha256"] = s3.head_object(Bucket="assets", Key="sha", ChecksumMode="ENABLED").get("ChecksumSHA256")
try:
    s3.put_object(Bucket="assets", Key="bad", Body=b"hello", ChecksumCRC32="AAAAAA==")
    out["bad"] = "accepted"
except ClientError as e:
    out["bad"] = e.response["Error"]["Code"]
try:
    s3.head_object(Bucket="assets", Key="bad")
    out["bad_stored"] = True
except ClientError:
    out["bad_stored"] = False

part1 = hashlib.sha256(b"p1").digest() * (5 * 1024 * 1024 // 32)
part2 = b"the last part"
whole = part1 + part2

def multipart(key, algorithm, checksum_type=None, whole_value=None):
    extra = {"ChecksumType": checksum_type} if checksum_type else {}
    uid = s3.create_multipart_upload(Bucket="assets", Key=key, ChecksumAlgorithm=algorithm, **extra)["UploadId"]
    parts = []
    for n, body in ((1, part1), (2, part2)):
        r = s3.upload_part(Bucket="assets", Key=key, UploadId=uid, PartNumber=n, Body=body,
                           ChecksumAlgorithm=algorithm)
        parts.append({"PartNumber": n, "ETag": r["ETag"], "Checksum" + algorithm: r["Checksum" + algorithm]})
    done_extra = dict(extra)
    if whole_value:
        done_extra["Checksum" + algorithm] = whole_value
    done = s3.complete_multipart_upload(Bucket="assets", Key=key, UploadId=uid,
                                        MultipartUpload={"Parts": parts}, **done_extra)
    got = s3.get_object(Bucket="assets", Key=key, ChecksumMode="ENABLED")
    return {"complete": done.get("Checksum" + algorithm), "type": done.get("ChecksumType"),
            "get": got.get("Checksum" + algorithm), "get_type": got.get("ChecksumType"),
            "bytes_ok": got["Body"].read() == whole}

out["composite"] = multipart("composite", "SHA256")
full_crc = base64.b64encode(struct.pack(">I", zlib.crc32(whole))).decode()
out["full_crc32_expected"] = full_crc
out["full"] = multipart("full", "CRC32", "FULL_OBJECT", full_crc)
try:
    multipart("full-wrong", "CRC32", "FULL_OBJECT", "AAAAAA==")
    out["full_wrong"] = "accepted"
except ClientError as e:
    out["full_wrong"] = e.response["Error"]["Code"]
attrs = s3.get_object_attributes(Bucket="assets", Key="composite",
                                 ObjectAttributes=["ETag", "Checksum", "ObjectParts", "ObjectSize", "StorageClass"])
out["attrs"] = {"parts": attrs["ObjectParts"]["TotalPartsCount"], "size": attrs["ObjectSize"],
                "part2": attrs["ObjectParts"]["Parts"][1].get("ChecksumSHA256"),
                "part2_expected": base64.b64encode(hashlib.sha256(part2).digest()).decode(),
                "etag_ok": attrs["ETag"].endswith("-2"), "checksum": attrs["Checksum"].get("ChecksumSHA256")}
copied = s3.copy_object(Bucket="assets", Key="full-copy", CopySource={"Bucket": "assets", "Key": "full"})
out["copy_crc32"] = copied["CopyObjectResult"].get("ChecksumCRC32")

# The managed transfer: parallel parts with the SDK's default checksums, downloaded with validation.
big = hashlib.sha256(b"seed").digest() * (11 * 1024 * 1024 // 32)
s3.upload_fileobj(io.BytesIO(big), "assets", "multi",
                  Config=TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024,
                                        max_concurrency=3))
buf = io.BytesIO()
s3.download_fileobj("assets", "multi", buf)
out["multipart_ok"] = buf.getvalue() == big
out["multi_checksum"] = s3.head_object(Bucket="assets", Key="multi", ChecksumMode="ENABLED").get("ChecksumCRC32")

s3u = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                   region_name="us-west-2", verify=verify,
                   config=Config(s3={"payload_signing_enabled": False}, retries={"max_attempts": 1}))
s3u.put_object(Bucket="assets", Key="unsigned", Body=io.BytesIO(data))
out["unsigned_stream_ok"] = s3u.get_object(Bucket="assets", Key="unsigned")["Body"].read() == data
print(json.dumps(out))
'''


def newer_python():
    path = shutil.which("python3")
    if not path or os.path.realpath(path) == "/usr/bin/python3":
        return None
    r = subprocess.run([path, "-c", "import boto3; print(boto3.__version__)"], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    major, minor = (int(x) for x in r.stdout.strip().split(".")[:2])
    return path if (major, minor) >= (1, 36) else None


def run_sdk(store, ca=""):
    python = newer_python()
    if not python:
        pytest.skip("no python3 on PATH with boto3 >= 1.36 (pip install boto3 awscli into it)")
    r = subprocess.run([python, "-c", SCRIPT, store.endpoint, ADMIN[1], ADMIN[2], str(ca)], capture_output=True,
                       text=True, timeout=100)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["get_ok"] and out["multipart_ok"] and out["unsigned_stream_ok"], out
    # Stored from the SDK's default checksum and returned in checksum mode.
    assert out["crc32"] == out["crc32_expected"], out
    assert out["sha256"] == "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=", out
    assert out["bad"] == "BadDigest" and out["bad_stored"] is False, out
    composite = out["composite"]
    assert composite["bytes_ok"] and composite["type"] == "COMPOSITE", out
    assert composite["complete"].endswith("-2") and composite["get"] == composite["complete"], out
    full = out["full"]
    assert full["bytes_ok"] and full["type"] == "FULL_OBJECT" and full["get_type"] == "FULL_OBJECT", out
    assert full["complete"] == full["get"] == out["full_crc32_expected"], out
    assert out["full_wrong"] == "BadDigest", out
    attrs = out["attrs"]
    assert attrs["parts"] == 2 and attrs["size"] == 5 * 1024 * 1024 + 13 and attrs["etag_ok"], out
    assert attrs["part2"] == attrs["part2_expected"] and attrs["checksum"] == composite["complete"], out
    assert out["copy_crc32"] == out["full_crc32_expected"], out
    assert out["multi_checksum"], out  # the managed transfer's parts carried CRC32s: the object has one


def aws_cli_multipart(store, tmp_path, ca=""):
    """`aws s3 cp` of a file above the multipart threshold, its checksum read back in checksum mode."""
    aws = shutil.which("aws")
    assert aws and os.path.realpath(aws) != "/usr/bin/aws", "the aws cli beside the newer boto3 is missing"
    path = tmp_path / "cli-big.bin"
    path.write_bytes(os.urandom(9 * 1024 * 1024))
    env = store.env()
    if ca:
        env["AWS_CA_BUNDLE"] = str(ca)
    base = [aws, "--endpoint-url", store.endpoint]
    r = subprocess.run(base + ["s3", "cp", str(path), "s3://assets/cli-big.bin"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run(base + ["s3api", "head-object", "--bucket", "assets", "--key", "cli-big.bin",
                               "--checksum-mode", "ENABLED"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr[-2000:]
    head = json.loads(r.stdout)
    assert head["ContentLength"] == 9 * 1024 * 1024 and head.get("ChecksumCRC32"), head
    back = tmp_path / "cli-back.bin"
    r = subprocess.run(base + ["s3", "cp", "s3://assets/cli-big.bin", str(back)], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and back.read_bytes() == path.read_bytes(), r.stderr[-2000:]


@pytest.mark.time_limit(90)
def test_current_boto3_and_aws_cli_http(s3store, tmp_path):
    run_sdk(s3store)
    aws_cli_multipart(s3store, tmp_path)


@pytest.mark.time_limit(90)
def test_current_boto3_and_aws_cli_https(procs, tmp_path):
    store, ca = start_tls_store(procs, tmp_path)
    run_sdk(store, ca)
    aws_cli_multipart(store, tmp_path, ca)
