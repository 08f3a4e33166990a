"""`cumulo up` in network mode (docs/network.md): a namespace per process behind a router namespace, security
groups as nftables rules in the router, an outside namespace standing for the internet. Every address used here
exists only inside namespaces the stack (or this test) made."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
import requests

from net_support import http_from, in_ns, netns_list, reach, require_network_tools
from support import Process, binary, free_port, pid_running, tool, wait_for, wait_stack_running

pytestmark = pytest.mark.time_limit(240)

SSH_ALLOWED = "203.0.113.0/29"  # the outside namespace's own address (.2) is in it; .100 is not


def write_stack(tmp_path, name: str, ports: dict, extra: str = "") -> str:
    openssl = tool("openssl", "openssl")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=site.test",
                    "-addext", "subjectAltName=DNS:site.test", "-keyout", str(tmp_path / "site.key"),
                    "-out", str(tmp_path / "site.pem")], check=True, capture_output=True, timeout=60)
    stack = tmp_path / "stack.yaml"
    stack.write_text(f"""name: {name}
zones: [a, b]
control:
  listen: 127.0.0.1:{ports['control']}
gateway:
  listen: 0.0.0.0:8080
  admin: 127.0.0.1:{ports['admin']}
  workers: 1
  health_check: {{path: /healthz, interval: 500ms, timeout: 500ms}}
  tls: {{listen: 0.0.0.0:443, cert: {tmp_path / 'site.pem'}, key: {tmp_path / 'site.key'}}}
groups:
  - name: web
    min: 2
    max: 3
    launch_template:
      command: ["{{bin_dir}}/cumulo-webapp", "--listen", "{{host}}:{{port}}", "--zone", "{{zone}}", "--id", "{{instance_id}}"]
      health_check: {{path: /healthz, grace_period: 10s}}
      stop_timeout: 2s
object_store:
  buckets:
    - name: assets
      public: true
      route: /static/
edges:
  - name: near
    listen: 0.0.0.0:8081
