"""The synthesize stage: the engine over the extract stage's outputs, one writer per run folder.

Writes under runs/<name>/synthesize/: store.sqlite (every attempt, with provenance), passages.jsonl
(the ok passages in sampler order), failed.jsonl, summary.json, and plans.jsonl (Active Reading's
proposed strategies) when active_reading is asked for. When every mode asked for is generator-free
no model is loaded.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

from .. import artifacts
from ..backends import run_backend
from ..config import RunConfig
from ..errors import ConfigError, EntigraphError
from ..io import read_jsonl, write_json, write_jsonl
from ..records import to_dict
from ..secrets import mask
from ..synthesis.engine import Engine
from ..synthesis.free import NoBackend
from ..modes import needs_backend
from ..synthesis.prompts import load_templates
from ..synthesis.store import Store

from .spec import StageSpec

STAGE = StageSpec(
    "synthesize", "write synthetic passages about entity pairs and triples (resumable)",
    sections=("synthesis",),
    outputs=("summary.json", "store.sqlite", "passages.jsonl", "failed.jsonl", "plans.jsonl"),
    uses_backend=lambda cfg: True,  # the backend's settings are part of what a passage is
    loads_model=lambda cfg: needs_backend(cfg.synthesis.modes),  # generator-free modes load none
    external_inputs=lambda cfg: [cfg.synthesis.templates_dir] if cfg.synthesis.templates_dir else [],
)


def run(cfg: RunConfig, progress: bool = True) -> dict[str, Any]:
    """The synthesize stage (see the module docstring for what it writes). A run in which every
    request failed raises: it is not complete, and a rerun retries the failed requests."""
    from ..locks import run_lock

    out = artifacts.stage_dir(cfg.out, "synthesize")
    out.mkdir(parents=True, exist_ok=True)
    documents, passages = artifacts.documents(cfg.out), artifacts.passages(cfg.out)
    entities, graph = artifacts.entities(cfg.out), artifacts.graph(cfg.out)
    templates = load_templates(cfg.synthesis.templates_dir, cfg.synthesis.modes)
    check_per_doc(cfg)
    with run_lock(cfg.out):  # two writers would both generate the same pending tasks
        executor = None
        if not needs_backend(cfg.synthesis.modes):
            backend = NoBackend()
        elif cfg.synthesis.executor == "ray":  # the actors hold the backends; the executor stands in for one here
            from ..synthesis.ray_executor import RayExecutor

            backend = executor = RayExecutor(cfg)
        else:
            backend = run_backend(cfg)
        with closing(backend):  # a NoBackend, the Ray executor or a model (a server it started is stopped)
            with Store(out / "store.sqlite") as store:
                engine = Engine(cfg, backend, documents, passages, entities, graph, templates)
                engine.executor = executor
                summary = engine.run(store, progress)
                store.export_jsonl(out / "passages.jsonl")
                store.export_jsonl(out / "failed.jsonl", status="failed")
                if "active_reading" in cfg.synthesis.modes:
                    plans = store.plans()
                    write_jsonl(out / "plans.jsonl", (to_dict(p) for p in sorted(plans.values(), key=lambda p: p.task_id)))
                    summary["plans"] = store.plan_totals()
                else:  # an earlier run's plans are not this run's output
                    (out / "plans.jsonl").unlink(missing_ok=True)
                summary["per_mode"] = per_mode(store)
    write_json(out / "summary.json", summary)
    if summary["passages"] == 0 and summary["failed"]:
        first = next(read_jsonl(out / "failed.jsonl"), {}).get("error", "")
        raise EntigraphError(f"synthesize: all {summary['failed']} requests failed (first: {mask(first)[:200]}); "
                             f"see {out / 'failed.jsonl'}; rerun to retry them")
    return summary


def check_per_doc(cfg: RunConfig) -> None:
    """synthesis.per_doc names modes of synthesis.modes (an error before any model loads)."""
    for mode in cfg.synthesis.per_doc:
        if mode not in cfg.synthesis.modes:
            known = ", ".join(cfg.synthesis.modes)
            raise ConfigError(f"synthesis.per_doc: {mode!r} is not one of synthesis.modes ({known})")


def per_mode(store: Store) -> dict[str, dict[str, Any]]:
    """Ok passages, prompt and generated tokens per mode, and the prompt tokens paid per generated
    token (what prefill costs each mode; generator-free modes have no prompt)."""
    out: dict[str, dict[str, Any]] = {}
    for p in store.passages("ok"):
        row = out.setdefault(p.mode, {"passages": 0, "prompt_tokens": 0, "completion_tokens": 0})
        row["passages"] += 1
        row["prompt_tokens"] += p.prompt_tokens
        row["completion_tokens"] += p.completion_tokens
    for row in out.values():
        row["prompt_tokens_per_generated_token"] = round(row["prompt_tokens"] / max(row["completion_tokens"], 1), 3)
    return out


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
        f"per generated token ({summary['context']} context)" if summary.get("backend") != "none" else
        "no model loaded: every mode asked for is generator-free (tokens estimated: 4/3 per word)",
    ] + ([(f"ray: {len(summary['workers'])} workers: ") + "; ".join(
        f"#{w['worker']} {w['batches']} batches, {w['tokens_per_s']} tok/s, {w['failures']} failures"
        for w in summary["workers"])] if summary.get("executor") == "ray" else []) + ([("per mode: " + ", ".join(f"{m} {r['passages']}" + (f" ({r['prompt_tokens_per_generated_token']} prompt tokens per generated)"
                                       if r.get("prompt_tokens") else "") for m, r in summary["per_mode"].items())
           + (f"; {summary['plans']['plans']} Active Reading plans" if summary.get("plans") else ""))]
         if summary.get("per_mode") else [])
