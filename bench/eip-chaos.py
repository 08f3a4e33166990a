#!/usr/bin/python3
"""The long elastic IP run (docs/elastic-ips.md, "Tests"): the scenario of tests/integration/test_eip.py with many
faults at random moments, some of them while the previous move is still settling (a gateway restarting, the
keeper just back): kill -9 and SIGSTOP of the holder, and kill -9 of the keeper. All along, a client in the
outside namespace sends a stream of requests to the elastic IP and `ip monitor` watches both gateways'
namespaces. At the end: the most holders at any time (must be 1), each move's gap, failures of requests sent
after a move (must be 0), answers from an earlier holder after a newer one (must be 0).

  sudo /usr/bin/python3 bench/eip-chaos.py [--faults 50] [--seed N] [--rate 200] [--out DIR]

Needs root, iproute2 and nftables, the release build (scripts/build.sh release) and dnspython. Exit 0 when every
check holds."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from eip_support import EIP, AddressWatch, Client, EipStack, analyze, inject  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--faults", type=int, default=50)
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--rate", type=int, default=200, help="client requests a second (200)")
    p.add_argument("--out", help="directory for the logs (default: a new temporary one)")
    p.add_argument("--kinds", default="kill,stop,keeper,kill-keeper",
                   help="faults to draw from: kill (kill -9 of the holder), stop (SIGSTOP, SIGCONT later), keeper "
                        "(kill -9 of the keeper), kill-keeper (the holder, then the keeper 0-300 ms later: while it "
                        "decides or moves) (default: all four, weighted 4:4:2:2)")
    p.add_argument("--calm", action="store_true",
                   help="wait 2 s after the stack is calm before each fault (a benchmark of single moves) instead "
                        "of a random pause of 0 to 1.5 s")
    a = p.parse_args()
    rng = random.Random(a.seed)
    out = Path(a.out or tempfile.mkdtemp(prefix="cumulo-eip-chaos-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"seed {a.seed}, {a.faults} faults, logs in {out}", flush=True)
    stack = EipStack(out, f"ch{os.getpid() % 100000}")
    watch = client = None
    ok = True
    try:
        stack.start()
        watch = AddressWatch([stack.ns("gateway-a"), stack.ns("gateway-b")], EIP, out)
        # No shared segment: the router routes the address via the holder's own address, so no ARP ever names
        # the elastic IP. A capture on every link of the router shows it (tcpdump, when installed).
        capture = None
        if shutil.which("tcpdump"):
            capture = subprocess.Popen(["ip", "netns", "exec", f"cu-{stack.name}.router", "tcpdump", "-i", "any", "-n",
                                        "-l", "-tt", "arp"], stdout=open(out / "arp.txt", "w"),
                                       stderr=subprocess.DEVNULL)
        client = Client(stack, rate=a.rate)
        faults: list[str] = []
        outcomes = []
        for i in range(a.faults):
            kinds = a.kinds.split(",")
            kind = rng.choices(kinds, weights=[{"kill": 4, "stop": 4, "keeper": 2, "kill-keeper": 2}[k] for k in kinds])[0]
            # Sometimes the next fault comes as soon as the stack is calm again, sometimes a little later.
            time.sleep(2.0 if a.calm else rng.choice([0, 0, 0.2, 0.5, 1.5]))
            o = inject(stack, watch, kind, faults, stop_for=rng.choice([0.3, 1.0, 3.0]),
                       keeper_after=rng.choice([0, 0.05, 0.1, 0.15, 0.2, 0.3]))
            outcomes.append(o)
            print(f"{i + 1:3d} {kind:6s} {o['holder']} term {o['term']} -> {o['after'][0]} term {o['after'][1]}"
                  + (f"  (moved after {o['moved_after'] * 1000:.0f} ms)" if "moved_after" in o else ""), flush=True)
        stack.wait_calm()
        client.stop()
        client = None
        watch.stop()
        if capture:
            capture.terminate()
            capture.wait(timeout=5)
            arp = (out / "arp.txt").read_text().splitlines()
            print(f"ARP on the router's links: {len(arp)} packets, {sum(EIP in l for l in arp)} naming {EIP}")
        worst, when = watch.max_holders()
        (out / "faults.txt").write_text("\n".join(faults) + "\n")
        summary = analyze(out / "client.jsonl", out / "faults.txt")
        (out / "summary.json").write_text(json.dumps({"outcomes": outcomes, "summary": summary}, indent=1))
        moves = [f for f in summary["faults"] if f["kind"] in ("kill", "stop", "kill-keeper")]
        gaps = {k: [f["gap"] for f in moves if f["kind"] == k and f["gap"] is not None]
                for k in ("kill", "stop", "kill-keeper")}
        after = sum(f["failed_after_move"] or 0 for f in moves)
        quiet = sum(f["failed"] for f in summary["faults"] if f["kind"] in ("keeper", "cont"))
        print(f"\nrequests {summary.get('requests')}, most holders at once {worst}, failed after a move {after}, "
              f"failed after a keeper kill or a continue {quiet} (requests sent then, failed before the next fault), "
              f"overlaps certain {summary['overlap_certain']} (all {summary['overlap_count']})")
        for k, g in gaps.items():
            if g:
                print(f"{k:11s} gap: median {statistics.median(g) * 1000:.0f} ms, max {max(g) * 1000:.0f} ms "
                      f"over {len(g)} moves")
        ok = worst <= 1 and after == 0 and quiet == 0 and summary["overlap_certain"] == 0 and all(
            f["gap"] is not None and f["gap"] < 2.0 for f in moves)
        if worst > 1:
            print("TWO HOLDERS:", when)
    finally:
        if client:
            client.stop()
        if watch:
            watch.stop()
        stack.stop()
        left = stack.leftovers()
        if left:
            print("namespaces left behind:", left)
            ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