network:
  cidr: 10.20.0.0/16
  ssh_from: [{SSH_ALLOWED}]
{extra}""")
    return str(stack)


class NetStack:
    def __init__(self, tmp_path, name: str, extra: str = ""):
        self.name = name
        self.ports = {k: free_port() for k in ("admin", "control")}
        self.state = tmp_path / "state"
        self.file = write_stack(tmp_path, name, self.ports, extra)
        self.tmp_path = tmp_path
        self.up = None

    def start(self, log="up.log"):
        (self.state / "stack.json").unlink(missing_ok=True)  # a killed run's "running" must not count
        self.up = Process("cumulo-up", [binary("cumulo"), "up", self.file, "--state-dir", self.state],
                          self.tmp_path / log)
        self.status = wait_stack_running(self.state, timeout=60)
        self.net = json.loads((self.state / "network.json").read_text())
        self.members = {m["name"]: m for m in self.net["members"]}
        return self

    def stop(self):
        if self.up:
            self.up.stop()
            self.up = None

    def ns(self, member: str) -> str:
        return self.members[member]["namespace"]

    def addr(self, member: str) -> str:
        return self.members[member]["address"]

    @property
    def outside(self) -> str:
        return self.net["outside"]["namespace"]

    def web(self) -> list[str]:
        return sorted(n for n, m in self.members.items() if m["group"] == "web")

    def leftovers(self) -> list[str]:
        return [n for n in netns_list() if n.startswith(f"cu-{self.name}.")]

    def remove_leftovers(self) -> list[str]:
        """What the stack left behind (the test asserts there is nothing), removed so that a failed test leaves no
        namespace of its own on the machine."""
        left = self.leftovers()
        for ns in left:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        return left


@pytest.fixture
def net_stack(tmp_path):
    require_network_tools()
    stack = NetStack(tmp_path, f"nt{os.getpid() % 100000}")
    try:
        yield stack.start()
    finally:
        stack.stop()
        stack.remove_leftovers()


def test_outside_reaches_only_the_public_ports_and_the_matrix_matches_the_policy(net_stack):
    s = net_stack
    assert s.status["network"]["check"] == "passed", s.status["network"]
    gw, edge = s.addr("gateway"), s.addr("edge-near")
    code, body = http_from(s.outside, f"http://{gw}:8080/")
    assert code == 200, body
    assert http_from(s.outside, f"http://{edge}:8081/")[0] == 200
    https = in_ns(s.outside, tool("curl"), "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                  "--cacert", s.tmp_path / "site.pem", "--resolve", f"site.test:443:{gw}", "https://site.test/")
    assert https.stdout == "200", https.stdout + https.stderr  # 443 answers the outside too
    # Nothing else of the stack answers the outside: instances, store nodes; nor the gateway on other ports.
    for web in s.web():
        assert reach(s.outside, s.addr(web), 8080) == "denied", web
    assert reach(s.outside, s.addr("objstore-a"), 9000) == "denied"
    assert reach(s.outside, gw, 9000) == "denied"
    # The admin and control APIs stay on the host's loopback: not in any namespace.
    assert reach(s.outside, "127.0.0.1", s.ports["admin"]) == "refused"
    assert reach(s.ns("gateway"), "127.0.0.1", s.ports["admin"]) == "refused"
    assert requests.get(f"http://127.0.0.1:{s.ports['admin']}/targets", timeout=5).status_code == 200
    # The generated configs say where their processes run.
    gateway_yaml = (s.state / "gateway.yaml").read_text()
    assert f"runs in network namespace {s.ns('gateway')} at {gw}" in gateway_yaml
    assert f'"{gw}:8080"' in gateway_yaml and f"{s.addr('objstore-a')}:9000" in gateway_yaml

    # The full matrix, every group to every group and port and the outside to every group, both ways.
    result = subprocess.run([binary("cumulo"), "net", "check", "--state-dir", s.state, "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(result.stdout)
    assert all(r["ok"] for r in rows)
    seen = {(r["from_group"], r["to_group"], r["port"]): r["expected"] for r in rows}
    assert seen[("outside", "gateway", 8080)] == "allowed"
    assert seen[("outside", "gateway", 443)] == "allowed"
    assert seen[("outside", "web", 443)] == "denied"
    assert seen[("outside", "web", 8080)] == "denied"
    assert seen[("gateway", "web", 8080)] == "allowed"
    assert seen[("web", "object_store", 9000)] == "allowed"
    assert seen[("web", "gateway", 8080)] == "denied"
    assert seen[("outside", "object_store", 9000)] == "denied"
    groups = {"gateway", "edge", "web", "object_store"}
    assert {r["to_group"] for r in rows} >= groups and {r["from_group"] for r in rows} >= groups | {"outside"}


def test_an_instance_reaches_its_data_tier_and_nothing_else_even_as_root(net_stack):
    s = net_stack
    web = s.web()[0]
    ns = s.ns(web)
    outside_address = s.net["outside"]["address"]
    listener = subprocess.Popen(["ip", "netns", "exec", s.outside, "/usr/bin/python3", "-c",
                                 "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                                 "s.bind(('0.0.0.0', 4444)); s.listen(); time.sleep(60)"])
    try:
        wait_for(lambda: reach(s.outside, outside_address, 4444) == "connected", 5, what="a listener outside")
        assert reach(ns, s.addr("objstore-a"), 9000) == "connected"
        assert reach(ns, s.addr("objstore-b"), 9000) == "connected"
        assert reach(ns, outside_address, 4444) == "denied"  # no egress to the internet
        assert reach(ns, s.addr("gateway"), 8080) == "denied"  # nor to groups it does not name
        other = s.web()[1]
        assert reach(ns, s.addr(other), 8080) == "denied"  # nor to its own group's other instances

        # Root inside its namespace, it changes what it can: its own rules and its own address. Neither helps.
        in_ns(ns, "nft", "flush", "ruleset", check=True)
        assert reach(ns, outside_address, 4444) == "denied"
        in_ns(ns, "ip", "addr", "add", f"{s.addr('gateway')}/32", "dev", "eth0", check=True)
        assert reach(ns, s.addr("objstore-a"), 9000, source=s.addr("gateway")) in ("denied", "timeout")
        assert reach(ns, outside_address, 4444, source=s.addr("gateway")) in ("denied", "timeout")
    finally:
        listener.kill()
        listener.wait()


AS_AN_INSTANCE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for cap in (21, 12, 16, 19, 17, 22, 39):  # what cumulo up drops from an instance's bounding set
    libc.prctl(24, cap, 0, 0, 0)          # PR_CAPBSET_DROP
os.execvp(sys.argv[1], sys.argv[1:])
"""


