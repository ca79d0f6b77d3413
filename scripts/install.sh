#!/usr/bin/env bash
# Installs what Berth needs on Debian: system packages and a virtualenv in .venv.
# Usage: scripts/install.sh [--test]   (--test adds what the test suite needs)
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(busybox-static procps iproute2 util-linux)
[ "${1:-}" = "--test" ] && pkgs+=(tmux runc skopeo docker-registry docker.io)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Install services (docker.io, docker-registry) without starting them: tests start their own
  # peers on their own sockets; a system dockerd would add a bridge and iptables rules.
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extra=""
[ "${1:-}" = "--test" ] && extra="[test]"
.venv/bin/pip install -q --disable-pip-version-check --config-settings editable_mode=compat -e ".${extra}" 2>&1 | grep -v "^WARNING: Location" || true
# PYTHONDONTWRITEBYTECODE may be set: byte-compile once so every `berth` call does not
# compile its modules again (the CLI is on the hot path of `berth run`).
.venv/bin/python -m compileall -q -j 0 berth >/dev/null
# A lean launcher for the CLI: `python -I -S` skips site (and its .pth hooks), which is a good part
# of a Python start-up; the CLI needs nothing outside the standard library and berth itself.
src=$(.venv/bin/python -c 'import berth, os; print(os.path.dirname(os.path.dirname(os.path.abspath(berth.__file__))))')
cat > .venv/bin/berth <<LAUNCHER
#!$(pwd)/.venv/bin/python3 -IS
import sys
sys.path.insert(0, "$src")
from berth.cli.main import main
sys.exit(main())
LAUNCHER
chmod +x .venv/bin/berth
