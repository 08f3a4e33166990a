#!/usr/bin/env bash
# Installs every Debian package that building, testing and benchmarking cumulo needs. Idempotent and quiet when
# everything is there already (apt-get update runs only when something is missing). Needs root, or sudo.
#
# Installing haproxy, nginx or varnish may start their system services, depending on the machine's policy; this
# script neither starts nor stops any service. The benchmarks run their own instances on their own ports.
set -euo pipefail

build=(cmake ninja-build g++ clang clang-format libclang-rt-14-dev libssl-dev libyaml-cpp-dev nlohmann-json3-dev libfmt-dev
       libspdlog-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libsqlite3-dev
       libbrotli-dev mariadb-server mariadb-client libmariadb-dev libmnl-dev pkg-config)
tests=(curl wrk python3 python3-pytest python3-requests openssl procps iproute2 nftables util-linux
       python3-boto3 s3cmd rclone
       knot-dnsutils python3-dnspython dnsutils
       python3-pymysql
       etcd-server etcd-client)
bench=(haproxy varnish
       knot nsd dnsperf
       sysbench strace)
# Any nginx flavour will do; Debian 12's plain `nginx` is installed when none is.
nginx_flavours=(nginx nginx-light nginx-core nginx-full nginx-extras)

installed() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]; }

missing=()
for p in "${build[@]}" "${tests[@]}" "${bench[@]}"; do
  installed "$p" || missing+=("$p")
done
have_nginx=false
for p in "${nginx_flavours[@]}"; do
  if installed "$p"; then have_nginx=true; break; fi
done
$have_nginx || missing+=(nginx)
# The object store's tests drive the aws cli; any `aws` on PATH will do (a newer one from pip, say).
command -v aws >/dev/null || missing+=(awscli)
# The object store's JavaScript SDK test: node >= 18 and npm (Debian 12's nodejs 18 will do; the SDK version
# in tests/integration/js is pinned to one that supports it). Any node on PATH (a newer one, say) will do too.
command -v npm >/dev/null || missing+=(nodejs npm)

[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "install-deps: these packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