def test_an_instance_cannot_enter_the_router_or_change_rules(net_stack):
    s = net_stack
    web = s.web()[0]
    pid = next(i["pid"] for i in s.status["instances"] if i["id"] == web)
    bounding = int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("CapBnd")).split()[1], 16)
    assert not bounding & (1 << 21) and not bounding & (1 << 12), hex(bounding)  # no SYS_ADMIN, no NET_ADMIN
    # What a root process with that bounding set gets when it tries: no entry to the router's namespace, no
    # change to its own namespace's rules.
    enter = in_ns(s.ns(web), "/usr/bin/python3", "-c", AS_AN_INSTANCE, "ip", "netns", "exec", s.net["router"],
                  "nft", "flush", "ruleset")
    assert enter.returncode != 0 and "Operation not permitted" in enter.stderr, enter.stderr
    own = in_ns(s.ns(web), "/usr/bin/python3", "-c", AS_AN_INSTANCE, "nft", "add", "table", "inet", "mine")
    assert own.returncode != 0, own.stdout + own.stderr
    assert http_from(s.outside, f"http://{s.addr('gateway')}:8080/")[0] == 200
    assert reach(s.outside, s.addr(web), 8080) == "denied"


def test_ssh_to_instances_only_from_the_allow_list(net_stack):
    s = net_stack
    web = s.web()[0]
    server = subprocess.Popen(["ip", "netns", "exec", s.ns(web), "/usr/bin/python3", "-c",
                               "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 22)); s.listen(); time.sleep(60)"])
    try:
        wait_for(lambda: reach(s.ns(web), "127.0.0.1", 22) == "connected", 5, what="a listener on port 22")
        outside_address = s.net["outside"]["address"]
        assert reach(s.outside, s.addr(web), 22, source=outside_address) == "connected"
        # Another outside address, not in the allow list.
        in_ns(s.outside, "ip", "addr", "add", "203.0.113.100/32", "dev", "eth0", check=True)
        assert reach(s.outside, s.addr(web), 22, source="203.0.113.100") == "denied"
        # The gateway is no allow-listed source either.
        assert reach(s.ns("gateway"), s.addr(web), 22) == "denied"
    finally:
        server.kill()
        server.wait()


def test_stopping_or_restarting_after_a_crash_removes_every_namespace_of_the_stack(tmp_path):
    require_network_tools()
    stack = NetStack(tmp_path, f"nc{os.getpid() % 100000}")
    try:
        stack.start()
        assert len(stack.leftovers()) >= 6  # router, outside, gateway, edge, two stores, two instances
        children = [s["pid"] for s in stack.status["services"]] + [i["pid"] for i in stack.status["instances"]]
        os.kill(stack.up.pid, signal.SIGKILL)
        stack.up.popen.wait(timeout=10)
        stack.up = None
        assert stack.leftovers(), "a killed supervisor cannot clean up: its namespaces stay until the next start"
        # Its children end with it (parent-death signal); a new start removes what is left and builds anew.
        wait_for(lambda: not any(pid_running(p) for p in children if p), 30, what="the old processes to end")
        stack.start(log="up2.log")
        code, _ = http_from(stack.outside, f"http://{stack.addr('gateway')}:8080/")
        assert code == 200
    finally:
        stack.stop()
    assert stack.remove_leftovers() == []


DATABASE = """database:
  primary_zone: a
  replicas: {a: 1}
  writer: 127.0.0.1:3306
  reader: 127.0.0.1:3307
  users:
    - {name: app, password: pw-net, databases: [app]}
"""


