#!/usr/bin/env bash
# Builds the fuzz preset and runs every tests/fuzz/*_fuzz target for a while, each with its dictionary and a
# scratch copy of its seed corpus (the repository's corpus is never written). Exits non-zero if any target
# crashes, leaks, times out or fails to start.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 20)
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2; exit 2; }

scripts/build.sh fuzz || { echo "fuzz: build failed" >&2; exit 1; }

work=$(mktemp -d -t cumulo-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT

failed=0
summary=()
for src in tests/fuzz/*_fuzz.cc; do
  target=$(basename "$src" .cc)   # h1_request_fuzz
  name=${target%_fuzz}            # h1_request
  bin=build/fuzz/$target
  if [ ! -x "$bin" ]; then
    summary+=("$target: FAIL (not built)"); failed=1; continue
  fi
  # Dictionary: tests/fuzz/<name>.dict, else the one of its protocol family (h1_request -> h1.dict).
  dict=tests/fuzz/$name.dict
  [ -f "$dict" ] || dict=tests/fuzz/${name%%_*}.dict
  args=(-max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$work/$target-")
  [ -f "$dict" ] && args+=(-dict="$dict")
  corpus=$work/corpus-$name
  mkdir -p "$corpus"
  [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$corpus/"
  log=$work/$target.log
  "$bin" "${args[@]}" "$corpus" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^stat::.*//; s/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  if [ $rc -eq 0 ]; then
    inputs=$(ls "$corpus" | wc -l)
    summary+=("$target: OK ${execs:-?} execs in ${secs:-$seconds} s, coverage ${cov:-?} edges, corpus $inputs inputs")
  else
    failed=1
    crash=$(ls "$work/$target-"* 2>/dev/null | head -1)
    if [ -n "$crash" ]; then
      mkdir -p build/fuzz/artifacts && cp "$crash" build/fuzz/artifacts/
      crash="build/fuzz/artifacts/$(basename "$crash")"
    fi
    summary+=("$target: FAIL (exit $rc) ${crash:+reproducer $crash}")
    echo "---- $target log (tail) ----" >&2
    tail -40 "$log" >&2
  fi
done

printf '%s\n' "${summary[@]}"
exit $failed
