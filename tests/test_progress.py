"""Progress of long jobs: status lines with rate and ETA when output is not a terminal, a bar on one."""

from __future__ import annotations

import io
import time

from aligngym.progress import Progress, duration


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_lines_on_a_timer_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(100, "job", unit="steps", interval_s=0.05, stream=stream)
    progress.update(25)
    time.sleep(0.3)  # no update meanwhile: the timer still reports (a long update phase)
    progress.update(75)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3  # periodic lines, then the final one
    assert lines[0].startswith("job: 25/100 steps (25%), ") and "ETA" in lines[0]
    assert lines[-1].startswith("job: 100/100 steps (100%)") and "ETA" not in lines[-1]
    progress.update(1)
    time.sleep(0.15)
    assert stream.getvalue().splitlines() == lines  # closed: quiet


def test_eta_from_the_rate_since_start():
    now = [100.0]
    progress = Progress(1000, "job", initial=200, interval_s=3600, stream=io.StringIO(), clock=lambda: now[0])
    now[0] += 10.0  # 10 s later, 100 more done: 10/s, 700 left -> 70 s
    progress.update(100)
    line = progress.status()
    assert "300/1000 it (30%), 10 it/s, elapsed 10s, ETA 1m 10s" in line
    progress.close()


def test_disabled_prints_nothing_and_a_terminal_gets_a_bar():
    quiet = io.StringIO()
    progress = Progress(10, "job", enabled=False, interval_s=0.01, stream=quiet)
    progress.update(10)
    time.sleep(0.05)
    progress.close()
    assert quiet.getvalue() == ""
    terminal = _Terminal()
    bar = Progress(10, "job", stream=terminal)
    bar.update(10)
    bar.close()
    assert "10/10" in terminal.getvalue() and "\r" in terminal.getvalue()  # tqdm redraws in place


def test_duration():
    assert [duration(s) for s in (0.4, 42, 185, 3720)] == ["0s", "42s", "3m 05s", "1h 02m"]
