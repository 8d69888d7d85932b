"""Chat against the real engine: KV reuse, context fitting, sessions, the REPL and piped chat."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import LLMCLI
from scripted import ScriptedEngine
from tinymodel import TEMPLATES, VOCABS, write_chat_model

from llmcli.chat.conversation import Chat, with_sampling
from llmcli.chat.sessions import SessionRecord, SessionStore
from llmcli.chat.templates import CHATML, PLAIN_STOP, ChatTemplate, pick_template
from llmcli.engine import EngineOptions, LocalEngine
from llmcli.errors import ContextOverflowError, UsageError
from llmcli.sampling import SamplingConfig
from llmcli.ui.environment import Environment
from llmcli.ui.render import PlainScreen
from llmcli.ui.repl import COMMANDS, Repl

GREEDY = SamplingConfig(temperature=0.0, max_tokens=24)
shutil_which = shutil.which
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def engine(chat_model: Path) -> Iterator[LocalEngine]:
    with LocalEngine(chat_model, EngineOptions(n_ctx=512)) as eng:
        yield eng


def make_chat(engine: LocalEngine, **kwargs: object) -> Chat:
    bos, eos = engine.special_text()
    template = pick_template(engine.info.chat_template, bos_token=bos, eos_token=eos)
    return Chat(engine, template, kwargs.pop("sampling", GREEDY), **kwargs)  # type: ignore[arg-type]


def say(chat: Chat, text: str) -> str:
    return "".join(chat.ask(text))


def test_each_turn_evaluates_only_the_new_tokens(engine: LocalEngine) -> None:
    chat = make_chat(engine, system="You tell short stories.")
    say(chat, "Tell me about a cat.")
    first = chat.turn
    assert first is not None and first.completion.stats.cached_tokens == 0
    for message in ["And then?", "What did the dog do?", "The end?"]:
        previous_total = first.completion.stats.prompt_tokens + len(first.completion.tokens)
        say(chat, message)
        turn = chat.turn
        assert turn is not None
        stats = turn.completion.stats
        # everything up to the previous answer's last token came from the KV cache (that token was
        # sampled when max-tokens stopped the answer, so it was never evaluated)
        assert stats.cached_tokens == previous_total - 1
        new = stats.prompt_tokens - stats.cached_tokens
        delta = engine.tokenize(f"\nuser:{message}\nassistant:", add_special=False)
        assert new <= len(delta) + 2  # the new turn's text, plus the one unevaluated answer token
        first = turn


def test_undo_and_retry_rewind_the_cache(engine: LocalEngine) -> None:
    chat = make_chat(engine)
    say(chat, "Tell me about a cat.")
    first_answer = chat.messages[-1]["content"]
    say(chat, "And a dog?")
    assert chat.undo()
    assert [m["role"] for m in chat.messages] == ["user", "assistant"]
    again = "".join(chat.retry())
    assert again == first_answer  # greedy: the same answer, from the rewound cache
    assert chat.turn is not None
    assert chat.turn.completion.stats.prompt_tokens - chat.turn.completion.stats.cached_tokens == 1


def test_overflow_drops_the_oldest_exchanges_not_the_system_prompt(engine: LocalEngine) -> None:
    chat = make_chat(engine, system="SYSTEM PROMPT", sampling=SamplingConfig(temperature=0.0, max_tokens=40))
    long = "Lily went to the park and played with her ball. " * 6
    for _ in range(6):
        say(chat, long)
    dropped = [t for t in [chat.turn] if t and t.dropped]
    assert chat.first_kept > 0 and dropped
    assert chat.visible()[0] == {"role": "system", "content": "SYSTEM PROMPT"}
    assert chat.turn is not None
    assert chat.turn.completion.stats.prompt_tokens + chat.reserve() <= engine.n_ctx


def test_a_message_larger_than_the_context_is_a_clear_error(engine: LocalEngine) -> None:
    chat = make_chat(engine)
    with pytest.raises(ContextOverflowError, match="context holds 512"):
        say(chat, "Once upon a time " * 300)
    assert chat.messages == []  # nothing half-recorded


# --- the token ledger, with a scripted engine whose re-tokenization differs from what it generated ---


def test_the_ledger_keeps_the_generated_tokens_of_chatml_prompts() -> None:
    engine = ScriptedEngine(answers=["Paris", "Lyon"])
    assert engine.tokenize("Paris") != [ord(c) for c in "Paris"]  # the answer comes back as other tokens
    chat = Chat(engine, ChatTemplate(CHATML, origin="inferred", family="chatml"), GREEDY)
    say(chat, "What is the capital of France?")
    say(chat, "And the second city?")
    first, second = engine.calls
    exact = first.tokens + [ord(c) for c in "Paris"]  # what the engine's cache holds after turn one
    assert second.tokens[: len(exact)] == exact
    assert engine.spelled(second.tokens) == chat.template.render(chat.visible()[:-1])


def test_a_prompt_starting_with_a_slash() -> None:
    engine = ScriptedEngine(answers=["Paris", "Paris"])
    chat = Chat(engine, pick_template(None), GREEDY)
    say(chat, "What is the capital of France?")
    chat.system = "/no_think Be brief."  # the prompt now starts with "/", the ledger's did not
    say(chat, "Sure?")
    assert engine.spelled(engine.calls[1].tokens) == chat.template.render(chat.visible()[:-1])


def test_a_template_brings_its_stop_strings() -> None:
    engine = ScriptedEngine(answers=["Paris", "Paris"])
    chat = Chat(engine, pick_template(None), replace(GREEDY, stop=("END",)))
    say(chat, "What is the capital of France?")
    assert engine.calls[0].sampling.stop == ("END", *PLAIN_STOP)
    chat.template = ChatTemplate(CHATML)
    say(chat, "Sure?")
    assert engine.calls[1].sampling.stop == ("END",)


def test_set_command_values() -> None:
    config = with_sampling(GREEDY, "temperature", "0.7")
    assert config.temperature == 0.7
    assert with_sampling(config, "greedy", "").greedy
    with pytest.raises(UsageError):
        with_sampling(config, "top-p", "2")
    with pytest.raises(UsageError):
        with_sampling(config, "colour", "1")


# --- the REPL, driven through prompt_toolkit's pipe input ---------------------------------------


def run_repl(
    engine: LocalEngine, keys: str, tmp_path: Path, loader: object = None, **kwargs: object
) -> tuple[Repl, str, str]:
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    out, err = io.BytesIO(), io.StringIO()
    env = Environment(io.BytesIO(), out, err, True, False, False, {})
    store = SessionStore(tmp_path / "sessions")
    record = SessionRecord("test", model="stories-chat")
    chat = make_chat(engine, **kwargs)
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        pipe.close()  # then the REPL reads Ctrl-D (EOF) and leaves
        repl = Repl(
            chat,
            PlainScreen(env),
            store,
            record,
            load_model=loader or (lambda ref: (_ for _ in ()).throw(UsageError("no switching in tests"))),  # type: ignore[arg-type]
            input=pipe,
            output=DummyOutput(),
        )
        repl.run()
    return repl, out.getvalue().decode(), err.getvalue()


def test_transcript(engine: LocalEngine, tmp_path: Path) -> None:
    repl, out, err = run_repl(engine, "Tell me a story.\r/stats\r/context\r/undo\r/show\r/exit\r", tmp_path)
    assert out.strip()  # the answer went to stdout
    assert "tokens" in err and "t/s" in err  # footer and /stats
    assert "tokens used" in err and "left of 512" in err
    assert "KV cache 0.6 MiB per 1,024 tokens" in err  # stories260K: 5 layers, 4 KV heads of 8 dims
    assert "dropped the last exchange" in err
    assert "sampling  greedy" in err and "template  gguf\n" in err
    assert repl.chat.messages == []


def test_help_lists_every_command_and_unknown_ones_are_errors(engine: LocalEngine, tmp_path: Path) -> None:
    _, _, err = run_repl(engine, "/help\r/frobnicate\r/set top-p 7\r", tmp_path)
    for command in COMMANDS:
        assert command.name in err
    assert "error: unknown command /frobnicate" in err
    assert "top-p must be in (0, 1]" in err


def test_multiline_block_and_save_export_load(engine: LocalEngine, tmp_path: Path) -> None:
    keys = (
        '"""\rfirst line\rsecond line"""\r/save mine\r/export '
        + str(tmp_path / "t.md")
        + "\r/clear\r/load mine\r"
    )
    repl, _, err = run_repl(engine, keys, tmp_path)
    assert repl.chat.messages[0] == {"role": "user", "content": "first line\nsecond line"}
    assert json.loads((tmp_path / "sessions" / "mine.json").read_text())["messages"][0]["content"] == (
        "first line\nsecond line"
    )
    assert "**User:**" in (tmp_path / "t.md").read_text()
    assert "loaded mine (2 messages)" in err


def test_every_turn_is_saved(engine: LocalEngine, tmp_path: Path) -> None:
    run_repl(engine, "One\rTwo\r", tmp_path)
    saved = json.loads((tmp_path / "sessions" / "test.json").read_text())
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant", "user", "assistant"]


# --- real templates, through the engine ------------------------------------------------------------


def shared_templates() -> list[tuple[str, str]]:
    import gguf

    found = [(p.stem, p.read_text()) for p in sorted(TEMPLATES.glob("*.jinja"))]
    phi3 = gguf.GGUFReader(VOCABS / "ggml-vocab-phi-3.gguf").fields["tokenizer.chat_template"].contents()
    return [*found, ("phi-3", phi3)]


@pytest.mark.parametrize(("name", "template"), shared_templates(), ids=[n for n, _ in shared_templates()])
def test_real_templates_with_a_system_prompt(name: str, template: str, tmp_path: Path) -> None:
    model = write_chat_model(tmp_path / "m.gguf", template)
    with LocalEngine(model, EngineOptions(n_ctx=512)) as eng:
        chat = make_chat(eng, system="Answer in one word.")
        say(chat, "Tell me a story.")
        say(chat, "Another one?")
        assert chat.turn is not None and chat.turn.completion.stats.cached_tokens > 0
        prompt = chat.template.render(chat.visible()[:-1], add_generation_prompt=True)  # as last sent
    assert "Answer in one word." in prompt and "Tell me a story." in prompt and "Another one?" in prompt


# --- the installed command ------------------------------------------------------------------------


def test_piped_chat_answers_and_exits(run_cli: Run, chat_model: Path, cli_env: dict[str, str]) -> None:
    result = run_cli(
        "chat",
        "-m",
        str(chat_model),
        "--greedy",
        "-n",
        "16",
        "--session",
        "piped",
        input="Tell me a story.\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    again = run_cli(
        "chat", "-m", str(chat_model), "--greedy", "-n", "16", "--session", "piped", input="And then?\n"
    )
    assert again.returncode == 0
    shown = run_cli("sessions", "show", "piped")
    assert "Tell me a story." in shown.stdout and "And then?" in shown.stdout
    listed = json.loads(run_cli("sessions", "list", "--json").stdout)
    assert listed[0]["name"] == "piped" and listed[0]["messages"] == 4
    exported = json.loads(run_cli("sessions", "export", "piped", "--format", "json").stdout)
    assert exported["model"] == str(chat_model)
    assert run_cli("sessions", "rm", "piped").returncode == 0
    missing = run_cli("sessions", "show", "piped")
    assert missing.returncode == 2 and "no session named 'piped'" in missing.stderr


def test_piped_chat_with_empty_stdin(run_cli: Run, chat_model: Path) -> None:
    result = run_cli("chat", "-m", str(chat_model), input="")
    assert result.returncode == 2 and "stdin is empty" in result.stderr


COLON, HELLO, WORLD = 29901, 15043, 3186  # ":" ends "assistant:", then " Hello world" forever


@pytest.fixture(scope="session")
def endless_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinymodel import PLAIN_TEMPLATE, write_program_model

    program = {COLON: {HELLO: 30.0}, HELLO: {WORLD: 30.0}, WORLD: {HELLO: 30.0}}
    return write_program_model(
        tmp_path_factory.mktemp("endless") / "endless.gguf",
        program,
        n_ctx=32768,
        chat_template=PLAIN_TEMPLATE,
    )


def endless_chat(model: Path, session: str, *extra: str) -> list[str]:
    return [str(LLMCLI), "chat", "-m", str(model), "--ctx", "32768", "--session", session, *extra]


needs_tmux = pytest.mark.skipif(shutil_which("tmux") is None, reason="tmux not installed")


def wait_closed(term: Tmux, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (
        time.monotonic() < deadline
        and subprocess.run(["tmux", "has-session", "-t", term.name], capture_output=True).returncode == 0
    ):
        time.sleep(0.1)


@needs_tmux
def test_real_terminal_chat(endless_chat_model: Path, cli_env: dict[str, str]) -> None:
    """Rendered Markdown in a terminal: type, see the answer and its footer, /exit."""
    argv = endless_chat(endless_chat_model, "term")
    with Tmux(cli_env, argv) as term:
        term.wait_for(">>>")
        term.keys("/set max-tokens 6", "Enter")
        term.wait_for("sampling:")
        term.keys("hi there", "Enter")
        screen = term.wait_for("6 tokens")  # the footer after a finished answer
        assert "Hello world Hello world Hello world" in screen
        term.keys("/exit", "Enter")
        wait_closed(term)
    saved = json.loads((Path(cli_env["LLMCLI_HOME"]) / "data" / "sessions" / "term.json").read_text())
    assert saved["messages"][0]["content"] == "hi there"


@needs_tmux
def test_ctrl_c_in_a_terminal_keeps_the_partial_answer(
    endless_chat_model: Path, cli_env: dict[str, str]
) -> None:
    argv = endless_chat(endless_chat_model, "cc", "--plain")
    with Tmux(cli_env, argv) as term:
        term.wait_for(">>>")
        term.keys("go on", "Enter")
        term.wait_for("world Hello world Hello")
        term.keys("C-c")
        term.wait_for("(stopped)")
        term.keys("/exit", "Enter")
        wait_closed(term)
    saved = json.loads((Path(cli_env["LLMCLI_HOME"]) / "data" / "sessions" / "cc.json").read_text())
    assert saved["messages"][0]["content"] == "go on"
    assert saved["messages"][1]["content"].startswith(" Hello world Hello")  # the partial answer is kept


@needs_tmux
def test_session_survives_kill_9(endless_chat_model: Path, cli_env: dict[str, str]) -> None:
    argv = endless_chat(endless_chat_model, "k9", "--plain")
    session = Path(cli_env["LLMCLI_HOME"]) / "data" / "sessions" / "k9.json"
    with Tmux(cli_env, argv) as term:
        term.wait_for(">>>")
        term.keys("/set max-tokens 4", "Enter")
        term.keys("first", "Enter")
        term.wait_for("4 tokens")
        term.keys("/set max-tokens 1000000", "Enter")
        term.keys("second", "Enter")
        term.wait_for("world Hello world Hello")
        os.kill(term.pid(), signal.SIGKILL)
    saved = json.loads(session.read_text())  # readable, with every finished turn
    assert [m["content"] for m in saved["messages"]] == ["first", " Hello world Hello world"]
    assert not list(session.parent.glob(".*.tmp"))  # no temp files left behind


class Tmux:
    """A real terminal: type keys, read the screen."""

    def __init__(self, env: dict[str, str], argv: list[str], name: str = "llmcli-test") -> None:
        self.env, self.argv, self.name = env, argv, name

    def __enter__(self) -> Tmux:
        import shlex

        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)
        env = " ".join(
            f"{k}={shlex.quote(v)}" for k, v in self.env.items() if k.startswith(("LLMCLI_", "HF_"))
        )
        command = f"env {env} TERM=xterm-256color {' '.join(shlex.quote(a) for a in self.argv)}"
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", "100", "-y", "30", command],
            check=True,
            env={**os.environ, **self.env},
        )
        return self

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True
        ).stdout

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared on screen:\n{self.screen()}")

    def pid(self) -> int:
        out = subprocess.run(
            ["tmux", "list-panes", "-t", self.name, "-F", "#{pane_pid}"], capture_output=True, text=True
        ).stdout
        return int(out.split()[0])

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def test_model_switch_keeps_the_conversation(engine: LocalEngine, chat_model: Path, tmp_path: Path) -> None:
    def loader(ref: str) -> tuple[LocalEngine, object, str]:
        other = LocalEngine(chat_model, EngineOptions(n_ctx=1024))
        bos, eos = other.special_text()
        return other, pick_template(other.info.chat_template, bos_token=bos, eos_token=eos), ref

    repl, _, err = run_repl(engine, "Tell me a story.\r/model bigger\rAnd then?\r", tmp_path, loader)
    assert "switched to bigger" in err
    assert repl.chat.engine.n_ctx == 1024 and repl.record.model == "bigger"
    assert [m["content"] for m in repl.chat.messages[::2]] == ["Tell me a story.", "And then?"]
    repl.chat.engine.close()
