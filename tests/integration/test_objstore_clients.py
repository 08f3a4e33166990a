"""The object store driven by the command-line clients people use: aws cli (high-level `aws s3` and
`aws s3api`), s3cmd and rclone. Byte-exact round trips, a 100 MiB multipart upload, a directory sync."""

import filecmp
import hashlib
import json
import os

import pytest

from objstore_support import aws, deterministic_bytes, rclone, s3cmd, s3store  # noqa: F401 (fixture)


def make_tree(root, files):
    for rel, size in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(deterministic_bytes(rel, size))


TREE = {"index.html": 1200, "css/site.css": 4000, "js/app.js": 70000, "img/logo.png": 250000,
        "img/photos/a b.jpg": 1, "docs/empty.txt": 0, "docs/deep/er/file.bin": 3 * 1024 * 1024 + 1}


@pytest.mark.time_limit(240)
def test_aws_cli(s3store, tmp_path):
    aws(s3store, "s3", "mb", "s3://site")
    assert "site" in aws(s3store, "s3", "ls").stdout
    src = tmp_path / "tree"
    make_tree(src, TREE)
    aws(s3store, "s3", "sync", src, "s3://site/www/")
    listed = aws(s3store, "s3", "ls", "--recursive", "s3://site/www/").stdout
    for rel in TREE:
        assert f"www/{rel}" in listed
    back = tmp_path / "back"
    aws(s3store, "s3", "sync", "s3://site/www/", back)
    assert not filecmp.dircmp(src, back).diff_files
    for rel in TREE:
        assert (back / rel).read_bytes() == (src / rel).read_bytes(), rel
    # A second sync has nothing to do.
    assert aws(s3store, "s3", "sync", src, "s3://site/www/").stdout.strip() == ""
    # Changed and deleted files.
    (src / "index.html").write_bytes(b"changed")
    (src / "css/site.css").unlink()
    aws(s3store, "s3", "sync", "--delete", src, "s3://site/www/")
    keys = aws(s3store, "s3api", "list-objects-v2", "--bucket", "site", "--prefix", "www/").stdout
    assert "www/css/site.css" not in keys
    out = aws(s3store, "s3", "cp", "s3://site/www/index.html", "-").stdout
    assert out == "changed"

    # s3api: head, metadata, copy, delete, multipart listing.
    aws(s3store, "s3api", "put-object", "--bucket", "site", "--key", "meta.txt", "--body", src / "index.html",
        "--content-type", "text/plain", "--cache-control", "max-age=5", "--metadata", "k1=v1")
    head = json.loads(aws(s3store, "s3api", "head-object", "--bucket", "site", "--key", "meta.txt").stdout)
    assert head["ContentType"] == "text/plain" and head["CacheControl"] == "max-age=5"
    assert head["Metadata"] == {"k1": "v1"}
    aws(s3store, "s3api", "copy-object", "--bucket", "site", "--key", "meta2.txt", "--copy-source", "site/meta.txt")
    aws(s3store, "s3api", "delete-object", "--bucket", "site", "--key", "meta.txt")
    r = aws(s3store, "s3api", "head-object", "--bucket", "site", "--key", "meta.txt", check=False)
    assert r.returncode != 0 and "404" in r.stderr
    r = aws(s3store, "s3api", "get-object", "--bucket", "site", "--key", "nope", tmp_path / "nope", check=False)
    assert "NoSuchKey" in r.stderr
    aws(s3store, "s3", "rm", "--recursive", "s3://site/")
    aws(s3store, "s3", "rb", "s3://site")


@pytest.mark.time_limit(300)
def test_aws_cli_100_mib_multipart(s3store, tmp_path):
    size = 100 * 1024 * 1024
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for i in range(100):
            f.write(deterministic_bytes(f"big{i}", 1024 * 1024))
    aws(s3store, "s3", "cp", src, "s3://assets/big.bin", timeout=240)
    head = json.loads(aws(s3store, "s3api", "head-object", "--bucket", "assets", "--key", "big.bin").stdout)
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"').endswith("-13")  # 8 MiB parts: the aws cli's default chunk size
    dst = tmp_path / "back.bin"
    aws(s3store, "s3", "cp", "s3://assets/big.bin", dst, timeout=240)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


