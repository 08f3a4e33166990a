"""Helpers for the object store's integration tests: a `cumulo s3` process on a free port with its own data
directory and master key, and the real clients (boto3, aws cli, s3cmd, rclone) pointed at it.

Everything talks to 127.0.0.1 only and stops what it started by PID (through the conftest's ProcessSet).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from support import LOCALHOST, ProcessSet, binary, free_port

ADMIN = ("admin", "AKADMINEXAMPLE", "admin-secret-key-0123456789")
BOB = ("bob", "AKBOBEXAMPLE", "bob-secret-key-0123456789")
MISSING = "scripts/install-deps.sh (Debian: python3-boto3 s3cmd rclone; aws from the python3 on PATH)"


def deterministic_bytes(seed: str, size: int) -> bytes:
    """size bytes that depend only on seed (SHA-256 in counter mode), so a test can re-create what it wrote."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64
        counter += 1
    return bytes(out[:size])


class S3Store:
    """One `cumulo s3` process; stop()/kill9()/start() keep the data directory and port."""

    def __init__(self, procs: ProcessSet, tmp: Path, buckets: str = "", extra: str = "", name: str = "s3"):
        self.procs = procs
        self.name = name
        self.port = free_port()
        self.endpoint = f"http://{LOCALHOST}:{self.port}"
        self.dir = tmp / f"{name}-data"
        self.key_file = tmp / f"{name}.key"
        self.key_file.write_text(secrets.token_hex(32) + "\n")
        os.chmod(self.key_file, 0o600)
        self.config = tmp / f"{name}.yaml"
        users = "\n".join(f"  - {{name: {n}, access_key: {a}, secret_key: {s}}}" for n, a, s in (ADMIN, BOB))
        self.config.write_text(
            f"listen: {LOCALHOST}:{self.port}\n"
            f"data_dir: {self.dir}\n"
            f"master_key_file: {self.key_file}\n"
            f"users:\n{users}\n" + (f"buckets:\n{buckets}\n" if buckets else "") + extra)
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        self.proc = self.procs.start(f"{self.name}-{self.starts}", [binary("cumulo"), "s3", "-c", self.config])
        self.proc.wait_port(self.port)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop(grace=10)

    def kill9(self):
        self.proc.kill()

    def env(self, user=ADMIN) -> dict:
        env = dict(os.environ)
        env.update(AWS_ACCESS_KEY_ID=user[1], AWS_SECRET_ACCESS_KEY=user[2], AWS_DEFAULT_REGION="us-east-1",
                   AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/dev/null",
                   AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        return env


# ---------------------------------------------------------------------------------------------------------------
# clients


def data_files(store: S3Store) -> set[Path]:
    """The store's data files: an upload's file is created in objects/XX/ as its body begins to arrive."""
    return {p for p in (store.dir / "objects").rglob("*") if p.is_file()}


def send_cut_off_upload(store: S3Store, partial_request: bytes):
    """Sends the start of an upload and closes the connection once the store streams it into a new data file;
    asserts that the store then discards that file."""
    before = data_files(store)
    with socket.create_connection(("127.0.0.1", store.port)) as sock:
        sock.sendall(partial_request)
        deadline = time.monotonic() + 5
        while not data_files(store) - before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert data_files(store) - before, "the upload should be streaming into a new data file"
    deadline = time.monotonic() + 5
    while data_files(store) - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not data_files(store) - before, "the partial upload must be discarded"


def boto3_client(store: S3Store, user=ADMIN, addressing: str = "path", endpoint: str | None = None):
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        pytest.fail(f"boto3 is missing for {os.sys.executable}: {MISSING}", pytrace=False)
    return boto3.client("s3", endpoint_url=endpoint or store.endpoint, aws_access_key_id=user[1],
                        aws_secret_access_key=user[2], region_name="us-east-1",
                        config=Config(s3={"addressing_style": addressing}, retries={"max_attempts": 1},
                                      connect_timeout=5, read_timeout=60))


def resolve_localhost_subdomains(monkeypatch):
    """BUCKET.s3.localhost must reach 127.0.0.1 for virtual-host style; not every resolver does that."""
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = LOCALHOST
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def run_tool(argv: list, env: dict, timeout: float = 120, check: bool = True, cwd=None) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {r.returncode}\nstdout:\n{r.stdout[-3000:]}\n"
                             f"stderr:\n{r.stderr[-3000:]}")
    return r


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.fail(f"{tool} is missing: {MISSING}", pytrace=False)
    return path


def aws(store: S3Store, *args, user=ADMIN, check=True, timeout=300, cwd=None):
    return run_tool([need("aws"), "--endpoint-url", store.endpoint, *args], store.env(user), timeout, check, cwd)


def s3cmd(store: S3Store, tmp: Path, *args, user=ADMIN, check=True, timeout=300):
    cfg = tmp / f"s3cmd-{user[0]}.cfg"
    if not cfg.exists():
        cfg.write_text("[default]\n"
                       f"access_key = {user[1]}\nsecret_key = {user[2]}\n"
                       f"host_base = {LOCALHOST}:{store.port}\nhost_bucket = {LOCALHOST}:{store.port}\n"
                       "use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
                       "check_ssl_certificate = False\n")
    return run_tool([need("s3cmd"), "-c", cfg, *args], dict(os.environ), timeout, check)


def rclone(store: S3Store, *args, user=ADMIN, check=True, timeout=300):
    # The AWS SDK inside rclone reads AWS_* (a CA bundle, a profile...): none of that applies to the store.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update(RCLONE_CONFIG_STORE_TYPE="s3", RCLONE_CONFIG_STORE_PROVIDER="Other",
               RCLONE_CONFIG_STORE_ENDPOINT=store.endpoint, RCLONE_CONFIG_STORE_ACCESS_KEY_ID=user[1],
               RCLONE_CONFIG_STORE_SECRET_ACCESS_KEY=user[2], RCLONE_CONFIG_STORE_REGION="us-east-1",
               RCLONE_CONFIG_STORE_FORCE_PATH_STYLE="true")
    return run_tool([need("rclone"), "--config", "/dev/null", "--retries", "1", "--low-level-retries", "1", *args],
                    env, timeout, check)


def make_cert(tmp):
    """A CA and a server certificate for 127.0.0.1 and *.s3.localhost, made with the openssl command."""
    ca_key, ca = tmp / "ca.key", tmp / "ca.pem"
    key, csr, cert = tmp / "tls-server.key", tmp / "tls-server.csr", tmp / "tls-server.pem"
    ext = tmp / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:s3.localhost,DNS:*.s3.localhost\n")
    run = lambda *a: subprocess.run([str(x) for x in a], check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=cumulo test CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
        "-out", csr, "-subj", "/CN=s3.localhost")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
        "-days", "2", "-extfile", ext)
    return ca, cert, key


def start_tls_store(procs: ProcessSet, tmp: Path, name: str = "s3tls") -> tuple[S3Store, Path]:
    """A store with the public bucket `assets` on an HTTPS listener; returns it and the CA that signed it."""
    ca, cert, key = make_cert(tmp)
    store = S3Store(procs, tmp, buckets="  - {name: assets, public: true}",
                    extra=f"tls:\n  cert: {cert}\n  key: {key}\n", name=name)
    store.endpoint = f"https://{LOCALHOST}:{store.port}"
    return store.start(), ca


@pytest.fixture
def s3store(procs, tmp_path):
    """A running store with a public bucket `assets` owned by admin."""
    return S3Store(procs, tmp_path, buckets="  - {name: assets, public: true}").start()
