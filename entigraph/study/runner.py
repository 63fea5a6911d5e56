"""Run a study: tune each recipe on the tuning documents, then run it on the reporting documents.

For each recipe, in the order written (a recipe `tuned_like` another waits for that one's choice):

1. every grid point on the tuning documents (closed-book), each its own run folder
   ``<recipe>-tune-<point>``; the point is chosen by the declared criterion (``select``);
2. the reporting run ``<recipe>`` with the chosen settings, on the reporting documents, and one
   ``<recipe>.generated`` per further probe kind.

Runs share stages through the pipeline's stage cache, so what two runs have in common runs once.
Every run resumes like ``entigraph run``; the study keeps its own small state file
(``study-state.json``: runs, choices, token counts, invocations). After the runs, the split is
checked: no reported question's document, and no reporting run's document, is a tuning document.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import fingerprints, pipeline, stage_cache
from ..errors import EntigraphError
from ..io import read_json, read_jsonl, write_json
from ..locks import file_lock, run_held, run_lock, wait_for_run
from ..processes import run_to_end
from .config import Recipe, StudyConfig
from .plan import CONTROL, Planner, RunSpec, apply, grid_points, study_dir


class SplitError(EntigraphError):
    """A tuning document, or one of its probes, reached a reported number."""


class Study:
    def __init__(self, study: StudyConfig, only: list[str] | None = None, echo: Callable[[str], None] = print,
                 executor: str | None = None, execute: bool = True):
        self.study = study
        self.planner = Planner(study)
        self.dir = study_dir(study)
        self.echo = echo
        self.executor = executor or study.executor
        self.execute_runs = execute
        self.recipes = {r.name: r for r in study.recipes}
        unknown = [n for n in (only or []) if n not in self.recipes]
        if unknown:
            raise EntigraphError(f"--only: no recipe named {', '.join(unknown)} (recipes: {', '.join(self.recipes)})")
        self.only = only
        self.state_path = self.dir / "study-state.json"
        self.state = self._load_state()
        self.mine: dict[str, set[str]] = {"runs": set(), "chosen": set()}  # what this invocation wrote
        self.invocation: dict | None = None
        self.specs: dict[str, RunSpec] = {}
        self.chosen: dict[str, dict] = {}
        self.evidence: dict[str, list[dict]] = {}
        self.ran: list[str] = []

    # --- state --------------------------------------------------------------------------------
    def _load_state(self) -> dict:
        try:
            state = read_json(self.state_path) if self.state_path.is_file() else {}
        except (OSError, ValueError):
            state = {}
        state.setdefault("study", self.study.name)
        for key in ("runs", "chosen", "kept_tokens"):
            state.setdefault(key, {})
        state.setdefault("invocations", [])
        return state

    def _save_state(self) -> None:
        """Write the state merged with the file: two invocations with different --only run side by
        side (one per core), and each keeps the other's runs, choices and invocations."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.dir / ".study-state.lock", echo=self.echo):
            disk = self._load_state()
            for key in ("runs", "chosen"):
                disk[key].update({name: self.state[key][name] for name in self.mine[key]})
            disk["kept_tokens"].update(self.state["kept_tokens"])
            if self.invocation is not None:
                mine = self.invocation
                disk["invocations"] = [i for i in disk["invocations"] if i.get("id") != mine["id"]] + [mine]
            write_json(self.state_path, disk)
            self.state = disk

    # --- which recipes --------------------------------------------------------------------------
    def selected(self) -> list[Recipe]:
        if self.only:
            return [r for r in self.study.recipes if r.name in self.only]
        return [r for r in self.study.recipes if r.default]

    @property
    def tuning_probes(self) -> str:
        return self.study.probes[0]

    # --- the study ------------------------------------------------------------------------------
    def run(self) -> dict[str, RunSpec]:
        start = time.time()
        for name, entry in self.state["runs"].items():  # an earlier invocation was stopped while it ran these
            if entry.get("status") == "running" and self.execute_runs and not run_held(self.dir / name):
                entry["status"] = "interrupted"
                self.mine["runs"].add(name)
        self.invocation = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "id": f"{os.getpid()}-{time.time_ns()}",
                           "only": self.only, "executed": self.execute_runs}
        self._save_state()
        selected = self.selected()
        if self.study.split.tuning is not None and any(r.grid or r.tuned_like for r in selected):
            for r in selected:
                if not r.train:  # the base model on the tuning documents: the tuning table's reference row
                    self.spec_and_run(self.planner.build(r, "tuning", self.tuning_probes, {}))
        for recipe in selected:
            point = self.choose(recipe)
            if point is None:  # --report-only before its tuning finished
                self.echo(f"[study] {recipe.name}: not tuned yet; left out")
                continue
            if self.study.tuning_only:
                continue
            for i, probes in enumerate(self.study.probes):
                if i and self.study.ranking and recipe.name not in self.study.ranking:
                    continue  # the second probe kind is there to check the ranking
                self.spec_and_run(self.planner.build(recipe, "reporting", probes, point))
        check_split(self.dir, self.specs.values())
        self.invocation.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), seconds=round(time.time() - start, 2),
                   ran=self.ran)
        self._save_state()
        return self.specs

    def choose(self, recipe: Recipe) -> dict[str, Any] | None:
        """The recipe's settings from its grid (tuned on the tuning documents), or another's."""
        if recipe.name in self.chosen:
            return self.chosen[recipe.name]["point"]
        if recipe.tuned_like:
            point = self.choose(self.recipes[recipe.tuned_like])
            if point is not None:
                self.chosen[recipe.name] = {"point": point, "like": recipe.tuned_like}
            return point
        if not recipe.grid:
            self.chosen[recipe.name] = {"point": {}}
            return {}
        evidence = []
        for point in grid_points(recipe.grid):
            spec = self.spec_and_run(self.planner.build(recipe, "tuning", self.tuning_probes, point))
            evidence.append({"run": spec.name, "point": point, **measure(self.dir / spec.name, closed_condition(recipe))})
            if self.study.select.reading_floor is not None and recipe.train:
                evidence[-1]["reading"] = reading_gaps(self.dir / spec.name)
        choice = select(evidence, self.study.select)
        self.evidence[recipe.name] = evidence
        self.chosen[recipe.name] = choice
        self.state["chosen"][recipe.name] = {**choice, "evidence": evidence}
        self.mine["chosen"].add(recipe.name)
        self._save_state()
        if choice.get("point") is None:
            if not self.execute_runs:
                return None
            raise EntigraphError(f"recipe {recipe.name}: no tuning run has results ({choice['why']})")
        self.echo(f"[study] {recipe.name}: chose {choice['point']} ({choice['why']})")
        return choice["point"]

    # --- one run -------------------------------------------------------------------------------
    def spec_and_run(self, spec: RunSpec) -> RunSpec:
        recipe = self.recipes[spec.recipe]
        if recipe.train_docs is not None and spec.role == "reporting":
            # train on the control's documents, then ask the reporting documents' questions of that
            # model, named by its place in the stage cache (content-addressed: a retrained model is a
            # new path, so the evaluation's fingerprint follows it)
            trained = self.spec_and_run(self.planner.build(recipe, "control-train", spec.probes, spec.point))
            tcfg = self.planner.config(trained)
            model = stage_cache.cache_entry(tcfg, "train", fingerprints.fingerprint(tcfg, "train")) / "model"
            spec = self.planner.build(recipe, spec.role, spec.probes, spec.point,
                                      {"eval.extra_models": {CONTROL: str(model)}})
        if recipe.budget_like is not None:
            like = self.specs.get(recipe.budget_like if spec.role == "reporting" else "")
            budget = (like.data.get("train") or {}).get("max_synthetic_tokens") if like else None
            if like is None:
                raise EntigraphError(f"recipe {recipe.name}: budget_like {recipe.budget_like} has no reporting run "
                                     "in this invocation (run it too, e.g. --only with both)")
            spec = self.planner.build(recipe, spec.role, spec.probes, spec.point, {"train.max_synthetic_tokens": budget})
        elif recipe.synthetic_token_share is not None:
            head = tuple(s for s in spec.stages if s in ("extract", "synthesize", "filter"))
            self._execute(spec, head)
            total = self.kept_tokens(spec)
            budget = max(1, int(total * recipe.synthetic_token_share)) if total else None
            spec = self.planner.build(recipe, spec.role, spec.probes, spec.point,
                                      {"train.max_synthetic_tokens": budget})
        self._execute(spec, spec.stages)
        self.specs[spec.name] = spec
        return spec

    def _execute(self, spec: RunSpec, stages: tuple[str, ...]) -> None:
        cfg = self.planner.config(spec)
        if self.execute_runs and run_held(self.dir / spec.name):
            self.echo(f"[study] {spec.name}: another invocation is running it; waiting for it to finish")
            wait_for_run(self.dir / spec.name)
        entry = self.state["runs"].setdefault(spec.name, {})
        self.mine["runs"].add(spec.name)
        entry.update(recipe=spec.recipe, role=spec.role, probes=spec.probes, point=spec.point,
                     stages=list(spec.stages))
        if all(fingerprints.is_complete(cfg, s) for s in stages):
            entry["status"] = "done"
            return
        if not self.execute_runs:
            entry["status"] = entry.get("status") if entry.get("status") == "running" else "incomplete"
            return
        self.echo(f"[study] {spec.name}: {', '.join(stages)} ({spec.role}, {spec.probes} probes)")
        entry.update(status="running", started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self._save_state()
        clock = time.perf_counter()
        try:
            if self.executor == "inline":
                with run_lock(cfg.out):
                    pipeline.save_config(cfg)
                    for stage in stages:
                        pipeline.run_stage(cfg, stage, echo=self.echo)
            else:
                path = self.planner.write(spec.name, spec.data)
                code = _worker([sys.executable, "-m", "entigraph.study.worker", str(path), ",".join(stages)],
                               worker_env(cfg))
                if code:
                    raise EntigraphError(f"run {spec.name} {_stopped(code)}; its log is above. Rerun the study to resume it")
        except BaseException:
            entry.update(status="failed", seconds=round(time.perf_counter() - clock, 2))
            self._save_state()
            raise
        entry.update(status="done", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     seconds=round(time.perf_counter() - clock, 2))
        self.ran.append(spec.name)
        self._save_state()

    def kept_tokens(self, spec: RunSpec) -> int:
        """Tokens of the run's kept synthetic passages, with models.base's tokenizer (memoised by
        the content of filter/kept.jsonl)."""
        cfg = self.planner.config(spec)
        kept = cfg.out / "filter" / "kept.jsonl"
        if not kept.is_file():
            return 0
        digest = hashlib.sha256(kept.read_bytes()).hexdigest()[:16]
        key = f"{digest}:{cfg.models.base}"
        if key not in self.state["kept_tokens"]:
            from transformers import AutoTokenizer

            from ..models import resolve_lm

            tok = AutoTokenizer.from_pretrained(resolve_lm(cfg.models.base, cfg.models.cache_dir))
            texts = [r["text"] for r in read_jsonl(kept) if r.get("text", "").strip()]
            self.state["kept_tokens"][key] = int(sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts))
            self._save_state()
        return self.state["kept_tokens"][key]


