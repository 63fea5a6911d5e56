"""The eval stage: base vs continued-pretrained, closed-book vs RAG vs oracle, on the same questions.

Writes under runs/<name>/eval/: records.jsonl (one row per question, condition and model),
retrieval.json, results.json (also copied to runs/<name>/results.json), summary.json.

results.json also holds the reading check ("reading": the adapted model with retrieved chunks or the
document in its context against the base model with the same context) and the forgetting check
("forgetting": both models' loss on held-out general text). With eval.cache, each condition's
records are kept in {run_dir}/.eval-cache (entigraph/evaluation/cache.py): a condition scored before with
the same model, questions and settings is not scored again.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .. import artifacts
from ..config import RunConfig
from ..io import write_json, write_jsonl
from ..locks import file_lock, say

from .spec import StageSpec

STAGE = StageSpec(
    "eval", "compare base / continued-pretrained, closed-book / RAG",
    sections=("eval", "models.base", "models.embedder"),
    outputs=("results.json", "records.jsonl", "retrieval.json", "summary.json"),
    uses_backend=lambda cfg: cfg.eval.answer_mode == "generate",
    external_inputs=lambda cfg: list(cfg.eval.questions),
)


def run(cfg: RunConfig) -> dict:
    from ..evaluation.cache import EvalCache, env_disabled
    from ..evaluation.compare import plan_models, score_generate, score_loglik, summarize
    from ..evaluation.tasks import questions_for_run

    start = time.perf_counter()
    out = artifacts.stage_dir(cfg.out, "eval")
    out.mkdir(parents=True, exist_ok=True)
    _clear_outputs(out, keep=("index",))  # the outputs are what this run writes; index/ is checked by key
    documents = artifacts.documents(cfg.out)
    questions, notes = questions_for_run(cfg, documents)
    if cfg.eval.probes == "generated" and cfg.eval.generated.paraphrase:
        more, tally = _paraphrased(cfg, questions)
        questions += more
        notes.setdefault("generated", {})["paraphrase"] = tally
    plan = plan_models(cfg)
    _interpolated_models(cfg, plan)
    cache = EvalCache.for_run(cfg) if cfg.eval.cache and not env_disabled() else None
    keys = _Keys(cfg, documents, questions, cache)
    docs = {d.doc_id: d for d in documents}
    score = score_generate if cfg.eval.answer_mode == "generate" else score_loglik
    by_cond: dict[str, list[dict]] = {}
    reused = []
    rag, retrieval = None, {}

    def missing(label: str, path: str, conds: list[str]) -> list[str]:
        """The conditions the cache lacks; those it has are filled in."""
        todo = []
        for cond in conds:
            hit = keys.lookup(cond, path)
            if hit is None:
                todo.append(cond)
            else:
                by_cond[cond] = [{**r, "condition": cond, "model": label} for r in hit]
                reused.append(cond)
        return todo

    def take(label: str, path: str, todo: list[str], wait: bool) -> bool:
        """Score one model's missing conditions; False (nothing done) when another run is scoring
        this model now and `wait` is off."""
        with keys.claim(path, wait) as claimed:
            if not claimed:
                return False
            todo = missing(label, path, todo)  # stored meanwhile by the run that held the lock
            if todo:
                scored = score(cfg, label, path, todo, questions, rag or {}, docs)
                for cond in todo:
                    by_cond[cond] = [r for r in scored if r["condition"] == cond]
                    keys.store(cond, path, by_cond[cond])
            gc.collect()  # free this model before the next one loads
        return True

    # a model another run is scoring (the base model's reading check, in two recipes run side by
    # side) is left for last, then waited for and read from the cache; found conditions need no lock
    later = []
    for label, path, conds in plan:
        if any(c.endswith("_rag") for c in conds) and rag is None:
            rag, retrieval = keys.retrieval(out)
        todo = missing(label, path, conds)
        if todo and not take(label, path, todo, wait=False):
            later.append((label, path, todo))
    for label, path, todo in later:
        take(label, path, todo, wait=True)
    records = [r for _, _, conds in plan for cond in conds for r in by_cond[cond]]  # plan order, cached or not
    write_jsonl(out / "records.jsonl", records)
    if not keys.built_index:  # no retrieval this time, or it came from the cache: an old index is not this run's
        _clear_outputs(out, only=("index",))
    results = summarize(records, questions, documents, cfg)
    results["forgetting"] = _forgetting(cfg, plan, documents, cache)
    results.update(retrieval=retrieval, notes=notes, seconds=round(time.perf_counter() - start, 2),
                   models={label: path for label, path, _ in plan})
    write_json(out / "results.json", results)
    write_json(cfg.out / "results.json", results)
    # which conditions came from the cache: in the stage's summary (its marker), not in results.json,
    # whose content is the same whether a condition was scored now or before
    return {**{k: results[k] for k in ("questions", "scoring", "chance", "conditions", "paired", "retrieval", "seconds",
                                       "reading", "forgetting", "probes")}, "cached_conditions": reused}


class _Keys:
    """The cache keys of this run's conditions (entigraph/evaluation/cache.py); a no-op without a cache."""

    def __init__(self, cfg: RunConfig, documents, questions, cache):
        from ..evaluation.cache import documents_digest, questions_digest, retrieval_key, scoring_settings

        self.cfg, self.documents, self.questions, self.cache = cfg, documents, questions, cache
        self.built_index = False  # retrieve_contexts ran here (and wrote index/)
        if cache is None:
            return
        self.settings = scoring_settings(cfg)
        self.qdigest = questions_digest(questions)
        self.rkey = retrieval_key(cfg, documents, questions)
        needed = {q.doc_id for q in questions}
        self.oracle = documents_digest([d for d in documents if d.doc_id in needed])
        self.models: dict[str, str] = {}

    def key(self, cond: str, path: str) -> str | None:
        from ..evaluation.cache import condition_key

        if self.cache is None:
            return None
        setting = cond.rsplit("_", 1)[1]
        context = {"closed": "", "rag": self.rkey, "oracle": self.oracle}.get(setting, setting)
        return condition_key(self.model(path), setting, self.settings, self.qdigest, context)

    def model(self, path: str) -> str:
        if path not in self.models:
            self.models[path] = self.cache.model_digest(path)
        return self.models[path]

    @contextmanager
    def claim(self, path: str, wait: bool) -> Iterator[bool]:
        """The model's lock in the cache, held while its conditions are scored: another run that
        scores the same model waits for the records instead of scoring them again. Yields whether
        it is held (without `wait`, False when another process holds it)."""
        if self.cache is None:
            yield True
            return
        lock = self.cache.root / "locks" / f"{self.model(path)}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(lock, echo=lambda m: say(f"[eval] another run is scoring {path}; {m}"), wait=wait) as held:
            yield held

    def lookup(self, cond: str, path: str) -> list[dict] | None:
        key = self.key(cond, path)
        hit = self.cache.get(key) if key else None
        return hit if hit is not None and len(hit) == len(self.questions) else None

    def store(self, cond: str, path: str, records: list[dict]) -> None:
        key = self.key(cond, path)
        if key:
            self.cache.put(key, records)

    def retrieval(self, out) -> tuple[dict, dict]:
        """Contexts and the retrieval report: from the cache when stored, else retrieved (and stored)."""
        from ..evaluation.compare import retrieve_contexts
        from ..io import read_json

        if self.cache is not None:
            hit = self.cache.get_json("retrieval", self.rkey)
            if hit is not None:
                write_json(out / "retrieval.json", hit["file"])
                return {k: tuple(v) for k, v in hit["contexts"].items()}, hit["report"]
        rag, report = retrieve_contexts(self.cfg, self.documents, self.questions, out)
        self.built_index = True
        if self.cache is not None:
            self.cache.put_json("retrieval", self.rkey, {"contexts": rag, "report": report,
                                                          "file": read_json(out / "retrieval.json")})
        return rag, report


