#!/usr/bin/env python3
"""Writes the committed seed corpora under tests/fuzz/corpus/<target>/ from the
repository's test data plus hand-made edge cases. Run from the repository root:
    python3 tests/fuzz/make_seeds.py
Deterministic; rewriting gives the same files."""
import hashlib, json, os, struct, glob

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests/fuzz/corpus")
MAX_SEED = 50 * 1024


def put(target, data, name=None):
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_SEED:
        return
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = name or hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def st_file(header, data=b"", pad=True):
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors():
    t = "safetensors_header_fuzzer"
    put(t, open(os.path.join(ROOT, "engine/loader/testdata/python_ref.safetensors"), "rb").read(), "python_ref")
    put(t, st_file({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, bytes(16)), "f32_2x2")
    put(t, st_file({"__metadata__": {"format": "pt"},
                    "a": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]},
                    "b": {"dtype": "F16", "shape": [2], "data_offsets": [8, 12]},
                    "c": {"dtype": "I64", "shape": [], "data_offsets": [16, 24]}}, bytes(24)), "mixed_meta")
    put(t, st_file({"e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]}}), "empty_tensor")
    put(t, st_file({}), "no_tensors")
    put(t, st_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12)), "overlap")
    put(t, st_file({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8)), "past_end")
    put(t, st_file({"a": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}}, bytes(1)), "bad_dtype")
    put(t, st_file({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4)), "neg_shape")
    put(t, st_file({"a": {"dtype": "U8", "shape": [4294967296, 4294967296],
                          "data_offsets": [0, 0]}}), "huge_shape")
    put(t, struct.pack("<Q", 1 << 62) + b"{}", "huge_len")
    put(t, b"\x02\x00\x00\x00\x00\x00\x00\x00{}", "minimal")
    put(t, b"\x05\x00\x00", "short")
    # A real model's header (tensor names and shapes), with its data cut off.
    m = open(os.path.join(ROOT, "tests/data/models/olmoe/model.safetensors"), "rb").read()
    n = struct.unpack("<Q", m[:8])[0]
    put(t, m[:8 + n], "olmoe_header_only")


def model_config():
    t = "model_config_fuzzer"
    for d in sorted(glob.glob(os.path.join(ROOT, "tests/data/models/*/"))):
        name = os.path.basename(d.rstrip("/"))
        cfg = open(os.path.join(d, "config.json"), "rb").read()
        gen_path = os.path.join(d, "generation_config.json")
        gen = open(gen_path, "rb").read() if os.path.exists(gen_path) else b""
        put(t, cfg, name + "_config_only")
        put(t, cfg + b"\0" + gen, name + "_with_generation")
        # transformers 4.x spelling: rope_theta / rope_scaling at top level.
        j = json.loads(cfg)
        rp = j.pop("rope_parameters", None)
        if rp is not None:
            j["rope_theta"] = rp.get("rope_theta", 10000.0)
            j["rope_scaling"] = {"type": "linear", "factor": 2.0}
            put(t, json.dumps(j) + "\0" + '{"eos_token_id": [2, 3]}', name + "_v4_linear_rope")
    put(t, "{}", "empty_object")
    put(t, "[]", "array")
    put(t, '{"architectures": ["LlamaForCausalLM"]}', "unsupported")
    put(t, "{\"model_type\": \"qwen3_moe\"}\0{\"eos_token_id\": null}", "model_type_only")


def tokenizer():
    t = "tokenizer_fuzzer"
    styles = ["gpt2", "llama3", "llama_legacy", "metaspace", "misc", "qwen2"]
    for si, style in enumerate(styles):
        cases = json.load(open(os.path.join(ROOT, "tests/data/tokenizers", style, "cases.json")))["cases"]
        for ci, c in enumerate(cases[:12]):
            put(t, bytes([si, ci % 4 | (ci << 2) & 0xFC]) + c["text"].encode("utf-8")[:2000],
                "%s_%02d" % (style, ci))
        ids = cases[-1]["ids"][:200]
        put(t, bytes([si, 3]) + b"".join(struct.pack("<H", i) for i in ids), style + "_ids")
    put(t, bytes([0, 1]) + b"\xff\xfe\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80 abc", "invalid_utf8")
    put(t, bytes([3, 2]) + "▁▁ <s></s><unk>  \t\n é 😀".encode(), "metaspace_special")


def tokenizer_from_json():
    t = "tokenizer_from_json_fuzzer"
    for style in ["gpt2", "llama3", "llama_legacy", "metaspace", "misc", "qwen2"]:
        d = os.path.join(ROOT, "tests/data/tokenizers", style)
        tok = open(os.path.join(d, "tokenizer.json"), "rb").read()
        cfg = open(os.path.join(d, "tokenizer_config.json"), "rb").read()
        put(t, tok + b"\0" + cfg, style)
    put(t, '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}',
        "tiny_bpe")
    put(t, '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "a"]]},'
           ' "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}}', "merge_pairs")
    put(t, '{"model": {"type": "WordPiece", "vocab": {}}}', "unsupported_model")
    put(t, "{}\0{}", "empty")


