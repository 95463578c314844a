"""A small Mixtral-style MoE language model in plain PyTorch, in three routing variants.

Modes (engine/experts/FORMATS.md):
  standard  every layer routes with its own gate, as MixtralForCausalLM does.
  pregated  layer 0 has its own gate; the pre-gate of layer l (reading l's
            post_attention_layernorm output) gives layer l+1's routing.
  router    a decoupled router over token embeddings gives every layer's routing:
            out_proj(silu(up_proj(RMSNorm(embedding)))) -> [layers * experts] logits.

The arithmetic follows transformers' Mixtral (RMSNorm in fp32, rotate_half RoPE, softmax
over all experts, top-k, renormalised weights, expert = w2(silu(w1 x) * w3 x), tied
embeddings), so the `standard` export loads into MixtralForCausalLM unchanged;
train_moe.py checks that on random weights before training.

Experts are computed densely (all experts on all tokens, weighted by a sparse [T, E]
combination matrix): the same values and gradients as a sparse dispatch, in few kernels.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("standard", "pregated", "router")


def rms_norm(x, weight, eps):
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Layer(nn.Module):
    def __init__(self, c, has_gate, has_pregate):
        super().__init__()
        H, I, E, d = c["hidden"], c["inter"], c["experts"], c["head_dim"]
        self.c = c
        self.input_norm = nn.Parameter(torch.ones(H))
        self.post_norm = nn.Parameter(torch.ones(H))
        self.q = nn.Linear(H, c["heads"] * d, bias=False)
        self.k = nn.Linear(H, c["kv_heads"] * d, bias=False)
        self.v = nn.Linear(H, c["kv_heads"] * d, bias=False)
        self.o = nn.Linear(c["heads"] * d, H, bias=False)
        self.gate = nn.Linear(H, E, bias=False) if has_gate else None
        self.pregate = nn.Linear(H, E, bias=False) if has_pregate else None
        std = c["init_std"]
        self.w1 = nn.Parameter(torch.randn(E, I, H) * std)
        self.w3 = nn.Parameter(torch.randn(E, I, H) * std)
        self.w2 = nn.Parameter(torch.randn(E, H, I) * std)

    def attention(self, x, cos, sin):
        B, S, _ = x.shape
        c = self.c
        d = c["head_dim"]
        q = self.q(x).view(B, S, c["heads"], d).transpose(1, 2)
        k = self.k(x).view(B, S, c["kv_heads"], d).transpose(1, 2)
        v = self.v(x).view(B, S, c["kv_heads"], d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = c["heads"] // c["kv_heads"]
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q.to(v.dtype), k.to(v.dtype), v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(B, S, c["heads"] * d))

    def moe(self, r, logits):
        """r [T, H], logits [T, E] -> (out [T, H], top-k indices [T, k])."""
        k = self.c["top_k"]
        p = torch.softmax(logits.float(), dim=-1)
        top_w, top_i = p.topk(k, dim=-1)
        top_w = top_w / top_w.sum(-1, keepdim=True)
        comb = torch.zeros_like(p).scatter(1, top_i, top_w).to(r.dtype)
        a = torch.einsum("th,eih->eti", r, self.w1.to(r.dtype))
        b = torch.einsum("th,eih->eti", r, self.w3.to(r.dtype))
        y = torch.einsum("eti,ehi->eth", F.silu(a) * b, self.w2.to(r.dtype))
        return torch.einsum("eth,te->th", y, comb), top_i


class MoeLM(nn.Module):
    def __init__(self, c, mode):
        super().__init__()
        assert mode in MODES
        self.c, self.mode = c, mode
        H, V, L, E = c["hidden"], c["vocab"], c["layers"], c["experts"]
        self.embed = nn.Parameter(torch.randn(V, H) * c["init_std"])
        self.layers = nn.ModuleList([
            Layer(c, has_gate=(mode == "standard" or (mode == "pregated" and l == 0)),
                  has_pregate=(mode == "pregated" and l < L - 1))
            for l in range(L)])
        self.norm = nn.Parameter(torch.ones(H))
        if mode == "router":
            R = c["router_hidden"]
            self.router_norm = nn.Parameter(torch.ones(H))
            self.router_up = nn.Linear(H, R, bias=False)
            self.router_out = nn.Linear(R, L * E, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=c["init_std"])
        self.dropout = c.get("dropout", 0.0)
        d = c["head_dim"]
        inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, ids):
        """ids [B, S] -> (logits [B, S, V] fp32, router logits per layer [B*S, E] list,
        top-k indices per layer [B*S, k] list)."""
        c = self.c
        B, S = ids.shape
        E, L = c["experts"], c["layers"]
        x = F.embedding(ids, self.embed)
        pos = torch.arange(S, device=ids.device, dtype=torch.float32)
        freqs = torch.outer(pos, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        if self.mode == "router":
            h0 = rms_norm(x, self.router_norm, c["eps"])
            all_logits = self.router_out(F.silu(self.router_up(h0))).reshape(B * S, L * E)
        router_logits, choices, pending = [], [], None
        drop = self.dropout if self.training else 0.0
        for l, layer in enumerate(self.layers):
            a = layer.attention(rms_norm(x, layer.input_norm, c["eps"]), cos, sin)
            h = x + F.dropout(a, drop, self.training)
            r = rms_norm(h, layer.post_norm, c["eps"]).reshape(B * S, -1)
            if self.mode == "standard":
                lg = layer.gate(r)
            elif self.mode == "pregated":
                lg = layer.gate(r) if l == 0 else pending
                pending = layer.pregate(r) if layer.pregate is not None else None
            else:
                lg = all_logits[:, l * E:(l + 1) * E]
            out, top_i = layer.moe(r, lg)
            router_logits.append(lg)
            choices.append(top_i)
            x = h + F.dropout(out.reshape(B, S, -1), drop, self.training)
        x = rms_norm(x, self.norm, c["eps"])
        logits = F.linear(x, self.embed).float()
        return logits, router_logits, choices


def load_balancing_loss(router_logits, top_k, num_experts):
    """Switch-style auxiliary loss, as transformers' Mixtral computes it (all layers'
    logits concatenated): num_experts * sum_e fraction_routed_e * mean_prob_e."""
    logits = torch.cat([lg.float() for lg in router_logits], dim=0)
    p = torch.softmax(logits, dim=-1)
    _, sel = p.topk(top_k, dim=-1)
    mask = F.one_hot(sel, num_experts).float()  # [N, k, E]
    tokens_per_expert = mask.mean(0)            # [k, E]
    prob_per_expert = p.mean(0)                 # [E]
    return (tokens_per_expert * prob_per_expert.unsqueeze(0)).sum() * num_experts


def hf_state_dict(model):
    """Tensor names of the exported checkpoint (FORMATS.md / transformers' Mixtral)."""
    out = {"model.embed_tokens.weight": model.embed, "model.norm.weight": model.norm}
    for l, layer in enumerate(model.layers):
        p = f"model.layers.{l}."
        out[p + "input_layernorm.weight"] = layer.input_norm
        out[p + "post_attention_layernorm.weight"] = layer.post_norm
        for n in "qkvo":
            out[p + f"self_attn.{n}_proj.weight"] = getattr(layer, n).weight
        if layer.gate is not None:
            out[p + "block_sparse_moe.gate.weight"] = layer.gate.weight
        if layer.pregate is not None:
            out[p + "pregate.weight"] = layer.pregate.weight
        for e in range(layer.w1.shape[0]):
            q = p + f"block_sparse_moe.experts.{e}."
            out[q + "w1.weight"] = layer.w1[e]
            out[q + "w2.weight"] = layer.w2[e]
            out[q + "w3.weight"] = layer.w3[e]
    if model.mode == "router":
        out["model.router.norm.weight"] = model.router_norm
        out["model.router.up_proj.weight"] = model.router_up.weight
        out["model.router.out_proj.weight"] = model.router_out.weight
    return {k: v.detach().to(torch.bfloat16).contiguous().cpu() for k, v in out.items()}


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def ppl_from_nll(nll):
    return math.exp(nll)
