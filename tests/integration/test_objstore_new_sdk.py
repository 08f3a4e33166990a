"""The store driven by a current boto3 (1.36 or later: CRC32 checksums on every upload by default, checksum
validation on download), run by the `python3` first on PATH when it is not the Debian one and has such a
boto3; skipped otherwise (Debian's own boto3 is covered by test_objstore_boto3.py)."""

import json
import shutil
import subprocess

import pytest

from objstore_support import ADMIN, s3store  # noqa: F401 (fixture)

SCRIPT = r'''
import hashlib, io, json, sys
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
endpoint, key, secret = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                  region_name="eu-central-1")
out = {"version": boto3.__version__}
data = bytes(range(256)) * 4000
s3.put_object(Bucket="assets", Key="new-sdk", Body=data)
r = s3.get_object(Bucket="assets", Key="new-sdk", ChecksumMode="ENABLED")
out["get_ok"] = r["Body"].read() == data
out["crc32"] = r.get("ChecksumCRC32")
s3.put_object(Bucket="assets", Key="sha", Body=b"hello", ChecksumAlgorithm="SHA256")
out["sha256"] = s3.head_object(Bucket="assets", Key="sha", ChecksumMode="ENABLED").get("ChecksumSHA256")
try:
    s3.put_object(Bucket="assets", Key="bad", Body=b"hello", ChecksumCRC32="AAAAAA==")
    out["bad"] = "accepted"
except ClientError as e:
    out["bad"] = e.response["Error"]["Code"]
big = hashlib.sha256(b"seed").digest() * (13 * 1024 * 1024 // 32)
s3.upload_fileobj(io.BytesIO(big), "assets", "multi",
                  Config=TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024,
                                        max_concurrency=4))
buf = io.BytesIO()
s3.download_fileobj("assets", "multi", buf)
out["multipart_ok"] = buf.getvalue() == big
out["unsigned_stream_ok"] = True
s3u = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                   region_name="us-west-2", config=boto3.session.Config(s3={"payload_signing_enabled": False}))
s3u.put_object(Bucket="assets", Key="unsigned", Body=io.BytesIO(data))
out["unsigned_stream_ok"] = s3u.get_object(Bucket="assets", Key="unsigned")["Body"].read() == data
print(json.dumps(out))
'''


def newer_python():
    path = shutil.which("python3")
    if not path or path == "/usr/bin/python3":
        return None
    r = subprocess.run([path, "-c", "import boto3; print(boto3.__version__)"], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    major, minor = (int(x) for x in r.stdout.strip().split(".")[:2])
    return path if (major, minor) >= (1, 36) else None


@pytest.mark.time_limit(120)
def test_current_boto3(s3store):
    python = newer_python()
    if not python:
        pytest.skip("no python3 on PATH with boto3 >= 1.36")
    r = subprocess.run([python, "-c", SCRIPT, s3store.endpoint, ADMIN[1], ADMIN[2]], capture_output=True, text=True,
                       timeout=100)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["get_ok"] and out["multipart_ok"] and out["unsigned_stream_ok"], out
    assert out["crc32"], out  # stored from the SDK's default checksum and returned in checksum mode
    assert out["sha256"] == "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=", out
    assert out["bad"] == "BadDigest", out
