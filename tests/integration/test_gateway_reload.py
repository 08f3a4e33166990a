"""Configuration reloads (SIGHUP and POST /reload) under load, and refused reloads of broken files."""

import copy
import re
import time

import pytest
import requests

from support import Wrk, instance_counts, wait_for


@pytest.mark.time_limit(60)
def test_reload_during_load_drops_nothing_and_takes_effect(webapp, gateway, wrk, tmp_path):
    """MUST: SIGHUP and POST /reload in the middle of a wrk run: zero non-2xx, zero errors; the new config works."""
    first, second, other = webapp("a"), webapp("b"), webapp("b")
    config = {"target_groups": [{"name": "web", "targets": [first.target()]}],
              "routes": [{"name": "default", "target_group": "web"}]}
    gw = gateway(config)
    assert instance_counts(gw.url("/"), 5) == {first.id: 5}
    assert instance_counts(gw.url("/echo"), 3) == {first.id: 3}

    run = Wrk(tmp_path, gw.url("/"), duration_s=5, connections=16, threads=1)

    # 1 s in: a second target joins the group (SIGHUP).
    run.sleep_until(1.0)
    c1 = copy.deepcopy(gw.config)
    c1["target_groups"][0]["targets"].append(second.target())
    gw.write_config(c1)
    gw.reload_sighup()
    wait_for(lambda: gw.target(second.address) is not None, 3, what="SIGHUP to add the second target")

    # 2.5 s in: a new route to a new group (POST /reload).
    run.sleep_until(2.5)
    c2 = copy.deepcopy(gw.config)
    c2["target_groups"].append({"name": "other", "targets": [other.target()]})
    c2["routes"].insert(0, {"name": "echo", "path_prefix": "/echo", "target_group": "other"})
    gw.write_config(c2)
    r = gw.reload_post()
    assert r.status_code == 200, f"{r.status_code} {r.text}"

    # 3.5 s in: the first target leaves the file (it drains; in-flight requests finish).
    run.sleep_until(3.5)
    c3 = copy.deepcopy(gw.config)
    c3["target_groups"][0]["targets"] = [second.target()]
    gw.write_config(c3)
    gw.reload_sighup()

    result = run.result()
    result.assert_clean(min_requests=1000)
    assert gw.proc.alive()

    assert instance_counts(gw.url("/"), 10) == {second.id: 10}, "the reloaded group should be the second target only"
    assert instance_counts(gw.url("/echo"), 5) == {other.id: 5}, "the new route should send /echo to 'other'"
    wait_for(lambda: gw.target(first.address) is None, 3, what="the removed target to leave /targets")
    text = gw.metrics()
    assert re.search(r'cumulo_gateway_requests_total\{[^}]*route="echo"', text), "no metrics for the new route"


def test_broken_reload_is_refused_and_the_gateway_keeps_serving(webapp, gateway):
    app = webapp("a")
    gw = gateway({"target_groups": [{"name": "web", "targets": [app.target()]}]})
    good_text = gw.config_path.read_text()
    lines = good_text.splitlines()
    # An unknown key inside the first target group, on a known line.
    idx = next(i for i, l in enumerate(lines) if l.strip().startswith('- name: "web"'))
    indent = len(lines[idx]) - len(lines[idx].lstrip()) + 2
    lines.insert(idx + 1, " " * indent + "balancing: round_robin")
    gw.config_path.write_text("\n".join(lines) + "\n")
    bad_line = idx + 2  # 1-based

    r = gw.reload_post()
    assert r.status_code == 400, f"{r.status_code} {r.text}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    message = r.json()["error"]
    assert f"{gw.config_path}:{bad_line}:" in message or f"{gw.config_path.name}:{bad_line}:" in message, message
    assert "balancing" in message, message

    gw.reload_sighup()  # the same broken file by signal: refused too, the process stays
    time.sleep(0.3)
    assert gw.proc.alive(), gw.proc.log_tail()
    assert instance_counts(gw.url("/"), 5) == {app.id: 5}

    # Fixing the file makes the next reload work.
    gw.config_path.write_text(good_text)
    r = gw.reload_post()
    assert r.status_code == 200, r.text
    assert requests.get(gw.url("/"), timeout=5).status_code == 200
