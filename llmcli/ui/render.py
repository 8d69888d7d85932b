"""Presentation: errors, stats footers and notes on stderr, and the reports commands print (a table,
or JSON with --json). Pure text; styled only on a color terminal."""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmcli.engine import Completion, Stats
from llmcli.engine.hardware import CpuReport
from llmcli.errors import LlmcliError
from llmcli.reasoning import Thought
from llmcli.ui.environment import Environment

if TYPE_CHECKING:
    from llmcli.models.listing import ModelRow
    from llmcli.tasks.bench import BenchReport
    from llmcli.tasks.evaluate import ModelScores, PerplexityReport, SummaryReport, TranslationReport

DIM, RED, RESET = "\x1b[2m", "\x1b[31m", "\x1b[0m"


def error_line(err: LlmcliError) -> str:
    """One line: the problem, then what to do about it."""
    return f"error: {err.message}" + (f" ({err.hint})" if err.hint else "")


def stats_line(stats: Stats) -> str:
    """A one-line summary of a generation's speed."""
    evaluated = stats.prompt_tokens - stats.cached_tokens
    prompt = f"prompt {stats.prompt_tokens} tokens"
    if stats.cached_tokens:
        prompt += f" ({stats.cached_tokens} cached)"
    if evaluated and stats.prompt_ms:
        prompt += f", {stats.prompt_tps:.1f} t/s"
    generated = f"generated {stats.generated_tokens} tokens, {stats.decode_tps:.1f} t/s"
    if stats.reasoning_tokens:
        answer = stats.generated_tokens - stats.reasoning_tokens
        generated += f" ({stats.reasoning_tokens} thinking, {answer} answer)"
    first = f"first token {stats.ttft_ms:.0f} ms"
    # A server that reports no usage leaves the prompt uncounted: better unsaid than "0 tokens".
    return " · ".join([prompt, generated, first] if stats.prompt_tokens else [generated, first])


def note(env: Environment, text: str, *, error: bool = False) -> None:
    """A line for the user on stderr (dim, or red for errors, on a color terminal)."""
    if env.color:
        text = f"{RED if error else DIM}{text}{RESET}"
    env.stderr.write(text + "\n")
    env.stderr.flush()


class ThoughtPrinter:
    """A thinking model's thinking on stderr, dimmed, while it streams: only on a terminal, unless hidden.

    Call it with each thought; `end()` closes the block with a blank line before the answer.
    """

    def __init__(self, env: Environment, *, hide: bool = False) -> None:
        self.env = env
        self.shown = not hide and env.stderr_isatty
        self._open = False

    def __call__(self, text: str) -> None:
        if not self.shown or not text:
            return
        self._open = True
        self.env.stderr.write(f"{DIM}{text}{RESET}" if self.env.color else text)
        self.env.stderr.flush()

    def end(self) -> None:
        if self._open:
            self._open = False
            self.env.stderr.write("\n\n")
            self.env.stderr.flush()


class PromptMeter:
    """How a long prompt's evaluation goes, on stderr: tokens done, rate and time left.

    On a terminal one line, redrawn (from a second in), and cleared at the end; elsewhere a line
    every ten seconds, so a log shows that work goes on.
    """

    def __init__(self, env: Environment, *, after: float = 1.0, every: float = 10.0) -> None:
        self.env = env
        self.after, self.every = after, every
        self._start: float | None = None
        self._shown = 0.0  # when a line was last written (0: never)

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._start is None or done <= 0:
            self._start = now
        elapsed = now - self._start
        tty = self.env.stderr_isatty
        if done >= total:
            if tty and self._shown:
                self.env.stderr.write("\r\x1b[K")
                self.env.stderr.flush()
            self._start, self._shown = None, 0.0
            return
        due = elapsed >= self.after if tty else (elapsed >= self.every and now - self._shown >= self.every)
        if not due or elapsed <= 0:
            return
        rate = done / elapsed
        left = (total - done) / rate if rate > 0 else 0.0
        line = self._line(done, total, rate, left)
        if tty:
            self.env.stderr.write(f"\r{DIM}{line}{RESET}\x1b[K" if self.env.color else f"\r{line}\x1b[K")
        else:
            self.env.stderr.write(line + "\n")
        self.env.stderr.flush()
        self._shown = now

    def _line(self, done: int, total: int, rate: float, left: float) -> str:
        return f"prompt {done:,} / {total:,} tokens · {rate:,.0f} t/s · {_duration(left)} left"


