"""`edgellm run --numerics llamacpp --temp 0` on the family fixtures prints what llama.cpp's
greedy continuation prints (tests/data/families/golden.json: the bytes of llama.cpp's
detokenized 16 greedy tokens): the public API and the CLI path (prompt tokenization with
BOS and special tokens, generation, detokenization) reproduce llama.cpp end to end, not
only the logits test_families checks through the internal context.

One run (the first without an end-of-generation token among its greedy tokens) of every
fixture; the fixtures are made as test_families makes them (scripts/make-family-fixtures,
into $EDGELLM_FAMILY_FIXTURES or ./families-fixtures, kept for later runs)."""
import hashlib
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_util import BIN, SLOW, check  # noqa: E402

SRC = os.environ.get("EDGELLM_SOURCE_DIR", ".")
DATA = os.environ.get("EDGELLM_TEST_DATA", os.path.join(SRC, "tests", "data"))
FIX = os.environ.get("EDGELLM_FAMILY_FIXTURES") or "families-fixtures"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fixture(name, want_sha):
    path = os.path.join(FIX, name + ".gguf")
    for _ in range(2):
        if os.path.exists(path) and sha256(path) == want_sha:
            return path
        if os.path.exists(path):
            os.remove(path)
        os.makedirs(FIX, exist_ok=True)
        subprocess.run([sys.executable, os.path.join(SRC, "scripts", "make-family-fixtures"), "models",
                        "--out", FIX, "--only", name], check=True)
    check(False, f"{name}: cannot make the fixture or its sha256 differs")


def main():
    with open(os.path.join(DATA, "families", "golden.json"), encoding="utf-8") as f:
        golden = json.load(f)
    checked = 0
    for name, fx in golden["fixtures"].items():
        run = next((r for r in fx["runs"] if not r["greedy_eog"]), None)
        if run is None:
            print(f"{name}: every run meets an end-of-generation token, skipped")
            continue
        path = fixture(name, fx["sha256"])
        args = [BIN, "run", "-m", path, "-p", run["prompt"], "-n", str(len(run["greedy"])), "--temp", "0",
                "-c", str(run["n_ctx"]), "-t", "2", "--numerics", "llamacpp"]
        p = subprocess.run(args, capture_output=True, timeout=SLOW)
        check(p.returncode == 0, f"{name}: exit {p.returncode}: {p.stderr.decode(errors='replace')}")
        want = bytes.fromhex(run["greedy_text_hex"])
        # llama.cpp hands out raw bytes, invalid UTF-8 included (random weights produce
        # byte tokens that do not join); the CLI prints valid UTF-8, one U+FFFD per maximal
        # invalid subpart: the same text once both are decoded that way.
        got_text = p.stdout.decode("utf-8", errors="replace").rstrip("\n")
        want_text = want.decode("utf-8", errors="replace").rstrip("\n")
        check(got_text == want_text, f"{name}: printed {got_text!r}, llama.cpp's greedy continuation {want_text!r}")
        try:
            p.stdout.decode("utf-8", errors="strict")
        except UnicodeDecodeError as e:
            check(False, f"{name}: the output is not valid UTF-8 ({e})")
        print(f"{name}: {len(run['greedy'])} greedy tokens print as llama.cpp's ({len(want)} bytes)")
        checked += 1
    check(checked >= 15, f"only {checked} fixtures checked")
    print(f"ok: {checked} fixtures")


if __name__ == "__main__":
    main()
