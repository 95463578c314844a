#!/usr/bin/env bash
# Serving benchmark on the GPU machine (issue 6 item 6, issue 7): moe_server on a synthetic
# OLMoE-1B-7B-shaped checkpoint, moe_bench over HTTP (OpenAI backend), and the scheduler's
# host overhead (host time between Forward calls over time inside Forward) scraped from
# /metrics. Run from the repository root with the binaries bundled by
# tools/bench/bundle_serving.sh:
#
#   device tool: run(command="bash tools/bench/device_serving.sh", carry=["dist/serving"])
#
# Steps, all bounded by `timeout` and by BUDGET_S for the whole script:
#   1. make $MODEL with make_synthetic_model (if absent; its tokenizer is the synthetic
#      byte-level BPE the tool writes, so prompts are sent as token ids below its size);
#   2. start moe_server on 127.0.0.1 with KV blocks for MAX_NUM_SEQS sequences of
#      INPUT_LEN + OUTPUT_LEN tokens, wait for /health;
#   3. CONCURRENCY (256) sequences at once: CONC_PROMPTS random prompts, request rate inf,
#      --max-concurrency CONCURRENCY, over gRPC by default (CONC_BACKEND): the HTTP
#      gateway serves at most 64 streams at once (HttpGatewayOptions::num_threads), so
#      over HTTP no more than 64 sequences ever run. /metrics scraped every SCRAPE_INTERVAL; the
#      overhead ratio printed for the whole run and for the stretch with CONCURRENCY
#      requests running;
#   4. the rate sweep RATES over BACKEND (openai), one moe_bench run per rate:
#      NUM_PROMPTS prompts, fewer at rates whose arrivals would span more than
#      RATE_SECONDS at the rate the server can take (said in the output); merged into
#      sweep.json, sweep.md and sweep.svg; overhead ratio over the sweep;
#   5. SIGTERM to the server (exit code printed).
# Everything can be overridden from the environment (the CPU dry run below uses that):
#   MODEL=tests/data/models/trained/standard DEVICE=cpu INPUT_LEN=32 OUTPUT_LEN=200 \
#   NUM_PROMPTS=12 RATES=1,4,64,inf RATE_SECONDS=3 MIN_PROMPTS=3 CONCURRENCY=8 \
#   CONC_PROMPTS=16 MAX_NUM_SEQS=8 MAX_BATCHED_TOKENS=256 SCRAPE_INTERVAL=0.2 BUDGET_S=110 \
#   SERVER_ARGS="--num-threads 1" OUT=/tmp/dry_out bash tools/bench/device_serving.sh
# (about 10 s on a 2-core machine).
# Files in $OUT (8 at most, as the device tool returns): summary.txt, server.log,
# c256.json, sweep.json, sweep.md, sweep.svg, metrics_final.txt, make_model.log.
set -uo pipefail

T0=$(date +%s)
BUDGET_S=${BUDGET_S:-530}
BIN=${BIN:-dist/serving}
MODEL=${MODEL:-/tmp/olmoe}
PROFILE=${PROFILE:-olmoe-1b-7b}
DEVICE=${DEVICE:-cuda}
INPUT_LEN=${INPUT_LEN:-512}
OUTPUT_LEN=${OUTPUT_LEN:-128}
NUM_PROMPTS=${NUM_PROMPTS:-500}
RATES=${RATES:-1,2,4,8,16,32,64,inf}
RATE_SECONDS=${RATE_SECONDS:-30}
MIN_PROMPTS=${MIN_PROMPTS:-20}
CONCURRENCY=${CONCURRENCY:-256}
CONC_PROMPTS=${CONC_PROMPTS:-512}
MAX_NUM_SEQS=${MAX_NUM_SEQS:-256}
MAX_BATCHED_TOKENS=${MAX_BATCHED_TOKENS:-2048}
SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-0.25}  # seconds between /metrics scrapes in step 3
KV_BLOCK_SIZE=16  # the runner's default block size (RunnerOptions::kv_block_size)
SERVER_ARGS=${SERVER_ARGS:-}
BACKEND=${BACKEND:-openai}       # the sweep's moe_bench backend
CONC_BACKEND=${CONC_BACKEND:-grpc}  # the CONCURRENCY run's backend
OUT=${OUT:-/tmp/serving_out}
WORK=$(mktemp -d /tmp/serving_work.XXXXXX)
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$PWD/$BIN/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
exec > >(tee -a "$OUT/summary.txt") 2>&1

