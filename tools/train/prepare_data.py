#!/usr/bin/env python3
"""Prepares the training corpus and tokenizer for tools/train/train_moe.py.

Sources (Debian packages, install with `apt-get install python3.11-doc python-django-doc`):
- the reStructuredText sources of the Python 3.11 documentation, `python3.11-doc`
  (/usr/share/doc/python3.11/html/_sources; PSF License Version 2);
- the HTML of the Django 3.2 documentation, `python-django-doc`
  (/usr/share/doc/python-django-doc/html; BSD-3-Clause), release notes left out.

Each file is one document, reduced to plain prose. RST: directives, comments, code blocks
(indented blocks after "::"), tables and headings are dropped; inline roles (:func:`x`,
``x``, *x*) keep their text. HTML: the text of <p> elements outside <pre>. Documents are
split into train / held-out by a hash of their path (5% held out), so the split is
reproducible (the same files give byte-identical output).

Writes into --out (git-ignored, carried to the GPU machine):
  train.txt, heldout.txt      plain text, documents separated by a blank line + "\f\n"
  tokenizer.json              byte-level BPE (GPT-2 regex, NFC), <|endoftext|> = id 0,
                              <|padding|> = id 1, vocab --vocab (default 4096)
  train.bin, heldout.bin      uint16 token ids, each document followed by id 0 (eos)
  stats.json                  counts

Needs only `tokenizers` and numpy (no torch).
"""
import argparse
import hashlib
import json
import os
import re
from html.parser import HTMLParser

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
from tokenizers import processors, trainers

SRC = "/usr/share/doc/python3.11/html/_sources"
DJANGO = "/usr/share/doc/python-django-doc/html"
SPECIALS = ["<|endoftext|>", "<|padding|>"]

ROLE = re.compile(r":[a-zA-Z0-9_:+-]+:`(?:~|!)?([^`<]*?)(?:\s*<[^>]*>)?`")
LITERAL = re.compile(r"``([^`]*)``")
LINK = re.compile(r"`([^`<]*?)\s*<[^>]*>`_+")
REF = re.compile(r"`([^`]+)`_*")
EMPH = re.compile(r"\*\*?([^*\s][^*]*?)\*\*?")
UNDERLINE = re.compile(r"^([=\-~^\"'`#*+.:_])\1{2,}\s*$")
FOOTREF = re.compile(r"\s*\[(?:#\w*|\d+|\*)\]_")


def clean_inline(line):
    line = ROLE.sub(r"\1", line)
    line = LITERAL.sub(r"\1", line)
    line = LINK.sub(r"\1", line)
    line = REF.sub(r"\1", line)
    line = EMPH.sub(r"\1", line)
    line = FOOTREF.sub("", line)
    line = line.replace("\\", "")
    return line


def rst_to_prose(text):
    """Keeps the unindented paragraphs and list items of an RST document as plain text."""
    paragraphs, current = [], []
    skip_indent = None  # inside a directive / code block: skip lines indented deeper

    def flush():
        if current:
            para = " ".join(s.strip() for s in current).strip()
            if len(para) > 40 and not para.startswith("+"):
                paragraphs.append(para)
            current.clear()

    for raw in text.split("\n"):
        line = raw.rstrip()
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
        if not stripped:
            flush()
            continue
        if UNDERLINE.match(stripped):
            current.clear()  # the line before was a heading: keep headings out
            continue
        if stripped.startswith((".. ", ">>>", "|", "+-", "==")) or stripped == "..":
            flush()
            skip_indent = indent
            continue
        if indent > 4 and not current:
            continue  # block quotes / code without a "::" we recognised
        body = stripped
        for bullet in ("* ", "- ", "#. "):
            if body.startswith(bullet):
                flush()
                body = body[len(bullet):]
        if body.endswith("::"):
            body = body[:-1] if not body.endswith(" ::") else body[:-3]
            current.append(clean_inline(body))
            flush()
            skip_indent = indent
            continue
        current.append(clean_inline(body))
    flush()
    return "\n".join(p for p in paragraphs if re.search(r"[a-z]{3}", p))


