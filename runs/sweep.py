"""Sweeps: run a grid of independent cells in a local process pool or on Ray, one JSONL row per finished cell.

A *cell* is a plain dict (``domain, env, method, noise, rate, seed, config``) that fully describes one
run; the *cell function* (``"module:attr"``, imported in the worker) maps ``(cell, progress)`` to a dict of
scalar results. Every finished cell is appended to ``results.jsonl`` at once (flushed and fsynced), so a
killed sweep re-run with the same output folder skips the finished cells and recomputes none of them.
Distribution is the standard library's process pool or Ray, nothing home-made.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import math
import multiprocessing
import os
import queue
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aligngym.runs.errors import UsageError

log = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
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


def load_function(target: str) -> Callable[..., Any]:
    """Import ``"module:attr"``."""
    module, sep, attr = target.partition(":")
    if not sep:
        raise UsageError(f"cell function {target!r} must be 'module:attribute'")
    return getattr(importlib.import_module(module), attr)


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


def execute_cell(target: str, cell: dict[str, Any], sink: Any = None) -> dict[str, Any]:
    """Run one cell in the current process and return its results row (coordinates, metrics, config, wall_s)."""
    key = cell_key(cell)
    start = time.perf_counter()
    metrics = load_function(target)(cell, _Throttle(sink, key))
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
    """Split the grid into (finished rows already on disk, cells still to run); reject foreign rows."""
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
    done = {r["key"] for r in rows}
    return rows, [c for c in cells if cell_key(c) not in done]


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
    """Run every unfinished cell of the grid and return all rows (old and new) in grid order.

    ``backend="local"`` uses a spawn-started process pool of ``workers`` processes (default: CPU count);
    ``backend="ray"`` submits the same cells as Ray tasks to ``address`` (or a local Ray started here);
    ``runtime_env`` goes to ``ray.init`` (e.g. ``{"env_vars": {"PYTHONPATH": ...}}`` so that workers can
    import a cell function that is not installed).
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend == "local" and (address is not None or runtime_env is not None):
        raise UsageError("--address and a runtime_env are for the ray backend; the local backend runs here")
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UsageError("the ray backend needs ray: pip install 'aligngym[ray]'") from None
    cells = list(cells)
    results_path = Path(out_dir) / results_file
    old_rows, todo = pending_cells(cells, results_path)
    workers = max(1, workers or os.cpu_count() or 1)
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
    order = {cell_key(c): i for i, c in enumerate(cells)}
    unique = {r["key"]: r for r in reversed(read_rows(results_path))}  # the first row of a key wins
    return sorted(unique.values(), key=lambda r: order[r["key"]])


def _local_rows(
    target: str, cells: list[dict[str, Any]], workers: int, view: _ProgressView
) -> Iterator[dict]:
    context = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
    sink = context.Queue()
    with ProcessPoolExecutor(
        max_workers=min(workers, len(cells)), mp_context=context, initializer=_init_worker, initargs=(sink,)
    ) as pool:
        pending = {pool.submit(_pool_cell, target, c) for c in cells}
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            view.drain(sink)
            for future in done:
                yield future.result()
    view.drain(sink)


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
                yield ray.get(ref)
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
    """A rich progress display: one bar for the cells, one per running cell for its steps."""

    def __init__(self, total: int, completed: int, enabled: bool = True) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not enabled,
            transient=False,
        )
        self.cells = self.progress.add_task("cells", total=total, completed=completed)
        self.running: dict[str, Any] = {}

    def __enter__(self) -> _ProgressView:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def drain(self, sink: Any) -> None:
        """Show every step update the workers have sent so far."""
        while True:
            try:
                key, step, total = sink.get_nowait()
            except queue.Empty:  # ray.util.queue.Empty subclasses it
                return
            if key not in self.running:
                label = "  " + "/".join(key.split("/")[1:6])
                self.running[key] = self.progress.add_task(label, total=total)
            self.progress.update(self.running[key], completed=step, total=total)

    def finished(self, row: dict[str, Any]) -> None:
        task = self.running.pop(row["key"], None)
        if task is not None:
            self.progress.remove_task(task)
        self.progress.advance(self.cells)
