#!/usr/bin/env python3
"""`edgellm inspect`: usage and exit codes, every hostile file refused cleanly, small valid
files and the default model (Gemma 3 270M Q4_K_M) described as the PyPI `gguf` package's
GGUFReader describes them, in text and --json.

The default model's path is read from ~/.cache/edgellm/default-model (scripts/setup writes
it); its checks are skipped, with a message, only if that file is absent."""
import json
import math
import os
import subprocess
import sys

BIN = os.environ.get("EDGELLM_BIN", "edgellm")
SRC = os.environ.get("EDGELLM_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DATA = os.environ.get("EDGELLM_TEST_DATA", os.path.join(SRC, "tests", "data"))
HOSTILE = os.path.join(DATA, "hostile")
SEEDS = os.path.join(SRC, "tests", "fuzz", "corpus", "gguf")

failures = []
n_checks = 0


def check(cond, what):
    global n_checks
    n_checks += 1
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*args):
    p = subprocess.run([BIN, "inspect", *args], capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def text_fields(out):
    """The 'label: value' summary lines at the top of the text output."""
    fields = {}
    for line in out.splitlines():
        if not line.strip():
            break
        label, _, value = line.partition(":")
        fields[label.strip()] = value.strip()
    return fields


def test_usage():
    rc, out, err = run("--help")
    check(rc == 0 and "usage: edgellm inspect" in out and "--json" in out, "--help exits 0 with usage")
    rc, out, err = run()
    check(rc == 2 and "usage" in err, "no model: exit 2 with usage on stderr")
    rc, out, err = run("--bogus", "x.gguf")
    check(rc == 2 and "unknown option" in err, "unknown option: exit 2")
    rc, out, err = run("a.gguf", "b.gguf")
    check(rc == 2, "two models: exit 2")
    missing = "/nonexistent/model.gguf"
    rc, out, err = run(missing)
    check(rc == 1 and err.startswith(f"edgellm: {missing}: ") and out == "", "missing file: exit 1, message")


def test_hostile():
    expected = {}
    with open(os.path.join(HOSTILE, "EXPECTED.txt")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, want = line.rstrip("\n").split("\t", 1)
            expected[name] = want
    files = sorted(n for n in os.listdir(HOSTILE) if n.endswith(".gguf"))
    check(len(files) >= 50, f"hostile corpus has {len(files)} files")
    for i, name in enumerate(files):
        path = os.path.join(HOSTILE, name)
        # Text for every file; --json takes the same path to the error, so a sample suffices.
        for args in ([path], ["--json", path]) if i % 4 == 0 else ([path],):
            rc, out, err = run(*args)
            # A crash shows as a negative return code (signal) or a sanitizer's exit code.
            check(rc == 1, f"{name} {args[0]}: exit {rc}, expected 1 (stderr: {err.strip()[:200]})")
            check(err.startswith(f"edgellm: {path}: ") and err.count("\n") == 1,
                  f"{name}: one 'edgellm: PATH: message' line on stderr, got {err!r}")
            check(expected.get(name, "\0") in err, f"{name}: message lacks {expected.get(name)!r}: {err.strip()}")
            check(out == "", f"{name}: nothing on stdout")


def reader_facts(path):
    import gguf
    r = gguf.GGUFReader(path)
    tensors = [(t.name, t.tensor_type.name, [int(x) for x in t.shape], int(t.n_bytes), int(t.data_offset))
               for t in r.tensors]
    fields = {}
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        fields[f.name] = (f.types, f.contents())
    return tensors, fields


TYPE_NAMES = {0: "u8", 1: "i8", 2: "u16", 3: "i16", 4: "u32", 5: "i32", 6: "f32", 7: "bool", 8: "string",
              9: "array", 10: "u64", 11: "i64", 12: "f64"}


def same_value(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return b is not None and math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-30)
    return a == b


def compare_with_reader(path, j):
    """--json output against GGUFReader: every tensor and every metadata key."""
    tensors, fields = reader_facts(path)
    check(j["tensor_count"] == len(tensors) == len(j["tensors"]), f"{path}: tensor count")
    for want, got in zip(tensors, j["tensors"]):
        name, tname, shape, nbytes, abs_off = want
        check(got["name"] == name, f"{path}: tensor name {got['name']} vs {name}")
        check(got["type"] == tname, f"{name}: type {got['type']} vs {tname}")
        check(got["shape"] == shape, f"{name}: shape {got['shape']} vs {shape}")
        check(got["bytes"] == nbytes, f"{name}: bytes {got['bytes']} vs {nbytes}")
        check(j["data_offset"] + got["offset"] == abs_off, f"{name}: file offset")
    check(j["parameters"] == sum(math.prod(t[2]) for t in tensors), f"{path}: parameter count")
    check(j["tensor_bytes"] == sum(t[3] for t in tensors), f"{path}: tensor bytes")
    check(set(j["metadata"]) == set(fields), f"{path}: same metadata keys")
    for key, (types, value) in fields.items():
        m = j["metadata"].get(key)
        if m is None:
            continue
        check(m["type"] == TYPE_NAMES[int(types[0])], f"{key}: type {m['type']}")
        if int(types[0]) == 9:
            check(m["element_type"] == TYPE_NAMES[int(types[1])], f"{key}: element type")
            check(m["count"] == len(value), f"{key}: count {m['count']} vs {len(value)}")
            check(m["truncated"] == (len(value) > len(m["values"])), f"{key}: truncated flag")
            for a, b in zip(value, m["values"]):
                check(same_value(a, b), f"{key}: element {a!r} vs {b!r}")
        else:
            check(same_value(value, m["value"]), f"{key}: value {value!r} vs {m['value']!r}")


def test_valid_seeds():
    for name in sorted(os.listdir(SEEDS)):
        if not name.startswith("valid-"):
            continue
        path = os.path.join(SEEDS, name)
        rc, out, err = run(path)
        check(rc == 0 and err == "" and "tensors (" in out, f"{name}: text output (rc {rc}, {err.strip()})")
        rc, out, err = run("--json", path)
        check(rc == 0, f"{name}: --json exit {rc}")
        compare_with_reader(path, json.loads(out))


def default_model():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path_file = os.path.join(cache, "edgellm", "default-model")
    if not os.path.isfile(path_file):
        return None
    with open(path_file) as f:
        return f.read().strip()


def test_default_model():
    model = default_model()
    if model is None:
        print("test_inspect: no ~/.cache/edgellm/default-model (run scripts/setup); skipping the model checks")
        return
    check(os.path.isfile(model), f"default model {model} exists")
    rc, out, err = run(model)
    check(rc == 0 and err == "", f"inspect {model}: exit {rc} {err.strip()}")
    t = text_fields(out)
    check(t.get("architecture") == "gemma3", f"text architecture {t.get('architecture')}")
    check(t.get("block count") == "18", "text block count 18")
    check(t.get("embedding length") == "640", "text embedding length 640")
    check(t.get("vocabulary size") == "262144", "text vocabulary 262144")
    check(t.get("file type", "").startswith("MOSTLY_Q4_K_M (15)"), f"text file type {t.get('file type')}")
    check("tensors (236):" in out, "text: 236 tensors")
    check("[262144 x string]" in out, "text: token array summarised")
    check("token_embd.weight" in out and "640 x 262144" in out, "text: token_embd shape")

    rc, out, err = run("--json", model)
    check(rc == 0, "--json exit 0")
    j = json.loads(out)
    check(j["architecture"] == "gemma3", "json architecture")
    check(j["tensor_count"] == 236, "json 236 tensors")
    check(j["block_count"] == 18, "json block_count 18")
    check(j["embedding_length"] == 640, "json embedding 640")
    check(j["vocab_size"] == 262144, "json vocab 262144")
    check(j["file_type"] == {"id": 15, "name": "MOSTLY_Q4_K_M"}, "json file type")
    check(j["file_size"] == os.path.getsize(model), "json file size")
    check(str(j["parameters"]) in t.get("parameters", ""), "text and json parameter counts agree")
    check(math.isclose(j["bits_per_weight"], j["tensor_bytes"] * 8 / j["parameters"]), "bits per weight")
    check(sum(v["tensors"] for v in j["tensor_types"].values()) == 236, "per-type counts sum to 236")
    compare_with_reader(model, j)


def tiny_llama(path, arch="llama", ffn_down_shape=(32, 64)):
    """A complete one-layer model of 16 tokens in F32 (random weights)."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(1)
    w = gguf.GGUFWriter(path, arch)
    w.add_context_length(64)
    w.add_embedding_length(32)
    w.add_block_count(1)
    w.add_feed_forward_length(64)
    w.add_head_count(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["t%d" % i for i in range(16)])
    w.add_token_types([1] * 16)
    w.add_token_merges([])

    def t(name, *shape):
        w.add_tensor(name, rng.standard_normal(shape).astype(np.float32))

    t("token_embd.weight", 16, 32)
    t("output_norm.weight", 32)
    for n in ("attn_norm", "ffn_norm"):
        t("blk.0.%s.weight" % n, 32)
    for n in ("attn_q", "attn_k", "attn_v", "attn_output"):
        t("blk.0.%s.weight" % n, 32, 32)
    t("blk.0.ffn_gate.weight", 64, 32)
    t("blk.0.ffn_up.weight", 64, 32)
    t("blk.0.ffn_down.weight", *ffn_down_shape)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_runnable():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        cases = [
            ("ok.gguf", {}, True, None),
            ("mamba.gguf", {"arch": "mamba"}, False, "architecture 'mamba' is not supported"),
            ("shape.gguf", {"ffn_down_shape": (64, 32)}, False, "'blk.0.ffn_down.weight' has shape"),
        ]
        for name, kw, want, why in cases:
            path = os.path.join(d, name)
            tiny_llama(path, **kw)
            rc, out, err = run(path)
            line = text_fields(out).get("runnable", "")
            if want:
                check(rc == 0 and line == "yes", f"{name}: runnable yes (got '{line}')")
            else:
                check(rc == 0 and line.startswith("no (") and why in line, f"{name}: runnable no, {why} (got '{line}')")
            rc, out, err = run("--json", path)
            j = json.loads(out) if rc == 0 else {}
            check(j.get("runnable") is want, f"{name}: json runnable {want}")
            check((j.get("runnable_reason") is None) if want else why in (j.get("runnable_reason") or ""),
                  f"{name}: json runnable_reason")
    model = default_model()
    if model and os.path.isfile(model):
        rc, out, err = run(model)
        check(text_fields(out).get("runnable") == "yes", "default model: runnable yes")


def main():
    test_usage()
    test_runnable()
    test_hostile()
    test_valid_seeds()
    test_default_model()
    if failures:
        print(f"test_inspect: {len(failures)} failure(s)")
        sys.exit(1)
    print(f"test_inspect: ok ({n_checks} checks)")


if __name__ == "__main__":
    main()
