"""`cumulo up` with a `database:` section: the tier starts with the stack, the demo application's /guestbook writes
through the writer endpoint and reads through the reader endpoint; stack files asking for replicas without a
primary, or for an endpoint port in use, are refused."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from db_support import need_mariadb
from support import Process, binary, free_port, wait_for, wait_stack_running


def write_stack(tmp_path, ports, database: str) -> str:
    stack = tmp_path / "stack.yaml"
    stack.write_text(f"""name: dbstack
zones: [a, b]
gateway:
  listen: 127.0.0.1:{ports['gw']}
  admin: 127.0.0.1:{ports['admin']}
  workers: 1
  health_check: {{path: /healthz, interval: 500ms, timeout: 500ms}}
control:
  listen: 127.0.0.1:{ports['control']}
groups:
  - name: web
    min: 1
    max: 1
    launch_template:
      command: ["{{bin_dir}}/cumulo-webapp", "--listen", "127.0.0.1:{{port}}", "--zone", "{{zone}}", "--id",
                "{{instance_id}}", "--db-writer", "127.0.0.1:{ports['writer']}", "--db-reader",
                "127.0.0.1:{ports['reader']}", "--db-password", "pw-guest"]
{database}""")
    return str(stack)


def database_section(ports, extra=""):
    return f"""database:
  primary_zone: a
  replicas: {{a: 1, b: 1}}
  writer: 127.0.0.1:{ports['writer']}
  reader: 127.0.0.1:{ports['reader']}
  lag_limit: 5s
  failover_after: 1s
  users:
    - {{name: app, password: pw-guest, databases: [app]}}
{extra}"""


def kill_leftover_servers(state: Path):
    for pid_file in (state / "db").glob("*/mariadbd.pid"):
        try:
            pid = int(pid_file.read_text().strip())
            if str(state).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


@pytest.mark.time_limit(120)
def test_stack_runs_the_database_tier_and_the_guestbook_uses_it(tmp_path):
    need_mariadb()
    ports = {k: free_port() for k in ("gw", "admin", "control", "writer", "reader")}
    state = tmp_path / "state"
    up = Process("cumulo-up", [binary("cumulo"), "up", write_stack(tmp_path, ports, database_section(ports)),
                               "--state-dir", state], tmp_path / "up.log")

    try:
        status = wait_stack_running(state, timeout=90, what="stack.json says running\n" + up.log_tail(20))
        services = {s["id"]: s for s in status["services"]}
        assert services["db"]["ready"] and services["db"]["pid"] > 0
        names = [i["name"] for i in status["database"]["instances"]]
        assert names == ["db-a-1", "db-a-2", "db-b-1"]
        assert os.stat(state / "db" / "replication-password").st_mode & 0o077 == 0

        gw = f"http://127.0.0.1:{ports['gw']}"
        wait_for(lambda: requests.get(gw + "/healthz", timeout=2).status_code == 200, 30, 0.2, "the web group")
        r = requests.post(gw + "/guestbook", data={"name": "ann", "message": "hello <db> tier"},
                          allow_redirects=False, timeout=10)
        assert r.status_code == 303, r.text
        replica_ports = {i["port"] for i in status["database"]["instances"][1:]}

        def listed():
            page = requests.get(gw + "/guestbook", timeout=10).text
            return "hello &lt;db&gt; tier" in page and page
        page = wait_for(listed, 10, 0.2, "the entry to be listed through the reader endpoint")
        assert any(f"served by the server on port {p}" in page for p in replica_ports), page

        st = subprocess.run([str(binary("cumulo")), "db", "status", "-c", str(state / "db.yaml")],
                            capture_output=True, text=True, timeout=10)
        assert st.returncode == 0, st.stderr
        assert "primary db-a-1" in st.stdout

        # The tier's manager crashes: the guestbook goes on writing through the endpoints (a process of their
        # own), the supervisor starts `cumulo db run` again, and it adopts the servers with no failover.
        old_pid = services["db"]["pid"]
        os.kill(old_pid, signal.SIGKILL)
        r = requests.post(gw + "/guestbook", data={"name": "bob", "message": "while the manager is away"},
                          allow_redirects=False, timeout=10)
        assert r.status_code == 303, r.text

        def restarted():
            s = wait_stack_running(state, timeout=5)
            db = next(x for x in s["services"] if x["id"] == "db")
            return db["ready"] and db["pid"] not in (0, old_pid) and db
        wait_for(restarted, 60, 0.2, "the supervisor to start the tier's manager again")

        def adopted():
            out = subprocess.run([str(binary("cumulo")), "db", "status", "-c", str(state / "db.yaml"), "--json"],
                                 capture_output=True, text=True, timeout=10)
            return out.returncode == 0 and json.loads(out.stdout)
        tier = wait_for(adopted, 30, 0.2, "the restarted manager's admin API")
        assert tier["primary"] == "db-a-1" and tier["failovers"] == 0, tier
        assert all(i["adopted"] for i in tier["instances"]), tier["instances"]
        assert "while the manager is away" in requests.get(gw + "/guestbook", timeout=10).text
    finally:
        up.stop(grace=60)
        kill_leftover_servers(state)


def test_replicas_without_a_primary_are_refused(tmp_path):
    ports = {k: free_port() for k in ("gw", "admin", "control", "writer", "reader")}
    section = database_section(ports).replace("  primary_zone: a\n", "")
    r = subprocess.run([str(binary("cumulo")), "up", "--check", write_stack(tmp_path, ports, section)],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "replicas need a primary" in r.stderr and "stack.yaml:" in r.stderr, r.stderr


def test_database_port_in_use_is_refused(tmp_path):
    need_mariadb()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    ports = {k: free_port() for k in ("gw", "admin", "control", "reader")}
    ports["writer"] = busy.getsockname()[1]
    r = subprocess.run([str(binary("cumulo")), "up", write_stack(tmp_path, ports, database_section(ports)),
                        "--state-dir", str(tmp_path / "state")], capture_output=True, text=True, timeout=30)
    busy.close()
    assert r.returncode != 0
    assert "database.writer" in r.stderr and str(ports["writer"]) in r.stderr, r.stderr
