#!/usr/bin/env bash
# Reproduces the figures of benches/PERFORMANCE.md. Every server it starts listens on
# 127.0.0.1 only, runs with AUTHD_RATE_LIMITS=off, and is killed before the next one starts.
#
#   benches/perf.sh build                   # release server + loadgen, copied to /tmp
#   benches/perf.sh modes sqlite|postgres   # every mode, 3 runs each, fresh server + database per run
#   benches/perf.sh mixed sqlite|postgres   # login storm (c=64) while verify and refresh-chain run
#   benches/perf.sh scale sqlite|postgres   # 1,000,000 seeded sessions: start-up time, refresh-chain
#   benches/perf.sh soak  sqlite|postgres   # 10 min refresh-chain with short lifetimes, sampled every 30 s
#   benches/perf.sh micro                   # cargo bench --bench hot_paths
#   benches/perf.sh profile sqlite MODE C   # perf stat + perf record -g of the server under a mode
#   benches/perf.sh summary FILE...         # medians of the JSON lines
#
# Results are JSON lines appended to $OUT (default benches/results/<backend>-<what>.jsonl).
# Environment: PORT (18080), PG (postgres://postgres@127.0.0.1:5432), DURATION (15), RUNS (3),
# SOAK_SECS (600), SEED_SESSIONS (1000000), AUTHD_BIN / LOADGEN_BIN (the /tmp copies).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-18080}
URL="http://127.0.0.1:$PORT"
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DURATION=${DURATION:-15}
RUNS=${RUNS:-3}
BIN=${AUTHD_BIN:-/tmp/authd-perf/authd}
LG=${LOADGEN_BIN:-/tmp/authd-perf/loadgen}
WORK=${WORK:-/tmp/authd-perf/work}
mkdir -p "$WORK" benches/results
SERVER_PID=
DB_URL=
DB_FILE=
PG_DB=

log() { printf '[perf %s] %s\n' "$(date +%T)" "$*" >&2; }

# What else is running (the machine is shared): load average, CPU busy % and the busiest
# processes over one second.
context() {
    local what=$1
    top -b -n 2 -d 1 -o %CPU -w 200 | python3 -c '
import json, sys
frames = sys.stdin.read().split("top - ")
last = frames[-1].splitlines()
load = last[0].split("load average:")[1].strip().split(", ")
cpu = next(l for l in last if l.startswith("%Cpu"))
idle = float(cpu.split(",")[3].split()[0])
i = next(k for k, l in enumerate(last) if l.strip().startswith("PID"))
procs = [l.split() for l in last[i + 1:] if l.strip()]
top = [f"{p[8]}% {p[11]}" for p in procs[:6] if float(p[8]) > 0]
print(json.dumps({"mode": "context", "what": sys.argv[1], "loadavg": load,
                  "cpu_busy_pct": round(100 - idle, 1), "top": top}))
' "$what"
}

fresh_db() {
    local backend=$1 tag=$2
    case $backend in
    sqlite)
        DB_FILE="$WORK/$tag.db"
        rm -f "$DB_FILE" "$DB_FILE-wal" "$DB_FILE-shm"
        DB_URL="sqlite://$DB_FILE?mode=rwc"
        ;;
    postgres)
        PG_DB="authd_perf_${tag//-/_}"
        psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB"
        DB_URL="$PG/$PG_DB"
        ;;
    *)
        echo "backend must be sqlite or postgres" >&2
        exit 2
        ;;
    esac
}

drop_db() {
    if [[ -n $PG_DB ]]; then
        psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $PG_DB" || true
        PG_DB=
    fi
    if [[ -n $DB_FILE ]]; then
        rm -f "$DB_FILE" "$DB_FILE-wal" "$DB_FILE-shm"
        DB_FILE=
    fi
}

# start_server [VAR=value...]: starts $BIN on $DB_URL, waits for /readyz.
start_server() {
    env DATABASE_URL="$DB_URL" AUTHD_LISTEN="127.0.0.1:$PORT" AUTHD_RATE_LIMITS=off \
        RUST_LOG=warn "$@" "$BIN" serve >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            cat "$WORK/server.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "server did not become ready" >&2
    return 1
}

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap 'stop_server; drop_db' EXIT

rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

