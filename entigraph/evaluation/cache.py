"""Evaluation records cached per condition, so adding a condition scores only that condition.

A condition's records are stored under ``{run_dir}/.eval-cache/records/<key>.jsonl``, the key a hash
of what determines them: the model's files (by content), the setting (closed, rag, oracle), the
scoring settings, the questions (every field), and the context the setting gives: for RAG the
retrieval settings, the embedder and the documents; for the oracle the documents' texts. Two runs
that score the same model on the same questions share the records (the base model's conditions in
every recipe of a study), whatever the run is called. Retrieval output is cached the same way.

Model digests are memoised by file identity (device, inode, size, mtime), so a model reused
through hard links is hashed once.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from entigraph.devices import pick_device
from entigraph.io import atomic_path, file_sha256, read_json, read_jsonl, write_json, write_jsonl
from entigraph.records import Document, Question, to_dict

VERSION = 1  # of the record format: a change makes every cached record stale


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class EvalCache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._memo_path = self.root / "digests.json"
        try:
            self._memo: dict[str, str] = read_json(self._memo_path) if self._memo_path.is_file() else {}
        except (OSError, ValueError):
            self._memo = {}

    @classmethod
    def for_run(cls, cfg) -> "EvalCache":
        return cls(Path(cfg.run_dir) / ".eval-cache")

    # --- digests ----------------------------------------------------------------------------
    def file_digest(self, path: Path) -> str:
        st = path.stat()
        ident = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
        if ident not in self._memo:
            self._memo[ident] = file_sha256(path)
            self.root.mkdir(parents=True, exist_ok=True)
            write_json(self._memo_path, self._memo)
        return self._memo[ident]

    def model_digest(self, folder: str | Path) -> str:
        """Content of a model folder (weights, config, tokenizer): every file by sha256."""
        folder = Path(folder)
        if not folder.is_dir():  # a hub name: its name is all there is
            return digest(["name", str(folder)])
        files = sorted(f for f in folder.rglob("*") if f.is_file() and not f.name.startswith("."))
        return digest([[f.relative_to(folder).as_posix(), self.file_digest(f)] for f in files])

    # --- records ----------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.root / "records" / f"{key}.jsonl"

    def get(self, key: str) -> list[dict] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return list(read_jsonl(path))
        except (OSError, ValueError):
            return None

    def put(self, key: str, records: Sequence[dict]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(path, records)

    # --- arbitrary JSON (retrieval output, forgetting losses) -------------------------------
    def get_json(self, kind: str, key: str) -> Any:
        path = self.root / kind / f"{key}.json"
        try:
            return read_json(path) if path.is_file() else None
        except (OSError, ValueError):
            return None

    def put_json(self, kind: str, key: str, data: Any) -> None:
        path = self.root / kind / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data), encoding="utf-8")


def questions_digest(questions: Iterable[Question]) -> str:
    return digest([to_dict(q) for q in questions])


def documents_digest(documents: Iterable[Document]) -> str:
    return digest([[d.doc_id, d.title, hashlib.sha256(d.text.encode()).hexdigest()] for d in documents])


def scoring_settings(cfg) -> dict:
    """The settings that change a record, whatever the condition."""
    e = cfg.eval
    out = {"version": VERSION, "scoring": e.scoring, "max_context_tokens": e.max_context_tokens, "dtype": e.dtype,
           "device": pick_device(cfg.device), "answer_mode": e.answer_mode}
    if e.answer_mode == "generate":  # the backend writes the answers
        out.update(few_shot=e.few_shot, chain_of_thought=e.chain_of_thought, seed=cfg.seed,
                   backend=cfg.to_dict()["backend"])
    return out


def retrieval_key(cfg, documents: Sequence[Document], questions: Sequence[Question]) -> str:
    from .compare import query_text

    return digest({"retrieval": cfg.to_dict()["eval"]["retrieval"], "embedder": cfg.models.embedder,
                    "documents": documents_digest(documents), "queries": [query_text(q) for q in questions],
                    "qids": [q.qid for q in questions], "device": pick_device(cfg.device)})


def condition_key(model: str, setting: str, settings: dict, questions: str, context: str) -> str:
    return digest({"model": model, "setting": setting, "settings": settings, "questions": questions,
                    "context": context})[:32]


def relabel(records: Iterable[dict], condition: str, label: str) -> list[dict]:
    return [{**r, "condition": condition, "model": label} for r in records]


def env_disabled() -> bool:
    """ENTIGRAPH_EVAL_CACHE=0 turns the cache off for one process (debugging a scorer)."""
    return os.environ.get("ENTIGRAPH_EVAL_CACHE", "1") == "0"
