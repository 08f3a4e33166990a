"""`cumulo up` with an object store (one node per zone), a bucket served by the gateway under /static/, and CDN
edges (one shielded by the other) in front of the gateway."""

from __future__ import annotations

import json
import os
import signal

import boto3
import pytest
import requests
from botocore.config import Config

from support import Process, binary, free_port, wait_for, wait_stack_running


def write_stack(tmp_path, gw_port, admin_port, control_port, edge_port, edge2_port) -> str:
    stack = tmp_path / "stack.yaml"
    stack.write_text(f"""name: services
zones: [a, b]
gateway:
  listen: 127.0.0.1:{gw_port}
  admin: 127.0.0.1:{admin_port}
  workers: 1
  health_check: {{path: /healthz, interval: 500ms, timeout: 500ms}}
control:
  listen: 127.0.0.1:{control_port}
groups:
  - name: web
    min: 1
    max: 1
    launch_template:
      command: ["{{bin_dir}}/cumulo-webapp", "--listen", "127.0.0.1:{{port}}", "--zone", "{{zone}}", "--id", "{{instance_id}}"]
object_store:
  buckets:
    - name: assets
      public: true
      route: /static/
      cache_control: "public, max-age=600"
    - name: uploads
edges:
  - name: near
    listen: 127.0.0.1:{edge_port}
  - name: far
    listen: 127.0.0.1:{edge2_port}
    shield: near
""")
    return str(stack)


@pytest.fixture
def stack(tmp_path):
    ports = {k: free_port() for k in ("gw", "admin", "control", "edge", "edge2")}
    state = tmp_path / "state"
    up = Process("cumulo-up", [binary("cumulo"), "up",
                               write_stack(tmp_path, ports["gw"], ports["admin"], ports["control"], ports["edge"],
                                           ports["edge2"]),
                               "--state-dir", state], tmp_path / "up.log")

    try:
        yield ports, state, wait_stack_running(state, timeout=30)
    finally:
        up.stop()


