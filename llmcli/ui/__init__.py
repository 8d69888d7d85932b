"""The terminal: the injected environment, rendering, streamed Markdown and the REPL."""
