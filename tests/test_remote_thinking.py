"""--backend with a thinking model: the server's switch, its split (or ours), and the budget.

A real llama_cpp.server runs the Qwen3 thinker (tests/thinkers.py), which thinks "Hmm let me see now"
and answers "Paris." when its prompt lets it think, and answers at once when it does not. That server
ignores `chat_template_kwargs` and leaves `<think>…</think>` in the text; the proxy's llama-server mode
(tests/backend_proxy.py) honours the switch and sends the thinking as `reasoning_content`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator

import pytest
from backend_proxy import Proxy, free_port, start_server
from thinkers import QUESTION, Thinker, write_thinker
from tinymodel import VOCABS

from llmcli.engine import Vocabulary
from llmcli.engine.remote import ServerThinking
from llmcli.reasoning import THINK, ThinkPlan, Thought

Run = Callable[..., subprocess.CompletedProcess[str]]
KEY = "test-key"
WITH_KEY = {"LLMCLI_API_KEY": KEY}
THOUGHT, ANSWER = "Hmm let me see now", "Paris."


@pytest.fixture(scope="module")
def thinker(tmp_path_factory: pytest.TempPathFactory) -> Thinker:
    base = Vocabulary.load(VOCABS / "ggml-vocab-qwen2.gguf")
    try:
        return write_thinker(tmp_path_factory.mktemp("thinkers"), "Qwen-Qwen3-0.6B", base)
    finally:
        base.close()


@pytest.fixture(scope="module")
def server(thinker: Thinker) -> Iterator[int]:
    port = free_port()
    proc = start_server(thinker.path, port, api_key=KEY)
    yield port
    proc.kill()
    proc.wait()


@pytest.fixture(params=["llama_cpp.server", "llama-server"])
def proxy(request: pytest.FixtureRequest, server: int, thinker: Thinker) -> Iterator[Proxy]:
    """The server as it is (thinking left in the text), or as llama-server (switch honoured, split)."""
    front = Proxy(server)
    if request.param == "llama-server":
        front.template = thinker.template
    yield front
    front.close()


def ask(run_cli: Run, url: str, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """One message through chat, and the saved exchange's answer."""
    result = run_cli(
        "chat",
        "--backend",
        url,
        "--greedy",
        "-n",
        "30",
        "--session",
        "s",
        *args,
        input=QUESTION[0]["content"] + "\n",
        env=WITH_KEY,
    )
    assert result.returncode == 0, result.stderr
    exported = run_cli("sessions", "export", "s", "--format", "json")
    assert exported.returncode == 0, exported.stderr
    return result, json.loads(exported.stdout)["messages"][-1]


def test_think_off_sends_the_switch_and_never_shows_thinking(run_cli: Run, proxy: Proxy) -> None:
    result, answer = ask(run_cli, proxy.url, "--think", "off")
    assert result.stdout == ANSWER + "\n"
    assert "Hmm" not in result.stdout + result.stderr + json.dumps(answer)
    sent = proxy.bodies[0]
    assert sent["chat_template_kwargs"]["enable_thinking"] is False and sent["reasoning_effort"] == "low"
    assert "thinking_budget_tokens" not in sent
    if proxy.template is not None:  # the switch reached the template: the model did not think at all
        assert proxy.prompts[0].endswith("<think>\n\n</think>\n\n") and proxy.outputs == [" Paris."]
    # (llama_cpp.server ignores the switch: the model thought, and the thinking was dropped)


def test_think_on_answers_on_stdout_and_keeps_the_thinking_apart(run_cli: Run, proxy: Proxy) -> None:
    result, answer = ask(run_cli, proxy.url, "--think", "on")
    assert result.stdout == ANSWER + "\n"
    assert answer["content"] == ANSWER and answer["reasoning_content"] == THOUGHT
    assert proxy.bodies[0]["chat_template_kwargs"] == {"enable_thinking": True}
    if proxy.template is not None:
        assert proxy.outputs[0].startswith("<think>Hmm")


def test_a_reasoning_budget_in_chat(run_cli: Run, proxy: Proxy) -> None:
    result, answer = ask(run_cli, proxy.url, "--think", "on", "--reasoning-budget", "3")
    assert result.stdout == ANSWER + "\n"
    assert answer["reasoning_content"] == "Hmm let me"  # the rest was dropped: neither server takes a budget
    sent = proxy.bodies[0]
    assert sent["thinking_budget_tokens"] == 3 and sent["thinking_token_budget"] == 3


