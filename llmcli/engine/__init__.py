"""Model engines: the contract commands program against, and the engines that fulfil it.

contract: Engine, Capabilities, Generation, Completion, Stats. binding: the only module that imports
llama_cpp (loading, logging, build facts). options: how a local model is loaded. vocabulary: a
model's tokenizer. context: the llama.cpp context, KV memory, batch and samplers the local engines
share; output: their sampled tokens turned into text. local, parallel: one generation at a time, or
several sequences in one context. speculative: drafters for speculative decoding. remote (imported
on its own): an OpenAI-compatible server. Beside them: promptcache, threads, crash, hardware,
streaming. llama_cpp is imported only when a model is first loaded, so commands that do not
generate start fast.
"""

from llmcli.engine.binding import BuildInfo, build_info, cpu_report, set_verbose
from llmcli.engine.contract import Capabilities, Completion, Engine, Generation, Stats, Unsupported
from llmcli.engine.local import LocalEngine
from llmcli.engine.options import CACHE_TYPES, EngineOptions, default_ctx
from llmcli.engine.parallel import ParallelEngine
from llmcli.engine.vocabulary import Vocabulary

__all__ = [
    "CACHE_TYPES",
    "BuildInfo",
    "Capabilities",
    "Completion",
    "Engine",
    "EngineOptions",
    "Generation",
    "LocalEngine",
    "ParallelEngine",
    "Stats",
    "Unsupported",
    "Vocabulary",
    "build_info",
    "cpu_report",
    "default_ctx",
    "set_verbose",
]