def _worker(cmd: list[str], env: dict[str, str], grace_s: float = 5.0) -> int:
    """Run a worker to its end. Stopping the study (Ctrl-C, `kill`) stops it too: Ctrl-C reaches
    it through the terminal, `kill` through here, and it records its attempt before it exits."""
    return run_to_end(cmd, env, grace_s)[0]


def _stopped(code: int) -> str:
    """How a worker ended, in words: a SIGKILL nobody sent by hand is most often the kernel's OOM
    killer (how many workers fit: docs/study.md)."""
    if code == -signal.SIGKILL:
        return ("was killed by SIGKILL (if nobody killed it, the kernel's OOM killer: see `dmesg`, "
                "and run fewer invocations side by side)")
    if code < 0:
        return f"was stopped by {signal.Signals(-code).name}"
    return f"stopped (exit code {code})"


def worker_env(cfg) -> dict[str, str]:
    """The worker's environment: a study that caps training threads (two runs side by side, one per
    core) caps every stage's, since evaluation and generation otherwise take all cores. Two
    evaluations at two threads each on two cores scored 5x slower than at one thread each
    (docs/study.md)."""
    env = dict(os.environ)
    if cfg.train.threads and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(cfg.train.threads)
    return env


# ---------------------------------------------------------------------------------------------
# Choosing a grid point

