"""Bad aws-chunked uploads, built and signed by hand (SigV4 streaming, seed and chunk signatures as the AWS
documentation defines them) and sent over a raw socket: a wrong chunk signature, a wrong chunk size, a trailer
checksum or trailer signature that does not match, a body shorter or longer than x-amz-decoded-content-length.
Each gets the S3 error code the SDKs expect, leaves nothing stored (no object, no temporary file), and the
connection stays usable for the next request; a well-formed body of each variant is accepted."""

import base64
import datetime
import hashlib
import hmac
import os
import socket
import struct
import zlib

import pytest

from objstore_support import ADMIN, boto3_client, data_files, s3store, send_cut_off_upload  # noqa: F401 (fixture)

EMPTY = hashlib.sha256(b"").hexdigest()
REGION = "us-east-1"


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256)


class ChunkedUpload:
    """One aws-chunked PUT: the headers with the seed signature, then chunks and trailers, each signed in turn."""

    def __init__(self, store, key, data_len, signed=True, trailer=None, decoded_len=None):
        self.store, self.path, self.signed, self.trailer = store, f"/assets/{key}", signed, trailer
        now = datetime.datetime.now(datetime.timezone.utc)
        self.date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        self.scope = f"{day}/{REGION}/s3/aws4_request"
        k = _hmac(("AWS4" + ADMIN[2]).encode(), day).digest()
        for part in (REGION, "s3", "aws4_request"):
            k = _hmac(k, part).digest()
        self.key = k
        payload = ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "") if signed
                   else "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        self.headers = {"host": f"127.0.0.1:{store.port}", "content-encoding": "aws-chunked",
                        "x-amz-content-sha256": payload, "x-amz-date": self.date,
                        "x-amz-decoded-content-length": str(data_len if decoded_len is None else decoded_len)}
        if trailer:
            self.headers["x-amz-trailer"] = trailer
        names = sorted(self.headers)
        canonical = "".join(f"{n}:{self.headers[n]}\n" for n in names)
        creq = f"PUT\n{self.path}\n\n{canonical}\n{';'.join(names)}\n{payload}"
        sts = f"AWS4-HMAC-SHA256\n{self.date}\n{self.scope}\n{hashlib.sha256(creq.encode()).hexdigest()}"
        self.previous = _hmac(self.key, sts).hexdigest()
        self.headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={ADMIN[1]}/{self.scope}, "
                                         f"SignedHeaders={';'.join(names)}, Signature={self.previous}")
        self.body = b""

    def chunk(self, data: bytes, size=None, corrupt_signature=False):
        ext = b""
        if self.signed:
            sts = (f"AWS4-HMAC-SHA256-PAYLOAD\n{self.date}\n{self.scope}\n{self.previous}\n{EMPTY}\n"
                   f"{hashlib.sha256(data).hexdigest()}")
            self.previous = _hmac(self.key, sts).hexdigest()
            sig = self.previous
            if corrupt_signature:
                sig = ("0" if sig[0] != "0" else "1") + sig[1:]
            ext = b";chunk-signature=" + sig.encode()
        self.body += b"%x" % (len(data) if size is None else size) + ext + b"\r\n" + data
        if data:
            self.body += b"\r\n"
        return self

    def trailers(self, lines: dict, corrupt_signature=False):
        text = "".join(f"{k}:{v}\n" for k, v in lines.items())
        self.body += "".join(f"{k}:{v}\r\n" for k, v in lines.items()).encode()
        if self.signed:
            sts = (f"AWS4-HMAC-SHA256-TRAILER\n{self.date}\n{self.scope}\n{self.previous}\n"
                   f"{hashlib.sha256(text.encode()).hexdigest()}")
            sig = _hmac(self.key, sts).hexdigest()
            if corrupt_signature:
                sig = sig[::-1]
            self.body += f"x-amz-trailer-signature:{sig}\r\n".encode()
        self.body += b"\r\n"
        return self

    def end(self):
        self.chunk(b"")
        if not self.trailer:
            self.body += b"\r\n"
        return self

    def request(self) -> bytes:
        head = f"PUT {self.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        return (head + f"Content-Length: {len(self.body)}\r\n\r\n").encode() + self.body


