"""`llmcli summarize` through the installed command: batches, resume, failures, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import LLMCLI
from tinymodel import SHARED, chain, write_chat_model

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chat_model(tmp_path_factory.mktemp("summ-cli") / "chat.gguf")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    lines = (SHARED / "eval" / "summ" / "summeval_cnndm_gold.jsonl").read_text().splitlines()
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    for i in range(4):
        folder = root / "sub" if i % 2 else root
        (folder / f"news{i}.txt").write_text(json.loads(lines[i])["article"])
    (root / "sub" / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR binary")
    return root


def args(model: Path, *extra: str) -> list[str]:
    return ["summarize", "-m", str(model), "--ctx", "1024", "--words", "20", "--greedy", *extra]


def test_tree_to_out_dir_then_resume(run_cli: Run, chat_model: Path, docs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_cli(*args(chat_model, str(docs), "--out-dir", str(out)))
    assert first.returncode == 1  # the binary file failed; the others did not stop
    assert "failed: " in first.stderr and "photo.png is not a text file" in first.stderr
    outputs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.summary.md"))
    assert outputs == ["news0.summary.md", "news2.summary.md", "sub/news1.summary.md", "sub/news3.summary.md"]
    assert first.stdout == ""

    again = run_cli(*args(chat_model, str(docs), "--out-dir", str(out)))
    assert "0 summarized, 4 already done, 1 failed" in again.stderr

    (docs / "news2.txt").write_text((docs / "news2.txt").read_text() + "\nOne more paragraph.")
    edited = run_cli(*args(chat_model, str(docs), "--out-dir", str(out)))
    assert "1 summarized, 3 already done, 1 failed" in edited.stderr
    forced = run_cli(*args(chat_model, str(docs / "news0.txt"), "--out-dir", str(out), "--force"))
    assert forced.returncode == 0 and "1 summarized, 0 already done" in forced.stderr


def test_stdout_headers_and_stdin(run_cli: Run, chat_model: Path, docs: Path) -> None:
    two = run_cli(*args(chat_model, str(docs / "news0.txt"), str(docs / "news2.txt")))
    assert two.returncode == 0
    assert two.stdout.count("==> ") == 2 and f"==> {docs / 'news0.txt'} <==" in two.stdout
    piped = run_cli(*args(chat_model), input="Lily had a red ball. She played with it in the park.\n")
    assert piped.returncode == 0 and piped.stdout.strip() and "==>" not in piped.stdout
    dash = run_cli(*args(chat_model, "-"), input="Lily had a red ball. She played with it in the park.\n")
    assert dash.returncode == 0 and dash.stdout == piped.stdout
    empty = run_cli(*args(chat_model), input="   \n")
    assert empty.returncode == 1 and "empty" in empty.stderr


def test_jsonl_records(run_cli: Run, chat_model: Path, docs: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    result = run_cli(*args(chat_model, str(docs / "sub"), "--jsonl", str(target)))
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert result.returncode == 1
    assert {r["status"] for r in records} == {"done"} and len(records) == 2
    assert all(r["text"] and r["tokens"] > 0 and r["seconds"] > 0 for r in records)
    again = run_cli(*args(chat_model, str(docs / "sub"), "--jsonl", str(target)))
    assert "0 summarized, 2 already done" in again.stderr


@pytest.mark.parametrize("command", ["summarize", "translate"])
def test_ctrl_c_mid_batch_then_rerun(
    chat_model: Path, docs: Path, tmp_path: Path, cli_env: dict[str, str], command: str
) -> None:
    def batch_args() -> list[str]:
        if command == "summarize":
            return args(chat_model, str(docs), "--out-dir", str(out))
        return ["translate", str(docs), "--to", "fr", "-m", str(chat_model), "-n", "8", "--out-dir", str(out)]

    pattern = "*.summary.md" if command == "summarize" else "*.fr.txt"
    for i in range(4, 10):  # more inputs, so the batch is still running when interrupted
        (docs / f"more{i}.txt").write_text((docs / "news0.txt").read_text() + f" Copy {i}.")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [str(LLMCLI), *batch_args()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=cli_env,
    )
    manifest = out / ".llmcli-manifest.json"
    deadline = time.monotonic() + 60
    while not manifest.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    done = json.loads(manifest.read_text())
    written = set(out.rglob(pattern))
    assert written == {Path(r["output"]) for r in done.values()}  # nothing half-written, nothing unrecorded
    assert not list(out.rglob(".*.tmp"))
    rerun = subprocess.run(
        [str(LLMCLI), *batch_args()],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=300,
    )
    assert f"{len(done)} already done" in rerun.stderr
    assert len(list(out.rglob(pattern))) == 10


def test_bad_options(run_cli: Run, chat_model: Path, docs: Path, tmp_path: Path) -> None:
    bad = run_cli(*args(chat_model, str(docs), "--style", "poem"))
    assert bad.returncode == 2 and "--style must be one of" in bad.stderr
    both = run_cli(*args(chat_model, str(docs), "--out-dir", str(tmp_path), "--jsonl", str(tmp_path / "x")))
    assert both.returncode == 2
    missing = run_cli(*args(chat_model, str(tmp_path / "nope")))
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_a_draft_model_summarizes_the_same(
    run_cli: Run, chat_model: Path, docs: Path, program_model: Callable[..., Path]
) -> None:
    doc = str(docs / "news0.txt")
    plain = run_cli(*args(chat_model, doc, "--no-speculative"))
    # stories260K itself has the chat model's vocabulary (the chat model is stories plus a template).
    drafted = run_cli(*args(chat_model, doc, "--draft-model", str(SHARED / "models" / "stories260K.gguf")))
    assert drafted.returncode == 0 and drafted.stdout == plain.stdout, drafted.stderr
    several = run_cli(*args(chat_model, doc, "--draft-model", str(chat_model), "--parallel", "2"))
    assert several.returncode == 2 and "one document at a time" in several.stderr
    remote = run_cli(
        *args(chat_model, doc, "--draft-model", str(chat_model), "--backend", "http://127.0.0.1:9")
    )
    assert remote.returncode == 2 and "not for --backend" in remote.stderr
    other = run_cli(*args(chat_model, doc, "--draft-model", str(program_model(chain([15043, 3186])))))
    assert other.returncode == 2 and "another vocabulary" in other.stderr and "Traceback" not in other.stderr