def _clear_outputs(out, keep: tuple[str, ...] = (), only: tuple[str, ...] | None = None) -> None:
    """Remove the stage's earlier outputs (all but hidden files, cards and `keep`; or just `only`),
    so a rerun with fewer conditions lists no file of the run before (retrieval.json, index/)."""
    import shutil

    for entry in out.iterdir():
        name = entry.name
        if only is not None and name not in only or only is None and (
                name.startswith(".") or name == "README.md" or name in keep):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


def _interpolated_models(cfg: RunConfig, plan) -> None:
    """eval.interpolate: write each mix of the base and the trained model once; a folder is
    rewritten when either model's weights changed (their sizes and times are stamped in it). The
    folder holds what interpolate_folder writes, nothing else: train.interpolate writes the same bytes,
    so the eval cache (keyed by content) shares their records."""
    if not getattr(cfg.eval, "interpolate", None):
        return
    from pathlib import Path

    from ..evaluation.compare import interpolated_dir
    from ..io import read_json
    from ..models import resolve_lm
    from ..training.interpolate import interpolate_folder

    base = resolve_lm(cfg.models.base, cfg.models.cache_dir)
    trained = next(path for label, path, _ in plan if label == "cpt")

    def stamp(folder: str) -> list:
        return sorted([f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in Path(folder).glob("*.safetensors"))

    for alpha in dict.fromkeys(cfg.eval.interpolate):
        out = interpolated_dir(cfg, alpha)
        want = {"alpha": alpha, "base": stamp(base), "trained": stamp(trained)}
        try:
            if read_json(out / ".source.json") == want:
                continue
        except (OSError, ValueError):
            pass
        say(f"[eval] writing {alpha:g} x trained + {1 - alpha:g} x base to {out}")
        interpolate_folder(base, trained, alpha, out)
        write_json(out / ".source.json", want)  # a dot-file: the eval cache digests the rest


def _paraphrased(cfg: RunConfig, questions) -> tuple[list, dict]:
    from ..backends import open_backend
    from ..evaluation.probes import paraphrase_probes

    with open_backend(cfg) as backend:
        return paraphrase_probes(questions, backend, artifacts.entities(cfg.out), cfg.eval.generated, cfg.seed,
                                 cfg.backend.batch_size)


def _forgetting(cfg: RunConfig, plan, documents, cache) -> dict:
    """Base vs adapted model loss on held-out general text (entigraph/evaluation/forgetting.py)."""
    from ..devices import pick_device
    from ..evaluation.cache import digest
    from ..evaluation.forgetting import block_losses, choose_blocks, compare_losses

    paths = {label: path for label, path, _ in plan}
    if cfg.eval.forgetting_blocks == 0:
        return {"skipped": "eval.forgetting_blocks is 0"}
    if "cpt" not in paths:
        return {"skipped": "no continued-pretrained model in this evaluation"}
    from transformers import AutoTokenizer

    from ..models import resolve_lm

    base_path = paths.get("base") or resolve_lm(cfg.models.base, cfg.models.cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    chosen = choose_blocks(cfg, tokenizer, documents)
    if not chosen or not chosen[0]:
        return {"skipped": "no held-out general text: set eval.forgetting_paths (or train with replay files)"}
    blocks, source = chosen
    losses = {}
    for label, path in (("base", base_path), ("cpt", paths["cpt"])):
        key = None
        if cache is not None:
            key = digest({"model": cache.model_digest(path), "blocks": blocks, "device": pick_device(cfg.device),
                           "dtype": cfg.eval.dtype})[:32]
            losses[label] = cache.get_json("losses", key)
        if losses.get(label) is None:
            losses[label] = block_losses(path, blocks, cfg.device, cfg.eval.dtype)
            if cache is not None:
                cache.put_json("losses", key, losses[label])
        gc.collect()
    return compare_losses(losses["base"], losses["cpt"], blocks, source, cfg.eval.bootstrap, cfg.seed)


def summary_lines(summary: dict) -> list[str]:
    from ..evaluation.compare import table_lines

    return table_lines(summary)
