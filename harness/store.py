"""SQLite result store (stdlib ``sqlite3``, WAL) and the plugin that feeds it.

One database file holds every run: its config, status, error, timings,
environment, metrics, diagnostics and per-item scores (one row per run and
metric: the item ids as a JSON list, their values as little-endian float64,
so that reading a 10,000-run store's scores is one row per run, not one per
query).  A run is written in a
single transaction, so a process killed at any moment (``kill -9``) leaves
either the whole run or nothing; WAL mode lets readers (``harness results``)
work while a bench writes.  Only a session's main process writes.

Several ``harness bench`` processes may share one store.  Each *claims* the
runs it is about to execute (table ``claims``: host, pid) and skips runs
another live process has claimed, so no run executes twice; storing a run
releases its claim in the same transaction, and a claim whose process has
died (``kill -9``) is taken over by the next session.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import operator
import os
import socket
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UsageError
from .plugin import hookimpl
from .types import RunResult, TaskInfo

if TYPE_CHECKING:
    from .session import Session
    from .types import Run

__all__ = ["DEFAULT_STORE", "ResultStore"]

DEFAULT_STORE = Path("harness-results") / "results.db"
SCHEMA = 2

_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    task TEXT NOT NULL, family TEXT NOT NULL, model TEXT NOT NULL,
    loss TEXT NOT NULL, sampler TEXT NOT NULL, seed INTEGER NOT NULL,
    status TEXT NOT NULL, error TEXT,
    main_metric TEXT NOT NULL, main_score REAL,
    dataset_sha256 TEXT NOT NULL,
    started_at TEXT, finished_at TEXT,
    record TEXT NOT NULL             -- the full RunResult as JSON (no per-item)
);
CREATE INDEX IF NOT EXISTS runs_task ON runs(task, model, loss, sampler);
CREATE TABLE IF NOT EXISTS item_scores (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    metric TEXT NOT NULL,
    items TEXT NOT NULL,             -- JSON list of item ids
    item_values BLOB NOT NULL,       -- float64 little-endian, one per item
    PRIMARY KEY (run_id, metric)
);
CREATE TABLE IF NOT EXISTS tasks (   -- what the leaderboard needs per task
    name TEXT PRIMARY KEY,
    info TEXT NOT NULL               -- TaskInfo as JSON
);
CREATE TABLE IF NOT EXISTS claims (  -- runs a live session is executing
    run_id TEXT PRIMARY KEY,
    host TEXT NOT NULL, pid INTEGER NOT NULL, claimed_at TEXT NOT NULL
);
"""
_VALUES = "<f8"


