#!/usr/bin/env bash
# The Node and Python verifier kits against a bare verify, and their revoked sets' memory
# (issue 15). Every authd it starts is the release binary on a fresh SQLite file under $WORK,
# on 127.0.0.1, with AUTHD_RATE_LIMITS=off, killed at the end.
#
#   benches/kits/run.sh all          # throughput, memory, verify-cost, summary (~20 min)
#   benches/kits/run.sh throughput   # /bare vs /kit in hapi, Express, Fastify, FastAPI, Starlette
#   benches/kits/run.sh memory       # bytes per revoked entry, Node and Python kits
#   benches/kits/run.sh verify-cost  # one verify without HTTP: kit vs bare, Node and Python
#   benches/kits/run.sh fastapi-dep  # FastAPI /bare, /dep (the bare check as a dependency), /kit,
#                                    # /mw (the Starlette middleware on the FastAPI app) (~3 min)
#   benches/kits/run.sh summary      # medians of the undisturbed lines -> kits-summary.txt
#
# Needs: target/release/authd (`cargo build --release --bin authd`); the Node kit built
# (`cd clients/node && npm ci && npm run build`); a venv with the Python kit and uvicorn:
#   python3 -m venv /work/bench-venv
#   /work/bench-venv/bin/pip install -e 'clients/python[fastapi]' 'uvicorn[standard]'
# and wrk (`apt-get install -y wrk`).
#
# throughput: one authd, TOKENS (1,000) sessions logged in (benches/kits/tokens.mjs), five
# servers at once, each with /bare (the library's verify by hand in the handler) and /kit (the
# kit's adapter): node_server.mjs hapi|express|fastify (one Node process each) and
# py_server.py fastapi|starlette (uvicorn, one process, uvloop + httptools). Each route gets
# wrk -t2 -c32 -d$WRK_SECS with the tokens of a file round-robin ("many": the 1,000 distinct,
# "one": the first); RUNS rounds, each round every server, both token sets, the two routes in
# turn (bare first in odd rounds, kit first in even ones), so that a drift of the shared
# machine's speed touches both. Like `perf.sh feed`, a run waits for the machine to be quiet
# (QUIET_PCT, QUIET_WAIT) and is marked "disturbed" and done again (at most twice more) when
# processes other than the server under test, wrk and authd used more than DISTURBED_CORES.
#
# memory: per run and kit, a fresh authd; node_memory.mjs / py_memory.py in the sequences
# "snapshot" (100,000 rows, then the verifier loads them as its snapshot, then 100,000 more
# through the feed) and "follow" (0 -> 100,000 -> 200,000 through the feed); rows go straight
# into revoked_sessions (insert_revoked.py, a child process). Python once more with tracemalloc.
#
# verify-cost: one authd, 200 tokens; node_verify_cost.mjs and py_verify_cost.py, RUNS times each
# in turn: the kit's verify and the bare one in interleaved blocks of 500 calls, one at a time,
# 3 s each (the HTTP comparison cannot resolve a few % on this machine; this can).
#
# fastapi-dep: the FastAPI server alone, 1,000 tokens, RUNS rounds of /bare, /dep, /kit and /mw
# (the order rotating each round): how much of /kit's cost is FastAPI's dependency machinery,
# and what the Starlette middleware costs on a FastAPI app instead. Results in
# $OUT_DIR/kits-fastapi-dep.jsonl.
#
# Results: JSON lines appended to $OUT_DIR/kits-throughput.jsonl, kits-memory.jsonl and
# kits-verify-cost.jsonl (with `context` lines: load average, CPU busy, busiest processes);
# medians in kits-summary.txt.
# Environment: AUTHD_BIN (target/release/authd), VENV (/work/bench-venv), OUT_DIR
# (benches/results/2026-12-02), WORK (/tmp/authd-kits), PORT (18080), RUNS (3), WRK_SECS (10),
# TOKENS (1000), SERVERS ("hapi express fastify fastapi starlette"), QUIET_PCT (25),
# QUIET_WAIT (60 s), DISTURBED_CORES (0.3).
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${AUTHD_BIN:-target/release/authd}
VENV=${VENV:-/work/bench-venv}
OUT_DIR=${OUT_DIR:-benches/results/2026-12-02}
WORK=${WORK:-/tmp/authd-kits}
PORT=${PORT:-18080}
URL="http://127.0.0.1:$PORT"
RUNS=${RUNS:-3}
WRK_SECS=${WRK_SECS:-10}
TOKENS=${TOKENS:-1000}
SERVERS=${SERVERS:-hapi express fastify fastapi starlette}
NCPU=$(nproc)
KITS=benches/kits
mkdir -p "$WORK" "$OUT_DIR"

