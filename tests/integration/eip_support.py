"""Elastic IP scenarios (docs/elastic-ips.md) shared by tests/integration/test_eip.py (a short run) and
bench/eip-chaos.py (the long one): a stack with a gateway in each zone and one elastic IP, a client in the
outside namespace sending a stream of requests to it (bench/eip_client.py, a new connection each), faults on
the holder (kill -9, SIGSTOP) and on the keeper, `ip monitor address` in every gateway's namespace all along,
and the client's log analysed afterwards."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from support import REPO, Process, binary, free_port, wait_for, wait_stack_running
from net_support import netns_list, require_network_tools

EIP = "198.51.100.10"
CLIENT = REPO / "bench" / "eip_client.py"


def stack_yaml(name: str, ports: dict, dns_config: str | None = None) -> str:
    dns = f"dns:\n  config: {dns_config}\n  listen: 0.0.0.0:53\n" if dns_config else ""
    return f"""name: {name}
zones: [a, b]
control:
  listen: 127.0.0.1:{ports['control']}
gateway:
  listen: 0.0.0.0:80
  admin: 127.0.0.1:{ports['admin']}
  zones: [a, b]
  workers: 1
  drain_timeout: 3s
  health_check: {{path: /healthz, interval: 500ms, timeout: 500ms}}
groups:
  - name: web
    min: 2
    max: 2
    launch_template:
      command: ["{{bin_dir}}/cumulo-webapp", "--listen", "{{host}}:{{port}}", "--zone", "{{zone}}", "--id", "{{instance_id}}"]
      health_check: {{path: /healthz, grace_period: 10s}}
      stop_timeout: 2s
elastic_ips:
  - name: web
    address: {EIP}
    gateways: [gateway-a, gateway-b]
{dns}network:
  cidr: 10.20.0.0/16
"""


class AddressWatch:
    """One `ip -ts monitor address all-nsid` on the host, started before the first fault and read afterwards: every
    add and delete of one address in the watched namespaces, in the order the kernel made them (one netlink
    socket hears every namespace, so its lines are in the kernel's order; the timestamps of separate monitors
    are taken when each is scheduled, and could not order two events a millisecond apart)."""

    LINE = re.compile(r"^\[(\S+)\] \[nsid (\d+)\](Deleted )?\d+: \S+\s+inet (\S+)/32")

    def __init__(self, namespaces: list[str], address: str, directory: Path):
        self.address = address
        for ns in namespaces:
            subprocess.run(["ip", "netns", "set", ns, "auto"], check=True)
        ids = subprocess.run(["ip", "netns", "list-id"], capture_output=True, text=True, check=True).stdout
        self.names = {}
        for line in ids.splitlines():
            m = re.match(r"nsid (\d+) \(iproute2 netns name: (\S+)\)", line)
            if m and m.group(2) in namespaces:
                self.names[m.group(1)] = m.group(2)
        assert sorted(self.names.values()) == sorted(namespaces), ids
        self.file = directory / "monitor-address.log"
        self.proc = subprocess.Popen(["ip", "-ts", "monitor", "address", "all-nsid"], stdout=open(self.file, "w"),
                                     stderr=subprocess.STDOUT)
        time.sleep(0.2)  # the monitor listens before the state is read, so nothing falls in between
        self.initial = {}
        for ns in namespaces:
            out = subprocess.run(["ip", "-n", ns, "-4", "addr", "show"], capture_output=True, text=True).stdout
            self.initial[ns] = f"inet {address}/32" in out

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=5)

    def events(self) -> list[tuple[float, str, int]]:
        """(time, namespace, +1 added / -1 deleted), in the kernel's order."""
        out = []
        for line in self.file.read_text().splitlines():
            m = self.LINE.match(line)
            if m and m.group(4) == self.address and m.group(2) in self.names:
                t = datetime.fromisoformat(m.group(1)).timestamp()
                out.append((t, self.names[m.group(2)], -1 if m.group(3) else +1))
        return out

    def max_holders(self) -> tuple[int, list]:
        """The most namespaces that held the address at one time, and the events that made it so."""
        holding = {ns for ns, held in self.initial.items() if held}
        worst, when = len(holding), []
        for t, ns, delta in self.events():
            if delta > 0:
                holding.add(ns)
            else:
                holding.discard(ns)
            if len(holding) > worst:
                worst, when = len(holding), [(t, sorted(holding))]
        return worst, when

    def added_after(self, ns: str, t: float) -> float | None:
        for when, where, delta in self.events():
            if where == ns and delta > 0 and when >= t:
                return when
        return None


