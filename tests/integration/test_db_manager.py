"""The database manager's own life: switchovers run one at a time on its switchover worker (a second request while
one runs is refused with 409 and kind `running`), refusals name their kind; SIGHUP is answered with a warning and
changes nothing; SIGTERM stops the endpoints and every server, then the manager exits 0."""

import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from db_support import DbTier, query, stop_tier
from support import LOCALHOST, wait_for


@pytest.fixture
def tier(procs, tmp_path):
    t = DbTier(procs, tmp_path)
    yield t
    stop_tier(t)


def thread_names(pid: int) -> list[str]:
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:
            pass
    return names


def pid_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.time_limit(150)
def test_switchovers_one_at_a_time_hangup_and_stop(tier):
    admin = f"http://{LOCALHOST}:{tier.admin_port}"
    old = tier.status()["primary"]
    target = tier.instances[1]["name"]
    assert "db-switchover" in thread_names(tier.proc.pid)

    with tier.writer() as c:
        query(c, "CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        query(c, "INSERT INTO t VALUES (1, 0)")
    with tier.root(target) as r:
        wait_for(lambda: query(r, "SELECT COUNT(*) FROM app.t")[0][0] == 1, 10, 0.1, f"{target} to replicate")

    # The target's SQL thread waits on a row lock held here, so the switchover waits for it to catch up.
    holder = tier.root(target)
    query(holder, "BEGIN")
    query(holder, "SELECT * FROM app.t WHERE id = 1 FOR UPDATE")
    with tier.writer() as c:
        query(c, "UPDATE t SET v = 1 WHERE id = 1")

    first = {}

    def switch():
        try:
            first["response"] = requests.post(f"{admin}/switchover?to={target}", timeout=60)
        except requests.RequestException as e:  # reported below
            first["error"] = e

    t = threading.Thread(target=switch)
    t.start()
    try:
        wait_for(lambda: any(f"switchover from {old} to {target} requested" in e for e in tier.status()["events"]),
                 10, 0.05, "the switchover to start")
        second = requests.post(f"{admin}/switchover", timeout=10)
        assert second.status_code == 409, second.text
        body = second.json()
        assert body["kind"] == "running" and body["retry"] is True, body
    finally:
        time.sleep(0.5)
        query(holder, "ROLLBACK")
        holder.close()
        t.join(60)
    assert "error" not in first, first
    assert first["response"].status_code == 200, first["response"].text
    assert first["response"].json()["primary"] == target
    assert tier.status()["primary"] == target

    # Refusals say what kind they are and whether asking again may help.
    r = requests.post(f"{admin}/switchover?to=nope", timeout=10)
    assert r.status_code == 409 and r.json()["kind"] == "no_such_instance" and r.json()["retry"] is False, r.text
    assert "no instance named 'nope'" in r.json()["error"]
    r = requests.post(f"{admin}/switchover?to={target}", timeout=10)
    assert r.status_code == 409 and r.json()["kind"] == "is_primary", r.text
    assert "db-switchover" in thread_names(tier.proc.pid)

    # SIGHUP: a warning, nothing else.
    tier.proc.signal(signal.SIGHUP)
    wait_for(lambda: "does not reload its configuration" in tier.proc.log_text(), 5, 0.05, "the SIGHUP warning")
    time.sleep(0.5)
    assert tier.proc.alive()
    assert tier.status()["primary"] == target

    # SIGTERM: endpoints and servers stopped, exit 0.
    servers = [i["pid"] for i in tier.status()["instances"]]
    endpoints = tier.endpoints_pid()
    assert endpoints and all(p > 0 for p in servers), tier.status()
    tier.proc.signal(signal.SIGTERM)
    assert tier.proc.wait(60) == 0, tier.proc.log_tail(30)
    assert not pid_alive(endpoints)
    for pid in servers:
        assert not pid_alive(pid), f"mariadbd {pid} still runs"
    log = tier.proc.log_text()
    assert '"signal":"SIGTERM"' in log and '"msg":"stopped"' in log, tier.proc.log_tail(20)