def check_database_servers(stack: NetStack, db: str):
    """Each database server in a namespace of its own in its zone's private subnet, bound to its address there,
    reached only by the endpoints and the other servers, with users for those addresses alone."""
    import pymysql
    servers = sorted(n for n, m in stack.members.items() if m["group"] == "database_servers")
    assert servers == sorted(i["name"] for i in stack.status["database"]["instances"])
    assert len(servers) >= 2
    for name in servers:
        ip = stack.addr(name)
        assert stack.members[name]["zone"] == name.split("-")[1]
        for ns in [stack.ns(w) for w in stack.web()] + [stack.ns("gateway"), stack.ns("objstore-a"), stack.outside]:
            assert reach(ns, ip, 3306) == "denied", (ns, name)
        assert reach(stack.ns(name), "127.0.0.1", 3306) != "connected", "bound to its private address only"
        for other in servers:
            if other != name:
                assert reach(stack.ns(other), ip, 3306) == "connected", (other, name)
    for port in (3306, 3307):
        assert reach(stack.ns("gateway"), db, port) == "denied"
    config = (stack.state / "db.yaml").read_text()
    assert "# Network mode: each server runs in a network namespace of its own" in config
    assert f'allowed_hosts: ["{db}"]' in config
    conn = pymysql.connect(unix_socket=str(stack.state / "db" / servers[0] / "mariadbd.sock"), user="root",
                           connect_timeout=5)
    with conn.cursor() as c:
        c.execute("SELECT user, host FROM mysql.user WHERE user IN ('app', 'repl')")
        users = set(c.fetchall())
    conn.close()
    assert users == {("app", db)} | {("repl", stack.addr(n)) for n in servers}, users