def closed_condition(recipe: Recipe) -> str:
    return "cpt_closed" if recipe.train else "base_closed"


def measure(run: Path, condition: str) -> dict:
    """Closed-book figures of a tuning run: n, accuracy with its interval, mean target log-lik,
    overall and per probe type."""
    from ..evaluation.stats import bootstrap_ci

    path = run / "eval" / "records.jsonl"
    if not (run / "eval" / ".done.json").is_file() or not path.is_file():
        return {"n": 0}
    recs = [r for r in read_jsonl(path) if r["condition"] == condition]

    def figures(rs: list[dict]) -> dict:
        ok = [bool(r["correct"]) for r in rs]
        lps = [r["target_logprob"] for r in rs if "target_logprob" in r]
        lo, hi = bootstrap_ci(ok, 2000, 0)
        return {"n": len(rs), "accuracy": float(np.mean(ok)) if rs else None, "ci95": [lo, hi],
                "target_logprob": float(np.mean(lps)) if lps and len(lps) == len(rs) else None}

    types = sorted({r.get("probe_type", "") for r in recs})
    per_probe = {r["qid"]: [float(bool(r["correct"])), r.get("target_logprob")] for r in recs}
    return {**figures(recs), "by_type": {t: figures([r for r in recs if r.get("probe_type", "") == t])
                                         for t in types if t}, "per_probe": per_probe}


