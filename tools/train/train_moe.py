#!/usr/bin/env python3
"""Trains the three small MoE language models (standard, pregated, router) on the GPU.

  python3 tools/train/train_moe.py --data .traindata --out OUT [--seconds 110]

--data is what tools/train/prepare_data.py wrote (train.bin, heldout.bin, tokenizer.json,
stats.json). The three models share data, tokenizer, architecture size, seed, optimiser
and step count (the count is set from the measured speed of the standard model and the
--seconds budget, capped at --max-epochs). The held-out split is halved by position:
the first half ("val") picks the best checkpoint (evaluated every --eval-every steps),
the second half ("test") gives the reported perplexity.

Writes OUT/{standard,pregated,router}/ (config.json, generation_config.json,
model.safetensors in bf16, tokenizer.json, tokenizer_config.json) and OUT/results.json.
`standard` is re-saved by transformers' MixtralForCausalLM.save_pretrained, and gets
reference.json (greedy continuations computed by transformers in fp32 on the CPU) and
routing_trace.json (top-2 experts per token and layer on held-out text).
"""
import argparse
import copy
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_model  # noqa: E402

CFG = dict(vocab=4096, hidden=192, layers=4, heads=4, kv_heads=2, head_dim=48, inter=128,
           experts=8, top_k=2, rope_theta=10000.0, eps=1e-5, max_pos=512, router_hidden=128,
           init_std=0.02, dropout=0.1)
PROMPTS = ["The", "In Python, a list"]
NEW_TOKENS = 24


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def device_name(device):
    return torch.cuda.get_device_name() if device == "cuda" else "cpu"


def log(*a):
    print(*a, flush=True)


def mixtral_config():
    from transformers import MixtralConfig
    c = CFG
    cfg = MixtralConfig(
        vocab_size=c["vocab"], hidden_size=c["hidden"], intermediate_size=c["inter"],
        num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
        num_key_value_heads=c["kv_heads"], head_dim=c["head_dim"],
        num_local_experts=c["experts"], num_experts_per_tok=c["top_k"],
        max_position_embeddings=c["max_pos"], rms_norm_eps=c["eps"],
        rope_parameters={"rope_theta": c["rope_theta"], "rope_type": "default"},
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=0, pad_token_id=1,
        router_aux_loss_coef=0.02, initializer_range=c["init_std"], sliding_window=None)
    cfg.architectures = ["MixtralForCausalLM"]
    return cfg


def save_tokenizer(data_dir, out_dir):
    from transformers import PreTrainedTokenizerFast
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(data_dir, "tokenizer.json"),
                                  eos_token="<|endoftext|>", pad_token="<|padding|>",
                                  model_max_length=CFG["max_pos"])
    tok.save_pretrained(out_dir)
    return tok


def export(model, out_dir, data_dir, routing=None):
    """Writes config + bf16 safetensors + tokenizer; returns the config dict."""
    os.makedirs(out_dir, exist_ok=True)
    cfg = mixtral_config()
    cfg.save_pretrained(out_dir)
    with open(os.path.join(out_dir, "config.json")) as f:
        conf = json.load(f)
    conf.pop("torch_dtype", None)
    conf["dtype"] = "bfloat16"
    if routing is not None:
        conf["moe_serve_routing"] = routing
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(conf, f, indent=2, sort_keys=True)
        f.write("\n")
    save_file(moe_model.hf_state_dict(model), os.path.join(out_dir, "model.safetensors"),
              metadata={"format": "pt"})
    gen = {"do_sample": False, "eos_token_id": 0, "pad_token_id": 1}
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    save_tokenizer(data_dir, out_dir)
    return conf


def load_hf(model_dir, dtype=torch.float32):
    from transformers import MixtralForCausalLM
    m, info = MixtralForCausalLM.from_pretrained(model_dir, dtype=dtype,
                                                 attn_implementation="eager",
                                                 output_loading_info=True)
    bad = {k: list(v) for k, v in info.items() if v}
    return m.eval(), bad


def bf16_rounded(model):
    m = copy.deepcopy(model).float()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    return m.eval()


