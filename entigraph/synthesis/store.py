"""Crash-safe store of synthetic passages: SQLite in WAL mode, one row per task, keyed by task id.

Why SQLite rather than an append-only JSONL: a batch commits atomically (all of its passages or
none), the primary key makes a duplicate impossible rather than something to repair, a torn write
is rolled back by SQLite itself, and the store can be read (exported, inspected with `sqlite3`)
while a run writes to it. ``synchronous=FULL`` fsyncs each commit: one fsync per batch costs
nothing next to generating the batch, and a commit then survives power loss, not only kill -9.

A task's row is written once when it succeeds; a failed row (status "failed", with the error) may
be replaced by a later attempt, which is counted in ``attempts``; an ok row is never overwritten.

Active Reading's first step (the strategies proposed for a section) is kept in a table of its own,
``plans``, by the same rules: it is what later tasks are built from, not a passage.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

from ..io import write_jsonl
from ..records import SynthPassage, from_dict, to_dict

SCHEMA = """
CREATE TABLE IF NOT EXISTS passages (
    task_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_seq ON passages (seq);
CREATE TABLE IF NOT EXISTS plans (
    task_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    record TEXT NOT NULL
);
"""

UPSERT_PLAN = """
INSERT INTO plans (task_id, status, prompt_tokens, completion_tokens, record) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (task_id) DO UPDATE SET
    status = excluded.status, prompt_tokens = excluded.prompt_tokens,
    completion_tokens = excluded.completion_tokens, record = excluded.record, attempts = plans.attempts + 1
WHERE plans.status = 'failed'
"""

UPSERT = """
INSERT INTO passages (task_id, seq, mode, status, prompt_tokens, completion_tokens, seconds, record)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (task_id) DO UPDATE SET
    status = excluded.status, prompt_tokens = excluded.prompt_tokens,
    completion_tokens = excluded.completion_tokens, seconds = excluded.seconds,
    record = excluded.record, attempts = passages.attempts + 1
WHERE passages.status = 'failed'
"""


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (one per batch)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self.plans_used: set[str] = set()  # plans read or written since opening: what this run needed

    def statuses(self) -> dict[str, tuple[str, int]]:
        """task_id -> (status, completion tokens), read once so a run never queries per task."""
        rows = self.db.execute("SELECT task_id, status, completion_tokens FROM passages")
        return {task_id: (status, tokens) for task_id, status, tokens in rows}

    def add(self, batch: list[SynthPassage]) -> None:
        """Write a batch in one transaction: after a crash either all of it is there or none."""
        rows = [(p.task_id, p.seq, p.mode, p.status, p.prompt_tokens, p.completion_tokens, p.seconds,
                 json.dumps(to_dict(p), ensure_ascii=False)) for p in batch]
        self._write(UPSERT, rows)

    def _write(self, sql: str, rows: list[tuple]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(sql, rows)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def get(self, task_ids: list[str], status: str | None = "ok") -> list[SynthPassage]:
        """The stored records of these tasks (those with `status`; None: any), in the order asked."""
        found: dict[str, SynthPassage] = {}
        ids = list(dict.fromkeys(task_ids))
        for i in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            chunk = ids[i:i + 500]
            sql = f"SELECT task_id, status, record FROM passages WHERE task_id IN ({','.join('?' * len(chunk))})"
            for task_id, st, record in self.db.execute(sql, chunk):
                if status is None or st == status:
                    found[task_id] = from_dict(SynthPassage, json.loads(record))
        return [found[t] for t in ids if t in found]

    def add_plans(self, batch: list[SynthPassage]) -> None:
        """Active Reading's first-step generations, one transaction (status ok or failed)."""
        self._write(UPSERT_PLAN, [(p.task_id, p.status, p.prompt_tokens, p.completion_tokens,
                                   json.dumps(to_dict(p), ensure_ascii=False)) for p in batch])
        self.plans_used.update(p.task_id for p in batch)

    def plans(self, task_ids: list[str] | None = None) -> dict[str, SynthPassage]:
        """task_id -> stored plan (ok or failed); all of them when `task_ids` is None."""
        rows = self.db.execute("SELECT task_id, record FROM plans ORDER BY task_id")
        wanted = None if task_ids is None else set(task_ids)
        self.plans_used |= wanted or set()
        return {t: from_dict(SynthPassage, json.loads(r)) for t, r in rows if wanted is None or t in wanted}

    def retain(self, task_ids: Iterable[str]) -> int:
        """Keep the passages of `task_ids` and the plans used since opening; delete the rest (rows
        of a larger budget or of other settings), so the store holds what an uninterrupted run of
        this stream would. One transaction; nothing is written when nothing goes. Returns the rows deleted."""
        keep, plans = set(task_ids), self.plans_used
        stale = [t for t, in self.db.execute("SELECT task_id FROM passages") if t not in keep]
        stale_plans = [t for t, in self.db.execute("SELECT task_id FROM plans") if t not in plans]
        if stale or stale_plans:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany("DELETE FROM passages WHERE task_id = ?", [(t,) for t in stale])
                self.db.executemany("DELETE FROM plans WHERE task_id = ?", [(t,) for t in stale_plans])
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        return len(stale) + len(stale_plans)

    def plan_totals(self) -> dict[str, int]:
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = 'ok'), 0), COALESCE(SUM(prompt_tokens), 0),"
            " COALESCE(SUM(completion_tokens), 0) FROM plans").fetchone()
        return dict(zip(("plans", "ok", "prompt_tokens", "completion_tokens"), row))

    def totals(self) -> dict[str, int]:
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = 'ok'), 0), COALESCE(SUM(status = 'failed'), 0),"
            " COALESCE(SUM(CASE WHEN status = 'ok' THEN prompt_tokens END), 0),"
            " COALESCE(SUM(CASE WHEN status = 'ok' THEN completion_tokens END), 0),"
            " COALESCE(SUM(attempts), 0) FROM passages"
        ).fetchone()
        keys = ("rows", "ok", "failed", "prompt_tokens", "completion_tokens", "attempts")
        return dict(zip(keys, row))

    def passages(self, status: str | None = "ok") -> Iterator[SynthPassage]:
        """Records in sampler order (seq); `status=None` for all of them."""
        sql = "SELECT record FROM passages" + (" WHERE status = ?" if status else "") + " ORDER BY seq, task_id"
        for (record,) in self.db.execute(sql, (status,) if status else ()):
            yield from_dict(SynthPassage, json.loads(record))

    def export_jsonl(self, path: str | Path, status: str | None = "ok") -> int:
        return write_jsonl(path, (to_dict(p) for p in self.passages(status)))

    def export_hf_dataset(self, path: str | Path, status: str | None = "ok") -> int:
        """Save the passages as a Hugging Face `datasets` dataset (``load_from_disk(path)``)."""
        import datasets

        rows = [to_dict(p) for p in self.passages(status)]
        for row in rows:  # arrow needs one type per column: keep the nested settings as JSON
            row["sampling"] = json.dumps(row["sampling"], sort_keys=True)
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
        return len(rows)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
