#!/usr/bin/env bash
# The format check of the test command: every C++ file git tracks under src/, tests/ and bench/ is as
# clang-format (the repo's .clang-format: Google style, 110 columns) would write it. Lists the files that are
# not, and how to fix them.
#   scripts/check-format.sh          check
#   scripts/check-format.sh --fix    rewrite the files in place
set -uo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format is missing: apt-get install clang-format" >&2; exit 1; }
mapfile -t files < <(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h' 'bench/*.cc')
if [ "${1:-}" = --fix ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
# One clang-format for every file; it names each place that differs ("FILE:LINE:COL: error: ...").
mapfile -t bad < <(clang-format --dry-run --Werror "${files[@]}" 2>&1 | sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error: .*/\1/p' | sort -u)
if [ ${#bad[@]} -gt 0 ]; then
  printf 'check-format: not as clang-format writes them (%d of %d files):\n' "${#bad[@]}" "${#files[@]}" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "Fix: scripts/check-format.sh --fix (or clang-format -i FILE), then look at the diff." >&2
  exit 1
fi
echo "check-format: ${#files[@]} files as clang-format writes them"
