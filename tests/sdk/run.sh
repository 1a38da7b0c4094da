#!/usr/bin/env bash
# The OpenAPI contract, proven with the real tools against a live authd:
#   1. openapi-spec-validator and `redocly lint` (recommended rules) on openapi.yaml;
#   2. a TypeScript client generated from it (openapi-typescript + openapi-fetch), type-checked
#      with `tsc --strict`, running the SDK flow (flow.ts), then the admin API with a service key
#      of scope `admin` (AUTHD_ADMIN_KEY, made here, given to the flows and the docs UI only), and
#      a password reset whose link the flow reads from the mail authd writes to AUTHD_MAIL_DIR
#      (no SMTP);
#   3. a Python client generated from it (openapi-python-client), running the same flows (flow.py);
#   4. schemathesis over every operation (no 5xx, responses conform, no undocumented status);
#   5. the docs UI at /docs in headless Chromium (docs.ts), with screenshots: "Try it out" on the
#      user, feed, admin (authorized with AUTHD_ADMIN_KEY) and forgot-password operations.
# Installs what it needs from the package registries only (apt: chromium; npm: tests/sdk's lock
# file; PyPI: requirements.txt into target/sdk-venv), starts authd (target/release/authd) on a
# free port with a temporary SQLite database, stops it on exit, prints each step's duration.
#
# Usage: bash tests/sdk/run.sh
# Env:   AUTHD_BIN (default target/release/authd), ST_MAX_EXAMPLES (default 20),
#        ST_SEED (default 20261126), SDK_OUT (default target/sdk-artifacts).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

SDK="$ROOT/tests/sdk"
OUT="${SDK_OUT:-$ROOT/target/sdk-artifacts}"
VENV="$ROOT/target/sdk-venv"
BIN="${AUTHD_BIN:-$ROOT/target/release/authd}"
ST_MAX_EXAMPLES="${ST_MAX_EXAMPLES:-20}"
ST_SEED="${ST_SEED:-20261126}"
export REDOCLY_TELEMETRY=off NO_UPDATE_NOTIFIER=1 npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
mkdir -p "$OUT"

TIMINGS=()
SERVER_PID=""
CURRENT_STEP=""
STEP_START=0
TMP="$(mktemp -d)"
RUN_START=$(date +%s%3N)

# seconds since $1 (milliseconds since the epoch), with one decimal
since() {
  local ms=$(( $(date +%s%3N) - $1 ))
  printf '%d.%d' $(( ms / 1000 )) $(( (ms % 1000) / 100 ))
}

summary() {
  local rc=$?
  if [[ -n "$CURRENT_STEP" ]]; then
    TIMINGS+=("$(printf '%-26s %7s s  FAILED' "$CURRENT_STEP" "$(since "$STEP_START")")")
  fi
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
  echo
  echo "sdk: step durations"
  local t
  for t in "${TIMINGS[@]}"; do echo "  $t"; done
  printf '  %-26s %7s s\n' "total" "$(since "$RUN_START")"
  if [[ $rc -eq 0 ]]; then
    echo "sdk: all steps passed (artifacts in ${OUT#"$ROOT"/})"
  else
    echo "sdk: FAILED (exit $rc) in: ${CURRENT_STEP:-?}; server log: ${OUT#"$ROOT"/}/authd.log"
  fi
  exit "$rc"
}
trap summary EXIT

# step NAME COMMAND...: runs the command under `set -e` (a failure ends the run, and the
# summary names the step) and records how long it took.
step() {
  CURRENT_STEP=$1
  shift
  echo
  echo "== sdk: $CURRENT_STEP"
  STEP_START=$(date +%s%3N)
  "$@"
  TIMINGS+=("$(printf '%-26s %7s s' "$CURRENT_STEP" "$(since "$STEP_START")")")
  CURRENT_STEP=""
}

# --- installs ------------------------------------------------------------------------------

apt_install() {
  # Retries while another apt/dpkg holds the lock (dpkg's own wait covers most of it).
  local i
  for i in $(seq 1 20); do
    if apt-get -o DPkg::Lock::Timeout=60 update -qq && \
       DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 install -y -qq "$@"; then
      return 0
    fi
    echo "sdk: apt-get failed (attempt $i), retrying in 10 s"
    sleep 10
  done
  return 1
}

install_chromium() {
  if [[ -x /usr/bin/chromium ]]; then
    echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
    return 0
  fi
  apt_install chromium
}

install_npm() {
  (cd "$SDK" && npm ci --no-audit --no-fund --loglevel=error)
}

install_pip() {
  if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$SDK/requirements.txt"
}

build_authd() {
  if [[ -n "${AUTHD_BIN:-}" ]]; then
    echo "using AUTHD_BIN=$BIN as it is"
    [[ -x "$BIN" ]]
    return
  fi
  # Builds when missing, and when older than the sources (cargo decides; a no-op when fresh): a
  # stale binary would serve another spec than the one under test.
  cargo build --release --bin authd
}

