"""Helpers for the DNS integration tests: a `cumulo dns` process with a generated configuration, and queries
through dnspython (UDP and TCP), dig and kdig."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from support import LOCALHOST, ProcessSet, binary, tool, wait_for

try:
    import dns.edns
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype
except ImportError:  # pragma: no cover - the test set-up names the fix
    pytest.fail("python3-dnspython is missing: apt-get install -y python3-dnspython", pytrace=False)

ZONE = """$ORIGIN example.test.
$TTL 300
@       IN SOA ns1 hostmaster ( 2026120201 3600 600 86400 60 )
        IN NS  ns1
        IN NS  ns2
        IN MX  10 mail
        IN TXT "v=spf1 -all"
        IN CAA 0 issue "letsencrypt.org"
ns1     IN A   192.0.2.53
ns2     IN AAAA 2001:db8::53
www     IN A   192.0.2.1
www     IN AAAA 2001:db8::1
mail    IN A   192.0.2.25
web     IN CNAME www
old     IN CNAME web
_sip._tcp IN SRV 10 60 5060 sip
sip     IN A   192.0.2.60
*.users IN A   192.0.2.99
"""


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 and ::1."""
    for _ in range(50):
        with socket.socket() as t:
            t.bind((LOCALHOST, 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as u6, \
                        socket.socket(socket.AF_INET6) as t6:
                    u.bind((LOCALHOST, port))
                    u6.bind(("::1", port))
                    t6.bind(("::1", port))
                    return port
            except OSError:
                continue
    raise AssertionError("no free port for UDP and TCP")


class DnsServer:
    """`cumulo dns -c FILE` with a JSON (so YAML) configuration written to the test's tmp dir."""

    def __init__(self, procs: ProcessSet, tmp: Path, zones: list[dict], name: str = "dns", ipv6: bool = True,
                 **extra):
        self.port = free_udp_tcp_port()
        self.admin_port = free_udp_tcp_port()
        (tmp / "example.test.zone").write_text(ZONE)
        listen = [f"{LOCALHOST}:{self.port}"] + ([f"[::1]:{self.port}"] if ipv6 else [])
        self.config = {"listen": listen, "admin": f"{LOCALHOST}:{self.admin_port}", "zones": zones, **extra}
        self.config_path = tmp / f"{name}.yaml"
        self.config_path.write_text(json.dumps(self.config, indent=2))
        self.proc = procs.start(name, [binary("cumulo"), "dns", "-c", self.config_path])
        wait_for(self._answers, 10, what=f"{name} answering on port {self.port}")

    def _answers(self) -> bool:
        if not self.proc.alive():
            raise AssertionError(f"cumulo dns exited with {self.proc.returncode}:\n{self.proc.log_tail()}")
        try:
            requests.get(self.admin("/health"), timeout=0.5).raise_for_status()
            self.udp(self.config["zones"][0]["origin"], "SOA", timeout=0.5)
            return True
        except Exception:
            return False

    def admin(self, path: str) -> str:
        return f"http://{LOCALHOST}:{self.admin_port}{path}"

    def udp(self, name: str, rdtype: str = "A", host: str = LOCALHOST, timeout: float = 2.0, **make):
        q = dns.message.make_query(name, rdtype, **make)
        return dns.query.udp(q, host, port=self.port, timeout=timeout, ignore_trailing=False)

    def tcp(self, name: str, rdtype: str = "A", host: str = LOCALHOST, timeout: float = 2.0, **make):
        q = dns.message.make_query(name, rdtype, **make)
        return dns.query.tcp(q, host, port=self.port, timeout=timeout)

    def dig(self, *args: str) -> str:
        out = subprocess.run([tool("dig", "dnsutils"), f"@{LOCALHOST}", "-p", str(self.port), *args],
                             capture_output=True, text=True, timeout=20)
        return out.stdout

    def kdig(self, *args: str, host: str = LOCALHOST) -> str:
        out = subprocess.run([tool("kdig", "knot-dnsutils"), f"@{host}", "-p", str(self.port), *args],
                             capture_output=True, text=True, timeout=20)
        return out.stdout + out.stderr


def answers(msg) -> list[str]:
    """Every rdata of the answer section as text, sorted."""
    return sorted(rd.to_text() for rrset in msg.answer for rd in rrset)


def address_answer(server: DnsServer, name: str) -> str:
    a = answers(server.udp(name))
    assert len(a) == 1, a
    return a[0]
