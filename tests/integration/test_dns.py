"""The authoritative DNS server (`cumulo dns`) with dig, kdig and dnspython: record types, negative answers,
truncation and the TCP retry, routing policies with health checks, run-time changes, zone transfers, bad input
and rate limiting."""

import http.client
import json
import socket
import struct
import time
import urllib.parse
from collections import Counter

import pytest
import requests

from dns_support import DnsServer, address_answer, answers, dns
from support import LOCALHOST, Process, binary, free_port, wait_for

ZONE_FILE = {"origin": "example.test", "file": "example.test.zone"}


def test_every_record_type_with_dig(procs, tmp_path):
    s = DnsServer(procs, tmp_path, [ZONE_FILE])
    want = {
        ("www.example.test", "A"): "192.0.2.1",
        ("www.example.test", "AAAA"): "2001:db8::1",
        ("example.test", "MX"): "10 mail.example.test.",
        ("example.test", "TXT"): '"v=spf1 -all"',
        ("example.test", "CAA"): '0 issue "letsencrypt.org"',
        ("example.test", "NS"): "ns1.example.test.\nns2.example.test.",
        ("_sip._tcp.example.test", "SRV"): "10 60 5060 sip.example.test.",
        ("web.example.test", "CNAME"): "www.example.test.",
        ("example.test", "SOA"): "ns1.example.test. hostmaster.example.test. 2026120201 3600 600 86400 60",
        ("anyone.users.example.test", "A"): "192.0.2.99",
    }
    for (name, rtype), expected in want.items():
        out = s.dig("+short", "+norec", name, rtype)
        assert sorted(out.split("\n")) == sorted((expected + "\n").split("\n")), (name, rtype, out)
    # Over IPv6 and TCP too, and the answer is authoritative.
    out = s.kdig("+tcp", "www.example.test", "AAAA", host="::1")
    assert "2001:db8::1" in out and "aa" in out.split("Flags:")[1].split(";")[0], out
    # A CNAME chain inside the zone is followed; case does not matter.
    msg = s.udp("OLD.Example.TEST", "A")
    # (names compressed against the question take its case, as with every server that compresses)
    assert [a.lower() for a in answers(msg)] == ["192.0.2.1", "web.example.test.", "www.example.test."]
    assert msg.question[0].name.to_text() == "OLD.Example.TEST."  # echoed as asked (0x20)
    assert msg.flags & dns.flags.AA


