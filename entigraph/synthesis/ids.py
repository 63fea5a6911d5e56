"""Synthesis ids: what identifies a task and seeds its generation (a leaf: imports nothing of synthesis).

A task id hashes everything that determines the output, so a resumed run recognises done work;
the request seed is read from it, so a regenerated task samples as it first did.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def task_id(mode: str, entities: list[str], doc_ids: list[str], passage_ids: list[str], salt: Any) -> str:
    """sha256 of everything that determines the output; `salt` may come pre-serialised (a str)."""
    salt = salt if isinstance(salt, str) else json.dumps(salt, sort_keys=True)
    blob = json.dumps([mode, entities, doc_ids, passage_ids], ensure_ascii=False) + "\x1e" + salt
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def request_seed(task_id: str) -> int:
    """The sampling seed of a task's request: the first 32 bits of its id."""
    return int(task_id[:8], 16)


def digest(*parts: Any) -> str:
    """A short hash of JSON-serialisable parts (source texts, keys)."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:16]


def derived_seed(seed: int, key: str) -> int:
    """A seed for one task of a generator-free mode: the run's seed and the task's key."""
    return int(digest(seed, key)[:8], 16)
