"""--backend: every command against a real llama_cpp.server on 127.0.0.1, directly or through a proxy
that answers 429, hides endpoints, or dies in the middle of an answer."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backend_proxy import Proxy, free_port, start_server

Run = Callable[..., subprocess.CompletedProcess[str]]
KEY = "test-key"
WITH_KEY = {"LLMCLI_API_KEY": KEY}


@pytest.fixture(scope="module")
def server(stories: Path) -> Iterator[int]:
    port = free_port()
    proc = start_server(stories, port, api_key=KEY)
    yield port
    proc.kill()
    proc.wait()


@pytest.fixture
def proxy(server: int) -> Iterator[Proxy]:
    front = Proxy(server)
    yield front
    front.close()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    openings = ["Once upon a time", "One day", "Lily saw", "Tom had", "The sun was", "A little bird"]
    for i, opening in enumerate(openings):
        (folder / f"doc{i}.txt").write_text(f"{opening} a cat and a dog played.\n\nThey were happy. {i}\n")
    return folder


def test_complete_on_the_server_equals_local_greedy(run_cli: Run, stories: Path, proxy: Proxy) -> None:
    remote = run_cli(
        "complete", "Once upon a time", "--backend", proxy.url, "--greedy", "-n", "24", env=WITH_KEY
    )
    local = run_cli("complete", "Once upon a time", "-m", str(stories), "--greedy", "-n", "24")
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout
    assert remote.stdout.startswith(", there was a little girl named Lily")
    sent = proxy.bodies[0]
    assert sent["prompt"] == "Once upon a time" and sent["stream"] is True and sent["max_tokens"] == 24

    as_json = run_cli(
        "complete",
        "Once upon a time",
        "--backend",
        proxy.url + "/v1",
        "--greedy",
        "-n",
        "5",
        "--json",
        env=WITH_KEY,
    )
    record = json.loads(as_json.stdout)
    assert record["finish_reason"] == "length" and record["generated_tokens"] == 5
    assert record["model"] == str(stories)  # llama_cpp.server names a model by its path


def test_sampling_flags_pass_through_and_seeds_reproduce(run_cli: Run, proxy: Proxy) -> None:
    args = ["complete", "Once upon a time", "--backend", proxy.url, "-n", "16", "--seed", "7"]
    args += ["--temperature", "1.5", "--top-k", "40", "--min-p", "0.01", "--repeat-penalty", "1.3"]
    first = run_cli(*args, "--stop", "zzz", env=WITH_KEY)
    second = run_cli(*args, "--stop", "zzz", env=WITH_KEY)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and first.stdout
    sent = proxy.bodies[0]
    assert {
        k: sent[k] for k in ("seed", "temperature", "top_k", "min_p", "top_p", "repeat_penalty", "stop")
    } == {
        "seed": 7,
        "temperature": 1.5,
        "top_k": 40,
        "min_p": 0.01,
        "top_p": 1.0,  # --min-p alone means min-p only: nucleus off
        "repeat_penalty": 1.3,
        "stop": ["zzz"],
    }
    other = run_cli(*[a if a != "7" else "8" for a in args], env=WITH_KEY)
    assert other.stdout != first.stdout


def test_chat_sends_the_conversation_as_messages(run_cli: Run, proxy: Proxy) -> None:
    base = ["chat", "--backend", proxy.url, "--greedy", "-n", "12", "--session", "s1"]
    first = run_cli(*base, "--system", "Tell stories.", input="Hello there\n", env=WITH_KEY)
    assert first.returncode == 0 and first.stdout.strip(), first.stderr
    second = run_cli(*base, input="And then?\n", env=WITH_KEY)
    assert second.returncode == 0, second.stderr
    messages = proxy.bodies[1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == "Tell stories." and messages[3]["content"] == "And then?"
    assert messages[2]["content"].strip() == first.stdout.strip()


@pytest.mark.parametrize("command", ["summarize", "translate"])
def test_parallel_batch_keeps_four_requests_in_flight(
    run_cli: Run, proxy: Proxy, docs: Path, tmp_path: Path, command: str
) -> None:
    task = ["--greedy", "-n", "12"] if command == "summarize" else ["--to", "de", "--greedy", "-n", "12"]
    common = [command, str(docs), "--backend", proxy.url, "--ctx", "1024", *task]
    proxy.delay = 0.3  # long enough for requests to overlap
    one = run_cli(*common, "--parallel", "1", env=WITH_KEY)
    assert one.returncode == 0, one.stderr
    assert proxy.most_in_flight == 1
    proxy.most_in_flight = 0
    four = run_cli(*common, "--parallel", "4", env=WITH_KEY)
    assert four.returncode == 0, four.stderr
    assert proxy.most_in_flight == 4
    assert four.stdout == one.stdout and four.stdout.count("==> ") == 6  # in input order


def test_rate_limited_requests_are_retried(run_cli: Run, proxy: Proxy) -> None:
    proxy.refuse = 2
    result = run_cli(
        "complete", "Once upon a time", "--backend", proxy.url, "--greedy", "-n", "8", env=WITH_KEY
    )
    assert result.returncode == 0, result.stderr
    assert proxy.refused == 2 and result.stdout.startswith(", there was")


def test_a_server_that_dies_mid_batch_stops_it_and_a_rerun_finishes(
    run_cli: Run, proxy: Proxy, server: int, docs: Path, tmp_path: Path
) -> None:
    proxy.die_after = 2
    out = tmp_path / "out"
    args = [
        "summarize",
        str(docs),
        "--ctx",
        "1024",
        "--greedy",
        "-n",
        "12",
        "--out-dir",
        str(out),
        "--parallel",
        "1",
    ]
    broken = run_cli(*args, "--backend", proxy.url, env=WITH_KEY)
    assert broken.returncode == 6, broken.stderr
    assert (
        "went away in the middle of an answer" in broken.stderr and "run the command again" in broken.stderr
    )
    assert "Traceback" not in broken.stderr
    assert len(list(out.glob("*.summary.md"))) == 2  # the answers finished before it died
    again = run_cli(*args, "--backend", f"http://127.0.0.1:{server}", env=WITH_KEY)
    assert again.returncode == 0, again.stderr
    assert "4 summarized, 2 already done, 0 failed" in again.stderr
    assert len(list(out.glob("*.summary.md"))) == 6


def test_bad_or_missing_api_key(run_cli: Run, proxy: Proxy) -> None:
    for env in ({"LLMCLI_API_KEY": "wrong"}, {}):
        result = run_cli("complete", "Once", "--backend", proxy.url, "-n", "4", env=env)
        assert result.returncode == 6
        assert "refused the API key (401" in result.stderr and "LLMCLI_API_KEY" in result.stderr
        assert "Traceback" not in result.stderr and not result.stdout


def test_unreachable_and_malformed_backends(run_cli: Run) -> None:
    gone = run_cli("complete", "Once", "--backend", f"http://127.0.0.1:{free_port()}", "-n", "4")
    assert (
        gone.returncode == 6
        and "cannot reach the server" in gone.stderr
        and "connection refused" in gone.stderr
    )
    bad = run_cli("complete", "Once", "--backend", "ftp://example", "-n", "4")
    assert bad.returncode == 2 and "http(s) URL" in bad.stderr


def test_without_a_tokenize_endpoint_a_local_copy_counts(
    run_cli: Run, proxy: Proxy, stories: Path, docs: Path
) -> None:
    proxy.hidden = ("/tokenize", "/extras/tokenize")
    doc = str(docs / "doc0.txt")
    common = ["summarize", doc, "--backend", proxy.url, "--ctx", "1024", "--greedy", "-n", "12"]
    blind = run_cli(*common, env=WITH_KEY)
    assert blind.returncode == 2 and "cannot count tokens" in blind.stderr and "-m" in blind.stderr
    counted = run_cli(*common, "-m", str(stories), env=WITH_KEY)
    assert counted.returncode == 0 and counted.stdout.strip(), counted.stderr


def test_config_file_and_environment_name_the_backend(
    run_cli: Run, proxy: Proxy, cli_env: dict[str, str]
) -> None:
    config = Path(cli_env["LLMCLI_HOME"]) / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'backend = "{proxy.url}"\napi_key = "{KEY}"\n')
    from_file = run_cli("complete", "Once upon a time", "--greedy", "-n", "6")
    assert from_file.returncode == 0 and from_file.stdout.startswith(", there was"), from_file.stderr
    config.write_text("")
    from_env = run_cli(
        "complete", "Once upon a time", "--greedy", "-n", "6", env={"LLMCLI_BACKEND": proxy.url, **WITH_KEY}
    )
    assert from_env.stdout == from_file.stdout
    assert len(proxy.bodies) == 2


def test_commands_that_need_the_model_itself_ignore_a_configured_backend(
    run_cli: Run, stories: Path, tmp_path: Path
) -> None:
    sample = tmp_path / "story.txt"
    sample.write_text("Once upon a time, there was a little girl named Lily. She loved to play. " * 20)
    gone = {"LLMCLI_BACKEND": f"http://127.0.0.1:{free_port()}"}
    result = run_cli("perplexity", str(sample), "-m", str(stories), "--ctx", "64", env=gone)
    assert result.returncode == 0 and "stories260K.gguf" in result.stdout, result.stderr