def test_nxdomain_nodata_and_refused(procs, tmp_path):
    s = DnsServer(procs, tmp_path, [ZONE_FILE], query_log=str(tmp_path / "queries.log"))
    nx = s.udp("missing.example.test", "A")
    assert nx.rcode() == dns.rcode.NXDOMAIN
    assert [r.rdtype for r in nx.authority] == [dns.rdatatype.SOA] and nx.authority[0].ttl == 60
    nodata = s.udp("mail.example.test", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert [r.rdtype for r in nodata.authority] == [dns.rdatatype.SOA]
    refused = s.udp("www.example.org", "A")
    assert refused.rcode() == dns.rcode.REFUSED and not refused.flags & dns.flags.AA
    # The query log has one JSON line per query (written in blocks about every 100 ms).
    def logged():
        lines = [json.loads(ln) for ln in (tmp_path / "queries.log").read_text().splitlines()]
        return [(q["name"], q["type"], q["rcode"]) for q in lines if q["name"] != "example.test."]
    wait_for(lambda: logged() == [("missing.example.test.", "A", "NXDOMAIN"), ("mail.example.test.", "AAAA", "NOERROR"),
                                  ("www.example.org.", "A", "REFUSED")], 3, what="the query log lines")


def test_truncation_then_tcp_retry(procs, tmp_path):
    big = [f'"{i:02d}-' + "x" * 180 + '"' for i in range(12)]
    zone = dict(ZONE_FILE, records=[{"name": "big", "type": "TXT", "values": big}])
    s = DnsServer(procs, tmp_path, [zone])
    plain = s.udp("big.example.test", "TXT")  # no EDNS: 512 bytes
    assert plain.flags & dns.flags.TC
    edns = s.udp("big.example.test", "TXT", use_edns=0, payload=1232)
    assert edns.flags & dns.flags.TC
    full = s.tcp("big.example.test", "TXT")
    assert not full.flags & dns.flags.TC and len(full.answer[0]) == 12
    # dig retries over TCP on its own when it sees TC.
    out = s.dig("+noedns", "big.example.test", "TXT")
    assert "Truncated, retrying in TCP mode" in out and out.count("xxxxxxxx") >= 12, out[-800:]
    # Several queries on one TCP connection, answered in order.
    with socket.create_connection((LOCALHOST, s.port), timeout=3) as c:
        wires = []
        for i, name in enumerate(["www.example.test", "mail.example.test", "missing.example.test"]):
            q = dns.message.make_query(name, "A")
            q.id = 100 + i
            w = q.to_wire()
            wires.append(struct.pack(">H", len(w)) + w)
        c.sendall(b"".join(wires))
        got = []
        buf = b""
        while len(got) < 3:
            buf += c.recv(65535)
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                n = struct.unpack(">H", buf[:2])[0]
                got.append(dns.message.from_wire(buf[2:2 + n]))
                buf = buf[2 + n:]
        assert [m.id for m in got] == [100, 101, 102]
        assert got[2].rcode() == dns.rcode.NXDOMAIN


def test_weighted_split_within_tolerance(procs, tmp_path):
    zone = dict(ZONE_FILE, records=[{"name": "app", "type": "A", "ttl": 5, "policy": "weighted", "endpoints": [
        {"value": "192.0.2.1", "weight": 3}, {"value": "192.0.2.2", "weight": 1}]}])
    s = DnsServer(procs, tmp_path, [zone])
    seen = Counter(address_answer(s, "app.example.test") for _ in range(2000))
    assert set(seen) == {"192.0.2.1", "192.0.2.2"}
    share = seen["192.0.2.1"] / 2000
    assert 0.71 <= share <= 0.79, seen  # 75% expected; 4 standard deviations either way


def start_webapp(procs, port: int, name: str):
    p = procs.start(name, [binary("cumulo-webapp"), "--listen", f"{LOCALHOST}:{port}", "--zone", "a", "--id", name])
    p.wait_port(port)
    return p


@pytest.mark.time_limit(40)
def test_failover_follows_health_checks(procs, tmp_path):
    primary_port, secondary_port = free_port(), free_port()
    primary = start_webapp(procs, primary_port, "primary")
    start_webapp(procs, secondary_port, "secondary")
    interval, threshold, ttl = 0.3, 2, 1
    checks = [{"name": n, "protocol": proto, "address": f"{LOCALHOST}:{port}", "path": "/healthz",
               "interval": f"{int(interval * 1000)}ms", "timeout": "200ms", "unhealthy_threshold": threshold,
               "healthy_threshold": threshold}
              for n, proto, port in (("primary", "http", primary_port), ("secondary", "tcp", secondary_port))]
    zone = dict(ZONE_FILE, records=[{"name": "api", "type": "A", "ttl": ttl, "policy": "failover", "endpoints": [
        {"value": "192.0.2.10", "role": "primary", "health_check": "primary"},
        {"value": "192.0.2.20", "role": "secondary", "health_check": "secondary"}]}])
    s = DnsServer(procs, tmp_path, [zone], health_checks=checks)
    wait_for(lambda: all(v.get("health") == "healthy" for r in requests.get(s.admin("/zones")).json()["zones"][0]
                         ["records"] if r["name"] == "api.example.test." for v in r["values"]), 5,
             what="both endpoints healthy")
    assert address_answer(s, "api.example.test") == "192.0.2.10"
    budget = interval * threshold + ttl
    primary.kill()
    t0 = time.monotonic()
    wait_for(lambda: address_answer(s, "api.example.test") == "192.0.2.20", budget + 2, interval=0.05,
             what="the answer moving to the secondary")
    moved = time.monotonic() - t0
    assert moved <= budget + 0.5, f"took {moved:.2f}s, budget interval x threshold + TTL = {budget}s"
    start_webapp(procs, primary_port, "primary-again")
    t0 = time.monotonic()
    wait_for(lambda: address_answer(s, "api.example.test") == "192.0.2.10", budget + 2, interval=0.05,
             what="the answer moving back to the primary")
    back = time.monotonic() - t0
    assert back <= budget + 0.5, f"took {back:.2f}s to come back, budget {budget}s"
    print(f"failover: moved to the secondary after {moved:.2f}s, back after {back:.2f}s (budget {budget}s)")
    metrics = requests.get(s.admin("/metrics")).text
    assert 'cumulo_dns_queries_total{type="A",worker="0"}' in metrics


def test_multivalue_and_nearest_with_client_subnet(procs, tmp_path):
    dead = free_port()  # nothing listens: its check fails
    checks = [{"name": "dead", "protocol": "tcp", "address": f"{LOCALHOST}:{dead}", "interval": "100ms",
               "timeout": "100ms", "unhealthy_threshold": 1}]
    zone = dict(ZONE_FILE, records=[
        {"name": "multi", "type": "A", "policy": "multivalue", "endpoints": [
            {"value": "192.0.2.1"}, {"value": "192.0.2.2", "health_check": "dead"}, {"value": "192.0.2.3"}]},
        {"name": "cdn", "type": "A", "policy": "nearest", "endpoints": [
            {"value": "198.51.100.1", "region": "eu"}, {"value": "198.51.100.2", "region": "us"},
            {"value": "198.51.100.3", "region": "default"}]},
        {"name": "@", "type": "ALIAS", "target": "www"}])
    networks = [{"prefix": "10.1.0.0/16", "region": "eu"}, {"prefix": "10.2.0.0/16", "region": "us"},
                {"prefix": "127.0.0.0/8", "region": "us"}]
    s = DnsServer(procs, tmp_path, [zone], health_checks=checks, networks=networks)
    wait_for(lambda: answers(s.udp("multi.example.test")) == ["192.0.2.1", "192.0.2.3"], 5,
             what="the unhealthy value leaving the multivalue answer")
    ecs = dns.edns.ECSOption("10.1.7.0", 24)
    msg = s.udp("cdn.example.test", use_edns=0, options=[ecs])
    assert answers(msg) == ["198.51.100.1"]
    echoed = [o for o in msg.options if isinstance(o, dns.edns.ECSOption)]
    assert echoed and echoed[0].scopelen == 16
    # Without a subnet, the client's own address (127.0.0.1 -> us).
    assert answers(s.udp("cdn.example.test")) == ["198.51.100.2"]
    # The apex ALIAS answers as the target's A record.
    apex = s.udp("example.test", "A")
    assert answers(apex) == ["192.0.2.1"] and apex.answer[0].name.to_text() == "example.test."


def test_runtime_change_bumps_serial(procs, tmp_path):
    s = DnsServer(procs, tmp_path, [ZONE_FILE])
    serial0 = s.udp("example.test", "SOA").answer[0][0].serial
    r = requests.post(s.admin("/zones/example.test/records"),
                      json={"name": "new", "type": "A", "ttl": 30, "values": ["192.0.2.77", "192.0.2.78"]})
    assert r.status_code == 200, r.text
    assert r.json()["serial"] == serial0 + 1
    assert answers(s.udp("new.example.test")) == ["192.0.2.77", "192.0.2.78"]
    assert s.udp("example.test", "SOA").answer[0][0].serial == serial0 + 1
    bad = requests.post(s.admin("/zones/example.test/records"), json={"name": "x", "type": "A", "values": ["nope"]})
    assert bad.status_code == 400 and "IPv4" in bad.json()["error"]
    # A record set the zone's rules refuse (a CNAME beside other data) is the client's error too, and changes nothing.
    bad = requests.post(s.admin("/zones/example.test/records"),
                        json={"name": "new", "type": "CNAME", "values": ["www.example.test."]})
    assert bad.status_code == 400 and "a CNAME cannot share its name" in bad.json()["error"], bad.text
    assert s.udp("example.test", "SOA").answer[0][0].serial == serial0 + 1
    # A '%' without two hex digits, sent as is (requests would encode the '%' itself).
    url = urllib.parse.urlsplit(s.admin("/zones/example.test/records"))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("DELETE", url.path + "?name=ne%1w&type=A")
    bad = conn.getresponse()
    assert bad.status == 400 and b"percent-encoding" in bad.read(), bad.status
    conn.close()
    listed = requests.get(s.admin("/zones")).json()["zones"][0]
    assert any(rec["name"] == "new.example.test." for rec in listed["records"])
    # The query is percent-decoded (and '+' would be a space, as in a form).
    r = requests.delete(s.admin("/zones/example.test/records?name=%6Eew&type=%41"))
    assert r.status_code == 200, r.text
    assert s.udp("new.example.test").rcode() == dns.rcode.NXDOMAIN
    assert s.udp("example.test", "SOA").answer[0][0].serial == serial0 + 2


def test_axfr_to_allowed_addresses_only(procs, tmp_path):
    s = DnsServer(procs, tmp_path, [ZONE_FILE], axfr_allow=["127.0.0.1/32"])
    out = s.kdig("example.test", "AXFR")
    lines = [ln for ln in out.splitlines() if ln and not ln.startswith(";")]
    assert lines[0].split()[3] == "SOA" and lines[-1].split()[3] == "SOA", out
    assert any("192.0.2.99" in ln and ln.startswith("*.users") for ln in lines), out
    assert len(lines) == 17, out  # the SOA, 15 other records, the SOA again
    refused = s.kdig("example.test", "AXFR", host="::1")
    assert "REFUSED" in refused, refused
    assert s.udp("example.test", "AXFR").rcode() == dns.rcode.REFUSED  # never over UDP


def test_bad_input_is_dropped_or_answered_with_an_error(procs, tmp_path):
    s = DnsServer(procs, tmp_path, [ZONE_FILE], ipv6=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.3)

    def ask(raw: bytes):
        sock.sendto(raw, (LOCALHOST, s.port))
        try:
            return sock.recv(65535)
        except socket.timeout:
            return None

    header = struct.pack(">HHHHHH", 0xABCD, 0x0100, 1, 0, 0, 0)
    assert ask(b"\x01\x02\x03") is None  # shorter than a header: dropped
    assert ask(struct.pack(">HHHHHH", 1, 0x8000, 1, 0, 0, 0) + b"\0\0\1\0\1") is None  # a response: dropped
    loop = ask(header + b"\xc0\x0c\x00\x01\x00\x01")  # the name points at itself
    assert loop is not None and loop[3] & 0xF == 1 and loop[:2] == b"\xab\xcd"  # FORMERR
    absurd = ask(struct.pack(">HHHHHH", 2, 0x0100, 1, 0, 0, 0xFFFF) + b"\3www\0\0\1\0\1")
    assert absurd is not None and absurd[3] & 0xF == 1
    notify = ask(struct.pack(">HHHHHH", 3, 4 << 11, 1, 0, 0, 0) + b"\7example\4test\0\0\6\0\1")
    assert notify is not None and notify[3] & 0xF == 4  # NOTIMP
    v1 = bytearray(dns.message.make_query("www.example.test", "A", use_edns=0).to_wire())
    v1[-5] = 1  # the OPT record's version byte (no options follow)
    reply = ask(bytes(v1))
    assert reply is not None and dns.message.from_wire(reply).rcode() == dns.rcode.BADVERS
    assert answers(s.udp("www.example.test")) == ["192.0.2.1"]  # still serving


def test_rate_limit_per_client_network(procs, tmp_path):
    s = DnsServer(procs, tmp_path, [ZONE_FILE], ipv6=False, rate_limit={"responses_per_second": 20, "slip": 2})
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.5)
    q = dns.message.make_query("www.example.test", "A").to_wire()
    for _ in range(200):
        sock.sendto(q, (LOCALHOST, s.port))
    replies = []
    try:
        while True:
            replies.append(dns.message.from_wire(sock.recv(4096)))
    except socket.timeout:
        pass
    full = [m for m in replies if m.answer]
    slipped = [m for m in replies if m.flags & dns.flags.TC and not m.answer]
    assert 15 <= len(full) <= 30, len(full)  # the bucket's 20, and a little refill
    assert len(slipped) >= 50, len(slipped)  # every second limited response slips out truncated
    assert len(replies) < 200
    metrics = requests.get(s.admin("/metrics")).text
    assert "cumulo_dns_rate_limited_total" in metrics


def test_example_configuration_validates_and_bad_files_name_the_line(tmp_path):
    from support import REPO
    import subprocess
    ok = subprocess.run([binary("cumulo"), "dns", "--check", "-c", REPO / "examples/dns/dns.yaml"],
                        capture_output=True, text=True, timeout=10)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "bad.zone").write_text("$ORIGIN example.test.\n@ IN SOA a b 1 2 3 4 5\nwww IN A 192.0.2.300\n")
    (tmp_path / "bad.yaml").write_text("zones:\n  - origin: example.test\n    file: bad.zone\n")
    bad = subprocess.run([binary("cumulo"), "dns", "--check", "-c", tmp_path / "bad.yaml"],
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "bad.zone:3: bad IPv4 address '192.0.2.300'" in bad.stderr, bad.stderr
