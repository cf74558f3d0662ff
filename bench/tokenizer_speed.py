#!/usr/bin/env python3
"""Byte-level BPE encode speed: edgellm (C, bench_bpe_encode) vs Hugging Face `tokenizers`, single thread.

  python3 bench/tokenizer_speed.py --build build [--mb 4] [--names llama3,qwen3,gpt4o,deepseek_v3]

Texts (the same bytes for both): "stdlib" = Python standard library sources (English comments and
docstrings, code), "corpus" = tests/data/bpe/corpus.jsonl (many scripts, emoji, digits, whitespace)
repeated; each cut to --mb MB at a line end. Both encoders get the same pieces: the text cut at the
first newline after every --chunk bytes (default 4096, like documents or chat messages; `tokenizers`
gets them through encode_batch with one thread), or the whole text as one string with --chunk 0
(`tokenizers` is much slower on one multi-MB string). The best of --repeats runs, by process CPU time (steadier than wall time on a shared machine), is reported.
Token counts are compared as a sanity check.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..")
DATA = os.path.join(SRC, "tests", "data", "bpe")


def cut(text, n_bytes):
    b = text.encode("utf-8")[:n_bytes]
    b = b[: b.rfind(b"\n") + 1]
    return b.decode("utf-8")


def stdlib_text(n_bytes):
    parts, size = [], 0
    for p in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py"))):
        with open(p, encoding="utf-8", errors="replace") as f:
            t = f.read()
        parts.append(t)
        size += len(t.encode("utf-8"))
        if size > n_bytes:
            break
    return cut("".join(parts), n_bytes)


def corpus_text(n_bytes, added):
    """Corpus lines without added-token texts (tokenizers would split those out)."""
    with open(os.path.join(DATA, "corpus.jsonl"), encoding="utf-8") as f:
        lines = [json.loads(x) for x in f if x.strip()]
    lines = [s for s in lines if not any(a in s for a in added)]
    one = "\n".join(lines) + "\n"
    reps = n_bytes // len(one.encode("utf-8")) + 1
    return cut(one * reps, n_bytes)


def chunks(text, size):
    """Same cuts as bench_bpe_encode: at the first newline at or after every size bytes."""
    if size <= 0:
        return [text]
    b, out, start = text.encode("utf-8"), [], 0
    while start < len(b):
        end = len(b)
        if len(b) - start > size:
            nl = b.find(b"\n", start + size)
            if nl >= 0:
                end = nl + 1
        out.append(b[start:end].decode("utf-8"))
        start = end
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--mb", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--names", default="llama3,qwen3,gpt4o,deepseek_v3")
    ap.add_argument("--chunk", type=int, default=4096)
    a = ap.parse_args()
    from tokenizers import Tokenizer
    import lzma

    enc = os.path.join(a.build, "bench", "bench_bpe_encode")
    if not os.path.exists(enc):
        sys.exit("missing " + enc)
    n_bytes = int(a.mb * 1e6)
    jsons = {}
    for name in a.names.split(","):
        with lzma.open(os.path.join(DATA, name + ".tokenizer.json.xz"), "rt", encoding="utf-8") as f:
            jsons[name] = f.read()
    added = {t["content"] for j in jsons.values() for t in json.loads(j)["added_tokens"]}
    texts = {"stdlib": stdlib_text(n_bytes), "corpus": corpus_text(n_bytes, added)}
    print("single thread, best of %d by CPU time, %s; MB = 1e6 bytes" % (
        a.repeats, "pieces of ~%d bytes" % a.chunk if a.chunk > 0 else "whole text as one string"))
    print("%-12s %-7s %9s %12s %12s %8s %s" % ("vocab", "text", "MB", "edgellm MB/s", "tokenizers", "speedup",
                                              "tokens (edgellm / tokenizers)"))
    with tempfile.TemporaryDirectory(prefix="bpe_speed_") as tmp:
        subprocess.run([sys.executable, os.path.join(SRC, "scripts", "make-bpe-fixtures"), "gguf", "--out", tmp,
                        "--names", a.names], check=True, stdout=subprocess.DEVNULL)
        paths = {}
        for k, t in texts.items():
            paths[k] = os.path.join(tmp, k + ".txt")
            with open(paths[k], "w", encoding="utf-8", newline="") as f:
                f.write(t)
        for name in a.names.split(","):
            tk = Tokenizer.from_str(jsons[name])
            for k, t in texts.items():
                r = subprocess.run([enc, "speed", os.path.join(tmp, name + ".gguf"), paths[k], str(a.repeats),
                                    str(a.chunk)],
                                   capture_output=True, text=True, check=True)
                fields = dict(x.split("=") for x in r.stdout.split())
                c_mbs, c_tok = float(fields["MB/s"]), int(fields["tokens"])
                pieces = chunks(t, a.chunk)
                best = 1e30
                for _ in range(a.repeats):
                    t0 = time.process_time()
                    encs = tk.encode_batch(pieces, add_special_tokens=False)
                    best = min(best, time.process_time() - t0)
                n_py = sum(len(e.ids) for e in encs)
                mb = len(t.encode("utf-8")) / 1e6
                py_mbs = mb / best
                print("%-12s %-7s %9.2f %12.2f %12.2f %7.1fx %d / %d%s" % (
                    name, k, mb, c_mbs, py_mbs, c_mbs / py_mbs, c_tok, n_py,
                    "" if c_tok == n_py else "  MISMATCH"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
