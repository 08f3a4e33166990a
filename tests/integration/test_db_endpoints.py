"""The database tier's endpoints: the reader endpoint spreads over replicas under the lag limit and drops one
that lags or does not replicate, falling back to the primary; MariaDB's own errors reach the client; the planned
switchover; a port in use is refused at start."""

import subprocess
import time

import pytest

from db_support import DbTier, query, stop_tier, APP_DB
from support import LOCALHOST, binary, to_yaml, wait_for



@pytest.fixture
def tier(procs, tmp_path):
    t = DbTier(procs, tmp_path)
    yield t
    stop_tier(t)


def reader_ports(tier, n=12):
    ports = set()
    for _ in range(n):
        with tier.reader() as c:
            ports.add(query(c, "SELECT @@port")[0][0])
    return ports


@pytest.mark.time_limit(90)
def test_reader_endpoint_follows_lag_and_replication(tier):
    replicas = [i["name"] for i in tier.instances[1:]]
    primary = tier.instances[0]["name"]
    assert reader_ports(tier) == {tier.port_of(r) for r in replicas}

    with tier.writer() as c:
        query(c, "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
    # A replica that applies 5 s late is over the 2 s limit once writes flow.
    lagging = replicas[0]
    with tier.root(lagging) as r:
        query(r, "STOP SLAVE")
        query(r, "CHANGE MASTER TO MASTER_DELAY=5")
        query(r, "START SLAVE")
    def lagging_out():
        s = tier.status()
        lag = next(i for i in s["instances"] if i["name"] == lagging)["seconds_behind"]
        return lag is not None and lag > 2 and lagging not in s["readers"]
    with tier.writer() as c:
        for i in range(150):
            query(c, "INSERT INTO t (v) VALUES (%s)", (i,))
            time.sleep(0.1)
            if lagging_out():
                break
    assert lagging_out(), f"{lagging} should lag over 2 s and be out of the readers: {tier.status()}"
    assert reader_ports(tier) == {tier.port_of(replicas[1])}

    # A replica whose SQL thread is stopped cannot serve reads either: its open reader connections are closed,
    # and with no reader left, the primary serves.
    held = tier.reader()
    assert query(held, "SELECT @@port")[0][0] == tier.port_of(replicas[1])
    with tier.root(replicas[1]) as r:
        query(r, "STOP SLAVE SQL_THREAD")
    wait_for(lambda: tier.status()["readers"] == [], 10, 0.1, "the reader set to empty")
    import pymysql
    with pytest.raises(pymysql.err.OperationalError):
        wait_for(lambda: query(held, "SELECT 1") and False, 5, 0.1, "the held reader connection to be closed")
    assert reader_ports(tier) == {tier.port_of(primary)}
    st = subprocess.run([str(binary("cumulo")), "db", "status", "--admin", f"{LOCALHOST}:{tier.admin_port}"],
                        capture_output=True, text=True, timeout=10)
    assert st.returncode == 0, st.stderr
    assert f"primary {primary}" in st.stdout and "readers []" in st.stdout

    # Both back: the lag falls under the limit and both serve reads again.
    with tier.root(replicas[1]) as r:
        query(r, "START SLAVE SQL_THREAD")
    with tier.root(lagging) as r:
        query(r, "STOP SLAVE")
        query(r, "CHANGE MASTER TO MASTER_DELAY=0")
        query(r, "START SLAVE")
    wait_for(lambda: sorted(tier.status()["readers"]) == sorted(replicas), 15, 0.1, "both replicas to serve reads")


@pytest.mark.time_limit(60)
def test_client_errors_are_mariadb_errors_and_switchover(tier):
    import pymysql
    with pytest.raises(pymysql.err.OperationalError) as e:
        tier.writer(password="wrong")
    assert e.value.args[0] == 1045, e.value.args  # ER_ACCESS_DENIED_ERROR, from the server
    with pytest.raises(pymysql.err.OperationalError) as e:
        tier.reader(database="no_such_db")
    assert e.value.args[0] in (1044, 1049), e.value.args
    with tier.writer() as c:
        query(c, "CREATE TABLE s (id INT PRIMARY KEY)")
        query(c, "INSERT INTO s VALUES (1), (2)")
    # A replica refuses writes.
    replica = tier.instances[1]["name"]
    with tier.connect(tier.port_of(replica)) as c:
        with pytest.raises(pymysql.err.MySQLError) as e:
            query(c, "INSERT INTO s VALUES (3)")
        assert e.value.args[0] == 1290, e.value.args  # ER_OPTION_PREVENTS_STATEMENT (read_only)

    cmd = [str(binary("cumulo")), "db", "switchover", "--admin", f"{LOCALHOST}:{tier.admin_port}", "--to", replica]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert tier.status()["primary"] == replica
    with tier.writer() as c:
        assert query(c, "SELECT @@port")[0][0] == tier.port_of(replica)
        query(c, "INSERT INTO s VALUES (3)")
    tier.wait_healthy(20)
    old = tier.instances[0]["name"]
    with tier.root(old) as r:
        wait_for(lambda: query(r, "SELECT COUNT(*) FROM app.s")[0][0] == 3, 10, 0.1, "the old primary to replicate")
    bad = subprocess.run(cmd[:-1] + ["nope"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "no instance named 'nope'" in bad.stderr


@pytest.mark.time_limit(30)
def test_port_in_use_is_refused(procs, tmp_path):
    import socket
    from db_support import need_mariadb
    from support import free_port
    need_mariadb()
    busy = socket.socket()
    busy.bind((LOCALHOST, 0))
    busy.listen()
    port = busy.getsockname()[1]
    cfg = {
        "data_dir": str(tmp_path / "db"), "writer": f"{LOCALHOST}:{port}", "reader": f"{LOCALHOST}:{free_port()}",
        "admin": f"{LOCALHOST}:{free_port()}", "primary": "db-a",
        "instances": [{"name": "db-a", "zone": "a", "port": free_port()}],
        "replication": {"name": "repl", "password": "x"},
    }
    path = tmp_path / "db.yaml"
    path.write_text(to_yaml(cfg))
    r = subprocess.run([str(binary("cumulo")), "db", "run", "-c", str(path)], capture_output=True, text=True,
                       timeout=20)
    busy.close()
    assert r.returncode == 1
    assert f"writer 127.0.0.1:{port} cannot be used" in r.stderr, r.stderr
