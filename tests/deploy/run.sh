#!/usr/bin/env bash
# authd deployed as in production: nginx terminating TLS in front of three instances that share
# one Postgres database through pgbouncer in transaction-pooling mode. Everything runs on
# loopback, on free ports, in a temp dir; everything started here is stopped on exit.
#
#   tests/deploy/run.sh            # exit 0 only when every smoke step passed
#
# Settings (environment):
#   AUTHD_BIN     the binary (default target/release/authd)
#   PG_ADMIN_URL  a superuser URL of the Postgres server (default postgres://postgres@127.0.0.1:5432/postgres)
#   DB_ROUTE      pgbouncer (default) | direct: what the serving instances' DATABASE_URL points to
#   POOL_MODE     transaction (default) | session: pgbouncer's pool_mode
#   MIGRATE_VIA   pgbouncer (default: `authd migrate` through pgbouncer, then directly if that
#                 fails) | direct | none (the instances migrate when they start)
#   URL_EXTRA     appended to the instances' DATABASE_URL, such as ?statement-cache-capacity=0
#   DB_TIMEOUTS   1 (default): ALTER DATABASE ... SET statement_timeout and
#                 idle_in_transaction_session_timeout, which pgbouncer drops from the startup
#                 packet; 0: don't
#   SYNC_MS       AUTHD_SYNC_INTERVAL_MS of the instances (unset: authd's default, 500 ms)
#   ROUNDS        how many times the smoke flow runs (default 3; each round is a new user)
#   FAILOVER      1 (default): stop one instance at the end and check nginx routes around it
#   KEEP_DB       1: leave the database in place (default: dropped on exit)
#   BENCH         1: rate limits off, and the refresh-chain measurement runs (with
#                 NODE_TEST_FILTER=throughput, only it): figures in <artifacts>/logs/cluster-figures.jsonl
#   NODE_TESTS    1 (default): run tests/deploy/*.test.mjs against the deployment; 0: don't
#   NODE_TEST_FILES  which test files instead (space-separated paths)
#   NODE_TEST_FILTER a --test-name-pattern for them
#   ARTIFACTS     where the logs are copied (default <repo>/target/deploy-artifacts), in
#                 the subdirectory RUN_NAME (default latest)
#
# Known results (authd 0.1.0, sqlx 0.9.0, pgbouncer 1.18.0):
# - POOL_MODE=transaction: `authd migrate` through pgbouncer works (one transaction, advisory
#   lock is transaction-scoped), but every instance exits at start with `prepared statement
#   "sqlx_s_1" already exists` (sqlx names its prepared statements per client connection;
#   ?statement-cache-capacity=0 does not help: the statements stay named). LISTEN succeeds but
#   pgbouncer drops the NOTIFYs ("got packet 'A' from server when not linked").
# - POOL_MODE=session and DB_ROUTE=direct: every step passes; NOTIFY reaches other instances in
#   ~40 ms.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
AUTHD_BIN=${AUTHD_BIN:-$ROOT/target/release/authd}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-postgres}
DB_ROUTE=${DB_ROUTE:-pgbouncer}
POOL_MODE=${POOL_MODE:-transaction}
MIGRATE_VIA=${MIGRATE_VIA:-pgbouncer}
URL_EXTRA=${URL_EXTRA:-}
DB_TIMEOUTS=${DB_TIMEOUTS:-0}
SYNC_MS=${SYNC_MS:-}
ROUNDS=${ROUNDS:-3}
FAILOVER=${FAILOVER:-1}
KEEP_DB=${KEEP_DB:-0}
PGB_IGNORE=${PGB_IGNORE:-}
PGB_VERBOSE=${PGB_VERBOSE:-0}
ARTIFACTS=${ARTIFACTS:-$ROOT/target/deploy-artifacts}
# authd's AUTHD_DB_POOL_MODE: transaction when its DATABASE_URL goes through pgbouncer in
# transaction mode, else direct (override to see what breaks).
if [ "$DB_ROUTE" = pgbouncer ] && [ "$POOL_MODE" = transaction ]; then
    AUTHD_POOL=${AUTHD_POOL:-transaction}
else
    AUTHD_POOL=${AUTHD_POOL:-direct}
