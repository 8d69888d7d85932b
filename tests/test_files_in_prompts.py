"""Files into prompts: `-f/--file` on complete and chat, and `/read` in the REPL."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import LLMCLI
from test_chat import Tmux, needs_tmux, run_repl, wait_closed
from test_cli_complete import assert_one_line_error
from test_documents import make_pdf

from llmcli.engine import EngineOptions, LocalEngine

Run = Callable[..., subprocess.CompletedProcess[str]]
FENCE = "```"


def block(name: Path | str, text: str, fence: str = FENCE) -> str:
    """The documented format, spelled out: a `File: NAME` line, then the text fenced."""
    return f"File: {name}\n{fence}\n{text}\n{fence}"


@pytest.fixture
def engine(chat_model: Path) -> Iterator[LocalEngine]:
    with LocalEngine(chat_model, EngineOptions(n_ctx=512)) as eng:
        yield eng


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# Cats\n\nLily had a cat.\n")
    (folder / "b.md").write_text("Tom had a dog.\n")
    (folder / "c.txt").write_text("Not markdown.\n")
    return folder


def piped_message(run_cli: Run, chat_model: Path, *args: str, input: str) -> tuple[str, str]:
    """Send one piped message with args; return the user message as saved, and stderr."""
    result = run_cli(
        "chat", "-m", str(chat_model), "--greedy", "-n", "4", "--session", "f", *args, input=input
    )
    assert result.returncode == 0, result.stderr
    saved = json.loads(run_cli("sessions", "export", "f", "--format", "json").stdout)
    return saved["messages"][0]["content"], result.stderr


# --- complete -------------------------------------------------------------------------------------


def test_complete_puts_files_after_stdin_and_before_the_prompt(
    run_cli: Run, stories: Path, stories_engine: LocalEngine, notes: Path
) -> None:
    a, b = notes / "a.md", notes / "b.md"
    result = run_cli(
        "complete", "-m", str(stories), "--greedy", "-n", "1", "--json", "-f", str(a), "--file", str(b),
        "Once upon a time", input="Two notes:\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    blocks = [block(a, "# Cats\n\nLily had a cat."), block(b, "Tom had a dog.")]
    expected = "\n\n".join(["Two notes:", *blocks, "Once upon a time"])
    assert json.loads(result.stdout)["prompt_tokens"] == len(stories_engine.tokenize(expected))
    sizes = [len(stories_engine.tokenize(text, add_special=False)) for text in blocks]
    assert result.stderr.splitlines() == [f"read {a} ({sizes[0]} tokens)", f"read {b} ({sizes[1]} tokens)"]


def test_complete_dash_reads_stdin_as_a_file(
    run_cli: Run, stories: Path, stories_engine: LocalEngine
) -> None:
    result = run_cli(
        "complete", "-m", str(stories), "--greedy", "-n", "1", "--json", "-f", "-", "Once",
        input="Lily liked cats.\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = block("<stdin>", "Lily liked cats.") + "\n\nOnce"
    assert json.loads(result.stdout)["prompt_tokens"] == len(stories_engine.tokenize(expected))
    assert result.stderr.startswith("read <stdin> (")


def test_a_file_alone_is_a_prompt(
    run_cli: Run, stories: Path, stories_engine: LocalEngine, notes: Path
) -> None:
    b = notes / "b.md"
    result = run_cli("complete", "-m", str(stories), "--greedy", "-n", "1", "--json", "-f", str(b))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["prompt_tokens"] == len(
        stories_engine.tokenize(block(b, "Tom had a dog."))
    )


def test_complete_overflow_names_the_files(run_cli: Run, stories: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("Lily went to the park and played with her ball. " * 60)
    result = run_cli("complete", "-m", str(stories), "--ctx", "256", "-f", str(big), "Once")
    assert result.returncode == 5 and result.stdout == ""
    *notes_, error = result.stderr.splitlines()
    tokens = notes_[0].removeprefix(f"read {big} (").removesuffix(" tokens)")
    assert error.startswith("error: the prompt is ") and "context holds 256" in error
    assert f"; files: {big} {tokens} tokens" in error and "--ctx" in error


# --- errors, on both commands ---------------------------------------------------------------------


@pytest.mark.parametrize("command", ["complete", "chat"])
@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("missing.md", None, "missing.md: no such file or directory"),
        ("none/*.md", None, "no files match"),
        ("image.bin", b"\x89PNG\x00\x00\x01", "is not a text file (binary data)"),
        ("latin1.txt", "café".encode("latin-1"), "is not UTF-8 text"),
        ("empty.txt", b"\n\n", "empty.txt is empty"),
    ],
)
def test_unreadable_files_are_one_line_usage_errors(
    run_cli: Run,
    chat_model: Path,
    tmp_path: Path,
    command: str,
    name: str,
    content: bytes | None,
    needle: str,
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    prompt = ["hi"] if command == "complete" else []
    result = run_cli(command, "-m", str(chat_model), "-f", str(path), *prompt, input="hi")
    assert_one_line_error(result, 2, needle)


# --- chat, piped -----------------------------------------------------------------------------------


def test_piped_chat_prepends_the_files_to_the_message(run_cli: Run, chat_model: Path, notes: Path) -> None:
    a = notes / "a.md"
    message, err = piped_message(run_cli, chat_model, "-f", str(a), input="What is it about?\n")
    assert message == block(a, "# Cats\n\nLily had a cat.") + "\n\nWhat is it about?"
    assert err.startswith(f"read {a} (") and " tokens)\n" in err


def test_piped_chat_dash_globs_folders_and_fences(run_cli: Run, chat_model: Path, notes: Path) -> None:
    code = notes / "code.md"
    code.write_text("Run it:\n\n```sh\nls\n```\n")
    message, _ = piped_message(
        run_cli,
        chat_model,
        "-f",
        str(notes / "*.md"),
        "-f",
        str(notes / "a.md"),
        "-f",
        "-",
        input="from a pipe",
    )
    assert message == "\n\n".join(
        [
            block(notes / "a.md", "# Cats\n\nLily had a cat."),
            block(notes / "b.md", "Tom had a dog."),
            block(code, "Run it:\n\n```sh\nls\n```", fence="````"),  # longer than any fence inside
            block("<stdin>", "from a pipe"),  # a.md, already read, is not read twice
        ]
    )


def test_piped_chat_reads_html_and_pdf(run_cli: Run, chat_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    page, pdf = tmp_path / "page.html", tmp_path / "doc.pdf"
    page.write_text("<html><head><title>x</title></head><body><p>Hello <b>web</b></p><script>no()</script>")
    pdf.write_bytes(make_pdf(["Hello from a PDF"]))
    message, _ = piped_message(run_cli, chat_model, "-f", str(page), "-f", str(pdf), input="Compare.")
    assert message == f"{block(page, 'Hello web')}\n\n{block(pdf, 'Hello from a PDF')}\n\nCompare."


def test_piped_chat_overflow_names_the_files(run_cli: Run, chat_model: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("Lily went to the park and played with her ball. " * 60)
    result = run_cli("chat", "-m", str(chat_model), "--ctx", "256", "-f", str(big), input="Summarize it.")
    assert result.returncode == 5 and result.stdout == ""
    error = result.stderr.splitlines()[-1]
    assert error.startswith("error: this message needs ") and "context holds 256" in error
    assert f"; files: {big} " in error


# --- the REPL --------------------------------------------------------------------------------------


def test_read_attaches_to_the_next_message_only(engine: LocalEngine, tmp_path: Path, notes: Path) -> None:
    repl, _, err = run_repl(engine, f"/read {notes}/*.md\rWhat are they?\rAnd then?\r", tmp_path)
    blocks = [block(notes / "a.md", "# Cats\n\nLily had a cat."), block(notes / "b.md", "Tom had a dog.")]
    users = [m["content"] for m in repl.chat.messages if m["role"] == "user"]
    assert users == ["\n\n".join([*blocks, "What are they?"]), "And then?"]
    size = len(engine.tokenize(blocks[0], add_special=False))
    a = notes / "a.md"
    assert f"read {a} ({size} tokens)\n" in err
    assert "2 files (" in err and "tokens) will go with your next message" in err


def test_read_errors_stay_in_the_repl(engine: LocalEngine, tmp_path: Path, notes: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"\x00\x01\x02")
    reads = [f"{tmp_path}/nope.md", f"{tmp_path}/none*.txt", f"{tmp_path}/x.bin", "", "-"]
    keys = "".join(f"/read {arg}\r" for arg in reads) + "Hello\r"
    repl, _, err = run_repl(engine, keys, tmp_path)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 5
    assert "nope.md: no such file or directory" in errors[0]
    assert "no files match" in errors[1] and "binary data" in errors[2]
    assert "usage: /read PATH..." in errors[3] and "standard input" in errors[4]
    assert repl.chat.messages[0]["content"] == "Hello"  # nothing was attached


def test_read_overflow_drops_the_files(engine: LocalEngine, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("Lily went to the park and played with her ball. " * 60)
    repl, _, err = run_repl(engine, f"/read '{big}'\rSummarize it.\rHello\r", tmp_path)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "context holds 512" in errors[0]
    assert f"; files: {big} " in errors[0] and "the files were dropped" in errors[0]
    assert [m["content"] for m in repl.chat.messages if m["role"] == "user"] == ["Hello"]


def test_help_lists_read(engine: LocalEngine, tmp_path: Path) -> None:
    _, _, err = run_repl(engine, "/help\r", tmp_path)
    assert "/read PATH..." in err and "to the next message" in err


@needs_tmux
def test_chat_file_option_and_tab_completion_in_a_terminal(
    chat_model: Path, cli_env: dict[str, str], notes: Path
) -> None:
    argv = [
        str(LLMCLI),
        "chat",
        "-m",
        str(chat_model),
        "-n",
        "4",
        "--session",
        "tf",
        "-f",
        str(notes / "b.md"),
    ]
    with Tmux(cli_env, argv, name="llmcli-files-test") as term:
        term.wait_for("will go with your next message")
        term.keys("/rea", "Tab")
        screen = term.wait_for("/read")  # the completion menu, under the line
        assert "/read" in [line.strip() for line in screen.splitlines()]
        term.keys("C-u", "hi", "Enter")
        term.wait_for("4 tokens")
        term.keys("/exit", "Enter")
        wait_closed(term)
    saved = json.loads((Path(cli_env["LLMCLI_HOME"]) / "data" / "sessions" / "tf.json").read_text())
    assert saved["messages"][0]["content"] == block(notes / "b.md", "Tom had a dog.") + "\n\nhi"