class _Paragraphs(HTMLParser):
    """Collects the text of <p> elements outside <pre>, navigation and footers."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paras, self.buf, self.depth, self.pre, self.skip = [], [], 0, 0, 0

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class") or ""
        if tag == "pre":
            self.pre += 1
        elif tag in ("nav", "footer") or "sphinxsidebar" in cls or "related" in cls:
            self.skip += 1
        elif tag == "p":
            self.depth += 1

    def handle_endtag(self, tag):
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        elif tag in ("nav", "footer"):
            self.skip = max(0, self.skip - 1)
        elif tag == "p" and self.depth:
            self.depth -= 1
            para = " ".join("".join(self.buf).split())
            self.buf = []
            if len(para) > 40 and not self.skip and re.search(r"[a-z]{3}", para):
                self.paras.append(para)

    def handle_data(self, data):
        if self.depth and not self.pre:
            self.buf.append(data)


def html_to_prose(text):
    parser = _Paragraphs()
    parser.feed(text)
    return "\n".join(parser.paras)


def held_out(rel_path, percent):
    return int(hashlib.sha256(rel_path.encode()).hexdigest(), 16) % 100 < percent


def build_tokenizer(texts, vocab):
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                                 use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                              use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=SPECIALS, show_progress=False)
    tok.train_from_iterator((line for t in texts for line in t.split("\n")), trainer=trainer)
    return tok


def encode_docs(tok, docs):
    ids = []
    for enc in tok.encode_batch(docs):
        ids.extend(enc.ids)
        ids.append(0)  # <|endoftext|> between documents
    return np.asarray(ids, dtype=np.uint16)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=SRC)
    ap.add_argument("--django", default=DJANGO, help="python-django-doc's HTML (optional)")
    ap.add_argument("--out", default=".traindata")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--heldout-percent", type=int, default=5)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    train, heldout = [], []
    for root, _, files in sorted(os.walk(args.src)):
        for name in sorted(files):
            if not name.endswith(".txt"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, args.src)
            if rel.startswith(("whatsnew/changelog", "license", "copyright")):
                continue  # the changelog is a list of issue titles; licenses are legal text
            with open(path, encoding="utf-8") as f:
                prose = rst_to_prose(f.read())
            if len(prose) < 200:
                continue
            (heldout if held_out(rel, args.heldout_percent) else train).append(prose)

    if os.path.isdir(args.django):
        for root, _, files in sorted(os.walk(args.django)):
            for name in sorted(files):
                path = os.path.join(root, name)
                rel = "django/" + os.path.relpath(path, args.django)
                if not name.endswith(".html") or "/releases/" in "/" + rel + "/" \
                        or name in ("genindex.html", "search.html", "py-modindex.html"):
                    continue  # release notes repeat one another; indexes are not prose
                with open(path, encoding="utf-8", errors="replace") as f:
                    prose = html_to_prose(f.read())
                if len(prose) < 200:
                    continue
                (heldout if held_out(rel, args.heldout_percent) else train).append(prose)

    for name, docs in (("train.txt", train), ("heldout.txt", heldout)):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            f.write("\n\f\n".join(docs) + "\n")
    tok = build_tokenizer(train, args.vocab)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    train_ids, held_ids = encode_docs(tok, train), encode_docs(tok, heldout)
    train_ids.tofile(os.path.join(args.out, "train.bin"))
    held_ids.tofile(os.path.join(args.out, "heldout.bin"))
    stats = {"source": f"Debian python3.11-doc ({args.src}), python-django-doc ({args.django})",
             "license": "PSF-2.0 (python3.11-doc), BSD-3-Clause (python-django-doc)",
             "train_docs": len(train), "heldout_docs": len(heldout),
             "train_chars": sum(map(len, train)), "heldout_chars": sum(map(len, heldout)),
             "train_tokens": int(train_ids.size), "heldout_tokens": int(held_ids.size),
             "vocab_size": tok.get_vocab_size()}
    with open(os.path.join(args.out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
