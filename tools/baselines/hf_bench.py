#!/usr/bin/env python3
"""Hugging Face transformers baseline for tools/gpu/engine_bench: prefill and decode
tokens/s of one local checkpoint, bf16 on GPU 0, optionally with accelerate CPU offload.

Usage (on the GPU machine, from the repository root; no network is used):

  python3 tools/baselines/hf_bench.py --model /tmp/olmoe [--batches 1,4,16,64,256]
      [--prompt-len 128] [--new-tokens 128] [--dtype bf16] [--warmup-steps 3]
      [--prefill-reps 3] [--max-seconds-per-row S] [--json-out FILE]
      [--offload --gpu-memory-gib X [--cpu-memory-gib Y]] [--device cuda|cpu] [--dry-run]

  e.g. the issue 5 row:  python3 tools/baselines/hf_bench.py --model /tmp/olmoe \
         --batches 1,4,16,64,256 --max-seconds-per-row 20 --json-out /tmp/hf.json
  the issue 6 row:       python3 tools/baselines/hf_bench.py --model /tmp/olmoe --offload \
         --gpu-memory-gib 6 --batches 1,8,32 --max-seconds-per-row 25 --json-out /tmp/hf_off.json
  tools/baselines/device_hf.sh runs both on the device and writes logs + JSON to $OUT.

What one row measures, for each batch B:
  prefill  B sequences of --prompt-len random token ids (fixed --seed, special tokens of
           the config and tokenizer files excluded) in one forward with a fresh KV cache
           and last-row logits only (as generate() asks for). One untimed forward, then
           --prefill-reps timed ones; the row reports the median.
           tokens/s = B * prompt-len / median seconds.
  decode   greedy, step by step: model(next_ids, past_key_values=cache, use_cache=True),
           argmax of the last logits on the GPU, EOS ignored. The first token fed is the
           prefill's argmax; --new-tokens steps run in all, so the context ends at
           prompt-len + new-tokens. The first --warmup-steps are not timed. Every step is
           timed on the host clock between torch.cuda.synchronize() calls. With
           --max-seconds-per-row S, timing stops once S seconds of timed steps have run;
           the row reports what ran (steps_timed, stopped_early).
           tokens/s = B * steps_timed / timed seconds; ms_per_step = timed seconds / steps.
  As in generate(), decode runs inside the model's _optimize_model_for_decode() context
  when this transformers version has one (it swaps grouped_mm experts for batched_mm on
  GPUs); --decode-experts-impl same|NAME overrides that.

--offload loads with device_map="auto" and max_memory={0: "<X>GiB", "cpu": "<Y>GiB"}, so
the modules that do not fit in X GiB stay on the CPU and accelerate's hooks copy them to
GPU 0 on every forward (the peer of expert offload). Needs the accelerate package: without
it the script says so and exits with status 3. The share of parameters left on the CPU is
printed and written as offload_cpu_fraction. Default batches: 1,4,16,64,256 (1,8,32 with
--offload).

Output: a markdown table on stdout, and with --json-out a JSON list with one object per
row: device, commit (env MOE_COMMIT or "unknown"), model, engine ("transformers <version>"
[+ " accelerate-offload"]), phase (prefill|decode), batch, tokens_per_s, ms_per_step,
steps_timed, roofline_ratio (null: no roofline is computed here), offload, and for offload
rows gpu_memory_gib; plus descriptive extras (model_config, prompt_len, new_tokens, dtype,
torch, stopped_early, peak_gpu_mem_gib, ...). A row that fails (CUDA out of memory) is
reported on stderr, left out of the JSON, and makes the exit status 1.

--device cpu runs the same rows on the host (no offload, no peak-memory figure): for small
checkpoints such as tests/data/models/*, to check the script without a GPU.
--dry-run prints the plan (rows, steps, load mode, excluded special ids) without importing
torch or transformers.
"""

