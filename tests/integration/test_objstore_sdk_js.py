"""The store driven by the AWS SDK for JavaScript v3 (@aws-sdk/client-s3 and @aws-sdk/lib-storage, pinned in
tests/integration/js/package-lock.json) with its default settings, over HTTP and over HTTPS with a test CA: put
and get (a Buffer with its CRC32 in a header, a stream as aws-chunked with the CRC32 in a trailer), multipart
with parallel parts (lib-storage Upload), explicit SHA256 and CRC32C checksums read back in checksum mode, and
a wrong checksum refused. The SDK is installed with `npm ci` into tests/integration/js the first time."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from objstore_support import ADMIN, start_tls_store, s3store  # noqa: F401 (fixture)

JS_DIR = Path(__file__).resolve().parent / "js"
NEED_NODE = ("node >= 18 and npm are needed (Debian 12: apt-get install -y nodejs npm, or "
             "scripts/install-deps.sh)")


def node_ready() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail(NEED_NODE, pytrace=False)
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 18:
        pytest.fail(f"node {version} is too old: {NEED_NODE}", pytrace=False)
    if not (JS_DIR / "node_modules" / "@aws-sdk" / "lib-storage").is_dir():
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, capture_output=True, text=True,
                           timeout=240)
        assert r.returncode == 0, f"npm ci in {JS_DIR} failed (is the npm registry reachable?):\n{r.stderr[-2000:]}"
    return node


def run_js(store, ca=None) -> dict:
    node = node_ready()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    if ca:
        env["NODE_EXTRA_CA_CERTS"] = str(ca)
    r = subprocess.run([node, "s3_sdk_check.mjs", store.endpoint, ADMIN[1], ADMIN[2]], cwd=JS_DIR, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    wire = out["wire"]
    # The SDK's defaults: a CRC32 on every upload; a stream goes aws-chunked with the CRC32 as a trailer.
    assert wire["PutObjectCommand:js-small"]["checksum"] == "x-amz-checksum-crc32", wire
    stream = wire["PutObjectCommand:js-stream"]
    assert stream["payload"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER" and stream["encoding"] == "aws-chunked", wire
    assert stream["trailer"] == "x-amz-checksum-crc32", wire
    assert wire["UploadPartCommand:js-multipart"]["checksum"] == "x-amz-checksum-crc32", wire
    # Round trips, validated by the SDK against the checksums the store returns.
    assert out["small_ok"] and out["stream_ok"] and out["multipart_ok"], out
    assert out["put_crc32"] and out["get_crc32"] == out["put_crc32"], out
    assert out["stream_crc32"], out
    assert out["multipart_etag"].endswith('-3"') and out["multipart_parts"] == 3, out
    assert out["multipart_size"] == 12 * 1024 * 1024 + 100, out
    assert out["multipart_crc32"] and out["multipart_crc32"].endswith("-3"), out  # COMPOSITE of the parts
    assert out["sha256"] == out["sha256_expected"], out
    assert out["crc32c"] == out["crc32c_expected"], out
    assert out["wrong"] == "BadDigest" and out["wrong_stored"] is False, out
    return out


@pytest.mark.time_limit(300)  # the first run installs the SDK with npm ci
def test_js_sdk_http(s3store):
    run_js(s3store)


@pytest.mark.time_limit(60)
def test_js_sdk_https(procs, tmp_path):
    store, ca = start_tls_store(procs, tmp_path)
    run_js(store, ca)
