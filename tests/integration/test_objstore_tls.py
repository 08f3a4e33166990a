"""HTTPS on the store's listener (the gateway's TLS code): boto3 over TLS with a test CA, path and
virtual-host style; plain HTTP to the TLS port gets nothing useful."""

import pytest
import requests

from objstore_support import S3Store, boto3_client, deterministic_bytes, make_cert  # noqa: F401


@pytest.mark.time_limit(90)
def test_https(procs, tmp_path):
    ca, cert, key = make_cert(tmp_path)
    store = S3Store(procs, tmp_path, buckets="  - {name: assets, public: true}",
                    extra=f"tls:\n  cert: {cert}\n  key: {key}\n")
    store.endpoint = f"https://127.0.0.1:{store.port}"
    store.start()
    import boto3
    from botocore.config import Config
    from objstore_support import ADMIN
    s3 = boto3.client("s3", endpoint_url=store.endpoint, aws_access_key_id=ADMIN[1], aws_secret_access_key=ADMIN[2],
                      region_name="us-east-1", verify=str(ca),
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    data = deterministic_bytes("tls", 2 * 1024 * 1024 + 1)
    s3.put_object(Bucket="assets", Key="secure.bin", Body=data)
    assert s3.get_object(Bucket="assets", Key="secure.bin")["Body"].read() == data
    assert s3.get_object(Bucket="assets", Key="secure.bin", Range="bytes=5-9")["Body"].read() == data[5:10]
    r = requests.get(f"{store.endpoint}/assets/secure.bin", verify=str(ca), timeout=10)
    assert r.status_code == 200 and r.content == data
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{store.port}/assets/secure.bin", timeout=5)
