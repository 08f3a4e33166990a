"""Elastic IPs (docs/elastic-ips.md) on real namespaces: a client in the outside namespace sends a stream of
requests (a new connection each) to the elastic IP while its holder is killed, stopped and continued, and while
the keeper itself is killed; `ip monitor` in both gateways' namespaces shows the address never on two at once,
and the client's log shows the gap of each move, no failure of a request sent after a move, and no answer from
an earlier holder after a newer one answered (every response names its gateway and lease term). The long run
of the same scenario is bench/eip-chaos.py."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from eip_support import EIP, AddressWatch, Client, EipStack, analyze, inject
from net_support import in_ns

pytestmark = pytest.mark.time_limit(300)

ASK_DNS = """
import sys, dns.message, dns.query
q = dns.message.make_query(sys.argv[2], "A")
print(sorted(r.to_text() for rrset in dns.query.udp(q, sys.argv[1], port=53, timeout=2).answer for r in rrset))
"""


def test_the_elastic_ip_moves_on_kill_and_stop_without_two_holders_and_survives_the_keepers_death(tmp_path):
    from dns_support import dns  # noqa: F401 (fails with the apt-get line when dnspython is missing)
    (tmp_path / "dns.yaml").write_text(json.dumps(
        {"zones": [{"origin": "site.test", "records": [{"name": "@", "type": "ALIAS", "elastic_ip": "web"}]}]}))
    stack = EipStack(tmp_path, f"ei{os.getpid() % 100000}", dns_config=str(tmp_path / "dns.yaml"))
    watch = client = None
    try:
        stack.start()
        assert stack.status["network"]["check"] == "passed", stack.status["network"]
        # The apex names the elastic IP, whoever holds it.
        r = in_ns(stack.outside, "/usr/bin/python3", "-c", ASK_DNS, stack.addr("dns"), "site.test")
        assert r.stdout.strip() == f"['{EIP}']", r.stdout + r.stderr

        watch = AddressWatch([stack.ns("gateway-a"), stack.ns("gateway-b")], EIP, tmp_path)
        first_holder, first_term, _ = stack.lease()
        assert sum(watch.initial.values()) == 1 and watch.initial[stack.ns(first_holder)], watch.initial
        client = Client(stack)
        faults: list[str] = []
        outcomes = [inject(stack, watch, kind, faults) for kind in ("kill", "stop", "keeper", "kill", "stop")]
        stack.wait_calm()

        # A planned move: drained first, then moved, one term up.
        holder, term, _ = stack.lease()
        other = "gateway-b" if holder == "gateway-a" else "gateway-a"
        t = time.time()
        r = stack.cli("eip", "move", "web", "--to", other)
        faults.append(f"{t:.6f} planned {watch.added_after(stack.ns(other), t) or t:.6f}")
        assert r.returncode == 0 and f"web moved to {other} (term {term + 1})" in r.stdout, r.stdout + r.stderr
        assert stack.lease()[:2] == (other, term + 1)
        stack.wait_calm()
        client.stop()
        client = None
        watch.stop()

        # Never two holders, as the kernels saw it.
        worst, when = watch.max_holders()
        assert worst <= 1, when
        (tmp_path / "faults.txt").write_text("\n".join(faults) + "\n")
        summary = analyze(tmp_path / "client.jsonl", tmp_path / "faults.txt")
        print(json.dumps({"outcomes": outcomes, "summary": summary}, indent=1))
        moves = [e for e in summary["faults"] if e["kind"] in ("kill", "stop")]
        assert len(moves) == 4, summary["faults"]
        for e in moves:
            assert e["gap"] is not None and e["gap"] < 2.0, e  # the must: under 2 s (goal: under 1 s)
        # No request sent after a move, a keeper's death or a continue failed (one a later fault cut is that
        # fault's, in flight).
        for e in summary["faults"]:
            if e["moved_at"] is not None:
                assert e["failed_after_move"] == 0, e
            else:
                assert e["kind"] in ("keeper", "cont") and e["failed"] == 0, e
        assert summary["overlap_certain"] == 0, summary["overlaps"]
        # Terms only go up: one per move (kill, stop, kill, stop, planned), none for the keeper's restart.
        assert stack.lease()[1] == first_term + 5, (first_term, stack.lease())
        keeper = next(o for o in outcomes if o["kind"] == "keeper")
        assert keeper["after"][:2] == (keeper["holder"], keeper["term"]), keeper
        assert "moved" in stack.cli("eip", "list").stdout
    finally:
        if client:
            client.stop()
        if watch:
            watch.stop()
        stack.stop()
    assert stack.leftovers() == []


def test_eip_commands_explain_what_is_wrong(tmp_path):
    cumulo = str(__import__("support").binary("cumulo"))
    r = subprocess.run([cumulo, "eip", "list", "--state-dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1 and "is a stack with elastic_ips running here?" in r.stderr, r.stderr
    bad = tmp_path / "eip.yaml"
    bad.write_text("stack: s\nadmin: 10.0.0.1:1\n")
    r = subprocess.run([cumulo, "eip", "run", "-c", str(bad), "--check"], capture_output=True, text=True)
    assert r.returncode == 2 and "expected a loopback address" in r.stderr, r.stderr
