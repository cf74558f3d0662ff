"""Helpers shared by the Python tests that drive the `edgellm` CLI on the default model."""
import json
import os
import subprocess
import sys

BIN = os.environ.get("EDGELLM_BIN", "build/edgellm")
SLOW = 600  # seconds a CLI run may take (sanitizer builds are slow)


def default_model():
    """$EDGELLM_MODEL, else the path scripts/setup wrote to ~/.cache/edgellm/default-model (if it exists)."""
    env = os.environ.get("EDGELLM_MODEL")
    if env:
        return env
    try:
        with open(os.path.expanduser("~/.cache/edgellm/default-model")) as f:
            path = f.read().strip()
        return path if os.path.isfile(path) else None
    except OSError:
        return None


def run(args, stdin=None, env=None):
    """(exit code, stdout, stderr) of `edgellm ARGS`."""
    p = subprocess.run([BIN] + args, input=stdin, capture_output=True, timeout=SLOW, env=env)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8", errors="replace")


def stats_line(err):
    """The last JSON statistics line in stderr."""
    lines = [l for l in err.strip().splitlines() if l.startswith("{")]
    assert lines, f"no JSON statistics in stderr: {err!r}"
    return json.loads(lines[-1])


def check(cond, msg):
    if not cond:
        print("FAIL:", msg)
        sys.exit(1)
