"""A real llama_cpp.server for tests, and a proxy in front of it that can misbehave on cue.

llama_cpp.server neither reads a request's `chat_template_kwargs` (only its own start-up setting) nor
splits a model's thinking off (it streams `<think>…</think>` in the content). The proxy can stand in
for llama-server there: with `template` set, it renders a conversation itself, with the request's
`enable_thinking`, sends the prompt to the server's /v1/completions, and streams the thinking back as
`reasoning_content` deltas, the answer as `content`.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from llmcli.chat.templates import ChatTemplate
from llmcli.reasoning import ThinkMode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(model: Path, port: int, *, api_key: str, n_ctx: int = 1024) -> subprocess.Popen[bytes]:
    """llama_cpp.server on 127.0.0.1:port, once it answers /v1/models."""
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1"),
            *("--port", str(port), "--n_ctx", str(n_ctx), "--api_key", api_key, "--n_threads", "1"),
            # Queue concurrent requests instead of cutting the running answer short (its default).
            *("--interrupt_requests", "False"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/v1/models", headers={"Authorization": f"Bearer {api_key}"})
            if connection.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not come up")


class Proxy(ThreadingHTTPServer):
    """Forwards to upstream; records generation requests; can answer 429, hide endpoints, refuse or drop
    fields, or die."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, upstream: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.bodies: list[dict[str, Any]] = []  # generation requests, as sent
        self.refuse = 0  # answer this many generation requests with 429 first
        self.refused = 0
        self.hidden: tuple[str, ...] = ()  # paths answered with 404
        self.die_after: int | None = None  # generation requests served before dying mid-answer
        self.delay = 0.0  # seconds each generation request waits, as on a busy server
        self.reject: tuple[str, ...] = ()  # fields refused with 400 (naming them), as a strict server does
        self.ignore: tuple[str, ...] = ()  # fields dropped before forwarding, as a lax server ignores them
        self.template: ChatTemplate | None = None  # set: conversations as llama-server has them (above)
        self.prompts: list[str] = []  # in that mode: the prompts rendered, and what the model wrote after
        self.outputs: list[str] = []
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        """Stop serving and release the port."""
        self.shutdown()
        self.server_close()

    def die(self) -> None:
        threading.Thread(target=self.shutdown, daemon=True).start()
        self.socket.close()  # new connections are refused from now on


class _Handler(BaseHTTPRequestHandler):
    server: Proxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._forward(None)

    def do_POST(self) -> None:
        self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _forward(self, body: bytes | None) -> None:
        proxy = self.server
        if self.path in proxy.hidden:
            self.send_error(404)
            return
        generating = self.path.endswith("completions")
        dying = False
        if generating:
            with proxy.lock:
                if proxy.refused < proxy.refuse:
                    proxy.refused += 1
                    self.send_response(429)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "slow down"}}')
                    return
                sent = json.loads(body or b"{}")
                proxy.bodies.append(sent)
                dying = proxy.die_after is not None and len(proxy.bodies) > proxy.die_after
                proxy.in_flight += 1
                proxy.most_in_flight = max(proxy.most_in_flight, proxy.in_flight)
        try:
            if generating:
                time.sleep(proxy.delay)
                if refused := [name for name in proxy.reject if name in sent]:
                    self._answer(400, {"error": {"message": f"Unrecognized request arguments: {refused}"}})
                    return
                if any(name in sent for name in proxy.ignore):
                    sent = {k: v for k, v in sent.items() if k not in proxy.ignore}
                    body = json.dumps(sent).encode()
                if proxy.template is not None and self.path == "/v1/chat/completions":
                    self._like_llama_server(sent, proxy.template)
                    return
            upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream, timeout=60)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")
            }
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                    self.send_header(key, value)
            self.end_headers()
            chunk = response.read1(4096)
            while chunk:
                if dying:  # part of an answer, then gone
                    self.wfile.write(chunk[: len(chunk) // 2])
                    self.wfile.flush()
                    proxy.die()
                    return
                following = response.read1(4096)
                if not following:
                    self._done(generating)  # before the client can see the end of its answer
                    generating = False
                self.wfile.write(chunk)
                self.wfile.flush()
                chunk = following
        finally:
            self._done(generating)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _like_llama_server(self, request: dict[str, Any], template: ChatTemplate) -> None:
        """A streamed conversation the way llama-server answers it (see the module's docstring)."""
        fmt = template.think_format
        assert fmt is not None, "the template's model does not think"
        switch = (request.get("chat_template_kwargs") or {}).get("enable_thinking")
        mode: ThinkMode = "auto" if switch is None else "on" if switch else "off"
        prompt = template.render(request["messages"], think=mode)
        body = {k: v for k, v in request.items() if k not in ("messages", "chat_template_kwargs")}
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
        upstream.request("POST", "/v1/completions", json.dumps({**body, "prompt": prompt}), headers)
        response = upstream.getresponse()
        if response.status != 200:
            self._answer(response.status, json.loads(response.read()))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        # The thinker writes each marker as one token: a marker is a piece of its own.
        thinking, after, written = prompt.rstrip().endswith(fmt.start), False, ""
        for line in response:
            text = line.decode().strip()
            if not text.startswith("data:") or text == "data: [DONE]":
                continue
            event = json.loads(text[5:])
            for choice in event.get("choices") or []:
                piece = choice.get("text") or ""
                written += piece
                if piece in (fmt.start, fmt.end):
                    thinking, after = piece == fmt.start, piece == fmt.end
                    piece = ""
                elif after and not piece.strip():
                    piece = ""  # the blank between the thinking and the answer
                else:
                    after = False
                delta = {"reasoning_content" if thinking else "content": piece} if piece else {}
                choice_out = {"index": 0, "delta": delta, "finish_reason": choice.get("finish_reason")}
                self._event({"object": "chat.completion.chunk", "choices": [choice_out]})
            if event.get("usage"):
                self._event({"object": "chat.completion.chunk", "choices": [], "usage": event["usage"]})
        self.wfile.write(b"data: [DONE]\n\n")
        with self.server.lock:
            self.server.prompts.append(prompt)
            self.server.outputs.append(written)

    def _event(self, data: dict[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()

    def _done(self, generating: bool) -> None:
        if generating:
            with self.server.lock:
                self.server.in_flight -= 1
