"""A plain-text progress bar on stderr, with no dependency.

On a terminal the bar redraws in place; in a log (not a tty) it writes one line per quarter,
so a CI log shows progress without thousands of carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


class Progress:
    """One bar per stage: start(label, total), advance(n) as work is done, done()."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.label, self.total, self.count = "", 0, 0
        self.started = self.drawn_at = 0.0
        self.quarter = -1

    def start(self, label: str, total: int) -> None:
        self.label, self.total, self.count = label, max(total, 0), 0
        self.started = time.monotonic()
        self.quarter = -1
        self._draw(force=True)

    def step(self, label: str, total: int, note: str = "") -> None:
        """Report a stage that finished before it could be shown, e.g. reading a file."""
        self.label, self.total, self.count = label, max(total, 0), total
        self.started = time.monotonic()
        self._draw(force=True, final=True, note=note)

    def advance(self, n: int = 1) -> None:
        self.count = min(self.total, self.count + n) if self.total else self.count + n
        self._draw()

    def done(self, note: str = "") -> None:
        self.count = max(self.count, self.total)
        self._draw(force=True, final=True, note=note)

    def _draw(self, force: bool = False, final: bool = False, note: str = "") -> None:
        if not self.enabled:
            return
        share = self.count / self.total if self.total else (1.0 if final else 0.0)
        now = time.monotonic()
        if self.tty:
            if not force and now - self.drawn_at < 0.1:
                return
        else:
            quarter = int(share * 4)
            # Quarters 1-3 and the end: a start line or a repeated quarter is only noise.
            if not final and (quarter == self.quarter or quarter in (0, 4)):
                return
            self.quarter = quarter
        self.drawn_at = now
        filled = int(share * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        text = (f"{self.label:<28} [{bar}] {share:4.0%} {self.count:>7,}/{self.total:,}"
                f"  {now - self.started:5.1f}s")
        if note:
            text += f"  {note}"
        if self.tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
