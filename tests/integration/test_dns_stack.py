"""`cumulo up` with a `dns:` section: the DNS server runs as a service of the stack, its apex ALIAS answers with
the gateway's address, and a killed server is restarted."""

from __future__ import annotations

import json
import os
import signal

import requests

from dns_support import DnsServer, answers, dns, free_udp_tcp_port  # noqa: F401 (dnspython check)
from support import Process, binary, free_port, running_stack_status, wait_for, wait_stack_running


def test_stack_runs_the_dns_server_and_restarts_it(tmp_path):
    ports = {k: free_port() for k in ("gw", "admin", "control")}
    dns_port = free_udp_tcp_port()
    (tmp_path / "dns.yaml").write_text(json.dumps({
        "zones": [{"origin": "site.test", "records": [
            {"name": "@", "type": "ALIAS", "gateway": True},
            {"name": "www", "type": "CNAME", "values": ["site.test."]}]}]}))
    stack = tmp_path / "stack.yaml"
    stack.write_text(f"""name: dnsstack
zones: [a]
gateway:
  listen: 127.0.0.1:{ports['gw']}
  admin: 127.0.0.1:{ports['admin']}
  workers: 1
control:
  listen: 127.0.0.1:{ports['control']}
groups:
  - name: web
    min: 1
    max: 1
    launch_template:
      command: ["{{bin_dir}}/cumulo-webapp", "--listen", "127.0.0.1:{{port}}", "--zone", "{{zone}}", "--id", "{{instance_id}}"]
dns:
  config: {tmp_path / 'dns.yaml'}
  listen: 127.0.0.1:{dns_port}
""")
    state = tmp_path / "state"
    up = Process("cumulo-up", [binary("cumulo"), "up", stack, "--state-dir", state], tmp_path / "up.log")

    def ask(name, rdtype="A"):
        q = dns.message.make_query(name, rdtype)
        return dns.query.udp(q, "127.0.0.1", port=dns_port, timeout=1)

    try:
        st = wait_stack_running(state, timeout=30)
        services = {s["id"]: s for s in st["services"]}
        assert services["dns"]["ready"] and services["dns"]["pid"] > 0
        assert answers(ask("site.test")) == ["127.0.0.1"]  # the gateway's listen address
        assert answers(ask("WWW.site.test")) == ["127.0.0.1", "site.test."]
        # The stack's DNS server is restarted when it dies.
        os.kill(services["dns"]["pid"], signal.SIGKILL)

        def restarted():
            s = running_stack_status(state)
            if not s:
                return None
            d = {x["id"]: x for x in s["services"]}["dns"]
            return d if d["pid"] != services["dns"]["pid"] and d["ready"] else None

        wait_for(restarted, timeout=15, what="the DNS server restarted")
        wait_for(lambda: answers(ask("site.test")) == ["127.0.0.1"], timeout=5, what="answers after the restart")
    finally:
        up.stop()
        print(up.log_tail(40))
    # A bad DNS configuration is a stack file error, before anything starts.
    (tmp_path / "dns.yaml").write_text("zones: [{origin: site.test, recordz: []}]\n")
    check = Process("check", [binary("cumulo"), "up", "--check", stack], tmp_path / "check.log")
    assert check.wait(10) == 2
    assert "recordz" in check.log_text() and "dns.yaml" in check.log_text()
    assert requests is not None