declare -A SERVER_PORT=([hapi]=18111 [express]=18112 [fastify]=18113 [fastapi]=18121 [starlette]=18122)
declare -A SERVER_PID=()
PIDS=()
AUTHD_PID=
DB_FILE=

log() { printf '[kits %s] %s\n' "$(date +%T)" "$*" >&2; }

stop_all() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    PIDS=()
    SERVER_PID=()
    AUTHD_PID=
    if [[ -n $DB_FILE ]]; then rm -f "$DB_FILE" "$DB_FILE-wal" "$DB_FILE-shm"; fi
    DB_FILE=
}
trap stop_all EXIT

# What else is running: load average, CPU busy % and the busiest processes over one second.
context() {
    top -b -n 2 -d 1 -o %CPU -w 200 | python3 -c '
import json, sys
last = sys.stdin.read().split("top - ")[-1].splitlines()
load = last[0].split("load average:")[1].strip().split(", ")
cpu = next(l for l in last if l.startswith("%Cpu"))
idle = float(cpu.split(",")[3].split()[0])
i = next(k for k, l in enumerate(last) if l.strip().startswith("PID"))
procs = [l.split() for l in last[i + 1:] if l.strip()]
top = [f"{p[8]}% {p[11]}" for p in procs[:6] if float(p[8]) > 0]
print(json.dumps({"mode": "context", "what": sys.argv[1], "loadavg": load,
                  "cpu_busy_pct": round(100 - idle, 1), "top": top}))' "$1"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
machine_line() { head -n 1 /proc/stat; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# busy_cores LINE0 LINE1: the cores the whole machine used between two /proc/stat cpu lines.
busy_cores() {
    python3 -c 'import sys
a = [int(x) for x in sys.argv[1].split()[1:9]]
b = [int(x) for x in sys.argv[2].split()[1:9]]
d = [y - x for x, y in zip(a, b)]
print(round(int(sys.argv[3]) * (sum(d) - d[3] - d[4]) / max(sum(d), 1), 2))' "$1" "$2" "$NCPU"
}

wait_quiet() {
    local waited=0 a b busy
    while :; do
        a=$(machine_line)
        sleep 2
        b=$(machine_line)
        busy=$(python3 -c "print(round(100 * $(busy_cores "$a" "$b") / $NCPU))")
        ((busy < ${QUIET_PCT:-25})) && return 0
        if ((waited >= ${QUIET_WAIT:-60})); then
            log "machine still ${busy}% busy after ${waited} s: going on"
            return 0
        fi
        log "machine ${busy}% busy: waiting"
        sleep 3
        waited=$((waited + 5))
    done
}

wait_url() {
    local url=$1 pid=$2 logf=$3
    shift 3
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null "$@" "$url" 2>/dev/null; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$logf" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "$url did not answer" >&2
    return 1
}

# start_authd TAG [VAR=value...]: a fresh SQLite database, the schema, a revocations:read key
# in KEY, authd on $PORT (pid in AUTHD_PID).
start_authd() {
    local tag=$1
    shift
    DB_FILE="$WORK/$tag.db"
    rm -f "$DB_FILE" "$DB_FILE-wal" "$DB_FILE-shm"
    local db="sqlite://$DB_FILE?mode=rwc"
    DATABASE_URL="$db" RUST_LOG=warn "$BIN" migrate >/dev/null 2>&1
    KEY=$(DATABASE_URL="$db" RUST_LOG=warn "$BIN" service-keys create --name kitbench \
        --scope revocations:read 2>/dev/null)
    env DATABASE_URL="$db" AUTHD_LISTEN="127.0.0.1:$PORT" AUTHD_ISSUER="$URL" \
        AUTHD_RATE_LIMITS=off RUST_LOG=warn "$@" "$BIN" serve >"$WORK/authd.log" 2>&1 &
    AUTHD_PID=$!
    PIDS+=("$AUTHD_PID")
    wait_url "$URL/readyz" "$AUTHD_PID" "$WORK/authd.log"
}

# The path of each route (Starlette's routes are Mounts).
route_path() {
    if [[ $1 == starlette ]]; then echo "/$2/"; else echo "/$2"; fi
}

start_server() {
    local s=$1 port=${SERVER_PORT[$1]}
    case $s in
    hapi | express | fastify)
        AUTHD_URL=$URL AUTHD_ISSUER=$URL AUTHD_SERVICE_KEY=$KEY \
            node "$KITS/node_server.mjs" "$s" "$port" >"$WORK/$s.log" 2>&1 &
        ;;
    fastapi | starlette)
        KITBENCH_FRAMEWORK=$s AUTHD_URL=$URL AUTHD_ISSUER=$URL AUTHD_SERVICE_KEY=$KEY \
            "$VENV/bin/uvicorn" --app-dir "$KITS" py_server:app --host 127.0.0.1 --port "$port" \
            --loop uvloop --http httptools --no-access-log --log-level warning \
            >"$WORK/$s.log" 2>&1 &
        ;;
    esac
    SERVER_PID[$s]=$!
    PIDS+=("$!")
    local tok
    tok=$(head -n 1 "$WORK/tokens-one.txt")
    wait_url "http://127.0.0.1:$port$(route_path "$s" kit)" "$!" "$WORK/$s.log" \
        -H "Authorization: Bearer $tok"
    # Every route: 200 with the token, 401 without a valid one.
    local r code routes="bare kit"
    if [[ $s == fastapi ]]; then routes="bare kit dep mw"; fi
    for r in $routes; do
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" \
            "http://127.0.0.1:$port$(route_path "$s" "$r")")
        [[ $code == 200 ]] || { echo "$s /$r: HTTP $code with a valid token" >&2; return 1; }
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${tok}x" \
            "http://127.0.0.1:$port$(route_path "$s" "$r")")
        [[ $code == 401 ]] || { echo "$s /$r: HTTP $code with a bad signature" >&2; return 1; }
    done
}

