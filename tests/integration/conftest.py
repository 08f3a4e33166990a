"""Fixtures for the gateway integration tests: real `cumulo gateway` and `cumulo-webapp` processes on ports
from the kernel, generated configs in the test's tmp_path, everything stopped by PID at teardown."""

import signal

import pytest

from support import Gateway, ProcessSet, Webapp, binary, tool

DEFAULT_TIME_LIMIT_S = 60


@pytest.fixture(autouse=True)
def time_limit(request):
    """Keeps every test bounded: SIGALRM fails a test that runs past its limit."""
    marker = request.node.get_closest_marker("time_limit")
    seconds = marker.args[0] if marker else DEFAULT_TIME_LIMIT_S

    def expired(signo, frame):
        raise pytest.fail.Exception(f"test ran longer than its time limit of {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session", autouse=True)
def binaries():
    """Both binaries must exist before any test runs (fails with the build command otherwise)."""
    return {"cumulo": binary("cumulo"), "webapp": binary("cumulo-webapp")}


@pytest.fixture
def procs(tmp_path):
    ps = ProcessSet(tmp_path)
    yield ps
    ps.stop_all()
    # Shown by pytest only when the test failed: the tail of every log.
    print(ps.report())


@pytest.fixture
def webapp(procs):
    """webapp(zone, id) starts one demo app instance."""

    def start(zone="a", instance_id=None):
        start.n += 1
        return Webapp(procs, zone, instance_id or f"web-{zone}-{start.n}")

    start.n = 0
    return start


@pytest.fixture
def gateway(procs, tmp_path):
    """gateway(config, name=..., start=True) writes the config (ports filled in) and starts the gateway."""

    def start(config, name="gateway", start=True):
        return Gateway(procs, tmp_path, config, name=name, start=start)

    return start


@pytest.fixture
def curl():
    return tool("curl")


@pytest.fixture
def wrk():
    return tool("wrk")


@pytest.fixture
def openssl():
    return tool("openssl", "openssl")