def reading_gaps(run: Path) -> dict[str, float]:
    """Per probe type, the lower bound of the 95 % paired bootstrap interval of the trained model's
    mean target log-likelihood with retrieved chunks minus the base model's with the same chunks
    (issue 34's reading bar), on a tuning run scored with RAG ({} without)."""
    from ..evaluation.stats import paired_bootstrap

    path = run / "eval" / "records.jsonl"
    if not (run / "eval" / ".done.json").is_file() or not path.is_file():
        return {}
    by: dict[str, dict[str, dict[str, float]]] = {"cpt_rag": {}, "base_rag": {}}
    for r in read_jsonl(path):
        if r["condition"] in by and "target_logprob" in r:
            by[r["condition"]].setdefault(r.get("probe_type", ""), {})[r["qid"]] = r["target_logprob"]
    out = {}
    for ptype, mine in by["cpt_rag"].items():
        theirs = by["base_rag"].get(ptype, {})
        qids = [q for q in mine if q in theirs]
        if qids:
            out[ptype] = float(paired_bootstrap([mine[q] for q in qids], [theirs[q] for q in qids], 2000, 0)["ci95"][0])
    return out


def _reading_floor(done: list[dict], floor: float | None) -> tuple[list[dict], str]:
    """The points that read within `floor` nats of the base model on every probe type (all of them
    without a floor); when none does, the one that reads best."""
    if floor is None:
        return done, ""
    worst = {id(e): min((e.get("reading") or {"": float("-inf")}).values()) for e in done}
    kept = [e for e in done if worst[id(e)] >= -floor]
    if kept:
        left = len(done) - len(kept)
        return kept, (f"; {left} point(s) read more than {floor:g} nats below the base model with retrieved chunks "
                      "and were not eligible" if left else "")
    best = max(done, key=lambda e: worst[id(e)])
    return [best], (f"; no point reads within {floor:g} nats of the base model with retrieved chunks: "
                    f"{fmt(best['point'])} reads best ({worst[id(best)]:+.3f})")