write_lua() {
    cat >"$WORK/rotate.lua" <<'LUA'
local tokens, n, i = {}, 0, 0
function init(args)
  for line in io.lines(args[1]) do n = n + 1; tokens[n] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  i = math.random(n) - 1
end
function request()
  i = i % n + 1
  return wrk.format("GET", wrk.path, {["Authorization"] = "Bearer " .. tokens[i]})
end
function done(s, latency, requests)
  local e = s.errors
  io.write(string.format('{"mode":"wrk","requests":%d,"duration_s":%.3f,"rps":%.1f,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"non_2xx":%d,' ..
    '"socket_errors":%d}\n', s.requests, s.duration / 1e6, s.requests / (s.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, e.status, e.connect + e.read + e.write + e.timeout))
end
LUA
}

# wrk_run SERVER ROUTE TOKENS SECS: one wrk run; prints its JSON line with the CPU of the server,
# wrk, authd and everything else over the run.
wrk_run() {
    local s=$1 route=$2 tokens=$3 secs=$4 pid=${SERVER_PID[$1]}
    local url="http://127.0.0.1:${SERVER_PORT[$1]}$(route_path "$1" "$2")"
    local k0 k1 a0 a1 m0 m1 t0 t1
    k0=$(cpu_ticks "$pid")
    a0=$(cpu_ticks "$AUTHD_PID")
    m0=$(machine_line)
    t0=$(date +%s.%N)
    TIMEFORMAT='%3U %3S'
    { time wrk -t2 -c32 -d"${secs}s" -s "$WORK/rotate.lua" "$url" -- "$WORK/tokens-$tokens.txt" \
        >"$WORK/wrk.txt"; } 2>"$WORK/wrk.time"
    t1=$(date +%s.%N)
    m1=$(machine_line)
    k1=$(cpu_ticks "$pid")
    a1=$(cpu_ticks "$AUTHD_PID")
    python3 -c 'import json, sys
r = json.loads(next(l for l in open(sys.argv[1]) if l.startswith("{")))
k0, k1, a0, a1, t0, t1 = (float(x) for x in sys.argv[2:8])
u, s = (float(x) for x in open(sys.argv[8]).read().split())
secs = t1 - t0
r.update({"server": sys.argv[9], "route": sys.argv[10], "tokens": sys.argv[11],
    "distinct_tokens": int(sys.argv[12]), "concurrency": 32,
    "server_cpu_cores": round((k1 - k0) / 100 / secs, 3),
    "server_cpu_us_per_req": round((k1 - k0) / 100 / max(r["requests"], 1) * 1e6, 1),
    "authd_cpu_cores": round((a1 - a0) / 100 / secs, 3),
    "wrk_cpu_cores": round((u + s) / secs, 3), "machine_cores": float(sys.argv[13])})
r["others_cores"] = round(r["machine_cores"] - r["server_cpu_cores"] - r["wrk_cpu_cores"]
                          - r["authd_cpu_cores"], 2)
r["disturbed"] = r["others_cores"] > float(sys.argv[14])
print(json.dumps(r))' "$WORK/wrk.txt" "$k0" "$k1" "$a0" "$a1" "$t0" "$t1" "$WORK/wrk.time" \
        "$s" "$route" "$tokens" "$(wc -l <"$WORK/tokens-$tokens.txt")" \
        "$(busy_cores "$m0" "$m1")" "${DISTURBED_CORES:-0.3}"
}

cmd_throughput() {
    local out=$OUT_DIR/kits-throughput.jsonl
    command -v wrk >/dev/null || { echo "wrk is needed (apt-get install -y wrk)" >&2; return 1; }
    wait_quiet
    # The tokens outlive the whole sequence (5 servers x 2 x 2 x RUNS runs of WRK_SECS, retries).
    start_authd kits-tput AUTHD_ACCESS_TTL_SECS=7200
    log "throughput: logging in $TOKENS sessions"
    node "$KITS/tokens.mjs" "$URL" "$TOKENS" "$WORK/tokens-many.txt"
    head -n 1 "$WORK/tokens-many.txt" >"$WORK/tokens-one.txt"
    write_lua
    local s
    for s in $SERVERS; do
        start_server "$s"
        log "$s ready: $(head -c 300 "$WORK/$s.log" | tr '\n' ' ')"
    done
    printf '{"mode":"versions","node":"%s","python":"%s","wrk":"%s","packages":%s}\n' \
        "$(node --version)" "$("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')" \
        "$(wrk -v 2>&1 | head -n 1 | awk '{print $2}')" \
        "$("$VENV/bin/python" -c 'import json, importlib.metadata as m
py = {p: m.version(p) for p in ["fastapi", "starlette", "uvicorn", "uvloop", "httptools", "PyJWT", "cryptography"]}
node = {}
for p in ["jose", "@hapi/hapi", "express", "fastify"]:
    node[p] = json.load(open(f"clients/node/node_modules/{p}/package.json"))["version"]
print(json.dumps({**node, **py}))')" | tee -a "$out"
    # Warm-up (JIT, caches, connections): both routes of every server, not recorded.
    log "warm-up"
    for s in $SERVERS; do
        wrk_run "$s" bare many 2 >/dev/null
        wrk_run "$s" kit many 2 >/dev/null
    done
    local run tokens routes route attempt line
    for run in $(seq 1 "$RUNS"); do
        for s in $SERVERS; do
            for tokens in many one; do
                routes="bare kit"
                if ((run % 2 == 0)); then routes="kit bare"; fi
                for route in $routes; do
                    for attempt in 1 2 3; do
                        wait_quiet
                        context "kits throughput $s $route $tokens run $run" >>"$out"
                        log "$s /$route, $tokens token(s), run $run (attempt $attempt)"
                        line=$(wrk_run "$s" "$route" "$tokens" "$WRK_SECS" |
                            python3 -c 'import json, sys
r = json.loads(sys.stdin.readline()); r.update(run=int(sys.argv[1]), attempt=int(sys.argv[2]))
print(json.dumps(r))' "$run" "$attempt")
                        echo "$line" | tee -a "$out"
                        [[ $line == *'"disturbed": true'* ]] || break
                    done
                done
            done
        done
    done
    for s in $SERVERS; do
        printf '{"mode":"idle","label":"after throughput","server":"%s","rss_mb":%s}\n' \
            "$s" "$(rss_mb "${SERVER_PID[$s]}")" | tee -a "$out"
    done
    stop_all
}

cmd_memory() {
    local out=$OUT_DIR/kits-memory.jsonl run kit seq line
    for run in $(seq 1 "$RUNS"); do
        for kit in node python python-tracemalloc; do
            for seq in snapshot follow; do
                [[ $kit == python-tracemalloc && $seq == snapshot ]] && continue
                wait_quiet
                start_authd "kits-mem"
                context "kits memory $kit $seq run $run" >>"$out"
                log "memory $kit $seq run $run"
                case $kit in
                node)
                    line=$(AUTHD_URL=$URL AUTHD_SERVICE_KEY=$KEY \
                        node --expose-gc "$KITS/node_memory.mjs" "$DB_FILE" "$seq") ;;
                python)
                    line=$(AUTHD_URL=$URL AUTHD_SERVICE_KEY=$KEY \
                        "$VENV/bin/python" "$KITS/py_memory.py" "$DB_FILE" "$seq") ;;
                python-tracemalloc)
                    line=$(AUTHD_URL=$URL AUTHD_SERVICE_KEY=$KEY \
                        "$VENV/bin/python" "$KITS/py_memory.py" "$DB_FILE" "$seq" --tracemalloc) ;;
                esac
                echo "$line" | python3 -c 'import json, sys
r = json.loads(sys.stdin.readline()); r["run"] = int(sys.argv[1]); print(json.dumps(r))' "$run" |
                    tee -a "$out"
                stop_all
            done
        done
    done
}

cmd_verify_cost() {
    local out=$OUT_DIR/kits-verify-cost.jsonl run
    wait_quiet
    start_authd kits-vcost AUTHD_ACCESS_TTL_SECS=3600
    node "$KITS/tokens.mjs" "$URL" 200 "$WORK/tokens-cost.txt"
    for run in $(seq 1 "$RUNS"); do
        wait_quiet
        context "kits verify cost run $run" >>"$out"
        log "verify cost run $run"
        AUTHD_URL=$URL AUTHD_SERVICE_KEY=$KEY node "$KITS/node_verify_cost.mjs" \
            "$WORK/tokens-cost.txt" 3 | sed "s/^{/{\"run\": $run, /" | tee -a "$out"
        AUTHD_URL=$URL AUTHD_SERVICE_KEY=$KEY "$VENV/bin/python" "$KITS/py_verify_cost.py" \
            "$WORK/tokens-cost.txt" 3 | sed "s/^{/{\"run\": $run, /" | tee -a "$out"
    done
    stop_all
}

cmd_fastapi_dep() {
    local out=$OUT_DIR/kits-fastapi-dep.jsonl run route routes line
    wait_quiet
    start_authd kits-dep AUTHD_ACCESS_TTL_SECS=3600
    node "$KITS/tokens.mjs" "$URL" "$TOKENS" "$WORK/tokens-many.txt"
    head -n 1 "$WORK/tokens-many.txt" >"$WORK/tokens-one.txt"
    write_lua
    start_server fastapi
    for route in bare dep kit mw; do wrk_run fastapi "$route" many 2 >/dev/null; done
    local -a orders=("bare dep kit mw" "dep kit mw bare" "kit mw bare dep" "mw bare dep kit")
    for run in $(seq 1 "$RUNS"); do
        for route in ${orders[$(((run - 1) % 4))]}; do
            wait_quiet
            context "kits fastapi-dep $route run $run" >>"$out"
            log "fastapi /$route run $run"
            line=$(wrk_run fastapi "$route" many "$WRK_SECS" | sed "s/^{/{\"run\": $run, /")
            echo "$line" | tee -a "$out"
        done
    done
    stop_all
}

cmd_summary() {
    "$VENV/bin/python" "$KITS/summary.py" "$OUT_DIR" | tee "$OUT_DIR/kits-summary.txt"
}

case ${1:-} in
all)
    cmd_throughput
    cmd_memory
    cmd_verify_cost
    cmd_summary
    ;;
throughput) cmd_throughput ;;
memory) cmd_memory ;;
verify-cost) cmd_verify_cost ;;
fastapi-dep) cmd_fastapi_dep ;;
summary) cmd_summary ;;
*)
    echo "usage: benches/kits/run.sh all | throughput | memory | verify-cost | fastapi-dep | summary" >&2
    exit 2
    ;;
esac
