#!/usr/bin/env bash
# `make compose-smoke`: the compose file run for real by podman-compose with the local images
# (infra/compose.host.yml: harclip's services on the host network, against the services of
# `harclip services up`): model-init writes the random bundle into the `models` volume as uid
# 10001, the worker, API, events app and UI start, frames sent by the camera producer on the host
# come back as predictions through the API. Names (HARCLIP_NS) and ports are this run's own;
# everything is removed afterwards. docs/deploy.md, "Containers".
#   infra/podman/compose-smoke.sh PYTHON COMPOSE...
set -euo pipefail
python=${1:?python}
shift
compose=("$@")
id=cs$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
export HARCLIP_NS="$id-" COMPOSE_PROJECT_NAME="harclip-$id"
port() { "$python" -c 'from harclip.services.process import free_port; print(free_port())'; }
HARCLIP_API_PORT=$(port) HARCLIP_UI_PORT=$(port) HARCLIP_WORKER_METRICS_PORT=$(port)
HARCLIP_STREAM_PORT=$(port) HARCLIP_API_METRICS_PORT=$(port) HARCLIP_STREAM_METRICS_PORT=$(port)
export HARCLIP_API_PORT HARCLIP_UI_PORT HARCLIP_WORKER_METRICS_PORT HARCLIP_STREAM_PORT \
  HARCLIP_API_METRICS_PORT HARCLIP_STREAM_METRICS_PORT
api=http://127.0.0.1:$HARCLIP_API_PORT

# shellcheck disable=SC2329  # run by the EXIT trap
cleanup() {
  "${compose[@]}" logs --tail 20 worker api > "/tmp/$id-compose.log" 2>&1 || true
  "${compose[@]}" down --volumes >/dev/null 2>&1 || true
  "$python" -c "import sys; from harclip.config import load_settings; \
from tests.support.scoped import cleanup; cleanup(load_settings(), sys.argv[1])" "$id" || true
}
trap cleanup EXIT

wait_url() {  # what, url, seconds
  for _ in $(seq "$3"); do curl -fsS -o /dev/null "$2" 2>/dev/null && return 0; sleep 1; done
  echo "compose-smoke: $1 ($2) did not answer within $3 s (logs: /tmp/$id-compose.log)" >&2
  return 1
}

echo "compose-smoke: project $COMPOSE_PROJECT_NAME, names prefixed $HARCLIP_NS, API $api"
"${compose[@]}" run --rm model-init
"${compose[@]}" up -d --no-deps worker api stream ui
wait_url "API /ready" "$api/ready" 240
wait_url "worker /health" "http://127.0.0.1:$HARCLIP_WORKER_METRICS_PORT/health" 60
wait_url "events app /health" "http://127.0.0.1:$HARCLIP_STREAM_PORT/health" 120
wait_url "UI" "http://127.0.0.1:$HARCLIP_UI_PORT/_stcore/health" 120
# the producer makes any missing topic: every one of them this run's
ns=$HARCLIP_NS
HARCLIP_KAFKA__TOPICS__FRAMES=${ns}harclip.frames HARCLIP_KAFKA__TOPICS__UPLOADS=${ns}harclip.uploads \
  HARCLIP_KAFKA__TOPICS__PREDICTIONS=${ns}harclip.predictions \
  HARCLIP_KAFKA__TOPICS__EVENTS=${ns}harclip.events HARCLIP_KAFKA__TOPICS__DLQ=${ns}harclip.frames.dlq \
  HARCLIP_KAFKA__TOPICS__CONTROL=${ns}harclip.control \
  "$python" -m producers camera --source pattern --stream-id smoke --fps 10 --max-frames 12
for _ in $(seq 120); do
  if curl -fsS "$api/streams/smoke/latest" 2>/dev/null | grep -Eq '"seq": ?11[,}]'; then
    echo "compose-smoke: frame 11's prediction read back through the API container"
    curl -fsS "$api/" | "$python" -c 'import json, sys; d = json.load(sys.stdin); \
print("model", d["model"]["name"], "random_weights", d["random_weights"])'
    exit 0
  fi
  sleep 1
done
echo "compose-smoke: no prediction of frame 11 within 120 s (logs: /tmp/$id-compose.log)" >&2
exit 1
