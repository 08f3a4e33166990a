"""Chaos for the database tier: concurrent writers through the writer endpoint while faults are injected in rounds
(kill -9 or SIGSTOP of the primary, kill -9 of a replica, of the promotion candidate, of `cumulo db run` itself, some
of them triggered by the tier's own log events), then every acknowledged row is looked for on every instance.

The core needs no pytest: tests/integration/test_db_chaos.py runs a short schedule, bench/db-chaos.sh the soak
(`python3 tests/integration/db_chaos.py --help`).

What is counted. A commit is *acknowledged* when its autocommit INSERT or its COMMIT returned OK: its rows must be
on every instance afterwards. An error while the autocommit INSERT or the COMMIT was under way leaves it *in doubt*:
it may exist or not, but whole or not at all, and the same on every instance. An error before COMMIT was sent (at
BEGIN or at an INSERT of the transaction) *rolled it back*: none of its rows may exist. A row is *lost* when it was
acknowledged and some instance lacks it. Every row carries its transaction (`txn`, the id of its first row) and
that transaction's size (`n`), so a half-applied transaction shows as a `txn` with fewer than `n` rows.

Time to next write: from a fault of the primary (kill -9 or SIGSTOP) to the first acknowledgement of a commit that
was sent after the fault, by any writer. With a replica in sync it must be at most 5 s (plus the logged catch-up
after a big transaction).

Rounds (ChaosRun.round_KIND) start once the tier is ready (a primary with semi-sync on, a replica replicating,
writes acknowledged; kill_replica and kill_manager wait for every replica) and a random pause of 1-5 s after writes
were acknowledged again:
  kill_primary              kill -9 of the primary's mariadbd
  kill_primary_big          the same right after a big transaction: the promotion candidate's catch-up lasts seconds
  stop_primary              SIGSTOP of the primary for 5 s: the tier must have fenced it (SIGKILL) by then
  kill_replica              kill -9 of a replica: it must replicate again
  kill_manager              kill -9 of `cumulo db run`: writes go on meanwhile (the endpoints are a process of their
                            own); restarted, it adopts the servers and the endpoint process, with no failover
  kill_primary_in_rebuild   a write on a replica behind the tier's back (an errant transaction), then kill -9 of the
                            primary at that replica's `rebuild_started`
  kill_candidate            big transaction, kill -9 of the primary, then of the candidate at its `catch_up_started`
  kill_manager_in_failover  big transaction, kill -9 of the primary, then of `cumulo db run` at `catch_up_started`;
                            restarted, it must complete the failover
  switchover                a planned switchover under the writers' load: at most a reconnect, nothing lost
A trigger event that does not show within its timeout fails the round (with the events that did show).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import requests

from db_support import APP_DB, DbTier, query

ID_SPAN = 10**12  # writer w's ids are w * ID_SPAN + 1, + 2, ...
BIG_WRITER = 9
RECONNECT_PAUSE_S = 0.05
CLIENT_TIMEOUT_S = 3
BIG_CLIENT_TIMEOUT_S = 60
PRIMARY_FAULT_BOUND_S = 5.0  # with a replica in sync, the writer endpoint accepts writes again within this
PRIMARY_FAULT_GOAL_S = 2.0
RESUME_TIMEOUT_S = 60.0  # writes that do not resume within this after a fault end the round as failed
TRIGGER_TIMEOUT_S = 20.0  # a trigger event (catch_up_started, rebuild_started) must show within this
# The event at which kill_primary_in_rebuild kills the primary.
REBUILD_TRIGGER = "rebuild_started"
STOP_PRIMARY_S = 5.0
MANAGER_DOWN_S = 3.0

PRIMARY_KINDS = ("kill_primary", "kill_primary_big", "stop_primary", "kill_primary_in_rebuild", "kill_candidate",
                 "kill_manager_in_failover")
KINDS = PRIMARY_KINDS + ("kill_replica", "kill_manager", "switchover")

SCHEMA = [
    "CREATE TABLE writes (id BIGINT PRIMARY KEY, writer INT NOT NULL, txn BIGINT NOT NULL, n INT NOT NULL, "
    "payload VARCHAR(200) NOT NULL) ENGINE=InnoDB",
    # No key on purpose: a replica applies each row change of a row-based event by scanning the table for that
    # row, so one UPDATE of every row costs the primary one scan and each replica rows^2 / 2 row reads. That is what
    # makes the big transaction's apply (the promotion candidate's catch-up) last seconds without gigabytes of data.
    "CREATE TABLE ballast (k INT NOT NULL, v BIGINT NOT NULL) ENGINE=InnoDB",
    # Written on a replica directly (kill_primary_in_rebuild): such a row must not survive anywhere.
    "CREATE TABLE errant_probe (round INT PRIMARY KEY, instance VARCHAR(20) NOT NULL) ENGINE=InnoDB",
]


def now() -> float:
    return time.monotonic()


# ---------------------------------------------------------------------------------------------------------------
# what each client did


class Ledger:
    """Every commit one client attempted, by outcome. Lists only grow (appends are atomic under the GIL), so other
    threads read them without a lock."""

    def __init__(self, number: int, rows_per_commit: int):
        self.number = number
        self.rows_per_commit = rows_per_commit
        self.acks: list[tuple[float, float, int, int]] = []  # (sent, acknowledged, first id, rows), in order
        self.sent_times: list[float] = []  # acks[i][0], for bisect
        self.in_doubt: list[tuple[float, int, int]] = []  # (sent, first id, rows)
        self.rolled_back: list[tuple[int, int]] = []  # (first id, rows)
        self.errors = collections.Counter()
        self.next_id = number * ID_SPAN + 1

    def take_ids(self, rows: int) -> int:
        first = self.next_id
        self.next_id += rows
        return first

    def acked(self, sent: float, first: int, rows: int):
        self.acks.append((sent, now(), first, rows))
        self.sent_times.append(sent)

    def error(self, e: BaseException):
        code = e.args[0] if isinstance(e, pymysql.err.MySQLError) and e.args else ""
        self.errors[f"{type(e).__name__} {code}".strip()] += 1

    def first_ack_sent_after(self, t: float) -> float | None:
        n = len(self.sent_times)  # acks is appended first: it holds at least n entries
        i = bisect.bisect_right(self.sent_times, t, 0, n)
        return self.acks[i][1] if i < n else None

    def acked_rows(self) -> int:
        return sum(a[3] for a in self.acks)

    def rows_acked_between(self, t0: float, t1: float) -> int:
        return sum(a[3] for a in self.acks if t0 <= a[1] < t1)


class Writer(threading.Thread):
    """One client of the writer endpoint with its own connection, reconnecting after any error. rows_per_commit 1:
    autocommit single-row INSERTs; more: BEGIN, INSERTs of rows_per_statement rows each, COMMIT. max_commits_per_s
    paces it (0: as fast as it can), so that every run carries the same load whatever the tier's speed."""

    def __init__(self, tier: DbTier, number: int, rows_per_commit: int, rows_per_statement: int,
                 max_commits_per_s: float, stop: threading.Event):
        super().__init__(daemon=True, name=f"writer-{number}")
        assert rows_per_commit % rows_per_statement == 0
        self.tier = tier
        self.ledger = Ledger(number, rows_per_commit)
        self.rows_per_statement = rows_per_statement
        self.max_commits_per_s = max_commits_per_s
        self.stop = stop
        self.payload = f"w{number}:" + "x" * 28
        self.crashed: str | None = None
        values = ", ".join(["(%s, %s, %s, %s, %s)"] * rows_per_statement)
        self.insert = f"INSERT INTO writes VALUES {values}"

    @property
    def kind(self) -> str:
        n, k = self.ledger.rows_per_commit, self.rows_per_statement
        if n == 1:
            return "autocommit INSERT"
        return f"transactions of {n // k} INSERTs" + (f" of {k} rows" if k > 1 else "")

    def run(self):
        try:
            self.write()
        except BaseException as e:  # reported by the run: a writer that stopped writes no more rows
            self.crashed = repr(e)
            raise

    def write(self):
        conn = None
        pace_at = now()
        led = self.ledger
        rows = led.rows_per_commit
        while not self.stop.is_set():
            if self.max_commits_per_s:
                pace_at = max(pace_at + 1.0 / self.max_commits_per_s, now() - 1.0)
                ahead = pace_at - now()
                if ahead > 0:
                    time.sleep(ahead)
            if conn is None:
                try:
                    conn = self.tier.writer(timeout=CLIENT_TIMEOUT_S)
                except Exception as e:
                    led.error(e)
                    time.sleep(RECONNECT_PAUSE_S)
                    continue
            first = led.take_ids(rows)
            committing = False
            sent = 0.0
            try:
                with conn.cursor() as c:
                    if rows == 1:
                        committing, sent = True, now()
                        c.execute("INSERT INTO writes VALUES (%s, %s, %s, 1, %s)",
                                  (first, led.number, first, self.payload))
                    else:
                        conn.begin()
                        k = self.rows_per_statement
                        for i in range(0, rows, k):
                            args = []
                            for j in range(i, i + k):
                                args += (first + j, led.number, first, rows, self.payload)
                            c.execute(self.insert, args)
                        committing, sent = True, now()
                        conn.commit()
                led.acked(sent, first, rows)
            except Exception as e:
                led.error(e)
                if committing:
                    led.in_doubt.append((sent, first, rows))
                else:
                    led.rolled_back.append((first, rows))
                try:
                    conn.close()
                except Exception:
                    pass
                conn = None
                time.sleep(RECONNECT_PAUSE_S)
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass


class BigTransactions:
    """Large transactions, committed on demand by the fault injector through the writer endpoint: `rows` rows into
    `writes` and an UPDATE of every row of `ballast` (see SCHEMA), whose apply keeps a replica busy for seconds."""

    def __init__(self, tier: DbTier, rows: int, ballast_rows: int):
        self.tier = tier
        self.rows = rows
        self.ballast_rows = ballast_rows
        self.ledger = Ledger(BIG_WRITER, rows)

    def create(self, conn):
        query(conn, f"INSERT INTO ballast SELECT seq, 0 FROM seq_1_to_{self.ballast_rows}")

    def commit(self) -> tuple[bool, str]:
        """(acknowledged, what happened otherwise)."""
        led = self.ledger
        try:
            conn = self.tier.writer(timeout=BIG_CLIENT_TIMEOUT_S)
        except Exception as e:
            led.error(e)
            return False, f"cannot connect: {e!r}"
        first = led.take_ids(self.rows)
        committing = False
        sent = 0.0
        try:
            with conn.cursor() as c:
                conn.begin()
                c.execute(f"INSERT INTO writes SELECT %s + seq, %s, %s, %s, REPEAT('b', 100) "
                          f"FROM seq_0_to_{self.rows - 1}", (first, BIG_WRITER, first, self.rows))
                c.execute("UPDATE ballast SET v = %s", (first,))
                committing, sent = True, now()
                conn.commit()
            led.acked(sent, first, self.rows)
            return True, ""
        except Exception as e:
            led.error(e)
            if committing:
                led.in_doubt.append((sent, first, self.rows))
            else:
                led.rolled_back.append((first, self.rows))
            return False, repr(e)
        finally:
            try:
                conn.close()
            except Exception:
                pass


# ---------------------------------------------------------------------------------------------------------------
# the tier's log


class TierLog:
    """Tails the tier's JSON-lines log (every `cumulo db run` incarnation appends to it) and keeps each line that
    parses as a JSON object. Lines without an "event" field and events of unknown kinds are kept and ignored."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = b""
        self.lines: list[tuple[float, dict]] = []  # (time read, line)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tier-log")

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.poll()

    def _run(self):
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(0.01)

    def poll(self):
        with self.lock:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self.offset)
                    data = f.read()
            except OSError:
                return
            if not data:
                return
            self.offset += len(data)
            chunks = (self.partial + data).split(b"\n")
            self.partial = chunks.pop()
            t = now()
            for raw in chunks:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(line, dict):
                    self.lines.append((t, line))

    def mark(self) -> int:
        """A position after everything written so far: events found from it on were written after this call."""
        self.poll()
        return len(self.lines)

    def events(self, kind: str, start: int = 0, **fields) -> list[dict]:
        return [line for _, line in self.lines[start:]
                if line.get("event") == kind and all(str(line.get(k)) == str(v) for k, v in fields.items())]

    def find(self, kind: str, start: int = 0, **fields) -> dict | None:
        found = self.events(kind, start, **fields)
        return found[0] if found else None

    def wait(self, kind: str, start: int, timeout: float, **fields) -> dict | None:
        deadline = now() + timeout
        while True:
            self.poll()
            ev = self.find(kind, start, **fields)
            if ev is not None or now() >= deadline:
                return ev
            time.sleep(0.005)

    def of_instance(self, name: str, start: int = 0) -> list[str]:
        """The kinds of the events about one instance, in order."""
        return [str(line["event"]) for _, line in self.lines[start:]
                if "event" in line and line.get("instance") == name]

    def first_between(self, kind: str, t0: float, t1: float) -> dict | None:
        """The first event of `kind` read between two moments (monotonic)."""
        return next((line for t, line in self.lines if t0 <= t <= t1 and line.get("event") == kind), None)

    def seen_kinds(self, start: int = 0) -> list[str]:
        return sorted({str(line["event"]) for _, line in self.lines[start:] if "event" in line})

    def describe_since(self, start: int) -> str:
        kinds = self.seen_kinds(start)
        return (f"events logged since: {', '.join(kinds)}" if kinds else
                f"no line with an \"event\" field was logged since ({len(self.lines) - start} lines in {self.path})")


def endpoints_pid(status: dict) -> int | None:
    e = status.get("endpoints")
    return e.get("pid") if isinstance(e, dict) and isinstance(e.get("pid"), int) and e["pid"] > 0 else None


def event_ms(ev: dict) -> float | None:
    try:
        return float(ev.get("ms"))
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------------------------
# processes


def process_running(pid: int, marker: str) -> bool:
    """PID runs (not a zombie) and its command line contains marker: the same process, not a reused PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and marker.encode() in cmdline


