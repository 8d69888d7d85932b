"""Decode speed under a JSON Schema (`--schema`) against unconstrained decoding, llmcli and llama.cpp.

The issue's target: constrained decode >= 0.9x unconstrained decode on the bench model (152k
vocabulary). llmcli's engine enforces the grammar as llama.cpp's common sampler does: the token the
other samplers pick is checked against the grammar alone, and only when the grammar rejects it is
the whole vocabulary constrained and the pick made again. Native llama-completion runs the same
way with `-j SCHEMA`, so both are measured on the same model, prompt, -n and threads, greedy:

- llmcli, in-process (LocalEngine.generate), without and with `constraint=compile_schema(schema)`;
- llama-completion without and with `-j SCHEMA` (llama.cpp's C++ converter), and with `--grammar`
  given llmcli's own GBNF (llama-cpp-python's Python converter writes a slightly different grammar:
  one optional space between tokens, where llama.cpp's also allows newlines and indentation).

Three cases (by default `long` and `digits` on the bench model, `extract` on Gemma 3 270M if cached):
- `long`: {"text": string} with minLength 1,000 (llama.cpp refuses repetitions over 2,000), so the
  string cannot close within -n and every run makes the same number of tokens. On the bench model
  (random weights) this is noise inside a string, which allows nearly any token.
- `digits`: {"digits": string} of exactly 1,000 digits (a pattern): the worst case, where the grammar
  allows a handful of the 152k tokens at every step and a random model's pick is rejected nearly
  every time, so nearly every token pays for the whole-vocabulary pass.
- `extract`: a list of {city, country, population: integer} records from a paragraph, one-shot
  prompt; the real model writes valid JSON almost token for token (the common case). It stops where
  the grammar completes (maxItems 6); unconstrained runs make the same number of tokens.

Decode t/s is shown from wall-clock time (every per-token cost, the grammar's included: llama.cpp's
eval counters stop at the logits and leave sampling out) and, for reference, from the counters. The
native wall figure is eval time plus sampling time. Ratios are medians over rounds of the ratio
within a round; a run during which other processes took over 10% of the CPUs (the "others CPU"
column) is left out of them where undisturbed rounds exist. A watched pass reports how often the
one-token check held (the fast path) and where picks were rejected; ctypes timings of
llama_sampler_apply on the whole candidate array in those grammar states say what a rejection
costs, and from the parts a predicted ratio is printed next to the measured one.

    python bench/structured.py [--model PATH ...] [--cases long digits extract] [--rounds 2] [-n 128]
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import OUT, bench_model, median, native_tool, prompt_text

from llmcli.engine import EngineOptions, LocalEngine
from llmcli.engine.binding import llama
from llmcli.engine.grammar import compile_schema
from llmcli.sampling import SamplingConfig

GEMMA = Path("~/.cache/llmcli-test/gemma-3-270m-q4_k_m.gguf").expanduser()
CTX = 2048
CLEAN = 0.1  # a run is clean when other processes took under 10% of the CPUs meanwhile

LONG_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "minLength": 1000}},
    "required": ["text"],
}
DIGITS_SCHEMA = {
    "type": "object",
    "properties": {"digits": {"type": "string", "pattern": "^[0-9]{1000}$"}},
    "required": ["digits"],
}
DIGITS_PROMPT = "The first thousand digits of pi after the decimal point, as JSON: "
EXTRACT_SCHEMA = {
    "type": "object",
    "properties": {
        "cities": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "country": {"type": "string"},
                    "population": {"type": "integer"},
                },
                "required": ["city", "country", "population"],
            },
            "maxItems": 6,  # the six cities of the text: where the grammar completes
        }
    },
    "required": ["cities"],
}
EXTRACT_PROMPT = """Extract every city in the text, with its country and population, as JSON.

Text: Lyon, in France, has 522,250 inhabitants. Porto (Portugal) is home to 231,800 people.
JSON: {"cities": [{"city": "Lyon", "country": "France", "population": 522250}, \
{"city": "Porto", "country": "Portugal", "population": 231800}]}

