#!/usr/bin/env python3
"""Renders conversations through transformers' own chat-template renderer and
writes tests/data/chat_templates/cases.json, the reference the C++ renderer
(//server/chat_template) is tested against.

Each case: {template, messages, add_generation_prompt, extra, expected} or,
for templates that raise, {..., "error": message}. `extra` holds every
template variable besides messages/add_generation_prompt (bos_token, ...).

Usage: pip install transformers jinja2; python3 tools/gen_chat_template_cases.py
"""
import json
import os
import sys

import jinja2
import transformers
from transformers.utils.chat_template_utils import render_jinja_template

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data", "chat_templates")

# Special tokens each model's tokenizer passes to its template.
TOKENS = {
    "mixtral_8x7b_instruct": {"bos_token": "<s>", "eos_token": "</s>"},
    "qwen1_5_moe_a2_7b_chat": {"bos_token": None, "eos_token": "<|im_end|>"},
    "qwen2_5_instruct": {"bos_token": None, "eos_token": "<|im_end|>"},
    "qwen3": {"bos_token": None, "eos_token": "<|im_end|>"},
    "olmoe_1b_7b_0924_instruct": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
}

U = lambda c: {"role": "user", "content": c}
A = lambda c: {"role": "assistant", "content": c}
S = lambda c: {"role": "system", "content": c}

CONVERSATIONS = [
    ("single_user", [U("Hello, how are you?")]),
    ("with_system", [S("You are a terse assistant."), U("What is 2+2?")]),
    ("multi_turn", [U("Hi!"), A("Hello! How can I help?"), U("Tell me a joke."),
                    A("Why did the expert cross the router?"), U("Another one.")]),
    ("system_multi_turn", [S("Answer in French."), U("Good morning"), A("Bonjour !"),
                           U("Thanks")]),
    ("unicode", [U("Grüße aus Köln — 你好，世界 🌍 naïve café"), A("こんにちは！ Ünïcödé ✓"),
                 U("Ещё раз, пожалуйста")]),
    ("whitespace", [U("   leading and trailing spaces\t\n"), A("\n  answer with newlines  \n\n"),
                    U(" next ")]),
    ("ends_with_assistant", [U("Write one word."), A("Word.")]),
    ("quotes_and_braces", [U("Say {{ not a tag }} and {% neither %} with 'quotes' \"here\" \\ backslash")]),
    ("empty_content", [U(""), A(""), U("still there?")]),
    ("think_history", [U("What is 3*7?"), A("<think>\n3 times 7 is 21.\n</think>\n\n21"),
                       U("And 4*6?")]),
    ("system_only_alternation_break", [U("one"), U("two")]),
]


def render(template, messages, add_generation_prompt, extra):
    kwargs = dict(extra)
    tools = kwargs.pop("tools", None)
    documents = kwargs.pop("documents", None)
    out, _ = render_jinja_template(conversations=[messages], tools=tools, documents=documents,
                                   chat_template=template,
                                   add_generation_prompt=add_generation_prompt, **kwargs)
    return out[0]


def main():
    cases = []
    for name in sorted(TOKENS):
        with open(os.path.join(DATA, name + ".jinja"), encoding="utf-8") as f:
            template = f.read()
        variants = [dict(TOKENS[name])]
        if name == "qwen3":
            variants.append(dict(TOKENS[name], enable_thinking=False))
            variants.append(dict(TOKENS[name], enable_thinking=True))
        for conv_name, messages in CONVERSATIONS:
            for gen in (False, True):
                for extra in variants:
                    case = {"name": f"{name}/{conv_name}/gen={int(gen)}" +
                                    ("" if "enable_thinking" not in extra
                                     else f"/thinking={int(extra['enable_thinking'])}"),
                            "template": name, "messages": messages,
                            "add_generation_prompt": gen, "extra": extra}
                    try:
                        case["expected"] = render(template, messages, gen, extra)
                    except jinja2.exceptions.TemplateError as e:
                        case["error"] = str(e)
                    cases.append(case)
        # Mixtral rejects system messages; Qwen2.5/3 handle tool schemas with tojson.
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city — «quoted»",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "days": {"type": "integer", "minimum": 1.0}},
            "required": ["city"]}}}]
    tool_conv = [U("Weather in Zürich?"),
                 {"role": "assistant", "content": "",
                  "tool_calls": [{"type": "function", "function": {
                      "name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}}]},
                 {"role": "tool", "content": "{\"temp\": 21.5}"},
                 {"role": "tool", "content": "sunny"}]
    for name in ("qwen2_5_instruct", "qwen3"):
        with open(os.path.join(DATA, name + ".jinja"), encoding="utf-8") as f:
            template = f.read()
        for gen in (False, True):
            extra = dict(TOKENS[name], tools=tools)
            cases.append({"name": f"{name}/tools/gen={int(gen)}", "template": name,
                          "messages": tool_conv, "add_generation_prompt": gen, "extra": extra,
                          "expected": render(template, tool_conv, gen, extra)})
    out = os.path.join(DATA, "cases.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/gen_chat_template_cases.py",
                   "transformers": transformers.__version__, "jinja2": jinja2.__version__,
                   "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
