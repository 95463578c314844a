#!/usr/bin/env bash
# On the GPU machine: moe_server --device cuda through HTTP and gRPC, greedy tokens
# checked against tests/data/reference (transformers, fp32), then SIGTERM → exit 0.
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/dist/serve/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
S=dist/serve
fail=0
serve_and_check() {  # model dtype family
  local model=$1 dtype=$2 family=$3
  $S/moe_server --model "$model" --device cuda --dtype "$dtype" --grpc-port 0 --http-port 0 \
    > /tmp/serve.out 2> /tmp/serve.err &
  local pid=$!
  local http="" grpc=""
  for _ in $(seq 1 300); do
    http=$(sed -n 's/.*http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' /tmp/serve.out)
    grpc=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\) (gRPC).*/\1/p' /tmp/serve.out)
    if [ -n "$http" ] && curl -sf "localhost:$http/health" > /dev/null; then break; fi
    sleep 0.2
  done
  grep -E "model loaded|serving on" /tmp/serve.err | sed 's/^/  /'
  if [ -n "$family" ]; then
    python3 - "$http" "$family" <<'PY'
import json, sys, urllib.request
port, family = sys.argv[1], sys.argv[2]
ref = json.load(open(f"tests/data/reference/{family}.json"))
ok = 0
for case in ref["cases"]:
    body = {"prompt": case["prompt_ids"], "max_tokens": len(case["greedy_ids"]), "temperature": 0,
            "ignore_eos": True, "return_token_ids": True}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    out = json.load(urllib.request.urlopen(req))
    ids = out["choices"][0]["token_ids"]
    same = ids == case["greedy_ids"]
    ok += same
    print(f"  {family} {case['name']}: greedy over HTTP on cuda {'==' if same else '!='} transformers")
print(f"  {family}: {ok}/{len(ref['cases'])} cases equal")
sys.exit(0 if ok == len(ref["cases"]) else 1)
PY
    [ $? -eq 0 ] || fail=1
  else
    curl -s "localhost:$http/v1/completions" -H 'Content-Type: application/json' \
      -d '{"prompt": "The Python standard library", "max_tokens": 24, "temperature": 0}' | head -c 600; echo
  fi
  echo "  gRPC stream:"; $S/moe_client --endpoint "127.0.0.1:$grpc" --prompt "Hello" --max-tokens 12 2>&1 | tail -2 | sed 's/^/    /'
  kill -TERM $pid; wait $pid; local rc=$?
  echo "  moe_server exit code after SIGTERM: $rc"; [ $rc -eq 0 ] || fail=1
}
for fam in mixtral qwen2_moe qwen3_moe olmoe; do
  echo "== $fam (fp32)"; serve_and_check tests/data/models/$fam fp32 $fam
done
echo "== trained default model (auto dtype)"; serve_and_check tests/data/models/trained/standard auto ""
echo "serve check: $([ $fail -eq 0 ] && echo PASSED || echo FAILED)"
exit $fail