@torch.no_grad()
def nll(model, tokens, seq, batch=64, autocast=False):
    """Mean next-token NLL over non-overlapping windows of `seq`+1 tokens."""
    model.eval()
    n = (tokens.numel() - 1) // seq
    total, count = 0.0, 0
    for i in range(0, n, batch):
        idx = torch.arange(i, min(n, i + batch), device=tokens.device) * seq
        win = idx[:, None] + torch.arange(seq + 1, device=tokens.device)[None]
        w = tokens[win]
        with torch.autocast(tokens.device.type, dtype=torch.bfloat16, enabled=autocast):
            logits, _, _ = model(w[:, :-1])
        total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                 w[:, 1:].reshape(-1), reduction="sum").item()
        count += w[:, 1:].numel()
    return total / count


def check_against_hf(data_dir, device):
    """Random weights: our standard forward (fp32) vs transformers' MixtralForCausalLM."""
    torch.manual_seed(0)
    m = moe_model.MoeLM(CFG, "standard").to(device)
    with tempfile.TemporaryDirectory() as d:
        export(m, d, data_dir)
        hf, bad = load_hf(d)
        ref = bf16_rounded(m)
        ids = torch.randint(0, CFG["vocab"], (2, 40))
        with torch.no_grad():
            ours = ref.cpu()(ids)[0]
            theirs = hf(ids).logits.float()
        diff = (ours - theirs).abs().max().item()
    log(f"check vs transformers (random weights, fp32 CPU): max |logit diff| = {diff:.3e}; "
        f"loading info problems: {bad}")
    return diff, bad


def train_one(mode, train, val, args, steps, device):
    torch.manual_seed(args.seed)
    model = moe_model.MoeLM(CFG, mode).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), fused=(device == "cuda"))
    warm = min(200, steps // 10)

    def lr_at(s):
        if s < warm:
            return args.lr * (s + 1) / warm
        t = (s - warm) / max(1, steps - warm)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    n = train.numel() - args.seq - 1
    best, best_state, history = float("inf"), None, []
    t0 = time.time()
    for s in range(steps):
        model.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(s)
        starts = torch.randint(0, n, (args.batch,), generator=gen).to(device)
        win = train[starts[:, None] + torch.arange(args.seq + 1, device=device)[None]]
        with torch.autocast(device, dtype=torch.bfloat16):
            logits, router_logits, _ = model(win[:, :-1])
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), win[:, 1:].reshape(-1))
            aux = moe_model.load_balancing_loss(router_logits, CFG["top_k"], CFG["experts"])
            loss = ce + args.aux * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (s + 1) % args.eval_every == 0 or s + 1 == steps:
            v = nll(model, val, args.seq, autocast=True)
            history.append([s + 1, round(ce.item(), 4), round(aux.item(), 4), round(v, 4)])
            log(f"  {mode} step {s + 1}/{steps} train_ce {ce.item():.3f} aux {aux.item():.3f} "
                f"val_nll {v:.3f} ({time.time() - t0:.0f}s)")
            if v < best:
                best, best_state = v, copy.deepcopy(model.state_dict())
    sync(device)
    secs = time.time() - t0
    model.load_state_dict(best_state)
    return model, secs, history