@pytest.mark.time_limit(180)
def test_s3cmd(s3store, tmp_path):
    s3cmd(s3store, tmp_path, "mb", "s3://cmd")
    assert "s3://cmd" in s3cmd(s3store, tmp_path, "ls").stdout
    src = tmp_path / "tree"
    make_tree(src, TREE)
    s3cmd(s3store, tmp_path, "sync", f"{src}/", "s3://cmd/t/")
    listed = s3cmd(s3store, tmp_path, "ls", "--recursive", "s3://cmd/").stdout
    for rel in TREE:
        assert f"s3://cmd/t/{rel}" in listed, rel
    back = tmp_path / "back"
    back.mkdir()
    s3cmd(s3store, tmp_path, "get", "--recursive", "s3://cmd/t/", f"{back}/")
    for rel in TREE:
        assert (back / rel).read_bytes() == (src / rel).read_bytes(), rel
    # Multipart (s3cmd's 15 MiB chunks) and info.
    big = tmp_path / "big.bin"
    big.write_bytes(deterministic_bytes("s3cmd-big", 20 * 1024 * 1024))
    s3cmd(s3store, tmp_path, "put", "--multipart-chunk-size-mb=5", big, "s3://cmd/big.bin")
    info = s3cmd(s3store, tmp_path, "info", "s3://cmd/big.bin").stdout
    assert "20971520" in info
    s3cmd(s3store, tmp_path, "get", "s3://cmd/big.bin", tmp_path / "big.back")
    assert (tmp_path / "big.back").read_bytes() == big.read_bytes()
    s3cmd(s3store, tmp_path, "cp", "s3://cmd/big.bin", "s3://cmd/big2.bin")
    s3cmd(s3store, tmp_path, "del", "s3://cmd/big.bin")
    assert "big.bin" not in s3cmd(s3store, tmp_path, "ls", "s3://cmd/").stdout.replace("big2.bin", "")
    s3cmd(s3store, tmp_path, "del", "--recursive", "--force", "s3://cmd/")
    s3cmd(s3store, tmp_path, "rb", "s3://cmd")


@pytest.mark.time_limit(180)
def test_rclone(s3store, tmp_path):
    rclone(s3store, "mkdir", "store:rcl")
    src = tmp_path / "tree"
    make_tree(src, TREE)
    rclone(s3store, "copy", src, "store:rcl/tree")
    # check compares sizes and MD5s (the ETags of single-part uploads) of every file.
    rclone(s3store, "check", src, "store:rcl/tree")
    listed = rclone(s3store, "lsf", "-R", "store:rcl/tree").stdout.split()
    assert "img/logo.png" in listed
    (tmp_path / "note.txt").write_text("plain text\n")
    rclone(s3store, "copyto", tmp_path / "note.txt", "store:rcl/note.txt")
    assert rclone(s3store, "cat", "store:rcl/note.txt").stdout == "plain text\n"
    back = tmp_path / "back"
    rclone(s3store, "copy", "store:rcl/tree", back)
    for rel in TREE:
        assert (back / rel).read_bytes() == (src / rel).read_bytes(), rel
    big = tmp_path / "big.bin"
    big.write_bytes(deterministic_bytes("rclone-big", 12 * 1024 * 1024))
    rclone(s3store, "copyto", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", big, "store:rcl/big.bin")
    rclone(s3store, "copyto", "store:rcl/big.bin", tmp_path / "big.back")
    assert (tmp_path / "big.back").read_bytes() == big.read_bytes()
    rclone(s3store, "delete", "store:rcl")
    rclone(s3store, "rmdir", "store:rcl")
    assert "rcl" not in rclone(s3store, "lsd", "store:").stdout.split()
