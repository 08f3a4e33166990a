#!/usr/bin/python3
"""Self-test of bench/eip_client.py: synthetic logs through the analyzer (the figures a failover bench reports
are checked by hand-counted cases), the response parser, and one short live run against a local server.

  /usr/bin/python3 bench/eip_client_selftest.py
"""

import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eip_client  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def ok(sent, ident, took=0.002):
    return {"sent": sent, "done": sent + took, "thread": 0, "status": 200, "id": ident}


def fail(sent, error="refused", took=0.0005):
    return {"sent": sent, "done": sent + took, "thread": 0, "error": error}


def steps(start, stop, step=0.01):
    n = int(round((stop - start) / step))
    return [round(start + i * step, 6) for i in range(n)]


class KillWithTerms(unittest.TestCase):
    """Holder gateway-a (term 7) killed at 101.0, the address seen on gateway-b (term 8) at 101.5."""

    def setUp(self):
        recs = [ok(t, "gateway-a web=7") for t in steps(100.0, 100.99)]
        recs.append(fail(100.995, "timeout", took=0.3))  # in flight at the fault, fails after it
        recs += [fail(t) for t in steps(101.0, 101.5)]  # 50 refused before the move
        recs.append(ok(101.5, "gateway-b web=8", took=0.02))  # first success: done 101.52
        recs.append(ok(101.51, "gateway-a web=7", took=0.02))  # done 101.53, sent before 101.52: overlap
        recs.append(ok(101.55, "gateway-a web=7", took=0.01))  # sent after b answered: certain overlap
        recs.append(fail(101.6, "reset"))  # after the move
        recs += [ok(t, "gateway-b web=8") for t in steps(101.7, 102.0)]
        faults = [{"time": 101.0, "kind": "kill", "moved_at": 101.5}]
        self.s = eip_client.analyze(recs, faults)

    def test_counts(self):
        s = self.s
        self.assertEqual(s["requests"], 99 + 1 + 50 + 3 + 1 + 30)
        self.assertEqual(s["failed"], 1 + 50 + 1)
        self.assertEqual(s["failures"], {"refused": 50, "timeout": 1, "reset": 1})
        self.assertEqual(s["ids"], {"gateway-a web=7": 101, "gateway-b web=8": 31})

    def test_fault(self):
        f = self.s["faults"][0]
        self.assertAlmostEqual(f["gap"], 0.52, places=6)
        self.assertAlmostEqual(f["moved_after"], 0.5, places=6)
        self.assertEqual(f["failed_before_move"], 50)
        self.assertEqual(f["failed_after_move"], 1)
        self.assertEqual(f["failed_in_flight"], 1)
        self.assertEqual(f["first_ok_id"], "gateway-b web=8")
        self.assertEqual(f["failures"], {"refused": 50, "reset": 1, "timeout": 1})
        self.assertEqual(f["overlaps"], 2)
        self.assertAlmostEqual(f["slowest_ok"], 0.02, places=6)

    def test_overlaps(self):
        s = self.s
        self.assertEqual(s["overlap_count"], 2)
        self.assertEqual(s["overlap_certain"], 1)
        first, second = s["overlaps"]
        self.assertEqual((first["why"], first["certain"]), ("lower term", False))
        self.assertEqual((second["why"], second["certain"]), ("lower term", True))
        self.assertEqual(second["newer_id"], "gateway-b web=8")
        self.assertAlmostEqual(second["newer_done"], 101.52, places=6)


