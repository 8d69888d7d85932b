"""Prompt-lookup speculation through the CLI: `llmcli complete` with it on (the default) and off.

Runs the installed `llmcli complete -m MODEL --greedy -n 128 --json [--no-speculative]`, the
prompt on stdin as a user pipes it, for three grounded tasks and text with no repeats:

- tldr: a news article (../shared/eval/summ), then "TL;DR:"
- quote: the article, then an instruction to quote its first paragraph and its first words
- code: a Python module (llmcli/sampling.py) in a ``` fence as one pastes it, then "The same
  module, with type hints kept:" and a new fence with the module's first lines: the model rewrites it
- code, unfenced: the module as `cat file.py` sends it, then "# The same module, with type hints
  kept:" and its first lines; there Gemma copies the docstring and then writes functions of its own
- no repeats: FLORES-200 English lines from 16 articles, joined (unrelated sentences), for the
  model to continue; greedy with --repeat-penalty 1.3, since plain greedy decoding of a small base
  model soon loops on its own sentences, which prompt lookup then drafts (85% accepted on Gemma)
- tldr, sampled / no repeats, sampled: the same prompts, temperature 0.8 instead of --greedy, with
  --seed 1234 + the round for both modes: once a verified batch's rounding changes one sample, on
  and off write different texts, and the sampler's time depends on the text (wall t/s of four seeds,
  off: 72.7-79.3 on Gemma), so one seed would compare texts, not modes

Each case runs on and off, alternating which goes first, for --rounds rounds. Decode t/s is
generated_tokens / decode_ms (llama.cpp's counters, the same formula both ways); "wall" is
generated_tokens / (total_ms - ttft_ms), which adds llmcli's own per-token work (drafting,
sampling, detokenizing); it is the one to read, since llama.cpp's counters book less than all of a
batched decode's time. --ignore-eos makes every run decode exactly -n tokens. llmcli keeps the
verification costs it measures in its cache folder (step-costs.json): only the first run on a
machine sizes its drafts from the prior.

    python bench/cli_speculation.py [--model PATH] [--rounds 3] [--tokens 128] [--draft 8]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from common import LLMCLI, OUT, ROOT, SHARED, chosen_model, llmcli_json, median


def article() -> str:
    line = (SHARED / "eval" / "summ" / "summeval_cnndm_gold.jsonl").read_text().splitlines()[0]
    return json.loads(line)["article"]


SEED = 1234


def seeded(sampling: list[str]) -> bool:
    return "--greedy" not in sampling


def cases() -> dict[str, tuple[str, list[str]]]:
    """name -> (stdin text, sampling arguments); a case at a temperature gets a seed per round."""
    text = article()
    first = re.split(r"(?<=[.!?]) ", text, maxsplit=1)[0]
    module = (ROOT / "llmcli" / "sampling.py").read_text()
    head = "\n".join(module.splitlines()[:3])
    flores = (SHARED / "eval" / "flores200_devtest" / "eng_Latn.devtest").read_text().splitlines()
    prose = " ".join(flores[::63][:16])  # ~400 tokens of sentences from 16 different articles
    greedy, sampled = ["--greedy"], ["--temperature", "0.8"]
    return {
        "tldr": (f"{text}\n\nTL;DR:", greedy),
        "quote": (
            f"{text}\n\nQuote the article's first paragraph word for word:\n\n{' '.join(first.split()[:6])}",
            greedy,
        ),
        "code": (
            f"```python\n{module}```\n\nThe same module, with type hints kept:\n\n```python\n{head}\n",
            greedy,
        ),
        "code, unfenced": (f"{module}\n\n# The same module, with type hints kept:\n\n{head}\n", greedy),
        "no repeats": (prose, [*greedy, "--repeat-penalty", "1.3"]),
        "tldr, sampled": (f"{text}\n\nTL;DR:", sampled),
        "no repeats, sampled": (prose, sampled),
    }


def identical(off: list[dict], on: list[dict], per_seed: bool) -> str:
    """Whether each round's texts are the same both ways; else from which character the first pair
    that differs does, and (for a fixed input) whether runs of one mode differ among themselves."""
    pairs = [(a["text"], b["text"]) for a, b in zip(off, on, strict=True)]
    same = sum(a == b for a, b in pairs)
    unstable = [m for m, xs in (("off", off), ("on", on)) if len({x["text"] for x in xs}) > 1]
    if same == len(pairs) and (per_seed or not unstable):
        return f"yes ({same} seeds)" if per_seed else "yes"
    a, b = next(((a, b) for a, b in pairs if a != b), pairs[0])
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    if per_seed:
        return f"{same}/{len(pairs)} seeds; else from char {at}"
    note = f"; {'/'.join(unstable)} runs differ among themselves" if unstable else ""
    return f"no, from char {at}{note}"


def run(model: str, stdin: str, sampling: list[str], args: argparse.Namespace, speculative: bool) -> dict:
    flags = ["--speculative", "--draft-tokens", str(args.draft)] if speculative else ["--no-speculative"]
    return llmcli_json(
        "complete", "-m", model, *sampling, "-n", str(args.tokens), "--ignore-eos",
        "--threads", str(args.threads), "--ctx", str(args.ctx), *flags, stdin=stdin,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a GGUF to measure instead of the bench model")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--draft", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--show", action="store_true", help="print the start of each case's text")
    ap.add_argument("--case", action="append", help="a case to run, by name; repeat for more (default: all)")
    args = ap.parse_args()
    model = str(chosen_model(args.model))
    chosen = cases()
    if args.case:
        unknown = set(args.case) - set(chosen)
        if unknown:
            ap.error(f"unknown case {', '.join(sorted(unknown))}; the cases: {', '.join(chosen)}")
        chosen = {k: v for k, v in chosen.items() if k in args.case}

    start = time.perf_counter()
    runs: dict[str, dict[bool, list[dict]]] = {name: {False: [], True: []} for name in chosen}
    for r in range(args.rounds):
        for name, (stdin, sampling) in chosen.items():
            for speculative in (False, True) if r % 2 == 0 else (True, False):
                seed = ["--seed", str(SEED + r)] if seeded(sampling) else []
                runs[name][speculative].append(run(model, stdin, [*sampling, *seed], args, speculative))

    def tps(rec: dict) -> float:
        return rec["generated_tokens"] / rec["decode_ms"] * 1000

    def wall(rec: dict) -> float:
        return rec["generated_tokens"] / (rec["total_ms"] - rec["ttft_ms"]) * 1000

    print(f"model {model}, {LLMCLI.name} complete -n {args.tokens} --draft-tokens {args.draft}, "
          f"{args.threads} threads, medians of {args.rounds} alternating rounds "
          f"({time.perf_counter() - start:.0f} s)\n")  # fmt: skip
    print("| case | prompt tokens | off t/s | on t/s | ratio | wall off t/s | wall on t/s | wall ratio "
          "| accepted / drafted | identical |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for name, by in runs.items():
        off, on = by[False], by[True]
        t_off, t_on = median([tps(x) for x in off]), median([tps(x) for x in on])
        w_off, w_on = median([wall(x) for x in off]), median([wall(x) for x in on])
        drafted = sum(x["drafted_tokens"] for x in on)
        accepted = sum(x["accepted_tokens"] for x in on)
        same = identical(off, on, seeded(chosen[name][1]))
        rate = f"{accepted / drafted:.0%} ({accepted // len(on)}/{drafted // len(on)})" if drafted else "-"
        print(f"| {name} | {on[0]['prompt_tokens']} | {t_off:.1f} | {t_on:.1f} | {t_on / t_off:.3f} "
              f"| {w_off:.1f} | {w_on:.1f} | {w_on / w_off:.3f} | {rate} | {same} |")  # fmt: skip
        summary[name] = {"off": off, "on": on}
        if args.show:
            print(f"\n{name}: {on[0]['text'][:300]!r}\n")
    OUT.mkdir(parents=True, exist_ok=True)
    record = json.dumps({"model": model, "runs": summary}, indent=1)
    (OUT / f"cli_speculation-{Path(model).stem}.json").write_text(record)


if __name__ == "__main__":
    main()