# --- the server ----------------------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_server() {
  PORT="$(free_port)"
  URL="http://127.0.0.1:$PORT"
  # No SMTP: authd writes its mail as .eml files here, where the flows read the reset link.
  AUTHD_MAIL_DIR="$TMP/mail"
  export AUTHD_MAIL_DIR
  DATABASE_URL="sqlite://$TMP/authd.db?mode=rwc" \
  AUTHD_LISTEN="127.0.0.1:$PORT" \
  AUTHD_RATE_LIMITS=off \
  AUTHD_REUSE_GRACE_SECS=0 \
  RUST_LOG="${RUST_LOG:-warn}" \
    "$BIN" serve >"$OUT/authd.log" 2>&1 &
  SERVER_PID=$!
  local i
  for i in $(seq 1 150); do
    if curl -fsS -o /dev/null "$URL/healthz" 2>/dev/null; then
      echo "authd is up at $URL (pid $SERVER_PID)"
      # A service key for the operations resource servers use (the docs UI authorizes with it).
      AUTHD_SERVICE_KEY="$(DATABASE_URL="sqlite://$TMP/authd.db?mode=rwc" "$BIN" service-keys create \
        --name sdk --scope revocations:read,introspect 2>>"$OUT/authd.log")"
      export AUTHD_SERVICE_KEY
      # An admin key for the SDK flows' admin scenario and for the docs UI (which authorizes
      # `adminKey` with it and only reads: a users search): never for schemathesis (it would
      # delete and disable users; schemathesis_run unsets it).
      AUTHD_ADMIN_KEY="$(DATABASE_URL="sqlite://$TMP/authd.db?mode=rwc" "$BIN" service-keys create \
        --name sdk-admin --scope admin 2>>"$OUT/authd.log")"
      export AUTHD_ADMIN_KEY
      # The binary under test must serve the committed spec.
      curl -fsS "$URL/openapi.yaml" -o "$TMP/served.yaml"
      if ! cmp -s "$TMP/served.yaml" openapi.yaml; then
        echo "sdk: the server's /openapi.yaml differs from openapi.yaml: rebuild authd, or regenerate the file with \`cargo run -q -- openapi > openapi.yaml\`"
        return 1
      fi
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "sdk: authd exited; its log:"
      cat "$OUT/authd.log"
      return 1
    fi
    sleep 0.2
  done
  echo "sdk: authd did not answer /healthz within 30 s"
  return 1
}

# --- the checks ----------------------------------------------------------------------------

validate_spec() {
  "$VENV/bin/openapi-spec-validator" openapi.yaml
}

lint_spec() {
  # Recommended rules (tests/sdk/redocly.yaml); errors fail the command, and warnings fail here.
  local out
  out="$(cd "$SDK" && npx --no-install redocly lint ../../openapi.yaml --format=stylish 2>&1)" || {
    echo "$out"
    return 1
  }
  echo "$out" | grep -v '[║╔╚]' || true
  if echo "$out" | grep -Eq '^\s+[0-9]+:[0-9]+\s+warning'; then
    echo "sdk: redocly lint reported warnings"
    return 1
  fi
}

typescript_sdk() {
  (
    cd "$SDK"
    rm -rf generated dist
    npx --no-install openapi-typescript ../../openapi.yaml -o generated/authd.d.ts
    npx --no-install tsc -p tsconfig.json --strict --noEmit
    npx --no-install tsc -p tsconfig.json --noEmit false
    node dist/flow.js "$URL"
  )
}

python_sdk() {
  "$VENV/bin/openapi-python-client" generate --path openapi.yaml --config "$SDK/openapi-python-client.yaml" \
    --output-path "$ROOT/target/sdk-py" --overwrite
  PYTHONPATH="$ROOT/target/sdk-py" "$VENV/bin/python" "$SDK/flow.py" "$URL"
}

schemathesis_run() {
  # The account schemathesis logs in with (see schemathesis.toml).
  export AUTHD_ST_EMAIL="schemathesis@example.com" AUTHD_ST_PASSWORD="schemathesis-$RANDOM$RANDOM"
  curl -fsS -o /dev/null -X POST "$URL/auth/register" -H 'content-type: application/json' \
    -d "{\"email\":\"$AUTHD_ST_EMAIL\",\"password\":\"$AUTHD_ST_PASSWORD\"}"
  # Without the admin key in its environment: schemathesis never gets it (it would delete users);
  # the admin operations answer it 401 invalid_service_key, which they document.
  env -u AUTHD_ADMIN_KEY "$VENV/bin/schemathesis" --config-file "$SDK/schemathesis.toml" run openapi.yaml \
    --url "$URL" \
    --checks all \
    --max-examples "$ST_MAX_EXAMPLES" \
    --seed "$ST_SEED" \
    --generation-database none \
    --request-timeout 10 \
    --no-color \
    --report junit --report-junit-path "$OUT/schemathesis-junit.xml"
}

docs_ui() {
  # With AUTHD_SERVICE_KEY, AUTHD_ADMIN_KEY and AUTHD_MAIL_DIR (exported by start_server).
  (cd "$SDK" && node dist/docs.js "$URL" "$OUT")
}

step "install chromium (apt)" install_chromium
step "install npm packages" install_npm
step "install PyPI packages" install_pip
step "build authd (release)" build_authd
step "start authd" start_server
step "openapi-spec-validator" validate_spec
step "redocly lint" lint_spec
step "TypeScript SDK + flow" typescript_sdk
step "Python SDK + flow" python_sdk
step "schemathesis" schemathesis_run
step "docs UI (chromium)" docs_ui
