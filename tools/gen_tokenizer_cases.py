#!/usr/bin/env python3
"""Generates tokenizer test vectors under tests/data/tokenizers/ with the Hugging Face
`tokenizers` library (pip install tokenizers==0.22.1) as the reference implementation.

For each style it trains a small BPE tokenizer on the corpus below, saves tokenizer.json
and tokenizer_config.json, and writes cases.json: for every text, the ids with and
without special tokens, the per-token strings, and decode() of the ids with and without
skip_special_tokens. engine/tokenizer/tokenizer_test.cc checks every case exactly.

Run from the repository root:  python3 tools/gen_tokenizer_cases.py
The trainer breaks ties between equally frequent pairs in hash order, so a re-run can
produce a different (equally valid) vocabulary; each style's tokenizer.json and
cases.json are always written together and stay consistent with each other.
"""
import json
import os
import sys

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                   "tokenizers")

# Training text written for this project (no third-party prose).
CORPUS = """\
The lighthouse keeper wrote in his log every evening. The wind had turned to the north,
and the boats were coming home early. He counted them as they passed the rocks: one, two,
three, and then a fourth that he did not know. It's a strange thing, he thought, to see a
stranger on a night like this. They'll want a warm fire and a dry place to sleep.
She walked to the market on Tuesday and bought 12 apples, 3 loaves of bread, and a small
jar of honey for 4.50 in total. The baker said the price of flour had gone up again; we've
all noticed it. I'm not sure what the summer will bring, but the fields look green.
In the library there were old maps of the coast, drawn by hand in brown ink. Each map
showed the harbour, the church, the mill, and the road to the next town. Children came
after school to read, and the librarian told them stories about ships and storms.
Numbers matter: 1999, 2000, 2024, 3.14159, 42, 100%, 7/8, and the phone number 555-0100.
Questions are good. Why is the sky blue? How do birds find their way? What's for dinner?
"Come in," she said. "You'd better take off your boots; the floor is clean."
def add(a, b):
    return a + b  # a small function in a program
for i in range(10):
    print(i, i * i)
Café owners in the old quarter serve crème brûlée and a naïve little pastry; the façade
of the hotel is painted pale blue. Über alles, the river Straße is quiet at night.
The committee met at 10:30 to discuss the plan. After a long debate, they agreed that the
bridge should be repaired before winter, and that the work would start in the spring.
"""

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

PARAGRAPH = (
    "Long ago, in a valley between two mountains, there was a village whose people kept "
    "bees. Every spring the hives were carried up the slopes to the meadows, where the "
    "flowers bloomed in white, yellow, and violet. The beekeepers walked slowly, because "
    "a hive that is dropped is a hive that is lost, and they sang old songs to keep the "
    "rhythm of their steps. In the summer the honey was gathered in clay pots, sealed with "
    "wax, and stored in a cool cellar under the town hall. Traders came from the coast in "
    "autumn, with salt, cloth, and iron tools, and they paid well for the honey of the "
    "valley, which was said to be the sweetest in the land. One year the rains did not "
    "come. The meadows turned brown, the streams ran thin, and the bees grew restless. "
    "The elders met in the hall and argued for three days about what to do. Some wanted "
    "to move the hives to the far side of the mountains, where the lakes were said to "
    "hold water even in the driest years. Others said the journey was too long, and that "
    "the bees would die on the way. At last a young woman named Ilse stood up and said "
    "that she would go alone, with a single hive, to see whether the bees could survive "
    "the journey. She left before dawn the next morning, carrying the hive on her back "
    "and a small bag of bread and cheese. For eleven days nobody heard from her. On the "
    "twelfth day a boy who was watching the pass saw a figure coming down the path, "
    "walking slowly, singing. It was Ilse, and the hive on her back was humming. The bees "
    "had found clover by the lakes, she said, and there was enough for every hive in the "
    "valley. The next week the whole village set out together, and the songs they sang "
    "on the road are still sung today, 250 years later, by children who have never seen "
    "a dry summer.")

