#!/usr/bin/env python3
"""fp32 NumPy forward of the trained checkpoints, read as engine/experts/FORMATS.md defines
them (standard, pregated, router); no torch needed.

  python3 tools/train/numpy_reference.py [--ppl .traindata]

For each of tests/data/models/trained/{standard,pregated,router} it continues the prompts
of standard/reference.json greedily (EOS ignored) and, for pregated and router, writes
<model>/reference.json in the same schema (for the standard model it checks its ids
against transformers' reference instead). With --ppl DIR it also prints the perplexity on
the test half of DIR/heldout.bin, split as train_moe.py splits it, to check the exported
tensors against the numbers train_moe.py measured before export.
"""
import argparse
import json
import math
import os
import struct

import numpy as np

ROOT = "tests/data/models/trained"


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        assert t["dtype"] == "BF16", name
        raw = np.frombuffer(data[a:b], dtype=np.uint16).astype(np.uint32) << 16
        out[name] = raw.view(np.float32).reshape(t["shape"])
    return out


class Model:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            c = json.load(f)
        self.w = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.mode = (c.get("moe_serve_routing") or {}).get("mode", "standard")
        self.L, self.E = c["num_hidden_layers"], c["num_local_experts"]
        self.k = c["num_experts_per_tok"]
        self.heads, self.kv = c["num_attention_heads"], c["num_key_value_heads"]
        self.d = c.get("head_dim") or c["hidden_size"] // self.heads
        self.eps = c["rms_norm_eps"]
        theta = (c.get("rope_parameters") or {}).get("rope_theta", c.get("rope_theta"))
        self.inv_freq = 1.0 / (theta ** (np.arange(0, self.d, 2, dtype=np.float32) / self.d))
        self.head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])

    def norm(self, x, name):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * self.w[name]

    def route(self, logits):
        z = logits - logits.max(-1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        idx = np.argsort(-p, axis=-1, kind="stable")[:, : self.k]
        wts = np.take_along_axis(p, idx, -1)
        return idx, wts / wts.sum(-1, keepdims=True)

    def forward(self, ids):
        """ids [S] -> logits [S, V] (fp32), list of per-layer top-k indices [S, k]."""
        w, S = self.w, len(ids)
        x = w["model.embed_tokens.weight"][ids]
        ang = np.outer(np.arange(S, dtype=np.float32), self.inv_freq)
        cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))
        if self.mode == "router":
            h0 = self.norm(x, "model.router.norm.weight")
            u = h0 @ w["model.router.up_proj.weight"].T
            u = u / (1 + np.exp(-u))
            all_logits = u @ w["model.router.out_proj.weight"].T
        mask = np.triu(np.full((S, S), -np.inf, dtype=np.float32), 1)
        pending, choices = None, []
        for l in range(self.L):
            p = f"model.layers.{l}."
            a = self.norm(x, p + "input_layernorm.weight")
            q = (a @ w[p + "self_attn.q_proj.weight"].T).reshape(S, self.heads, self.d)
            k = (a @ w[p + "self_attn.k_proj.weight"].T).reshape(S, self.kv, self.d)
            v = (a @ w[p + "self_attn.v_proj.weight"].T).reshape(S, self.kv, self.d)
            half = self.d // 2

            def rope(t):
                rot = np.concatenate([-t[..., half:], t[..., :half]], -1)
                return t * cos[:, None] + rot * sin[:, None]
            q, k = rope(q), rope(k)
            rep = self.heads // self.kv
            out = np.empty((S, self.heads, self.d), dtype=np.float32)
            for h in range(self.heads):
                s = q[:, h] @ k[:, h // rep].T / math.sqrt(self.d) + mask
                s = np.exp(s - s.max(-1, keepdims=True))
                out[:, h] = (s / s.sum(-1, keepdims=True)) @ v[:, h // rep]
            x = x + out.reshape(S, -1) @ w[p + "self_attn.o_proj.weight"].T
            r = self.norm(x, p + "post_attention_layernorm.weight")
            if self.mode == "standard" or (self.mode == "pregated" and l == 0):
                logits = r @ w[p + "block_sparse_moe.gate.weight"].T
            elif self.mode == "pregated":
                logits = pending
            else:
                logits = all_logits[:, l * self.E:(l + 1) * self.E]
            if self.mode == "pregated" and l + 1 < self.L:
                pending = r @ w[p + "pregate.weight"].T
            idx, wts = self.route(logits)
            choices.append(idx)
            moe = np.zeros_like(r)
            for e in range(self.E):
                rows = np.nonzero((idx == e).any(-1))[0]
                if rows.size == 0:
                    continue
                q_ = p + f"block_sparse_moe.experts.{e}."
                t = r[rows]
                g = t @ w[q_ + "w1.weight"].T
                y = (g / (1 + np.exp(-g)) * (t @ w[q_ + "w3.weight"].T)) @ w[q_ + "w2.weight"].T
                moe[rows] += y * (wts[rows] * (idx[rows] == e)).sum(-1, keepdims=True)
            x = x + moe
        x = self.norm(x, "model.norm.weight")
        return x @ self.head.T, choices


def greedy(model, prompt_ids, n):
    seq, gaps, top5 = list(prompt_ids), [], []
    for _ in range(n):
        logits = model.forward(np.array(seq))[0][-1].astype(np.float64)
        order = np.argsort(-logits, kind="stable")[:5]
        lp = logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())
        gaps.append(float(logits[order[0]] - logits[order[1]]))
        top5.append([[int(i), round(float(lp[i]), 5)] for i in order])
        seq.append(int(order[0]))
    return seq[len(prompt_ids):], gaps, top5


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ppl", help="prepared data dir (heldout.bin) for a perplexity check")
    args = ap.parse_args()
    std_ref = json.load(open(os.path.join(ROOT, "standard", "reference.json")))
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(ROOT, "standard", "tokenizer.json"))
    for name in ("standard", "pregated", "router"):
        model = Model(os.path.join(ROOT, name))
        cases = []
        for c in std_ref["cases"]:
            ids, gaps, top5 = greedy(model, c["prompt_ids"], std_ref["new_tokens"])
            cases.append({"prompt_text": c["prompt_text"], "prompt_ids": c["prompt_ids"],
                          "greedy_ids": ids,
                          "greedy_text": tok.decode(ids, skip_special_tokens=False),
                          "top2_gap": gaps, "min_top2_gap": min(gaps), "top5": top5})
            if name == "standard":
                agree = ids == c["greedy_ids"]
                lp = max(abs(a[0][1] - b[0][1]) for a, b in zip(top5, c["top5"]))
                print(f"standard {c['prompt_text']!r}: ids equal transformers' {agree}, "
                      f"max top-1 logprob diff {lp:.2e}")
            else:
                print(f"{name} {c['prompt_text']!r} -> {cases[-1]['greedy_text']!r} "
                      f"(min gap {min(gaps):.3f})")
        if name != "standard":
            with open(os.path.join(ROOT, name, "reference.json"), "w") as f:
                json.dump({"model_dir": f"{ROOT}/{name}",
                           "semantics": "tools/train/numpy_reference.py: fp32 NumPy forward of "
                                        "the bf16 weights as engine/experts/FORMATS.md defines "
                                        "the routing; greedy, EOS ignored; top2_gap = top-1 "
                                        "minus top-2 logit",
                           "new_tokens": std_ref["new_tokens"], "cases": cases}, f, indent=1)
        if args.ppl:
            held = np.fromfile(os.path.join(args.ppl, "heldout.bin"), dtype=np.uint16)
            held = held.astype(np.int64)
            mid = int(np.nonzero(held[: len(held) // 2 + 1] == 0)[0][-1]) + 1
            test, seq = held[mid:], 256
            n = (test.size - 1) // seq
            tot = 0.0
            for i in range(n):
                w = test[i * seq:(i + 1) * seq + 1]
                lg = model.forward(w[:-1])[0].astype(np.float64)
                m = lg.max(-1, keepdims=True)
                lse = (m + np.log(np.exp(lg - m).sum(-1, keepdims=True)))[:, 0]
                tot += float((lse - lg[np.arange(seq), w[1:]]).sum())
            print(f"{name}: test ppl {math.exp(tot / (n * seq)):.3f}")


if __name__ == "__main__":
    main()
