"""TLS termination: certificates chosen by SNI, TLS 1.2/1.3 only, the HTTP to HTTPS redirect listener."""

import json
import socket
import ssl
import subprocess
import warnings

import pytest
import requests

from support import LOCALHOST


@pytest.fixture
def certs(tmp_path, openssl):
    """Self-signed certificates for alpha.test and beta.test, made with the openssl CLI."""
    out = {}
    for name in ("alpha.test", "beta.test"):
        cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
        out[name] = {"cert": str(cert), "key": str(key)}
    return out


@pytest.fixture
def tls_gw(webapp, gateway, certs):
    app = webapp("a")
    return gateway({
        "listeners": [
            {"name": "https", "tls": {"certificates": [certs["alpha.test"], certs["beta.test"]]}},
            {"name": "http", "redirect_to_https": "https://alpha.test:8443"},
        ],
        "target_groups": [{"name": "web", "targets": [app.target()]}],
    })


def curl_https(curl, port, name, *extra):
    return subprocess.run([curl, "-sS", "-v", "--max-time", "10", "--resolve", f"{name}:{port}:{LOCALHOST}", *extra,
                           f"https://{name}:{port}/echo"], capture_output=True, text=True, timeout=20)


def test_sni_selects_the_certificate(tls_gw, certs, curl):
    port = tls_gw.ports["https"]
    for name in ("alpha.test", "beta.test"):
        # Verified against that name's own certificate: succeeds only when the gateway serves it.
        p = curl_https(curl, port, name, "--cacert", certs[name]["cert"])
        assert p.returncode == 0, p.stderr
        assert f"subject: CN={name}" in p.stderr, p.stderr
        echo = json.loads(p.stdout)
        headers = {k.lower(): v for k, v in echo["headers"].items()}
        assert headers.get("x-forwarded-proto") == ["https"], headers
        assert headers.get("x-forwarded-port") == [str(port)], headers

    # An unknown name gets the first (default) certificate.
    p = curl_https(curl, port, "gamma.test", "-k")
    assert p.returncode == 0, p.stderr
    assert "subject: CN=alpha.test" in p.stderr, p.stderr

    # The same through Python's ssl module with full verification.
    ctx = ssl.create_default_context(cafile=certs["beta.test"]["cert"])
    with socket.create_connection((LOCALHOST, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="beta.test") as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])
            assert subject["commonName"] == "beta.test", subject
            s.sendall(b"GET / HTTP/1.1\r\nHost: beta.test\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]


def handshake(port, version):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = version
        ctx.maximum_version = version
        ctx.set_ciphers("DEFAULT@SECLEVEL=0")  # so that the client side is willing to speak TLS 1.1
    with socket.create_connection((LOCALHOST, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="alpha.test") as s:
            return s.version()


def test_tls_1_1_is_refused_and_1_2_and_1_3_work(tls_gw):
    port = tls_gw.ports["https"]
    assert handshake(port, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(port, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    with pytest.raises((ssl.SSLError, ConnectionResetError)) as err:
        handshake(port, ssl.TLSVersion.TLSv1_1)
    assert "NO_PROTOCOLS_AVAILABLE" not in str(err.value), f"the client could not offer TLS 1.1: {err.value}"


def test_redirect_listener_answers_308_with_location(tls_gw):
    r = requests.get(tls_gw.url("/a/b?c=1", listener="http"), allow_redirects=False, timeout=5)
    assert r.status_code == 308, r.text
    assert r.headers["Location"] == "https://alpha.test:8443/a/b?c=1", r.headers
    r = requests.post(tls_gw.url("/", listener="http"), data=b"x", allow_redirects=False, timeout=5)
    assert r.status_code == 308 and r.headers["Location"] == "https://alpha.test:8443/", r.headers