TEXTS = [
    "", " ", "   ", "Hello", "Hello world", " Hello world", "Hello world ",
    "Hello    world", "  leading and trailing  ", "line one\nline two\n",
    "tabs\tand\t\ttabs", "\n\n\n", "a\r\nb\r\n", "   \t  \n  ",
    "The year 2024 had 366 days; pi is 3.14159.", "1234567890 00 7",
    "Hello, world! How's it going? (Fine.) [ok] {yes} <no> #tag @user",
    "I'm sure they'll say we've done it, but he'd not; it's theirs.",
    "DON'T SHOUT, IT'S RUDE AND WE'RE TIRED",
    "café naïve résumé façade Ångström", "Straße über Öl und Äpfel",
    "combining e\u0301 vs \u00e9, ligature \ufb01 and \u2460 and \uff46\uff55\uff4c\uff4c",
    "日本語のテキストです。", "中文分词测试", "한국어 문장입니다",
    "emoji 😀👍🏽 and family 👨‍👩‍👧‍👦 and flag 🇫🇷", "مرحبا بالعالم", "Привет, мир!",
    "Ελληνικά γράμματα", "math: ∑ x² ≤ ∞ → ∀ε>0",
    "code: def f(x):\n    return x ** 2  # square\n",
    "URL https://example.com/a?b=c&d=e and someone@example.org",
    "mixed123abc456DEF", "repeated aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "▁ literal metaspace ▁▁ chars", "control \u0001 and \u007f del",
    "text with <|endoftext|> special", "<|endoftext|>",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<s> starts with bos </s> and ends", "<s>",
    "a <mask> here and <mask>there [NOTE] done",
    "x [MASK]   y [MASK]z  <sep>  w hello world, Hello World!hello worldly zq xzq zq.",
    "well-known (nested (parens)) 12345678 state-of-the-art; yes: no!",
    PARAGRAPH,
]

QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]


def corpus_lines():
    lines = CORPUS.splitlines()
    lines += PARAGRAPH.split(". ")
    return lines


def gpt2():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=900, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus_lines(), trainer)
    # RoBERTa-like mask (lstrip) and a non-special added token.
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False)])
    tok.add_tokens([AddedToken("[NOTE]", normalized=False)])
    config = {"tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>",
              "eos_token": "<|endoftext|>", "model_max_length": 1024}
    return tok, config, None


def qwen2(ignore_merges=False, llama3=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if not llama3:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                 use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    specials = (["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"] if llama3 else
                ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    trainer = trainers.BpeTrainer(vocab_size=1000,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus_lines(), trainer)
    tok.add_special_tokens(specials)
    if llama3:
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                          pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                          special_tokens=[("<|begin_of_text|>", bos)])])
        config = {"tokenizer_class": "PreTrainedTokenizerFast",
                  "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                  "chat_template": [{"name": "default", "template": CHAT_TEMPLATE},
                                    {"name": "tool_use", "template": "{{ tools }}"}]}
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        config = {"tokenizer_class": "Qwen2Tokenizer", "bos_token": None,
                  "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                  "chat_template": CHAT_TEMPLATE}
    return tok, config, None


def rebuild_with_byte_vocab(tok):
    """Turns the trainer's <0xXX> special tokens into ordinary vocabulary entries (as in
    Llama/Mistral checkpoints): only <unk>, <s>, </s> stay added tokens."""
    data = json.loads(tok.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"]
                            if t["content"] in ("<unk>", "<s>", "</s>")]
    return data


def llama_legacy():
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                           normalizers.Replace(" ", "▁")])
    # Word-level merges for training only; the saved tokenizer has no pre-tokenizer.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never",
                                                 split=True)
    trainer = trainers.BpeTrainer(vocab_size=700, limit_alphabet=70,
                                  special_tokens=["<unk>", "<s>", "</s>"] + BYTE_TOKENS,
                                  show_progress=False)
    tok.train_from_iterator(corpus_lines(), trainer)
    data = rebuild_with_byte_vocab(tok)
    data["pre_tokenizer"] = None
    tok = Tokenizer.from_str(json.dumps(data))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    config = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False,
              "legacy": True}
    return tok, config, None


