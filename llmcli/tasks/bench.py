"""`bench`: llama-bench's pp and tg tests, measured through the engine's own generation path.

pp N evaluates a prompt of N random tokens from an empty KV cache; its speed comes from llama.cpp's
counters and its time to first token from the wall clock. tg N generates N tokens greedily, past
end-of-generation tokens, after a one-token prompt (BOS where the model adds one, like llama-bench):
that prompt and the N - 1 decodes after it are N single-token evaluations at positions 0..N-1,
exactly what llama-bench's tg N times.
"""

from __future__ import annotations

import random
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmcli import __version__
from llmcli.config import parse_flash_attn
from llmcli.engine import BuildInfo, LocalEngine, Stats
from llmcli.errors import UsageError
from llmcli.sampling import SamplingConfig

PROMPT_SEED = 1234


@dataclass(frozen=True)
class BenchPlan:
    """Which tests to run (0 tokens skips one) and how often, each after one uncounted warm-up run."""

    prompt_tokens: int = 512
    gen_tokens: int = 128
    repetitions: int = 3

    def validate(self) -> None:
        """Raise UsageError for counts that describe no benchmark."""
        checks = [
            (self.prompt_tokens >= 0, f"--prompt-tokens must be >= 0, got {self.prompt_tokens}"),
            (self.gen_tokens >= 0, f"--gen-tokens must be >= 0, got {self.gen_tokens}"),
            (self.prompt_tokens + self.gen_tokens > 0, "--prompt-tokens and --gen-tokens are both 0"),
            (self.repetitions > 0, f"--repetitions must be > 0, got {self.repetitions}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def check_context(self, n_ctx: int) -> None:
        """The context must hold the prompt plus the generation, as llama-bench sizes its own."""
        need = self.prompt_tokens + max(self.gen_tokens, 1)  # pp samples one token after its prompt
        if need > n_ctx:
            raise UsageError(
                f"the context holds {n_ctx:,} tokens but -p {self.prompt_tokens} -n {self.gen_tokens} "
                f"need {need:,}",
                hint=f"pass --ctx {need} or more, or lower -p/-n",
            )


@dataclass(frozen=True)
class Samples:
    """One measure over a test's repetitions, with the mean and sample stddev llama-bench reports."""

    values: list[float]

    @property
    def mean(self) -> float:
        return statistics.mean(self.values)

    @property
    def stddev(self) -> float:
        return _stddev(self.values)

    def to_dict(self, unit: str) -> dict[str, object]:
        """llama-bench's keys for it: avg_<unit>, stddev_<unit> and samples_<unit>, rounded to 3 places."""
        return {
            f"avg_{unit}": round(self.mean, 3),
            f"stddev_{unit}": round(self.stddev, 3),
            f"samples_{unit}": [round(v, 3) for v in self.values],
        }


@dataclass
class TestResult:
    """One test over its repetitions: tokens/s per run, and time to first token for pp."""

    name: str  # pp512, tg128: llama-bench's names
    n_prompt: int
    n_gen: int
    ts: Samples  # tokens per second
    ttft_ms: Samples | None = None  # time to first token, pp only

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"name": self.name, "n_prompt": self.n_prompt, "n_gen": self.n_gen}
        data |= self.ts.to_dict("ts")
        if self.ttft_ms is not None:
            data |= self.ttft_ms.to_dict("ttft_ms")
        return data


def _stddev(values: list[float]) -> float:
    """Sample standard deviation, as llama-bench reports it (0 for a single run)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def random_tokens(engine: LocalEngine, n: int, seed: int = PROMPT_SEED) -> list[int]:
    """n tokens drawn from the vocabulary with a fixed seed, after BOS where the model adds one.

    Control and end-of-generation tokens are skipped (they render as no text): real prompts hold none.
    """
    rng = random.Random(seed)
    tokens = engine.tokenize("")[:n]  # [BOS] for models that add it, else nothing
    while len(tokens) < n:
        token = rng.randrange(engine.n_vocab)
        if not engine.is_eog(token) and engine.token_bytes(token):
            tokens.append(token)
    return tokens


def _run(engine: LocalEngine, prompt: list[int], n_gen: int) -> Stats:
    """One greedy generation of exactly n_gen tokens after prompt, from an empty KV cache."""
    engine.reset()
    completion = engine.generate(
        prompt, SamplingConfig(temperature=0.0, max_tokens=n_gen, ignore_eos=True)
    ).run()
    return completion.stats


def bench_prompt(engine: LocalEngine, n_prompt: int, repetitions: int) -> TestResult:
    """pp N: prompt tokens/s from llama.cpp's counters, and wall-clock time to the first token."""
    prompt = random_tokens(engine, n_prompt)
    _run(engine, prompt, 1)
    runs = [_run(engine, prompt, 1) for _ in range(repetitions)]
    ts, ttft_ms = Samples([s.prompt_tps for s in runs]), Samples([s.ttft_ms for s in runs])
    return TestResult(f"pp{n_prompt}", n_prompt, 0, ts, ttft_ms)


def bench_gen(engine: LocalEngine, n_gen: int, repetitions: int) -> TestResult:
    """tg N: N single-token evaluations (the one-token prompt, then N - 1 decodes) per second."""
    prompt = random_tokens(engine, 1)
    _run(engine, prompt, n_gen)
    runs = [_run(engine, prompt, n_gen) for _ in range(repetitions)]
    ts = Samples([n_gen / (s.prompt_ms + s.decode_ms) * 1000 for s in runs])
    return TestResult(f"tg{n_gen}", 0, n_gen, ts)


def run_bench(
    engine: LocalEngine, plan: BenchPlan, progress: Callable[[str], None] = lambda _text: None
) -> list[TestResult]:
    """Run the plan's pp then tg test on engine; progress hears the name of each test as it starts."""
    plan.validate()
    plan.check_context(engine.n_ctx)
    runs = f"warm-up + {plan.repetitions} run{'s' if plan.repetitions > 1 else ''}"
    results = []
    if plan.prompt_tokens:
        progress(f"pp{plan.prompt_tokens} ({runs})")
        results.append(bench_prompt(engine, plan.prompt_tokens, plan.repetitions))
    if plan.gen_tokens:
        progress(f"tg{plan.gen_tokens} ({runs})")
        results.append(bench_gen(engine, plan.gen_tokens, plan.repetitions))
    return results


def peak_rss_bytes() -> int | None:
    """This process's peak resident memory (model pages read through mmap included); None on Windows."""
    try:
        import resource
    except ImportError:
        return None
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024  # macOS counts bytes, Linux KiB


def gpu_backends(system_info: str) -> str:
    """The GPU backends llama.cpp names in its system info ("CUDA : ARCHS = 890 | CPU : AVX2 = 1 | ...")."""
    gpus = [name for name in re.findall(r"(\w+) : ", system_info) if name != "CPU"]
    return ",".join(gpus) or "GPU"


@dataclass(frozen=True)
class BenchReport:
    """A benchmark's tests, with the model, the settings they ran under, peak memory and the build."""

    name: str  # how the model is shown
    path: Path
    architecture: str
    quantization: str
    size_bytes: int
    params: int
    n_ctx: int
    n_batch: int
    threads: int
    gpu_layers: int
    backend: str  # CPU, or the GPU backends
    flash_attn: bool
    repetitions: int
    tests: list[TestResult]
    peak_rss_bytes: int | None
    build: BuildInfo

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": {
                "name": self.name,
                "path": str(self.path),
                "architecture": self.architecture,
                "quantization": self.quantization,
                "size_bytes": self.size_bytes,
                "params": self.params,
            },
            "settings": {
                "n_ctx": self.n_ctx,
                "n_batch": self.n_batch,
                "threads": self.threads,
                "gpu_layers": self.gpu_layers,
                "backend": self.backend,
                "flash_attn": self.flash_attn,
                "repetitions": self.repetitions,
            },
            "tests": [t.to_dict() for t in self.tests],
            "peak_rss_bytes": self.peak_rss_bytes,
            "build": {"llmcli": __version__, **asdict(self.build)},
        }