class PieceMeter(PromptMeter):
    """How a document cut into pieces goes (translate's segments, summarize's and extract's chunks):
    pieces done, time per piece and time left, shown as PromptMeter shows a prompt."""

    def _line(self, done: int, total: int, rate: float, left: float) -> str:
        return f"piece {done:,} / {total:,} · {_duration(1 / rate)} each · {_duration(left)} left"


def thinking_note(asked: bool, thinks: bool) -> str | None:
    """The note for --think or --reasoning-budget given to a model whose template shows no thinking."""
    if asked and not thinks:
        return "this model's chat template shows no thinking: --think and --reasoning-budget change nothing"
    return None


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02} s"


_AMX_VERDICTS = {
    "absent": "not on this CPU",
    "works": "works here (probed), in use",
    "faults": "advertised but faults here (probed): kept off, repacked kernels stay on",
    "refused": "advertised, but the kernel refuses it: not used",
    "untested": "advertised, but the probe could not run: kept off to be safe",
    "off": "off (LLMCLI_AMX=off)",
    "on": "on without probing (LLMCLI_AMX=on)",
}


def amx_verdict(cpu: CpuReport) -> str:
    """What the AMX probe found and what llmcli does about it."""
    text = _AMX_VERDICTS.get(cpu.amx, cpu.amx)
    if cpu.amx in ("faults", "untested", "off") and not cpu.amx_guarded:
        text += "; the guard could not be set, so all repacked kernels are off (slower)"
    return text


def finish_note(completion: Completion) -> str | None:
    """Why generation ended, when the user may not expect it."""
    if completion.finish_reason == "context":
        return "stopped: the context window is full (raise --ctx for longer output)"
    return None


