"""`entigraph selfguide CONFIG`: search on validation tasks, then apply the choice to test tasks.

Files under runs/<name>/selfguide/ (every step is skipped on rerun when its file exists):

    <task>/t<temp>-<key>/inputs.jsonl       generation log: prompt makeup, raw text, parsed input
    <task>/t<temp>-<key>/annotations.jsonl  annotation log: the raw samples per input
    <task>/t<temp>-<key>/kept.jsonl         training examples {id, input, output, votes}
    <task>/t<temp>-<key>/dropped.jsonl      every dropped example with its reason
    <task>/t<temp>-<key>/data.json          counts per filter
    <task>/baseline-<split>-<key>.json      few-shot prompting: score, interval, predictions
    <task>/t<temp>-<key>/ft-<split>-e<N>-<key>.json   fine-tuned after N epochs: same, plus gain
    search.json  results.json  report.html

<key> hashes the settings the file depends on, so a changed setting never reuses stale files.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from ..backends.base import Backend
from ..errors import run_reporting_errors
from ..io import read_json, write_json, write_jsonl
from ..reporting import Html, html_table
from .annotate import annotate, vote
from .settings import SelfGuideConfig, load_config
from .gates import InputFilter, OutputFilter, balance
from .generate import generate_inputs
from .metrics import paired_gain, score, summarize
from .search import choose
from .log import stable_seed
from .tasks import Task, clean_output, load_split, load_tasks, select_tasks


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]


class Context:
    """What every step needs: config, tasks, and the lazily built backend, tokenizer and model path."""

    def __init__(self, cfg: SelfGuideConfig, backend: Backend | None = None):
        self.cfg = cfg
        self._backend = backend
        self._owns_backend = backend is None
        self._tokenizer = None
        self._model_path: str | None = None

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            from ..backends import get_backend

            c = self.cfg
            self._backend = get_backend(c.backend, device=c.device, seed=c.seed, cache_dir=c.cache_dir, work_dir=c.out)
        return self._backend

    @property
    def model_path(self) -> str:
        if self._model_path is None:
            from ..models import resolve_lm

            self._model_path = resolve_lm(self.cfg.model, self.cfg.cache_dir)
        return self._model_path

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        return self._tokenizer

    def load_model(self):
        import torch
        from transformers import AutoModelForCausalLM

        from ..devices import pick_device

        if self.cfg.finetune.threads:
            torch.set_num_threads(self.cfg.finetune.threads)
        torch.manual_seed(self.cfg.seed)
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch.float32)
        return model.to(pick_device(self.cfg.device))

    def close(self) -> None:
        if self._owns_backend and self._backend is not None:
            self._backend.close()


# ---------------------------------------------------------------- data: generate, annotate, filter

def data_dir(cfg: SelfGuideConfig, task: Task, temperature: float) -> Path:
    gen = {**cfg.generation.__dict__, "num_inputs": None}  # more inputs extend the same logs
    key = _key(cfg.model, cfg.seed, cfg.prompt, gen, cfg.annotation.sampling, cfg.annotation.samples)
    return cfg.out / task.task / f"t{temperature:g}-{key}"


def prepare_data(ctx: Context, task: Task, temperature: float) -> tuple[list[dict], dict]:
    """Generate inputs, filter them, annotate the survivors, vote, filter outputs, balance."""
    cfg, folder = ctx.cfg, data_dir(ctx.cfg, task, temperature)
    start = time.perf_counter()
    previous = read_json(folder / "data.json") if (folder / "data.json").is_file() else {}
    input_filter = InputFilter(task, cfg.filter)
    rows = generate_inputs(task, _Lazy(ctx), cfg.generation, input_filter, temperature,
                           folder / "inputs.jsonl", cfg.seed)
    dropped = [{**_brief(r), "step": "input", "reason": r["filter"]} for r in rows if r["filter"]]
    survivors = [r for r in rows if not r["filter"]]
    notes = annotate(task, survivors, _Lazy(ctx), cfg.annotation, cfg.prompt.shots,
                     folder / "annotations.jsonl", cfg.generation.batch_size, cfg.seed)
    output_filter = OutputFilter(task, cfg.filter)
    voted = []
    for row in survivors:
        output, reason, votes = vote(notes[row["id"]]["samples"], task, cfg.annotation.min_votes)
        reason = reason or output_filter.reason(output or "")
        item = {**_brief(row), "output": output, "votes": votes, "samples": notes[row["id"]]["samples"]}
        if reason:
            dropped.append({**item, "step": "output", "reason": reason})
        else:
            voted.append(item)
    kept = voted
    if task.is_classification and cfg.annotation.balance:
        kept, extra = balance(voted, stable_seed(cfg.seed, task.task, "balance"))
        dropped += [{**r, "step": "balance", "reason": "balance"} for r in extra]
    write_jsonl(folder / "kept.jsonl", kept)
    write_jsonl(folder / "dropped.jsonl", dropped)
    summary = {
        "task": task.task, "temperature": temperature, "generated": len(rows),
        "dropped": dict(Counter(_reason_group(d["reason"]) for d in dropped)),
        "after_vote": len(voted), "kept": len(kept),
        # seconds of the run that did the work (a resumed rerun that only re-filters keeps them)
        "seconds": previous.get("seconds", 0.0) + time.perf_counter() - start,
    }
    if task.is_classification:
        summary["labels"] = dict(Counter(r["output"] for r in kept))
        summary["target_agreement"] = (
            sum(r["output"] == r["target_label"] for r in voted) / len(voted) if voted else None)
    write_json(folder / "data.json", summary)
    return kept, summary


class _Lazy:
    """Builds the backend only when a step actually has requests to send (a finished rerun
    never loads the generator)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def generate(self, requests):
        return self.ctx.backend.generate(requests)


