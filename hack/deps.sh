#!/usr/bin/env bash
# Installs the system packages a gavel task needs, when they are missing.
# Used by `make dev`, `make test`, `make proto` and .ci/run, so a fresh
# machine with Go needs nothing else. Idempotent: nothing is fetched when
# everything is there.
#
#   hack/deps.sh test    packages the test suite needs
#   hack/deps.sh dev     packages `gavel dev` needs
#   hack/deps.sh proto   protoc, for `make proto`
set -euo pipefail

group="${1:-test}"
case "$group" in
  # The Garden server (executor/gardenrunc) drives runc and iptables;
  # iproute2 is for operators and tests that inspect links; busybox-static
  # is the test and dev rootfs (internal/testrootfs); binutils assembles
  # garden-init (`make init`, and the test that checks initcode.go).
  test) pkgs=(runc iptables iproute2 busybox-static binutils) ;;
  dev) pkgs=(runc iptables iproute2 busybox-static) ;;
  proto) pkgs=(protobuf-compiler libprotobuf-dev) ;;
  *) echo "usage: $0 test|dev|proto" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  sudo=sudo
else
  sudo=
fi
echo "hack/deps.sh: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
