#!/usr/bin/env bash
# Start RabbitMQ and Redis on this machine if they are not answering (installing them from
# Debian's packages if they are missing). Users with Docker can run `docker compose -f
# docker/compose.yaml up -d` instead.
set -euo pipefail

wait_for() {  # wait_for <what> <seconds> <command...>
  local what=$1 seconds=$2; shift 2
  for _ in $(seq "$seconds"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "error: $what did not come up within ${seconds}s" >&2
  return 1
}

install_if_missing() {  # install_if_missing <command> <debian package>
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "installing $2 ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
}

if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
  install_if_missing rabbitmq-server rabbitmq-server
  echo "starting RabbitMQ ..."
  rabbitmq-server -detached
  wait_for RabbitMQ 90 rabbitmq-diagnostics -q check_port_connectivity
fi

# The management HTTP API lets `celery -A proj dlx verify` see bindings and extra entities.
# Enabling a plugin starts it on the running node: no restart, other clients stay connected.
if ! rabbitmq-plugins -q is_enabled rabbitmq_management >/dev/null 2>&1; then
  echo "enabling the RabbitMQ management plugin ..."
  rabbitmq-plugins -q enable rabbitmq_management >/dev/null
fi
wait_for "RabbitMQ management API" 60 rabbitmq-diagnostics -q check_port_listener 15672

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  install_if_missing redis-server redis-server
  echo "starting Redis ..."
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for Redis 30 redis-cli -h 127.0.0.1 -p 6379 ping
fi
echo "RabbitMQ (with the management API) and Redis are up."