def _brief(row: dict) -> dict:
    return {"id": row["id"], "input": row["input"], "target_label": row.get("target_label")}


def _reason_group(reason: str) -> str:
    return reason.split(":", 1)[0]  # noise_input:'Sure,' -> noise_input


# ---------------------------------------------------------------- evaluation

def _eval_key(cfg: SelfGuideConfig) -> str:
    return _key(cfg.model, cfg.seed, cfg.prompt, cfg.eval, cfg.data_dir)


def _predict_rows(ctx: Context, model, task: Task, rows: list[dict], desc: str) -> list[dict]:
    from .finetune import predict, prompt_text

    cfg = ctx.cfg
    prompts = [prompt_text(ctx.tokenizer, task, r["input"], cfg.prompt.shots) for r in rows]
    limit = cfg.eval.max_new_tokens_classification if task.is_classification else cfg.eval.max_new_tokens_generation
    raw = predict(model, ctx.tokenizer, prompts, limit, cfg.eval.batch_size, cfg.eval.bf16, desc)
    preds = []
    for row, text in zip(rows, raw):
        pred = clean_output(text)
        preds.append({"input": row["input"], "gold": row["output"], "prediction": pred,
                      "score": score(pred, row["output"], task.metric, task.labels)})
    return preds


def baseline(ctx: Context, task: Task, split: str) -> dict:
    """Few-shot prompting with the task prompt (greedy), cached per split."""
    cfg = ctx.cfg
    path = cfg.out / task.task / f"baseline-{split}-{_eval_key(cfg)}.json"
    if path.is_file():
        return read_json(path)
    start = time.perf_counter()
    rows = load_split(cfg.data_dir, split, task.task, cfg.eval.limit, cfg.seed)
    preds = _predict_rows(ctx, ctx.load_model(), task, rows, f"{task.task} few-shot {split}")
    result = {"task": task.task, "split": split, "metric": task.metric,
              "score": summarize([p["score"] for p in preds], cfg.eval.bootstrap, cfg.seed),
              "seconds": time.perf_counter() - start, "predictions": preds}
    write_json(path, result)
    return result


