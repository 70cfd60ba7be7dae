"""Sweeps: run a grid of independent cells in a local process pool or on Ray, one JSONL row per finished cell.

A *cell* is a plain dict (``domain, env, method, noise, rate, seed, config``) that fully describes one
run; the *cell function* (``"module:attr"``, imported in the worker) maps ``(cell, progress)`` to a dict of
scalar results. Every finished cell is appended to ``results.jsonl`` at once (flushed and fsynced), so a
killed sweep re-run with the same output folder skips the finished cells and recomputes none of them.
A cell that raises gets an *error row* (its key and the error's line) and the other cells still run;
the sweep then raises :class:`~aligngym.runs.errors.SweepError` naming the failed cells, and a re-run
retries only those. One sweep at a time writes into a folder (an ``flock`` on ``.sweep.lock``, released
by the kernel however the process ends); SIGTERM stops the pool's workers before the sweep exits.
Distribution is the standard library's process pool or Ray, nothing home-made.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import multiprocessing
import os
import queue
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from aligngym.entry_points import load_entry_point
from aligngym.runs.errors import SweepError, UsageError
from aligngym.runs.folders import check_writable_folder

log = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
LOCK_FILE = ".sweep.lock"
STATUS_EVERY_S = 30.0
"""Seconds between status lines when the output is not a terminal (also one line per finished cell)."""
CELL_KEYS = ("domain", "env", "method", "noise", "rate", "seed")
BACKENDS = ("local", "ray")
ProgressFn = Callable[[int, int], None]


def cell_key(cell: dict[str, Any]) -> str:
    """A stable id of a cell: its grid coordinates plus a hash of its whole description (config included)."""
    text = json.dumps({k: cell.get(k) for k in (*CELL_KEYS, "config")}, sort_keys=True, default=str)
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    coords = "/".join(str(cell.get(k)) for k in CELL_KEYS)
    return f"{coords}/{digest}"


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSONL results file; a torn last line (a kill mid-write) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s:%d is not valid JSON (a torn write?); ignored", path, number)
    return rows


def is_error(row: dict[str, Any]) -> bool:
    """Whether a row records a failed cell (``error`` holds the exception's line) rather than results."""
    return row.get("error") is not None


def finished_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first successful row of each cell key, in file order: duplicates and error rows dropped.

    Two sweeps that once ran into one folder (before it was locked) wrote each cell twice; counting both
    would count one seed twice. What reports and resumption read.
    """
    seen: set[str] = set()
    out = []
    for row in rows:
        key = row.get("key")
        if key in seen or is_error(row):
            continue
        seen.add(key)
        out.append(row)
    return out


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append one JSON line durably (flush + fsync); start a fresh line after a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(row, sort_keys=True, default=str) + "\n"
    with open(path, "a+b") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                text = "\n" + text
        handle.write(text.encode())
        handle.flush()
        os.fsync(handle.fileno())


class _Throttle:
    """Forward ``(step, total)`` to a queue at most every ``interval`` seconds (plus the final step)."""

    def __init__(self, sink: Any, key: str, interval: float = 0.5) -> None:
        self.sink, self.key, self.interval, self.last = sink, key, interval, 0.0

    def __call__(self, step: int, total: int) -> None:
        now = time.monotonic()
        if self.sink is None or (now - self.last < self.interval and step < total):
            return
        self.last = now
        try:
            self.sink.put_nowait((self.key, int(step), int(total)))
        except (queue.Full, ValueError, OSError):  # a full or closed progress queue never stops the work
            log.debug("progress update for %s dropped", self.key)


def error_row(cell: dict[str, Any], error: BaseException) -> dict[str, Any]:
    """The row of a cell that raised: coordinates, key, config and the error as one line."""
    message = " ".join(str(error).split()) or "(no message)"
    row = {k: cell.get(k) for k in CELL_KEYS}
    row.update(
        key=cell_key(cell),
        config=cell.get("config", {}),
        error=f"{type(error).__name__}: {message}"[:500],
    )
    return row


def execute_cell(target: str, cell: dict[str, Any], sink: Any = None) -> dict[str, Any]:
    """Run one cell in the current process and return its results row (coordinates, metrics, config, wall_s)."""
    key = cell_key(cell)
    start = time.perf_counter()
    metrics = load_entry_point(target, what="cell function")(cell, _Throttle(sink, key))
    row = {k: cell.get(k) for k in CELL_KEYS}
    row.update({k: json_scalar(v) for k, v in metrics.items()})
    row.update(key=key, config=cell.get("config", {}), wall_s=round(time.perf_counter() - start, 2))
    return row


def json_scalar(value: Any) -> Any:
    """Rows hold ``null`` where a metric does not apply or is undefined (never NaN: strict JSON rejects it)."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# The progress queue of a pool worker, set by the pool initializer (a multiprocessing queue cannot be pickled
# into submit() arguments).
_WORKER_SINK: Any = None


def _init_worker(sink: Any) -> None:
    global _WORKER_SINK
    _WORKER_SINK = sink


def _pool_cell(target: str, cell: dict[str, Any]) -> dict[str, Any]:
    return execute_cell(target, cell, _WORKER_SINK)


def pending_cells(
    cells: list[dict[str, Any]], results_path: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split the grid into (finished rows on disk, cells still to run: never run or failed); reject foreign rows."""
    keys = {cell_key(c) for c in cells}
    if len(keys) != len(cells):
        raise UsageError("the sweep grid lists the same cell twice; make the recipe's lists unique")
    rows = read_rows(results_path)
    foreign = [r for r in rows if r.get("key") not in keys]
    if foreign:
        raise UsageError(
            f"{results_path} holds {len(foreign)} row(s) of a different sweep (e.g. {foreign[0].get('key')!r}); "
            "use another --out folder or the same recipe"
        )
    finished = finished_rows(rows)
    done = {r["key"] for r in finished}
    return finished, [c for c in cells if cell_key(c) not in done]


def run_sweep(
    cells: Iterable[dict[str, Any]],
    cell_function: str,
    out_dir: str | Path,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    results_file: str = RESULTS_FILE,
    runtime_env: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run every unfinished (or failed) cell of the grid and return all rows (old and new) in grid order.

    Raises :class:`SweepError` after the last cell if any cell failed (every other row is on disk).

    ``backend="local"`` uses a spawn-started process pool of ``workers`` processes (default: CPU count);
    ``backend="ray"`` submits the same cells as Ray tasks to ``address`` (or a local Ray started here);
    ``runtime_env`` goes to ``ray.init`` (e.g. ``{"env_vars": {"PYTHONPATH": ...}}`` so that workers can
    import a cell function that is not installed).
    """
    check_sweep_options(backend, address, runtime_env)
    cells = list(cells)
    results_path = Path(out_dir) / results_file
    with folder_lock(out_dir):
        old_rows, todo = pending_cells(cells, results_path)
        workers = max(1, workers or os.cpu_count() or 1)
        failed: list[dict[str, Any]] = []
        if todo:
            log.info(
                "%d of %d cells to run (%d finished before) -> %s",
                len(todo),
                len(cells),
                len(old_rows),
                results_path,
            )
            with _ProgressView(len(cells), len(old_rows), enabled=progress) as view:
                if backend == "local":
                    rows = _local_rows(cell_function, todo, workers, view)
                else:
                    rows = _ray_rows(cell_function, todo, workers, address, runtime_env, view)
                for row in rows:
                    append_row(results_path, row)
                    view.finished(row)
                    if is_error(row):
                        failed.append(row)
        order = {cell_key(c): i for i, c in enumerate(cells)}
        by_key = {r["key"]: r for r in finished_rows(read_rows(results_path))}
        by_key.update({r["key"]: r for r in failed if r["key"] not in by_key})
    if failed:
        raise SweepError(failed_message(failed, len(cells), results_path))
    return sorted(by_key.values(), key=lambda r: order[r["key"]])


def check_sweep_options(backend: str, address: str | None = None, runtime_env: dict | None = None) -> None:
    """UsageError for an unknown backend, ray options without ray, or a missing ray install."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend == "local" and (address is not None or runtime_env is not None):
        raise UsageError("--address and a runtime_env are for the ray backend; the local backend runs here")
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UsageError("the ray backend needs ray: pip install 'aligngym[ray]'") from None


def failed_message(failed: list[dict[str, Any]], total: int, results_path: Path) -> str:
    """One line: how many cells failed, which (key and error, the first three), how to retry."""
    shown = "; ".join(f"{r['key']}: {r['error']}" for r in failed[:3])
    more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
    return (
        f"{len(failed)} of {total} cells failed ({shown}{more}); the other rows are in {results_path} "
        "and re-running the same command retries only the failed cells"
    )


_HELD_LOCKS: set[str] = set()


@contextmanager
def folder_lock(out_dir: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``out_dir/.sweep.lock``; a second process is refused with one line.

    Re-entrant within a process (a benchmark holds it across its reference and grid sweeps). The kernel
    drops the lock when the process ends, however it ends, so a crashed sweep never leaves it behind.
    """
    folder = Path(out_dir)
    key = str(folder.resolve())
    if key in _HELD_LOCKS:
        yield
        return
    check_writable_folder(folder, "output folder")
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a")  # noqa: SIM115 (held open for the lock's lifetime)
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"{str(folder)!r} is in use by another running sweep; wait for it to finish or use another --out folder"
            ) from None
        _HELD_LOCKS.add(key)
        try:
            yield
        finally:
            _HELD_LOCKS.discard(key)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def _local_rows(
    target: str, cells: list[dict[str, Any]], workers: int, view: _ProgressView
) -> Iterator[dict]:
    context = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
    sink = context.Queue()
    with (
        _terminate_on_sigterm(),
        ProcessPoolExecutor(
            max_workers=min(workers, len(cells)),
            mp_context=context,
            initializer=_init_worker,
            initargs=(sink,),
        ) as pool,
    ):
        try:
            futures = {pool.submit(_pool_cell, target, c): c for c in cells}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                view.drain(sink)
                for future in done:
                    try:
                        yield future.result()
                    except Exception as exc:  # noqa: BLE001 (any cell error, or a dead worker's BrokenProcessPool)
                        yield error_row(futures[future], exc)
        except BaseException:
            _stop_workers(pool)  # SIGTERM, Ctrl-C or a failed write: no worker outlives the sweep
            raise
    view.drain(sink)


class _Terminated(SystemExit):
    """Raised in the main thread by SIGTERM so that ``finally`` blocks (worker shutdown) run."""


@contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into an exception while the pool runs (main thread only; the old handler is restored)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes now (``shutdown`` alone would wait for running cells)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public handle before 3.14
    pool.shutdown(wait=False, cancel_futures=True)  # (which forgets the processes: read them first)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()


def _ray_rows(
    target: str,
    cells: list[dict[str, Any]],
    workers: int,
    address: str | None,
    runtime_env: dict[str, Any] | None,
    view: _ProgressView,
) -> Iterator[dict]:
    import ray
    from ray.util.queue import Queue as RayQueue

    with _ray_session(ray, address, workers, runtime_env):
        sink = RayQueue(maxsize=10_000)
        remote_cell = ray.remote(num_cpus=1)(execute_cell)
        refs = {remote_cell.remote(target, c, sink): c for c in cells}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=0.25)
            view.drain(sink)
            for ref in done:
                try:
                    yield ray.get(ref)
                except Exception as exc:  # noqa: BLE001 (RayTaskError wraps the cell's exception)
                    cause = getattr(exc, "cause", None)
                    yield error_row(refs[ref], cause if isinstance(cause, BaseException) else exc)
        view.drain(sink)
        sink.shutdown()


