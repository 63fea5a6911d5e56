"""Artifacts the ecosystem reads: the kept synthetic corpus as a Hugging Face dataset (on disk and as
parquet) with a dataset card, and a model card in the trained folder. Every card is filled from the
run's own records (stage summaries, the filter report, results.json), never from a template's
placeholders; the report stage refreshes them, so the model card carries the evaluation.

    runs/<name>/export/corpus/          datasets.load_from_disk(...)
    runs/<name>/export/corpus.parquet   datasets.load_dataset("parquet", data_files=...)
    runs/<name>/export/corpus/README.md the dataset card
    runs/<name>/train/model/README.md   the model card (cards are documentation: not part of the
                                        stage's output fingerprint, see entigraph/pipeline.py)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import __version__, artifacts
from .config import RunConfig
from .io import atomic_path, read_json

FIELDS = ("task_id", "mode", "text", "entities", "doc_ids", "passage_ids", "model", "backend", "template",
          "completion_tokens")


def _json(path: Path) -> dict:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return {}


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def _write(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def export_corpus(cfg: RunConfig) -> Path:
    """The kept passages as a dataset with its card; returns the dataset folder."""
    from datasets import Dataset

    kept = artifacts.kept(cfg.out)
    out = cfg.out / "export"
    rows = [{f: getattr(p, f) for f in FIELDS} for p in kept]
    data = Dataset.from_list(rows) if rows else Dataset.from_dict({f: [] for f in FIELDS})
    target = out / "corpus"
    data.save_to_disk(str(target))
    data.to_parquet(str(out / "corpus.parquet"))
    _write(target / "README.md", dataset_card(cfg, kept))
    return target


def dataset_card(cfg: RunConfig, kept: list) -> str:
    extract = _json(artifacts.stage_dir(cfg.out, "extract") / "summary.json")
    synth = _json(artifacts.stage_dir(cfg.out, "synthesize") / "summary.json")
    report = _json(artifacts.stage_dir(cfg.out, "filter") / "report.json")
    modes: dict[str, list[int]] = {}
    for p in kept:
        modes.setdefault(p.mode, [0, 0])
        modes[p.mode][0] += 1
        modes[p.mode][1] += p.completion_tokens
    filters = [[f["filter"], f["dropped"], f.get("tokens_dropped", "")] for f in report.get("filters", [])]
    generator = synth.get("model") or cfg.backend.model
    return "\n".join([
        f"# Synthetic corpus of the entigraph run `{cfg.name}`", "",
        f"{len(kept)} passages, {sum(p.completion_tokens for p in kept):,} tokens, written by `{generator}` "
        f"({synth.get('backend', cfg.backend.kind)} backend) about {extract.get('documents', '?')} source documents "
        f"({extract.get('words', 0):,} words; corpus `{', '.join(cfg.corpus.paths)}`), kept by the quality gates "
        f"below out of {report.get('input', '?')} generated. Made with entigraph {__version__}.", "",
        "## Passages by synthesis mode", "",
        _table(["mode", "passages", "tokens"], [[m, n, f"{t:,}"] for m, (n, t) in sorted(modes.items())]), "",
        "## Quality gates (in order; each passage dropped at the first that rejects it)", "",
        _table(["filter", "dropped", "tokens dropped"], filters) if filters else "(no filter report)", "",
        "## Fields", "",
        "`text` is the passage; `mode` the synthesis mode; `entities`, `doc_ids`, `passage_ids` its provenance "
        "(the entities it was asked about and the source passages it was given); `model`, `backend`, `template` "
        "what wrote it; `completion_tokens` its length.", "",
        "```python", "import datasets",
        'ds = datasets.load_from_disk("export/corpus")  # from the run folder', "```", "",
    ])


def model_card(cfg: RunConfig) -> Path | None:
    """README.md in train/model from the train summary and, once evaluated, results.json."""
    folder = artifacts.stage_dir(cfg.out, "train") / "model"
    summary = _json(artifacts.stage_dir(cfg.out, "train") / "summary.json")
    if not folder.is_dir() or not summary:
        return None
    t = cfg.train
    tokens = summary.get("tokens_by_source", {})
    lines = [
        "---", "library_name: transformers", f"base_model: {cfg.models.base}", "tags: [entigraph, continued-pretraining]",
        "---", "", f"# `{cfg.name}`: `{cfg.models.base}` continued-pretrained by entigraph", "",
        f"Trained on {sum(tokens.values()):,} tokens in {summary.get('steps', '?')} steps "
        f"({'LoRA rank ' + str(t.lora.rank) + ', merged' if t.lora.enabled else 'full fine-tuning'}; "
        f"lr {t.lr:g}, {t.lr_scheduler}, blocks of {t.block_size}, global batch {summary.get('global_batch', '?')}, "
        f"DeepSpeed {Path(summary['deepspeed']).stem if summary.get('deepspeed') else 'off'}).", "",
        "## Data mixture", "",
        _table(["source", "tokens", "share"], [[k, f"{v:,}", f"{v / max(1, sum(tokens.values())):.1%}"]
                                                for k, v in tokens.items()]), "",
        f"Corpus: `{', '.join(cfg.corpus.paths)}`; synthetic passages by `{cfg.backend.model}` "
        f"(modes {', '.join(cfg.synthesis.modes)}).", "",
    ]
    results = _json(cfg.out / "results.json")
    if results.get("conditions"):
        lines += ["## Evaluation", "", f"{results.get('questions', '?')} questions"
                  f"{' (generated from the documents)' if results.get('probes') == 'generated' else ''}, "
                  f"scoring {results.get('scoring')}; 95 % bootstrap intervals.", "",
                  _table(["condition", "accuracy", "95 % CI"],
                         [[c, f"{v['accuracy']:.1%}", f"[{v['ci95'][0]:.1%}, {v['ci95'][1]:.1%}]"]
                          for c, v in results["conditions"].items()]), ""]
    else:
        lines += ["## Evaluation", "", "Not evaluated yet (`entigraph eval`).", ""]
    return _write(folder / "README.md", "\n".join(lines))