def finetune_and_eval(ctx: Context, task: Task, temperature: float, kept: list[dict], split: str,
                      epochs: list[int], base: dict) -> dict[int, dict]:
    """Fine-tune the base model on `kept` for max(epochs) epochs, evaluating after each listed one."""
    from .finetune import build_features, finetune, prompt_text

    cfg = ctx.cfg
    folder = data_dir(cfg, task, temperature)
    key = _key(_eval_key(cfg), cfg.filter, cfg.annotation, cfg.finetune, cfg.generation.num_inputs)
    paths = {e: folder / f"ft-{split}-e{e}-{key}.json" for e in epochs}
    if all(p.is_file() for p in paths.values()):
        return {e: read_json(p) for e, p in paths.items()}
    start = time.perf_counter()
    rows = load_split(cfg.data_dir, split, task.task, cfg.eval.limit, cfg.seed)
    model = ctx.load_model()
    base_scores = [p["score"] for p in base["predictions"]]
    results: dict[int, dict] = {}

    def evaluate(epoch: int, train_log: list[dict]) -> None:
        if kept:
            preds = _predict_rows(ctx, model, task, rows, f"{task.task} t={temperature:g} e={epoch} {split}")
        else:  # nothing survived the filters: the "fine-tuned" model is the base model
            preds = base["predictions"]
        scores = [p["score"] for p in preds]
        results[epoch] = {
            "task": task.task, "split": split, "metric": task.metric, "temperature": temperature,
            "epochs": epoch, "n_train": len(kept), "train_log": list(train_log),
            "score": summarize(scores, cfg.eval.bootstrap, cfg.seed),
            "gain": paired_gain(scores, base_scores, cfg.eval.bootstrap, cfg.seed),
            "seconds": time.perf_counter() - start, "predictions": preds,
        }
        write_json(paths[epoch], results[epoch])

    if not kept:
        for e in epochs:
            evaluate(e, [])
        return results
    features = [build_features(ctx.tokenizer, prompt_text(ctx.tokenizer, task, r["input"], cfg.prompt.shots),
                               r["output"], cfg.finetune.max_length) for r in kept]
    log: list[dict] = []

    def on_epoch(epoch: int, loss: float) -> None:
        log.append({"epoch": epoch, "loss": loss})
        if epoch in paths:
            evaluate(epoch, log)

    finetune(model, ctx.tokenizer, features, cfg.finetune, max(epochs),
             stable_seed(cfg.seed, task.task, "finetune"), on_epoch)
    return results


# ---------------------------------------------------------------- the run