lg() { "$LG" --url "$URL" "$@"; }

cmd_build() {
    cargo build --release
    cargo build --release --example loadgen
    mkdir -p "$(dirname "$BIN")"
    cp target/release/authd "$BIN"
    cp target/release/examples/loadgen "$LG"
    git log --oneline -1 >"$(dirname "$BIN")/commit"
    log "built $(cat "$(dirname "$BIN")/commit")"
}

# Every mode, RUNS runs each, interleaved (run 1 of every mode, then run 2, ...), each on a fresh
# server and database: idle RSS 3 s after readiness, then the mode with --pid.
cmd_modes() {
    local backend=$1 out=${OUT:-benches/results/$1-modes.jsonl}
    local -A conc=([baseline]=64 [verify]=64 [refresh-chain]=32 [login]=64 [logout]=32)
    for run in $(seq 1 "$RUNS"); do
        for mode in baseline verify refresh-chain login logout; do
            fresh_db "$backend" "modes-$mode"
            start_server
            sleep 3
            printf '{"mode":"idle","label":"%s","run":%d,"before":"%s","rss_mb":%s}\n' \
                "$backend" "$run" "$mode" "$(rss_mb "$SERVER_PID")" >>"$out"
            context "$backend $mode run $run" >>"$out"
            log "$backend $mode c=${conc[$mode]} run $run"
            lg --mode "$mode" --concurrency "${conc[$mode]}" --duration "$DURATION" \
                --pid "$SERVER_PID" --label "$backend" | tee -a "$out"
            stop_server
            drop_db
        done
    done
}

# A login storm at c=64 while verify (c=$MIX_C) and refresh-chain (c=$MIX_C) run; first the same
# verify/refresh-chain load without the storm, for comparison.
cmd_mixed() {
    local backend=$1 out=${OUT:-benches/results/$1-mixed.jsonl} c=${MIX_C:-8}
    for run in $(seq 1 "$RUNS"); do
        fresh_db "$backend" mixed
        start_server
        # Register the storm's users first (not timed).
        lg --mode login --concurrency 64 --duration 1 --warmup 0 --user-prefix storm >/dev/null
        context "$backend mixed run $run" >>"$out"
        log "$backend mixed run $run: quiet"
        lg --mode verify --concurrency "$c" --duration "$DURATION" --user-prefix mixv \
            --label "$backend quiet" --pid "$SERVER_PID" | tee -a "$out" &
        local v=$!
        lg --mode refresh-chain --concurrency "$c" --duration "$DURATION" --user-prefix mixr \
            --label "$backend quiet" | tee -a "$out" &
        local r=$!
        wait $v $r
        log "$backend mixed run $run: storm"
        lg --mode login --concurrency 64 --duration $((DURATION + 15)) --user-prefix storm \
            --label "$backend storm" --pid "$SERVER_PID" | tee -a "$out" &
        local s=$!
        sleep 4
        lg --mode verify --concurrency "$c" --duration "$DURATION" --user-prefix mixv \
            --label "$backend during storm" | tee -a "$out" &
        v=$!
        lg --mode refresh-chain --concurrency "$c" --duration "$DURATION" --user-prefix mixr \
            --label "$backend during storm" | tee -a "$out" &
        r=$!
        wait $v $r $s
        stop_server
        drop_db
    done
}

