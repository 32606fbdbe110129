"""Progress of long loops, readable in a terminal and in a log file.

On a terminal it is a tqdm bar. Anywhere else (a Snakemake or SLURM log) it is one plain line every
`interval` seconds, and one at the start and the end, so a 12-hour evaluation shows where it is without
flooding its log with carriage returns:

    evaluate hard_sample: 512/1024 rollouts (50%), 12.3 rollouts/s, elapsed 41 s, ETA 42 s

The interval defaults to 30 s; the environment variable SOFTCOT_PROGRESS_INTERVAL overrides it.
"""
from __future__ import annotations

import os
import sys
import time


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """`update(n, **postfix)` after each unit of work; `close()` at the end (also a context manager)."""

    def __init__(self, total: int, desc: str, unit: str = "it", enabled: bool = True, initial: int = 0,
                 interval: float | None = None, stream=None):
        self.total, self.desc, self.unit, self.done = total, desc, unit, initial
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.interval = float(os.environ.get("SOFTCOT_PROGRESS_INTERVAL", 30.0) if interval is None else interval)
        self.postfix: dict = {}
        self._bar = None
        self._t0 = self._last = time.monotonic()
        self._start = initial
        if not enabled:
            return
        if getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=self.stream)
        else:
            self._line()

    def update(self, n: int = 1, **postfix) -> None:
        self.done += n
        self.postfix.update(postfix)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(**self.postfix)
        elif time.monotonic() - self._last >= self.interval:
            self._line()

    def write(self, text: str) -> None:
        """A message between progress lines (tqdm.write on a terminal)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            self._line(final=True)
        self.enabled = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _line(self, final: bool = False) -> None:
        now = time.monotonic()
        self._last = now
        elapsed = now - self._t0
        rate = (self.done - self._start) / elapsed if elapsed > 0 else 0.0
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        parts = [f"{self.desc}: {self.done}/{self.total} {self.unit}{pct}"]
        if self.done > self._start:
            parts.append(f"{rate:.3g} {self.unit}/s")
        parts.append(f"elapsed {_duration(elapsed)}")
        if not final and rate > 0 and self.total:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        if final:
            parts.append("done" if self.done >= self.total else "stopped")
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        print(", ".join(parts), file=self.stream, flush=True)