@contextmanager
def _ray_session(
    ray: Any, address: str | None, workers: int, runtime_env: dict[str, Any] | None
) -> Iterator[None]:
    """Connect to ``address`` or start a private local Ray (no dashboard, ``workers`` CPUs, a temp folder)."""
    if ray.is_initialized():
        yield
        return
    if address is not None:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local Ray needs no token
        temp_root = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
        Path(temp_root).mkdir(parents=True, exist_ok=True)
        ray.init(
            include_dashboard=False,
            num_cpus=workers,
            _temp_dir=tempfile.mkdtemp(prefix="ray", dir=temp_root),
            runtime_env=runtime_env,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        yield
    finally:
        ray.shutdown()


class _ProgressView:
    """Progress of a sweep. On a terminal: a rich display, one bar (with ETA) for the cells and one per running
    cell for its steps. Elsewhere (a log file, CI): one status line per finished cell and at least every
    ``STATUS_EVERY_S`` seconds, e.g. ``12/40 cells, 3m elapsed, ETA 7m``."""

    def __init__(
        self, total: int, completed: int, enabled: bool = True, interactive: bool | None = None
    ) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.total, self.completed, self.enabled = total, completed, enabled
        self.interactive = sys.stdout.isatty() if interactive is None else interactive
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            disable=not (enabled and self.interactive),
            transient=False,
        )
        self.cells = self.progress.add_task("cells", total=total, completed=completed)
        self.running: dict[str, Any] = {}
        self.started = self.last_line = time.monotonic()
        self.finished_here = 0
        self.failed = 0

    def __enter__(self) -> Self:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def drain(self, sink: Any) -> None:
        """Show every step update the workers have sent so far (and a status line when one is due)."""
        while True:
            try:
                key, step, total = sink.get_nowait()
            except queue.Empty:  # ray.util.queue.Empty subclasses it
                break
            if key not in self.running:
                label = "  " + "/".join(key.split("/")[1:6])
                self.running[key] = self.progress.add_task(label, total=total)
            self.progress.update(self.running[key], completed=step, total=total)
        if time.monotonic() - self.last_line >= STATUS_EVERY_S:
            self._status_line()

    def finished(self, row: dict[str, Any]) -> None:
        task = self.running.pop(row["key"], None)
        if task is not None:
            self.progress.remove_task(task)
        self.progress.advance(self.cells)
        self.completed += 1
        self.finished_here += 1
        self.failed += is_error(row)
        self._status_line()

    def status(self) -> str:
        """``12/40 cells, 3m elapsed, ETA 7m`` (ETA from this run's pace; ``?`` before the first cell)."""
        elapsed = time.monotonic() - self.started
        left = self.total - self.completed
        eta = _duration(elapsed / self.finished_here * left) if self.finished_here else "?"
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.completed}/{self.total} cells{failed}, {_duration(elapsed)} elapsed, ETA {eta}"

    def _status_line(self) -> None:
        self.last_line = time.monotonic()
        if self.enabled and not self.interactive:
            print(self.status(), flush=True)


def _duration(seconds: float) -> str:
    """``45s``, ``3m``, ``2h05m``: a coarse duration for status lines."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
