#!/usr/bin/env bash
# Validates the deployment files without a container engine or a cluster: docker-compose.yml by
# Debian's docker-compose (`config`), the Dockerfile by hadolint, deploy/kubernetes as rendered by
# kubectl's kustomize, then deploy/validate.py's checks (Kubernetes schemas, cross-references,
# the binaries' variables, binds and metrics, RabbitMQ's metric names), and validate.py's own
# tests (deploy/validate_test.py: each breaks one thing and expects it named). One line per check.
#
#   deploy/validate.sh                  every check
#   deploy/validate.sh --metric-names   the roomtape_* metrics the dashboard and alerts use
#
# Installs what is missing, once: docker-compose from Debian, the rest from PyPI (pinned in
# deploy/validate-requirements.txt) into a venv under ~/.cache/roomtape/deploy-tools.
set -euo pipefail
cd "$(dirname "$0")/.."

# No __pycache__ left in the clone.
export PYTHONDONTWRITEBYTECODE=1
TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/roomtape/deploy-tools"
REQUIREMENTS=deploy/validate-requirements.txt

log() { echo "validate: $*" >&2; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  log "installing $* (Debian)"
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_tools() {
  # Debian's 1.x build: PyPI's needs a PyYAML that no longer builds.
  command -v docker-compose >/dev/null || apt_install docker-compose
  if ! cmp -s "$REQUIREMENTS" "$TOOLS/requirements.txt"; then
    log "installing $REQUIREMENTS into $TOOLS (PyPI)"
    rm -rf "$TOOLS"
    python3 -m venv "$TOOLS" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$TOOLS"; }
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS" >&2
    cp "$REQUIREMENTS" "$TOOLS/requirements.txt"
  fi
}

ensure_tools
if [ "${1:-}" = --metric-names ]; then
  exec "$TOOLS/bin/python" deploy/validate.py --metric-names
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=0
# Runs a tool; its output is shown only when it fails.
step() { # name, summary, command...
  local name="$1" summary="$2"
  shift 2
  if "$@" >"$work/$name.out" 2>&1; then
    echo "ok   $name: $summary"
  else
    echo "FAIL $name: $*"
    sed 's/^/       /' "$work/$name.out"
    failed=1
  fi
}

# Interpolation from the files alone: no .env of the developer's, no ROOMTAPE_* of the shell.
unset ROOMTAPE_ENV_FILE ROOMTAPE_TAG
touch "$work/empty.env"
compose() { docker-compose --env-file "$work/empty.env" "$@"; }
step compose-config "docker-compose $(docker-compose version --short) accepts docker-compose.yml" \
  compose config -q
compose config >"$work/compose.yml" 2>/dev/null || true
step hadolint "Dockerfile lints clean ($("$TOOLS/bin/hadolint" --version | grep -o '[0-9.]*' | head -n 1))" \
  "$TOOLS/bin/hadolint" Dockerfile
step kustomize "deploy/kubernetes renders (kubectl kustomize)" \
  "$TOOLS/bin/kubectl" kustomize deploy/kubernetes -o "$work/kubernetes.yml"

if [ "$failed" = 0 ]; then
  "$TOOLS/bin/python" deploy/validate.py --compose "$work/compose.yml" --kubernetes "$work/kubernetes.yml" ||
    failed=1
fi
if [ "$failed" = 0 ]; then
  step validate-self-test "each check catches the breakage it exists for (deploy/validate_test.py)" \
    env PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/python" -m unittest deploy/validate_test.py
fi
if [ "$failed" = 0 ]; then
  echo "validate: the deployment files passed every check"
else
  echo "validate: FAILED (the lines above name the file and field)"
fi
exit "$failed"
