#!/usr/bin/env python3
"""Byte-level BPE exactness on real vocabularies (Llama 3, Qwen2/3, o200k, DeepSeek V3).

Builds vocab-only GGUFs from tests/data/bpe/<name>.tokenizer.json.xz with scripts/make-bpe-fixtures,
encodes every string of tests/data/bpe/corpus.jsonl with the C encoder (bench/bpe_encode.c, built as
bench/bench_bpe_encode next to the CLI) and requires the ids that Hugging Face `tokenizers` gave
(tests/data/bpe/expected.<name>.txt.xz, written by `scripts/make-bpe-fixtures expected`).

Also checks the C NFC (Qwen2 normalizes input) against Python's unicodedata on seeded random strings
of decomposable characters, combining marks and Hangul jamo.

Left out per vocabulary, and counted: strings that contain an added token's text (the caller splits
those out before BPE, so `tokenizers` gives the added token's id there).
"""
import json
import lzma
import os
import random
import subprocess
import sys
import tempfile
import unicodedata

SRC = os.environ.get("EDGELLM_SOURCE_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.path.join(os.environ.get("EDGELLM_TEST_DATA") or os.path.join(SRC, "tests", "data"), "bpe")
NAMES = ["llama3", "qwen3", "gpt4o", "deepseek_v3"]


def encoder_path():
    b = os.environ.get("EDGELLM_BIN")
    if not b:
        sys.exit("EDGELLM_BIN is not set")
    p = os.path.join(os.path.dirname(b), "bench", "bench_bpe_encode")
    if not os.path.exists(p):
        sys.exit("missing %s (built from bench/bpe_encode.c)" % p)
    return p


def added_texts(name):
    with lzma.open(os.path.join(DATA, name + ".tokenizer.json.xz"), "rt", encoding="utf-8") as f:
        tj = json.load(f)
    return [a["content"] for a in tj["added_tokens"]]


def nfc_strings(n=3000, seed=7):
    rng = random.Random(seed)
    decomposable = [chr(c) for c in range(0xA0, 0x30000) if unicodedata.decomposition(chr(c))
                    and not unicodedata.decomposition(chr(c)).startswith("<")]
    marks = [chr(c) for c in range(0x300, 0x30000) if unicodedata.combining(chr(c))]
    jamo = [chr(c) for c in list(range(0x1100, 0x1113)) + list(range(0x1161, 0x1176)) + list(range(0x11A8, 0x11C3))]
    plain = list("aeiouAEIOU kn") + ["\u0915", "\u0928", "\u3042", "\uac00", "\u4e2d"]
    pools = [decomposable, marks, jamo, plain]
    out = []
    for _ in range(n):
        k = rng.randint(1, 12)
        out.append("".join(rng.choice(rng.choice(pools)) for _ in range(k)))
    return out


def check_nfc(enc, tmp):
    strings = nfc_strings()
    path = os.path.join(tmp, "nfc.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for s in strings:
            f.write(json.dumps(s) + "\n")
    r = subprocess.run([enc, "nfc", "-", path], capture_output=True, text=True, encoding="utf-8")
    if r.returncode != 0:
        print("nfc: encoder failed (%d): %s" % (r.returncode, r.stderr.strip()))
        return False
    got = [json.loads(line) for line in r.stdout.splitlines()]
    bad = [i for i, s in enumerate(strings) if i >= len(got) or got[i] != unicodedata.normalize("NFC", s)]
    print("%-12s %d/%d equal to unicodedata %s" % ("nfc", len(strings) - len(bad), len(strings),
                                                  unicodedata.unidata_version))
    for i in bad[:5]:
        print("  %r: want %r got %r" % (strings[i], unicodedata.normalize("NFC", strings[i]),
                                        got[i] if i < len(got) else None))
    return not bad


def main():
    enc = encoder_path()
    corpus_path = os.path.join(DATA, "corpus.jsonl")
    with open(corpus_path, encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f if line.strip()]
    assert len(corpus) >= 2000, len(corpus)
    failed = False
    with tempfile.TemporaryDirectory(prefix="bpe_vocab_") as tmp:
        if not check_nfc(enc, tmp):
            failed = True
        subprocess.run([sys.executable, os.path.join(SRC, "scripts", "make-bpe-fixtures"), "gguf",
                        "--out", tmp, "--data", DATA], check=True, stdout=subprocess.DEVNULL)
        for name in NAMES:
            with lzma.open(os.path.join(DATA, "expected.%s.txt.xz" % name), "rt", encoding="ascii") as f:
                expected = f.read().split("\n")[:len(corpus)]
            assert len(expected) == len(corpus), (name, len(expected))
            r = subprocess.run([enc, "ids", os.path.join(tmp, name + ".gguf"), corpus_path],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print("%s: encoder failed (%d): %s" % (name, r.returncode, r.stderr.strip()))
                failed = True
                continue
            got = r.stdout.split("\n")[:len(corpus)]
            added = added_texts(name)
            skip = [i for i, s in enumerate(corpus) if any(a in s for a in added)]
            skipped = set(skip)
            bad = [i for i in range(len(corpus)) if i not in skipped and (i >= len(got) or got[i] != expected[i])]
            n = len(corpus) - len(skipped)
            print("%-12s %d/%d equal (%d left out: added-token text)" % (name, n - len(bad), n, len(skip)))
            for i in bad[:5]:
                print("  string %d: %r" % (i, corpus[i][:200]))
                print("    tokenizers: %s" % expected[i][:300])
                print("    edgellm:    %s" % (got[i][:300] if i < len(got) else "(missing)"))
            if bad:
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