def run(cfg: SelfGuideConfig, backend: Backend | None = None, echo: Callable[[str], None] = print) -> dict:
    """Search on val_tasks (validation split), then test_tasks (test split) with the choice."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tasks = load_tasks(cfg.data_dir)
    val_tasks = select_tasks(tasks, cfg.val_tasks, "val_tasks")
    test_tasks = select_tasks(tasks, cfg.test_tasks, "test_tasks")
    ctx = Context(cfg, backend)
    start = time.perf_counter()
    try:
        search = _search(ctx, val_tasks, echo)
        echo(f"[selfguide] chosen: temperature {search['choice']['temperature']:g}, "
             f"{search['choice']['epochs']} epoch(s) (worst validation gain {search['choice']['worst']:+.1f})")
        test = [_evaluate_task(ctx, task, "test", search["choice"]) for task in test_tasks]
    finally:
        ctx.close()
    results = {"name": cfg.name, "model": cfg.model, "search": search, "test": test,
               "seconds": time.perf_counter() - start, "config": cfg.to_dict()}
    write_json(cfg.out / "results.json", results)
    (cfg.out / "report.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>SELF-GUIDE {html.escape(cfg.name)}</title>"
        + report_section_html(results), encoding="utf-8")
    return summary(results)


def _search(ctx: Context, val_tasks: list[Task], echo: Callable[[str], None]) -> dict:
    cfg = ctx.cfg
    grid = [(t, e) for t in cfg.search.temperatures for e in cfg.search.epochs]
    if not val_tasks:
        t, e = grid[0]
        return {"points": [], "tasks": [], "choice": {"temperature": t, "epochs": e, "worst": float("nan")}}
    per_task = []
    for task in val_tasks:
        base = baseline(ctx, task, "validation")
        for temperature in cfg.search.temperatures:
            kept, data = prepare_data(ctx, task, temperature)
            ft = finetune_and_eval(ctx, task, temperature, kept, "validation", cfg.search.epochs, base)
            for e in cfg.search.epochs:
                per_task.append({"task": task.task, "temperature": temperature, "epochs": e,
                                 "baseline": base["score"]["mean"], "selfguide": ft[e]["score"]["mean"],
                                 "gain": ft[e]["gain"]["mean"], "kept": data["kept"]})
                echo(f"[selfguide] {task.task} validation t={temperature:g} e={e}: "
                     f"{base['score']['mean']:.1f} -> {ft[e]['score']['mean']:.1f} ({data['kept']} examples)")
    points = [{"temperature": t, "epochs": e,
               "gains": {r["task"]: r["gain"] for r in per_task if (r["temperature"], r["epochs"]) == (t, e)}}
              for t, e in grid]
    choice = choose(points)
    search = {"points": points, "tasks": per_task, "choice": choice}
    write_json(cfg.out / "search.json", search)
    return search


def _evaluate_task(ctx: Context, task: Task, split: str, choice: dict) -> dict:
    temperature, epochs = choice["temperature"], choice["epochs"]
    base = baseline(ctx, task, split)
    kept, data = prepare_data(ctx, task, temperature)
    ft = finetune_and_eval(ctx, task, temperature, kept, split, [epochs], base)[epochs]
    return {"task": task.task, "kind": task.kind, "metric": task.metric, "split": split,
            "temperature": temperature, "epochs": epochs, "baseline": base["score"],
            "selfguide": ft["score"], "gain": ft["gain"], "data": data,
            "seconds": {"data": data["seconds"], "baseline": base["seconds"], "finetune_eval": ft["seconds"]}}


def summary(results: dict) -> dict:
    return {
        "choice": {k: results["search"]["choice"][k] for k in ("temperature", "epochs", "worst")},
        "test": {r["task"]: {"few_shot": round(r["baseline"]["mean"], 1),
                             "selfguide": round(r["selfguide"]["mean"], 1),
                             "kept": r["data"]["kept"], "generated": r["data"]["generated"]}
                 for r in results["test"]},
        "seconds": round(results["seconds"], 1),
    }


def summary_lines(s: dict) -> list[str]:
    lines = [f"chosen temperature {s['choice']['temperature']:g}, {s['choice']['epochs']} epoch(s)"]
    for task, r in s["test"].items():
        lines.append(f"{task}: few-shot {r['few_shot']:.1f} -> SELF-GUIDE {r['selfguide']:.1f} "
                     f"({r['kept']}/{r['generated']} generated examples kept)")
    return lines


# ---------------------------------------------------------------- report

def _ci(s: dict) -> Html:
    return Html(f"{s['mean']:.1f} <small>[{s['ci95'][0]:.1f}, {s['ci95'][1]:.1f}]</small>")


def report_section_html(results: dict) -> str:
    """An HTML fragment: the search grid, then per test task prompting vs SELF-GUIDE with 95 %
    bootstrap intervals, what the filters kept, and the wall time."""
    choice = results["search"]["choice"]
    out = ["<section class='selfguide'><h2>SELF-GUIDE</h2>"]
    if results["search"]["points"]:
        tasks = list(results["search"]["points"][0]["gains"])
        rows = []
        for p in results["search"]["points"]:
            chosen = (p["temperature"], p["epochs"]) == (choice["temperature"], choice["epochs"])
            rows.append([f"{p['temperature']:g}", p["epochs"], *(f"{g:+.1f}" for g in p["gains"].values()),
                         Html(f"<b>{min(p['gains'].values()):+.1f}</b>{' ✓' if chosen else ''}")])
        out += ["<h3>Parameter search (validation split; objective: worst task's gain)</h3>",
                html_table(["temperature", "epochs", *tasks, "worst"], rows, "search")]
    rows = [[r["task"], r["metric"], r["baseline"]["n"], _ci(r["baseline"]), _ci(r["selfguide"]), _ci(r["gain"]),
             r["data"]["generated"], ", ".join(f"{k} {v}" for k, v in sorted(r["data"]["dropped"].items())) or "none",
             r["data"]["kept"], f"{sum(r['seconds'].values()):.0f}"] for r in results["test"]]
    out += [f"<h3>Test tasks (temperature {choice['temperature']:g}, {choice['epochs']} epoch(s))</h3>",
            html_table(["task", "metric", "rows", "few-shot prompting", "SELF-GUIDE", "gain", "generated",
                        "dropped by filter", "kept", "wall time (s)"], rows, "tasks"),
            "<p>Scores in points (exact match for classification, ROUGE-L F1 for generation), "
            "95 % bootstrap intervals over test rows; the gain interval is paired (same rows).</p></section>"]
    return "\n".join(out)


# ---------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="entigraph selfguide",
                                     description="SELF-GUIDE: self-synthesised task data, fine-tuning, evaluation")
    parser.add_argument("config", help="YAML config (see configs/selfguide-dev.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set generation.num_inputs=32 (repeatable)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

    def work() -> None:
        cfg = load_config(args.config, args.overrides)
        result = run(cfg)
        for line in summary_lines(result):
            print(f"[selfguide] {line}")
        print(f"entigraph: selfguide finished in {result['seconds']:.1f} s; outputs in {cfg.out}")

    return run_reporting_errors(work)


if __name__ == "__main__":
    sys.exit(main())
