"""`autoresearch worker`: run the trials of `--backend workers` searches on this host.

    autoresearch worker --database-url postgresql://USER@HOST/DB [--gpus 0-7 | --slots N]
                        [--task-root DIR] [--work-dir DIR] [--search ID ...] [--grace S] [--json]

It claims the queued trials of every search in that database whose backend is `workers` (or
of the `--search` ones), runs them sandboxed on this host's GPUs (one trial per GPU, leased
host-wide) and records their outcomes and heartbeats; see `servers/app/remote.py`. SIGTERM or
Ctrl-C: stop claiming, let what runs finish for `--grace` seconds, then hand it back to the
queue; a second signal hands it back at once. Progress: a live table on a terminal, one line
per finished trial otherwise, one JSON object per finished trial with `--json`.

Environment, read here: `AR_SLOT_LOCK_DIR` (as `--slot-lock-dir`), for simulated hosts only.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

err = Console(stderr=True)
DEFAULT_WORK_DIR = Path("~/.cache/autoresearch/worker")


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(2)


def parse_gpus(text: str) -> list[str]:
    """'0-3,6' -> ['0', '1', '2', '3', '6'].

    Raises:
        ValueError: anything else; the message shows the form.
    """
    ids: list[str] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if m is None or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ValueError(f"--gpus {text!r}: give GPU ids as a list of numbers and ranges, e.g. 0-7 or 0,2,5")
        ids += [str(i) for i in range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1)]
    if len(set(ids)) != len(ids):
        raise ValueError(f"--gpus {text!r} names a GPU twice")
    return ids


def _pool(gpus: str | None, slots: int | None) -> Any:
    from evaluator_service.slots import SlotPool, default_lock_dir

    if gpus is not None and slots is not None:
        raise _fail("give --gpus (this host's GPUs to use) or --slots (CPU slots), not both")
    if slots is not None and slots < 1:
        raise _fail(f"--slots {slots}: give at least 1")
    if gpus is None:
        return SlotPool.detect(cpu_slots=slots) if slots is None else SlotPool([], cpu_slots=slots,
                                                                                lock_dir=default_lock_dir())
    try:
        return SlotPool(parse_gpus(gpus), lock_dir=default_lock_dir())
    except ValueError as e:
        raise _fail(str(e)) from None


def _store(url: str) -> Any:
    from sqlalchemy.exc import SQLAlchemyError

    from lineage.sql import SqlLineageStore

    if not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        raise _fail(f"--database-url {url!r}: workers reach a search's lineage (snapshots included) through "
                    "PostgreSQL; give postgresql://USER@HOST[:PORT]/DB, the URL the search was created with")
    try:
        return SqlLineageStore(url)
    except SQLAlchemyError as e:
        raise _fail(f"cannot reach the lineage database: {str(e).splitlines()[0]}") from None


class _Progress:
    """What this worker runs: a live table on a terminal, lines or JSON otherwise."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console()
        self.live = not as_json and self.console.is_terminal

    def finished(self, trial: Any) -> None:
        row = {"search": trial.search_id, "exp_id": trial.exp_id, "status": trial.status.value,
               "score": trial.score, "worker": trial.worker, "failure": trial.failure[:200]}
        if self.as_json:
            print(json.dumps(row), flush=True)
        else:
            score = f" score {trial.score:.6g}" if trial.score is not None else ""
            why = f" ({trial.failure[:120]})" if trial.failure and trial.score is None else ""
            self.console.print(f"{trial.search_id} exp {trial.exp_id}: {trial.status.value}{score}{why}",
                               highlight=False)

    def table(self, worker: Any, note: str) -> Table:
        table = Table(title=f"{socket.gethostname()}: {worker.backend.capacity} slot(s), "
                            f"{len(worker.workers)} search(es), {worker.finished} finished{note}")
        for head in ("search", "exp", "specialist", "running"):
            table.add_column(head)
        now = time.time()
        for r in sorted(worker.running.copy().values(), key=lambda r: r.since):  # copy: slots change it
            table.add_row(r.search_id, str(r.exp_id), r.specialist, f"{now - r.since:.0f}s")
        return table