# 1,000,000 sessions seeded, then start-up time (exec to /healthz 200) and refresh-chain c=32,
# each against the same on an empty database, run alternately so that both see the same machine.
cmd_scale() {
    local backend=$1 out=${OUT:-benches/results/$1-scale.jsonl}
    local n=${SEED_SESSIONS:-1000000}
    fresh_db "$backend" scale
    local seeded_url=$DB_URL seeded_file=$DB_FILE seeded_pg=$PG_DB
    context "$backend seed" >>"$out"
    log "$backend seeding $n sessions"
    "$LG" --mode seed --database-url "$DB_URL" --sessions "$n" | tee -a "$out"
    if [[ -n $DB_FILE ]]; then
        printf '{"mode":"db_size","label":"%s seeded","bytes":%d}\n' "$backend" \
            "$(($(stat -c %s "$DB_FILE") + $(stat -c %s "$DB_FILE-wal" 2>/dev/null || echo 0)))" | tee -a "$out"
    fi
    fresh_db "$backend" scale-empty
    local empty_url=$DB_URL empty_file=$DB_FILE empty_pg=$PG_DB
    start_server
    stop_server
    for run in $(seq 1 "$RUNS"); do
        for which in empty seeded; do
            if [[ $which == empty ]]; then
                DB_URL=$empty_url
                label="$backend empty"
            else
                DB_URL=$seeded_url
                label="$backend 1M sessions"
            fi
            DATABASE_URL="$DB_URL" AUTHD_LISTEN="127.0.0.1:$PORT" AUTHD_RATE_LIMITS=off \
                "$LG" --url "$URL" --mode startup --exec "$BIN" --label "$label" | tee -a "$out"
            start_server
            sleep 3
            printf '{"mode":"idle","label":"%s","run":%d,"rss_mb":%s}\n' \
                "$label" "$run" "$(rss_mb "$SERVER_PID")" >>"$out"
            context "$label refresh run $run" >>"$out"
            lg --mode refresh-chain --concurrency 32 --duration "$DURATION" --pid "$SERVER_PID" \
                --label "$label" | tee -a "$out"
            stop_server
        done
    done
    DB_FILE=$empty_file PG_DB=$empty_pg drop_db
    DB_FILE=$seeded_file PG_DB=$seeded_pg drop_db
}

# SOAK_SECS of refresh-chain (c=32) with short lifetimes; every 30 s: RSS, database size and
# row counts. Chains are abandoned (a new login) after 100 s so that no session hits its 120 s
# absolute limit mid-chain; abandoned sessions idle out after 60 s and are pruned.
cmd_soak() {
    local backend=$1 out=${OUT:-benches/results/$1-soak.jsonl} secs=${SOAK_SECS:-600}
    fresh_db "$backend" soak
    start_server AUTHD_REFRESH_IDLE_SECS=60 AUTHD_SESSION_MAX_SECS=120 AUTHD_ACCESS_TTL_SECS=30 \
        AUTHD_PRUNE_INTERVAL_SECS=10
    context "$backend soak" >>"$out"
    log "$backend soak for $secs s"
    lg --mode refresh-chain --concurrency 32 --duration "$secs" --warmup 0 --chain-max-secs 100 \
        --pid "$SERVER_PID" --label "$backend soak${SOAK_VACUUM_SECS:+ vacuum ${SOAK_VACUUM_SECS}s}" \
        >"$WORK/soak.json" &
    local l=$! vac=
    # This machine's Postgres runs with autovacuum=off: SOAK_VACUUM_SECS=60 stands in for it
    # (a plain VACUUM of the database every 60 s, what autovacuum's default naptime would do).
    if [[ $backend == postgres && -n ${SOAK_VACUUM_SECS:-} ]]; then
        (while kill -0 "$l" 2>/dev/null; do
            sleep "$SOAK_VACUUM_SECS"
            psql -q "$DB_URL" -c VACUUM 2>/dev/null || true
        done) &
        vac=$!
    fi
    local t0=$SECONDS
    while kill -0 "$l" 2>/dev/null; do
        sample_db "$backend" $((SECONDS - t0)) | tee -a "$out"
        for _ in $(seq 1 30); do
            kill -0 "$l" 2>/dev/null || break
            sleep 1
        done
    done
    wait "$l"
    if [[ -n $vac ]]; then
        kill "$vac" 2>/dev/null || true
        wait "$vac" 2>/dev/null || true
    fi
    sample_db "$backend" $((SECONDS - t0)) | tee -a "$out"
    tee -a "$out" <"$WORK/soak.json"
    stop_server
    drop_db
}