def s3_client(state, address):
    name, access_key, secret_key = (state / "objstore" / "credentials").read_text().split()
    return boto3.client("s3", endpoint_url=f"http://{address}", aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def test_stack_runs_a_store_node_per_zone_with_private_secrets(stack):
    ports, state, status = stack
    services = {s["id"]: s for s in status["services"]}
    assert {"gateway", "objstore-a", "objstore-b", "edge-near", "edge-far"} <= set(services)
    assert services["objstore-a"]["zone"] == "a" and services["objstore-b"]["zone"] == "b"
    assert all(s["ready"] and s["pid"] > 0 for s in services.values())
    for secret in ("credentials", "master.key"):
        assert os.stat(state / "objstore" / secret).st_mode & 0o077 == 0, secret
    # The buckets of the stack file exist on both nodes; only the public one reads anonymously.
    for zone in "ab":
        names = {b["Name"] for b in s3_client(state, services[f"objstore-{zone}"]["address"]).list_buckets()["Buckets"]}
        assert names == {"assets", "uploads"}
    anonymous = requests.get(f"http://{services['objstore-a']['address']}/uploads/x", timeout=5)
    assert anonymous.status_code == 403


def test_gateway_serves_a_bucket_under_its_route_with_type_and_cache_control(stack):
    ports, state, status = stack
    services = {s["id"]: s for s in status["services"]}
    s3 = s3_client(state, services["objstore-a"]["address"])
    css = b"body { color: #333 }\n" * 50
    s3.put_object(Bucket="assets", Key="css/site.css", Body=css, ContentType="text/css")
    s3.put_object(Bucket="assets", Key="img/logo.png", Body=b"\x89PNG" + bytes(range(256)) * 8,
                  ContentType="image/png", CacheControl="public, max-age=31536000, immutable")
    gw = f"http://127.0.0.1:{ports['gw']}"
    # Acknowledged once durable in both zones: zone b's node has it at once.
    replica = s3_client(state, services["objstore-b"]["address"]).get_object(Bucket="assets", Key="css/site.css")
    assert replica["Body"].read() == css and replica["ContentType"] == "text/css"

    first = requests.get(f"{gw}/static/css/site.css", timeout=5, headers={"Accept-Encoding": "identity"})
    assert first.status_code == 200 and first.content == css
    assert first.headers["Content-Type"] == "text/css"
    assert first.headers["Cache-Control"] == "public, max-age=600"  # the route's default: stored without one
    assert first.headers["X-Cache"] == "MISS"
    second = requests.get(f"{gw}/static/css/site.css", timeout=5, headers={"Accept-Encoding": "identity"})
    assert second.headers["X-Cache"] == "HIT" and second.content == css

    logo = requests.get(f"{gw}/static/img/logo.png", timeout=5)
    assert logo.status_code == 200 and logo.headers["Content-Type"] == "image/png"
    assert logo.headers["Cache-Control"] == "public, max-age=31536000, immutable"  # the object's own wins

    assert requests.get(f"{gw}/static/missing.js", timeout=5).status_code == 404
    # Writes and credentials never pass through a bucket route.
    assert requests.put(f"{gw}/static/evil.js", data=b"x", timeout=5).status_code == 405
    signed_looking = requests.get(f"{gw}/static/css/site.css", timeout=5,
                                  headers={"Authorization": "AWS4-HMAC-SHA256 Credential=nobody/x, Signature=0"})
    assert signed_looking.status_code == 200
    # The rest of the site still goes to the instances.
    assert requests.get(f"{gw}/", timeout=5).headers.get("X-Instance-Id", "").startswith("web-")


def test_edges_serve_repeats_from_their_cache_through_their_shield(stack):
    ports, state, status = stack
    services = {s["id"]: s for s in status["services"]}
    s3 = s3_client(state, services["objstore-a"]["address"])
    body = os.urandom(200_000)
    s3.put_object(Bucket="assets", Key="video/intro.bin", Body=body, ContentType="application/octet-stream")
    far = f"http://127.0.0.1:{ports['edge2']}/static/video/intro.bin"
    first = requests.get(far, timeout=5)
    assert first.status_code == 200 and first.content == body
    assert first.headers["X-Cache"] == "MISS"
    # One X-Cache per response, the edge's own: the hops behind it do not leak theirs.
    assert first.raw.headers.getlist("X-Cache") == ["MISS"]
    # The near edge (the far one's shield) and the gateway now hold it too: the object store is not asked again
    # even when the far edge is purged.
    again = requests.get(far, timeout=5)
    assert again.headers["X-Cache"] == "HIT" and again.content == body
    near = requests.get(f"http://127.0.0.1:{ports['edge']}/static/video/intro.bin", timeout=5)
    assert near.headers["X-Cache"] == "HIT" and near.content == body
    ranged = requests.get(far, headers={"Range": "bytes=1000-1999"}, timeout=5)
    assert ranged.status_code == 206 and ranged.content == body[1000:2000]


def test_a_killed_store_node_is_restarted_with_its_acknowledged_objects(stack):
    ports, state, status = stack
    services = {s["id"]: s for s in status["services"]}
    s3 = s3_client(state, services["objstore-a"]["address"])
    s3.put_object(Bucket="assets", Key="app.js", Body=b"console.log(1)\n", ContentType="text/javascript")
    os.kill(services["objstore-a"]["pid"], signal.SIGKILL)

    def restarted():
        try:
            now = {s["id"]: s for s in json.loads((state / "stack.json").read_text())["services"]}
        except (OSError, ValueError):
            return False
        a = now["objstore-a"]
        return a["ready"] and a["restarts"] >= 1 and a["pid"] != services["objstore-a"]["pid"]

    wait_for(restarted, timeout=15, what="objstore-a restarted")
    # The acknowledged object survived the kill -9.
    assert s3_client(state, services["objstore-a"]["address"]).get_object(Bucket="assets", Key="app.js")[
        "Body"].read() == b"console.log(1)\n"


def test_the_example_stack_file_is_valid():
    import subprocess
    from pathlib import Path
    example = Path(__file__).resolve().parents[2] / "examples" / "webapp" / "stack.yaml"
    r = subprocess.run([binary("cumulo"), "up", "--check", str(example)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout
