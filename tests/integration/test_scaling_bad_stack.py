"""Stack files with scaling groups: a complete valid one passes `cumulo up --check`; invalid ones are refused,
by `--check` and by `cumulo up` itself, with exit code 2 and FILE:LINE:COL naming the offending key."""

from __future__ import annotations

import re
import subprocess

import pytest

from support import binary, free_port

FULL = """\
name: itest
zones: [a, b]
control:
  listen: 127.0.0.1:{control}
gateway:
  listen: 127.0.0.1:{listen}
  admin: 127.0.0.1:{admin}
  workers: 1
groups:
  - name: web
    min: 2
    max: 8
    desired: 2
    launch_template:
      command: ["{{bin_dir}}/cumulo-webapp", "--listen", "127.0.0.1:{{port}}", "--zone", "{{zone}}",
                "--id", "{{instance_id}}"]
      env: {{GREETING: hello}}
      health_check: {{path: /healthz, grace_period: 10s}}
      stop_signal: SIGTERM
      stop_timeout: 5s
      cpu: 0.25
      memory: 256MiB
    warmup: 10s
    cooldown: 30s
    drain_timeout: 10s
    policies:
      - name: cpu-target
        type: target_tracking
        metric: cpu
        statistic: average
        target: 60
        window: 15s
        scale_in_stabilization: 60s
      - name: latency-steps
        type: step
        metric: latency_p99
        statistic: maximum
        window: 30s
        steps:
          - {{lower: 0.5, upper: 1.0, change: +1}}
          - {{lower: 1.0, change: +2}}
          - {{upper: 0.05, change: -1}}
    scheduled:
      - name: business-hours
        cron: "0 8 * * 1-5"
        min: 4
        max: 8
        desired: 4
"""

# The base of the invalid cases: as small as a scaling group gets, so that each case has a single fault.
BASE = """\
name: itest
zones: [a, b]
control:
  listen: 127.0.0.1:{control}
gateway:
  listen: 127.0.0.1:{listen}
  admin: 127.0.0.1:{admin}
groups:
  - name: web
    min: 2
    max: 8
    desired: 2
    launch_template:
      command: ["{{bin_dir}}/cumulo-webapp", "--listen", "127.0.0.1:{{port}}"]
      health_check: {{path: /healthz, grace_period: 10s}}
      cpu: 0.25
    policies:
      - name: cpu-target
        type: target_tracking
        metric: cpu
        target: 60
        window: 15s
"""


def render(template: str) -> str:
    return template.format(control=free_port(), listen=free_port(), admin=free_port())


def line_of(text: str, needle: str) -> int:
    """1-based number of the first line containing `needle`."""
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(f"{needle!r} not in the stack file")


def run_cumulo(args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary("cumulo")), *[str(a) for a in args]], cwd=str(cwd), text=True,
                          capture_output=True, timeout=20, stdin=subprocess.DEVNULL)


def min_above_max(text):
    text = text.replace("    min: 2\n", "    min: 5\n").replace("    max: 8\n", "    max: 3\n")
    text = text.replace("    desired: 2\n", "")  # any desired would be out of range too: leave only min > max
    return text, ["    min: 5", "    max: 3"], [("min",), ("max",)]


def unknown_metric(text):
    text = text.replace("metric: cpu\n", "metric: cpu_load\n")
    return text, ["metric: cpu_load"], [("cpu_load",)]


def missing_command(text):
    text = re.sub(r"      command: .*\n", "", text)
    # Reported at the launch template (its key or its first remaining key).
    return text, ["launch_template:", "health_check:"], [("command",)]


def bad_duration(text):
    text = text.replace("window: 15s\n", "window: 15 parsecs\n")
    return text, ["window: 15 parsecs"], [("window", "duration", "15 parsecs")]


@pytest.mark.time_limit(30)
def test_a_full_scaling_stack_file_is_valid(tmp_path):
    """Every key of the scaling schema at once (launch template, both policy types, scheduled action, control)."""
    f = tmp_path / "stack.yaml"
    f.write_text(render(FULL))
    out = run_cumulo(["up", "--check", f], tmp_path)
    assert out.returncode == 0, f"a valid stack file was refused ({out.returncode}):\n{out.stdout}{out.stderr}"


@pytest.mark.time_limit(30)
@pytest.mark.parametrize("mutate", [min_above_max, unknown_metric, missing_command, bad_duration],
                         ids=lambda m: m.__name__)
def test_invalid_stack_file_exits_2_with_file_line_col(tmp_path, mutate):
    text, needles, words = mutate(render(BASE))
    f = tmp_path / "stack.yaml"
    f.write_text(text)
    lines = {line_of(text, n) for n in needles}
    for args in (["up", "--check", f], ["up", f, "--state-dir", tmp_path / "state"]):
        out = run_cumulo(args, tmp_path)
        said = out.stdout + out.stderr
        assert out.returncode == 2, f"`cumulo {' '.join(map(str, args))}` exited {out.returncode}, not 2:\n{said}"
        where = re.findall(re.escape(str(f)) + r":(\d+):(\d+)", said)
        assert where, f"no {f}:LINE:COL in the error:\n{said}"
        assert any(int(line) in lines for line, _ in where), (
            f"the error should point at line {sorted(lines)} ({needles}), it says {where}:\n{said}\n--- file:\n{text}")
        for alternatives in words:
            assert any(w in said for w in alternatives), f"the error should name {' or '.join(alternatives)}:\n{said}"
    assert not (tmp_path / "state" / "stack.json").exists(), "nothing should start from an invalid file"