sample_db() {
    local backend=$1 t=$2
    local rss
    rss=$(rss_mb "$SERVER_PID")
    if [[ $backend == sqlite ]]; then
        python3 - "$DB_FILE" "$t" "$rss" <<'EOF'
import json, os, sqlite3, sys
path, t, rss = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
size = lambda p: os.path.getsize(p) if os.path.exists(p) else 0
db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
count = lambda table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
print(json.dumps({"mode": "soak_sample", "t_s": t, "rss_mb": rss,
                  "db_bytes": size(path), "wal_bytes": size(path + "-wal"),
                  "sessions": count("sessions"), "refresh_tokens": count("refresh_tokens"),
                  "revoked_sessions": count("revoked_sessions"),
                  "security_events": count("security_events")}))
EOF
    else
        psql -Atq "$DB_URL" -v t="$t" -v rss="$rss" <<'EOF'
SELECT json_build_object('mode', 'soak_sample', 't_s', :t, 'rss_mb', :rss,
    'db_bytes', pg_database_size(current_database()),
    'sessions', (SELECT count(*) FROM sessions),
    'refresh_tokens', (SELECT count(*) FROM refresh_tokens),
    'revoked_sessions', (SELECT count(*) FROM revoked_sessions),
    'security_events', (SELECT count(*) FROM security_events),
    'tables', (SELECT json_object_agg(relname, json_build_object(
        'bytes', pg_total_relation_size(relid), 'live', n_live_tup, 'dead', n_dead_tup,
        'autovacuums', autovacuum_count, 'hot_updates', n_tup_hot_upd, 'updates', n_tup_upd))
        FROM pg_stat_user_tables
        WHERE relname IN ('sessions', 'refresh_tokens', 'security_events', 'revoked_sessions')));
EOF
    fi
}

# A CPU profile of the server under one mode: perf stat (CPU, context switches, page faults per
# request) and perf record -g (where the server's samples go), over 8 s in the middle of a run.
cmd_profile() {
    local backend=$1 mode=$2 c=$3 out=${OUT:-benches/results/profile-$1-$2.txt}
    fresh_db "$backend" "profile-$mode"
    start_server
    context "$backend $mode profile" >>"$out"
    lg --mode "$mode" --concurrency "$c" --duration 20 --pid "$SERVER_PID" \
        --label "$backend profiled" >"$WORK/profile.json" &
    local l=$!
    # Setup (registrations, first logins, at most ~5 s) and the 1 s warm-up come first.
    sleep 6
    {
        echo "## perf stat -p authd, 8 s, $backend $mode c=$c"
        perf stat -e task-clock,context-switches,cpu-migrations,page-faults -p "$SERVER_PID" -- sleep 8 2>&1
        echo "## perf record -g -p authd, 8 s: by thread, then by symbol (no children)"
        perf record -q -F 499 -g -p "$SERVER_PID" -o "$WORK/perf.data" -- sleep 8 >/dev/null 2>&1
        perf report -i "$WORK/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null |
            grep -E '^ +[0-9]' | head -8
        perf report -i "$WORK/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
            grep -E '^ +[0-9]' | head -40
    } >>"$out"
    wait "$l"
    tee -a "$out" <"$WORK/profile.json"
    stop_server
    drop_db
}

cmd_micro() {
    local out=${OUT:-benches/results/micro.txt}
    context "micro" >>"$out"
    cargo bench --bench hot_paths 2>/dev/null | tee -a "$out"
}

cmd_summary() {
    python3 - "$@" <<'EOF'
import json, statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for path in sys.argv[1:]:
    for line in open(path):
        line = line.strip()
        if not line.startswith('{'):
            continue
        r = json.loads(line)
        if r.get("mode") in ("context", "soak_sample"):
            continue
        key = (r.get("label", ""), r["mode"], r.get("concurrency", ""))
        rows[key].append(r)
fields = ["rps", "p50_ms", "p99_ms", "errors", "rss_start_mb", "rss_end_mb", "rss_mb",
          "healthz_ms", "readyz_ms", "seconds"]
for key, rs in rows.items():
    med = {}
    for f in fields:
        vals = [r[f] for r in rs if r.get(f) is not None]
        if vals:
            med[f] = statistics.median(vals)
    print(f"{key[0]:<28} {key[1]:<14} c={key[2]!s:<4} n={len(rs)} "
          + " ".join(f"{k}={v:g}" for k, v in med.items()))
EOF
}

what=${1:-}
shift || true
case $what in
build) cmd_build ;;
modes) cmd_modes "$@" ;;
mixed) cmd_mixed "$@" ;;
scale) cmd_scale "$@" ;;
soak) cmd_soak "$@" ;;
micro) cmd_micro ;;
profile) cmd_profile "$@" ;;
summary) cmd_summary "$@" ;;
*)
    sed -n '2,17p' "$0"
    exit 2
    ;;
esac
