#!/usr/bin/env bash
# Makes sure `redis-server` is installed (Debian/Ubuntu packages) for the queue tests and benchmarks.
# The tests start and stop their own private Redis on a free loopback port; this script only installs it.
# With `--start`, it also starts one on a free loopback port and prints `REDIS_URL=redis://127.0.0.1:<port>`.
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  echo "ci-redis: installing redis-server from Debian packages" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
redis-server --version >&2
if [ "${1:-}" = "--start" ]; then
  PORT=$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
  redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --maxmemory-policy noeviction --daemonize yes >/dev/null
  for _ in $(seq 1 100); do
    if redis-cli -p "$PORT" ping >/dev/null 2>&1; then break; fi
    sleep 0.05
  done
  redis-cli -p "$PORT" ping >/dev/null
  echo "REDIS_URL=redis://127.0.0.1:$PORT"
fi
