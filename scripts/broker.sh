#!/usr/bin/env bash
# make broker: make sure a RabbitMQ answers at CHAT_TUI_AMQP_URL (default: local).
# 1. it answers: use it; 2. a Docker engine: docker compose up; 3. rabbitmq-server is
# installed: start it detached; 4. otherwise say how to install one, and fail.
set -u
PY=${PY:-.venv/bin/python}
URL=${CHAT_TUI_AMQP_URL:-amqp://guest:guest@localhost:5672/}
# What the messages show: the URL without its password.
SHOWN=$(printf '%s' "$URL" | sed -E 's#://([^:@/]*):[^@/]*@#://\1:***@#')

answers() { CHAT_TUI_AMQP_URL="$URL" "$PY" scripts/broker_answers.py "${1:-3}"; }

wait_for_it() {
  local what=$1 deadline=$((SECONDS + ${2:-90}))
  while (( SECONDS < deadline )); do
    if answers 3 >/dev/null 2>&1; then echo "broker: $what is up at $SHOWN"; return 0; fi
    sleep 2
  done
  echo "broker: $what did not answer at $SHOWN within ${2:-90} s" >&2
  answers 3 >&2
  return 1
}

if answers 3 >/dev/null 2>&1; then
  echo "broker: RabbitMQ answers at $SHOWN"
  exit 0
fi
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  echo "broker: starting RabbitMQ with docker compose"
  docker compose -f compose.dev.yaml up -d && wait_for_it "docker compose" 120
  exit $?
fi
RABBITMQ_SERVER=$(command -v rabbitmq-server || ls /usr/sbin/rabbitmq-server /usr/lib/rabbitmq/bin/rabbitmq-server 2>/dev/null | head -n 1)
if [ -n "$RABBITMQ_SERVER" ]; then
  echo "broker: starting $RABBITMQ_SERVER -detached"
  if [ "$(id -u)" -eq 0 ] || [ -w /var/lib/rabbitmq ]; then
    "$RABBITMQ_SERVER" -detached
  else
    sudo "$RABBITMQ_SERVER" -detached
  fi
  wait_for_it "rabbitmq-server" 90
  exit $?
fi
cat >&2 <<MSG
broker: no RabbitMQ answers at $SHOWN, and none can be started here.
Install and start one with:
    sudo apt-get install -y rabbitmq-server && sudo rabbitmq-server -detached
or, with Docker:
    docker compose -f compose.dev.yaml up -d
or point CHAT_TUI_AMQP_URL at a running RabbitMQ.
MSG
exit 1
