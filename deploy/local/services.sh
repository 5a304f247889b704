#!/usr/bin/env bash
# Installs (from Debian packages / crates.io / PyPI) and starts what roomtape needs locally:
# PostgreSQL, RabbitMQ with its management API and Prometheus endpoint, the s3s-fs S3 server,
# the official LiveKit Python SDK used by cross-check tests, Chromium for the console's browser
# test, and ffmpeg for thumbnails. Idempotent: what is installed and running is left alone.
# Prints the settings it established as `export` lines on stdout, for `eval`.
set -euo pipefail

log() { echo "services: $*" >&2; }

S3_PORT="${ROOMTAPE_S3_PORT:-8014}"
S3_ACCESS_KEY="${ROOMTAPE_S3_ACCESS_KEY:-roomtape-local}"
S3_SECRET_KEY="${ROOMTAPE_S3_SECRET_KEY:-roomtape-local-secret}"
S3_ROOT="${ROOMTAPE_S3_ROOT:-${XDG_DATA_HOME:-$HOME/.local/share}/roomtape/s3}"
STATE_DIR="${XDG_STATE_HOME:-$HOME/.local/state}/roomtape"
LIVEKIT_API_VERSION="1.2.2"
S3S_FS_VERSION="0.14.1" # deploy/local/s3s-fs-nodelay/Cargo.toml pins the same

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() { # port, what, seconds
  local deadline=$((SECONDS + $3))
  until port_open "$1"; do
    if [ "$SECONDS" -ge "$deadline" ]; then log "$2 did not open port $1 within $3 s"; return 1; fi
    sleep 0.5
  done
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  log "installing $*"
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

ensure_postgres() {
  command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-client
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    log "starting PostgreSQL $version"
    sudo_if_needed pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2
    local deadline=$((SECONDS + 30))
    until pg_isready -q -h 127.0.0.1 -p 5432; do
      [ "$SECONDS" -lt "$deadline" ] || { log "PostgreSQL did not start"; return 1; }
      sleep 0.5
    done
  fi
  # Trust auth on the project's machines; on a fresh install, a password role of our own.
  if psql "postgres://postgres@127.0.0.1:5432/postgres" -qtAc 'SELECT 1' >/dev/null 2>&1; then
    PG_ADMIN_URL="postgres://postgres@127.0.0.1:5432/postgres"
  else
    log "creating PostgreSQL role roomtape"
    sudo_if_needed runuser -u postgres -- psql -qtAc \
      "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='roomtape') THEN CREATE ROLE roomtape LOGIN CREATEDB PASSWORD 'roomtape'; END IF; END\$\$;" >&2
    PG_ADMIN_URL="postgres://roomtape:roomtape@127.0.0.1:5432/postgres"
  fi
  # The local deployment's own role and database (deploy/local/local.env names them). With trust
  # auth the admin is a superuser, and so is this role: earlier runs may have left tables owned
  # by postgres in the database.
  if [ -z "$(psql "$PG_ADMIN_URL" -qtAc "SELECT 1 FROM pg_roles WHERE rolname='roomtape'")" ]; then
    log "creating PostgreSQL role roomtape"
    psql "$PG_ADMIN_URL" -qtAc "CREATE ROLE roomtape LOGIN SUPERUSER PASSWORD 'roomtape'" >&2
  fi
  if [ -z "$(psql "$PG_ADMIN_URL" -qtAc "SELECT 1 FROM pg_database WHERE datname='roomtape'")" ]; then
    log "creating database roomtape"
    psql "$PG_ADMIN_URL" -qtAc "CREATE DATABASE roomtape OWNER roomtape" >&2
  fi
}

ensure_rabbitmq() {
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  if ! port_open 5672; then
    log "starting RabbitMQ"
    (cd / && sudo_if_needed rabbitmq-server -detached >&2)
    wait_for_port 5672 RabbitMQ 90
  fi
  if ! port_open 15672; then
    log "enabling the RabbitMQ management API (tests create a vhost each)"
    sudo_if_needed rabbitmq-plugins enable rabbitmq_management >&2
    wait_for_port 15672 "RabbitMQ management" 60
  fi
  if ! port_open 15692; then
    # What deploy/observability's dashboard and alerts read, and what its metric-name fixture
    # is captured from (deploy/observability/capture-rabbitmq-metrics.sh).
    log "enabling RabbitMQ's Prometheus endpoint (port 15692)"
    sudo_if_needed rabbitmq-plugins enable rabbitmq_prometheus >&2
    wait_for_port 15692 "RabbitMQ Prometheus endpoint" 60
  fi
  curl -fsS -u guest:guest -X PUT http://127.0.0.1:15672/api/vhosts/roomtape >/dev/null
  curl -fsS -u guest:guest -X PUT -H 'content-type: application/json' \
    -d '{"configure":".*","write":".*","read":".*"}' \
    http://127.0.0.1:15672/api/permissions/roomtape/guest >/dev/null
}

# s3s-fs keeps an object's metadata files (.bucket-<base64 bucket>.object-…) after the object
# and its bucket are deleted; drop those whose bucket is gone (test and benchmark buckets).
forget_deleted_buckets() {
  [ -d "$S3_ROOT" ] && command -v python3 >/dev/null || return 0
  python3 - "$S3_ROOT" <<'PY'
import base64, os, sys
root = sys.argv[1]
for name in os.listdir(root):
    if not name.startswith(".bucket-"):
        continue
    encoded = name[len(".bucket-"):].split(".", 1)[0]
    try:
        bucket = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        continue
    if bucket and "/" not in bucket and not os.path.isdir(os.path.join(root, bucket)):
        os.remove(os.path.join(root, name))
PY
}

# The S3 server: s3s-fs's library with TCP_NODELAY on its connections (deploy/local/s3s-fs-nodelay
# says why), built from this clone once per version. An s3s-fs of an older set-up still holding
# the port is replaced, once: its stalls would show up as the media probe's time.
S3_SERVER=s3s-fs-nodelay
ensure_s3() {
  if [ "$(command -v "$S3_SERVER" >/dev/null && "$S3_SERVER" --version)" != "$S3_SERVER $S3S_FS_VERSION" ]; then
    log "building $S3_SERVER $S3S_FS_VERSION (s3s-fs, an S3 server that checks SigV4 signatures)"
    # Its build folder sits beside the project's cache, not in the clone.
    cargo install --path "$(dirname "$0")/$S3_SERVER" --locked --force \
      --target-dir "${XDG_CACHE_HOME:-$HOME/.cache}/roomtape/s3s-fs-nodelay" >&2
  fi
  mkdir -p "$S3_ROOT/recordings" "$STATE_DIR" # a bucket is a folder of the root
  forget_deleted_buckets
  if port_open "$S3_PORT" && pgrep -x s3s-fs >/dev/null; then
    log "replacing the plain s3s-fs on port $S3_PORT with $S3_SERVER"
    pkill -x s3s-fs || true
    local deadline=$((SECONDS + 10))
    while port_open "$S3_PORT" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  fi
  if ! port_open "$S3_PORT"; then
    log "starting $S3_SERVER on 127.0.0.1:$S3_PORT"
    # From its own root: s3s-fs resolves paths against its working directory, which must
    # outlive the clone this script runs from.
    (cd "$S3_ROOT" && exec nohup "$S3_SERVER" --host 127.0.0.1 --port "$S3_PORT" \
      --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" . \
      >"$STATE_DIR/s3s-fs.log" 2>&1 &)
    wait_for_port "$S3_PORT" "$S3_SERVER" 30
  fi
}

ensure_python_sdk() {
  if ! python3 -c 'import livekit.api' 2>/dev/null; then
    command -v pip3 >/dev/null || python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    log "installing livekit-api $LIVEKIT_API_VERSION from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check "livekit-api==$LIVEKIT_API_VERSION" >&2 \
      || python3 -m pip install --quiet --break-system-packages "livekit-api==$LIVEKIT_API_VERSION" >&2
  fi
}

# Debian's ffmpeg: the processor takes thumbnails of recordings it did not start with it, and the
# thumbnails' tests check the JPEGs with its ffprobe.
ensure_ffmpeg() {
  command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || apt_install --no-install-recommends ffmpeg
}

# Debian's own build, for the console's browser test (tests/tests/it/console.rs drives it over
# the DevTools protocol); nothing downloads a Chrome of its own.
ensure_chromium() {
  command -v chromium >/dev/null || apt_install chromium
}

command -v curl >/dev/null || apt_install curl ca-certificates
ensure_postgres
ensure_rabbitmq
ensure_s3
ensure_python_sdk
ensure_chromium
ensure_ffmpeg

cat <<EXPORTS
export ROOMTAPE_TEST_DATABASE_URL='$PG_ADMIN_URL'
export ROOMTAPE_TEST_AMQP_URL='amqp://guest:guest@127.0.0.1:5672'
export ROOMTAPE_TEST_RABBITMQ_API='http://guest:guest@127.0.0.1:15672'
export ROOMTAPE_TEST_S3_ENDPOINT='http://127.0.0.1:$S3_PORT'
export ROOMTAPE_TEST_S3_ACCESS_KEY='$S3_ACCESS_KEY'
export ROOMTAPE_TEST_S3_SECRET_KEY='$S3_SECRET_KEY'
export ROOMTAPE_LOCAL_DATABASE_URL='${PG_ADMIN_URL%/postgres}/roomtape'
export ROOMTAPE_CHROMIUM='$(command -v chromium)'
EXPORTS
log "PostgreSQL, RabbitMQ, s3s-fs, livekit-api, chromium and ffmpeg are ready"