left() { echo $((BUDGET_S - ($(date +%s) - T0))); }
say() { echo "[$(($(date +%s) - T0))s] $*"; }
SERVER_PID=""
SCRAPER_PID=""
stop_server() {
  [[ -n "$SCRAPER_PID" ]] && kill "$SCRAPER_PID" 2> /dev/null
  SCRAPER_PID=""
  [[ -z "$SERVER_PID" ]] && return
  kill -TERM "$SERVER_PID" 2> /dev/null
  for _ in $(seq 1 150); do kill -0 "$SERVER_PID" 2> /dev/null || break; sleep 0.2; done
  if kill -0 "$SERVER_PID" 2> /dev/null; then
    say "moe_server still running 30 s after SIGTERM: SIGKILL"
    kill -KILL "$SERVER_PID" 2> /dev/null
  fi
  wait "$SERVER_PID"
  say "moe_server exit code after SIGTERM: $?"
  SERVER_PID=""
}
trap stop_server EXIT

for b in moe_server moe_bench make_synthetic_model; do
  [[ -x "$BIN/$b" ]] || { say "missing $BIN/$b: run tools/bench/bundle_serving.sh first"; exit 1; }
done
command -v nvidia-smi > /dev/null &&
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader

# 1. The model.
if [[ ! -f "$MODEL/config.json" ]]; then
  say "making $MODEL (make_synthetic_model --profile $PROFILE --seed 1)"
  if ! timeout "$(left)" "$BIN/make_synthetic_model" --profile "$PROFILE" --seed 1 \
      --out "$MODEL" > "$OUT/make_model.log" 2>&1; then
    say "make_synthetic_model failed:"; tail -5 "$OUT/make_model.log"; exit 1
  fi
  say "model made"
fi
# Prompt token ids below the tokenizer's own vocabulary (the synthetic checkpoint's
# tokenizer is far smaller than the model's vocab_size), so every prompt token is real text.
PROMPT_VOCAB=$(python3 - "$MODEL" << 'PY'
import json, sys
d = sys.argv[1]
try:
    t = json.load(open(f"{d}/tokenizer.json"))
    n = len(t["model"]["vocab"])
    n = min(n, json.load(open(f"{d}/config.json")).get("vocab_size", n))
    print(max(n, 2))
except Exception:
    print(256)
PY
)

# 2. The server.
BLOCKS_PER_SEQ=$(((INPUT_LEN + OUTPUT_LEN + KV_BLOCK_SIZE - 1) / KV_BLOCK_SIZE + 1))
NUM_KV_BLOCKS=${NUM_KV_BLOCKS:-$((MAX_NUM_SEQS * BLOCKS_PER_SEQ))}
MAX_QUEUE=$((NUM_PROMPTS > CONC_PROMPTS ? NUM_PROMPTS : CONC_PROMPTS))
MAX_QUEUE=$((MAX_QUEUE + 64))
say "moe_server --device $DEVICE: max_num_seqs $MAX_NUM_SEQS, max_num_batched_tokens" \
  "$MAX_BATCHED_TOKENS, $NUM_KV_BLOCKS KV blocks ($MAX_NUM_SEQS x $BLOCKS_PER_SEQ)," \
  "max_queue $MAX_QUEUE"
: > "$WORK/server.out"
# shellcheck disable=SC2086
"$BIN/moe_server" --model "$MODEL" --device "$DEVICE" --host 127.0.0.1 --http-port 0 \
  --grpc-port 0 --served-model-name bench --max-num-seqs "$MAX_NUM_SEQS" \
  --max-num-batched-tokens "$MAX_BATCHED_TOKENS" --num-kv-blocks "$NUM_KV_BLOCKS" \
  --max-queue "$MAX_QUEUE" --drain-timeout 20 $SERVER_ARGS \
  > "$WORK/server.out" 2> "$OUT/server.log" &
SERVER_PID=$!
PORT=""
GRPC_PORT=""
while (($(left) > 60)); do
  kill -0 "$SERVER_PID" 2> /dev/null || { say "moe_server exited:"; tail -5 "$OUT/server.log"; exit 1; }
  [[ -z "$PORT" ]] && PORT=$(sed -n 's/.*http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/server.out")
  [[ -z "$GRPC_PORT" ]] &&
    GRPC_PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\) (gRPC).*/\1/p' "$WORK/server.out")
  [[ -n "$PORT" ]] && curl -sf --max-time 2 "127.0.0.1:$PORT/health" > /dev/null && break
  sleep 0.5
