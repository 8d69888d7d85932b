"""The command line: parse, call the core, render. The only package that imports typer."""

from llmcli.cli import bench, chat, complete, evaluate, models, summarize, translate  # noqa: F401  (registers the commands)
from llmcli.cli.app import app, main

__all__ = ["app", "main"]
