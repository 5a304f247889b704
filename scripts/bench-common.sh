# Shared by the bench-*.sh scripts (sourced, not run): the services, the build cache, the
# RabbitMQ management API and the key pair the load is signed with.
MGMT="http://127.0.0.1:15672/api"
API_KEY="devkey"
API_SECRET="secret"

log() { echo "bench: $*" >&2; }
mgmt() { curl -fsS -u guest:guest "$@"; }

services_env="$(deploy/local/services.sh 2>/dev/null)" # assigned first: a failure stops here
eval "$services_env"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/roomtape/target}"