done
curl -sf --max-time 2 "127.0.0.1:$PORT/health" > /dev/null ||
  { say "moe_server not healthy in time"; tail -5 "$OUT/server.log"; exit 1; }
grep -E "model loaded|serving on" "$OUT/server.log" | sed 's/^/  /'
URL="127.0.0.1:$PORT"
scrape() { curl -sf --max-time 10 "$URL/metrics"; }
# scrape_row FILE: appends "time host forward steps running" from one scrape.
scrape_row() {
  scrape | awk -v t="$(date +%s.%N)" '
    index($1, "moe_scheduler_host_seconds_total{") == 1 { h = $2 }
    index($1, "moe_scheduler_forward_seconds_total{") == 1 { f = $2 }
    index($1, "moe_scheduler_steps_total{") == 1 { s = $2 }
    index($1, "vllm:num_requests_running{") == 1 { r = $2 }
    END { if (f != "") print t, h, f, s, r }' >> "$1"
}
# overhead LABEL FILE [MIN_RUNNING]: host/forward between the first and last rows; with
# MIN_RUNNING, summed only over intervals whose both ends had >= MIN_RUNNING running.
overhead() {
  python3 - "$@" << 'PY'
import sys
label, path = sys.argv[1], sys.argv[2]
min_running = float(sys.argv[3]) if len(sys.argv) > 3 else None
rows = [list(map(float, l.split())) for l in open(path) if len(l.split()) == 5]
if len(rows) < 2:
    print(f"{label}: not enough /metrics scrapes"); sys.exit()
pairs = list(zip(rows, rows[1:])) if min_running else [(rows[0], rows[-1])]
if min_running:
    pairs = [(a, b) for a, b in pairs if a[4] >= min_running and b[4] >= min_running]
dt = sum(b[0] - a[0] for a, b in pairs)
dh = sum(b[1] - a[1] for a, b in pairs)
df = sum(b[2] - a[2] for a, b in pairs)
ds = sum(b[3] - a[3] for a, b in pairs)
if df <= 0 or ds <= 0:
    print(f"{label}: no steps in the window ({len(pairs)} intervals)"); sys.exit()
print(f"{label}: scheduler overhead host/forward = {100 * dh / df:.2f}% "
      f"(host {dh:.3f} s, forward {df:.3f} s over {int(ds)} steps in {dt:.1f} s; "
      f"per step: host {1e3 * dh / ds:.3f} ms, forward {1e3 * df / ds:.3f} ms)")
PY
}
bench() {  # BACKEND SECONDS ARGS...: moe_bench bounded by SECONDS and the budget
  local backend=$1 limit=$2; shift 2
  local endpoint=$URL
  [[ "$backend" == grpc ]] && endpoint=127.0.0.1:$GRPC_PORT
  local budget=$(($(left) - 15))
  ((limit > budget)) && limit=$budget
  ((limit < 5)) && { say "out of time budget: skipped moe_bench $*"; return 124; }
  timeout "$limit" "$BIN/moe_bench" --backend "$backend" --endpoint "$endpoint" --model bench \
    --dataset random --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" \
    --vocab-size "$PROMPT_VOCAB" --ignore-eos --seed 1 --metric-percentiles 50,99 "$@"
  local rc=$?
  ((rc == 124)) && say "moe_bench stopped by timeout after ${limit}s"
  return $rc
}
json_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['summary'][sys.argv[2]])" "$@"; }

# Warm-up: a few requests, so first-use costs stay out of the measured runs.
bench "$BACKEND" 60 --num-prompts 4 --request-rate inf > "$WORK/warmup.txt" 2>&1 ||
  { say "warm-up failed:"; tail -5 "$WORK/warmup.txt"; }

# 3. CONCURRENCY sequences at once.
say "== $CONCURRENCY concurrent sequences ($CONC_BACKEND): $CONC_PROMPTS prompts, random" \
  "$INPUT_LEN in / $OUTPUT_LEN out, request rate inf, --max-concurrency $CONCURRENCY"
: > "$WORK/c256.rows"
scrape_row "$WORK/c256.rows"
(while true; do sleep "$SCRAPE_INTERVAL"; scrape_row "$WORK/c256.rows"; done) &
SCRAPER_PID=$!
bench "$CONC_BACKEND" 240 --num-prompts "$CONC_PROMPTS" --request-rate inf --max-concurrency "$CONCURRENCY" \
  --json-out "$OUT/c256.json"