Text: Kraków is the second city of Poland, with 804,237 people. Across the border, Brno in the Czech
Republic counts 400,566, and Graz, Austria's second city, 298,479. Further south, Ljubljana, the
capital of Slovenia, has 295,504 residents, Zagreb in Croatia 767,131, and Novi Sad in Serbia 341,625.
JSON: """


def long_prompt() -> str:
    return "Describe the following article in one long JSON string.\n\n" + prompt_text(120) + "\n\nJSON: "


def _busy_seconds() -> float:
    """CPU seconds all processes have spent busy since boot (/proc/stat, all CPUs)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def wait_idle(limit_s: float = 20.0) -> None:
    """Wait (up to limit_s) until other processes leave the CPUs idle: this machine is shared."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        busy = _busy_seconds()
        time.sleep(0.5)
        if (_busy_seconds() - busy) / (0.5 * os.cpu_count()) < 0.1:  # type: ignore[operator]
            return


def timed(run):  # type: ignore[no-untyped-def]
    """run(), then the share of the CPUs that other processes took meanwhile (0: a clean run)."""
    wait_idle()
    busy, own, start = _busy_seconds(), _own_seconds(), time.monotonic()
    result = run()
    wall = time.monotonic() - start
    others = (_busy_seconds() - busy) - (_own_seconds() - own)
    result["others"] = max(others, 0.0) / (wall * os.cpu_count())  # type: ignore[operator]
    return result


def completion_tool() -> Path:
    """llama-completion as common.native_tool finds it, else bench/cpu.py's no-AMX build."""
    noamx = OUT / "native-noamx" / "build" / "bin" / "llama-completion"
    usual = os.environ.get("LLAMA_CPP_BIN") or shutil.which("llama-completion")
    if usual or (OUT / "native" / "build" / "bin" / "llama-completion").is_file() or not noamx.is_file():
        return native_tool("llama-completion")
    return noamx


def native_run(model: Path, threads: int, prompt: str, n: int, extra: list[str]) -> dict:
    """llama-completion's own timings: eval ms and runs (decodes after the prompt), sampling ms."""
    cmd = [
        str(completion_tool()),
        "-m", str(model), "-t", str(threads), "-c", str(CTX), "-fa", "off", "-n", str(n),
        "--temp", "0", "--top-k", "1", "--seed", "1", "-no-cnv", "-p", prompt, *extra,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=300)
    log = result.stderr
    if result.returncode != 0:
        raise SystemExit(f"llama-completion failed ({result.returncode}):\n{log[-2000:]}")
    found = re.search(r"(?<!prompt )eval time =\s*([\d.]+) ms /\s*(\d+) runs", log)
    sampling = re.search(r"sampling time =\s*([\d.]+) ms", log)
    if not found or not sampling:
        raise SystemExit(f"no timings in llama-completion's output:\n{log[-2000:]}")
    eval_ms, runs, sample_ms = float(found[1]), int(found[2]), float(sampling[1])
    # sampling time covers runs + 1 sampled tokens; one decode's share is runs / (runs + 1) of it
    wall_ms = eval_ms + sample_ms * runs / (runs + 1)
    return {
        "counters": runs / eval_ms * 1000 if eval_ms else 0.0,
        "wall": runs / wall_ms * 1000 if wall_ms else 0.0,
        "decodes": runs,
        "sample_ms": sample_ms / (runs + 1),
        "text": result.stdout[len(prompt) :] if result.stdout.startswith(prompt) else result.stdout,
    }


def ours_run(engine: LocalEngine, prompt: str, sampling: SamplingConfig) -> dict:
    result = engine.generate(prompt, sampling).run()
    s = result.stats
    # The first token comes from the prompt's logits; a run that ended at end-of-generation decoded
    # once more to find it.
    decodes = s.generated_tokens - (result.finish_reason != "stop")
    return {
        "counters": decodes / s.decode_ms * 1000,
        "wall": decodes / (s.total_ms - s.ttft_ms) * 1000,
        "decodes": decodes,
        "tokens": s.generated_tokens,
        "result": result,
    }