def bench(
    engine: LocalEngine,
    plan: BenchPlan,
    *,
    name: str,
    flash_attn: str | None,
    build: BuildInfo,
    progress: Callable[[str], None] = lambda _text: None,
) -> BenchReport:
    """Run the plan on engine and report it; flash_attn is the setting (on, off, auto).

    progress hears the settings in a line first, then the name of each test as it starts.
    """
    plan.check_context(engine.n_ctx)
    ngl = engine.gpu_layers if build.gpu_offload else 0
    flash = parse_flash_attn(flash_attn)
    if flash is None:  # the engine's rule for auto: on exactly when layers are offloaded
        flash = ngl != 0
    backend = gpu_backends(build.system_info) if ngl else "CPU"
    progress(
        f"{engine.model_path.name}: context {engine.n_ctx:,}, threads {engine.n_threads}, {backend}, "
        f"flash attention {'on' if flash else 'off'}"
    )
    tests = run_bench(engine, plan, progress)
    info = engine.info
    return BenchReport(
        name=name,
        path=engine.model_path,
        architecture=info.architecture,
        quantization=info.quantization,
        size_bytes=info.file_size,
        params=info.n_params,
        n_ctx=engine.n_ctx,
        n_batch=engine.n_batch,
        threads=engine.n_threads,
        gpu_layers=ngl,
        backend=backend,
        flash_attn=flash,
        repetitions=plan.repetitions,
        tests=tests,
        peak_rss_bytes=peak_rss_bytes(),
        build=build,
    )
