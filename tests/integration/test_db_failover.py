"""The database tier loses its primary to kill -9 while clients write through the writer endpoint: the endpoint
serves the new primary within 10 s and every acknowledged row is there; the old primary rejoins as a replica.
Three rounds in one test."""

import os
import signal
import threading
import time

import pytest

from db_support import DbTier, query, stop_tier

ROUNDS = 3


@pytest.fixture
def tier(procs, tmp_path):
    t = DbTier(procs, tmp_path)
    yield t
    stop_tier(t)


class Writer(threading.Thread):
    """Inserts rows one by one through the writer endpoint, reconnecting on errors; an id is acknowledged once
    its INSERT returned."""

    def __init__(self, tier, first_id):
        super().__init__(daemon=True)
        self.tier = tier
        self.next_id = first_id
        self.acked = []
        self.stop_flag = threading.Event()
        self.served_by = []  # (monotonic time, server port) of each successful insert
        self.errors = 0

    def run(self):
        conn = None
        while not self.stop_flag.is_set():
            try:
                if conn is None:
                    conn = self.tier.writer(timeout=3)
                    port = query(conn, "SELECT @@port")[0][0]
                row_id = self.next_id
                self.next_id += 1
                query(conn, "INSERT INTO t (id, note) VALUES (%s, 'x')", (row_id,))
                self.acked.append(row_id)
                self.served_by.append((time.monotonic(), port))
            except Exception:
                self.errors += 1
                try:
                    if conn is not None:
                        conn.close()
                except Exception:
                    pass
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()


@pytest.mark.time_limit(120)
def test_kill_primary_keeps_every_acknowledged_row(tier):
    with tier.writer() as c:
        query(c, "CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(16)) ENGINE=InnoDB")
    next_id = 1
    for round_no in range(ROUNDS):
        tier.wait_healthy(30)
        status = tier.status()
        old = status["primary"]
        old_pid = tier.instance(old)["pid"]
        assert old_pid > 0
        w = Writer(tier, next_id)
        w.start()
        time.sleep(0.7)
        assert w.acked, f"round {round_no}: no row was written through the writer endpoint before the kill"
        killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        # The writer endpoint must serve a different server within 10 s.
        deadline = killed_at + 10
        while time.monotonic() < deadline:
            after = [(t, p) for t, p in w.served_by if t > killed_at and p != tier.port_of(old)]
            if after:
                break
            time.sleep(0.05)
        else:
            w.stop_flag.set()
            w.join(5)
            pytest.fail(f"round {round_no}: the writer endpoint did not serve a new primary within 10 s; "
                        f"status: {tier.status()}")
        took = after[0][0] - killed_at
        time.sleep(0.5)
        w.stop_flag.set()
        w.join(10)
        next_id = w.next_id
        new = tier.status()["primary"]
        assert new != old
        assert tier.port_of(new) == after[0][1]
        with tier.writer() as c:
            present = {r[0] for r in query(c, "SELECT id FROM t")}
        missing = [i for i in w.acked if i not in present]
        assert not missing, f"round {round_no}: acknowledged rows lost in the failover: {missing[:20]}"
        print(f"round {round_no}: {old} -> {new}, writer endpoint on the new primary after {took:.2f} s, "
              f"{len(w.acked)} rows acknowledged, {w.errors} client errors")
    # Every former primary rejoined as a replica with the same rows.
    tier.wait_healthy(30)
    with tier.writer() as c:
        expected = query(c, "SELECT COUNT(*), COALESCE(SUM(id), 0) FROM t")[0]
    for inst in tier.instances:
        def same():
            with tier.root(inst["name"]) as r:
                return query(r, "SELECT COUNT(*), COALESCE(SUM(id), 0) FROM app.t")[0] == expected
        from support import wait_for
        wait_for(same, 10, 0.2, f"{inst['name']} to hold the primary's rows")
    assert tier.status()["failovers"] == ROUNDS
