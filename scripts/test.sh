#!/usr/bin/env bash
# The test command. Installs what is missing, checks the C++ files' format, builds the release preset and the asan
# unit tests, runs every unit test of both, a short fuzz run of every fuzz target, then the integration tests
# against the release build. Stops
# at the first failing step and says which one and how to rerun it.
#   scripts/test.sh
set -uo pipefail
cd "$(dirname "$0")/.."

results=build/test-results  # JUnit XML of every test run, for the closing count
fuzz_seconds=10
started=$SECONDS
step_started=$SECONDS
current=""

step() {
  current=$1
  step_started=$SECONDS
  printf '\n==> %s\n' "$1"
}
step_ok() { printf '==> %s: ok (%ds)\n' "$current" $((SECONDS - step_started)); }
fail() {
  printf '\nFAILED: %s, after %ds in all. %s\n' "$current" $((SECONDS - started)) "$1" >&2
  exit 1
}

step "dependencies"
bash scripts/install-deps.sh || fail "scripts/install-deps.sh could not install the packages named above."
step_ok

step "format"
bash scripts/check-format.sh || fail "Fix: scripts/check-format.sh --fix, then rerun scripts/test.sh"
step_ok

step "build (release)"
bash scripts/build.sh release || fail "Rerun: scripts/build.sh release"
step_ok
# The asan build runs the unit tests only: its binaries and header checks would be built for nothing.
unit_targets=()
for d in tests/unit/*/; do unit_targets+=("unit_$(basename "$d")"); done
step "build (asan: ${unit_targets[*]})"
bash scripts/build.sh asan "${unit_targets[@]}" || fail "Rerun: scripts/build.sh asan ${unit_targets[*]}"
step_ok

rm -rf "$results"
mkdir -p "$results"
for preset in release asan; do
  step "unit tests ($preset)"
  # GTEST_OUTPUT makes each test binary write its own XML report (one file per binary in that folder).
  GTEST_OUTPUT="xml:$PWD/$results/unit-$preset/" ctest --test-dir "build/$preset" --output-on-failure --no-tests=error ||
    fail "Rerun: ctest --test-dir build/$preset --output-on-failure"
  step_ok
done

step "fuzz (${fuzz_seconds}s per target)"
bash scripts/fuzz.sh "$fuzz_seconds" || fail "Rerun: scripts/fuzz.sh $fuzz_seconds"
step_ok

step "integration tests"
CUMULO_BUILD=build/release /usr/bin/python3 -m pytest -q tests/integration --junitxml="$results/integration.xml"
rc=$?
[ $rc -eq 5 ] && fail "pytest collected no tests in tests/integration."
[ $rc -ne 0 ] && fail "Rerun: CUMULO_BUILD=build/release /usr/bin/python3 -m pytest -q tests/integration"
step_ok

# Counted from the XML reports of the runs above (unit tests once per preset, integration tests once); fuzz runs
# are not counted, they passed or the script would have stopped.
/usr/bin/python3 - "$results" $((SECONDS - started)) <<'PY'
import pathlib
import sys
import xml.etree.ElementTree as ET

root, elapsed = pathlib.Path(sys.argv[1]), int(sys.argv[2])
totals, parts = [0, 0, 0], []
for name, files in [("unit (release)", sorted((root / "unit-release").glob("*.xml"))),
                    ("unit (asan)", sorted((root / "unit-asan").glob("*.xml"))),
                    ("integration", [root / "integration.xml"])]:
    counts = [0, 0, 0]  # passed, failed, skipped
    for f in files:
        if not f.exists():
            continue
        for case in ET.parse(f).iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                counts[1] += 1
            elif (case.find("skipped") is not None or case.get("result") == "skipped"
                  or case.get("status") == "notrun"):
                counts[2] += 1
            else:
                counts[0] += 1
    parts.append(f"{name} {counts[0]}")
    totals = [a + b for a, b in zip(totals, counts)]
print(f"\nall steps passed in {elapsed // 60}m{elapsed % 60:02d}s; tests passed: " + ", ".join(parts))
line = f"tests: {totals[0]} passed, {totals[1]} failed"
if totals[2]:
    line += f", {totals[2]} skipped"
print(line)
PY
