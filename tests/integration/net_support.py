"""Helpers for tests of network mode (docs/network.md): commands and connections from inside the namespaces a
stack made."""

from __future__ import annotations

import os
import subprocess

import pytest

from support import tool


def require_network_tools():
    if os.geteuid() != 0:
        pytest.fail("network mode needs root: run the integration tests as root")
    tool("ip", "iproute2")
    tool("nft", "nftables")


def netns_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def in_ns(ns: str, *argv, timeout: float = 10, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *[str(a) for a in argv]], capture_output=True, text=True,
                          timeout=timeout, check=check)


CONNECT = """
import socket, sys, errno
host, port = sys.argv[1], int(sys.argv[2])
source = sys.argv[3] if len(sys.argv) > 3 else None
s = socket.socket()
s.settimeout(1.5)
if source:
    s.bind((source, 0))
try:
    s.connect((host, port))
    print("connected")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
except OSError as e:
    print("denied" if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM) else f"error {e.errno}")
"""


def reach(ns: str, host: str, port: int, source: str | None = None) -> str:
    argv = ["/usr/bin/python3", "-c", CONNECT, host, port] + ([source] if source else [])
    return in_ns(ns, *argv).stdout.strip()


def http_from(ns: str, url: str) -> tuple[int, str]:
    curl = tool("curl")
    r = in_ns(ns, curl, "-s", "-o", "/dev/stdout", "-w", "\n%{http_code}", "--max-time", "5", url)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body
