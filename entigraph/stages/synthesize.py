"""The synthesize stage: the engine over the extract stage's outputs, one writer per run folder.

Writes under runs/<name>/synthesize/: store.sqlite (every attempt, with provenance), passages.jsonl
(the ok passages in sampler order), failed.jsonl, summary.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import artifacts
from ..backends import run_backend
from ..config import RunConfig
from ..errors import EntigraphError
from ..io import read_jsonl, write_json
from ..secrets import mask
from ..synthesis.engine import Engine
from ..synthesis.prompts import load_templates
from ..synthesis.store import Store


def run(cfg: RunConfig, progress: bool = True) -> dict[str, Any]:
    """The synthesize stage (see the module docstring for what it writes). A run in which every
    request failed raises: it is not complete, and a rerun retries the failed requests."""
    from ..pipeline import run_lock

    out = artifacts.stage_dir(cfg.out, "synthesize")
    out.mkdir(parents=True, exist_ok=True)
    documents, passages = artifacts.documents(cfg.out), artifacts.passages(cfg.out)
    entities, graph = artifacts.entities(cfg.out), artifacts.graph(cfg.out)
    templates = load_templates(cfg.synthesis.templates_dir, cfg.synthesis.modes)
    with run_lock(cfg):  # two writers would both generate the same pending tasks
        backend = run_backend(cfg)
        try:
            with Store(out / "store.sqlite") as store:
                summary = Engine(cfg, backend, documents, passages, entities, graph, templates).run(store, progress)
                store.export_jsonl(out / "passages.jsonl")
                store.export_jsonl(out / "failed.jsonl", status="failed")
        finally:
            backend.close()
    write_json(out / "summary.json", summary)
    if summary["passages"] == 0 and summary["failed"]:
        first = next(read_jsonl(out / "failed.jsonl"), {}).get("error", "")
        raise EntigraphError(f"synthesize: all {summary['failed']} requests failed (first: {mask(first)[:200]}); "
                             f"see {out / 'failed.jsonl'}; rerun to retry them")
    return summary


def export_hf_dataset(cfg: RunConfig, path: str | Path | None = None) -> Path:
    """Save the ok passages as a Hugging Face dataset (default: synthesize/hf_dataset)."""
    out = artifacts.stage_dir(cfg.out, "synthesize")
    target = Path(path) if path else out / "hf_dataset"
    with Store(out / "store.sqlite") as store:
        store.export_hf_dataset(target)
    return target


def summary_lines(summary: dict[str, Any]) -> list[str]:
    return [
        f"{summary['passages']} passages ({summary['resumed']} already done, {summary['failed']} failed), "
        f"{summary['completion_tokens']} tokens generated",
        f"{summary['tokens_per_s']} tokens/s; {summary['prompt_tokens_per_generated_token']} prompt tokens "
        f"per generated token ({summary['context']} context)",
    ]