def _progress_bar(env: Environment, *columns: Any) -> Any:
    """A started rich progress bar on stderr: the task's description, a bar, then columns."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    console = Console(file=env.stderr, no_color=not env.color)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), *columns, console=console, transient=True)
    bar.start()
    return bar


class DownloadBar:
    """Download progress on stderr: a rich bar (size, speed, ETA) on a terminal, plain lines otherwise."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self._bar: Any = None
        self._task: Any = None
        self._name = ""

    def note(self, text: str) -> None:
        self.finish()
        note(self.env, text)

    def start(self, name: str, total: int, done: int) -> None:
        self.finish()
        self._name = name
        if not self.env.stderr_isatty:
            resumed = f", resuming at {done / 1e6:.0f} MB" if done else ""
            note(self.env, f"downloading {name} ({total / 1e6:.0f} MB{resumed})")
            return
        from rich.progress import DownloadColumn, TimeRemainingColumn, TransferSpeedColumn

        self._bar = _progress_bar(self.env, DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        self._task = self._bar.add_task(name, total=total, completed=done)

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            note(self.env, f"downloaded {self._name}")


class PlainScreen:
    """The chat screen for pipes, NO_COLOR and --plain: answers as raw text on stdout, notes on stderr."""

    def __init__(self, env: Environment, *, hide_thinking: bool = False) -> None:
        self.env = env
        self.thoughts = ThoughtPrinter(env, hide=hide_thinking)

    def answer(self, pieces: Any) -> str:
        """Stream an answer to stdout (a thinking model's thinking dimmed on stderr); return its text."""
        parts = []
        try:
            for piece in self._answer_only(pieces):
                parts.append(piece)
                self.env.write(piece)
        finally:
            if parts and not parts[-1].endswith("\n"):
                self.env.write("\n")
        return "".join(parts)

    def _answer_only(self, pieces: Any) -> Iterator[str]:
        """The answer's pieces; the thinking's go to the thought printer on the way."""
        for piece in pieces:
            if isinstance(piece, Thought):
                self.thoughts(piece)
            else:
                self.thoughts.end()
                yield piece

    def info(self, text: str) -> None:
        self.env.stderr.write(text + "\n")
        self.env.stderr.flush()

    def dim(self, text: str) -> None:
        note(self.env, text)

    def error(self, text: str) -> None:
        note(self.env, f"error: {text}", error=True)


class RichScreen(PlainScreen):
    """The chat screen on a terminal: answers rendered as Markdown while they stream."""

    def __init__(self, env: Environment, *, hide_thinking: bool = False) -> None:
        super().__init__(env, hide_thinking=hide_thinking)
        from rich.console import Console

        self.console = Console(highlight=False)

    def answer(self, pieces: Any) -> str:
        from llmcli.ui.mdstream import MarkdownStream

        with MarkdownStream(self.console) as stream:
            for piece in self._answer_only(pieces):
                stream.feed(piece)
        return stream.close()


def chat_screen(env: Environment, plain: bool, *, hide_thinking: bool = False) -> PlainScreen:
    """Rich Markdown on a color terminal, raw text otherwise."""
    rich_ok = env.stdout_isatty and not plain and not env.environ.get("NO_COLOR")
    return (RichScreen if rich_ok else PlainScreen)(env, hide_thinking=hide_thinking)


class BatchProgress:
    """Files done/total, the current file and ETA on stderr (a bar on a terminal, lines otherwise)."""

    def __init__(self, env: Environment, *, lines: bool = True) -> None:
        self.env = env
        self.lines = lines  # off the terminal: a line per item, or nothing (items too many to list)
        self._bar: Any = None
        self._task: Any = None
        self._current = ""
        self._meter = PromptMeter(env)  # a long prompt's progress off the terminal, or before the bar
        self._pieces = PieceMeter(env)  # ... and a document's pieces

    def __call__(self, done: int, total: int, current: str) -> None:
        self._current = current[-40:]
        if not self.env.stderr_isatty:
            if current and self.lines:
                note(self.env, f"[{done + 1}/{total}] {current}")
            return
        if self._bar is None:
            from rich.progress import MofNCompleteColumn, TimeRemainingColumn

            self._bar = _progress_bar(self.env, MofNCompleteColumn(), TimeRemainingColumn())
            self._task = self._bar.add_task("", total=total)
        self._bar.update(self._task, completed=done, description=self._current)

    def prompt(self, done: int, total: int) -> None:
        """How the current item's long prompt goes: beside its name in the bar on a terminal, else as
        PromptMeter's lines."""
        self._beside(self._meter, "prompt", done, total)

    def pieces(self, done: int, total: int) -> None:
        """How the current item's pieces go: beside its name in the bar on a terminal, else as
        PieceMeter's lines."""
        self._beside(self._pieces, "piece", done, total)

    def _beside(self, meter: PromptMeter, word: str, done: int, total: int) -> None:
        if self._bar is None:
            meter(done, total)
            return
        what = f"{self._current} · {word} {done:,}/{total:,}" if done < total else self._current
        self._bar.update(self._task, description=what)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _width(text: str) -> int:
    """Terminal columns of text: East Asian wide and fullwidth characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def markdown_table(rows: list[dict[str, str]], left: tuple[str, ...] = ("model",)) -> str:
    """A Markdown table laid out like llama-bench's: `left` columns left-aligned, the rest right."""
    heads = list(rows[0])
    widths = {h: max(_width(h), *(_width(r[h]) for r in rows)) for h in heads}

    def line(cells: dict[str, str]) -> str:
        pads = {h: " " * (widths[h] - _width(cells[h])) for h in heads}
        aligned = (cells[h] + pads[h] if h in left else pads[h] + cells[h] for h in heads)
        return "| " + " | ".join(aligned) + " |"

    rule = {h: "-" * widths[h] if h in left else "-" * (widths[h] - 1) + ":" for h in heads}
    return "\n".join([line({h: h for h in heads}), line(rule), *map(line, rows)])


# --- reports -------------------------------------------------------------------------------------


def show_report(
    env: Environment, data: Any, text: str, legend: str = "", *, json_out: bool, indent: int | None = None
) -> None:
    """data as one JSON document with --json; else text on stdout, and its legend on stderr."""
    if json_out:
        env.write(json.dumps(data, ensure_ascii=False, indent=indent) + "\n")
        return
    env.write(text + "\n")
    if legend:
        note(env, legend)


GIB, MIB = 1024**3, 1024**2


def _binary_size(n_bytes: int) -> str:
    return f"{n_bytes / GIB:.2f} GiB" if n_bytes >= GIB else f"{n_bytes / MIB:.2f} MiB"


def _params(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def bench_text(report: BenchReport) -> str:
    """llama-bench's table (a row per test), then time to first token and peak memory."""
    common = {
        "model": report.name,
        "quant": report.quantization,
        "size": _binary_size(report.size_bytes),
        "params": _params(report.params),
        "backend": report.backend,
        "ngl": str(report.gpu_layers),
        "threads": str(report.threads),
        "fa": "on" if report.flash_attn else "off",
    }
    rows = [{**common, "test": t.name, "t/s": f"{t.ts.mean:.2f} ± {t.ts.stddev:.2f}"} for t in report.tests]
    lines = [markdown_table(rows), ""]
    lines += [
        f"time to first token ({t.name}): {t.ttft_ms.mean:.1f} ± {t.ttft_ms.stddev:.1f} ms"
        for t in report.tests
        if t.ttft_ms is not None
    ]
    peak = report.peak_rss_bytes
    memory = _binary_size(peak) if peak is not None else "unknown"
    lines.append(f"peak memory: {memory} resident (model file {_binary_size(report.size_bytes)})")
    return "\n".join(lines)


def perplexity_table(report: PerplexityReport) -> str:
    rows = [
        {
            "model": name,
            "ctx": str(report.ctx),
            "windows": str(result.windows),
            "scored tokens": f"{result.scored:,}",
            "PPL": f"{result.ppl:.4f}",
            "±": f"{result.error:.4f}",
            "t/s": f"{result.tokens_per_second:.1f}",
        }
        for name, result in report.models
    ]
    return markdown_table(rows)


def _scores_table(models: list[ModelScores], count: str, columns: dict[str, str]) -> str:
    """A row per model: the items scored (under count), each mean (column: its score's key), speed."""
    rows = [
        {
            "model": m.run.model,
            count: str(len(m.per_item)),
            **{column: f"{m.means[key]:.2f}" for column, key in columns.items()},
            "tok/s": f"{m.run.tokens_per_second:.1f}",
        }
        for m in models
    ]
    return markdown_table(rows)


def summary_scores(report: SummaryReport) -> tuple[str, str]:
    """The ROUGE table, and its legend."""
    columns = {"ROUGE-1": "rouge1", "ROUGE-2": "rouge2", "ROUGE-L": "rougeL"}
    legend = (
        f"ROUGE F1 x 100 (rouge-score, {report.tokenizer}), best over each record's references; "
        f"outputs kept in {report.out_dir}"
    )
    return _scores_table(report.models, "records", columns), legend


def translation_scores(report: TranslationReport) -> tuple[str, str]:
    """The BLEU and chrF table, and its legend: sacrebleu's signatures."""
    signatures = report.signatures
    legend = f"BLEU: {signatures['bleu']}\nchrF: {signatures['chrf']}\noutputs kept in {report.out_dir}"
    return _scores_table(report.models, "lines", {"BLEU": "bleu", "chrF": "chrf"}), legend


def models_table(rows: list[ModelRow]) -> str:
    """The models, a line each, and how to use and download them."""
    from llmcli.models.listing import human_size

    lines = [f"{'NAME':<22} {'PARAMS':>6} {'QUANT':<7} {'SIZE':>8}  {'DOWNLOADED':<10} DESCRIPTION"]
    for r in rows:
        name = r.name + (" *" if r.default else "")
        have = human_size(r.on_disk) if r.on_disk else ("yes" if r.downloaded else "-")
        lines.append(f"{name:<22} {r.params:>6} {r.quant:<7} {r.size:>8}  {have:<10} {r.description}")
    lines.append("* default model. Use NAME or NAME:QUANT with -m; `llmcli models pull NAME` downloads.")
    return "\n".join(lines)