def select(evidence: list[dict], rule) -> dict:
    """The grid point with the best metric; points within `tie_within` of it are ties, broken by
    the other metric, then by grid order. With `reading_floor`, only points that read within it."""
    done = [e for e in evidence if e.get("n")]
    if not done:
        return {"point": None, "why": "no tuning results"}
    done, floor_note = _reading_floor(done, getattr(rule, "reading_floor", None))
    metric = rule.metric
    if metric == "target_logprob" and any(e.get("target_logprob") is None for e in done):
        metric = "accuracy"  # multiple-choice questions have no single target text
    other = "accuracy" if metric == "target_logprob" else "target_logprob"
    if rule.tie_break == metric or any(e.get(other) is None for e in done):
        other = None
    if rule.tie_break == "order":
        other = None
    best = max(done, key=lambda e: e[metric])
    ties = [e for e in done if best[metric] - e[metric] <= rule.tie_within]
    if getattr(rule, "noise", False):  # not worse than the best beyond noise: a paired bootstrap per probe
        ties += [e for e in done if e not in ties and _not_worse(e, best, metric)]
        ties.sort(key=done.index)
    if other and len(ties) > 1:
        top = max(e[other] for e in ties)
        ties = [e for e in ties if e[other] == top]
    pick = ties[0]
    label = {"target_logprob": "mean target log-likelihood", "accuracy": "accuracy"}[metric]
    why = f"best closed-book {label} on the tuning documents: {best[metric]:.4g} at {fmt(best['point'])}"
    if pick is not best:
        how = "first in grid order" if other is None else f"better {other.replace('_', ' ')}"
        tie = "within noise of it" if getattr(rule, "noise", False) else f"within {rule.tie_within:g} of it"
        why += f"; {fmt(pick['point'])} ({pick[metric]:.4g}) is {tie}, and {how}"
    why += floor_note
    missing = len([e for e in evidence if not e.get("n")])
    if missing:
        why += f" ({missing} grid points without results)"
    return {"point": pick["point"], "run": pick["run"], "metric": metric, "tie_break": other, "why": why}


def fmt(point: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "the defaults"


def _not_worse(e: dict, best: dict, metric: str) -> bool:
    """Whether the paired bootstrap 95 % interval of (best - e), per probe, includes 0."""
    from ..evaluation.stats import paired_bootstrap

    col = 0 if metric == "accuracy" else 1
    a, b = e.get("per_probe") or {}, best.get("per_probe") or {}
    qids = [q for q in a if q in b and a[q][col] is not None and b[q][col] is not None]
    if not qids:
        return False
    d = paired_bootstrap([b[q][col] for q in qids], [a[q][col] for q in qids], 2000, 0)
    return d["ci95"][0] <= 0


# ---------------------------------------------------------------------------------------------
# The split

def _doc_keys(run: Path) -> dict[str, str]:
    path = run / "extract" / "documents.jsonl"
    if not path.is_file():
        return {}
    return {r["doc_id"]: hashlib.sha1(r["text"].encode()).hexdigest() for r in read_jsonl(path)}


def tuning_documents(root: Path, specs) -> dict[str, str]:
    out: dict[str, str] = {}
    for spec in specs:
        if spec.role == "tuning":
            out.update(_doc_keys(root / spec.name))
    return out


def check_split(root: Path, specs) -> None:
    """Raise when a tuning document, or a question about one, is in a reporting run."""
    specs = list(specs)
    tuning = tuning_documents(root, specs)
    if not tuning:
        return
    texts = set(tuning.values())
    for spec in specs:
        if spec.role != "reporting":
            continue
        docs = _doc_keys(root / spec.name)
        leaked = sorted(d for d, h in docs.items() if h in texts or d in tuning)
        if leaked:
            raise SplitError(f"run {spec.name}: tuning documents among its documents: {', '.join(leaked[:5])}")
        path = root / spec.name / "eval" / "records.jsonl"
        if path.is_file():
            bad = sorted({r["doc_id"] for r in read_jsonl(path) if r["doc_id"] in tuning})
            if bad:
                raise SplitError(f"run {spec.name}: questions about tuning documents ({', '.join(bad[:5])}) "
                                 "in a reporting run")


def reporting_point(specs: dict[str, RunSpec], recipe: str) -> dict:
    spec = specs.get(recipe)
    return spec.point if spec else {}


__all__ = ["Study", "SplitError", "check_split", "measure", "select", "apply"]