class ResultStore:
    """Read and write results in one SQLite file."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists() and not create:
            raise UsageError(
                f"result store {self.path} does not exist (run `harness bench` first)"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA:
                raise UsageError(
                    f"result store {self.path} has schema {version}, newer than "
                    f"this harness ({SCHEMA}); upgrade negbench"
                )
            with self._db:
                self._db.executescript(_DDL)
                if version == 1:
                    _migrate_from_1(self._db)
                self._db.execute(f"PRAGMA user_version = {SCHEMA}")
        except sqlite3.DatabaseError as exc:
            raise UsageError(
                f"result store {self.path}: not a negbench result database ({exc}); "
                "nothing was changed — pass another --store"
            ) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------

    def save(self, result: RunResult) -> None:
        """Insert or replace one run atomically (run row and per-item scores)."""
        record = json.dumps(result.to_dict(per_item=False), sort_keys=True)
        rows = [
            (result.run_id, metric, *_pack(values))
            for metric, values in result.per_item.items()
        ]
        spec = result.spec
        with self._db:  # one transaction: all or nothing
            self._db.execute(
                "DELETE FROM item_scores WHERE run_id = ?", (result.run_id,)
            )
            self._db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    result.run_id,
                    spec.task,
                    result.family,
                    spec.model,
                    spec.loss,
                    spec.sampler,
                    spec.seed,
                    result.status,
                    result.error,
                    result.main_metric,
                    result.main_score,
                    result.dataset_sha256,
                    result.started_at,
                    result.finished_at,
                    record,
                ),
            )
            self._db.executemany("INSERT INTO item_scores VALUES (?,?,?,?)", rows)
            self._db.execute(
                "DELETE FROM claims WHERE run_id = ? AND host = ? AND pid = ?",
                (result.run_id, *_me()),
            )

    def save_tasks(self, infos: Iterable[TaskInfo]) -> None:
        """Remember what the leaderboard shows of each task (family, main
        metric, direction, description), so a build need not load the task
        plugins (and torch) to know them."""
        rows = [
            (
                info.name,
                json.dumps(
                    {
                        "family": info.family,
                        "main_metric": info.main_metric,
                        "higher_is_better": info.higher_is_better,
                        "description": info.description,
                    },
                    sort_keys=True,
                ),
            )
            for info in infos
        ]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO tasks VALUES (?,?)", rows)

    def task_infos(self) -> dict[str, TaskInfo]:
        """The task infos :meth:`save_tasks` remembered, by task name."""
        rows = self._db.execute("SELECT name, info FROM tasks").fetchall()
        return {name: TaskInfo(name=name, **json.loads(info)) for name, info in rows}

    # -- claims (several sessions on one store) ---------------------------------------

    def claim(
        self, run_ids: Iterable[str], *, take_foreign: bool = False
    ) -> dict[str, str]:
        """Claim ``run_ids`` for this process; returns the ones held elsewhere.

        A claim held by a live process of this host is respected; one whose
        process is gone is taken over.  Liveness cannot be checked across
        hosts, so another host's claim is respected unless ``take_foreign``
        (``--rerun``).  The read and the writes are one ``IMMEDIATE``
        transaction: two sessions claiming at once are serialised.

        :returns: run id -> "host pid N" of the runs this process must skip.
        """
        host, pid = _me()
        wanted = list(run_ids)
        held: dict[str, str] = {}
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for run_id, other_host, other_pid in self._db.execute(
                    f"SELECT run_id, host, pid FROM claims WHERE run_id IN ({marks})",
                    chunk,
                ):
                    if (other_host, other_pid) == (host, pid):
                        continue
                    alive = (
                        _pid_alive(other_pid)
                        if other_host == host
                        else not take_foreign
                    )
                    if alive:
                        held[run_id] = f"{other_host} pid {other_pid}"
            self._db.executemany(
                "INSERT OR REPLACE INTO claims VALUES (?,?,?,?)",
                [(r, host, pid, now) for r in wanted if r not in held],
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return held

    def release_claims(self) -> None:
        """Drop this process's remaining claims (runs it did not finish)."""
        with self._db:
            self._db.execute("DELETE FROM claims WHERE host = ? AND pid = ?", _me())

    # -- reading ----------------------------------------------------------------------

    def completed(self, run_ids: Iterable[str]) -> set[str]:
        """Which of ``run_ids`` are stored with status ok."""
        wanted = list(run_ids)
        done: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            done.update(
                row[0]
                for row in self._db.execute(
                    "SELECT run_id FROM runs WHERE status = 'ok' "
                    f"AND run_id IN ({marks})",
                    chunk,
                )
            )
        return done

    def load(
        self,
        run_ids: Sequence[str] | None = None,
        *,
        per_item: bool = False,
        filters: dict[str, Sequence[str]] | None = None,
    ) -> list[RunResult]:
        """Stored results, optionally restricted to ids or column values."""
        query = "SELECT record FROM runs"
        clauses: list[str] = []
        args: list[Any] = []
        for column, values in (filters or {}).items():
            if values:
                if column not in {
                    "task",
                    "family",
                    "model",
                    "loss",
                    "sampler",
                    "status",
                }:
                    raise ValueError(column)
                clauses.append(f"{column} IN ({','.join('?' * len(values))})")
                args.extend(values)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY task, model, loss, sampler, seed"
        results = [
            RunResult.from_dict(json.loads(row[0]))
            for row in self._db.execute(query, args)
        ]
        if run_ids is not None:
            wanted = set(run_ids)
            results = [r for r in results if r.run_id in wanted]
        if per_item:
            for result in results:
                result.per_item = self.per_item(result.run_id)
        return results

    def per_item_of_runs(
        self, extra_metrics: Sequence[str] = ()
    ) -> dict[str, dict[str, dict[str, float]]]:
        """Per-item scores of every run's main metric (and ``extra_metrics``),
        in one query: what the leaderboard's paired tests need, without the
        per-item rows of every other metric.

        :returns: run_id -> metric -> item -> value.
        """
        marks = ",".join("?" * len(extra_metrics))
        extra = f" OR s.metric IN ({marks})" if extra_metrics else ""
        rows = self._db.execute(
            "SELECT s.run_id, s.metric, s.items, s.item_values FROM item_scores s "
            "JOIN runs r ON r.run_id = s.run_id "
            f"WHERE s.metric = r.main_metric{extra}",
            list(extra_metrics),
        )
        out: dict[str, dict[str, dict[str, float]]] = {}
        for run_id, metric, items, values in rows:
            out.setdefault(run_id, {})[metric] = _unpack(items, values)
        return out

    def per_item(self, run_id: str) -> dict[str, dict[str, float]]:
        return {
            metric: _unpack(items, values)
            for metric, items, values in self._db.execute(
                "SELECT metric, items, item_values FROM item_scores WHERE run_id = ?",
                (run_id,),
            )
        }


def _pack(values: dict[str, float]) -> tuple[str, bytes]:
    """One metric's per-item scores as (JSON list of ids, float64 bytes)."""
    array = np.fromiter(values.values(), dtype=_VALUES, count=len(values))
    return json.dumps(list(values)), array.tobytes()


def _unpack(items: str, values: bytes) -> dict[str, float]:
    return dict(
        zip(
            json.loads(items),
            np.frombuffer(values, dtype=_VALUES).tolist(),
            strict=True,
        )
    )


def _migrate_from_1(db: sqlite3.Connection) -> None:
    """Schema 1 kept one row per (run, metric, item): pack each run's metric
    into one row, values bit for bit, inside the caller's transaction."""
    rows = db.execute(
        "SELECT run_id, metric, item, value FROM per_item ORDER BY run_id, metric"
    )
    packed = [
        (run_id, metric, *_pack({row[2]: row[3] for row in group}))
        for (run_id, metric), group in itertools.groupby(rows, key=_run_and_metric)
    ]
    db.executemany("INSERT INTO item_scores VALUES (?,?,?,?)", packed)
    db.execute("DROP TABLE per_item")


_run_and_metric = operator.itemgetter(0, 1)


# -- plugin: resume and persistence ---------------------------------------------------


@hookimpl
def harness_modify_runs(session: Session, runs: list[Run]) -> None:
    """Drop runs already completed in the store (resume), unless ``--rerun``,
    and runs another live ``harness bench`` is executing; claim the rest."""
    store = session.store
    if store is None:
        return
    store.save_tasks(session.tasks.values())
    if not session.options.rerun:
        done = store.completed(r.run_id for r in runs)
        if done:
            runs[:] = [r for r in runs if r.run_id not in done]
            session.notes.append(
                f"{len(done)} run(s) already completed in {store.path}; "
                "skipped (--rerun to repeat them)"
            )
    held = store.claim((r.run_id for r in runs), take_foreign=session.options.rerun)
    if held:
        session.elsewhere.update(held)
        runs[:] = [r for r in runs if r.run_id not in held]
        holders = ", ".join(sorted(set(held.values())))
        session.notes.append(
            f"{len(held)} run(s) are being executed by another harness bench "
            f"on this store ({holders}); skipped"
        )


@hookimpl
def harness_session_finish(session: Session) -> None:
    """Release the claims of runs this session did not finish (Ctrl-C)."""
    if session.store is not None:
        session.store.release_claims()


def _me() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@hookimpl(tryfirst=True)
def harness_result(session: Session, result: RunResult) -> None:
    """Persist every finished run as soon as it arrives, before any other
    plugin sees it: a reporter that fails cannot lose the result."""
    if session.store is not None:
        session.store.save(result)
