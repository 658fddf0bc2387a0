#!/usr/bin/env bash
# RabbitMQ 4.0.5 beside the system's 3.10.8 node, for running the suites on 4.x.
#
#   scripts/rabbitmq4.sh start    provision once (cached), then start the node (idempotent)
#   scripts/rabbitmq4.sh stop     stop the node and unmount what start mounted (idempotent)
#   scripts/rabbitmq4.sh ctl ARGS rabbitmqctl of the 4.0.5 node (usable as DLX_RABBITMQCTL)
#   scripts/rabbitmq4.sh status   is the node up; its version
#   scripts/rabbitmq4.sh env      the DLX_TEST_* variables pointing the suites at the node
#
# Debian trixie packages RabbitMQ 4.0.5 on Erlang 27; it is installed into a debootstrap'ed
# chroot under $DLX_RABBITMQ4_CACHE, so the host's packages (and its 3.10.8 node on 5672/15672,
# node name rabbit@<host>) are never touched.  The node shares the host's network and epmd and
# listens on 127.0.0.1 only.  "Strict" mode (default) switches on the two denials RabbitMQ 4.3
# makes default: transient non-exclusive queues and global QoS (DLX_RABBITMQ4_STRICT=0: off).
# $CACHE/bin holds rabbitmq-server/rabbitmqctl wrappers that run the chroot's binaries with the
# caller's environment: DLX_RABBITMQ_BIN=$CACHE/bin makes celery_dlx.testing.RabbitNode start
# throwaway 4.0.5 nodes (the host's /tmp is bind-mounted into the chroot for their directories).
# Needs root (chroot, mount).
set -euo pipefail