def test_auto_sends_no_switch(run_cli: Run, proxy: Proxy) -> None:
    result, answer = ask(run_cli, proxy.url)
    assert result.stdout == ANSWER + "\n" and answer["reasoning_content"] == THOUGHT
    assert not {"chat_template_kwargs", "reasoning_effort", "thinking_budget_tokens"} & set(proxy.bodies[0])


def test_a_strict_server_gets_the_request_again_without_the_fields_it_refuses(
    run_cli: Run, server: int
) -> None:
    strict = Proxy(server)
    strict.reject = ("chat_template_kwargs", "reasoning_effort")
    try:
        result, answer = ask(run_cli, strict.url, "--think", "off")
    finally:
        strict.close()
    assert result.stdout == ANSWER + "\n" and "reasoning_content" not in answer
    refused, accepted = strict.bodies
    assert "chat_template_kwargs" in refused and "reasoning_effort" in refused
    assert "chat_template_kwargs" not in accepted and "reasoning_effort" not in accepted
    assert accepted["top_k"] == refused["top_k"]  # the sampling extensions stay


def complete(run_cli: Run, url: str, prompt: str, *args: str) -> dict:
    result = run_cli(
        "complete", prompt, "--backend", url, "--greedy", "-n", "30", "--json", *args, env=WITH_KEY
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def plain(server: int) -> Iterator[Proxy]:
    front = Proxy(server)
    yield front
    front.close()


def test_complete_splits_the_thinking_off(run_cli: Run, plain: Proxy, thinker: Thinker) -> None:
    prompt = thinker.template.render(QUESTION, think="on")
    record = complete(run_cli, plain.url, prompt, "--think", "on")
    assert record["text"] == ANSWER and record["reasoning"] == THOUGHT
    assert record["reasoning_tokens"] == 5 and record["finish_reason"] == "stop"
    streamed = run_cli("complete", prompt, "--backend", plain.url, "--greedy", "-n", "30", env=WITH_KEY)
    assert streamed.stdout == ANSWER and "Hmm" not in streamed.stderr


def test_complete_off_closes_the_thinking_in_the_prompt(run_cli: Run, plain: Proxy, thinker: Thinker) -> None:
    prompt = thinker.template.render(QUESTION, think="on")
    record = complete(run_cli, plain.url, prompt, "--think", "off")
    assert record["text"] == ANSWER and record["reasoning"] == "" and record["reasoning_tokens"] == 0
    assert plain.bodies[0]["prompt"] == prompt + "<think>\n\n</think>\n\n"


def test_complete_budget_ends_the_thinking_and_continues(
    run_cli: Run, plain: Proxy, thinker: Thinker
) -> None:
    prompt = thinker.template.render(QUESTION, think="on")
    record = complete(run_cli, plain.url, prompt, "--think", "on", "--reasoning-budget", "3")
    assert record["text"] == ANSWER and record["reasoning"] == "Hmm let me"
    assert record["reasoning_tokens"] == 3 and record["finish_reason"] == "stop"
    first, second = plain.bodies
    assert second["prompt"] == prompt + "<think>Hmm let me</think>"
    assert second["max_tokens"] == 30 - 4  # the marker and three thinking tokens were spent
    assert "thinking_budget_tokens" not in first  # a raw prompt's budget is kept here


def test_thinking_split_here() -> None:
    pieces = []
    split = ServerThinking(ThinkPlan(THINK, budget=2, mode="on"))
    for text in ["<think>", "Hmm", " let", " me", "</think>", "\n\n", " Paris", "."]:
        pieces += split.content(text)
    pieces += split.finish()
    assert pieces == [Thought("Hmm"), Thought(" let"), "Paris", "."]
    assert [type(p) for p in pieces[:2]] == [Thought, Thought] and split.tokens == 3

    off = ServerThinking(ThinkPlan(THINK, mode="off"))
    assert off.reasoning("Hmm") == [] and off.content("Paris") == ["Paris"]

    # A completion that does not think comes out exactly, leading blank and all.
    exact = ServerThinking(ThinkPlan(THINK), exact=True)
    assert exact.content(" ") + exact.content(" time") + exact.finish() == ["  time"]
    blank = ServerThinking(ThinkPlan(THINK), exact=True)
    assert blank.content("\n") + blank.finish() == ["\n"]
