#!/usr/bin/env python3
"""The fake upstream (tests/fake_openai.py) is faithful to the OpenAI API: the
official openai Python package talks to it and parses every answer and error the
C tests rely on."""
import os
import subprocess
import sys

import openai

HERE = os.path.dirname(os.path.abspath(__file__))


def start_fake():
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_openai.py")], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("PORT "), line
    return p, int(line.split()[1])


def script(client, steps, default="ok"):
    client.post("/_script", cast_to=object, body={"steps": steps, "default": default})


def main():
    proc, port = start_fake()
    try:
        base = "http://127.0.0.1:%d" % port
        client = openai.OpenAI(base_url=base + "/v1", api_key="sk-test-FAITHFUL", max_retries=0, timeout=10)
        ctl = openai.OpenAI(base_url=base, api_key="x", max_retries=0)
        msgs = [{"role": "system", "content": "be brief"},
                {"role": "user", "content": 'quote " backslash \\ newline \n tab \t é 漢字 \u0001'}]

        r = client.chat.completions.create(model="fake-model", messages=msgs, max_tokens=50, temperature=0)
        assert r.choices[0].message.content == "You said: " + msgs[1]["content"], r
        assert r.choices[0].finish_reason == "stop"
        assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
        assert r.object == "chat.completion"

        text, usage, finish = "", None, None
        stream = client.chat.completions.create(model="fake-model", messages=msgs, stream=True,
                                                stream_options={"include_usage": True})
        for ch in stream:
            if ch.usage:
                usage = ch.usage
            if ch.choices:
                text += ch.choices[0].delta.content or ""
                finish = ch.choices[0].finish_reason or finish
        assert text == "You said: " + msgs[1]["content"], text
        assert finish == "stop" and usage is not None and usage.completion_tokens > 0

        # The fragmented stream (CRLF, comments, events split across writes) parses the same.
        script(ctl, ["fragment"])
        text = "".join(c.choices[0].delta.content or "" for c in
                       client.chat.completions.create(model="fake-model", messages=msgs, stream=True) if c.choices)
        assert text == "You said: " + msgs[1]["content"], text

        expectations = [("429:7", openai.RateLimitError, 429), ("500", openai.InternalServerError, 500),
                        ("401", openai.AuthenticationError, 401), ("400", openai.BadRequestError, 400)]
        for step, exc, status in expectations:
            script(ctl, [step])
            try:
                client.chat.completions.create(model="fake-model", messages=msgs)
                raise AssertionError("step %s did not raise" % step)
            except exc as e:
                assert e.status_code == status, (step, e.status_code)
                assert e.body and "message" in e.body, e.body
                if step.startswith("429"):
                    assert e.response.headers.get("retry-after") == "7"

        # An error event mid-stream reaches the package as an APIError.
        script(ctl, ["error_event"])
        try:
            for _ in client.chat.completions.create(model="fake-model", messages=msgs, stream=True):
                pass
            raise AssertionError("error event did not raise")
        except openai.APIError as e:
            assert "overloaded" in str(e), e

        # A malformed body is not silently accepted.
        script(ctl, ["malformed"])
        try:
            client.chat.completions.create(model="fake-model", messages=msgs)
            raise AssertionError("malformed body did not raise")
        except (openai.APIError, ValueError):
            pass

        models = client.models.list()
        assert [m.id for m in models.data] == ["fake-model"]

        log = ctl.get("/_log", cast_to=object)
        assert all(a == "Bearer sk-test-FAITHFUL" for a in log["auth"]), log["auth"]
        print("fake upstream faithful to openai %s: %d requests" % (openai.__version__, log["count"]))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