def read_response(sock) -> tuple[int, bytes, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        assert more, f"the connection closed before a response: {data!r}"
        data += more
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        more = sock.recv(65536)
        assert more, "the connection closed inside a response body"
        rest += more
    return int(lines[0].split(" ")[1]), rest[:length], headers


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(struct.pack(">I", zlib.crc32(data))).decode()


def exchange(store, upload: ChunkedUpload):
    """Sends the upload, then a GET on the same connection: the answer to each."""
    with socket.create_connection(("127.0.0.1", store.port)) as sock:
        sock.settimeout(10)
        sock.sendall(upload.request())
        first = read_response(sock)
        sock.sendall(b"GET /assets/anchor HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        second = read_response(sock)
    return first, second


DATA = os.urandom(70000)


def cases(store):
    """(name, upload, expected status, expected code); None: accepted."""
    c = ChunkedUpload
    yield "signed ok", c(store, "ok1", len(DATA)).chunk(DATA[:65536]).chunk(DATA[65536:]).end(), 200, None
    yield ("unsigned trailer ok", c(store, "ok2", len(DATA), signed=False, trailer="x-amz-checksum-crc32")
           .chunk(DATA[:65536]).chunk(DATA[65536:]).end().trailers({"x-amz-checksum-crc32": crc32_b64(DATA)}),
           200, None)
    yield ("signed trailer ok", c(store, "ok3", len(DATA), trailer="x-amz-checksum-crc32")
           .chunk(DATA).end().trailers({"x-amz-checksum-crc32": crc32_b64(DATA)}), 200, None)
    yield ("chunk signature wrong", c(store, "bad1", len(DATA)).chunk(DATA[:65536])
           .chunk(DATA[65536:], corrupt_signature=True).end(), 403, "SignatureDoesNotMatch")
    yield ("chunk size wrong", c(store, "bad2", len(DATA)).chunk(DATA[:65536], size=65000)
           .chunk(DATA[65536:]).end(), 400, "IncompleteBody")
    yield ("trailer checksum mismatch", c(store, "bad3", len(DATA), signed=False, trailer="x-amz-checksum-crc32")
           .chunk(DATA).end().trailers({"x-amz-checksum-crc32": crc32_b64(DATA[1:])}), 400, "BadDigest")
    yield ("trailer signature wrong", c(store, "bad4", len(DATA), trailer="x-amz-checksum-crc32")
           .chunk(DATA).end().trailers({"x-amz-checksum-crc32": crc32_b64(DATA)}, corrupt_signature=True),
           403, "SignatureDoesNotMatch")
    yield ("trailer missing", c(store, "bad5", len(DATA), signed=False, trailer="x-amz-checksum-crc32")
           .chunk(DATA).end().trailers({}), 400, "InvalidRequest")
    yield ("body shorter than decoded length", c(store, "bad6", len(DATA) + 1).chunk(DATA).end(),
           400, "IncompleteBody")
    yield ("body longer than decoded length", c(store, "bad7", len(DATA) - 1).chunk(DATA).end(),
           400, "IncompleteBody")
    yield ("final chunk missing", c(store, "bad8", len(DATA)).chunk(DATA), 400, "IncompleteBody")


@pytest.mark.time_limit(30)
def test_bad_aws_chunked_bodies(s3store):
    s3 = boto3_client(s3store)
    s3.put_object(Bucket="assets", Key="anchor", Body=b"anchor")
    for name, upload, status, code in cases(s3store):
        key = upload.path.rsplit("/", 1)[1]
        files_before = data_files(s3store)
        (got_status, body, _), (next_status, next_body, _) = exchange(s3store, upload)
        assert got_status == status, (name, body)
        if code:
            assert f"<Code>{code}</Code>".encode() in body, (name, body)
            assert s3.list_objects_v2(Bucket="assets", Prefix=key)["KeyCount"] == 0, f"{name}: {key} was stored"
        else:
            assert s3.get_object(Bucket="assets", Key=key)["Body"].read() == DATA, name
        # The connection was left in order: the next request on it is answered (the public bucket's anchor).
        assert next_status == 200 and next_body == b"anchor", (name, next_status, next_body)
        if code:
            assert not data_files(s3store) - files_before, f"{name}: a partial upload was left behind"


@pytest.mark.time_limit(30)
def test_aws_chunked_upload_cut_off_is_discarded(s3store):
    """The client goes away in the middle of a chunk: the partial object is never visible and its data file
    goes; the store keeps serving."""
    s3 = boto3_client(s3store)
    big = os.urandom(3 * 1024 * 1024)
    upload = ChunkedUpload(s3store, "cut", len(big))
    for off in range(0, len(big), 65536):
        upload.chunk(big[off:off + 65536])
    upload.end()
    request = upload.request()
    send_cut_off_upload(s3store, request[:len(request) // 2])
    assert s3.list_objects_v2(Bucket="assets", Prefix="cut")["KeyCount"] == 0
    s3.put_object(Bucket="assets", Key="after", Body=b"fine")
    assert s3.get_object(Bucket="assets", Key="after")["Body"].read() == b"fine"