# ---------------------------------------------------------------------------------------------------------------
# the run


@dataclass
class ChaosOptions:
    rounds: list[str]
    seed: int
    # (rows per commit, rows per INSERT, commits/s at most): autocommit INSERTs and transactions of several INSERTs
    writers: list[tuple[int, int, float]] = field(
        default_factory=lambda: [(1, 1, 200), (1, 1, 200), (5, 1, 120), (40, 10, 60)])
    big_rows: int = 5000
    ballast_rows: int = 4500
    pause_s: tuple[float, float] = (1.0, 5.0)
    time_budget_s: float = 360.0  # rounds and verification; rounds stop early to leave verification its share
    verify_budget_s: float = 150.0
    min_rows_per_s: float = 1000.0
    min_long_catch_ups: int = 2  # catch_up_done events with ms > 1000 the log must show


@dataclass
class PrimaryFault:
    round_no: int
    kind: str
    how: str  # "kill -9", "SIGSTOP" or "switchover"
    instance: str
    at: float
    in_sync: bool
    bound_s: float | None  # asserted bound on the time to next write, None: measured only
    next_write_s: float | None = None


@dataclass
class Round:
    number: int
    kind: str
    faults: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Abort(Exception):
    """The tier cannot go on (its manager died on its own, or it did not recover): no more rounds."""