def openai_request():
    t = "openai_request_fuzzer"
    seeds = {
        "completion": {"model": "m", "prompt": "Hello", "max_tokens": 16, "temperature": 0.7,
                       "top_p": 0.9, "stop": ["\n", ""], "n": 2, "seed": 7, "logprobs": 3},
        "completion_ids": {"prompt": [[1, 2, 3], [4]], "max_tokens": 1, "stream": True,
                           "stream_options": {"include_usage": True}},
        "completion_list": {"prompt": ["a", "b"], "top_k": 5, "ignore_eos": True,
                            "stop_token_ids": [2], "return_token_ids": True},
        "chat": {"model": "m", "messages": [{"role": "system", "content": "s"},
                                            {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                 "max_completion_tokens": 8, "logprobs": True, "top_logprobs": 5,
                 "chat_template_kwargs": {"enable_thinking": False}, "add_generation_prompt": False},
        "chat_tools": {"messages": [{"role": "assistant", "content": None,
                                     "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]},
        "tokenize": {"prompt": "hi", "add_special_tokens": False, "return_token_strs": True},
        "tokenize_chat": {"messages": [{"role": "user", "content": "x"}], "add_generation_prompt": True},
        "detokenize": {"tokens": [1, 2, 3], "model": "m"},
        "nulls": {"prompt": None, "max_tokens": None, "messages": None, "stop": None},
        "bad_types": {"prompt": 1, "max_tokens": "1", "n": 1e9, "temperature": -1, "top_p": 0},
    }
    for name, j in seeds.items():
        put(t, json.dumps(j), name)
    put(t, "[" * 70 + "]" * 70, "deep")
    put(t, '{"prompt": "\\ud800", "max_tokens": 2147483648}', "edge_numbers")
    put(t, "", "empty")


CHAT_TEMPLATE_SNIPPETS = [
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m.content }}\n{% endfor %}",
    "{% if messages[0]['role'] == 'system' %}{% set s = messages[0]['content'] %}{% endif %}"
    "{{ s | default('none') | upper }}",
    "{% macro f(x, y=2) %}{{ x ~ y }}{% endmacro %}{{ f(1) }}{{ f(3, y=4) }}",
    "{% set ns = namespace(n=0) %}{% for m in messages | reverse %}{% set ns.n = ns.n + 1 %}"
    "{% endfor %}{{ ns.n }}",
    "{{ tools | tojson }}{{ messages | length }}{{ 'a,b' .split(',') | join('-') }}",
    "{%- for m in messages -%}{%- if loop.first -%}[{{ loop.index0 }}]{%- endif -%}"
    "{{ m.content if m.content is string else m.content | map(attribute='text') | join }}"
    "{%- endfor -%}{% if add_generation_prompt %}<|assistant|>{% endif %}",
    "{{ raise_exception('bad role') }}",
    "{% for i in range(3) %}{{ i * 2 // 1 % 5 }}{% else %}empty{% endfor %}",
    "{{ 'x'.strip().startswith('x') and not false or none is none }}{{ [1,2,3][1:] }}",
    "{{ {'a': 1, 'b': [1, 2]}.items() | list }}{{ 'abc'[::-1] }}{{ \"q\\n\" }}",
    "{% raw %}{{ not parsed }}{% endraw %}{# comment #}",
    "{% if x %}unclosed",
    "{{ ((((((1)))))) }}",
]


def chat_templates():
    t = "chat_template_parse_fuzzer"
    for p in sorted(glob.glob(os.path.join(ROOT, "tests/data/chat_templates/*.jinja"))):
        put(t, open(p, "rb").read(), os.path.basename(p)[:-6])
    for i, s in enumerate(CHAT_TEMPLATE_SNIPPETS):
        put(t, s, "snippet_%02d" % i)

    t = "chat_template_render_fuzzer"
    names = ["mixtral_8x7b_instruct", "olmoe_1b_7b_0924_instruct", "qwen1_5_moe_a2_7b_chat",
             "qwen2_5_instruct", "qwen3"]
    cases = json.load(open(os.path.join(ROOT, "tests/data/chat_templates/cases.json")))["cases"]
    seen = set()
    for c in cases:
        body = {"messages": c["messages"]}
        body.update(c.get("extra") or {})
        data = bytes([names.index(c["template"]), 1 if c["add_generation_prompt"] else 0]) + \
            json.dumps(body, ensure_ascii=False).encode()
        key = (c["template"], json.dumps(c["messages"])[:200])
        if key in seen:
            continue
        seen.add(key)
        put(t, data)
    put(t, bytes([0, 0]) + b'"not an array"', "not_array")
    put(t, bytes([4, 1]) + b'[{"role": 1, "content": {"x": [null]}}]', "odd_types")


if __name__ == "__main__":
    safetensors()
    model_config()
    tokenizer()
    tokenizer_from_json()
    openai_request()
    chat_templates()
    for d in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, d))
        size = sum(os.path.getsize(os.path.join(CORPUS, d, f)) for f in files)
        print("%-30s %3d files %7d bytes" % (d, len(files), size))