class StopContWithoutTerms(unittest.TestCase):
    """gateway-a stopped at 10.0, gateway-b holds the address from 13.0; gateway-a continued at 15.0 and takes
    the address back at 15.2 (a higher priority): a move after an event, not an overlap."""

    def recs(self):
        recs = [ok(t, "gateway-a") for t in steps(9.0, 9.99)]
        recs += [fail(t, "timeout", took=2.0) for t in (10.0, 10.01, 10.02, 10.03)]  # stuck on the stopped holder
        recs += [fail(t, "connect-timeout", took=2.0) for t in (12.05, 12.1)]
        recs += [ok(t, "gateway-b") for t in steps(13.0, 15.0)]
        recs.append(ok(15.1, "gateway-b", took=0.15))  # done 15.25, after a's first answer at 15.202
        recs += [ok(t, "gateway-a") for t in steps(15.2, 16.0)]
        return recs

    def test_with_cont_event(self):
        faults = [{"time": 10.0, "kind": "stop", "moved_at": 13.0}, {"time": 15.0, "kind": "cont", "moved_at": 15.2}]
        s = eip_client.analyze(self.recs(), faults)
        stop, cont = s["faults"]
        self.assertAlmostEqual(stop["gap"], 3.002, places=6)
        self.assertEqual(stop["failed_before_move"], 6)
        self.assertEqual(stop["failed_after_move"], 0)
        self.assertEqual(stop["failures"], {"timeout": 4, "connect-timeout": 2})
        self.assertEqual(cont["failed"], 0)
        self.assertEqual(cont["failed_after_move"], 0)
        # b's slow response finishing after a's comeback is the one overlap, and not a certain one
        self.assertEqual(s["overlap_count"], 1)
        self.assertEqual(s["overlaps"][0]["id"], "gateway-b")
        self.assertFalse(s["overlaps"][0]["certain"])

    def test_without_cont_event(self):
        # The same log with only the stop: gateway-a answering again after b is an earlier holder's answer.
        s = eip_client.analyze(self.recs(), [{"time": 10.0, "kind": "stop", "moved_at": None}])
        f = s["faults"][0]
        self.assertIsNone(f["failed_after_move"])
        self.assertIsNone(f["failed_before_move"])
        self.assertEqual(f["failed"], 6)
        self.assertEqual(s["overlap_count"], 80)
        self.assertEqual(s["overlap_certain"], 80)  # all sent after b first answered (13.002)
        self.assertEqual(s["overlaps"][0]["why"], "earlier holder")

    def test_same_term_two_holders(self):
        recs = [ok(1.0, "gateway-a web=3"), ok(1.1, "gateway-b web=3")]
        s = eip_client.analyze(recs, [])
        self.assertEqual(s["overlap_count"], 1)
        self.assertEqual(s["overlaps"][0]["why"], "same term, other holder")

    def test_no_success_after_fault(self):
        recs = [ok(1.0, "a"), fail(2.0), fail(2.5, "status 503")]
        recs[-1] = {"sent": 2.5, "done": 2.6, "thread": 1, "status": 503, "id": "a"}
        s = eip_client.analyze(recs, [{"time": 2.0, "kind": "kill", "moved_at": None}])
        f = s["faults"][0]
        self.assertIsNone(f["gap"])
        self.assertEqual(f["failures"], {"refused": 1, "status 503": 1})


class CutByTheNextEvent(unittest.TestCase):
    def test_a_failure_after_the_next_event_belongs_to_it(self):
        # Sent after the first move, cut by the second fault 1 ms later: in flight for the second, not a failure
        # after the first move. One that failed before the second fault stays the first's.
        recs = [ok(1.0, "a web=1"), fail(2.0), ok(2.2, "b web=2"),
                fail(2.999, "closed", took=0.002),  # done 3.001, after the fault at 3.0
                fail(2.5, "reset", took=0.1),  # done 2.6, before it
                fail(3.0), ok(3.2, "a web=3")]
        recs.sort(key=lambda r: r["sent"])
        s = eip_client.analyze(recs, [{"time": 2.0, "kind": "kill", "moved_at": 2.1},
                                      {"time": 3.0, "kind": "kill", "moved_at": 3.1}])
        first, second = s["faults"]
        self.assertEqual(first["failed_after_move"], 1)
        self.assertEqual(first["failures"], {"refused": 1, "reset": 1})
        self.assertEqual(second["failed_in_flight"], 1)
        self.assertEqual(second["failed_before_move"], 1)