import argparse
import gc
import importlib.util
import json
import os
import statistics
import sys
import time

DTYPES = ("bf16", "fp16", "fp32")


def parse_batches(text):
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}")
    if not out or any(b <= 0 for b in out):
        raise argparse.ArgumentTypeError(f"need positive integers, got {text!r}")
    return out


def build_parser():
    p = argparse.ArgumentParser(
        description="Hugging Face transformers prefill/decode baseline (see the module docstring).")
    p.add_argument("--model", required=True, help="local HF-format checkpoint directory")
    p.add_argument("--batches", type=parse_batches, default=None,
                   help="comma-separated batch sizes (default 1,4,16,64,256; 1,8,32 with --offload)")
    p.add_argument("--prompt-len", type=int, default=128, help="prompt tokens per sequence")
    p.add_argument("--new-tokens", type=int, default=128, help="decode steps per row (warm-up included)")
    p.add_argument("--dtype", choices=DTYPES, default="bf16")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda = GPU 0 (default); cpu = a host-only row (small models, self-checks)")
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed decode steps at the start of a row")
    p.add_argument("--prefill-reps", type=int, default=3, help="timed prefill forwards per row (median)")
    p.add_argument("--max-seconds-per-row", type=float, default=None,
                   help="stop a decode row after this many timed seconds and report what ran")
    p.add_argument("--seed", type=int, default=1, help="seed of the random prompt ids")
    p.add_argument("--json-out", default=None, help="write the rows as a JSON list here")
    p.add_argument("--offload", action="store_true",
                   help='accelerate offload: device_map="auto" with max_memory {0: X GiB, "cpu": Y GiB}')
    p.add_argument("--gpu-memory-gib", type=float, default=None, help="max_memory for GPU 0 (with --offload)")
    p.add_argument("--cpu-memory-gib", type=float, default=None,
                   help="max_memory for the CPU (with --offload; default 85%% of MemTotal)")
    p.add_argument("--attn-impl", default=None, help="attn_implementation for from_pretrained (default: theirs)")
    p.add_argument("--experts-impl", default=None,
                   help="experts_implementation for from_pretrained (default: theirs)")
    p.add_argument("--decode-experts-impl", default="generate",
                   help="'generate' (what generate() does in this version), 'same', or a name to set for decode")
    p.add_argument("--dry-run", action="store_true", help="print the plan only; torch is not imported")
    return p


def check_args(args):
    """Returns an error message for inconsistent flags, or None."""
    if args.prompt_len <= 0:
        return "--prompt-len must be positive"
    if args.new_tokens <= 0:
        return "--new-tokens must be positive"
    if not 0 <= args.warmup_steps < args.new_tokens:
        return f"--warmup-steps must be in [0, --new-tokens) = [0, {args.new_tokens}), got {args.warmup_steps}"
    if args.prefill_reps <= 0:
        return "--prefill-reps must be positive"
    if args.max_seconds_per_row is not None and args.max_seconds_per_row <= 0:
        return "--max-seconds-per-row must be positive"
    if args.offload and args.device != "cuda":
        return "--offload needs --device cuda"
    if args.offload and (args.gpu_memory_gib is None or args.gpu_memory_gib <= 0):
        return "--offload needs --gpu-memory-gib X (X > 0): the GPU 0 share of max_memory"
    if not args.offload and (args.gpu_memory_gib is not None or args.cpu_memory_gib is not None):
        return "--gpu-memory-gib / --cpu-memory-gib only apply with --offload"
    return None


def default_cpu_memory_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(int(line.split()[1]) * 1024 * 0.85 / 2**30)
    except OSError:
        pass
    return 64


