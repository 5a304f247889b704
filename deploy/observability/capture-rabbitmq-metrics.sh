#!/usr/bin/env bash
# Writes the metric names a real RabbitMQ's rabbitmq_prometheus plugin serves, per endpoint, to
# deploy/observability/rabbitmq-metric-names.txt: the fixture deploy/validate.py checks every
# rabbitmq_* name of the dashboard and alert rules against, so no query reads a metric that
# does not exist. Rerun it after a RabbitMQ upgrade and commit the difference.
#
# Needs a running RabbitMQ with the management and prometheus plugins (deploy/local/services.sh
# starts one). Per-queue metrics are only served while a queue exists, so a throwaway vhost with
# a quorum queue holding one message is made for the capture and deleted afterwards.
set -euo pipefail

MANAGEMENT="${RABBITMQ_MANAGEMENT_URL:-http://127.0.0.1:15672}"
PROMETHEUS="${RABBITMQ_PROMETHEUS_URL:-http://127.0.0.1:15692}"
CREDENTIALS="${RABBITMQ_CREDENTIALS:-guest:guest}"
VHOST="roomtape-metrics-capture"
OUTPUT="$(dirname "$0")/rabbitmq-metric-names.txt"
# The endpoints a Prometheus may scrape; the dashboard and alerts use /metrics/per-object
# (per-queue series with a queue label); the others are captured to show what they lack.
ENDPOINTS=(/metrics /metrics/per-object "/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count")

api() { # method, path, [json body]
  curl -fsS -u "$CREDENTIALS" -X "$1" -H 'content-type: application/json' \
    ${3:+-d "$3"} "$MANAGEMENT/api$2" >/dev/null
}

cleanup() { api DELETE "/vhosts/$VHOST" 2>/dev/null || true; }
trap cleanup EXIT

api PUT "/vhosts/$VHOST"
api PUT "/permissions/$VHOST/${CREDENTIALS%%:*}" '{"configure":".*","write":".*","read":".*"}'
api PUT "/queues/$VHOST/capture.quorum" '{"durable":true,"arguments":{"x-queue-type":"quorum"}}'
api POST "/exchanges/$VHOST/amq.default/publish" \
  '{"properties":{"delivery_mode":2},"routing_key":"capture.quorum","payload":"x","payload_encoding":"string"}'
# Queue metrics are collected every few seconds; wait until the new queue's show up.
for _ in $(seq 1 60); do
  curl -fsS "$PROMETHEUS/metrics/per-object" |
    grep -q '^rabbitmq_queue_messages{.*queue="capture.quorum"' && break
  sleep 1
done

# One line per metric name: the name, then the label names its series carry (comma-separated).
# Family names from the TYPE lines count too (served even while a family has no series); the
# samples' names include a histogram's _bucket, _sum and _count, which are what queries use.
NAMES_AND_LABELS='
import re, sys
labels = {}
for line in sys.stdin:
    if line.startswith("# TYPE "):
        labels.setdefault(line.split()[2], set())
    elif line.strip() and not line.startswith("#"):
        name, _, rest = line.partition("{")
        name = name.split()[0]
        found = re.findall(r"(\w+)=\"", rest.rpartition("}")[0]) if rest else []
        labels.setdefault(name, set()).update(found)
for name in sorted(labels):
    print(" ".join([name, ",".join(sorted(labels[name]))]).rstrip())
'

version=$(curl -fsS -u "$CREDENTIALS" "$MANAGEMENT/api/overview" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["rabbitmq_version"])')
{
  echo "# Metric names served by RabbitMQ $version's rabbitmq_prometheus, by endpoint."
  echo "# Each line: a name, then its label names. Written by"
  echo "# deploy/observability/capture-rabbitmq-metrics.sh; read by deploy/validate.py."
  for endpoint in "${ENDPOINTS[@]}"; do
    echo "[$endpoint]"
    curl -fsS "$PROMETHEUS$endpoint" | python3 -c "$NAMES_AND_LABELS"
  done
} >"$OUTPUT"
echo "wrote $(grep -vc '^[#[]' "$OUTPUT") names to $OUTPUT"