@pytest.mark.time_limit(180)
def test_instances_write_through_the_database_writer_that_nothing_else_reaches(tmp_path):
    from db_support import need_mariadb
    need_mariadb()
    require_network_tools()
    stack = NetStack(tmp_path, f"nd{os.getpid() % 100000}", extra="")
    # The demo application with the tier's endpoints, wherever network mode put them.
    text = open(stack.file).read().replace(
        '"--id", "{instance_id}"]',
        '"--id", "{instance_id}", "--db-writer", "{db_writer}", "--db-reader", "{db_reader}", '
        '"--db-password", "pw-net"]')
    text = text.replace("network:\n", DATABASE + "network:\n")
    open(stack.file, "w").write(text)
    try:
        stack.up = Process("cumulo-up", [binary("cumulo"), "up", stack.file, "--state-dir", stack.state],
                           tmp_path / "up.log")
        stack.status = wait_stack_running(stack.state, timeout=120, what="stack.json says running\n" + stack.up.log_tail(20))
        stack.net = json.loads((stack.state / "network.json").read_text())
        stack.members = {m["name"]: m for m in stack.net["members"]}
        assert stack.status["network"]["check"] == "passed", stack.status["network"]
        db = stack.addr("db")
        assert stack.status["database"]["writer"] == f"{db}:3306"

        gw = f"http://{stack.addr('gateway')}:8080"
        r = in_ns(stack.outside, tool("curl"), "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                  "-d", "name=ann", "-d", "message=through the writer", f"{gw}/guestbook")
        assert r.stdout == "303", r.stdout + r.stderr
        wait_for(lambda: "through the writer" in http_from(stack.outside, f"{gw}/guestbook")[1], 15,
                 what="the entry listed through the reader endpoint")
        web = stack.web()[0]
        assert reach(stack.ns(web), db, 3306) == "connected"
        assert reach(stack.ns("gateway"), db, 3306) == "denied"
        assert reach(stack.outside, db, 3306) == "denied"
        assert reach(stack.ns("objstore-a"), db, 3307) == "denied"
        check_database_servers(stack, db)
    finally:
        stack.stop()
        from test_stack_database import kill_leftover_servers
        kill_leftover_servers(stack.state)
    assert stack.remove_leftovers() == []


WRITE_LOOP = """
import os, sys, time
import pymysql
host, stop = sys.argv[1], sys.argv[2]
n, conn = 0, None
while not os.path.exists(stop):
    try:
        if conn is None:
            conn = pymysql.connect(host=host, port=3306, user="app", password="pw-net", database="app",
                                   autocommit=True, connect_timeout=2, read_timeout=5, write_timeout=5)
            conn.cursor().execute("CREATE TABLE IF NOT EXISTS acked (id INT PRIMARY KEY)")
        try:
            conn.cursor().execute("INSERT INTO acked VALUES (%s)", (n + 1,))
        except pymysql.IntegrityError as e:
            if e.args[0] != 1062:
                raise
        n += 1
        print(n, flush=True)
    except Exception:
        # Unacknowledged: the same id is tried again (a duplicate key then means it did commit).
        try:
            conn and conn.close()
        except Exception:
            pass
        conn = None
        time.sleep(0.1)
"""


@pytest.mark.time_limit(240)
def test_database_failover_in_network_mode_keeps_every_acknowledged_write(tmp_path):
    """The primary's mariadbd killed (-9) in its own namespace, three times in a row: the writer endpoint moves to
    each new primary, and every write acknowledged before and after, by a client in a web instance's namespace
    writing all along, is on every server."""
    from db_support import need_mariadb
    import pymysql
    need_mariadb()
    require_network_tools()
    stack = NetStack(tmp_path, f"nf{os.getpid() % 100000}", extra="")
    text = open(stack.file).read().replace(
        "network:\n", DATABASE.replace("replicas: {a: 1}", "replicas: {a: 1, b: 1}\n  failover_after: 1s")
        + "network:\n")
    open(stack.file, "w").write(text)
    writer = None
    stop_file = tmp_path / "stop-writing"
    try:
        stack.start()
        assert stack.status["network"]["check"] == "passed", stack.status["network"]
        admin = stack.status["database"]["admin"]

        def db_status():
            try:
                return requests.get(f"http://{admin}/status", timeout=2).json()
            except (requests.RequestException, ValueError):
                return None

        def primary():
            s = db_status()
            p = [i for i in (s or {}).get("instances", []) if i["role"] == "primary" and i["state"] == "running"]
            return p[0] if p else None

        def replicating(s):
            return [i for i in (s or {}).get("instances", [])
                    if i["role"] == "replica" and i["state"] == "running" and i.get("io_running")]

        wait_for(lambda: primary() and len(replicating(db_status())) == 2, 60, 0.2, "the tier healthy")
        old = primary()
        out = tmp_path / "acked.txt"
        script = tmp_path / "write_loop.py"
        script.write_text(WRITE_LOOP)
        writer = subprocess.Popen(["ip", "netns", "exec", stack.ns(stack.web()[0]), "/usr/bin/python3", str(script),
                                   stack.addr("db"), str(stop_file)], stdout=open(out, "w"),
                                  stderr=subprocess.STDOUT)

        def acked() -> int:
            lines = [l for l in out.read_text().split() if l.isdigit()]
            return int(lines[-1]) if lines else 0

        wait_for(lambda: acked() >= 50, 30, 0.1, "writes through the writer endpoint")
        killed = []
        for _ in range(3):
            old = primary()
            killed.append(old["name"])
            os.kill(old["pid"], signal.SIGKILL)
            before = acked()
            wait_for(lambda: (p := primary()) is not None and p["name"] != old["name"], 60, 0.2,
                     "a replica promoted")
            wait_for(lambda: acked() >= before + 50, 60, 0.1, "writes acknowledged through the new primary")
            new = primary()
            assert stack.members[new["name"]]["address"] != stack.members[old["name"]]["address"]
            wait_for(lambda: len(replicating(db_status())) == 2, 90, 0.2, f"{old['name']} back as a replica")
        stop_file.write_text("")
        writer.wait(timeout=20)
        total = acked()
        new = primary()
        assert len(set(killed)) >= 2, killed

        def rows_on(name):
            try:
                conn = pymysql.connect(unix_socket=str(stack.state / "db" / name / "mariadbd.sock"), user="root",
                                       database="app", connect_timeout=2)
                with conn.cursor() as c:
                    c.execute("SELECT id FROM acked")
                    ids = {r[0] for r in c.fetchall()}
                conn.close()
                return ids
            except pymysql.MySQLError:
                return set()

        want = set(range(1, total + 1))
        assert want <= rows_on(new["name"])
        # Every server running again (the old primary rebuilt or rejoined) holds them too.
        servers = [i["name"] for i in stack.status["database"]["instances"]]
        for name in servers:
            wait_for(lambda: want <= rows_on(name), 90, 0.5, f"every acknowledged write on {name}")
    finally:
        stop_file.write_text("")
        if writer and writer.poll() is None:
            writer.kill()
        stack.stop()
        from test_stack_database import kill_leftover_servers
        kill_leftover_servers(stack.state)
    assert stack.remove_leftovers() == []


HOLD_CONNECTION = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
def ask(s):
    s.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    data = b""
    while b"\\r\\n\\r\\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return "closed"
        data += chunk
    head, _, body = data.partition(b"\\r\\n\\r\\n")
    length = [int(l.split(b":")[1]) for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length")]
    while length and len(body) < length[0]:
        body += s.recv(4096)
    return head.split(b"\\r\\n")[0].decode()
s = socket.create_connection((host, port), timeout=5)
print("first", ask(s), flush=True)
sys.stdin.readline()
try:
    print("again", ask(s), flush=True)
except OSError as e:
    print("again failed", e, flush=True)
n = socket.socket()
n.settimeout(2)
try:
    n.connect((host, port))
    print("new connected", flush=True)
except OSError as e:
    print("new failed", e.errno, flush=True)
"""


def test_a_reload_changes_a_rule_and_keeps_established_connections(net_stack):
    s = net_stack
    web = s.web()[0]
    holder = subprocess.Popen(["ip", "netns", "exec", s.ns(web), "/usr/bin/python3", "-c", HOLD_CONNECTION,
                               s.addr("objstore-a"), "9000"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        first = holder.stdout.readline()
        assert first.startswith("first HTTP/1.1"), first
        # The web group may no longer reach the object store: an empty egress list.
        text = open(s.file).read().replace(f"  ssh_from: [{SSH_ALLOWED}]\n",
                                           f"  ssh_from: [{SSH_ALLOWED}]\n  egress: {{web: []}}\n")
        open(s.file, "w").write(text)
        r = subprocess.run([binary("cumulo"), "net", "reload", "--state-dir", s.state], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        holder.stdin.write("go\n")
        holder.stdin.flush()
        again, new = holder.stdout.readline(), holder.stdout.readline()
        assert again.startswith("again HTTP/1.1"), again  # the established connection carries on
        assert new.startswith("new failed 113"), new       # EHOSTUNREACH: a new one is refused at once
        assert reach(s.ns(web), s.addr("objstore-b"), 9000) == "denied"
        # The check runs again against the new policy and passes.
        def checked():
            st = json.loads((s.state / "stack.json").read_text())
            return st["network"]["check"] in ("passed", "failed") and st["network"]["check"]
        wait_for(lambda: checked() == "passed", 30, what="the check after the reload")
        result = subprocess.run([binary("cumulo"), "net", "check", "--state-dir", s.state, "--json"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout
        rows = json.loads(result.stdout)
        assert {r["expected"] for r in rows if r["from_group"] == "web" and r["to_group"] == "object_store"} == {"denied"}

        # A change that would move members is refused, with nothing changed.
        open(s.file, "w").write(text.replace("cidr: 10.20.0.0/16", "cidr: 10.21.0.0/16"))
        r = subprocess.run([binary("cumulo"), "net", "reload", "--state-dir", s.state], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode != 0 and "restart" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
        assert reach(s.ns(web), s.addr("objstore-b"), 9000) == "denied"
    finally:
        holder.kill()
        holder.wait()


ASK_DNS = """
import sys, dns.message, dns.query
q = dns.message.make_query(sys.argv[2], "A")
udp = dns.query.udp(q, sys.argv[1], port=53, timeout=2)
tcp = dns.query.tcp(q, sys.argv[1], port=53, timeout=2)
print(sorted(r.to_text() for rrset in udp.answer for r in rrset), sorted(r.to_text() for rrset in tcp.answer for r in rrset))
"""


def test_the_dns_server_answers_the_outside_with_the_gateways_public_address(tmp_path):
    require_network_tools()
    from dns_support import dns  # noqa: F401 (fails with the apt-get line when dnspython is missing)
    (tmp_path / "dns.yaml").write_text(json.dumps({
        "zones": [{"origin": "site.test", "records": [{"name": "@", "type": "ALIAS", "gateway": True}]}]}))
    stack = NetStack(tmp_path, f"ns{os.getpid() % 100000}")
    text = open(stack.file).read().replace("network:\n", f"dns:\n  config: {tmp_path / 'dns.yaml'}\n"
                                                          "  listen: 0.0.0.0:53\nnetwork:\n")
    open(stack.file, "w").write(text)
    try:
        stack.start()
        assert stack.status["network"]["check"] == "passed", stack.status["network"]
        server = stack.addr("dns")
        r = in_ns(stack.outside, "/usr/bin/python3", "-c", ASK_DNS, server, "site.test")
        gw = stack.addr("gateway")
        assert r.stdout.strip() == f"['{gw}'] ['{gw}']", r.stdout + r.stderr
        # Only the DNS port: not its admin API (on the host), nor other ports.
        assert reach(stack.outside, server, 8080) == "denied"
        web = stack.web()[0]
        assert reach(stack.ns(web), server, 53) == "denied"
    finally:
        stack.stop()
    assert stack.remove_leftovers() == []