def read_json(path):
    """Parsed JSON of `path`, or None when the file is absent; a broken file is an error."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"hf_bench: cannot parse {path}: {e}")


def text_config(cfg):
    """The decoder config dict (a multimodal config nests it under text_config)."""
    return cfg.get("text_config", cfg) if isinstance(cfg.get("text_config"), dict) else cfg


def special_token_ids(model_dir, cfg):
    """Ids prompts must avoid: bos/eos/pad of config.json and generation_config.json, and
    the special added tokens of tokenizer_config.json and tokenizer.json."""
    ids = set()

    def add(v):
        if isinstance(v, int):
            ids.add(v)
        elif isinstance(v, list):
            ids.update(x for x in v if isinstance(x, int))

    gen = read_json(os.path.join(model_dir, "generation_config.json")) or {}
    for c in (cfg, text_config(cfg), gen):
        for key in ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"):
            add(c.get(key))
    tok_cfg = read_json(os.path.join(model_dir, "tokenizer_config.json")) or {}
    for k, v in (tok_cfg.get("added_tokens_decoder") or {}).items():
        if isinstance(v, dict) and v.get("special", False) and k.isdigit():
            ids.add(int(k))
    tok = read_json(os.path.join(model_dir, "tokenizer.json")) or {}
    for t in tok.get("added_tokens") or []:
        if isinstance(t, dict) and t.get("special", False) and isinstance(t.get("id"), int):
            ids.add(t["id"])
    return ids


def describe_config(cfg):
    """A short shape string, e.g. 'olmoe L16 H2048 E64 k8 V50304'."""
    t = text_config(cfg)
    experts = t.get("num_experts", t.get("num_local_experts"))
    parts = [str(t.get("model_type", cfg.get("model_type", "?"))),
             f"L{t.get('num_hidden_layers', '?')}", f"H{t.get('hidden_size', '?')}"]
    if experts:
        parts += [f"E{experts}", f"k{t.get('num_experts_per_tok', '?')}"]
    parts.append(f"V{t.get('vocab_size', '?')}")
    return " ".join(parts)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return "CPU " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


def param_count(n):
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def model_name(model_dir):
    base = os.path.basename(os.path.normpath(model_dir))
    return base or model_dir


class Plan:
    """Everything the run needs that does not depend on torch."""

    def __init__(self, args):
        self.args = args
        self.batches = args.batches or ([1, 8, 32] if args.offload else [1, 4, 16, 64, 256])
        cfg_path = os.path.join(args.model, "config.json")
        self.config = read_json(cfg_path)
        self.vocab_size = None
        self.special = []
        if self.config is None:
            if not args.dry_run:
                raise SystemExit(f"hf_bench: {cfg_path} not found: --model must be a HF-format checkpoint directory")
            self.config = {}  # a dry run may plan for a checkpoint made later on the device
            self._finish(args)
            return
        t = text_config(self.config)
        self.vocab_size = t.get("vocab_size")
        if not isinstance(self.vocab_size, int) or self.vocab_size <= 0:
            raise SystemExit(f"hf_bench: {cfg_path}: vocab_size missing or not a positive integer")
        self.special = sorted(i for i in special_token_ids(args.model, self.config) if 0 <= i < self.vocab_size)
        if len(self.special) >= self.vocab_size:
            raise SystemExit(f"hf_bench: {args.model}: every id in the vocabulary is a special token")
        self._finish(args)

    def _finish(self, args):
        self.accelerate = importlib.util.find_spec("accelerate") is not None
        self.cpu_memory_gib = args.cpu_memory_gib or (default_cpu_memory_gib() if args.offload else None)

    def max_memory(self):
        return {0: f"{self.args.gpu_memory_gib:g}GiB", "cpu": f"{self.cpu_memory_gib:g}GiB"}

    def describe(self):
        a = self.args
        if self.vocab_size is None:
            lines = [f"model {a.model} (config.json not found: shapes and special ids unknown), "
                     f"dtype {a.dtype}, seed {a.seed}"]
        else:
            excluded = self.special if len(self.special) <= 16 else f"{len(self.special)} ids"
            lines = [f"model {a.model} ({describe_config(self.config)}), dtype {a.dtype}, seed {a.seed}",
                     f"prompt ids: uniform over {self.vocab_size - len(self.special)} ids "
                     f"(excluded special ids: {excluded})"]
        if a.offload:
            lines.append(f'load: device_map="auto", max_memory={self.max_memory()} '
                         f"(accelerate {'found' if self.accelerate else 'NOT installed: offload cannot run'})")
        elif a.device == "cpu":
            lines.append("load: on the CPU, run on the CPU")
        else:
            lines.append("load: " + ('device_map={"": 0}' if self.accelerate
                                     else "on the CPU, then .to('cuda:0') (accelerate not installed)"))
        timed = a.new_tokens - a.warmup_steps
        cap = f", at most {a.max_seconds_per_row:g} s timed" if a.max_seconds_per_row else ""
        for b in self.batches:
            lines.append(f"row batch {b}: prefill {b}x{a.prompt_len} tokens (1 untimed + {a.prefill_reps} timed); "
                         f"decode {a.new_tokens} steps ({a.warmup_steps} warm-up, {timed} timed{cap}), "
                         f"context {a.prompt_len} -> {a.prompt_len + a.new_tokens}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------
# Everything below runs with torch.


def torch_dtype(torch, name):
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def load_model(plan):
    import torch
    import transformers

    a = plan.args
    kwargs = {"dtype": torch_dtype(torch, a.dtype), "local_files_only": True}
    if a.attn_impl:
        kwargs["attn_implementation"] = a.attn_impl
    if a.experts_impl:
        kwargs["experts_implementation"] = a.experts_impl
    if a.offload:
        kwargs["device_map"] = "auto"
        kwargs["max_memory"] = plan.max_memory()
    elif plan.accelerate and a.device == "cuda":
        kwargs["device_map"] = {"": 0}
    t0 = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(a.model, **kwargs)
    if a.device == "cuda" and not a.offload and not plan.accelerate:
        model = model.to("cuda:0")
    model.eval()
    return model, time.perf_counter() - t0


def offload_summary(model):
    """(fraction of parameter elements placed on the CPU, {device: module count})."""
    dmap = getattr(model, "hf_device_map", None) or {}
    if "disk" in dmap.values():
        raise SystemExit("hf_bench: accelerate put modules on disk (max_memory for the CPU too small); "
                         "raise --cpu-memory-gib or --gpu-memory-gib")
    counts = {}
    for dev in dmap.values():
        counts[str(dev)] = counts.get(str(dev), 0) + 1
    prefixes = sorted(dmap.items(), key=lambda kv: -len(kv[0]))
    total = on_cpu = 0
    for name, p in model.named_parameters():
        n = p.numel()
        total += n
        for prefix, dev in prefixes:
            if prefix == "" or name == prefix or name.startswith(prefix + "."):
                on_cpu += n if str(dev) == "cpu" else 0
                break
    return (on_cpu / total if total else 0.0), counts


def experts_impl(model):
    get = getattr(model, "get_experts_implementation", None)
    if get is None:
        return None
    try:
        return get().get("")
    except Exception:  # noqa: BLE001 - only a label for the JSON
        return None


def decode_context(model, mode):
    """The context manager decode steps run in (see --decode-experts-impl)."""
    import contextlib

    if mode == "same":
        return contextlib.nullcontext()
    if mode == "generate":
        opt = getattr(model, "_optimize_model_for_decode", None)
        try:
            return opt() if opt is not None else contextlib.nullcontext()
        except TypeError:  # a private helper whose signature this script does not know
            return contextlib.nullcontext()

    @contextlib.contextmanager
    def switched():
        before = model.get_experts_implementation()
        model.set_experts_implementation(mode)
        try:
            yield
        finally:
            model.set_experts_implementation(before)

    if getattr(model, "set_experts_implementation", None) is None:
        raise SystemExit(f"hf_bench: --decode-experts-impl {mode}: this transformers has no set_experts_implementation")
    return switched()


def prefill_kwargs(model):
    """Ask for last-row logits only, under whichever name this version uses."""
    import inspect

    params = inspect.signature(model.forward).parameters
    for name in ("logits_to_keep", "num_logits_to_keep"):
        if name in params:
            return {name: 1}
    return {}


def run_row(model, plan, batch, allowed, device, extra_prefill):
    """Measures one batch: returns (prefill_row, decode_row) as dicts of measured fields."""
    import torch

    a = plan.args
    g = torch.Generator().manual_seed(a.seed * 1000003 + batch)
    ids = allowed[torch.randint(len(allowed), (batch, a.prompt_len), generator=g)].to(device)
    on_gpu = device.type == "cuda"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)

    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    secs = []
    out = None
    for rep in range(a.prefill_reps + 1):
        out = None  # drop the previous cache before the next forward allocates its own
        sync()
        t0 = time.perf_counter()
        out = model(ids, past_key_values=None, use_cache=True, **extra_prefill)
        sync()
        if rep > 0:
            secs.append(time.perf_counter() - t0)
    med = statistics.median(secs)
    prefill = {"tokens_per_s": batch * a.prompt_len / med, "ms_per_step": med * 1e3, "steps_timed": len(secs)}

    cache = out.past_key_values
    next_ids = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
    del out
    step_secs = []
    stopped_early = False
    with decode_context(model, a.decode_experts_impl):
        impl_decode = experts_impl(model)
        sync()
        for step in range(a.new_tokens):
            t0 = time.perf_counter()
            o = model(next_ids, past_key_values=cache, use_cache=True)
            cache = o.past_key_values
            next_ids = o.logits[:, -1, :].argmax(dim=-1, keepdim=True)
            del o
            sync()
            if step >= a.warmup_steps:
                step_secs.append(time.perf_counter() - t0)
                if a.max_seconds_per_row and sum(step_secs) >= a.max_seconds_per_row and step + 1 < a.new_tokens:
                    stopped_early = True
                    break
    total = sum(step_secs)
    decode = {"tokens_per_s": batch * len(step_secs) / total, "ms_per_step": total / len(step_secs) * 1e3,
              "ms_per_step_p50": statistics.median(step_secs) * 1e3, "steps_timed": len(step_secs),
              "stopped_early": stopped_early, "context_end": a.prompt_len + a.warmup_steps + len(step_secs),
              "experts_impl_decode": impl_decode}
    peak = round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if on_gpu else None
    prefill["peak_gpu_mem_gib"] = decode["peak_gpu_mem_gib"] = peak
    del cache, next_ids
    return prefill, decode


def print_table(rows, prompt_len):
    print("\n| phase | batch | tokens/s | ms/step | steps timed | peak GPU GiB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if r["phase"] == "prefill":
            label = f"prefill ({r['batch']}x{prompt_len}-token prompts)"
            steps = f"{r['steps_timed']} forward{'s' if r['steps_timed'] != 1 else ''}"
        else:
            label = "decode"
            steps = f"{r['steps_timed']}{' (stopped early)' if r.get('stopped_early') else ''}"
        peak = "" if r["peak_gpu_mem_gib"] is None else f"{r['peak_gpu_mem_gib']:.1f}"
        print(f"| {label} | {r['batch']} | {r['tokens_per_s']:.1f} | {r['ms_per_step']:.2f} | {steps} | {peak} |")


def run(plan):
    a = plan.args
    if a.offload and not plan.accelerate:
        print("hf_bench: --offload needs the accelerate package (device_map/max_memory dispatch), "
              "which is not installed in this Python; the offload rows cannot run.", file=sys.stderr)
        return 3
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"hf_bench: {e}: torch and transformers are needed to measure (--dry-run works without them)",
              file=sys.stderr)
        return 2

    if a.device == "cuda":
        if not torch.cuda.is_available():
            print("hf_bench: torch sees no CUDA device (--device cpu runs on the host)", file=sys.stderr)
            return 2
        device = torch.device("cuda:0")
        dev_name = torch.cuda.get_device_name(0)
    else:
        device = torch.device("cpu")
        dev_name = f"{cpu_name()} ({torch.get_num_threads()} threads)"
    print(plan.describe())
    model, load_s = load_model(plan)
    n_params = sum(p.numel() for p in model.parameters())
    impl_prefill = experts_impl(model)
    attn = getattr(model.config, "_attn_implementation", None)
    print(f"loaded in {load_s:.1f} s on {dev_name}: {param_count(n_params)} parameters, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, attention {attn}, experts {impl_prefill}")
    cpu_fraction = None
    if a.offload:
        cpu_fraction, counts = offload_summary(model)
        print(f"offload: {cpu_fraction:.1%} of parameters on the CPU; modules per device {counts}")
        if cpu_fraction == 0:
            print("hf_bench: warning: nothing was offloaded; lower --gpu-memory-gib", file=sys.stderr)

    allowed_mask = torch.ones(plan.vocab_size, dtype=torch.bool)
    if plan.special:
        allowed_mask[torch.tensor(plan.special)] = False
    allowed = allowed_mask.nonzero().flatten()
    extra_prefill = prefill_kwargs(model)
    common = {
        "device": dev_name,
        "commit": os.environ.get("MOE_COMMIT", "unknown"),
        "model": model_name(a.model),
        "model_config": f"{describe_config(plan.config)} {param_count(n_params)} params",
        "engine": f"transformers {transformers.__version__}" + (" accelerate-offload" if a.offload else ""),
        "roofline_ratio": None,
        "offload": bool(a.offload),
        "prompt_len": a.prompt_len,
        "new_tokens": a.new_tokens,
        "warmup_steps": a.warmup_steps,
        "dtype": a.dtype,
        "torch": torch.__version__,
        "attn_implementation": attn,
        "experts_impl_prefill": impl_prefill,
    }
    if a.offload:
        common.update({"gpu_memory_gib": a.gpu_memory_gib, "cpu_memory_gib": plan.cpu_memory_gib,
                       "offload_cpu_fraction": round(cpu_fraction, 4)})
    rows, failed = [], []
    with torch.inference_mode():
        for b in plan.batches:
            try:
                pre, dec = run_row(model, plan, b, allowed, device, extra_prefill)
            except torch.cuda.OutOfMemoryError as e:
                failed.append(b)
                print(f"hf_bench: batch {b}: CUDA out of memory, row skipped ({str(e).splitlines()[0]})",
                      file=sys.stderr)
            if failed and failed[-1] == b:
                gc.collect()  # the exception's frames held the row's tensors until here
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            for phase, m in (("prefill", pre), ("decode", dec)):
                rows.append({**common, "phase": phase, "batch": b, **m})
            print(f"batch {b}: prefill {pre['tokens_per_s']:.0f} tok/s, decode {dec['tokens_per_s']:.1f} tok/s "
                  f"({dec['steps_timed']} steps timed{', stopped early' if dec['stopped_early'] else ''})",
                  flush=True)
    # Prefill rows first, as engine_bench prints them.
    rows.sort(key=lambda r: (r["phase"] != "prefill", r["batch"]))
    print_table(rows, a.prompt_len)
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(rows, f, indent=2)
            f.write("\n")
        print(f"wrote {len(rows)} rows to {a.json_out}")
    if failed:
        print(f"hf_bench: rows that failed: batches {failed}", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    err = check_args(args)
    if err:
        print(f"hf_bench: {err}", file=sys.stderr)
        return 2
    plan = Plan(args)
    if args.dry_run:
        print(plan.describe())
        if args.offload and not plan.accelerate:
            print("note: accelerate is not installed here, so this offload plan would exit with status 3")
        return 0
    return run(plan)


if __name__ == "__main__":
    sys.exit(main())
