"""Helpers for the database tier's integration tests: a `cumulo db run` process with its instances on ports from
the kernel, its admin API, and pymysql clients (python3-pymysql)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import requests

from support import LOCALHOST, ProcessSet, binary, free_port, to_yaml, tool, wait_for

try:
    import pymysql
except ImportError:  # pragma: no cover - the set-up script installs it
    pymysql = None

APP_USER = "app"
APP_PASSWORD = "app-secret"
APP_DB = "app"


def need_mariadb():
    if pymysql is None:
        pytest.fail("python3-pymysql is missing: apt-get install -y python3-pymysql", pytrace=False)
    if not os.access("/usr/sbin/mariadbd", os.X_OK):
        pytest.fail("mariadbd is missing: apt-get install -y mariadb-server mariadb-client", pytrace=False)
    tool("mariadb-install-db", "mariadb-server")
    tool("mariadb-dump", "mariadb-client")


class DbTier:
    """`cumulo db run` with one primary and replicas; stopped by the ProcessSet (SIGTERM, which stops the
    servers it started). kill_manager() and restart_manager() crash and restart that process; each incarnation is
    kept in `managers` so that stop_tier stops them all."""

    def __init__(self, procs: ProcessSet, tmp: Path, zones=("a", "b", "b"), **overrides):
        need_mariadb()
        self.procs = procs
        self.dir = tmp / "db"
        self.writer_port = free_port()
        self.reader_port = free_port()
        self.admin_port = free_port()
        self.instances = []
        for n, zone in enumerate(zones):
            self.instances.append({"name": f"db-{chr(ord('a') + n)}", "zone": zone, "port": free_port()})
        self.config = {
            "data_dir": str(self.dir),
            "writer": f"{LOCALHOST}:{self.writer_port}",
            "reader": f"{LOCALHOST}:{self.reader_port}",
            "admin": f"{LOCALHOST}:{self.admin_port}",
            "primary": self.instances[0]["name"],
            "instances": self.instances,
            "failover_after": "1s",
            "monitor_interval": "200ms",
            "lag_limit": "2s",
            "replication": {"name": "repl", "password": "repl-secret"},
            "users": [{"name": APP_USER, "password": APP_PASSWORD, "databases": [APP_DB]}],
        }
        self.config.update(overrides)
        self.config_path = tmp / "db.yaml"
        self.config_path.write_text(to_yaml(self.config))
        self.argv = [str(binary("cumulo")), "db", "run", "-c", str(self.config_path)]
        self.proc = procs.start("db", self.argv)
        self.managers = [self.proc]
        self.manager_down = False  # killed on purpose by kill_manager(): the admin API is expected to be away
        wait_for(lambda: self._status_or_none() is not None, 60, 0.1, "cumulo db to serve its admin API")
        self.wait_healthy()

    def kill_manager(self) -> int:
        """kill -9 of `cumulo db run`, as a crash would; the servers and the endpoint process keep running.
        Returns the PID it had."""
        self.manager_down = True
        pid = self.proc.pid
        self.proc.kill()
        return pid

    def restart_manager(self):
        """Starts `cumulo db run -c` with the same file again and returns at once; the admin API answers once the new
        process adopted the running servers and endpoint process."""
        self.proc = self.procs.start(f"db-{len(self.managers) + 1}", self.argv)
        self.managers.append(self.proc)
        self.manager_down = False
        return self.proc

    def endpoints_pid(self) -> int | None:
        """The `cumulo db endpoints` process of this tier, if it still runs: by its PID file (DATA_DIR/endpoints.pid,
        a number, or DATA_DIR/endpoints.json, {"pid": N}), checked against its command line."""
        for name, parse in (("endpoints.pid", int), ("endpoints.json", lambda t: int(json.loads(t)["pid"]))):
            try:
                pid = parse((self.dir / name).read_text().strip())
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if pid > 0 and b"\0endpoints\0" in cmdline:
                return pid
        return None

    def _status_or_none(self):
        if self.manager_down:
            return None
        if not self.proc.alive():
            pytest.fail("cumulo db exited:\n" + self.proc.log_tail(40), pytrace=False)
        try:
            r = requests.get(f"http://{LOCALHOST}:{self.admin_port}/status", timeout=2)
            return r.json() if r.status_code == 200 else None
        except requests.RequestException:
            return None

    def status(self) -> dict:
        s = self._status_or_none()
        assert s is not None, "the admin API does not answer"
        return s

    def instance(self, name: str) -> dict:
        return next(i for i in self.status()["instances"] if i["name"] == name)

    def healthy(self, replicas: int | None = None) -> bool:
        s = self._status_or_none()
        if not s:
            return False
        want = len(self.instances) - 1 if replicas is None else replicas
        primary = [i for i in s["instances"] if i["role"] == "primary"]
        ok = [i for i in s["instances"]
              if i["role"] == "replica" and i["state"] == "running" and i["io_running"] and i["sql_running"]]
        return len(primary) == 1 and primary[0]["semi_sync"] == "on" and len(ok) >= want

    def wait_healthy(self, timeout: float = 30):
        wait_for(self.healthy, timeout, 0.1,
                 "the tier to be healthy (primary with semi-sync on, every replica replicating)")

    def socket(self, name: str) -> str:
        return str(self.dir / name / "mariadbd.sock")

    def root(self, name: str):
        return pymysql.connect(unix_socket=self.socket(name), user="root", autocommit=True, connect_timeout=5)

    def connect(self, port: int, user=APP_USER, password=APP_PASSWORD, database=APP_DB, timeout=5):
        return pymysql.connect(host=LOCALHOST, port=port, user=user, password=password, database=database,
                               autocommit=True, connect_timeout=timeout, read_timeout=timeout,
                               write_timeout=timeout)

    def writer(self, **kw):
        return self.connect(self.writer_port, **kw)

    def reader(self, **kw):
        return self.connect(self.reader_port, **kw)

    def port_of(self, name: str) -> int:
        return next(i["port"] for i in self.instances if i["name"] == name)

    def name_of_port(self, port: int) -> str:
        return next(i["name"] for i in self.instances if i["port"] == port)


def query(conn, sql: str, args=None):
    with conn.cursor() as c:
        c.execute(sql, args)
        return c.fetchall()


def stop_tier(tier: DbTier):
    """SIGTERM to every `cumulo db run` incarnation and a generous wait (a live one closes the endpoints and shuts
    the servers down cleanly), then any mariadbd left behind is killed by the PID in its data directory, and any
    endpoint process by its PID file."""
    for manager in reversed(tier.managers):
        manager.stop(grace=30)
    for inst in tier.instances:
        pid_file = tier.dir / inst["name"] / "mariadbd.pid"
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if str(tier.dir).encode() in cmdline:
            os.kill(pid, signal.SIGKILL)
    endpoints = tier.endpoints_pid()
    if endpoints is not None:
        os.kill(endpoints, signal.SIGKILL)
