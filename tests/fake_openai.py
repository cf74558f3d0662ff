#!/usr/bin/env python3
"""A fake OpenAI-compatible upstream for tests, on loopback.

Starts on a free port and prints "PORT <n>" on stdout. POST .../chat/completions
answers according to a script of behaviours, one step per request (then the
default behaviour):

  ok             normal answer ("You said: " + the last user message), plain or SSE
  slow:MS        like ok, MS milliseconds before each streamed chunk (or the answer)
  delay:MS       wait MS, then answer like ok (for request-collapsing tests)
  fragment       SSE written a few bytes at a time, CRLF line ends, comments
  429[:SECONDS]  rate limited, with Retry-After: SECONDS if given
  500 / 503      server error
  401            authentication error that echoes the bearer token, as OpenAI does
  400            invalid request
  malformed      200 with a body that is not JSON
  badevent       SSE whose second event is not JSON
  error_event    SSE with one chunk, then an error event
  cut            SSE with two chunks, then the connection is closed (no [DONE])
  hang           read the request and never answer (until the server stops)
  gate           wait until POST /_release, then answer like ok

Control: POST /_script {"steps": [...], "default": "ok"}; GET /_log returns
{"count": n, "requests": [request bodies], "auth": [Authorization headers]};
POST /_reset clears both. Exits when its parent process goes away.
"""
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE_LOCK = threading.Lock()
STATE = {"steps": [], "default": "ok", "log": [], "auth": []}
STOP = threading.Event()
GATE = threading.Event()


def next_step():
    with STATE_LOCK:
        if STATE["steps"]:
            return STATE["steps"].pop(0)
        return STATE["default"]


def answer_for(body):
    last = ""
    for m in body.get("messages", []):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            last = m["content"]
    return "You said: " + last


def chunks_of(text, n=4):
    return [text[i:i + n] for i in range(0, len(text), n)] or [""]


def prompt_tokens(body):
    chars = sum(len(m.get("content") or "") for m in body.get("messages", []))
    return chars // 4 + 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1.0"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    # ---- helpers ----
    def send_json(self, status, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def send_error_json(self, status, message, etype, code=None, headers=None):
        self.send_json(status, {"error": {"message": message, "type": etype, "param": None, "code": code}},
                       headers)

    def start_sse(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data):
        if not data:
            return
        self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
        self.wfile.flush()

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def cut(self):
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True

    # ---- routes ----
    def do_GET(self):
        if self.path == "/_log":
            with STATE_LOCK:
                self.send_json(200, {"count": len(STATE["log"]), "requests": list(STATE["log"]),
                                     "auth": list(STATE["auth"])})
        elif self.path.endswith("/models"):
            self.send_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model",
                                                              "created": 0, "owned_by": "fake"}]})
        else:
            self.send_error_json(404, "no route " + self.path, "invalid_request_error")

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_POST(self):
        raw = self.read_body()
        if self.path == "/_script":
            cfg = json.loads(raw or b"{}")
            with STATE_LOCK:
                STATE["steps"] = list(cfg.get("steps", []))
                STATE["default"] = cfg.get("default", "ok")
            GATE.clear()
            return self.send_json(200, {"ok": True})
        if self.path == "/_release":
            GATE.set()
            return self.send_json(200, {"ok": True})
        if self.path == "/_reset":
            with STATE_LOCK:
                STATE.update(steps=[], default="ok", log=[], auth=[])
            return self.send_json(200, {"ok": True})
        if not self.path.endswith("/chat/completions"):
            return self.send_error_json(404, "no route " + self.path, "invalid_request_error")
        try:
            body = json.loads(raw)
        except ValueError as e:
            return self.send_error_json(400, "request body is not JSON: %s" % e, "invalid_request_error")
        with STATE_LOCK:
            STATE["log"].append(body)
            STATE["auth"].append(self.headers.get("Authorization"))
        if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
            return self.send_error_json(400, "'model' and 'messages' are required", "invalid_request_error")
        try:
            self.behave(next_step(), body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer

    def behave(self, step, body):
        name, _, arg = step.partition(":")
        stream = bool(body.get("stream"))
        if name == "429":
            headers = {"Retry-After": arg} if arg else {}
            return self.send_error_json(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded",
                                        headers)
        if name in ("500", "503"):
            return self.send_error_json(int(name), "The server had an error while processing your request.",
                                        "server_error")
        if name == "401":
            auth = self.headers.get("Authorization") or ""
            key = auth[7:] if auth.startswith("Bearer ") else auth
            return self.send_error_json(401, "Incorrect API key provided: %s." % key, "invalid_request_error",
                                        "invalid_api_key")
        if name == "400":
            return self.send_error_json(400, "Invalid request for this fake", "invalid_request_error")
        if name == "malformed":
            data = b'{"id": "chatcmpl-x", "choices": [ {"message": '
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if name == "hang":
            STOP.wait(60)
            return self.cut()
        if name == "gate":
            GATE.wait(60)
            name = "ok"
        if name == "delay":
            time.sleep(int(arg) / 1000.0)
            name = "ok"
        delay = int(arg) / 1000.0 if name == "slow" else 0.0
        if not stream:
            if delay:
                time.sleep(delay)
            return self.send_completion(body)
        self.send_stream(body, name, delay)

    def send_completion(self, body):
        text = answer_for(body)
        out = len(chunks_of(text))
        self.send_json(200, {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"], "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens(body), "completion_tokens": out,
                      "total_tokens": prompt_tokens(body) + out},
        })

    def send_stream(self, body, mode, delay):
        text = answer_for(body)
        parts = chunks_of(text)
        created = int(time.time())

        def chunk(delta, finish=None):
            return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                    "model": body["model"], "system_fingerprint": "fp_fake",
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": p}) for p in parts]
        events.append(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                           "model": body["model"], "choices": [],
                           "usage": {"prompt_tokens": prompt_tokens(body), "completion_tokens": len(parts),
                                     "total_tokens": prompt_tokens(body) + len(parts)}})
        self.start_sse()
        eol = "\r\n" if mode == "fragment" else "\n"
        for i, ev in enumerate(events):
            if mode == "cut" and i == 3:
                return self.cut()
            if mode == "error_event" and i == 2:
                err = {"error": {"message": "The model overloaded mid-answer", "type": "server_error"}}
                self.write_chunk(("data: " + json.dumps(err) + eol + eol).encode())
                return self.end_chunks()
            if mode == "badevent" and i == 2:
                self.write_chunk(b"data: {not json" + (eol + eol).encode())
                continue
            if delay:
                time.sleep(delay)
            payload = ("data: " + json.dumps(ev) + eol + eol).encode()
            if mode == "fragment":
                self.write_chunk((": keep-alive" + eol).encode())
                for j in range(0, len(payload), 3):  # split inside fields, CRLF pairs and UTF-8 sequences
                    self.write_chunk(payload[j:j + 3])
            else:
                self.write_chunk(payload)
        self.write_chunk(("data: [DONE]" + eol + eol).encode())
        self.end_chunks()


def watch_parent(ppid):
    while True:
        if os.getppid() != ppid:
            os._exit(0)
        time.sleep(0.5)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        STOP.set()


if __name__ == "__main__":
    sys.exit(main())
