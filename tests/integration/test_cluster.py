"""The etcd client (src/cluster) against a real etcd: each case is one test of build/release/cluster_etcd_test
(tests/integration/cluster/etcd_test.cc), which starts its own single-member etcd on free 127.0.0.1 ports with
its data in the test's tmp directory and stops it by PID."""

import os
import subprocess

import pytest

from support import build_dir, tool

TEST_BINARY = "cluster_etcd_test"


def cases() -> list[str]:
    """The binary's test names, so that each is a pytest case; one placeholder when it is not built yet (the
    case then fails with the build command)."""
    path = build_dir() / TEST_BINARY
    if not os.access(path, os.X_OK):
        return ["missing"]
    out = subprocess.run([path, "--gtest_list_tests"], capture_output=True, text=True, timeout=30).stdout
    names, suite = [], ""
    for line in out.splitlines():
        if not line.startswith(" "):
            suite = line.strip()
        else:
            names.append(suite + line.strip().split()[0])
    return names


@pytest.mark.time_limit(120)
@pytest.mark.parametrize("case", cases())
def test_etcd_client(case, tmp_path):
    etcd = tool("etcd", "etcd-server")
    binary = build_dir() / TEST_BINARY
    if case == "missing" or not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is missing: build it with `scripts/build.sh release {TEST_BINARY}`", pytrace=False)
    env = dict(os.environ, CUMULO_ETCD=etcd, CUMULO_TEST_TMP=str(tmp_path))
    r = subprocess.run([binary, f"--gtest_filter={case}"], capture_output=True, text=True, env=env, timeout=110)
    logs = "\n".join(f"----- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in tmp_path.glob("etcd-*/etcd.log"))
    assert r.returncode == 0, f"{case} failed:\n{r.stdout[-6000:]}\n{r.stderr[-2000:]}\n{logs}"
