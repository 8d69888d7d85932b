"""An OpenAI-compatible server as an engine: llama.cpp's llama-server, vLLM, or llama_cpp.server.

Completions go to `/v1/completions`, conversations to `/v1/chat/completions` (the server applies
its model's own chat template), both streamed as server-sent events. Requests use the standard
library's http.client, one connection per request, so any number of threads can generate at once:
that is how `--parallel N` keeps N requests in flight. A refused connection, 429 and 5xx are
retried with exponential backoff (honouring Retry-After) until the first byte of an answer; an
answer the server breaks off midway is an error, never silently retried, since text was already
shown. Token counts come from the server's tokenizer endpoint, else from a local copy of the model.

Structured output (--schema, --grammar): a JSON Schema goes as OpenAI's `response_format` (json_schema),
which llama-server and vLLM read on conversations and vLLM on completions too, with llama.cpp's
`grammar` beside it on completions (llama-server and llama_cpp.server read that there, and ignore the
other); a conversation whose server refuses `response_format` (llama_cpp.server) is sent the grammar
instead. A bare grammar goes as `grammar` and as vLLM's `structured_outputs.grammar`. A constraint is
never dropped: a server that refuses it by name fails the command with a one-line error.

Thinking models: a conversation carries the server's thinking switch (`chat_template_kwargs`, read
by llama-server and vLLM; `reasoning_effort` for gpt-oss) and, with --reasoning-budget, its budget
fields. Thinking the server splits off (`reasoning_content`, vLLM's newer `reasoning`) becomes
`Thought` pieces; thinking left in the text is split off here, so it never lands in the answer.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llmcli.engine.contract import Capabilities, Generation, Pieces, Unsupported
from llmcli.engine.vocabulary import Vocabulary
from llmcli.errors import BackendError, ContextOverflowError, GenerationError, UsageError
from llmcli.reasoning import ThinkPlan, Thought, ThoughtSplitter
from llmcli.sampling import SamplingConfig
from llmcli.structured import Schema

DEFAULT_REMOTE_CTX = 4096  # when the server does not say and --ctx is not given
CONNECT_TIMEOUT = 10.0
RETRIES = 5
BACKOFF = 0.5  # seconds before the first retry, doubling
MAX_WAIT = 30.0
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Fields outside OpenAI's API (or, for reasoning_effort, refused for models that do not reason). A server
# that refuses one by name gets the request again without it, and never again.
EXTENSIONS = (
    # sampling: llama-server, vLLM and llama_cpp.server take them
    "top_k",
    "min_p",
    "repeat_penalty",
    "repetition_penalty",
    "ignore_eos",
    # thinking (conversations only): the template's switch, which llama-server and vLLM pass to the chat
    # template; gpt-oss's effort; the per-request budget of llama-server and of vLLM (which refuses it
    # unless started with a reasoning config)
    "chat_template_kwargs",
    "reasoning_effort",
    "thinking_budget_tokens",
    "thinking_token_budget",
)
REFUSALS = frozenset({400, 422, 500})  # the statuses a server refuses an unknown or unusable field with
# Fields that carry --schema/--grammar (see the module's docstring); never dropped, unlike EXTENSIONS.
CONSTRAINTS = ("response_format", "grammar", "structured_outputs")


@dataclass(frozen=True)
class BackendOptions:
    """Where the server is and how to talk to it."""

    url: str
    api_key: str | None = None
    model: str | None = None  # the server's name for the model; default: its only (or first) one
    timeout: float = 600.0  # seconds to wait for an answer to start, and between its pieces
    n_ctx: int | None = None  # the context per request, when the server does not report it
    parallel: int = 1  # requests kept in flight by batch commands
    retries: int = RETRIES


class ConstraintRefused(UsageError):
    """A server that cannot constrain its output as --schema or --grammar asks: every request would fail."""

    stops_batch = True


class _Refused(BackendError):
    """An HTTP error answer: status and the server's message (RemoteEngine turns it into a clearer one)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"the server answered {status}: {message}")
        self.status, self.reason, self.retry_after = status, message, retry_after


