"""Documents per minute through an OpenAI-compatible server: `--backend URL --parallel N` vs N = 1.

Starts native llama.cpp's llama-server with the bench model and N slots (continuous batching,
`-np N`, each slot 2,048 tokens), then runs the installed `llmcli summarize` and `llmcli translate`
over the same folder of news articles (../shared/eval) against it, greedy, and prints
documents/minute, the speedup over one request at a time, and whether the outputs are identical.

    python bench/backend.py [--docs 8] [--threads 2] [--slots 4] [--rounds 1]
"""

from __future__ import annotations

import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from common import arguments, bench_model, native_tool
from parallel import PER_SEQUENCE_CTX, compare, write_docs


def start_server(model: Path, port: int, slots: int, threads: int) -> subprocess.Popen[bytes]:
    cmd = [str(native_tool("llama-server")), "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["-t", str(threads), "-np", str(slots), "-c", str(PER_SEQUENCE_CTX * slots), "-fa", "on"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("llama-server did not come up")


def main() -> None:
    args = arguments(__doc__, docs=8, threads=2, slots=4, port=8181, rounds=1)
    model = bench_model()
    server = start_server(model, args.port, args.slots, args.threads)
    url = f"http://127.0.0.1:{args.port}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            docs = Path(tmp) / "docs"
            docs.mkdir()
            write_docs(docs, args.docs)
            print(f"{args.docs} docs, bench model, llama-server -np {args.slots}, {args.threads} threads")
            compare(
                docs,
                args.docs,
                [1, args.slots],
                args.rounds,
                lambda task, n: [
                    *task,
                    "--backend",
                    url,
                    "--parallel",
                    str(n),
                    "--ctx",
                    str(PER_SEQUENCE_CTX),
                ],
            )
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
