#!/usr/bin/env bash
# Builds one preset (release by default), serialised by a lock so that two builds never share the two cores.
#   scripts/build.sh [PRESET] [ninja targets...]
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}; shift || true
exec 9>/tmp/cumulo-build.lock
flock 9
# ccache, where installed, lets several checkouts of the tree share compiled objects.
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
[ -f "build/$preset/build.ninja" ] || cmake --preset "$preset" "${launcher[@]}" >/dev/null
if [ $# -gt 0 ]; then cmake --build "build/$preset" -j2 --target "$@"; else cmake --build "build/$preset" -j2; fi