@torch.no_grad()
def expert_load(model, tokens, seq):
    counts = torch.zeros(CFG["layers"], CFG["experts"])
    w = tokens[: (tokens.numel() // seq) * seq].reshape(-1, seq)[:64]
    _, _, choices = model(w)
    for l, c in enumerate(choices):
        counts[l] += torch.bincount(c.reshape(-1).cpu(), minlength=CFG["experts"]).float()
    return (counts / counts.sum(1, keepdim=True)).round(decimals=3).tolist()


@torch.no_grad()
def reference(model_dir, tok):
    """Greedy continuations by transformers (fp32, CPU, eager), EOS ignored."""
    hf, _ = load_hf(model_dir)
    cases = []
    for prompt in PROMPTS:
        ids = tok(prompt)["input_ids"]
        seq, gaps, top5 = list(ids), [], []
        for _ in range(NEW_TOKENS):
            logits = hf(torch.tensor([seq])).logits[0, -1].float()
            top = torch.topk(logits, 5)
            lp = torch.log_softmax(logits, -1)
            gaps.append(float(top.values[0] - top.values[1]))
            top5.append([[int(i), round(float(lp[i]), 5)] for i in top.indices])
            seq.append(int(top.indices[0]))
        out = hf(torch.tensor([seq]), output_router_logits=True)
        margins = []
        for rl in out.router_logits:
            s = torch.sort(rl.float().reshape(-1, CFG["experts"]), dim=-1, descending=True).values
            margins.append(float((s[:, CFG["top_k"] - 1] - s[:, CFG["top_k"]]).min()))
        cases.append({"prompt_text": prompt, "prompt_ids": ids, "greedy_ids": seq[len(ids):],
                      "greedy_text": tok.decode(seq[len(ids):]), "top2_gap": gaps,
                      "min_top2_gap": min(gaps), "top5": top5,
                      "min_router_margin": min(margins)})
    return cases


@torch.no_grad()
def routing_trace(model_dir, tokens, seq, n_seqs):
    """Top-2 experts (top-1 first) per token and layer, by transformers on held-out text."""
    hf, _ = load_hf(model_dir)
    seqs = []
    for i in range(n_seqs):
        ids = tokens[i * seq:(i + 1) * seq].tolist()
        out = hf(torch.tensor([ids]), output_router_logits=True)
        layers = []
        for rl in out.router_logits:
            top = torch.topk(rl.float().reshape(-1, CFG["experts"]), CFG["top_k"], -1).indices
            layers.append("".join(f"{a}{b}" for a, b in top.tolist()))
        seqs.append({"token_ids": ids, "experts": layers})
    return {"format": "per sequence: token_ids, and per layer a string of 2 digits per token "
                      "(top-1 expert, top-2 expert), teacher-forced over held-out text "
                      "(the routing a decode of that text sees)",
            "model": "tests/data/models/trained/standard", "num_layers": CFG["layers"],
            "num_experts": CFG["experts"], "top_k": CFG["top_k"], "seq_len": seq,
            "sequences": seqs}


def standard_extras(r, out_dir, test, args):
    """Canonical transformers save of the standard model, then transformers' own
    perplexity, the reference continuations and the routing trace."""
    import transformers
    hf, bad2 = load_hf(out_dir, dtype=torch.bfloat16)
    tmp = out_dir + ".tmp"
    hf.save_pretrained(tmp)
    for f in os.listdir(tmp):
        shutil.copy(os.path.join(tmp, f), os.path.join(out_dir, f))
    shutil.rmtree(tmp)
    hf32, _ = load_hf(out_dir)
    tst = test.cpu()
    n = (tst.numel() - 1) // args.seq
    tot = 0.0
    with torch.no_grad():
        for i in range(n):
            w = tst[i * args.seq:(i + 1) * args.seq + 1][None]
            tot += F.cross_entropy(hf32(w[:, :-1]).logits[0].float(), w[0, 1:],
                                   reduction="sum").item()
    r["test_ppl_transformers_cpu"] = math.exp(tot / (n * args.seq))
    r["hf_loading_problems"] = str(bad2)
    tok = save_tokenizer(args.data, out_dir)
    cases = reference(out_dir, tok)
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump({"model_dir": "tests/data/models/trained/standard",
                   "semantics": "transformers MixtralForCausalLM, fp32 from the bf16 "
                                "weights, eager attention, CPU; greedy, EOS ignored; "
                                "top2_gap = top-1 minus top-2 logit",
                   "transformers_version": transformers.__version__,
                   "torch_version": torch.__version__, "new_tokens": NEW_TOKENS,
                   "cases": cases}, f, indent=1)
    for c in cases:
        log(f"  reference {c['prompt_text']!r} -> {c['greedy_text']!r} "
            f"(min top2 gap {c['min_top2_gap']:.4f})")
    trace = routing_trace(out_dir, test.cpu(), args.seq, args.trace_seqs)
    with open(os.path.join(out_dir, "routing_trace.json"), "w") as f:
        json.dump(trace, f, separators=(",", ":"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=".traindata")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=110.0, help="training budget per model")
    ap.add_argument("--max-epochs", type=float, default=30.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--aux", type=float, default=0.02)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--trace-seqs", type=int, default=40)
    ap.add_argument("--device", default="cuda", help="cuda; cpu only for a smoke test")
    args = ap.parse_args()
    device = args.device
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    import transformers
    log(f"torch {torch.__version__} transformers {transformers.__version__} "
        f"device {device_name(device)}")
    t_start = time.time()

    diff, bad = check_against_hf(args.data, device)
    if diff > 1e-3:
        sys.exit(f"our standard forward differs from transformers' Mixtral by {diff}: not training")

    train = torch.from_numpy(np.fromfile(os.path.join(args.data, "train.bin"),
                                         dtype=np.uint16).astype(np.int64)).to(device)
    held = np.fromfile(os.path.join(args.data, "heldout.bin"), dtype=np.uint16).astype(np.int64)
    mid = int(np.nonzero(held[: len(held) // 2 + 1] == 0)[0][-1]) + 1  # a document boundary
    val = torch.from_numpy(held[:mid]).to(device)
    test = torch.from_numpy(held[mid:]).to(device)
    log(f"train {train.numel()} tokens, val {val.numel()}, test {test.numel()}")

    # Step count from the standard model's speed (same for all three models).
    probe = moe_model.MoeLM(CFG, "standard").to(device)
    opt = torch.optim.AdamW(probe.parameters(), lr=1e-4)
    x = train[: args.batch * (args.seq + 1)].reshape(args.batch, -1)
    for i in range(25):
        if i == 5:
            sync(device)
            t = time.time()
        with torch.autocast(device, dtype=torch.bfloat16):
            lg, rl, _ = probe(x[:, :-1])
            loss = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(device)
    step_s = (time.time() - t) / 20
    tokens_per_step = args.batch * args.seq
    steps = int(min(args.seconds / step_s, args.max_epochs * train.numel() / tokens_per_step))
    log(f"step {step_s * 1e3:.1f} ms -> {steps} steps "
        f"({steps * tokens_per_step / train.numel():.1f} epochs) per model")
    del probe, opt

    results = {"config": CFG, "steps": steps, "batch": args.batch, "seq": args.seq,
               "tokens_per_step": tokens_per_step, "lr": args.lr, "aux_coef": args.aux,
               "hf_check_max_logit_diff": diff, "hf_loading_problems": str(bad),
               "torch": torch.__version__, "transformers": transformers.__version__,
               "device": device_name(device), "models": {}}
    routings = {"standard": None, "pregated": {"mode": "pregated"},
                "router": {"mode": "router", "router_hidden_size": CFG["router_hidden"]}}
    for mode in moe_model.MODES:
        model, secs, history = train_one(mode, train, val, args, steps, device)
        exact = bf16_rounded(model)
        test_nll = nll(exact, test, args.seq)
        val_nll = nll(exact, val, args.seq)
        out_dir = os.path.join(args.out, mode)
        export(model, out_dir, args.data, routings[mode])
        r = {"train_seconds": round(secs, 1), "params": moe_model.param_count(model),
             "test_nll": test_nll, "test_ppl": math.exp(test_nll),
             "val_ppl": math.exp(val_nll), "history": history,
             "expert_load_test": expert_load(exact, test, args.seq)}
        if mode == "standard":
            try:
                standard_extras(r, out_dir, test, args)
            except Exception:  # keep the trained models even if a check breaks
                traceback.print_exc()
                r["extras_error"] = traceback.format_exc()
        r["bytes"] = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
        r["safetensors_bytes"] = os.path.getsize(os.path.join(out_dir, "model.safetensors"))
        results["models"][mode] = r
        log(f"{mode}: test ppl {r['test_ppl']:.2f} (val {r['val_ppl']:.2f}) params {r['params']} "
            f"safetensors {r['safetensors_bytes']} B, {secs:.0f}s "
            + f"transformers ppl {r.get('test_ppl_transformers_cpu')}")
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        del model, exact
        if device == "cuda":
            torch.cuda.empty_cache()
    results["total_seconds"] = round(time.time() - t_start, 1)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    log(f"done in {results['total_seconds']}s")


if __name__ == "__main__":
    main()
