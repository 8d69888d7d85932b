"""The command line: parse, call the core, render. The only package that imports typer.

Command modules register their commands on `app` when imported, which happens lazily: only the
command that runs is imported (see `llmcli.cli.app.COMMANDS`).
"""

from llmcli.cli.app import app, main

__all__ = ["app", "main"]