class EipStack:
    def __init__(self, tmp: Path, name: str, dns_config: str | None = None):
        require_network_tools()
        self.tmp = tmp
        self.name = name
        self.ports = {k: free_port() for k in ("admin", "control")}
        self.state = tmp / "state"
        self.file = tmp / "stack.yaml"
        self.file.write_text(stack_yaml(name, self.ports, dns_config))
        self.up = None
        self.status = {}

    def start(self, timeout: float = 120):
        assert not [n for n in netns_list() if n.startswith(f"cu-{self.name}.")], "namespaces left from before"
        self.up = Process("cumulo-up", [binary("cumulo"), "up", self.file, "--state-dir", self.state],
                          self.tmp / "up.log")
        self.status = wait_stack_running(self.state, timeout=timeout,
                                         what="stack.json says running\n" + self.up.log_tail(30))
        wait_for(lambda: self.lease()[2] == "held" and self.lease()[0] != "", 15,
                 what="the elastic IP held\n" + self.cli("eip", "list").stdout)
        self.network = json.loads((self.state / "network.json").read_text())

    def stop(self):
        if self.up:
            self.up.stop(grace=60)

    def leftovers(self) -> list[str]:
        left = [n for n in netns_list() if n.startswith(f"cu-{self.name}.")]
        for n in left:
            subprocess.run(["ip", "netns", "delete", n])
        return left

    @property
    def outside(self) -> str:
        return self.network["outside"]["namespace"]

    def ns(self, member: str) -> str:
        return next(m["namespace"] for m in self.network["members"] if m["name"] == member)

    def addr(self, member: str) -> str:
        return next(m["address"] for m in self.network["members"] if m["name"] == member)

    def cli(self, *argv) -> subprocess.CompletedProcess:
        return subprocess.run([str(binary("cumulo")), *argv, "--state-dir", str(self.state)], capture_output=True,
                              text=True, timeout=120)

    def eips(self) -> dict:
        r = self.cli("eip", "list", "--json")
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {}

    def lease(self) -> tuple[str, int, str]:
        """(holder, term, state) of the elastic IP."""
        for e in self.eips().get("elastic_ips", []):
            return e["holder"], e["term"], e["state"]
        return "", 0, ""

    def healthy(self) -> set[str]:
        return {g["id"] for g in self.eips().get("gateways", []) if g["health"] == "healthy"}

    def pid(self, service: str) -> int:
        status = json.loads((self.state / "stack.json").read_text())
        if service == "eip-keeper":
            return status["elastic_ips"]["keeper"]["pid"]
        return next(g["pid"] for g in status["gateways"] if g["id"] == service)

    def wait_calm(self, timeout: float = 60):
        """Both gateways healthy and the address held: a fault now has somewhere to go."""
        wait_for(lambda: self.healthy() == {"gateway-a", "gateway-b"} and self.lease()[2] == "held", timeout,
                 what="both gateways healthy\n" + self.cli("eip", "list").stdout)


class Client:
    """bench/eip_client.py in the outside namespace, open loop at `rate` requests a second."""

    def __init__(self, stack: EipStack, rate: int = 200, timeout: float = 2.0):
        self.out = stack.tmp / "client.jsonl"
        self.log = open(stack.tmp / "client.log", "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", stack.outside, sys.executable, str(CLIENT), "--url",
                                      f"http://{EIP}:80/", "--rate", str(rate), "--timeout", str(timeout), "--out",
                                      str(self.out)], stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=15)
        self.log.close()



def analyze(log: Path, faults_file: Path) -> dict:
    """bench/eip_client.py's JSON summary of a client log against its faults file."""
    r = subprocess.run([sys.executable, str(CLIENT), "--analyze", str(log), "--faults", str(faults_file), "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)


def inject(stack: EipStack, watch: AddressWatch, kind: str, faults: list, stop_for: float = 1.0,
           keeper_after: float = 0.0) -> dict:
    """One fault on the holder ("kill", "stop"), on the keeper ("keeper"), or both ("kill-keeper": the holder
    killed, then the keeper `keeper_after` seconds later, before, during or after its move); waits until it has
    played out and returns what happened."""
    stack.wait_calm()
    holder, term, _ = stack.lease()
    other = "gateway-b" if holder == "gateway-a" else "gateway-a"
    if kind == "keeper":
        pid = stack.pid("eip-keeper")
        t = time.time()
        os.kill(pid, signal.SIGKILL)
        faults.append(f"{t:.6f} keeper")
        # Started again by cumulo up; it adopts the address where it is, with the same term.
        wait_for(lambda: stack.pid("eip-keeper") not in (0, pid) and stack.lease()[2] == "held", 10,
                 what="the keeper back")
        return {"kind": kind, "holder": holder, "term": term, "after": stack.lease()}
    pid = stack.pid(holder)
    keeper = stack.pid("eip-keeper")
    t = time.time()
    os.kill(pid, signal.SIGSTOP if kind == "stop" else signal.SIGKILL)
    if kind == "kill-keeper":
        time.sleep(keeper_after)
        os.kill(keeper, signal.SIGKILL)
    try:
        wait_for(lambda: stack.lease()[0] == other and stack.lease()[2] == "held", 10,
                 what=f"{EIP} moved from {holder}")
        moved = wait_for(lambda: watch.added_after(stack.ns(other), t), 2, what="the address added on " + other)
        faults.append(f"{t:.6f} {kind} {moved:.6f}")
        if kind == "stop":
            time.sleep(stop_for)
    finally:
        if kind == "stop":
            os.kill(pid, signal.SIGCONT)
    if kind == "stop":
        faults.append(f"{time.time():.6f} cont")
    return {"kind": kind, "holder": holder, "term": term, "to": other, "moved_after": moved - t,
            "after": stack.lease()}