def count_fast_path(engine: LocalEngine, prompt: str, sampling: SamplingConfig) -> tuple[dict, int, list]:
    """A constrained run with llama_sampler_apply watched: (run, one-token checks, and for each
    whole-vocabulary pass the position and the token the grammar rejected there)."""
    lib: Any = llama()  # the llama_cpp module: its attribute is what the engine's closures call
    real = lib.llama_sampler_apply
    checked: list[int] = []
    rejected: list[tuple[int, int]] = []

    def watching(sampler, array):  # type: ignore[no-untyped-def]
        if array._obj.size == 1:
            checked.append(array._obj.data[0].id)
        else:
            rejected.append((len(checked) - 1, checked[-1]))
        return real(sampler, array)

    lib.llama_sampler_apply = watching
    try:
        run = ours_run(engine, prompt, sampling)
    finally:
        lib.llama_sampler_apply = real
    return run, len(checked), rejected


def apply_cost(engine: LocalEngine, grammar: str, tokens: list[int], rejected: list[int]) -> dict[str, Any]:
    """Median ms per call of llama.cpp's grammar sampler on the whole vocabulary, in the grammar states
    where the constrained run (tokens) had picks rejected (up to 8 of them, spread out); on one token
    and accepting one, midway; and llmcli's own work: refilling the candidate array, argmax over it,
    and the plain argmax over the logits row that unconstrained greedy decoding does."""
    import numpy as np

    lib, n_vocab = llama(), engine.n_vocab
    cand = np.zeros(n_vocab, dtype=[("id", np.int32), ("logit", np.float32), ("p", np.float32)])
    ids = np.arange(n_vocab, dtype=np.int32)
    logits = np.random.default_rng(0).standard_normal(n_vocab).astype(np.float32)
    data = cand.ctypes.data_as(ctypes.POINTER(lib.llama_token_data))
    whole = lib.llama_token_data_array(data, n_vocab, -1, False)
    single = (lib.llama_token_data * 1)()
    one = lib.llama_token_data_array(single, 1, -1, False)

    def grammar_after(n: int) -> ctypes.c_void_p:
        sampler = engine.vocabulary.grammar_sampler(grammar)
        for token in tokens[:n]:
            lib.llama_sampler_accept(sampler, token)
        return sampler

    def fill() -> None:
        cand["id"], cand["logit"], cand["p"] = ids, logits, 0.0
        whole.size, whole.selected, whole.sorted = n_vocab, -1, False

    def ms(call, reps: int) -> float:  # type: ignore[no-untyped-def]
        times = []
        for i in range(reps):
            start = time.perf_counter()
            call(i)
            times.append(time.perf_counter() - start)
        return median(times) * 1000

    fill_ms = ms(lambda _: fill(), 15)
    passes, allowed = [], []
    spread = rejected[:: max(len(rejected) // 8, 1)][:8]
    for position in spread:
        state = grammar_after(position)

        def constrain(_: int, g: Any = state) -> None:
            fill()
            lib.llama_sampler_apply(g, ctypes.byref(whole))

        passes.append(ms(constrain, 3) - fill_ms)
        allowed.append(int(np.isfinite(cand["logit"]).sum()))
        lib.llama_sampler_free(state)
    half = len(tokens) // 2
    sampler = grammar_after(half)

    def check(token: int) -> None:
        single[0].id, single[0].logit, single[0].p = token, 0.0, 0.0
        one.size, one.selected = 1, -1
        lib.llama_sampler_apply(sampler, ctypes.byref(one))

    cost = {
        "whole": sum(passes) / len(passes) if passes else 0.0,
        "whole_range": (min(passes), max(passes)) if passes else (0.0, 0.0),
        "allowed": (min(allowed), max(allowed)) if allowed else (0, 0),
        "fill": fill_ms,
        "argmax": ms(lambda _: int(cand["logit"].argmax()), 15),
        "plain_argmax": ms(lambda _: int(logits.argmax()), 15),
        "one": ms(check, 1000),
        "accept": ms(lambda i: lib.llama_sampler_accept(sampler, tokens[half + i]), len(tokens) - half),
    }
    lib.llama_sampler_free(sampler)
    return cost


def measure(model: Path, case: str, args: argparse.Namespace) -> dict:
    schema, prompt = {
        "long": (LONG_SCHEMA, long_prompt()),
        "digits": (DIGITS_SCHEMA, DIGITS_PROMPT),
        "extract": (EXTRACT_SCHEMA, EXTRACT_PROMPT),
    }[case]
    constraint = compile_schema(schema)
    grammar_file = Path(tempfile.mkstemp(suffix=".gbnf")[1])
    grammar_file.write_text(constraint.grammar)
    rows: dict[str, list[dict]] = {k: [] for k in ("ours", "ours_c", "native", "native_j", "native_g")}
    with LocalEngine(model, EngineOptions(n_ctx=CTX, n_threads=args.threads, flash_attn=False)) as engine:
        cap = 2 * args.n if case == "extract" else args.n  # extract: room for the grammar to complete
        constrained = SamplingConfig(temperature=0.0, max_tokens=cap, constraint=constraint)
        # warm-up and counting pass: how often the one-token check held
        first, checks, rejected = count_fast_path(engine, prompt, constrained)
        tokens = first["result"].tokens
        text = lambda t: repr(engine.token_bytes(t).decode(errors="replace"))  # noqa: E731
        # where it replaced the pick, and with what (past the last token: end of generation)
        shown = [
            f"#{i} {text(bad)}->{text(tokens[i]) if i < len(tokens) else 'end'}" for i, bad in rejected[:6]
        ]
        n = first["tokens"]  # `long`, `digits`: args.n; `extract`: where the grammar completed
        plain = SamplingConfig(temperature=0.0, max_tokens=n, ignore_eos=True)
        cost = apply_cost(engine, constraint.grammar, tokens, [i for i, _ in rejected])
        native = functools.partial(native_run, model, args.threads, prompt)
        for _ in range(args.rounds):
            rows["ours"].append(timed(lambda: ours_run(engine, prompt, plain)))
            rows["ours_c"].append(timed(lambda: ours_run(engine, prompt, constrained)))
            rows["native"].append(timed(lambda: native(n, ["--ignore-eos"])))
            rows["native_j"].append(timed(lambda: native(cap, ["-j", json.dumps(schema)])))
            rows["native_g"].append(timed(lambda: native(cap, ["--grammar-file", str(grammar_file)])))
        n_vocab = engine.n_vocab
    grammar_file.unlink()
    return {
        "model": model.name, "case": case, "n": n, "n_vocab": n_vocab, "cost": cost, "rows": rows,
        "checks": checks, "wholes": len(rejected), "rejected": shown, "ours_text": first["result"].text,
    }  # fmt: skip


def paired(rows: dict[str, list[dict]], top: str, bottom: str) -> float:
    """Median over rounds of top's wall t/s / bottom's in the same round (neighbours in time share the
    machine's load), from the rounds where neither run was disturbed, if any."""
    pairs = list(zip(rows[top], rows[bottom], strict=True))
    clean = [(a, b) for a, b in pairs if max(a["others"], b["others"]) < CLEAN] or pairs
    return median([a["wall"] / b["wall"] for a, b in clean])


def report(m: dict) -> None:
    rows = m["rows"]
    print(f"\n## {m['model']} ({m['n_vocab']:,} tokens), case {m['case']}, {m['n']} tokens")
    print(f"{'run':<34}{'decodes':>8}{'wall t/s':>10}{'counters t/s':>14}{'others CPU':>14}")
    labels = {
        "ours": "llmcli unconstrained",
        "ours_c": "llmcli --schema",
        "native": "llama-completion",
        "native_j": "llama-completion -j",
        "native_g": "llama-completion --grammar (ours)",
    }
    for key, label in labels.items():
        runs = rows[key]
        shown = "/".join(str(t) for t in sorted({r["decodes"] for r in runs}))
        wall, counters = median([r["wall"] for r in runs]), median([r["counters"] for r in runs])
        others = "/".join(f"{r['others']:.0%}" for r in runs)
        print(f"{label:<34}{shown:>8}{wall:>10.1f}{counters:>14.1f}{others:>14}")
    print(
        "ratios (wall, median of same-round pairs): constrained / unconstrained: "
        f"llmcli {paired(rows, 'ours_c', 'ours'):.3f}, native -j {paired(rows, 'native_j', 'native'):.3f}, "
        f"native --grammar {paired(rows, 'native_g', 'native'):.3f}"
    )
    print(
        f"  llmcli --schema / native -j {paired(rows, 'ours_c', 'native_j'):.3f}, "
        f"/ native --grammar {paired(rows, 'ours_c', 'native_g'):.3f}; "
        f"unconstrained llmcli / native {paired(rows, 'ours', 'native'):.3f}"
    )
    held = m["checks"] - m["wholes"]
    print(
        f"fast path: {held} of {m['checks']} sampled tokens passed the one-token check "
        f"({held / max(m['checks'], 1):.0%}); {m['wholes']} whole-vocabulary passes"
        + (f", e.g. {' '.join(m['rejected'])}" if m["rejected"] else "")
    )
    c = m["cost"]
    low, high = c["whole_range"]
    print(
        f"per call: grammar on all {m['n_vocab']:,} candidates {c['whole']:.1f} ms "
        f"({low:.1f}-{high:.1f} ms where picks were rejected, "
        f"{c['allowed'][0]:,}-{c['allowed'][1]:,} allowed); one token {c['one'] * 1000:.1f} us, "
        f"accepting one {c['accept'] * 1000:.1f} us; llmcli's candidate array: refilling {c['fill']:.2f} ms, "
        f"argmax {c['argmax']:.2f} ms (logits row {c['plain_argmax']:.2f})"
    )
    # What a constrained token costs on top of an unconstrained one: every pick refills the candidate
    # array and takes its argmax (instead of the logits row's), checks one token and accepts it; a
    # rejected pick adds the whole-vocabulary pass, another refill and argmax.
    fast = c["fill"] + c["argmax"] - c["plain_argmax"] + c["one"] + c["accept"]
    slow = m["wholes"] / m["checks"] * (c["fill"] + c["whole"] + c["argmax"])
    best = max(r["wall"] for r in rows["ours"])  # load only ever slows a run down
    print(
        f"llmcli's grammar work per token: {fast:.2f} ms every pick + {slow:.2f} ms for the rejected; "
        f"at {best:.1f} t/s unconstrained that predicts {1 / (1 + (fast + slow) * best / 1000):.3f}"
    )
    sample = {k: median([r["sample_ms"] for r in rows[k]]) for k in ("native", "native_j", "native_g")}
    print(
        f"native sampling per token: {sample['native']:.2f} ms plain, {sample['native_j']:.2f} ms with -j, "
        f"{sample['native_g']:.2f} ms with --grammar (ours)"
    )
    if m["case"] == "extract":
        print(f"llmcli output: {m['ours_text']!r}")
        print(f"native -j output: {rows['native_j'][0]['text'].strip()!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", nargs="+", help="GGUFs to measure (default: the bench model, and Gemma 3 270M if cached)"
    )
    ap.add_argument(
        "--cases",
        nargs="+",
        choices=["long", "digits", "extract"],
        help="default: long and digits on the bench model, extract on others",
    )
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-n", type=int, default=128, help="tokens to generate (extract: twice this is the cap)")
    args = ap.parse_args()

    models = [Path(p).expanduser() for p in args.model] if args.model else [bench_model()]
    if not args.model and GEMMA.exists():
        models.append(GEMMA)
    start = time.perf_counter()
    print(
        f"{args.threads} threads, greedy, flash attention off, {args.rounds} rounds (medians), context {CTX}"
    )
    for model in models:
        cases = args.cases or (["long", "digits"] if model == bench_model() else ["extract"])
        for case in cases:
            report(measure(model, case, args))
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
