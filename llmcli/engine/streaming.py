"""Turning a stream of token bytes into text: incremental UTF-8 and stop-string matching."""

from __future__ import annotations

import codecs
from collections.abc import Iterable


class StopMatcher:
    """Finds stop strings in streamed text, holding back only what could still become one."""

    def __init__(self, stops: Iterable[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Add text; return (text safe to emit now, whether a stop string was reached)."""
        if not self.stops:
            return text, False
        buf = self._held + text
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            self._held = ""
            return buf[: min(hits)], True
        keep = self._partial_suffix(buf)
        self._held = buf[len(buf) - keep :]
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        """Release the held-back text at the end of generation."""
        held, self._held = self._held, ""
        return held

    def _partial_suffix(self, buf: str) -> int:
        """Length of the longest suffix of buf that is a proper prefix of a stop string."""
        longest = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(buf)), longest, -1):
                if stop.startswith(buf[-k:]):
                    longest = k
                    break
        return longest


class TextAssembler:
    """Token pieces (bytes) in, complete text out: UTF-8 split across tokens is reassembled."""

    def __init__(self, stops: Iterable[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = StopMatcher(stops)

    def feed(self, piece: bytes) -> tuple[str, bool]:
        """Add one token's bytes; return (text to emit, whether a stop string was reached)."""
        return self._stops.feed(self._decoder.decode(piece))

    def finish(self) -> str:
        """Text still held (incomplete UTF-8 becomes U+FFFD, partial stop strings are released)."""
        text, _ = self._stops.feed(self._decoder.decode(b"", final=True))
        return text + self._stops.flush()