class Files(unittest.TestCase):
    def test_faults_file_and_cli(self):
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, "run.jsonl")
            with open(log, "w") as f:
                for r in [ok(1.0, "a"), fail(2.0), ok(2.4, "b"), fail(3.0, "reset"), ok(3.1, "a")]:
                    f.write(json.dumps(r) + "\n")
            faults = os.path.join(d, "faults")
            with open(faults, "w") as f:
                f.write("# time kind moved\n\n2.0 kill 2.3\n3.0 stop -   # no move seen\n")
            self.assertEqual(eip_client.load_faults(faults), [
                {"time": 2.0, "kind": "kill", "moved_at": 2.3}, {"time": 3.0, "kind": "stop", "moved_at": None}])
            out = subprocess.run([sys.executable, os.path.join(HERE, "eip_client.py"), "--analyze", log, "--faults",
                                  faults, "--json"], check=True, capture_output=True, text=True).stdout
            s = json.loads(out)
            self.assertEqual([f["gap"] for f in s["faults"]], [0.402, 0.102])
            self.assertEqual(s["overlap_count"], 0)  # a answers again only after the second event
            table = subprocess.run([sys.executable, os.path.join(HERE, "eip_client.py"), "--analyze", log, "--faults",
                                    faults], check=True, capture_output=True, text=True).stdout
            self.assertIn("overlaps: none", table)
            self.assertIn("requests 5: ok 3, failed 2 (refused 1, reset 1)", table)

    def test_bad_faults_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".faults") as f:
            f.write("12.5\n")
            f.flush()
            with self.assertRaises(SystemExit):
                eip_client.load_faults(f.name)


class Responses(unittest.TestCase):
    def test_header_wins_over_body(self):
        r = b"HTTP/1.1 200 OK\r\nCumulo-Gateway: gateway-a web=7\r\nContent-Length: 4\r\n\r\nbody"
        self.assertEqual(eip_client.parse_response(r, "cumulo-gateway"), (200, "gateway-a web=7"))

    def test_body_first_line(self):
        r = b"HTTP/1.0 503 Service Unavailable\r\n\r\ngateway-b\nmore\n"
        self.assertEqual(eip_client.parse_response(r, "cumulo-gateway"), (503, "gateway-b"))

    def test_short_and_bad(self):
        for r in (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", b"HTTP/1.1 200 OK\r\n", b"SSH-2.0\r\n\r\n"):
            with self.assertRaises(ValueError):
                eip_client.parse_response(r, "x")

    def test_split_term(self):
        self.assertEqual(eip_client.split_term("gateway-a web=7"), ("gateway-a", 7))
        self.assertEqual(eip_client.split_term("gateway-a"), ("gateway-a", None))
        self.assertEqual(eip_client.split_term("a=b c"), ("a=b c", None))


class Live(unittest.TestCase):
    """Real load on loopback: a server naming itself (closed loop, then open loop), then the port closed."""

    def test_load_then_refused(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self.send_response(200)
                self.send_header("cumulo-gateway", "gateway-t web=1")
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            def log_message(self, *args):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = srv.server_address[1]
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "a.jsonl")
            cmd = [sys.executable, os.path.join(HERE, "eip_client.py"), "--url", f"http://127.0.0.1:{port}/x",
                   "--duration", "0.5", "--concurrency", "2", "--out", out]
            subprocess.run(cmd, check=True, capture_output=True)
            opened = cmd[:-2] + ["--rate", "100", "--out", os.path.join(d, "r.jsonl")]
            opened[opened.index("--duration") + 1] = "0.3"
            subprocess.run(opened, check=True, capture_output=True)
            r = eip_client.load_records(opened[-1])
            srv.shutdown()
            srv.server_close()
            cmd[-1] = os.path.join(d, "b.jsonl")
            cmd[cmd.index("--duration") + 1] = "0.2"
            subprocess.run(cmd, check=True, capture_output=True)
            a = eip_client.load_records(out)
            b = eip_client.load_records(cmd[-1])
        self.assertGreater(len(a), 10)
        self.assertTrue(all(r.get("status") == 200 and r["id"] == "gateway-t web=1" for r in a))
        self.assertEqual({r["thread"] for r in a}, {0, 1})
        self.assertTrue(all(r["sent"] <= r["done"] for r in a))
        self.assertTrue(b and all(r.get("error") == "refused" for r in b))
        # the open loop: one request every 10 ms, numbered, whatever the others do
        self.assertTrue(25 <= len(r) <= 35, len(r))
        self.assertEqual(sorted(x["seq"] for x in r), list(range(len(r))))
        self.assertTrue(all(x.get("status") == 200 and x["id"] == "gateway-t web=1" for x in r))


if __name__ == "__main__":
    unittest.main(verbosity=1)