class ChaosRun:
    def __init__(self, tier: DbTier, log_path: Path, options: ChaosOptions, out=sys.stdout):
        self.tier = tier
        self.opt = options
        self.rng = random.Random(options.seed)
        self.out = out
        self.log = TierLog(log_path)
        self.stop_writers = threading.Event()
        self.writers = [Writer(tier, n + 1, rows, per_insert, rate, self.stop_writers)
                        for n, (rows, per_insert, rate) in enumerate(options.writers)]
        self.big = BigTransactions(tier, options.big_rows, options.ballast_rows)
        self.rounds: list[Round] = []
        self.primary_faults: list[PrimaryFault] = []
        self.failures: list[str] = []
        self.verification: dict = {}
        self.t0 = now()
        self.writing_s = 0.0
        self.manager_down_rows: list[int] = []
        self.crashed: str | None = None  # `cumulo db run` exited on its own

    # -- small helpers
    def say(self, text: str):
        print(f"[{now() - self.t0:7.1f}s] {text}", file=self.out, flush=True)

    def ledgers(self) -> list[Ledger]:
        return [w.ledger for w in self.writers] + [self.big.ledger]

    def status(self) -> dict | None:
        """GET /status, or None while the admin API is away (the manager killed, restarting, or busy)."""
        if self.tier.manager_down or self.crashed:
            return None
        if not self.tier.proc.alive():
            self.crashed = (f"`cumulo db run` (pid {self.tier.proc.pid}) exited with {self.tier.proc.returncode} on "
                            f"its own:\n{self.tier.proc.log_tail(30)}")
            self.failures.append(self.crashed)
            self.say("FAILED " + self.crashed)
            return None
        try:
            r = requests.get(f"http://127.0.0.1:{self.tier.admin_port}/status", timeout=1.5)
            s = r.json() if r.status_code == 200 else None
            return s if isinstance(s, dict) and isinstance(s.get("instances"), list) else None
        except (requests.RequestException, ValueError):
            return None

    def wait_status(self, predicate, timeout: float) -> dict | None:
        deadline = now() + timeout
        while now() < deadline and not self.crashed:
            s = self.status()
            if s is not None and predicate(s):
                return s
            time.sleep(0.1)
        return None

    @staticmethod
    def primary_of(s: dict) -> dict | None:
        found = [i for i in s["instances"] if i.get("role") == "primary"]
        return found[0] if len(found) == 1 and found[0].get("name") == s.get("primary") else None

    @staticmethod
    def replicating(s: dict) -> list[dict]:
        return [i for i in s["instances"] if i.get("role") == "replica" and i.get("state") == "running"
                and i.get("io_running") and i.get("sql_running")]

    def primary_ready(self, s: dict) -> bool:
        p = self.primary_of(s)
        return p is not None and p.get("semi_sync") == "on" and bool(self.replicating(s))

    def healthy(self, s: dict) -> bool:
        return self.primary_ready(s) and len(self.replicating(s)) == len(s["instances"]) - 1

    def describe(self, s: dict | None) -> str:
        if s is None:
            return "the admin API does not answer"
        parts = []
        for i in s["instances"]:
            extra = (f"semi_sync {i.get('semi_sync')}" if i.get("role") == "primary" else
                     f"io {i.get('io_running')} sql {i.get('sql_running')}")
            parts.append(f"{i.get('name')}: {i.get('role')} {i.get('state')} pid {i.get('pid')} {extra}"
                         + (f" error {i.get('last_error')!r}" if i.get("last_error") else ""))
        return f"primary {s.get('primary')}, failovers {s.get('failovers')}; " + "; ".join(parts)

    def pid_of(self, name: str, s: dict | None = None) -> int | None:
        """The instance's running mariadbd: the status's PID when given and still that server's, else (faster than
        asking the admin API) the one in its PID file."""
        marker = str(self.tier.dir / name)
        if s is not None:
            pid = next((i.get("pid") for i in s["instances"] if i.get("name") == name), None)
            if isinstance(pid, int) and pid > 0 and process_running(pid, marker):
                return pid
        try:
            pid = int((self.tier.dir / name / "mariadbd.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if process_running(pid, marker) else None

    def first_ack_after(self, t: float) -> float | None:
        found = [a for a in (w.ledger.first_ack_sent_after(t) for w in self.writers) if a is not None]
        return min(found) if found else None

    def wait_writes(self, t: float, timeout: float = RESUME_TIMEOUT_S) -> float | None:
        """Seconds from t to the first acknowledgement of a commit sent after t; None if none within timeout."""
        deadline = t + timeout
        while True:
            a = self.first_ack_after(t)
            if a is not None:
                return a - t
            if now() >= deadline:
                return None
            time.sleep(0.01)

    def fail(self, r: Round, text: str):
        msg = f"round {r.number} ({r.kind}): {text}"
        r.failures.append(msg)
        self.failures.append(msg)
        self.say("FAILED " + msg)

    # -- gates before a fault
    def gate(self, r: Round, what: str, timeout: float = 90.0) -> dict:
        pred = self.healthy if what == "healthy" else self.primary_ready
        s = self.wait_status(lambda s: pred(s) and self.wait_writes(now() - 1.0, 0) is not None, timeout)
        if self.crashed:
            raise Abort(f"round {r.number} ({r.kind}): no manager")
        if s is None:
            last = self.status()
            acks = [w.ledger.acks[-1][1] for w in self.writers if w.ledger.acks]
            last_ack = f"{now() - max(acks):.1f} s ago" if acks else "never"
            want = ("healthy (a primary with semi-sync on, every replica replicating" if what == "healthy" else
                    "ready (a primary with semi-sync on, a replica replicating")
            raise Abort(f"round {r.number} ({r.kind}): the tier did not become {want}, writes acknowledged) within "
                        f"{timeout:.0f} s: {self.describe(last)}; last write acknowledged {last_ack}")
        return s

    # -- faults
    def kill_instance(self, r: Round, name: str, s: dict | None, what: str) -> float | None:
        pid = self.pid_of(name, s)
        if pid is None:
            self.fail(r, f"no running mariadbd found for {name} to kill ({what})")
            return None
        os.kill(pid, signal.SIGKILL)
        t = now()
        r.faults.append(f"kill -9 {what} {name} (pid {pid}) at {t - self.t0:.1f}s")
        self.say(f"round {r.number}: kill -9 {what} {name} (pid {pid})")
        return t

    def primary_fault(self, r: Round, how: str, name: str, at: float, in_sync: bool,
                      bound_s: float | None) -> PrimaryFault:
        f = PrimaryFault(r.number, r.kind, how, name, at, in_sync, bound_s)
        self.primary_faults.append(f)
        return f

    def await_next_write(self, r: Round, f: PrimaryFault) -> float | None:
        took = self.wait_writes(f.at)
        f.next_write_s = took
        if took is None:
            self.fail(r, f"no write was acknowledged within {RESUME_TIMEOUT_S:.0f} s after the {f.how} of primary "
                         f"{f.instance}: {self.describe(self.status())}; {self.log.describe_since(0)}")
        else:
            self.say(f"round {r.number}: writes acknowledged again {took:.2f} s after the {f.how} of {f.instance}")
        return took

    def judge(self, r: Round, f: PrimaryFault):
        if f.next_write_s is None or f.bound_s is None:
            return
        if f.how != "switchover" and f.bound_s == PRIMARY_FAULT_BOUND_S:
            # The candidate first applies what it received and had not applied yet (its apply lag at the fault,
            # seconds after a big transaction): the bound is on the rest, so the catch-up of this failover is
            # added, as it is after a big transaction.
            self.log.poll()
            ev = self.log.first_between("catch_up_done", f.at, f.at + f.next_write_s + 0.5)
            ms = event_ms(ev) if ev else None
            if ms and ms > 1000:
                f.bound_s = PRIMARY_FAULT_BOUND_S + ms / 1000.0
                r.notes.append(f"the candidate's catch-up took {ms:.0f} ms (its apply lag): bound {f.bound_s:.1f} s")
        if f.next_write_s > f.bound_s:
            self.fail(r, f"the writer endpoint accepted writes {f.next_write_s:.2f} s after the {f.how} of primary "
                         f"{f.instance}; with a replica in sync it must within {f.bound_s:.1f} s")

    def commit_big(self, r: Round) -> bool:
        for _ in range(3):
            ok, why = self.big.commit()
            if ok:
                r.notes.append(f"big transaction of {self.big.rows} rows + ballast committed")
                return True
            self.say(f"round {r.number}: the big transaction failed ({why}); retrying")
            self.gate(r, "ready")
        self.fail(r, f"the big transaction could not be committed three times: {why}")
        return False

    # -- rounds
    def round_kill_primary(self, r: Round, big: bool = False):
        s = self.gate(r, "ready")
        if big:
            if not self.commit_big(r):
                return
            s = self.status() or s
        mark = self.log.mark()
        p = s["primary"]
        t = self.kill_instance(r, p, s, "primary")
        if t is None:
            return
        f = self.primary_fault(r, "kill -9", p, t, True, PRIMARY_FAULT_BOUND_S)
        self.await_next_write(r, f)
        if big:
            ev = self.log.wait("catch_up_done", mark, TRIGGER_TIMEOUT_S)
            if ev is None:
                self.fail(r, f"no catch_up_done event within {TRIGGER_TIMEOUT_S:.0f} s of the kill of {p} after a "
                             f"big transaction; {self.log.describe_since(mark)}")
                f.bound_s = None
            else:
                ms = event_ms(ev) or 0.0
                f.bound_s = PRIMARY_FAULT_BOUND_S + ms / 1000.0
                r.notes.append(f"catch_up_done {ev.get('instance')} {ms:.0f} ms")
                if ms <= 1000:
                    r.notes.append("catch-up not longer than 1 s")
        self.judge(r, f)

    def round_kill_primary_big(self, r: Round):
        self.round_kill_primary(r, big=True)

    def round_stop_primary(self, r: Round):
        s = self.gate(r, "ready")
        p = s["primary"]
        pid = self.pid_of(p, s)
        if pid is None:
            self.fail(r, f"no running mariadbd found for primary {p}")
            return
        os.kill(pid, signal.SIGSTOP)
        t = now()
        r.faults.append(f"SIGSTOP primary {p} (pid {pid}) at {t - self.t0:.1f}s")
        self.say(f"round {r.number}: SIGSTOP primary {p} (pid {pid}) for {STOP_PRIMARY_S:.0f} s")
        f = self.primary_fault(r, "SIGSTOP", p, t, True, PRIMARY_FAULT_BOUND_S)
        took = self.wait_writes(t, STOP_PRIMARY_S)
        time.sleep(max(0.0, t + STOP_PRIMARY_S - now()))
        if process_running(pid, str(self.tier.dir / p)):
            os.kill(pid, signal.SIGCONT)
            self.fail(r, f"the stopped primary {p} (pid {pid}) was not fenced (still there {STOP_PRIMARY_S:.0f} s "
                         f"after SIGSTOP); sent SIGCONT")
        else:
            r.notes.append(f"{p} fenced")
        if took is None:
            self.await_next_write(r, f)
        else:
            f.next_write_s = took
            self.say(f"round {r.number}: writes acknowledged again {took:.2f} s after the SIGSTOP of {p}")
        self.judge(r, f)

    def round_kill_replica(self, r: Round):
        s = self.gate(r, "healthy")
        victim = self.rng.choice([i["name"] for i in self.replicating(s)])
        old_pid = self.pid_of(victim, s)
        t = self.kill_instance(r, victim, s, "replica")
        if t is None:
            return
        back = self.wait_status(lambda s: any(i["name"] == victim and i.get("pid") not in (0, old_pid)
                                              for i in self.replicating(s)), RESUME_TIMEOUT_S)
        if back is None:
            self.fail(r, f"replica {victim} was not replicating again within {RESUME_TIMEOUT_S:.0f} s of its kill: "
                         f"{self.describe(self.status())}")
        else:
            r.notes.append(f"{victim} replicating again after {now() - t:.1f} s")

    def round_kill_manager(self, r: Round):
        before = self.gate(r, "healthy")
        pids = {i["name"]: i.get("pid") for i in before["instances"]}
        endpoints = endpoints_pid(before)
        if not endpoints:
            self.fail(r, "the status has no \"endpoints\": {\"pid\": N}: the endpoints do not run in a process of "
                         "their own, so writes cannot go on while `cumulo db run` is down")
        mark = self.log.mark()
        t = now()
        pid = self.tier.kill_manager()
        r.faults.append(f"kill -9 manager (pid {pid}) at {t - self.t0:.1f}s")
        self.say(f"round {r.number}: kill -9 `cumulo db run` (pid {pid}); writing on for {MANAGER_DOWN_S:.0f} s")
        time.sleep(MANAGER_DOWN_S)
        restarted = now()
        # Acknowledged while it was down, counting only commits sent a second after the kill (not those in flight).
        down_rows = sum(sum(a[3] for a in w.ledger.acks if a[0] >= t + 1.0 and a[1] < restarted)
                        for w in self.writers)
        self.manager_down_rows.append(down_rows)
        r.notes.append(f"{down_rows} rows acknowledged while the manager was down")
        if down_rows == 0:
            self.fail(r, f"no write was acknowledged between 1 s after the kill of `cumulo db run` and its restart "
                         f"{MANAGER_DOWN_S:.0f} s later: the writer endpoint must go on without the manager")
        proc = self.tier.restart_manager()
        self.say(f"round {r.number}: `cumulo db run` restarted (pid {proc.pid})")
        after = self.wait_status(lambda s: True, 60)
        if after is None:
            self.fail(r, f"the restarted `cumulo db run` did not serve its admin API within 60 s:\n"
                         f"{proc.log_tail(20)}")
            raise Abort(f"round {r.number}: no manager")
        # Give a wrong failover the time to happen: failover_after plus several monitor intervals.
        time.sleep(3.0)
        after = self.wait_status(lambda s: True, 30) or after
        if after.get("primary") != before.get("primary"):
            self.fail(r, f"the primary changed across the manager's restart: {before.get('primary')} -> "
                         f"{after.get('primary')}")
        if after.get("failovers") != before.get("failovers"):
            self.fail(r, f"status \"failovers\" changed across the manager's restart: {before.get('failovers')} -> "
                         f"{after.get('failovers')} (a failover happened, or the count was not kept)")
        self.log.poll()
        started = self.log.events("failover_started", mark)
        if started:
            self.fail(r, f"the restarted manager began a failover: {started[0]}")
        changed = [f"{i['name']} {pids.get(i['name'])} -> {i.get('pid')}" for i in after["instances"]
                   if i.get("pid") != pids.get(i["name"])]
        if changed:
            self.fail(r, f"servers were not adopted but restarted: {', '.join(changed)}")
        if endpoints:
            new_endpoints = endpoints_pid(after)
            if new_endpoints != endpoints:
                self.fail(r, f"the endpoint process was not adopted: pid {endpoints} -> {new_endpoints}")
        not_adopted = sorted(set(pids) - {str(e.get("instance")) for e in self.log.events("adopted", mark)})
        if not_adopted:
            self.fail(r, f"no adopted event for {', '.join(not_adopted)} after the restart; "
                         f"{self.log.describe_since(mark)}")

    def round_kill_primary_in_rebuild(self, r: Round):
        """A write made on a replica behind the tier's back (an errant transaction: a GTID of the replica's own server
        id that the primary lacks) makes the tier rebuild that replica from the primary; at its `rebuild_started`
        the primary is killed, so the failover runs while the rebuild's dump is under way."""
        s = self.gate(r, "healthy")
        p1 = s["primary"]
        victim = self.rng.choice([i["name"] for i in self.replicating(s)])
        mark = self.log.mark()
        try:
            with self.tier.root(victim) as c:
                query(c, f"INSERT INTO {APP_DB}.errant_probe VALUES (%s, %s)", (r.number, victim))
        except Exception as e:
            self.fail(r, f"cannot write on replica {victim} over its socket: {e!r}")
            return
        r.faults.append(f"errant write on replica {victim} at {now() - self.t0:.1f}s")
        self.say(f"round {r.number}: errant write on replica {victim}")
        errant = self.log.wait("errant", mark, TRIGGER_TIMEOUT_S, instance=victim)
        if errant is None:
            self.fail(r, f"no errant event for {victim} within {TRIGGER_TIMEOUT_S:.0f} s of a write made on it; "
                         f"{self.log.describe_since(mark)}")
            return
        ev = self.log.wait(REBUILD_TRIGGER, mark, TRIGGER_TIMEOUT_S, instance=victim)
        if ev is None:
            self.fail(r, f"no {REBUILD_TRIGGER} event for {victim} within {TRIGGER_TIMEOUT_S:.0f} s of its errant "
                         f"event (its events since: {', '.join(self.log.of_instance(victim, mark)) or 'none'}); "
                         f"{self.log.describe_since(mark)}")
            return
        self.log.poll()
        late = self.log.find("rebuild_done", mark, instance=victim) or self.log.find("rebuild_failed", mark,
                                                                                        instance=victim)
        t = self.kill_instance(r, p1, None, f"primary (at {victim}'s {REBUILD_TRIGGER})")
        if t is None:
            return
        if late:
            self.fail(r, f"the kill of {p1} landed after {victim}'s rebuild ended")
        r.notes.append(f"{victim} errant ({errant.get('gtids')}), {p1} killed as its rebuild began")
        # The third instance was in sync: the failover goes to it while the victim is rebuilt.
        f = self.primary_fault(r, "kill -9", p1, t, True, PRIMARY_FAULT_BOUND_S)
        self.await_next_write(r, f)
        self.judge(r, f)
        done = self.log.wait("rebuild_done", mark, RESUME_TIMEOUT_S, instance=victim)
        failed = self.log.find("rebuild_failed", mark, instance=victim)
        if done is None and failed is None:
            self.fail(r, f"{victim}'s rebuild neither finished nor failed within {RESUME_TIMEOUT_S:.0f} s")
        elif failed is not None:
            # Its source died under the dump: the tier must start it over from the new primary.
            again = self.log.wait("rebuild_done", mark, RESUME_TIMEOUT_S, instance=victim)
            r.notes.append(f"the rebuild from {p1} failed as {p1} died"
                           + ("; rebuilt again" if again else "; NOT rebuilt again"))
            if again is None:
                self.fail(r, f"{victim}'s rebuild failed with its source and was not done again within "
                             f"{RESUME_TIMEOUT_S:.0f} s")

    def round_switchover(self, r: Round):
        """A planned switchover (`POST /switchover`, what `cumulo db switchover` sends) under the writers' load: it must
        succeed, lose nothing (checked at the end with everything else) and cost the writers at most a reconnect."""
        s = self.gate(r, "healthy")
        old = s["primary"]
        t = now()
        try:
            resp = requests.post(f"http://127.0.0.1:{self.tier.admin_port}/switchover", timeout=60)
            body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
        except (requests.RequestException, ValueError) as e:
            self.fail(r, f"POST /switchover failed: {e!r}")
            return
        r.faults.append(f"switchover from {old} at {t - self.t0:.1f}s")
        if resp.status_code != 200:
            self.fail(r, f"the switchover from {old} was refused ({resp.status_code}): {body.get('error', resp.text)}")
            return
        new = body.get("primary")
        self.say(f"round {r.number}: switchover {old} -> {new} in {now() - t:.2f} s")
        if not new or new == old:
            self.fail(r, f"the switchover from {old} answered 200 but named {new!r} as the primary")
        f = self.primary_fault(r, "switchover", old, t, True, PRIMARY_FAULT_BOUND_S)
        self.await_next_write(r, f)
        self.judge(r, f)
        r.notes.append(f"{old} -> {new}")

    def big_then_kill_primary(self, r: Round):
        """A big transaction, then kill -9 of the primary, waiting for the candidate's catch_up_started. Returns
        (old primary, kill time, its PrimaryFault, log mark, the catch_up_started event or None) or None when the
        round could not get that far."""
        s = self.gate(r, "ready")
        if not self.commit_big(r):
            return None
        s = self.status() or s
        mark = self.log.mark()
        p = s["primary"]
        t = self.kill_instance(r, p, s, "primary")
        if t is None:
            return None
        f = self.primary_fault(r, "kill -9", p, t, False, None)
        ev = self.log.wait("catch_up_started", mark, TRIGGER_TIMEOUT_S)
        if ev is None:
            self.fail(r, f"no catch_up_started event within {TRIGGER_TIMEOUT_S:.0f} s of the kill of primary {p}; "
                         f"{self.log.describe_since(mark)}")
        self.log.poll()
        return p, t, f, mark, ev

    def round_kill_candidate(self, r: Round):
        """A big transaction, kill -9 of the primary, and of the promotion candidate at its catch_up_started."""
        got = self.big_then_kill_primary(r)
        if got is None:
            return
        p, t, f, mark, ev = got
        if ev is not None:
            cand = str(ev.get("instance"))
            late = self.log.find("catch_up_done", mark, instance=cand) or self.log.find("failover_done", mark)
            tk = self.kill_instance(r, cand, None, "promotion candidate")
            if tk is not None:
                if late:
                    self.fail(r, f"the kill of candidate {cand} landed after its catch-up ended (the big transaction "
                                 f"did not keep it busy long enough: raise ballast_rows)")
                r.notes.append(f"candidate {cand} killed {tk - t:.2f} s after the primary")
        self.await_next_write(r, f)

    def round_kill_manager_in_failover(self, r: Round):
        """A big transaction, kill -9 of the primary, kill -9 of `cumulo db run` at catch_up_started, restart it:
        the failover must complete."""
        got = self.big_then_kill_primary(r)
        if got is None:
            return
        p, t, f, mark, ev = got
        if ev is None:
            self.await_next_write(r, f)
            return
        late = self.log.find("failover_done", mark)
        pid = self.tier.kill_manager()
        tk = now()
        r.faults.append(f"kill -9 manager (pid {pid}) at {tk - self.t0:.1f}s, during the failover from {p}")
        self.say(f"round {r.number}: kill -9 `cumulo db run` (pid {pid}) during the catch-up of "
                 f"{ev.get('instance')}")
        if late:
            self.fail(r, "the kill of the manager landed after failover_done: not during the failover")
        time.sleep(1.0)
        proc = self.tier.restart_manager()
        self.say(f"round {r.number}: `cumulo db run` restarted (pid {proc.pid})")
        self.await_next_write(r, f)
        done = self.wait_status(lambda s: s.get("primary") not in (None, "", p) and self.primary_of(s) is not None,
                                RESUME_TIMEOUT_S)
        if done is None:
            self.fail(r, f"the failover from {p} did not complete after the manager's restart: "
                         f"{self.describe(self.status())}")
        else:
            r.notes.append(f"failover {p} -> {done['primary']} completed by the restarted manager")

    # -- the whole run
    def setup(self):
        with self.tier.writer() as c:
            for stmt in SCHEMA:
                query(c, stmt)
            self.big.create(c)
        self.log.start()

    def run(self) -> "ChaosRun":
        budget_end = self.t0 + self.opt.time_budget_s
        rounds_end = budget_end - self.opt.verify_budget_s
        self.say(f"seed {self.opt.seed}; rounds: {', '.join(self.opt.rounds)}")
        self.setup()
        for w in self.writers:
            w.start()
        writing_from = now()
        try:
            time.sleep(2.0)
            for n, kind in enumerate(self.opt.rounds, 1):
                if now() > rounds_end:
                    self.failures.append(f"ran out of time: {n - 1} of {len(self.opt.rounds)} rounds done when "
                                         f"the rounds' share of the {self.opt.time_budget_s:.0f} s budget ended")
                    break
                r = Round(n, kind)
                self.rounds.append(r)
                self.say(f"round {n}: {kind}")
                try:
                    getattr(self, f"round_{kind}")(r)
                except Abort as e:
                    self.failures.append(str(e))
                    self.say(f"ABORT {e}")
                    break
                if self.tier.manager_down:  # a round that failed half-way must not leave the tier unmanaged
                    self.tier.restart_manager()
                time.sleep(self.rng.uniform(*self.opt.pause_s))
            if self.tier.manager_down:
                self.tier.restart_manager()
        finally:
            self.stop_writers.set()
            for w in self.writers:
                w.join(timeout=CLIENT_TIMEOUT_S * 3)
            self.writing_s = now() - writing_from
            for w in self.writers:
                if w.crashed:
                    self.failures.append(f"writer {w.ledger.number} ({w.kind}) stopped on an error of the driver: "
                                         f"{w.crashed}")
        try:
            self.verify(max(60.0, budget_end - now()))
        finally:
            self.log.stop()
        self.final_checks()
        return self

    # -- verification
    def verify(self, budget_s: float):
        v = self.verification
        deadline = now() + budget_s
        self.say(f"verifying (at most {budget_s:.0f} s)")
        s = self.wait_status(self.healthy, max(10.0, deadline - now() - 30))
        if s is None:
            s = self.status()
            self.failures.append(f"verification: the tier was not healthy (a primary with semi-sync on, every replica "
                                 f"replicating) in time: {self.describe(s)}")
        names = [i["name"] for i in self.tier.instances]
        primary = s.get("primary") if s else None

        def positions():
            pos = {}
            for name in names:
                try:
                    with self.tier.root(name) as c:
                        raw = query(c, "SELECT @@gtid_current_pos")[0][0]
                    pos[name] = ",".join(sorted(x for x in raw.split(",") if x))
                except Exception as e:
                    pos[name] = f"unreachable: {e!r}"
            return pos

        pos = positions()
        while len(set(pos.values())) > 1 and now() < deadline - 10:
            time.sleep(0.5)
            pos = positions()
        v["gtid"] = pos
        if len(set(pos.values())) > 1:
            self.failures.append("verification: @@gtid_current_pos differs between instances: "
                                 + "; ".join(f"{k} {p}" for k, p in pos.items()))

        acked: set[int] = set()
        in_doubt: set[int] = set()
        rolled_back: set[int] = set()
        for led in self.ledgers():
            for _, _, first, rows in led.acks:
                acked.update(range(first, first + rows))
            for _, first, rows in led.in_doubt:
                in_doubt.update(range(first, first + rows))
            for first, rows in led.rolled_back:
                rolled_back.update(range(first, first + rows))
        v["acked"] = len(acked)
        v["in_doubt"] = len(in_doubt)
        big_acked = [a[2] for a in self.big.ledger.acks]
        big_doubt = [d[1] for d in self.big.ledger.in_doubt]

        present: dict[str, set[int]] = {}
        lost: dict[str, list[int]] = {}
        for name in names:
            try:
                with self.tier.root(name) as c:
                    ids = {row[0] for row in query(c, f"SELECT id FROM {APP_DB}.writes")}
                    partial = query(c, f"SELECT txn, MAX(n), COUNT(*) FROM {APP_DB}.writes GROUP BY txn "
                                       f"HAVING COUNT(*) <> MAX(n) LIMIT 10")
                    ballast = query(c, f"SELECT v, COUNT(*) FROM {APP_DB}.ballast GROUP BY v")
                    errant = query(c, f"SELECT round, instance FROM {APP_DB}.errant_probe")
            except Exception as e:
                self.failures.append(f"verification: cannot read {name} over its socket: {e!r}")
                continue
            present[name] = ids
            missing = sorted(acked - ids)
            lost[name] = missing
            if missing:
                self.failures.append(f"verification: {len(missing)} acknowledged rows missing on {name} "
                                     f"({'primary' if name == primary else 'replica'}), e.g. "
                                     + ", ".join(f"{i} (writer {i // ID_SPAN})" for i in missing[:8]))
            if errant:
                self.failures.append(f"verification: errant writes survived on {name} (round, replica written): "
                                     f"{list(errant)}")
            if partial:
                self.failures.append(f"verification: half-applied transactions on {name} (txn, size, rows "
                                     f"present): {list(partial)}")
            phantom = sorted(rolled_back & ids)
            if phantom:
                self.failures.append(f"verification: {len(phantom)} rows of transactions that failed before COMMIT "
                                     f"exist on {name}, e.g. {phantom[:8]}")
            if len(ballast) > 1:
                self.failures.append(f"verification: the ballast table on {name} is half updated: {list(ballast)}")
            elif ballast:
                v_now = ballast[0][0]
                allowed = {big_acked[-1]} if big_acked else {0}
                allowed |= {d for d in big_doubt if not big_acked or d > big_acked[-1]}
                if v_now not in allowed:
                    self.failures.append(f"verification: the ballast on {name} holds the update of transaction "
                                         f"{v_now}, not the last acknowledged one ({sorted(allowed)})")
        v["lost"] = {k: len(m) for k, m in lost.items()}
        v["lost_rows"] = len(set().union(*lost.values())) if lost else None
        if present:
            union = set().union(*present.values())
            for name, ids in present.items():
                if ids != union:
                    self.failures.append(f"verification: {name} lacks {len(union - ids)} rows other instances hold, "
                                         f"e.g. {sorted(union - ids)[:8]}")
            ref = present.get(primary) or next(iter(present.values()))
            v["in_doubt_present"] = len(in_doubt & ref)

    def final_checks(self):
        normal = sum(w.ledger.acked_rows() for w in self.writers)
        rate = normal / self.writing_s if self.writing_s else 0.0
        self.verification["rows_per_s"] = rate
        if rate < self.opt.min_rows_per_s:
            self.failures.append(f"throughput: {rate:.0f} acknowledged rows/s over {self.writing_s:.0f} s of writing "
                                 f"(big transactions not counted); at least {self.opt.min_rows_per_s:.0f} required")
        long_ones = [ms for ms in self.catch_up_ms() if ms > 1000]
        if len(long_ones) < self.opt.min_long_catch_ups:
            self.failures.append(f"the log shows {len(long_ones)} catch_up_done events with ms > 1000, at least "
                                 f"{self.opt.min_long_catch_ups} required (catch_up_done ms seen: "
                                 f"{[round(x) for x in self.catch_up_ms()]}); {self.log.describe_since(0)}")

    # -- the report
    def catch_up_ms(self) -> list[float]:
        return [ms for ms in (event_ms(e) for e in self.log.events("catch_up_done")) if ms is not None]

    def counts(self) -> dict[str, int]:
        c = collections.Counter(r.kind for r in self.rounds)
        return {k: c.get(k, 0) for k in KINDS}

    def primary_kills(self) -> int:
        return sum(1 for f in self.primary_faults if f.how == "kill -9")

    def primary_stops(self) -> int:
        return sum(1 for f in self.primary_faults if f.how == "SIGSTOP")

    def next_write_times(self) -> list[float]:
        return [f.next_write_s for f in self.primary_faults if f.next_write_s is not None]

    def summary(self) -> str:
        v = self.verification
        lines = [f"database tier chaos: seed {self.opt.seed}, {len(self.rounds)} rounds in {now() - self.t0:.0f} s, "
                 f"writers: " + ", ".join(w.kind for w in self.writers)
                 + f"; big transactions of {self.big.rows} rows + an UPDATE of {self.big.ballast_rows} keyless rows",
                 "",
                 " #  kind                      faults"]
        for r in self.rounds:
            lines.append(f"{r.number:2}  {r.kind:25} {'; '.join(r.faults) or '-'}")
            for note in r.notes:
                lines.append(f"{'':30}{note}")
        lines += ["", "primary faults      next write  bound    in sync"]
        for f in self.primary_faults:
            nw = f"{f.next_write_s:6.2f} s" if f.next_write_s is not None else "     n/a"
            bound = f"{f.bound_s:4.1f} s" if f.bound_s is not None else "   - "
            goal = "" if f.next_write_s is None or f.next_write_s <= PRIMARY_FAULT_GOAL_S else "  (goal 2 s missed)"
            lines.append(f"  r{f.round_no:<2} {f.how:8} {f.instance:6} {nw}    {bound}  "
                         f"{'yes' if f.in_sync else 'no'}{goal}")
        times = self.next_write_times()
        in_sync_times = [f.next_write_s for f in self.primary_faults if f.in_sync and f.next_write_s is not None]
        counts = self.counts()
        acked_normal = sum(w.ledger.acked_rows() for w in self.writers)
        acked_big = self.big.ledger.acked_rows()
        doubt = sum(d[2] for led in self.ledgers() for d in led.in_doubt)
        errors = collections.Counter()
        for led in self.ledgers():
            errors.update(led.errors)
        lines += [
            "",
            "rounds by kind:      " + ", ".join(f"{k} {n}" for k, n in counts.items()),
            f"primary faults:      {self.primary_kills()} kill -9, {self.primary_stops()} SIGSTOP",
            f"rows acknowledged:   {acked_normal} by the writers + {acked_big} in "
            f"{len(self.big.ledger.acks)} big transactions",
            f"rows/s acknowledged: {v.get('rows_per_s', 0):.0f} over {self.writing_s:.0f} s (writers only: "
            + ", ".join(f"{w.kind} {w.ledger.acked_rows() / max(self.writing_s, 1e-9):.0f}" for w in self.writers)
            + ")",
            f"rows in doubt:       {doubt}" + (f" ({v['in_doubt_present']} of them committed)"
                                               if "in_doubt_present" in v else ""),
            f"rows lost:           {v.get('lost_rows', 'not verified')}"
            + (f"  (per instance: {v['lost']})" if v.get("lost") else ""),
            "time to next write:  " + (f"median {statistics.median(times):.2f} s, worst {max(times):.2f} s"
                                       if times else "n/a")
            + (f"; in sync: median {statistics.median(in_sync_times):.2f} s, worst {max(in_sync_times):.2f} s, "
               f"{sum(1 for x in in_sync_times if x <= PRIMARY_FAULT_GOAL_S)} of {len(in_sync_times)} within the "
               f"2 s goal" if in_sync_times else ""),
            "catch_up_done ms:    " + (", ".join(f"{ms:.0f}" for ms in self.catch_up_ms()) or "none logged"),
            "manager down:        " + (", ".join(f"{n} rows acknowledged" for n in self.manager_down_rows) or "-"),
            "gtid_current_pos:    " + ("; ".join(f"{k} {p}" for k, p in v.get("gtid", {}).items()) or "-"),
            "client errors:       " + (", ".join(f"{k} x{n}" for k, n in errors.most_common(6)) or "none"),
        ]
        if self.failures:
            lines += ["", f"FAILED CHECKS ({len(self.failures)}):"] + [f"  - {f}" for f in self.failures]
        else:
            lines += ["", "every check passed"]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# schedules and the tier's configuration


def short_schedule(rng: random.Random) -> list[str]:
    """18 rounds in a shuffled order, with 12 kill -9 of the current primary, two SIGSTOP of it and a planned
    switchover."""
    rounds = (["kill_primary"] * 5 + ["kill_primary_big"] * 3 + ["stop_primary"] * 2
              + ["kill_primary_in_rebuild"] * 2 + ["kill_replica"] * 2
              + ["kill_candidate", "kill_manager_in_failover", "kill_manager", "switchover"])
    rng.shuffle(rounds)
    return rounds


def soak_schedule(rng: random.Random, rounds: int) -> list[str]:
    """Every kind at least twice, the rest drawn with weights leaning to plain kills of the primary."""
    base = [k for k in KINDS for _ in range(2)]
    weights = {"kill_primary": 5, "kill_primary_big": 3, "stop_primary": 2, "kill_primary_in_rebuild": 2,
               "kill_candidate": 1, "kill_manager_in_failover": 1, "kill_replica": 2, "kill_manager": 2,
               "switchover": 1}
    rest = rng.choices(list(weights), weights=list(weights.values()), k=max(0, rounds - len(base)))
    picked = (base + rest)[:rounds]
    rng.shuffle(picked)
    return picked


def chaos_tier(procs, tmp: Path) -> tuple[DbTier, Path]:
    """Three instances in zones a, b, c, failover_after 1s, monitor_interval 200ms, the default connect_timeout, and
    the tier's log in TMP/tier.log (every incarnation appends)."""
    log_path = tmp / "tier.log"
    tier = DbTier(procs, tmp, zones=("a", "b", "c"), failover_after="1s", monitor_interval="200ms",
                  log_file=str(log_path))
    return tier, log_path


def seed_from_env() -> int:
    return int(os.environ.get("CUMULO_CHAOS_SEED") or random.SystemRandom().randrange(1, 10**6))


# ---------------------------------------------------------------------------------------------------------------
# the soak (bench/db-chaos.sh)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Chaos rounds against `cumulo db run`, then every acknowledged row "
                                             "checked on every instance. Exit status 1 when any check failed.")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--schedule", default=None,
                    help="comma-separated round kinds to run in this order instead of --rounds drawn at random "
                         f"({', '.join(KINDS)})")
    ap.add_argument("--seed", type=int, default=None, help="default: $CUMULO_CHAOS_SEED or random")
    ap.add_argument("--minutes", type=float, default=20.0, help="time budget of rounds and verification")
    ap.add_argument("--big-rows", type=int, default=20000, help="rows of each big transaction")
    ap.add_argument("--ballast-rows", type=int, default=5500,
                    help="keyless rows each big transaction updates (a replica applies that in rows^2/2 reads)")
    ap.add_argument("--min-rows-per-s", type=float, default=1000.0)
    ap.add_argument("--dir", default=None, help="work directory (default: a new one in $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)

    from support import ProcessSet  # the helpers of the integration tests, beside this file

    seed = args.seed if args.seed is not None else seed_from_env()
    rng = random.Random(seed)
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="cumulo-chaos-"))
    base.mkdir(parents=True, exist_ok=True)
    procs = ProcessSet(base)
    tier = None
    code = 1
    try:
        tier, log_path = chaos_tier(procs, base)
        schedule = args.schedule.split(",") if args.schedule else soak_schedule(rng, args.rounds)
        unknown = [k for k in schedule if k not in KINDS]
        if unknown:
            print(f"db_chaos: unknown round kinds {unknown} (known: {', '.join(KINDS)})", file=sys.stderr)
            return 2
        opts = ChaosOptions(rounds=schedule, seed=seed, big_rows=args.big_rows,
                            ballast_rows=args.ballast_rows, time_budget_s=args.minutes * 60,
                            verify_budget_s=min(300.0, args.minutes * 20), min_rows_per_s=args.min_rows_per_s)
        run = ChaosRun(tier, log_path, opts)
        try:
            run.run()
        finally:
            print(run.summary(), flush=True)
        code = 1 if run.failures else 0
    except BaseException as e:  # pytest.fail from the helpers raises a BaseException
        print(f"db_chaos: {getattr(e, 'msg', None) or repr(e)}", file=sys.stderr)
        print(procs.report(), file=sys.stderr)
    finally:
        if tier is not None:
            from db_support import stop_tier
            stop_tier(tier)
        procs.stop_all()
        if args.keep or code:
            print(f"work directory kept: {base}", file=sys.stderr)
        else:
            import shutil
            shutil.rmtree(base, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
