"""Progress of a long job: a bar with ETA on a terminal, a one-line status every ``interval_s`` otherwise.

A log file (``make demo > log``, a batch system) gets lines such as
``sb3 ppo Pendulum-v1: 12288/50000 steps (25%), 1020 steps/s, elapsed 12s, ETA 37s`` instead of either
a carriage-return bar or silence. Both go to stderr, so stdout keeps only results.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

STATUS_INTERVAL_S = 30.0


def duration(seconds: float) -> str:
    """``42s``, ``3m 05s``, ``1h 02m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


class Progress:
    """``update(n)`` as work is done, ``close()`` at the end.

    ``enabled=False`` prints nothing. On a terminal it is a tqdm bar (rate and ETA); otherwise a status
    line every ``interval_s`` seconds (from a timer thread, so also while the work between two updates
    is long, e.g. a PPO update phase) and one at the end.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "it",
        initial: int = 0,
        enabled: bool = True,
        interval_s: float = STATUS_INTERVAL_S,
        stream: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.initial = self.done = int(initial)
        self.enabled, self.interval_s = enabled, interval_s
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.start = clock()
        self.bar: Any = None
        self._stop = threading.Event()
        if enabled and _is_terminal(self.stream):
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total,
                initial=self.done,
                desc=desc,
                unit=unit,
                file=self.stream,
                dynamic_ncols=True,
            )
        elif enabled:
            threading.Thread(target=self._status_every_interval, daemon=True).start()

    def _status_every_interval(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.status()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)

    def status(self) -> str:
        """Write (and return) the one-line status."""
        elapsed = self.clock() - self.start
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
        percent = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = (
            f", ETA {duration((self.total - self.done) / rate)}"
            if rate > 0 and self.done < self.total
            else ""
        )
        line = (
            f"{self.desc}: {self.done}/{self.total} {self.unit}{percent}, {_rate(rate)} {self.unit}/s, "
            f"elapsed {duration(elapsed)}{eta}"
        )
        print(line, file=self.stream, flush=True)
        return line

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled:
            self._stop.set()
            self.enabled = False
            self.status()


def _rate(rate: float) -> str:
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