kill "$SCRAPER_PID" 2> /dev/null; wait "$SCRAPER_PID" 2> /dev/null; SCRAPER_PID=""
scrape_row "$WORK/c256.rows"
overhead "$CONCURRENCY-concurrency run, whole run" "$WORK/c256.rows"
# A finished request's replacement arrives a moment later, so "all CONCURRENCY running"
# is rarely what a scrape sees: the steady state is counted from 15/16 of it.
STEADY=$((CONCURRENCY * 15 / 16))
overhead "$CONCURRENCY-concurrency run, while >= $STEADY requests were running" \
  "$WORK/c256.rows" "$STEADY"
# Where the host time went (cumulative since start: warm-up + this run).
scrape | awk 'index($1, "moe_scheduler_host_phase_seconds_total{") == 1 {
  match($1, /phase="[a-z]+"/); printf "  host time, %s: %.3f s\n", substr($1, RSTART + 7, RLENGTH - 8), $2 }' |
  tee -a "$OUT/summary.txt"
PEAK=$(awk '$5 > m { m = $5 } END { print m + 0 }' "$WORK/c256.rows")
say "peak vllm:num_requests_running seen: $PEAK (of $CONCURRENCY)"
SAT_THR=0
[[ -f "$OUT/c256.json" ]] && SAT_THR=$(json_field "$OUT/c256.json" request_throughput)
say "saturated request throughput: $SAT_THR req/s (used to size the sweep's runs)"

# 4. The rate sweep, one run per rate.
say "== rate sweep $RATES ($BACKEND): random $INPUT_LEN in / $OUTPUT_LEN out, up to $NUM_PROMPTS" \
  "prompts per rate, fewer where arrivals would span more than ${RATE_SECONDS}s"
