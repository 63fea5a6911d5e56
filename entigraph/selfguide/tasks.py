"""Task files (Super-NaturalInstructions format) and the one prompt every step shares.

``tasks.jsonl`` holds one task a line: task, kind (classification | generation), metric
(exact_match | rouge_l), instruction, examples [{input, output}], labels, noise_terms.
Splits live in ``<split>/<task>.jsonl`` as {input, output} rows.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError


@dataclass
class Task:
    task: str
    kind: str  # classification | generation
    metric: str  # exact_match | rouge_l
    instruction: str
    examples: list[dict[str, str]]  # the seed demonstrations: all a SELF-GUIDE run learns from
    labels: list[str] | None = None
    noise_terms: list[str] = field(default_factory=list)

    @property
    def is_classification(self) -> bool:
        return self.kind == "classification"


def load_tasks(data_dir: str | Path) -> dict[str, Task]:
    path = Path(data_dir) / "tasks.jsonl"
    if not path.is_file():
        raise InputError(f"{path} not found (set data_dir to the folder holding tasks.jsonl)")
    tasks = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            task = Task(**{k: row[k] for k in ("task", "kind", "metric", "instruction", "examples")},
                        labels=row.get("labels"), noise_terms=row.get("noise_terms") or [])
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}:{n}: not a task record ({e})") from None
        if task.kind not in ("classification", "generation"):
            raise InputError(f"{path}:{n}: kind {task.kind!r} is not classification or generation")
        if task.is_classification and not task.labels:
            raise InputError(f"{path}:{n}: classification task {task.task} has no labels")
        if not task.examples:
            raise InputError(f"{path}:{n}: task {task.task} has no examples")
        tasks[task.task] = task
    return tasks


def select_tasks(tasks: dict[str, Task], names: list[str], setting: str) -> list[Task]:
    missing = [n for n in names if n not in tasks]
    if missing:
        raise InputError(f"{setting}: unknown task(s) {', '.join(missing)} (known: {', '.join(sorted(tasks))})")
    return [tasks[n] for n in names]


def load_split(data_dir: str | Path, split: str, task: str, limit: int | None, seed: int) -> list[dict]:
    """Rows of one split; a seeded sample of `limit` rows (the same rows for every model)."""
    path = Path(data_dir) / split / f"{task}.jsonl"
    if not path.is_file():
        raise InputError(f"{path} not found")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if limit is not None and len(rows) > limit:
        rows = random.Random(f"{seed}-{split}-{task}").sample(rows, limit)
    return rows


def solve_messages(task: Task, text: str, shots: int | None = None) -> list[dict[str, str]]:
    """The task prompt: instruction, demonstrations, then the input. Few-shot prompting,
    annotation, fine-tuning and evaluation all use it, so the comparison is like for like."""
    demos = task.examples if shots is None else task.examples[:shots]
    parts = [task.instruction.strip()]
    if task.is_classification:
        parts.append("Answer with one of: " + ", ".join(task.labels or []) + ".")
    for ex in demos:
        parts.append(f"Input: {ex['input'].strip()}\nOutput: {ex['output'].strip()}")
    parts.append(f"Input: {text.strip()}\nOutput:")
    return [{"role": "user", "content": "\n\n".join(parts)}]


_NEXT_FIELD = re.compile(r"\n\s*(?:Input|Output)\s*:|\n\s*\n", re.IGNORECASE)


def clean_output(text: str) -> str:
    """The model's answer to a task prompt: its first paragraph, cut where it starts writing
    another Input/Output (every task's answers are one line)."""
    return _NEXT_FIELD.split(text, maxsplit=1)[0].strip()