def metaspace():
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                                 split=True)
    trainer = trainers.BpeTrainer(vocab_size=800, limit_alphabet=80,
                                  special_tokens=["<unk>", "<s>", "</s>"] + BYTE_TOKENS,
                                  show_progress=False)
    tok.train_from_iterator(corpus_lines(), trainer)
    data = rebuild_with_byte_vocab(tok)
    data["pre_tokenizer"]["split"] = False
    tok = Tokenizer.from_str(json.dumps(data))
    tok.decoder = decoders.Sequence([
        decoders.ByteFallback(),
        decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)])
    # No post_processor: BOS comes from tokenizer_config.json's add_bos_token, the way
    # transformers' LlamaTokenizer adds it.
    config = {"tokenizer_class": "LlamaTokenizer",
              "bos_token": {"content": "<s>", "lstrip": False, "normalized": False,
                            "rstrip": False, "single_word": False, "__type": "AddedToken"},
              "eos_token": "</s>", "add_bos_token": True, "add_eos_token": True}
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    return tok, config, lambda ids: [bos] + ids + [eos]


def misc():
    """Less common components, so each is checked against the reference too: Unicode
    NFD + Lowercase + Strip + regex Replace normalizers; Digits, Split behaviours (string
    and regex, inverted) and WhitespaceSplit; continuing_subword_prefix and
    end_of_word_suffix; rstrip / single_word / normalized added tokens; RoBERTa-style
    post-processing."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##",
                               end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFD(), normalizers.Lowercase(), normalizers.Strip(),
        normalizers.Replace(Regex("[0-9]{5,}"), "#")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Split("-", behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex("[,.;:!?]"), behavior="merged_with_next"),
        pre_tokenizers.Split(Regex("[()]+"), behavior="contiguous", invert=True),
        pre_tokenizers.Split(Regex("'"), behavior="removed"),
    ])
    tok.decoder = decoders.Sequence([decoders.Replace("</w>", " "),
                                     decoders.Replace("##", ""), decoders.Fuse()])
    trainer = trainers.BpeTrainer(vocab_size=600, limit_alphabet=60,
                                  special_tokens=["[UNK]", "<s>", "</s>"],
                                  continuing_subword_prefix="##", end_of_word_suffix="</w>",
                                  show_progress=False)
    tok.train_from_iterator(corpus_lines(), trainer)
    tok.add_special_tokens([AddedToken("[MASK]", rstrip=True, normalized=False),
                            AddedToken("<sep>", lstrip=True, rstrip=True, normalized=False)])
    tok.add_tokens([AddedToken("Hello World", single_word=True, normalized=True),
                    AddedToken("zq", single_word=True, normalized=False)])
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 1))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>",
              "eos_token": "</s>", "add_bos_token": False}
    return tok, config, None


def write_style(name, tok, config, add_specials_fn):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"), pretty=False)
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=1)
    # Reload from disk so the cases come from exactly what was saved.
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    cases = []
    for text in TEXTS:
        plain = tok.encode(text, add_special_tokens=False)
        if add_specials_fn is None:
            special_ids = tok.encode(text, add_special_tokens=True).ids
        else:
            special_ids = add_specials_fn(plain.ids)
        cases.append({
            "text": text,
            "ids": special_ids,
            "ids_no_special": plain.ids,
            "tokens": plain.tokens,
            "decoded": tok.decode(special_ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(special_ids, skip_special_tokens=True),
        })
    with open(os.path.join(d, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/gen_tokenizer_cases.py",
                   "tokenizers_version": __import__("tokenizers").__version__,
                   "cases": cases}, f, ensure_ascii=False, indent=0)


def main():
    styles = {
        "gpt2": gpt2(),
        "qwen2": qwen2(),
        "llama3": qwen2(ignore_merges=True, llama3=True),
        "llama_legacy": llama_legacy(),
        "metaspace": metaspace(),
        "misc": misc(),
    }
    for name, (tok, config, fn) in styles.items():
        write_style(name, tok, config, fn)
        print(name, tok.get_vocab_size(), file=sys.stderr)


if __name__ == "__main__":
    main()
