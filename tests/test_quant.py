#!/usr/bin/env python3
"""Block formats against the `gguf` package's reference (gguf.quants):

1. dequantization is bit-exact (float32 bit patterns) on random *valid* blocks (random
   bytes, half-precision scale fields set to random finite values) for every format gguf
   can dequantize; Q8_1 and Q8_K, which gguf lacks, against their one-line formula;
2. quantization is byte-exact with gguf's for the formats it implements (F16, BF16,
   Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), including ties and all-zero blocks;
3. our K-quant quantizers (a simpler RTN than ggml's search, so the bytes differ by
   design) produce blocks that gguf decodes to exactly what we decode, with a bounded
   error, i.e. the bit packing follows the layout;
4. the first 64 rows of every tensor of the default model (when scripts/setup fetched it)
   dequantize bit-exactly;
5. EDGELLM_CPU picks the kernel level (checked in child processes).

The C functions are called through the shared library (libedgellm.so next to EDGELLM_BIN).
"""
import ctypes
import os
import re
import subprocess
import sys

import numpy as np


def find_library():
    cands = []
    if os.environ.get("EDGELLM_BIN"):
        cands.append(os.path.join(os.path.dirname(os.environ["EDGELLM_BIN"]), "libedgellm.so"))
    src = os.environ.get("EDGELLM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
    cands.append(os.path.join(src, "build", "libedgellm.so"))
    for c in cands:
        if os.path.exists(c):
            return os.path.abspath(c)
    sys.exit("test_quant: libedgellm.so not found (looked at %s)" % cands)


def reexec_with_sanitizer_runtime(lib):
    """A sanitizer build of the library needs its runtime loaded first: re-run under LD_PRELOAD."""
    if os.environ.get("EDGELLM_QUANT_PRELOADED"):
        return
    try:
        out = subprocess.run(["ldd", lib], capture_output=True, text=True, check=False).stdout
    except OSError:
        return
    runtimes = re.findall(r"=>\s*(\S*lib(?:asan|ubsan)\.so\S*)", out)
    if not runtimes:
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(runtimes + ([env["LD_PRELOAD"]] if env.get("LD_PRELOAD") else []))
    # Later options win: Python itself leaks by design, so leak checks go off last.
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    env["EDGELLM_QUANT_PRELOADED"] = "1"
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


LIB_PATH = find_library()
reexec_with_sanitizer_runtime(LIB_PATH)

from gguf import GGMLQuantizationType as T  # noqa: E402
from gguf import quants  # noqa: E402
from gguf.constants import GGML_QUANT_SIZES as GGUF_SIZES  # noqa: E402

# gguf lists Q8_1 with float d and s (40 bytes); ggml's block_q8_1, and ours, hold them
# as halves (36 bytes). Q8_1 never appears in files; it is our activation format.
GGML_QUANT_SIZES = dict(GGUF_SIZES)
GGML_QUANT_SIZES[T.Q8_1] = (32, 36)

try:
    lib = ctypes.CDLL(LIB_PATH)
except OSError as e:
    # clang links its sanitizer runtime statically into executables only: a clang-sanitized
    # shared library then needs the runtime's shared form preloaded.
    if "__asan" in str(e) or "__ubsan" in str(e):
        if os.environ.get("EDGELLM_QUANT_PRELOADED"):
            sys.exit("test_quant: cannot load %s: %s" % (LIB_PATH, e))
        rts = []
        for name in ("libclang_rt.asan-x86_64.so", "libclang_rt.ubsan_standalone-x86_64.so"):
            path = subprocess.run(["clang", "-print-file-name=" + name], capture_output=True, text=True).stdout.strip()
            if os.path.isabs(path) and os.path.exists(path):
                rts.append(path)
                break  # the asan runtime includes ubsan's
        env = dict(os.environ, LD_PRELOAD=" ".join(rts), EDGELLM_QUANT_PRELOADED="1",
                   ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    raise

# type -> (C name, offsets of half-precision scale fields in a block)
FORMATS = {
    T.F32: ("f32", []),
    T.F16: ("f16", []),
    T.BF16: ("bf16", []),
    T.Q4_0: ("q4_0", [0]),
    T.Q4_1: ("q4_1", [0, 2]),
    T.Q5_0: ("q5_0", [0]),
    T.Q5_1: ("q5_1", [0, 2]),
    T.Q8_0: ("q8_0", [0]),
    T.Q8_1: ("q8_1", [0, 2]),
    T.Q2_K: ("q2_K", [80, 82]),
    T.Q3_K: ("q3_K", [108]),
    T.Q4_K: ("q4_K", [0, 2]),
    T.Q5_K: ("q5_K", [0, 2]),
    T.Q6_K: ("q6_K", [208]),
    T.Q8_K: ("q8_K", []),
}

rng = np.random.default_rng(1234)
failures = []


def c_fn(kind, qtype):
    f = getattr(lib, "el_%s_row_%s" % (kind, FORMATS[qtype][0]))
    f.restype = None
    f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    return f


def c_dequantize(qtype, data, n):
    out = np.empty(n, dtype=np.float32)
    src = np.ascontiguousarray(data, dtype=np.uint8)
    c_fn("dequantize", qtype)(src.ctypes.data, out.ctypes.data, n)
    return out


def c_quantize(qtype, x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    bs, ts = GGML_QUANT_SIZES[qtype]
    out = np.zeros(x.size // bs * ts, dtype=np.uint8)
    c_fn("quantize", qtype)(x.ctypes.data, out.ctypes.data, x.size)
    return out


def random_finite_halves(count):
    h = rng.integers(0, 1 << 16, size=count, dtype=np.uint16)
    h[(h & 0x7C00) == 0x7C00] &= 0xBBFF  # inf/nan -> finite (clear one exponent bit)
    return h


def random_valid_blocks(qtype, nblocks):
    bs, ts = GGML_QUANT_SIZES[qtype]
    if qtype == T.F32:
        v = rng.integers(0, 1 << 32, size=nblocks, dtype=np.uint32)
        v[(v & 0x7F800000) == 0x7F800000] &= 0xBFFFFFFF
        return v.view(np.uint8)
    if qtype == T.F16:
        return random_finite_halves(nblocks).view(np.uint8)
    if qtype == T.BF16:
        h = rng.integers(0, 1 << 16, size=nblocks, dtype=np.uint16)
        h[(h & 0x7F80) == 0x7F80] &= 0xBFFF
        return h.view(np.uint8)
    blocks = rng.integers(0, 256, size=(nblocks, ts), dtype=np.uint8)
    for off in FORMATS[qtype][1]:
        blocks[:, off:off + 2] = random_finite_halves(nblocks).view(np.uint8).reshape(nblocks, 2)
    if qtype == T.Q8_K:  # float d, int8 quants, int16 bsums (ignored by dequantization)
        blocks[:, 0:4] = rng.standard_normal(nblocks).astype(np.float32).view(np.uint8).reshape(nblocks, 4)
    return blocks.reshape(-1)


def formula_dequantize(qtype, data):
    """Q8_1 and Q8_K, which gguf does not implement: x = d * q."""
    if qtype == T.Q8_1:
        b = data.reshape(-1, 36)
        d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
        q = b[:, 4:].copy().view(np.int8).astype(np.float32)
        return (q * d).reshape(-1)
    b = data.reshape(-1, 292)
    d = b[:, 0:4].copy().view(np.float32)
    q = b[:, 4:260].copy().view(np.int8).astype(np.float32)
    return (d * q).reshape(-1)


def same_bits(a, b):
    a = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    b = np.ascontiguousarray(b, dtype=np.float32).view(np.uint32)
    return a.shape == b.shape and bool(np.all(a == b)), int(np.sum(a != b)) if a.shape == b.shape else -1


def check_dequantize():
    for qtype in FORMATS:
        bs, ts = GGML_QUANT_SIZES[qtype]
        nblocks = 4096 if bs == 1 else (300 if bs == 32 else 120)
        data = random_valid_blocks(qtype, nblocks)
        n = nblocks * bs
        ours = c_dequantize(qtype, data, n)
        if qtype in (T.Q8_1, T.Q8_K):
            ref, src = formula_dequantize(qtype, data), "formula"
        else:
            ref, src = quants.dequantize(data, qtype).reshape(-1), "gguf"
        ok, nbad = same_bits(ours, ref)
        print("dequantize %-5s %6d values vs %-7s: %s" % (qtype.name, n, src, "bit-exact" if ok else "%d differ" % nbad))
        if not ok:
            failures.append("dequantize %s" % qtype.name)


def test_inputs(nblocks, bs):
    """Gaussian rows, plus blocks that are all zero, constant, or full of exact ties."""
    x = rng.standard_normal(nblocks * bs).astype(np.float32)
    x[: bs] = 0.0
    x[bs: 2 * bs] = 0.75
    # block where the scale is exactly 1 (amax 127) and values sit on .5 ties
    ties = (rng.integers(-254, 255, size=bs) / 2).astype(np.float32)
    ties[3] = 127.0
    x[2 * bs: 3 * bs] = ties
    x[3 * bs: 4 * bs] *= 1e-5
    x[4 * bs: 5 * bs] = np.abs(x[4 * bs: 5 * bs]) + 1.0  # all positive (min > 0)
    return x


def check_quantize():
    for qtype in (T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
        bs, ts = GGML_QUANT_SIZES[qtype]
        nblocks = 2048 if bs == 1 else 400
        x = test_inputs(nblocks // 32 * 32 if bs == 1 else nblocks, 32 if bs == 1 else bs)
        ours = c_quantize(qtype, x)
        ref = np.ascontiguousarray(quants.quantize(x.reshape(-1, bs if bs > 1 else x.size), qtype)).view(np.uint8).reshape(-1)
        same = ours.shape == ref.shape and bool(np.all(ours == ref))
        nb = x.size // bs
        bad_blocks = 0 if same else int(np.sum(np.any(ours.reshape(nb, -1) != ref.reshape(nb, -1), axis=1)))
        print("quantize   %-5s %6d values vs gguf   : %s" % (qtype.name, x.size, "byte-exact" if same else "%d blocks differ" % bad_blocks))
        if not same:
            failures.append("quantize %s" % qtype.name)


def check_half_rounding():
    """Float -> half over the whole float range (subnormals, overflow to inf) vs numpy."""
    bits = rng.integers(0, 1 << 32, size=1 << 16, dtype=np.uint32)
    bits[(bits & 0x7F800000) == 0x7F800000] &= 0xBFFFFFFF  # finite only
    # concentrate on the exponents where half rounding is interesting
    bits[: 1 << 15] = (bits[: 1 << 15] & 0x807FFFFF) | (rng.integers(100, 145, size=1 << 15, dtype=np.uint32) << 23)
    x = bits.view(np.float32)
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16).view(np.uint8)
    ours = c_quantize(T.F16, x)
    same = bool(np.all(ours == ref))
    print("quantize   F16   %6d values over the float range vs numpy: %s" % (x.size, "byte-exact" if same else "differ"))
    if not same:
        failures.append("f32 -> f16 rounding")


# rel rmse bounds on gaussian data (as tests/test_quant_dot.c): a wrong packing would blow them
K_BOUNDS = {T.Q2_K: 0.45, T.Q3_K: 0.25, T.Q4_K: 0.1, T.Q5_K: 0.05, T.Q6_K: 0.03}


def check_k_quant_packing():
    for qtype in (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K):
        x = test_inputs(64, 256)
        q = c_quantize(qtype, x)
        ours = c_dequantize(qtype, q, x.size)
        ref = quants.dequantize(q, qtype).reshape(-1)
        ok, nbad = same_bits(ours, ref)
        err = float(np.sqrt(np.mean((ours[5 * 256:] - x[5 * 256:]) ** 2)) / np.sqrt(np.mean(x[5 * 256:] ** 2)))
        print("quantize   %-5s ours, decoded by gguf: %s (rel rmse %.4f; bytes differ from ggml's search by design)"
              % (qtype.name, "bit-exact" if ok else "%d differ" % nbad, err))
        if not ok or not err <= K_BOUNDS[qtype]:
            failures.append("K-quant packing %s" % qtype.name)


def best_kernel_name(env_value):
    """Which Q4_K kernel el_vec_dot_best picks in a fresh process with EDGELLM_CPU=env_value."""
    code = (
        "import ctypes, sys\n"
        "lib = ctypes.CDLL(sys.argv[1])\n"
        "lib.el_vec_dot_best.restype = ctypes.c_void_p\n"
        "best = lib.el_vec_dot_best(12)\n"
        "for name in ('ref', 'avx2', 'avx512'):\n"
        "    try:\n"
        "        f = getattr(lib, 'el_vec_dot_q4_K_q8_K_' + name)\n"
        "    except AttributeError:\n"
        "        continue\n"
        "    if ctypes.cast(f, ctypes.c_void_p).value == best:\n"
        "        print(name)\n"
    )
    env = dict(os.environ)
    env.pop("EDGELLM_CPU", None)
    if env_value is not None:
        env["EDGELLM_CPU"] = env_value
    out = subprocess.run([sys.executable, "-c", code, LIB_PATH], env=env, capture_output=True, text=True)
    return out.stdout.strip() or ("error: " + out.stderr.strip()[-200:])


def check_cpu_override():
    """EDGELLM_CPU caps the kernel level; AVX-512 only when asked for (not yet verified on hardware)."""
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        return
    if "avx2" not in flags:  # not x86 with AVX2 (arm64 kernels are named by other suffixes)
        want = {"scalar": "ref"}
    else:
        has512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"} <= flags
        want = {None: "avx2", "scalar": "ref", "avx2": "avx2", "avx512": "avx512" if has512 else "avx2",
                "neon": "avx2", "bogus": "avx2"}
    for env_value, expect in want.items():
        got = best_kernel_name(env_value)
        print("EDGELLM_CPU=%-7s -> Q4_K kernel %s" % (env_value, got))
        if got != expect:
            failures.append("EDGELLM_CPU=%s picked %s, expected %s" % (env_value, got, expect))


def default_model_path():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    try:
        with open(os.path.join(cache, "edgellm", "default-model")) as f:
            path = f.read().strip()
    except OSError:
        return None
    return path if os.path.isfile(path) else None


def gguf_tensors(path):
    """(name, type id, ne, file offset) of each tensor: a minimal GGUF walk (gguf's own
    GGUFReader builds Python objects for the whole 262k-token vocabulary, far too slow here)."""
    import struct
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    buf = memoryview(mm)
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def string():
        nonlocal pos
        n = take("Q")
        pos += n
        return bytes(buf[pos - n:pos]).decode("utf-8", "replace")

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def skip_value(vt):
        nonlocal pos
        if vt == 8:
            string()
        elif vt == 9:
            et, cnt = take("I"), take("Q")
            if et in scalar:
                pos += cnt * struct.calcsize(scalar[et])
            else:
                for _ in range(cnt):
                    skip_value(et)
        else:
            pos += struct.calcsize(scalar[vt])

    magic, _version, n_tensors, n_kv = take("4sIQQ")
    if magic != b"GGUF":
        raise ValueError("not a GGUF file: %s" % path)
    alignment = 32
    for _ in range(n_kv):
        key, vt = string(), take("I")
        if key == "general.alignment" and vt == 4:
            alignment = take("I")
        else:
            skip_value(vt)
    infos = []
    for _ in range(n_tensors):
        name = string()
        ne = [take("Q") for _ in range(take("I"))]
        infos.append((name, take("I"), ne, take("Q")))
    data_start = (pos + alignment - 1) // alignment * alignment
    return mm, [(name, tt, ne, data_start + off) for name, tt, ne, off in infos]


def check_real_model(max_rows=64):
    """The first rows of every tensor of the default model (if set up): bit-exact vs gguf."""
    path = default_model_path()
    if not path:
        print("real model: not set up (scripts/setup), skipped")
        return
    mm, tensors = gguf_tensors(path)
    seen = {}
    for name, tt, ne, off in tensors:
        try:
            qtype = T(tt)
        except ValueError:
            continue
        if qtype not in FORMATS or qtype in (T.Q8_1, T.Q8_K):
            continue
        bs, ts = GGML_QUANT_SIZES[qtype]
        rows = 1
        for d in ne[1:]:
            rows *= d
        n = ne[0] * min(rows, max_rows)
        raw = np.array(mm[off: off + n // bs * ts])
        ours = c_dequantize(qtype, raw, n)
        ok, nbad = same_bits(ours, quants.dequantize(raw, qtype).reshape(-1))
        if not (np.all(np.isfinite(ours)) and np.max(np.abs(ours)) < 1e5):  # also checks the offsets
            failures.append("real model tensor %s (%s): implausible values" % (name, qtype.name))
        cnt = seen.setdefault(qtype.name, [0, 0])
        cnt[0] += 1
        cnt[1] += n
        if not ok:
            failures.append("real model tensor %s (%s): %d values differ" % (name, qtype.name, nbad))
    for name, (count, values) in sorted(seen.items()):
        print("real model %-5s %3d tensors, %8d values vs gguf: bit-exact unless listed below" % (name, count, values))


check_cpu_override()
check_real_model()
check_dequantize()
check_quantize()
check_half_rounding()
check_k_quant_packing()
if failures:
    print("FAILED:", ", ".join(failures))
    sys.exit(1)
print("all quant format checks passed")
