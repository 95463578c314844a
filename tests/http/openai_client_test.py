"""The official `openai` Python client against the gateway (tests/http/test_server).

Usage: openai_client_test.py --port N --tools-port M
(M: a server started with --enable-auto-tool-choice)
"""
import argparse
import json
import sys

import openai
from openai import OpenAI

MODEL = "tiny-qwen3-moe"
GREEDY = dict(temperature=0, extra_body={"ignore_eos": True})


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tools-port", type=int, required=True)
    args = ap.parse_args()
    client = OpenAI(base_url=f"http://127.0.0.1:{args.port}/v1", api_key="unused",
                    max_retries=0, timeout=60)

    models = client.models.list()
    check([m.id for m in models.data] == [MODEL], "models.list names the served model")

    # Completions, not streamed and streamed: same greedy text.
    full = client.completions.create(model=MODEL, prompt="The quick brown fox", max_tokens=10,
                                     **GREEDY)
    check(full.choices[0].finish_reason == "length", "completion finish_reason length")
    check(full.usage.completion_tokens == 10, "completion usage counts 10 tokens")
    check(full.usage.total_tokens == full.usage.prompt_tokens + 10, "usage total")
    text = "".join(c.choices[0].text
                   for c in client.completions.create(model=MODEL, prompt="The quick brown fox",
                                                      max_tokens=10, stream=True, **GREEDY)
                   if c.choices)
    check(text == full.choices[0].text, "streamed completion text equals the non-streamed one")

    # Completion logprobs.
    lp = client.completions.create(model=MODEL, prompt="Hello", max_tokens=4, logprobs=2,
                                   **GREEDY).choices[0].logprobs
    check(len(lp.tokens) == 4 and len(lp.token_logprobs) == 4 and len(lp.text_offset) == 4,
          "completion logprobs have one entry per token")
    check(all(len(t) >= 1 for t in lp.top_logprobs), "top_logprobs dicts filled")

    # Stop strings: the text ends before the stop string.
    base = client.completions.create(model=MODEL, prompt="Hello", max_tokens=20,
                                     **GREEDY).choices[0].text
    stop = next(base[i:i + 2] for i in range(len(base) // 3, len(base) - 1)
                if base[i:i + 2].isalnum())
    stopped = client.completions.create(model=MODEL, prompt="Hello", max_tokens=20, stop=[stop],
                                        **GREEDY).choices[0]
    check(stopped.text == base[:base.index(stop)] and stopped.finish_reason == "stop",
          f"stop string {stop!r} ends the text before it")

    # Seed reproducibility and n=2.
    def sampled():
        r = client.completions.create(model=MODEL, prompt="Once", max_tokens=12, n=2, seed=7,
                                      temperature=1.0, extra_body={"ignore_eos": True})
        return [c.text for c in sorted(r.choices, key=lambda c: c.index)]
    a, b = sampled(), sampled()
    check(len(a) == 2 and a == b, "n=2 with a seed: two choices, reproducible")

    # Chat, not streamed and streamed.
    messages = [{"role": "user", "content": "Say something."}]
    chat = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8,
                                          logprobs=True, top_logprobs=2, **GREEDY)
    msg = chat.choices[0].message
    check(msg.role == "assistant" and isinstance(msg.content, str), "chat message")
    check(len(chat.choices[0].logprobs.content) == 8, "chat logprobs: one entry per token")
    check(all(len(e.top_logprobs) == 2 for e in chat.choices[0].logprobs.content),
          "chat top_logprobs has 2 alternatives")
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=8, stream=True,
        stream_options={"include_usage": True}, **GREEDY))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check(content == msg.content, "streamed chat content equals the non-streamed one")
    check(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8,
          "include_usage: the last chunk carries usage")

    # Sampling fields the client sends natively: logit_bias forces a token, penalties and
    # echo are honoured, tools are refused.
    forced = client.completions.create(model=MODEL, prompt="Hello", max_tokens=5,
                                       logit_bias={"321": 100}, temperature=0,
                                       extra_body={"ignore_eos": True, "return_token_ids": True})
    check(forced.choices[0].token_ids == [321] * 5, "logit_bias +100 forces the token")
    pen = client.completions.create(model=MODEL, prompt="Hello", max_tokens=20,
                                    frequency_penalty=2.0, presence_penalty=2.0, temperature=0,
                                    extra_body={"ignore_eos": True, "return_token_ids": True})
    ids = pen.choices[0].token_ids
    check(len(set(ids)) == len(ids) == 20, "frequency/presence penalties: no repeated token")
    echoed = client.completions.create(model=MODEL, prompt="Hello", max_tokens=4, echo=True,
                                       **GREEDY)
    check(echoed.choices[0].text.startswith("Hello"), "echo starts with the prompt")
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]
    try:
        client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
        check(False, "tools raise without --enable-auto-tool-choice")
    except openai.BadRequestError as e:
        check(e.param == "tools" and "--enable-auto-tool-choice" in e.message,
              "tools without --enable-auto-tool-choice: BadRequestError naming tools")
    none = client.chat.completions.create(model=MODEL, messages=messages, tools=tools,
                                          tool_choice="none", max_tokens=4, **GREEDY)
    check(isinstance(none.choices[0].message.content, str), "tool_choice none: plain answer")

    # A server with --enable-auto-tool-choice: tools accepted, the response well-formed
    # (the tiny model writes no tool call, so none is expected).
    tc = OpenAI(base_url=f"http://127.0.0.1:{args.tools_port}/v1", api_key="unused",
                max_retries=0, timeout=60)
    with_tools = tc.chat.completions.create(model=MODEL, messages=messages, tools=tools,
                                            tool_choice="auto", max_tokens=8, **GREEDY)
    c = with_tools.choices[0]
    check(c.message.role == "assistant" and c.finish_reason in ("length", "stop", "tool_calls"),
          "tools with --enable-auto-tool-choice: accepted, well-formed choice")
    check(not c.message.tool_calls or all(t.type == "function" for t in c.message.tool_calls),
          "tool_calls, if any, are function calls")
    check(with_tools.usage.completion_tokens == 8, "usage unchanged with tools")
    streamed = list(tc.chat.completions.create(model=MODEL, messages=messages, tools=tools,
                                               max_tokens=8, stream=True, **GREEDY))
    check(streamed[-1].choices[0].finish_reason in ("length", "stop", "tool_calls"),
          "streamed with tools: ends with a finish_reason")
    # A forced call (constrained decoding): exactly one call of an allowed tool with
    # arguments valid for its schema, even from a random-weight model.
    forced_tools = [{"type": "function", "function": {
        "name": "set_mode", "parameters": {
            "type": "object", "properties": {"mode": {"enum": ["fast", "slow"]}},
            "required": ["mode"], "additionalProperties": False}}}]
    forced = tc.chat.completions.create(model=MODEL, messages=messages, tools=forced_tools,
                                        tool_choice="required", max_tokens=300,
                                        temperature=0)  # not GREEDY: it ignores eos
    fc = forced.choices[0]
    check(fc.finish_reason == "tool_calls" and fc.message.tool_calls is not None and
          len(fc.message.tool_calls) == 1 and
          fc.message.tool_calls[0].function.name == "set_mode" and
          json.loads(fc.message.tool_calls[0].function.arguments).get("mode") in ("fast", "slow"),
          f"tool_choice required: one set_mode call with valid arguments ({fc})")
    try:
        tc.chat.completions.create(model=MODEL, messages=messages, tools=tools,
                                   tool_choice={"type": "function",
                                                "function": {"name": "no_such_fn"}})
        check(False, "a named tool_choice that is not among tools raises")
    except openai.BadRequestError as e:
        check(e.param == "tool_choice", "unknown named tool_choice: BadRequestError naming it")

    # Errors raise the right exception classes.
    try:
        client.completions.create(model=MODEL, prompt="x", temperature="hot")
        check(False, "a wrong-typed field raises")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and e.param == "temperature",
              "wrong-typed field: BadRequestError naming temperature")
    try:
        client.completions.create(model=MODEL, prompt="x", max_tokens=100000)
        check(False, "too many tokens raises")
    except openai.BadRequestError as e:
        check(e.param == "max_tokens", "over-long request: BadRequestError naming max_tokens")
    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        check(False, "unknown model raises")
    except openai.NotFoundError:
        check(True, "unknown model: NotFoundError")
    print("all openai client checks passed")


if __name__ == "__main__":
    sys.exit(main())