fi
# 1: AUTHD_DATABASE_DIRECT_URL names Postgres itself (LISTEN for the other instances'
# revocations); 0: none (behind a transaction pooler the instances then poll).
LISTEN_DIRECT=${LISTEN_DIRECT:-1}
RUN_NAME=${RUN_NAME:-latest}

for tool in openssl psql pgbouncer nginx curl jq python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing" >&2; exit 2; }
done
[ -x "$AUTHD_BIN" ] || { echo "run.sh: no authd binary at $AUTHD_BIN" >&2; exit 2; }

WORK=$(mktemp -d /tmp/authd-deploy.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK"/{tls,pgbouncer,nginx/tmp,logs,mail,curl,pids}
DB="authd_deploy_$(date +%s)_$$"
PIDS=()          # authd instances
PGB_PID=""
NGINX_PID=""
FAILED=0
RESULTS=()       # "PASS|FAIL  step  detail"
TIMINGS=()       # "step  seconds"
T_SCRIPT=$(date +%s.%N)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
timing() { TIMINGS+=("$(printf '%-34s %7ss' "$1" "$2")"); }
pass() { RESULTS+=("PASS  $1  $2"); log "PASS $1: $2"; }
fail() { RESULTS+=("FAIL  $1  $2"); log "FAIL $1: $2"; FAILED=1; }
note() { RESULTS+=("NOTE  $1  $2"); log "NOTE $1: $2"; }

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" "$@"; }

stop_pid() { # pid name: TERM, then KILL after 5 s
    local pid=$1 name=$2 i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    log "$name ($pid) ignored TERM; killing"
    kill -KILL "$pid" 2>/dev/null
}

summary() {
    timing "total" "$(elapsed "$T_SCRIPT")"
    echo
    echo "================ summary ================"
    printf '%s\n' "${RESULTS[@]}"
    echo "---------------- durations ----------------"
    printf '%s\n' "${TIMINGS[@]}"
    echo "result: $([ "$1" = 0 ] && echo 'ALL PASSED' || echo "FAILED (exit $1)")"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ $rc = 0 ] && [ $FAILED = 1 ] && rc=1
    log "stopping everything"
    [ -n "$NGINX_PID" ] && stop_pid "$NGINX_PID" nginx
    local p f
    for p in "${PIDS[@]}"; do stop_pid "$p" authd; done
    # Instances the node tests restarted.
    for f in "$WORK"/pids/*.pid; do [ -f "$f" ] && stop_pid "$(cat "$f")" authd; done
    [ -n "$PGB_PID" ] && stop_pid "$PGB_PID" pgbouncer
    if [ "$KEEP_DB" != 1 ]; then
        psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 \
            || log "could not drop database $DB"
    else
        log "database $DB kept"
    fi
    mkdir -p "$ARTIFACTS"
    rm -rf "$ARTIFACTS/$RUN_NAME"
    mkdir -p "$ARTIFACTS/$RUN_NAME"
    cp -r "$WORK/logs" "$WORK/pgbouncer" "$WORK/curl" "$ARTIFACTS/$RUN_NAME/" 2>/dev/null
    mkdir -p "$ARTIFACTS/$RUN_NAME/nginx"
    cp "$WORK"/nginx/*.log "$WORK"/nginx/nginx.conf "$ARTIFACTS/$RUN_NAME/nginx/" 2>/dev/null
    rm -f "$ARTIFACTS/$RUN_NAME/pgbouncer/userlist.txt"
    rm -rf "$WORK"
    log "logs copied to $ARTIFACTS/$RUN_NAME"
    summary "$rc" | tee "$ARTIFACTS/$RUN_NAME/summary.txt"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() { # n: n distinct free loopback ports
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()
PY
}

wait_port() { # port seconds pid: until something accepts on the port (or the pid dies)
    local port=$1 secs=$2 pid=${3:-} i
    for i in $(seq $((secs * 10))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        sleep 0.1
    done
    return 1
}

render() { # template out: replace @NAME@ with the value of the shell variable NAME
    python3 - "$1" "$2" <<'PY'
import os, re, sys
text = open(sys.argv[1]).read()
out = re.sub(r"@([A-Z0-9_]+)@", lambda m: os.environ[m.group(1)], text)
open(sys.argv[2], "w").write(out)
PY
}

read -r PGB_PORT NGINX_PORT P1 P2 P3 SPA_PORT <<<"$(free_ports 6)"
SPA_ORIGIN="https://127.0.0.1:$SPA_PORT"
# nginx's workers (nobody) read the page from the temp dir, not from the checkout.
SPA_ROOT="$WORK/spa"
cp -r "$ROOT/examples/spa" "$SPA_ROOT" && chmod -R a+rX "$SPA_ROOT"
mkdir -p "$WORK/pids"
APORTS=("$P1" "$P2" "$P3")
ISSUER="https://127.0.0.1:$NGINX_PORT"
BASE="$ISSUER"
log "work dir $WORK; database $DB; pgbouncer :$PGB_PORT; nginx :$NGINX_PORT; authd :$P1 :$P2 :$P3"
log "AUTHD_DB_POOL_MODE=$AUTHD_POOL LISTEN_DIRECT=$LISTEN_DIRECT DB_ROUTE=$DB_ROUTE POOL_MODE=$POOL_MODE MIGRATE_VIA=$MIGRATE_VIA URL_EXTRA=$URL_EXTRA DB_TIMEOUTS=$DB_TIMEOUTS SYNC_MS=${SYNC_MS:-default}"

# --- 1. a local CA and a server certificate -------------------------------------------------
t=$(now)
(
    cd "$WORK/tls" || exit 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=authd deploy test CA" -keyout ca.key -out ca.crt \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=127.0.0.1" -keyout server.key -out server.csr &&
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >server.ext &&
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.crt
) >"$WORK/logs/openssl.log" 2>&1 && pass tls "CA and server certificate (IP:127.0.0.1, DNS:localhost)" \
    || { fail tls "openssl failed: $(tail -3 "$WORK/logs/openssl.log")"; exit 1; }
chmod 644 "$WORK"/tls/*
CACERT="$WORK/tls/ca.crt"
timing "1 certificates" "$(elapsed "$t")"

# --- 2. a fresh database and pgbouncer -------------------------------------------------------
t=$(now)
if psql_admin -c "CREATE DATABASE \"$DB\"" 2>"$WORK/logs/createdb.log"; then
    pass createdb "$DB on $PG_HOST:$PG_PORT"
else
    fail createdb "$(cat "$WORK/logs/createdb.log")"; exit 1
fi
if [ "$DB_TIMEOUTS" = 1 ]; then
    # What authd asks for in its startup packet (options=-c ...), which pgbouncer drops.
    psql_admin -c "ALTER DATABASE \"$DB\" SET statement_timeout = '5000ms'" \
        -c "ALTER DATABASE \"$DB\" SET idle_in_transaction_session_timeout = '5000ms'" \
        && note db-timeouts "statement_timeout and idle_in_transaction_session_timeout 5000ms set with ALTER DATABASE"
fi
timing "2a createdb" "$(elapsed "$t")"

t=$(now)
printf '"%s" ""\n' "$PG_USER" >"$WORK/pgbouncer/userlist.txt"
export WORK DB PG_HOST PG_PORT PG_USER PGB_PORT POOL_MODE PGB_IGNORE PGB_VERBOSE NGINX_PORT P1 P2 P3
render "$HERE/pgbouncer.ini.tmpl" "$WORK/pgbouncer/pgbouncer.ini"
PGB_AS=()
if [ "$(id -u)" = 0 ]; then
    # pgbouncer refuses to run as root ("PgBouncer should not run as root"): -u drops to postgres.
    PGB_AS=(-u postgres)
    chown -R postgres "$WORK/pgbouncer"
fi
pgbouncer "${PGB_AS[@]}" "$WORK/pgbouncer/pgbouncer.ini" >"$WORK/logs/pgbouncer.stdout" 2>&1 &
PGB_PID=$!
if wait_port "$PGB_PORT" 10 "$PGB_PID"; then
    pass pgbouncer "pool_mode=$POOL_MODE on 127.0.0.1:$PGB_PORT (pid $PGB_PID, $(pgbouncer -V | head -1))"
else
    fail pgbouncer "did not start: $(tail -5 "$WORK/pgbouncer/pgbouncer.log" "$WORK/logs/pgbouncer.stdout" 2>/dev/null)"
    exit 1
fi
timing "2b pgbouncer start" "$(elapsed "$t")"

PGB_URL="postgres://$PG_USER@127.0.0.1:$PGB_PORT/$DB"
DIRECT_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB"
DIRECT_FOR_LISTEN=""
[ "$LISTEN_DIRECT" = 1 ] && [ "$AUTHD_POOL" = transaction ] && DIRECT_FOR_LISTEN="$DIRECT_URL"
case "$DB_ROUTE" in
    pgbouncer) SERVE_URL="$PGB_URL$URL_EXTRA" ;;
    direct) SERVE_URL="$DIRECT_URL$URL_EXTRA" ;;
    *) echo "DB_ROUTE must be pgbouncer or direct" >&2; exit 2 ;;
esac

# --- 3. migrations, then three instances -----------------------------------------------------
migrate() { # name url
    local t0 rc
    t0=$(now)
    DATABASE_URL="$2" AUTHD_DB_POOL_MODE="$3" RUST_LOG=info timeout 120 "$AUTHD_BIN" migrate >"$WORK/logs/migrate-$1.log" 2>&1
    rc=$?
    timing "3a migrate ($1)" "$(elapsed "$t0")"
    if [ $rc = 0 ]; then
        pass "migrate-$1" "authd migrate: $(tail -1 "$WORK/logs/migrate-$1.log")"
    else
        fail "migrate-$1" "exit $rc: $(grep -v ' INFO ' "$WORK/logs/migrate-$1.log" | tail -3 | tr '\n' ' ')"
    fi
    return $rc
}
case "$MIGRATE_VIA" in
    pgbouncer) migrate pgbouncer "$PGB_URL$URL_EXTRA" "$AUTHD_POOL" || migrate direct "$DIRECT_URL" direct ;;
    direct) migrate direct "$DIRECT_URL" direct ;;
    none) note migrate "left to the instances' startup" ;;
esac

mkdir -p "$WORK/mail"
t=$(now)
# Each instance's environment, one VAR=value per line: the node tests restart instances with it.
for i in 0 1 2; do
    n=$((i + 1))
    {
        echo "PATH=$PATH"
        echo "DATABASE_URL=$SERVE_URL"
        echo "AUTHD_LISTEN=127.0.0.1:${APORTS[$i]}"
        echo "AUTHD_ISSUER=$ISSUER"
        echo "AUTHD_ALLOWED_ORIGINS=$SPA_ORIGIN"
        echo "AUTHD_TRUST_PROXY=1"
        echo "AUTHD_MAIL_DIR=$WORK/mail"
        echo "RUST_LOG=info"
        echo "AUTHD_HASH_THREADS=1"
        echo "AUTHD_DB_POOL_MODE=$AUTHD_POOL"
        [ -n "$DIRECT_FOR_LISTEN" ] && echo "AUTHD_DATABASE_DIRECT_URL=$DIRECT_FOR_LISTEN"
        [ -n "$SYNC_MS" ] && echo "AUTHD_SYNC_INTERVAL_MS=$SYNC_MS"
        [ "${BENCH:-0}" = 1 ] && echo "AUTHD_RATE_LIMITS=off"
    } >"$WORK/authd-$n.env"
    # shellcheck disable=SC2046
    env -i $(cat "$WORK/authd-$n.env") "$AUTHD_BIN" serve >"$WORK/logs/authd-$n.log" 2>&1 &
    PIDS+=($!)
    echo $! >"$WORK/pids/authd-$n.pid"
done
UP=0
for i in 0 1 2; do
    n=$((i + 1))
    ok=0
    for _ in $(seq 300); do
        if curl -fsS -o /dev/null "http://127.0.0.1:${APORTS[$i]}/readyz" 2>/dev/null; then ok=1; break; fi
        kill -0 "${PIDS[$i]}" 2>/dev/null || break
        sleep 0.1
    done
    if [ $ok = 1 ]; then
        UP=$((UP + 1))
        pass "authd-$n" "ready on 127.0.0.1:${APORTS[$i]} (pid ${PIDS[$i]})"
    elif kill -0 "${PIDS[$i]}" 2>/dev/null; then
        fail "authd-$n" "not ready after 30 s: $(grep -E 'WARN|ERROR' "$WORK/logs/authd-$n.log" | tail -2 | tr '\n' ' ')"
    else
        fail "authd-$n" "exited: $(tail -2 "$WORK/logs/authd-$n.log" | tr '\n' ' ')"
    fi
done
timing "3b three instances ready" "$(elapsed "$t")"
[ $UP -gt 0 ] || exit 1

# --- 4. nginx --------------------------------------------------------------------------------
t=$(now)
if [ "$(id -u)" = 0 ]; then
    USER_LINE="user nobody nogroup;"
    chmod 777 "$WORK/nginx/tmp"
else
    USER_LINE="# (not root: workers run as this user)"
fi
export USER_LINE SPA_PORT SPA_ROOT
render "$HERE/nginx.conf.tmpl" "$WORK/nginx/nginx.conf"
if ! nginx -t -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" >"$WORK/logs/nginx-t.log" 2>&1; then
    fail nginx "nginx -t: $(cat "$WORK/logs/nginx-t.log")"; exit 1
fi
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" >"$WORK/logs/nginx.stdout" 2>&1 &
NGINX_PID=$!
if wait_port "$NGINX_PORT" 10 "$NGINX_PID"; then
    pass nginx "TLS on 127.0.0.1:$NGINX_PORT (pid $NGINX_PID), upstream :$P1 :$P2 :$P3"
else
    fail nginx "did not start: $(tail -3 "$WORK/nginx/error.log")"; exit 1
fi
timing "4 nginx start" "$(elapsed "$t")"

# --- 5. smoke test over HTTPS ----------------------------------------------------------------
REQ=0
# req name method path [curl args...]: sets STATUS, BODY (file), HDRS (file)
req() {
    local name=$1 method=$2 path=$3
    shift 3
    REQ=$((REQ + 1))
    BODY="$WORK/curl/$(printf '%03d' $REQ)-$name.body"
    HDRS="$WORK/curl/$(printf '%03d' $REQ)-$name.headers"
    STATUS=$(curl -sS --cacert "$CACERT" --max-time 40 -X "$method" -o "$BODY" -D "$HDRS" \
        -w '%{http_code}' "$@" "$BASE$path" 2>"$BODY.err") || STATUS="curl-error($(cat "$BODY.err"))"
}
expect() { # step want: compare STATUS, record
    local step=$1 want=$2 detail
    detail="$(head -c 300 "$BODY" 2>/dev/null | tr '\n' ' ')"
    if [ "$STATUS" = "$want" ]; then
        pass "$step" "HTTP $STATUS"
        return 0
    fi
    fail "$step" "HTTP $STATUS (want $want) $detail"
    return 1
}
JSON=(-H 'Content-Type: application/json')

t=$(now)
req healthz GET /healthz
expect "healthz via nginx" 200
for round in $(seq "$ROUNDS"); do
    EMAIL="deploy-$round-$$@example.com"
    PASSWORD="deploy test password $round $RANDOM"
    R="r$round"
    req register POST /auth/register "${JSON[@]}" \
        -d "$(jq -nc --arg e "$EMAIL" --arg p "$PASSWORD" '{email:$e,password:$p}')"
    expect "$R register" 201
    req login-body POST /auth/login "${JSON[@]}" \
        -d "$(jq -nc --arg e "$EMAIL" --arg p "$PASSWORD" '{email:$e,password:$p,delivery:"body"}')"
    expect "$R login (body)" 200
    RT=$(jq -r '.refresh_token // empty' "$BODY" 2>/dev/null)
    if [ -z "$RT" ]; then
        [ "$STATUS" != 200 ] || fail "$R login (body)" "no refresh_token in the body"
        note "$R" "refresh, /me, logout skipped (no refresh token)"
        continue
    fi
    req refresh POST /auth/refresh "${JSON[@]}" -d "$(jq -nc --arg r "$RT" '{refresh_token:$r}')"
    expect "$R refresh" 200
    AT=$(jq -r '.access_token // empty' "$BODY" 2>/dev/null)
    RT2=$(jq -r '.refresh_token // empty' "$BODY" 2>/dev/null)
    req me GET /me -H "Authorization: Bearer $AT"
    expect "$R GET /me" 200
    req logout POST /auth/logout -H "Authorization: Bearer $AT"
    expect "$R logout" 204
    # nginx may send this to another instance, which hears of the logout through Postgres
    # (NOTIFY: milliseconds; polling: one sync interval): authd's bound is 1 s.
    t_logout=$(now)
    for _ in $(seq 20); do
        req me-after-logout GET /me -H "Authorization: Bearer $AT"
        [ "$STATUS" = 401 ] && break
        sleep 0.05
    done
    expect "$R GET /me after logout (within 1 s: $(elapsed "$t_logout") s)" 401
    req refresh-after-logout POST /auth/refresh "${JSON[@]}" -d "$(jq -nc --arg r "$RT2" '{refresh_token:$r}')"
    expect "$R refresh after logout" 401
    req login-cookie POST /auth/login "${JSON[@]}" \
        -d "$(jq -nc --arg e "$EMAIL" --arg p "$PASSWORD" '{email:$e,password:$p,delivery:"cookie"}')"
    if expect "$R login (cookie)" 200; then
        COOKIE=$(grep -i '^set-cookie:' "$HDRS" | tr -d '\r' | head -1)
        if printf '%s' "$COOKIE" | grep -Eq '^[Ss]et-[Cc]ookie: __Host-refresh_token=[^;]+;.*; Secure(;|$)'; then
            pass "$R cookie" "$(printf '%s' "$COOKIE" | sed -E 's/(refresh_token=)[^;]{6}[^;]*/\1<redacted>/')"
        else
            fail "$R cookie" "Set-Cookie not __Host-refresh_token=...; Secure: ${COOKIE:-none}"
        fi
        if jq -e 'has("refresh_token") and .refresh_token != null' "$BODY" >/dev/null 2>&1; then
            fail "$R cookie" "the refresh token is also in the body"
        fi
        CVAL=$(printf '%s' "$COOKIE" | sed -E 's/^[^:]*: *([^;]*).*/\1/')
        req refresh-cookie POST /auth/refresh -H "Cookie: $CVAL" -H 'X-Requested-With: XMLHttpRequest' \
            -H "Origin: $ISSUER"
        expect "$R refresh (cookie)" 200
        CVAL2=$(grep -i '^set-cookie:' "$HDRS" | tr -d '\r' | head -1 | sed -E 's/^[^:]*: *([^;]*).*/\1/')
        req logout-cookie POST /auth/logout -H "Cookie: ${CVAL2:-$CVAL}" -H 'X-Requested-With: XMLHttpRequest' \
            -H "Origin: $ISSUER"
        expect "$R logout (cookie)" 204
    fi
done
timing "5a smoke flow x$ROUNDS" "$(elapsed "$t")"

# Which instance answered what (nginx's access log).
UPS=$(grep -o 'upstream=[^ ]*' "$WORK/nginx/access.log" | sort | uniq -c | tr '\n' ';' | tr -s ' ')
note upstreams "requests per upstream: $UPS"

# --- 5b. the revocation feed's long poll: an end on one instance, held requests on others ----
t=$(now)
SK=$(DATABASE_URL="$SERVE_URL" AUTHD_DB_POOL_MODE="$AUTHD_POOL" "$AUTHD_BIN" service-keys create --name deploy-feed \
    --scope revocations:read 2>"$WORK/logs/service-key.log" | tail -1)
if [[ "$SK" != authd_sk_* ]]; then
    fail "feed service key" "authd service-keys create: $(tail -2 "$WORK/logs/service-key.log" | tr '\n' ' ')"
else
    pass "feed service key" "created (DATABASE_URL via $DB_ROUTE)"
    # Each instance loads service keys on its sync pass (AUTHD_SYNC_INTERVAL_MS): wait for all.
    for port in "${APORTS[@]}"; do
        for _ in $(seq 40); do
            [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $SK" \
                "http://127.0.0.1:$port/auth/revocations?limit=1")" = 200 ] && break
            sleep 0.25
        done
    done
    req feed-snapshot GET "/auth/revocations" -H "Authorization: Bearer $SK"
    if expect "feed snapshot" 200; then
        CURSOR=$(jq -r '.cursor' "$BODY")
        EMAIL="deploy-feed-$$@example.com"
        PASSWORD="deploy feed password $RANDOM"
        req register POST /auth/register "${JSON[@]}" \
            -d "$(jq -nc --arg e "$EMAIL" --arg p "$PASSWORD" '{email:$e,password:$p}')"
        req login-body POST /auth/login "${JSON[@]}" \
            -d "$(jq -nc --arg e "$EMAIL" --arg p "$PASSWORD" '{email:$e,password:$p,delivery:"body"}')"
        AT=$(jq -r '.access_token // empty' "$BODY" 2>/dev/null)
        # One long poll held on each instance directly, one through nginx.
        for i in 0 1 2 nginx; do
            if [ "$i" = nginx ]; then url="$BASE"; tgt=nginx; else url="http://127.0.0.1:${APORTS[$i]}"; tgt="authd-$((i + 1))"; fi
            (
                s=$(now)
                code=$(curl -sS --cacert "$CACERT" --max-time 45 -o "$WORK/curl/feed-$tgt.body" -w '%{http_code}' \
                    -H "Authorization: Bearer $SK" "$url/auth/revocations?cursor=$CURSOR&wait=30" 2>&1)
                printf '%s %s %s\n' "$tgt" "$code" "$(now)" >"$WORK/curl/feed-$tgt.done"
            ) &
        done
        sleep 2   # let the polls be held
        t_end=$(now)
        # The end happens on authd-1 (directly), so authd-2 and authd-3 hear of it only through
        # Postgres: NOTIFY/LISTEN (milliseconds) or their sync loop's polling (the interval).
        curl -sS -o /dev/null -X POST -H "Authorization: Bearer $AT" "http://127.0.0.1:$P1/auth/logout"
        wait_feed=0
        for _ in $(seq 400); do
            [ "$(ls "$WORK"/curl/feed-*.done 2>/dev/null | wc -l)" -ge 4 ] && break
            sleep 0.1
        done
        for tgt in authd-1 authd-2 authd-3 nginx; do
            if [ -f "$WORK/curl/feed-$tgt.done" ]; then
                read -r _ code t_done <"$WORK/curl/feed-$tgt.done"
                lat=$(python3 -c "print(f'{float(\"$t_done\") - float(\"$t_end\"):.3f}')")
                n=$(jq '.entries | length' "$WORK/curl/feed-$tgt.body" 2>/dev/null || echo '?')
                if [ "$code" = 200 ] && [ "$n" != 0 ] && [ "$n" != '?' ]; then
                    pass "feed long poll ($tgt)" "HTTP $code, $n entr(y/ies) ${lat}s after the logout on authd-1"
                else
                    fail "feed long poll ($tgt)" "HTTP $code, entries=$n, ${lat}s after the logout: $(head -c 200 "$WORK/curl/feed-$tgt.body")"
                fi
            else
                fail "feed long poll ($tgt)" "no answer within 40 s"
            fi
        done
    fi
fi
timing "5b feed long poll" "$(elapsed "$t")"

# --- 5c. the node tests: limits, races, the kit, keys, kill -9 and rolling restarts, the browser
t=$(now)
SPKI=$(openssl x509 -in "$WORK/tls/server.crt" -pubkey -noout | openssl pkey -pubin -outform der \
    | openssl dgst -sha256 -binary | base64)
if [ "${NODE_TESTS:-1}" = 1 ]; then
    # The Node verifier kit (clients/node/dist) and the browser tests' playwright-core.
    bash "$ROOT/examples/hapi/setup.sh" >"$WORK/logs/node-setup.log" 2>&1 \
        || { fail "node setup" "$(tail -3 "$WORK/logs/node-setup.log")"; exit 1; }
    (cd "$ROOT/tests/browser" && { [ -d node_modules/playwright-core ] || PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error; }) \
        >>"$WORK/logs/node-setup.log" 2>&1 || { fail "node setup" "npm ci in tests/browser"; exit 1; }
    NODE_EXTRA_CA_CERTS="$CACERT" DEPLOY_BASE="$BASE" DEPLOY_SPA="$SPA_ORIGIN" DEPLOY_CA="$CACERT" \
        DEPLOY_SPKI="$SPKI" DEPLOY_WORK="$WORK" DEPLOY_BIN="$AUTHD_BIN" DEPLOY_PORTS="$P1,$P2,$P3" \
        DEPLOY_SERVE_URL="$SERVE_URL" DEPLOY_POOL_MODE="$AUTHD_POOL" DEPLOY_BENCH="${BENCH:-0}" DEPLOY_ARTIFACTS="$WORK/logs" \
        node --test --test-concurrency=1 --test-reporter=spec ${NODE_TEST_FILTER:+--test-name-pattern="$NODE_TEST_FILTER"} \
        ${NODE_TEST_FILES:-"$HERE"/*.test.mjs} >"$WORK/logs/node-tests.log" 2>&1
    rc=$?
    cat "$WORK/logs/node-tests.log"
    if [ $rc = 0 ]; then
        pass "node tests" "$(grep -E '^ℹ (tests|pass|fail)' "$WORK/logs/node-tests.log" | tr '\n' ' ')"
    else
        fail "node tests" "exit $rc: $(grep -E '^ℹ (tests|pass|fail)|^✖' "$WORK/logs/node-tests.log" | head -8 | tr '\n' ' ')"
    fi
fi
timing "5c node tests" "$(elapsed "$t")"

# --- 5d. failover: one instance down ----------------------------------------------------------
if [ "$FAILOVER" = 1 ]; then
    t=$(now)
    stop_pid "$(cat "$WORK/pids/authd-3.pid")" authd-3
    note failover "authd-3 stopped"
    codes=""
    for _ in 1 2 3 4 5 6; do
        req healthz-failover GET /healthz
        codes="$codes $STATUS"
    done
    if [ "$(echo "$codes" | tr ' ' '\n' | grep -vc '^200$\|^$')" = 0 ]; then
        pass "failover GET" "6 x GET /healthz with authd-3 down:$codes"
    else
        fail "failover GET" "6 x GET /healthz with authd-3 down:$codes"
    fi
    EMAIL="deploy-failover-$$@example.com"
    codes=""
    for k in 1 2 3; do
        req register-failover POST /auth/register "${JSON[@]}" \
            -d "$(jq -nc --arg e "f$k-$EMAIL" --arg p "failover password $k $RANDOM" '{email:$e,password:$p}')"
        codes="$codes $STATUS"
    done
    if [ "$(echo "$codes" | tr ' ' '\n' | grep -vc '^201$\|^$')" = 0 ]; then
        pass "failover POST" "3 x POST /auth/register with authd-3 down (refused connections are retried):$codes"
    else
        fail "failover POST" "3 x POST /auth/register with authd-3 down:$codes"
    fi
    timing "5d failover" "$(elapsed "$t")"
fi

# --- errors the instances logged ---------------------------------------------------------------
for n in 1 2 3; do
    c=$(grep -cE ' (WARN|ERROR) ' "$WORK/logs/authd-$n.log")
    if [ "$c" != 0 ]; then
        note "authd-$n log" "$c WARN/ERROR lines; distinct: $(grep -E ' (WARN|ERROR) ' "$WORK/logs/authd-$n.log" \
            | sed -E 's/^[^ ]+ +//; s/[0-9a-f]{8}-[0-9a-f-]{27}/<uuid>/g; s/sqlx_s_[0-9]+/sqlx_s_N/g; s/ dir=.*//' \
            | cut -c1-300 | sort | uniq -c | sort -rn | head -6 | tr '\n' ';' | tr -s ' ')"
    fi
done
c=$(grep -cE 'ERROR|WARNING' "$WORK/pgbouncer/pgbouncer.log")
[ "$c" = 0 ] || note "pgbouncer log" "$c ERROR/WARNING lines; distinct: $(grep -E 'ERROR|WARNING' "$WORK/pgbouncer/pgbouncer.log" \
    | sed -E 's/^.*(ERROR|WARNING) [^ ]+ [^ ]+ //' | sort | uniq -c | sort -rn | head -4 | tr '\n' ' ' | tr -s ' ')"

exit $FAILED