: > "$WORK/sweep.rows"
scrape_row "$WORK/sweep.rows"
IFS=, read -r -a RATE_LIST <<< "$RATES"
for r in "${RATE_LIST[@]}"; do
  read -r n expect < <(python3 - "$r" "$NUM_PROMPTS" "$MIN_PROMPTS" "$RATE_SECONDS" "$SAT_THR" << 'PY'
import math, sys
r, n, lo, secs, sat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
rate = math.inf if r == "inf" else float(r)
eff = min(rate, sat) if sat > 0 else rate   # requests/s the run can go at
count = n if math.isinf(eff) else min(n, max(lo, math.ceil(eff * secs)))
expect = 30 if math.isinf(eff) else count / eff
print(count, int(expect))
PY
)
  note=""
  ((n < NUM_PROMPTS)) && note=" (capped from $NUM_PROMPTS: ~${RATE_SECONDS}s of arrivals at this rate)"
  say "-- rate $r req/s: $n prompts$note"
  bench "$BACKEND" $((3 * expect + 60)) --num-prompts "$n" --request-rate "$r" \
    --json-out "$WORK/rate_$r.json" | grep -v -E '^\s*$'
  scrape_row "$WORK/sweep.rows"
  # A run that fell short of its rate measured what the server can take: size the next
  # runs by it.
  if [[ -f "$WORK/rate_$r.json" ]]; then
    thr=$(json_field "$WORK/rate_$r.json" request_throughput)
    SAT_THR=$(python3 -c "import sys; r, t, s = sys.argv[1:]; r = float(r); t = float(t)
print(t if r > 0 and t < 0.85 * r else s)" "$r" "$thr" "$SAT_THR")
  fi
done
overhead "sweep, all rates" "$WORK/sweep.rows"
scrape > "$OUT/metrics_final.txt"

python3 - "$WORK" "$OUT" "$RATES" << 'PY'
import json, math, os, sys
work, out, rates = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
runs = []
for r in rates:
    p = os.path.join(work, f"rate_{r}.json")
    if os.path.exists(p):
        runs.append(json.load(open(p)))
json.dump({"runs": runs}, open(os.path.join(out, "sweep.json"), "w"), indent=1)
rows = ["| rate (req/s) | prompts | completed | failed | req/s | output tok/s | TTFT median / P99 (ms) | TPOT median / P99 (ms) | E2EL median / P99 (ms) |",
        "|---|---|---|---|---|---|---|---|---|"]
pts = []
for run in runs:
    c, s = run["config"], run["summary"]
    rate = c["request_rate"]
    st = lambda k: (s[k].get("median_ms", 0), s[k].get("p99_ms", 0))
    rows.append(f"| {rate} | {c['num_prompts']} | {s['completed']} | {s['failed']} | "
                f"{s['request_throughput']:.2f} | {s['output_throughput']:.1f} | "
                + " | ".join("%.1f / %.1f" % st(k) for k in ("ttft", "tpot", "e2el")) + " |")
    pts.append((str(rate), s["output_throughput"], st("e2el"), st("ttft")))
no_ttft = sum(1 for run in runs for q in run["requests"] if q["ok"] and q["ttft_s"] <= 0)
n_ok = sum(1 for run in runs for q in run["requests"] if q["ok"])
if n_ok and no_ttft > n_ok // 10:
    rows.append(f"\nNote: {no_ttft} of {n_ok} requests saw no streamed text before the end, so "
                "their TTFT/ITL are not measured (a synthetic checkpoint's tokenizer covers few "
                "of the model's ids, so most generated tokens have no text); throughput and "
                "E2EL stand. BACKEND=grpc measures TTFT from token ids.")
open(os.path.join(out, "sweep.md"), "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
# Two panels: output token throughput (x) against median and P99 E2EL, and TTFT (y).
W, H, P = 460, 300, 60
def panel(x0, title, idx):
    xs = [p[1] for p in pts] or [1]
    ys = [v for p in pts for v in p[idx]] or [1]
    xm, ym = max(xs) * 1.1 or 1, max(ys) * 1.1 or 1
    X = lambda v: x0 + P + v / xm * W
    Y = lambda v: 40 + H - v / ym * H
    g = [f'<text x="{x0 + P + W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{title}</text>',
         f'<line x1="{X(0)}" y1="{Y(0)}" x2="{X(xm)}" y2="{Y(0)}" stroke="black"/>',
         f'<line x1="{X(0)}" y1="{Y(0)}" x2="{X(0)}" y2="{Y(ym)}" stroke="black"/>']
    for i in range(6):
        xv, yv = xm * i / 5, ym * i / 5
        g.append(f'<text x="{X(xv)}" y="{Y(0) + 16}" text-anchor="middle" font-size="11">{xv:.0f}</text>')
        g.append(f'<text x="{X(0) - 6}" y="{Y(yv) + 4}" text-anchor="end" font-size="11">{yv:.0f}</text>')
        g.append(f'<line x1="{X(0)}" y1="{Y(yv)}" x2="{X(xm)}" y2="{Y(yv)}" stroke="#e5e5e5"/>')
    g.append(f'<text x="{X(xm / 2)}" y="{Y(0) + 36}" text-anchor="middle" font-size="12">output tokens/s</text>')
    g.append(f'<text x="{x0 + 14}" y="{Y(ym / 2)}" font-size="12" transform="rotate(-90 {x0 + 14} {Y(ym / 2)})" text-anchor="middle">ms</text>')
    for k, (name, color, dash) in enumerate((("median", "#1f77b4", ""), ("P99", "#d62728", ' stroke-dasharray="6 4"'))):
        line = " ".join(f"{X(p[1]):.1f},{Y(p[idx][k]):.1f}" for p in pts)
        g.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        g.append(f'<text x="{X(xm) - 60}" y="{Y(ym) + 16 + 14 * k}" font-size="12" fill="{color}">{name}</text>')
        for p in pts:
            g.append(f'<circle cx="{X(p[1]):.1f}" cy="{Y(p[idx][k]):.1f}" r="3" fill="{color}"/>')
    for p in pts:
        g.append(f'<text x="{X(p[1]) + 4:.1f}" y="{Y(p[idx][1]) - 6:.1f}" font-size="10">{p[0]}</text>')
    return "\n".join(g)
svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * (W + P + 40)}" height="{H + 100}" font-family="sans-serif">\n'
       f'<rect width="100%" height="100%" fill="white"/>\n'
       + panel(0, "End-to-end latency vs throughput", 2) + "\n"
       + panel(W + P + 40, "Time to first token vs throughput", 3) + "\n</svg>\n")
open(os.path.join(out, "sweep.svg"), "w").write(svg)
PY

# 5. Stop the server (the EXIT trap does it and prints the exit code).
stop_server
say "done in $(($(date +%s) - T0))s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
