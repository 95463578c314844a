#!/bin/bash
# Prefix caching on/off, CPU, trained standard model, shared 384-token prefix.
cd /work/main
for mode in on off; do
  flag=""; [ $mode = off ] && flag="--no-enable-prefix-caching"
  bazel-bin/server/moe_server --model tests/data/models/trained/standard --device cpu --host 127.0.0.1 \
    --grpc-port 18551 --http-port 18581 $flag > /tmp/pc_$mode.out 2> /tmp/pc_$mode.err &
  PID=$!
  for i in $(seq 1 100); do curl -sf 127.0.0.1:18581/health >/dev/null && break; sleep 0.2; done
  echo "=== prefix caching $mode"
  bazel-bin/tools/bench/moe_bench --backend grpc --endpoint 127.0.0.1:18551 --dataset random \
    --prefix-len 384 --input-len 32 --output-len 16 --vocab-size 4096 --num-prompts 48 \
    --request-rate inf --max-concurrency 4 --seed 1 --ignore-eos --json-out /tmp/pc_$mode.json 2>&1 | tail -40
  curl -s 127.0.0.1:18581/metrics | grep -E "^vllm:prefix_cache|^vllm:prompt_tokens_total" 
  kill -TERM $PID; wait $PID
done