def worker_cmd(
    database_url: Annotated[str, typer.Option("--database-url", help="the PostgreSQL lineage the searches live in")],
    gpus: Annotated[str | None, typer.Option("--gpus", help="this host's GPUs to use, e.g. 0-7 or 0,2 (default: all)")] = None,
    slots: Annotated[int | None, typer.Option("--slots", help="CPU slots, for CPU tasks (default: cpus/2 without GPUs)")] = None,
    task_root: Annotated[Path | None, typer.Option(
        "--task-root", help="where tasks fetched by `tasks prepare` live on this host (DIR/NAME), if not where "
                            "the search recorded", resolve_path=True)] = None,
    work_dir: Annotated[Path, typer.Option("--work-dir", help="this worker's private dir: trees, data, snapshot "
                                                              "cache")] = DEFAULT_WORK_DIR,
    search: Annotated[list[str] | None, typer.Option("--search", help="serve only this search (repeatable)")] = None,
    grace: Annotated[float, typer.Option("--grace", help="on SIGTERM, seconds to let running trials finish "
                                                         "before handing them back to the queue")] = 60.0,
    slot_lock_dir: Annotated[Path | None, typer.Option(
        "--slot-lock-dir", envvar="AR_SLOT_LOCK_DIR", help="where GPU leases are locked (default /run/lock): only "
        "for simulated hosts, several workers on one machine each standing for a host", resolve_path=True)] = None,
    unisolated: Annotated[bool, typer.Option("--unisolated", help="run trials without the sandbox (every outcome "
                                                                  "says so)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per finished trial on stdout")] = False,
) -> None:
    """Run the trials of `--backend workers` searches on this host until SIGTERM."""
    from evaluator_service.slots import set_default_lock_dir
    from servers.app.remote import RemoteWorker

    if grace < 0:
        raise _fail(f"--grace {grace}: give 0 or more seconds")
    set_default_lock_dir(slot_lock_dir)
    pool = _pool(gpus, slots)
    store = _store(database_url)
    work = work_dir.expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    progress = _Progress(as_json)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    worker = RemoteWorker(store, work, pool, tasks_home=task_root, searches=search,
                          unisolated=unisolated, on_finish=progress.finished)
    try:
        _serve(worker, grace, progress)
    finally:
        worker.close()
        store.close()


def _serve(worker: Any, grace: float, progress: _Progress) -> None:
    """Run `worker` in a thread; signals stop it (see the module docstring)."""
    stop, signals = threading.Event(), []

    def on_signal(signum: int, _frame: Any) -> None:
        signals.append(time.monotonic())
        stop.set()
        if len(signals) > 1:
            worker.abandon(f"signal {signal.Signals(signum).name} twice")

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    added = worker.discover()
    if not progress.as_json:
        err.print(f"worker {worker.id}: {worker.backend.capacity} {worker.backend.pool.kind} slot(s); serving "
                  f"{', '.join(added) or 'no search yet (new ones are picked up)'}", highlight=False)
    for sid, why in worker.skipped.items():
        err.print(f"[yellow]skipped[/yellow] search {sid}: {why}", highlight=False)
    thread = threading.Thread(target=worker.run, args=(stop,), name="remote-worker")
    thread.start()
    live = Live(progress.table(worker, ""), console=progress.console, refresh_per_second=2) if progress.live else None
    try:
        if live is not None:
            live.start()
        while thread.is_alive():
            thread.join(0.5)
            if signals and time.monotonic() - signals[0] > grace:
                worker.abandon(f"stopped, and --grace {grace:g}s passed")
            if live is not None:
                live.update(progress.table(worker, ", stopping" if signals else ""))
    finally:
        if live is not None:
            live.stop()


def register(app: typer.Typer) -> None:
    app.command("worker")(worker_cmd)