def _message(raw: bytes) -> str:
    """The human part of an error body (OpenAI's {"error": {"message"}}, FastAPI's {"detail"})."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data))
        if isinstance(error, dict):
            return str(error.get("message") or error)[:300]
        return str(error)[:300]
    return text[:300]


class _Http:
    """JSON and event-stream requests to one server, with retries."""

    def __init__(self, options: BackendOptions, sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urlsplit(options.url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"--backend must be an http(s) URL, got {options.url!r}", hint="e.g. http://127.0.0.1:8080"
            )
        self.url = options.url.rstrip("/")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        base = parts.path.rstrip("/")
        self.base = base[: -len("/v1")] if base.endswith("/v1") else base
        self.options = options
        self._sleep = sleep

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=CONNECT_TIMEOUT)

    def _open(self, method: str, path: str, body: dict[str, Any] | None) -> http.client.HTTPResponse:
        """One attempt: the response once its status is 2xx, else _Refused or an OSError."""
        headers = {"Accept": "application/json, text/event-stream"}
        if self.options.api_key:
            headers["Authorization"] = f"Bearer {self.options.api_key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        connection = self._connect()
        try:
            connection.request(method, self.base + path, body=data, headers=headers)
            if connection.sock is not None:
                connection.sock.settimeout(self.options.timeout)
            response = connection.getresponse()
        except BaseException:
            connection.close()
            raise
        if response.status >= 300:
            raw = response.read()
            connection.close()
            retry_after = response.getheader("Retry-After")
            try:
                wait = float(retry_after) if retry_after else None
            except ValueError:
                wait = None
            raise _Refused(response.status, _message(raw), wait)
        return response

    def open(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        retries: int | None = None,
        fields: Collection[str] = (),
    ) -> http.client.HTTPResponse:
        """A 2xx response, retrying refused connections, 429 and 5xx with backoff; a refusal that names
        one of fields (llama_cpp.server refuses a field it cannot read with a 500) is no passing fault."""
        retries = self.options.retries if retries is None else retries
        delay = BACKOFF
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                return self._open(method, path, body)
            except _Refused as refused:
                if refused.status not in RETRY_STATUSES or last or _names(refused, fields):
                    raise
                wait = refused.retry_after if refused.retry_after is not None else delay
            except (OSError, http.client.HTTPException) as exc:
                if last:
                    raise BackendError(
                        f"cannot reach the server at {self.url}: {_reason(exc)}",
                        hint="check that it is running and that --backend names it; finished work is "
                        "kept, so run the command again to continue",
                    ) from None
                wait = delay
            self._sleep(min(wait, MAX_WAIT))
            delay *= 2
        raise AssertionError("unreachable")

    def json(
        self, method: str, path: str, body: dict[str, Any] | None = None, retries: int | None = None
    ) -> Any:
        response = self.open(method, path, body, retries)
        try:
            return json.loads(response.read())
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise BackendError(f"the server at {self.url} sent a bad answer to {path}: {exc}") from None
        finally:
            response.close()

    def events(
        self, path: str, body: dict[str, Any], fields: Collection[str] = ()
    ) -> Iterator[dict[str, Any]]:
        """The data objects of a server-sent event stream, until [DONE] or its end (fields: see open)."""
        response = self.open("POST", path, body, fields=fields)
        try:
            if "text/event-stream" not in (response.getheader("Content-Type") or ""):
                yield json.loads(response.read())  # a server that ignored "stream": one JSON answer
                return
            data: list[str] = []
            while True:
                line = response.readline()
                if not line:
                    break
                text = line.decode("utf-8").rstrip("\r\n")
                if text.startswith("data:"):
                    data.append(text[5:].removeprefix(" "))
                elif not text and data:
                    payload, data = "\n".join(data), []
                    if payload == "[DONE]":
                        return
                    yield json.loads(payload)
            # An event without its closing blank line was cut off: the caller sees no finish reason.
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise BackendError(
                f"the server at {self.url} broke off the answer: {_reason(exc)}",
                hint="run the command again (a batch continues where it stopped)",
            ) from None
        finally:
            response.close()


def _names(refused: _Refused, fields: Collection[str]) -> list[str]:
    """Those of fields that a refusal names: a server that cannot use a field says which."""
    if refused.status not in REFUSALS:
        return []
    return [name for name in fields if name in refused.reason]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    return str(exc) or type(exc).__name__


def _ctx_of(model: dict[str, Any]) -> int | None:
    """The context a server reports for a model in /v1/models (vLLM: max_model_len)."""
    value = model.get("max_model_len")
    return int(value) if isinstance(value, int) and value > 0 else None


class RemoteEngine:
    """Generation on an OpenAI-compatible server; safe to use from several threads at once.

    Capabilities: conversations go as messages, for the server's own chat template; `parallel`
    requests in flight at once. Speculation is the server's business (generate ignores lookup, which
    never changes the output), and the server's logits are not ours to score.
    """

    def __init__(
        self,
        options: BackendOptions,
        local_copy: Path | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.options = options
        self.http = _Http(options, sleep)
        self._local_copy = local_copy  # the model's GGUF here: its tokenizer, if the server has none
        self._vocabulary: Vocabulary | None = None  # loaded only then
        self._tokenizer: str | None = None  # which tokenize endpoint works: probed on first use
        self._bos: list[int] | None = None
        self._lock = threading.Lock()
        self._dropped: frozenset[str] = frozenset()  # extension fields this server refused
        self._schema_as_grammar = False  # conversations: this server refused response_format
        self.capabilities = Capabilities(messages=True, parallel=options.parallel)
        # Documents and their chunks all generate from their own threads: at most N on the wire.
        self._slots = threading.BoundedSemaphore(options.parallel)
        try:
            # One retry only: a server that is not up when the command starts is a mistyped URL or
            # a server still loading, and the user should hear so at once.
            listed = self.http.json("GET", "/v1/models", retries=1).get("data") or []
        except _Refused as refused:
            raise self._error(refused, "/v1/models") from None
        models = [m for m in listed if isinstance(m, dict) and m.get("id")]
        self.name = self._pick(options.model, [str(m["id"]) for m in models])
        chosen = next((m for m in models if m["id"] == self.name), {})
        self.n_ctx = options.n_ctx or _ctx_of(chosen) or self._props_ctx() or DEFAULT_REMOTE_CTX

    @property
    def takes_messages(self) -> bool:
        return self.capabilities.messages

    def kv_cache_bytes(self, n_ctx: int) -> int | None:
        """None: the server's KV cache is its own."""
        return None

    def _pick(self, wanted: str | None, ids: list[str]) -> str:
        if wanted and (wanted in ids or not ids):
            return wanted
        if len(ids) == 1 or (ids and not wanted):
            return ids[0]
        if not ids:
            raise UsageError(f"the server at {self.http.url} lists no models", hint="pass -m NAME")
        raise UsageError(
            f"the server at {self.http.url} has no model {wanted!r}", hint=f"it has: {', '.join(ids)}"
        )

    def _props_ctx(self) -> int | None:
        """llama-server reports each slot's context under /props."""
        try:
            props = self.http.json("GET", "/props")
        except (_Refused, BackendError):
            return None
        settings = props.get("default_generation_settings") if isinstance(props, dict) else None
        value = settings.get("n_ctx") if isinstance(settings, dict) else None
        return int(value) if isinstance(value, int) and value > 0 else None

    def _error(self, refused: _Refused, path: str) -> Exception:
        """The user-facing error for an HTTP error answer."""
        where = f"the server at {self.http.url}"
        if refused.status in (401, 403):
            return BackendError(
                f"{where} refused the API key ({refused.status}: {refused.reason})",
                hint="set LLMCLI_API_KEY (or api_key in the config file) to the server's key",
            )
        if refused.status == 404 and path.startswith("/v1"):
            return BackendError(
                f"{where} has no {path} ({refused.reason})",
                hint="--backend should be the server's root URL, e.g. http://127.0.0.1:8080",
            )
        lowered = refused.reason.lower()
        if "context" in lowered and ("length" in lowered or "exceed" in lowered or "size" in lowered):
            return ContextOverflowError(
                f"{where}: {refused.reason}", hint="shorten the input, or raise the server's context"
            )
        if refused.status in RETRY_STATUSES:
            return BackendError(
                f"{where} kept failing ({refused.status}: {refused.reason})",
                hint="check the server's log; finished work is kept, so run the command again to continue",
            )
        return GenerationError(f"{where} refused the request ({refused.status}: {refused.reason})")

    def _call(self, path: str, body: dict[str, Any]) -> Any:
        try:
            return self.http.json("POST", path, body)
        except _Refused as refused:
            raise self._error(refused, path) from None

    # --- tokens

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Tokens of text by the server's tokenizer (or the local copy's, when it has none)."""
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    self._tokenizer = self._probe_tokenizer()
        if self._tokenizer == "local":
            assert self._vocabulary is not None
            return self._vocabulary.tokenize(text, add_special=add_special, parse_special=parse_special)
        if self._tokenizer == "/tokenize":
            body = {
                "content": text,  # llama-server
                "prompt": text,  # vLLM
                "model": self.name,
                "add_special": add_special,
                "add_special_tokens": add_special,
                "parse_special": parse_special,
            }
            return list(self._call("/tokenize", body)["tokens"])
        # llama_cpp.server always adds BOS (and parses special tokens): drop it when not asked for.
        tokens = list(self._call("/extras/tokenize", {"input": text, "model": self.name})["tokens"])
        if not add_special:
            if self._bos is None:
                self._bos = list(self._call("/extras/tokenize", {"input": "", "model": self.name})["tokens"])
            if self._bos and tokens[: len(self._bos)] == self._bos:
                tokens = tokens[len(self._bos) :]
        return tokens

    def _probe_tokenizer(self) -> str:
        for path, body in (
            ("/tokenize", {"content": "a", "prompt": "a", "model": self.name}),
            ("/extras/tokenize", {"input": "a", "model": self.name}),
        ):
            try:
                answer = self.http.json("POST", path, body)
            except _Refused as refused:
                if refused.status in (401, 403):
                    raise self._error(refused, path) from None
                continue
            if isinstance(answer, dict) and isinstance(answer.get("tokens"), list):
                return path
        if self._local_copy is not None:
            self._vocabulary = Vocabulary.load(self._local_copy)
            return "local"
        raise UsageError(
            f"the server at {self.http.url} cannot count tokens (no /tokenize), which splitting "
            "long inputs needs",
            hint="pass -m with a local copy of the server's model (a GGUF); only its tokenizer is used",
        )

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of tokens."""
        if self._vocabulary is not None:  # the server has no tokenizer endpoints
            return self._vocabulary.detokenize(tokens)
        for path in ("/detokenize", "/extras/detokenize"):
            try:
                answer = self.http.json("POST", path, {"tokens": list(tokens), "model": self.name})
            except _Refused:
                continue
            return str(answer.get("content", answer.get("prompt", answer.get("text", ""))))
        raise UsageError(f"the server at {self.http.url} cannot turn tokens into text")

    def token_bytes(self, token: int, special: bool = False) -> bytes:
        """The bytes of one token."""
        if self._vocabulary is not None:
            return self._vocabulary.token_bytes(token, special)
        return self.detokenize([token]).encode("utf-8")

    # --- generation

    def generate(
        self, prompt: str | Sequence[int], sampling: SamplingConfig, *, lookup: int = 0
    ) -> Generation:
        """Continue prompt on the server (/v1/completions). lookup is ignored: speculation is the
        server's business (capabilities.speculation is False), and it never changes the output."""
        text = prompt if isinstance(prompt, str) else self.detokenize(prompt)
        if not text:
            raise UsageError("the prompt is empty")
        return self._start("/v1/completions", {"prompt": text}, sampling)

    def chat(self, messages: list[dict[str, str]], sampling: SamplingConfig) -> Generation:
        """Answer a conversation on the server (/v1/chat/completions, the model's own template)."""
        return self._start("/v1/chat/completions", {"messages": messages}, sampling)

    def window_logits(self, tokens: Sequence[int], first: int) -> Iterator[tuple[int, Any]]:
        """Unsupported: a server does not hand out its logits (capabilities.scoring is False)."""
        raise Unsupported(
            f"the server at {self.http.url} cannot score text", hint="run the model here, without --backend"
        )

    def _body(self, sampling: SamplingConfig, *, chat: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.name,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "seed": sampling.seed,
            "max_tokens": sampling.max_tokens,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        # Always sent: servers' own defaults differ (llama_cpp.server: top-k 40, repeat penalty 1.1).
        body.update(top_k=sampling.top_k, min_p=sampling.min_p, repeat_penalty=sampling.repeat_penalty)
        if sampling.repeat_penalty != 1.0:
            body["repetition_penalty"] = sampling.repeat_penalty  # vLLM's name
        if sampling.ignore_eos:
            body["ignore_eos"] = True
        if chat and sampling.think is not None:
            body.update(_think_fields(sampling.think))
        body = {k: v for k, v in body.items() if k not in self._dropped}
        if sampling.constraint is not None:
            body.update(
                _constraint_fields(sampling.constraint, chat=chat, as_grammar=self._schema_as_grammar)
            )
        return body

    def _start(self, path: str, payload: dict[str, Any], sampling: SamplingConfig) -> Generation:
        return Generation(sampling.resolved(), lambda gen: self._stream(path, payload, gen))

    def _events(
        self, path: str, sampling: SamplingConfig, payload: dict[str, Any]
    ) -> tuple[Iterator[dict[str, Any]], dict[str, Any] | None]:
        """The event stream of a request and its first event; a strict server that refuses extension
        fields by name gets the request again without them. A refused constraint is never dropped:
        a conversation's schema goes once more as a grammar, else the command fails."""
        chat = path.endswith("/chat/completions")
        first: _Refused | None = None  # the refusal of response_format, when the grammar is tried next
        while True:
            sent = {**self._body(sampling, chat=chat), **payload}
            fields = [name for name in (*CONSTRAINTS, *EXTENSIONS) if name in sent]
            events = self.http.events(path, sent, fields)
            try:
                return events, next(events, None)
            except _Refused as refused:
                if constraint := _names(refused, [name for name in CONSTRAINTS if name in sent]):
                    if "response_format" in constraint and chat and first is None:
                        self._schema_as_grammar, first = True, refused  # and for later requests
                        continue
                    assert sampling.constraint is not None
                    named = ["response_format", *constraint] if first is not None else constraint
                    raise self._refused_constraint(sampling.constraint, first or refused, named) from None
                refused_fields = frozenset(_names(refused, [name for name in EXTENSIONS if name in sent]))
                if not refused_fields:
                    raise self._error(refused, path) from None
                self._dropped |= refused_fields

    def _refused_constraint(
        self, constraint: Schema, refused: _Refused, fields: list[str]
    ) -> ConstraintRefused:
        """The error for a server that refused the fields a constraint went in (with its first reason)."""
        what = "GBNF grammars" if constraint.schema is None else "JSON schemas"
        reason = " ".join(refused.reason.split())
        reason = reason if len(reason) <= 160 else reason[:159] + "…"
        return ConstraintRefused(
            f"the server at {self.http.url} does not take {what}: it refused {' and '.join(fields)} "
            f"({refused.status}: {reason})",
            hint="run the model on llama-server or vLLM, which do, or here without --backend",
        )

    def _stream(self, path: str, payload: dict[str, Any], gen: Generation) -> Pieces:
        stats, sampling = gen.stats, gen.sampling
        chat = path.endswith("/chat/completions")
        plan = sampling.think
        # A completion under `auto` may come from a model that does not think: its text stays exact.
        thinking = ServerThinking(plan, exact=not chat and plan.mode == "auto") if plan is not None else None
        first = last = 0.0
        pieces = 0  # text pieces received, over all requests: a server streams about one per token
        generated = used = 0  # tokens generated by the requests before this one, and by this one
        reasoning: int | None = None  # thinking tokens, where the server's usage counts them
        prompt_tokens = 0
        events: Iterator[dict[str, Any]] = _no_events()  # closeable, should the first request fail
        overrides: dict[str, Any] | None = {}
        self._slots.acquire()
        start = time.perf_counter()
        try:
            while overrides is not None:
                extra, overrides = overrides, None
                events, event = self._events(path, sampling, {**payload, **extra})
                while event is not None:
                    if "error" in event:
                        error = event["error"]
                        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
                        status = error.get("code", 500) if isinstance(error, dict) else 500
                        raise self._error(_Refused(status if isinstance(status, int) else 500, message), path)
                    if usage := event.get("usage"):
                        prompt_tokens = prompt_tokens or int(usage.get("prompt_tokens") or 0)
                        used = int(usage.get("completion_tokens") or used)
                        details = usage.get("completion_tokens_details")
                        if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
                            reasoning = (reasoning or 0) + details["reasoning_tokens"]
                    for choice in event.get("choices") or []:
                        delta = choice.get("delta") or choice.get("message") or {}
                        text = choice.get("text")
                        if text is None:
                            text = delta.get("content")
                        thought = delta.get("reasoning_content") or delta.get("reasoning")
                        if text or thought:
                            last = time.perf_counter()
                            if not pieces:
                                first = last
                                stats.ttft_ms = (first - start) * 1000
                            pieces += 1
                            if not usage:
                                used += 1
                        if thought:
                            yield from thinking.reasoning(thought) if thinking else [Thought(thought)]
                        if text:
                            yield from thinking.content(text) if thinking else [text]
                        if reason := choice.get("finish_reason"):
                            gen.finish_reason = "stop" if reason == "stop" else "length"
                    if not chat and thinking is not None and gen.finish_reason is None and thinking.spent():
                        # The budget ran out mid-thought: end the request, and continue the prompt with
                        # the thinking so far closed (a raw prompt is the client's to extend).
                        left = None if sampling.max_tokens is None else sampling.max_tokens - generated - used
                        if left is None or left > 0:
                            said, held = thinking.close()
                            yield from held
                            overrides = {"prompt": payload["prompt"] + said, "max_tokens": left}
                            break
                    event = next(events, None)
                events.close()  # type: ignore[attr-defined]  # hangs up, so the server stops generating
                generated, used = generated + used, 0
            if thinking is not None:
                yield from thinking.finish()
            if gen.finish_reason is None:
                raise self._cut_short()
        except _Refused as refused:
            raise self._error(refused, path) from None
        finally:
            events.close()  # type: ignore[attr-defined]
            self._slots.release()
            stats.prompt_tokens = prompt_tokens or stats.prompt_tokens
            stats.generated_tokens = generated + used or pieces
            if thinking is not None:
                stats.reasoning_tokens = thinking.tokens if reasoning is None else reasoning
            elif reasoning is not None:
                stats.reasoning_tokens = reasoning
            if gen.finish_reason == "length" and (
                sampling.max_tokens is None or stats.generated_tokens < sampling.max_tokens
            ):
                gen.finish_reason = "context"
            stats.prompt_ms = stats.ttft_ms
            stats.decode_ms = (last - first) * 1000
            stats.total_ms = (time.perf_counter() - start) * 1000

    def _cut_short(self) -> Exception:
        """The error for a stream that ended without a finish reason: the server died, or refused."""
        try:
            self.http.json("GET", "/v1/models", retries=0)
        except BackendError:
            return BackendError(
                f"the server at {self.http.url} went away in the middle of an answer",
                hint="restart it; finished work is kept, so run the command again to continue",
            )
        return GenerationError(
            f"the server at {self.http.url} ended the answer without finishing it (a prompt longer "
            "than its context?)",
            hint="its log says why; --ctx tells llmcli the server's context when it does not report it",
        )

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the local tokenizer, if any (connections close after each request)."""
        if self._vocabulary is not None:
            self._vocabulary.close()


def _constraint_fields(constraint: Schema, *, chat: bool, as_grammar: bool) -> dict[str, Any]:
    """What a request carries for --schema/--grammar (see the module's docstring). llama-server takes
    `grammar` or a schema, not both, in one request; each server ignores the fields it does not know."""
    grammar = constraint.grammar
    if constraint.schema is None:
        return {"grammar": grammar, "structured_outputs": {"grammar": grammar}}
    if chat and as_grammar:
        return {"grammar": grammar}
    schema = {"name": "record", "schema": constraint.schema, "strict": True}
    fields: dict[str, Any] = {"response_format": {"type": "json_schema", "json_schema": schema}}
    if not chat:
        fields["grammar"] = grammar  # llama.cpp's servers do not read response_format on completions
    return fields


def _think_fields(plan: ThinkPlan) -> dict[str, Any]:
    """What a conversation's request carries for a thinking plan: the template's switch (llama-server and
    vLLM hand chat_template_kwargs to the chat template; gpt-oss's has no "off", so the least effort) and
    the budget under llama-server's and vLLM's names. `auto` sends nothing: the server's default."""
    fields: dict[str, Any] = {}
    if plan.mode == "off":
        fields["chat_template_kwargs"] = {"enable_thinking": False, "reasoning_effort": "low"}
        fields["reasoning_effort"] = "low"
    elif plan.mode == "on":
        fields["chat_template_kwargs"] = {"enable_thinking": True}
    if plan.budget is not None and plan.mode != "off":
        fields["thinking_budget_tokens"] = fields["thinking_token_budget"] = plan.budget
    return fields


class ServerThinking:
    """A thinking plan applied to what a server sends: the thinking apart from the answer, within the budget.

    The server's own split (reasoning deltas) is taken as it is; text is split here, so a server that
    leaves the markers in never puts thinking in the answer. The budget counts thinking pieces (servers
    stream about one per token); thinking past it is dropped, where the request could not be ended
    in time (see RemoteEngine.generate). `off` budgets none, for a server that thinks anyway.

    exact: a text that does not start with thinking comes out exactly as sent (the splitter drops the
    blank before an answer), for a completion whose model may not think at all.
    """

    def __init__(self, plan: ThinkPlan, *, exact: bool = False) -> None:
        self.format = plan.format
        self.split = ThoughtSplitter(plan.format, thinking=plan.open)
        self.budget = 0 if plan.mode == "off" else plan.budget
        self.exact = exact
        self.tokens = 0  # thinking pieces received
        self.raw = ""  # the text of the current request as sent, markers and all
        self._started = False  # whether any piece came out

    def reasoning(self, text: str) -> list[str]:
        """A piece of thinking the server split off."""
        self.tokens += 1
        return self._within([Thought(text)])

    def content(self, text: str) -> list[str]:
        """A piece of text, which may hold thinking and its markers."""
        self.raw += text
        pieces = self.split.feed(text)
        if any(isinstance(p, Thought) for p in pieces):
            self.tokens += 1
        elif self.exact and pieces and not self._started:
            pieces[0] = self.raw[: len(self.raw) - len(self.raw.lstrip())] + pieces[0]
        self._started = self._started or bool(pieces)
        return self._within(pieces)

    def spent(self) -> bool:
        """Whether the text is inside a thinking block that has had its budget."""
        return self.budget is not None and self.split.thinking and self.tokens >= self.budget

    def close(self) -> tuple[str, list[str]]:
        """End the thinking now: the text to continue the prompt with, and the pieces that were held."""
        said, self.raw = self.raw + self.format.forced_end, ""
        return said, self._within(self.split.feed(self.format.forced_end))

    def finish(self) -> list[str]:
        if self.exact and not self._started and self.split.state == "before":
            return [self.raw] if self.raw else []  # blank text, all of it held
        return self._within(self.split.finish())

    def _within(self, pieces: list[str]) -> list[str]:
        if self.budget is None or self.tokens <= self.budget:
            return pieces
        return [p for p in pieces if not isinstance(p, Thought)]


def _no_events() -> Iterator[dict[str, Any]]:
    """An empty stream of events that can be closed like a real one."""
    yield from ()
