"""Trains the three small tokenizers used by the reference test models.

Each builder returns a `tokenizers.Tokenizer` whose pipeline mirrors the one a real
checkpoint of that family ships in its tokenizer.json, only with a ~1000-token
vocabulary learned from tools/reference/corpus.txt:

  qwen2      byte-level BPE as in Qwen2 / Qwen1.5-MoE / Qwen3-MoE: NFC normalizer, Split
             on the Qwen2 regex then ByteLevel(use_regex=False); specials appended after
             the learned vocabulary (<|endoftext|>, <|im_start|>, <|im_end|>); no BOS.
  neox       GPT-NeoX / OLMoE byte-level BPE: NFC, ByteLevel(use_regex=True) with the
             GPT-2 regex; specials <|endoftext|> (id 0) and <|padding|> (id 1); no BOS.
  llama      Llama / Mistral SentencePiece-converted BPE: normalizer Prepend("▁") +
             Replace(" ", "▁"), no pre-tokenizer, byte_fallback with <0x00>..<0xFF>,
             <unk>=0 <s>=1 </s>=2, TemplateProcessing that adds <s> in front.

Only the `tokenizers` library is needed here (no torch, no transformers).
"""

import json

from tokenizers import Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

# Target size of every vocabulary, specials and byte tokens included.
VOCAB_SIZE = 1000

# The pre-tokenization regex Qwen2's tokenizer.json carries (a Split pre-tokenizer).
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

QWEN2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
NEOX_SPECIALS = ["<|endoftext|>", "<|padding|>"]
LLAMA_SPECIALS = ["<unk>", "<s>", "</s>"]


def _read_lines(corpus_path):
    with open(corpus_path, encoding="utf-8") as f:
        return [line for line in f.read().split("\n") if line.strip()]


def build_qwen2(corpus_path):
    """Qwen2-style byte-level BPE; specials get the last ids, as in Qwen2."""
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(
        add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(QWEN2_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[], show_progress=False)
    tok.train_from_iterator(_read_lines(corpus_path), trainer=trainer)
    # Added after training, so they take ids vocab..vocab+2 (Qwen2 layout).
    tok.add_special_tokens(QWEN2_SPECIALS)
    return tok


def build_neox(corpus_path):
    """GPT-NeoX / OLMoE-style byte-level BPE; specials take ids 0 and 1."""
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(
        add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(
        add_prefix_space=False, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=NEOX_SPECIALS, show_progress=False)
    tok.train_from_iterator(_read_lines(corpus_path), trainer=trainer)
    return tok


def build_llama(corpus_path):
    """Llama/Mistral-style metaspace BPE with byte fallback.

    Training splits words at "▁" (as SentencePiece does) so no merge crosses a word
    boundary; the saved tokenizer has no pre-tokenizer, like Mixtral's tokenizer.json.
    The 256 byte tokens are plain vocabulary entries (ids 3..258), not added tokens.
    """
    n_bytes = 256
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([
        normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.pre_tokenizer = pre_tokenizers.Split("\u2581", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - n_bytes, special_tokens=LLAMA_SPECIALS, show_progress=False)
    tok.train_from_iterator(_read_lines(corpus_path), trainer=trainer)

    # Rebuild the vocabulary as <unk> <s> </s> <0x00>..<0xFF> learned-pieces..., keeping
    # the learned merges, then reload the whole pipeline from JSON.
    spec = json.loads(tok.to_str())
    learned = sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {}
    for name in LLAMA_SPECIALS:
        vocab[name] = len(vocab)
    for b in range(n_bytes):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece, _ in learned:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    spec["model"]["vocab"] = vocab
    spec["model"]["byte_fallback"] = True
    spec["model"]["fuse_unk"] = True
    spec["model"]["unk_token"] = "<unk>"
    spec["pre_tokenizer"] = None
    for added in spec["added_tokens"]:
        added["id"] = vocab[added["content"]]
    tok = Tokenizer.from_str(json.dumps(spec))

    tok.decoder = decoders.Sequence([
        decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
        decoders.Strip(content=" ", left=1, right=0)])
    bos = vocab["<s>"]
    tok.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0", pair="<s>:0 $A:0 <s>:1 $B:1", special_tokens=[("<s>", bos)])
    return tok


BUILDERS = {"qwen2": build_qwen2, "neox": build_neox, "llama": build_llama}
