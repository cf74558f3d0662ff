"""Speculative decoding from the CLI on the default model: `edgellm run` with
--spec-lookup and with --draft (the model drafting for itself) prints exactly the
plain greedy text and reports drafted/accepted tokens in --stats-json; usage errors
(both drafters, a bad --draft-max, a missing draft file, a draft model with another
vocabulary if a llama fixture is there) exit as documented; `edgellm bench --spec
lookup --json` prints its keys and finds the outputs identical.

Skipped (exit 0, says so) when the default model is not installed."""
import json
import os
import subprocess

from cli_util import BIN, SLOW, check, default_model, run, stats_line

PROMPT = ("Repeat this list exactly, then add one more fruit: apple, banana, cherry, date, elderberry, "
          "fig, grape, honeydew, kiwi, lemon, mango.")


def main():
    model = default_model()
    if not model:
        print("SKIP: no default model installed")
        return
    base = ["run", "-m", model, "-p", PROMPT, "--chat-format", "-n", "24", "--temp", "0", "-t", "2", "--stats-json"]
    rc, plain, err = run(base)
    check(rc == 0 and plain.strip(), f"plain run: {err}")
    st = stats_line(err)
    check(st["drafted_tokens"] == 0 and st["accepted_tokens"] == 0, f"plain run drafted: {st}")

    rc, out, err = run(base + ["--spec-lookup", "--draft-max", "5"])
    check(rc == 0, f"--spec-lookup: {err}")
    check(out == plain, f"--spec-lookup output {out!r} differs from plain {plain!r}")
    st = stats_line(err)
    check(st["drafted_tokens"] > 0 and 0 <= st["accepted_tokens"] <= st["drafted_tokens"], f"stats {st}")
    check(st["verify_passes"] > 0 and st["generated_tokens"] == 24, f"stats {st}")

    rc, out, err = run(base + ["--draft", model])
    check(rc == 0, f"--draft: {err}")
    check(out == plain, f"--draft output {out!r} differs from plain {plain!r}")
    st = stats_line(err)
    check(st["drafted_tokens"] > 0 and st["accepted_tokens"] == st["drafted_tokens"],
          f"a model drafting for itself must have every draft accepted: {st}")

    # chat: the same flags, two turns and a /reset; answers the same as without them.
    turns = (PROMPT + "\nAnd once more, shorter.\n/reset\n" + PROMPT + "\n").encode("utf-8")
    chat = ["chat", "-m", model, "-n", "16", "--temp", "0", "-t", "2"]
    outs = []
    for extra in ([], ["--spec-lookup"], ["--draft", model]):
        p = subprocess.run([BIN] + chat + extra, input=turns, capture_output=True, timeout=SLOW)
        check(p.returncode == 0, f"chat {extra}: {p.stderr!r}")
        outs.append(p.stdout.decode("utf-8"))
    check(outs[0].strip() and outs[1] == outs[0] and outs[2] == outs[0], f"chat answers differ: {outs!r}")

    check(run(base + ["--spec-lookup", "--draft", model])[0] == 2, "both drafters exit 2")
    check(run(base + ["--draft-max", "0"])[0] == 2, "--draft-max 0 exits 2")
    rc, _, err = run(base + ["--draft", "/nonexistent/draft.gguf"])
    check(rc == 1 and "draft" in err, f"missing draft file: {rc} {err!r}")
    fixtures = os.environ.get("EDGELLM_FAMILY_FIXTURES", "families-fixtures")
    other = os.path.join(fixtures, "llama-q4_k.gguf")
    if os.path.isfile(other):
        rc, _, err = run(base + ["--draft", other])
        check(rc == 1 and "vocabulary" in err, f"a draft with another vocabulary: {rc} {err!r}")
    else:
        print("note: no llama fixture, the vocabulary refusal is checked in test_spec only if present")

    rc, out, err = run(["bench", "-m", model, "-t", "2", "--spec", "lookup", "--tg", "16", "--reps", "1", "--json"])
    check(rc == 0, f"bench --spec: {err}")
    b = json.loads(out.strip().splitlines()[-1])
    check(b["spec"] == "lookup" and b["tg"] == 16, f"bench json {b}")
    # which SIMD kernels the figures come from (edgellm_kernels_name)
    kernels = {"avx512-vnni", "avx-vnni", "avx2", "neon-i8mm", "neon-dotprod", "neon", "scalar"}
    check(b.get("kernels") in kernels, f"bench json kernels: {b.get('kernels')}")
    for kind in ("summarise", "code_edit"):
        r = b[kind]
        for key in ("plain_tok_s", "spec_tok_s", "speedup", "acceptance", "drafted", "accepted", "verify_passes",
                    "generated", "identical"):
            check(key in r, f"bench {kind} lacks {key}: {r}")
        check(r["identical"] is True and r["plain_tok_s"] > 0 and r["spec_tok_s"] > 0, f"bench {kind}: {r}")
        check(0 <= r["accepted"] <= r["drafted"], f"bench {kind}: {r}")
    check(run(["bench", "-m", model, "--spec", "bogus"])[0] == 2, "bench --spec bogus exits 2")
    print("ok")


if __name__ == "__main__":
    main()
