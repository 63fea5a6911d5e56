"""Output annotation: several low-temperature samples per input, then a self-consistency vote.

Classification samples are mapped onto the label set first (unmappable samples do not vote);
generation samples vote by their normalised text. The raw samples are logged, so changing
annotation.min_votes re-votes without asking the model again.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tqdm import tqdm

from ..backends.base import Backend, Request
from .settings import AnnotationConfig
from .metrics import map_label, normalize_answer
from .log import append_log, read_log, stable_seed
from .tasks import Task, clean_output, solve_messages


def vote(samples: list[str], task: Task, min_votes: int) -> tuple[str | None, str | None, int]:
    """(output, drop reason, votes for the winner). Ties for first place are no agreement."""
    if task.is_classification:
        keys = [map_label(s, task.labels or []) for s in samples]
        keys = [k for k in keys if k is not None]
        if not keys:
            return None, "unmappable_label", 0
        forms = {k: k for k in keys}
    else:
        cleaned = [s for s in samples if normalize_answer(s)]
        if not cleaned:
            return None, "empty_output", 0
        keys = [normalize_answer(s) for s in cleaned]
        forms = {}
        for k, s in zip(keys, cleaned):
            forms.setdefault(k, s)  # the first sample with the winning text, unnormalised
    ranked = Counter(keys).most_common()
    top, votes = ranked[0]
    if votes < min_votes or (len(ranked) > 1 and ranked[1][1] == votes):
        return None, "no_agreement", votes
    return forms[top], None, votes


def annotate(task: Task, items: list[dict], backend: Backend, cfg: AnnotationConfig, shots: int | None,
             path: Path, batch_size: int, seed: int = 0) -> dict[str, dict]:
    """Annotate items ({id, input}) `cfg.samples` times each; returns log rows by id (resumable)."""
    done = read_log(path)
    todo = [it for it in items if it["id"] not in done or done[it["id"]].get("error")]
    for start in tqdm(range(0, len(todo), batch_size), desc=f"{task.task} annotate", unit="batch",
                      disable=not todo):
        chunk = todo[start:start + batch_size]
        requests = [
            Request(solve_messages(task, it["input"], shots), sampling=cfg.sampling,
                    seed=stable_seed(seed, it["id"], "annotate", k))
            for it in chunk for k in range(cfg.samples)
        ]
        gens = backend.generate(requests)
        rows = []
        for i, it in enumerate(chunk):
            mine = gens[i * cfg.samples:(i + 1) * cfg.samples]
            errors = [g.error for g in mine if g.finish_reason == "error"]
            rows.append({"id": it["id"], "samples": [clean_output(g.text) for g in mine if g.finish_reason != "error"],
                         "raw": [g.text for g in mine], "error": "; ".join(errors)})
        append_log(path, rows)
        done.update({r["id"]: r for r in rows})
    return {it["id"]: done[it["id"]] for it in items}
