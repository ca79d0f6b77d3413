#!/usr/bin/env bash
# One command: install Berth, start berthd if it is not running, make busybox:latest from
# Debian's busybox-static, and run a container.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh

SOCK=${BERTH_SOCK:-/run/berth/berth.sock}
export BERTH_HOST="unix://$SOCK"
B=.venv/bin/berth

if ! $B version >/dev/null 2>&1; then
  mkdir -p /var/log
  nohup .venv/bin/berthd -H "unix://$SOCK" >>/var/log/berthd.log 2>&1 &
  for _ in $(seq 100); do $B version >/dev/null 2>&1 && break; sleep 0.1; done
  echo "berthd started (pid $!), log in /var/log/berthd.log"
fi

if ! $B image inspect busybox:latest >/dev/null 2>&1; then
  tar=$(mktemp --suffix=.tar)
  .venv/bin/python -m berth.images.rootfs "$tar"
  $B import -c 'CMD ["sh"]' "$tar" busybox:latest
  rm -f "$tar"
fi

$B run --rm busybox sh -c 'echo "Hello from a Berth container: $(hostname), pid $$, kernel $(uname -r)"'
echo
echo "Try: export BERTH_HOST=$BERTH_HOST; $B run -it --rm busybox sh"
