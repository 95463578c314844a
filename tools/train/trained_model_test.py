#!/usr/bin/env python3
"""Checks the trained models in tests/data/models/trained as a user would meet them.

- each model: //tools:moe_generate (CPU backend) continues each prompt of its
  reference.json with the recorded greedy ids (EOS ignored, 24 tokens) and the same top-1
  log-probabilities within 1e-3. The standard model's reference is transformers'
  (MixtralForCausalLM); the pregated and router references come from
  tools/train/numpy_reference.py (FORMATS.md semantics; it reproduces transformers on the
  standard model and train_moe.py's perplexities on all three). Ids are compared exactly
  up to the first step whose reference top-1/top-2 logit gap is <= 1e-3 (a near tie,
  where fp32 rounding may pick either token); later steps are reported, not asserted.
- pregated / router: the tensors and config key are exactly those of
  engine/experts/FORMATS.md (read from the safetensors header).
- every checkpoint is <= 8 MB; routing_trace.json is well formed.
"""
import json
import os
import struct
import subprocess
import sys

BIN = sys.argv[1]
ROOT = "tests/data/models/trained"
NEAR_TIE = 1e-3
failures = 0
passed = 0


def check(cond, what):
    global failures, passed
    if cond:
        passed += 1
    else:
        failures += 1
        print("FAILED:", what)


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"]) for k, v in h.items()}


def config(name):
    with open(os.path.join(ROOT, name, "config.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------- greedy output, 3 models
for name in ("standard", "pregated", "router"):
    ref = json.load(open(os.path.join(ROOT, name, "reference.json")))
    for case in ref["cases"]:
        what = f"{name} {case['prompt_text']!r}"
        n = len(case["greedy_ids"])
        r = subprocess.run([BIN, "--model", os.path.join(ROOT, name), "--device", "cpu",
                            "--prompt", case["prompt_text"], "--max-tokens", str(n),
                            "--temperature", "0", "--logprobs", "2", "--ignore-eos", "--json"],
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, f"{what}: exit code {r.returncode}: {r.stderr}")
        if r.returncode != 0:
            continue
        out = json.loads(r.stdout)
        check(out["prompt_ids"] == case["prompt_ids"],
              f"{what}: prompt ids {out['prompt_ids']} vs {case['prompt_ids']}")
        tie = next((i for i, g in enumerate(case["top2_gap"]) if g <= NEAR_TIE), n)
        got, want = out["token_ids"], case["greedy_ids"]
        check(got[:tie] == want[:tie], f"{what}: greedy ids {got[:tie]} vs reference {want[:tie]}")
        for i in range(min(tie, len(out["logprobs"]))):
            lp = out["logprobs"][i][0][1]
            check(abs(lp - case["top5"][i][0][1]) < 1e-3,
                  f"{what} step {i}: top-1 logprob {lp} vs {case['top5'][i][0][1]}")
        if tie == n:
            check(out["text"] == case["greedy_text"],
                  f"{what}: text {out['text']!r} vs {case['greedy_text']!r}")
        else:
            print(f"note: {what}: near tie at step {tie} "
                  f"(gap {case['top2_gap'][tie]:.2e}); ids after it not compared")
        print(f"{what} -> {out['text']!r}")

# ---------------------------------------------------------------- formats of the variants
cfg = config("standard")
L, E, H = cfg["num_hidden_layers"], cfg["num_local_experts"], cfg["hidden_size"]
check(cfg["architectures"] == ["MixtralForCausalLM"] and "moe_serve_routing" not in cfg,
      "standard: a plain MixtralForCausalLM config")
std = header(os.path.join(ROOT, "standard", "model.safetensors"))
check(all(f"model.layers.{l}.block_sparse_moe.gate.weight" in std for l in range(L)),
      "standard: every layer has its gate")
check(not any("pregate" in k or k.startswith("model.router.") for k in std),
      "standard: no pregate / router tensors")

pre = header(os.path.join(ROOT, "pregated", "model.safetensors"))
check(config("pregated").get("moe_serve_routing") == {"mode": "pregated"},
      "pregated: moe_serve_routing.mode")
gates = sorted(k for k in pre if k.endswith("block_sparse_moe.gate.weight"))
check(gates == ["model.layers.0.block_sparse_moe.gate.weight"],
      f"pregated: only the first layer has an own gate, got {gates}")
pregates = sorted(k for k in pre if k.endswith(".pregate.weight"))
check(pregates == [f"model.layers.{l}.pregate.weight" for l in range(L - 1)],
      f"pregated: pre-gates on layers 0..{L - 2}, got {pregates}")
check(all(pre[k][1] == [E, H] for k in gates + pregates), "pregated: gate shapes [E, H]")

rt = header(os.path.join(ROOT, "router", "model.safetensors"))
rcfg = config("router").get("moe_serve_routing", {})
R = rcfg.get("router_hidden_size")
check(rcfg.get("mode") == "router" and isinstance(R, int) and R > 0, f"router: config {rcfg}")
check(rt.get("model.router.norm.weight", (None, None))[1] == [H], "router: norm [H]")
check(rt.get("model.router.up_proj.weight", (None, None))[1] == [R, H], "router: up_proj [R, H]")
check(rt.get("model.router.out_proj.weight", (None, None))[1] == [L * E, R],
      "router: out_proj [M*E, R]")
check(not any(k.endswith("gate.weight") for k in rt), "router: no own or pre-gates")

for name in ("standard", "pregated", "router"):
    size = os.path.getsize(os.path.join(ROOT, name, "model.safetensors"))
    check(size <= 8_000_000, f"{name}: checkpoint {size} bytes > 8 MB")
    tensors = header(os.path.join(ROOT, name, "model.safetensors"))
    check(all(v[0] == "BF16" for v in tensors.values()), f"{name}: bf16 tensors")

# ---------------------------------------------------------------- routing trace
trace = json.load(open(os.path.join(ROOT, "standard", "routing_trace.json")))
check(trace["num_layers"] == L and trace["num_experts"] == E and trace["top_k"] == 2,
      "trace: model shape")
ok = True
for s in trace["sequences"]:
    ok &= len(s["experts"]) == L
    for layer in s["experts"]:
        ok &= len(layer) == 2 * len(s["token_ids"]) and all(c in "01234567" for c in layer)
        ok &= all(layer[2 * i] != layer[2 * i + 1] for i in range(len(s["token_ids"])))
check(ok and len(trace["sequences"]) > 0, "trace: 2 distinct experts per token and layer")

print(f"{passed} checks passed, {failures} failed")
sys.exit(1 if failures else 0)