CACHE=${DLX_RABBITMQ4_CACHE:-/var/cache/celery_dlx/rabbitmq4}
ROOT=$CACHE/root
MIRROR=${DLX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
NODENAME=${DLX_RABBITMQ4_NODENAME:-celery_dlx4@localhost}
PORT=${DLX_RABBITMQ4_PORT:-5682}
DIST_PORT=${DLX_RABBITMQ4_DIST_PORT:-25682}
MGMT_PORT=${DLX_RABBITMQ4_MANAGEMENT_PORT:-15682}
STRICT=${DLX_RABBITMQ4_STRICT:-1}
STATE=/var/lib/celery_dlx4   # inside the chroot: data, logs, config, cookie ($HOME)
BIN=/usr/lib/rabbitmq/bin    # inside the chroot

die() { echo "rabbitmq4.sh: $*" >&2; exit 1; }

provision() {
  [[ -e $ROOT/.celery_dlx-provisioned ]] && return 0
  [[ $(id -u) == 0 ]] || die "provisioning needs root (debootstrap, chroot)"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  [[ -e $ROOT/.celery_dlx-provisioned ]] && return 0
  if ! command -v debootstrap >/dev/null 2>&1; then
    echo "installing debootstrap ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null
  fi
  local build=$CACHE/root.build
  rm -rf --one-file-system "$build"
  echo "debootstrap trixie into $build ..."
  debootstrap --variant=minbase trixie "$build" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  cp /etc/resolv.conf "$build/etc/resolv.conf"
  # Packages must not start services inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$build/usr/sbin/policy-rc.d"
  chmod 755 "$build/usr/sbin/policy-rc.d"
  mount -t proc proc "$build/proc"
  echo "installing rabbitmq-server in the chroot ..."
  if ! chroot "$build" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      rabbitmq-server >"$CACHE/apt.log" 2>&1; then
    umount "$build/proc"; tail -20 "$CACHE/apt.log" >&2; die "apt-get install failed (log: $CACHE/apt.log)"
  fi
  umount "$build/proc"
  chroot "$build" dpkg-query -W -f='${Version}\n' rabbitmq-server >"$build/.celery_dlx-provisioned"
  mv "$build" "$ROOT"
  write_wrappers
  echo "RabbitMQ $(cat "$ROOT/.celery_dlx-provisioned") provisioned in $ROOT"
}

mounts() {  # /proc for Erlang, the host's /tmp for RabbitNode's directories
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
  mountpoint -q "$ROOT/tmp" || mount --bind /tmp "$ROOT/tmp"
}

unmounts() {
  local m
  for m in tmp proc; do
    if mountpoint -q "$ROOT/$m" && ! umount "$ROOT/$m"; then
      echo "rabbitmq4.sh: $ROOT/$m is busy (a throwaway node still running?); left mounted" >&2
    fi
  done
}

write_wrappers() {  # $CACHE/bin/<tool>: the chroot's tool, with the caller's environment and cwd
  mkdir -p "$CACHE/bin"
  local tool
  for tool in rabbitmq-server rabbitmqctl rabbitmq-diagnostics rabbitmq-plugins rabbitmq-queues; do
    cat >"$CACHE/bin/$tool" <<EOF
#!/bin/sh
# RabbitMQ 4.0.5's $tool from the chroot $ROOT (written by celery_dlx scripts/rabbitmq4.sh).
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
mountpoint -q "$ROOT/tmp" || mount --bind /tmp "$ROOT/tmp"
exec chroot "$ROOT" /bin/sh -c 'cd "\$1" 2>/dev/null || cd /; shift; exec "\$@"' sh "\$PWD" $BIN/$tool "\$@"
EOF
    chmod 755 "$CACHE/bin/$tool"
  done
}

node_env() {  # the environment of this script's node, for `env -i`-free chroot calls
  echo HOME=$STATE RABBITMQ_NODENAME=$NODENAME RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT=$PORT RABBITMQ_DIST_PORT=$DIST_PORT \
    RABBITMQ_MNESIA_BASE=$STATE/mnesia RABBITMQ_LOG_BASE=$STATE/log \
    RABBITMQ_CONFIG_FILE=$STATE/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$STATE/enabled_plugins \
    RABBITMQ_PID_FILE=$STATE/pid
}

in_chroot() {  # in_chroot <tool> args...: a tool of the chroot, as this script's node
  local tool=$1; shift
  # shellcheck disable=SC2046
  chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 $(node_env) "$BIN/$tool" "$@"
}

running() { [[ -d $ROOT ]] && mountpoint -q "$ROOT/proc" && in_chroot rabbitmqctl -q -n "$NODENAME" ping >/dev/null 2>&1; }

start() {
  provision
  [[ -x $CACHE/bin/rabbitmqctl ]] || write_wrappers
  mounts
  if running; then echo "RabbitMQ 4 node $NODENAME already running on 127.0.0.1:$PORT"; return 0; fi
  # A fresh node each start: no queues, vhosts or users left from an earlier run.
  rm -rf --one-file-system "${ROOT:?}$STATE"
  mkdir -p "$ROOT$STATE/log"
  head -c 24 /dev/urandom | base64 | tr -dc A-Za-z0-9 >"$ROOT$STATE/.erlang.cookie"
  chmod 400 "$ROOT$STATE/.erlang.cookie"
  {
    echo "listeners.tcp.default = 127.0.0.1:$PORT"
    echo "management.tcp.ip = 127.0.0.1"
    echo "management.tcp.port = $MGMT_PORT"
    echo "log.file.level = info"
    if [[ $STRICT == 1 ]]; then
      echo "deprecated_features.permit.transient_nonexcl_queues = false"
      echo "deprecated_features.permit.global_qos = false"
    fi
  } >"$ROOT$STATE/rabbitmq.conf"
  echo "[rabbitmq_management]." >"$ROOT$STATE/enabled_plugins"
  echo "starting RabbitMQ $(cat "$ROOT/.celery_dlx-provisioned") as $NODENAME on 127.0.0.1:$PORT (management $MGMT_PORT, strict=$STRICT) ..."
  # setsid: the node outlives this script and the CI step that ran it.
  # shellcheck disable=SC2046
  setsid chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 $(node_env) \
    "$BIN/rabbitmq-server" >"$CACHE/server.out" 2>&1 </dev/null &
  local i
  for i in $(seq 120); do
    if in_chroot rabbitmqctl -q -n "$NODENAME" await_startup --timeout 5 >/dev/null 2>&1; then break; fi
    if ! kill -0 $! 2>/dev/null; then tail -30 "$CACHE/server.out" >&2; die "the node exited during startup"; fi
    sleep 1
    [[ $i == 120 ]] && { tail -30 "$CACHE/server.out" >&2; die "the node did not start within 120s"; }
  done
  for i in $(seq 60); do
    in_chroot rabbitmq-diagnostics -q -n "$NODENAME" check_port_listener "$MGMT_PORT" >/dev/null 2>&1 && break
    sleep 1
    [[ $i == 60 ]] && die "the management API did not listen on $MGMT_PORT within 60s"
  done
  echo "RabbitMQ $(in_chroot rabbitmqctl -q -n "$NODENAME" version) up: amqp://guest:guest@127.0.0.1:$PORT// http://127.0.0.1:$MGMT_PORT"
}

stop() {
  if [[ -d $ROOT ]] && running; then
    in_chroot rabbitmqctl -q -n "$NODENAME" stop
    echo "RabbitMQ 4 node $NODENAME stopped"
  fi
  [[ -d $ROOT ]] && unmounts
  return 0
}

status() {
  if running; then
    echo "RabbitMQ $(in_chroot rabbitmqctl -q -n "$NODENAME" version) node $NODENAME up on 127.0.0.1:$PORT (management $MGMT_PORT)"
  else
    echo "RabbitMQ 4 node $NODENAME not running"; return 1
  fi
}

here=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  ctl) shift; mounts; in_chroot rabbitmqctl -n "$NODENAME" "$@" ;;
  env)
    echo "export DLX_TEST_BROKER_URL=amqp://guest:guest@127.0.0.1:$PORT//"
    echo "export DLX_TEST_MANAGEMENT_URL=http://127.0.0.1:$MGMT_PORT"
    echo "export DLX_RABBITMQCTL=\"$here/rabbitmq4.sh ctl\""
    echo "export DLX_RABBITMQ_BIN=$CACHE/bin"
    ;;
  *) echo "usage: $0 start|stop|ctl ARGS|status|env" >&2; exit 2 ;;
esac
