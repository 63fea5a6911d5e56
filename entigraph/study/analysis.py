"""A study's figures, from its run folders: per recipe closed-book / RAG / oracle with 95 % intervals,
the share of the closed-book -> oracle gap closed, paired tests against the base model and the
reference recipe (exact McNemar on right/wrong, paired bootstrap on the target's log-likelihood),
the reading check and the forgetting check, token budgets, wall time per stage (every attempt, and
what the stage cache saved), the tuning evidence, and generated probes ranked against given ones.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

import numpy as np

from ..evaluation.compare import paired_test
from ..evaluation.stats import bootstrap_ci
from ..io import read_json, read_jsonl
from .config import StudyConfig
from .plan import CONTROL, RunSpec
from .runner import tuning_documents

PROBE_NAMES = {"gen": "paraphrased", "hard_gen": "composition", "mem": "memorisation", "": "questions",
               "generated": "generated cloze", "generated-paraphrase": "generated, paraphrased"}
SETTINGS = ("closed", "rag", "oracle")


def probe_name(ptype: str) -> str:
    return PROBE_NAMES.get(ptype, ptype)


def _read(path: Path):
    try:
        return read_json(path) if path.is_file() else None
    except (OSError, ValueError):
        return None


def load_records(run: Path, model: str) -> dict[tuple[str, str], dict[str, dict]]:
    """{(setting, probe type): {qid: record}} of one model's conditions in a run."""
    path = run / "eval" / "records.jsonl"
    out: dict[tuple[str, str], dict[str, dict]] = {}
    if not path.is_file() or not (run / "eval" / ".done.json").is_file():
        return out
    for r in read_jsonl(path):
        label, setting = r["condition"].rsplit("_", 1)
        if label == model:
            out.setdefault((setting, r.get("probe_type", "")), {})[r["qid"]] = r
    return out


def figures(recs: dict[str, dict], resamples: int = 2000) -> dict:
    qids = sorted(recs)
    ok = [bool(recs[q]["correct"]) for q in qids]
    lps = [recs[q]["target_logprob"] for q in qids if "target_logprob" in recs[q]]
    lo, hi = bootstrap_ci(ok, resamples, 0)
    return {"n": len(qids), "accuracy": 100 * float(np.mean(ok)), "ci95": [100 * lo, 100 * hi],
            "target_logprob": float(np.mean(lps)) if lps and len(lps) == len(qids) else None}


def tokens(run: Path) -> dict:
    out: dict = {}
    m = _read(run / "train" / "data" / "manifest.json")
    if m:
        pool = m.get("pool_tokens", {})
        out.update(training=int(m.get("train_tokens", 0)), by_source=m.get("train_tokens_by_source", {}),
                   steps=m.get("steps"),
                   synthetic=int(sum(v for k, v in pool.items() if str(k).startswith("synthetic"))))
    s = _read(run / "synthesize" / "summary.json")
    if s:
        out.update(generations=s.get("passages"), generated_tokens=s.get("completion_tokens"))
    f = _read(run / "filter" / "summary.json")
    if f:
        out.update(kept_passages=f.get("kept"), kept_tokens=f.get("tokens_kept"))
    return out


def timings(run: Path, stages: Iterable[str]) -> dict:
    """Per stage: the seconds of every attempt at its current settings, whether this run reused it
    from the stage cache (then: the seconds it took where it ran), and the attempts."""
    t = _read(run / "timings.json") or {}
    history = list(read_jsonl(run / "history.jsonl")) if (run / "history.jsonl").is_file() else []
    out = {}
    for stage in stages:
        marker = _read(run / stage / ".done.json") or {}
        fp = marker.get("fingerprint")
        rows = [h for h in history if h["stage"] == stage and h.get("fingerprint") == fp]
        reused = bool(rows) and rows[-1]["outcome"] == "reused"
        out[stage] = {"seconds": float(t.get("total", {}).get(stage, t.get(stage, 0.0)) or 0.0),
                      "ran_seconds": float(marker.get("seconds", 0.0)), "reused": reused,
                      "attempts": sum(h["outcome"] != "reused" for h in rows), "complete": bool(marker)}
    spent = sum(h["seconds"] for h in history if h["outcome"] != "reused")
    return {"stages": out, "spent_seconds": round(spent, 2), "attempts": len(history)}

def model_alpha(label: str) -> float | None:
    """The interpolation weight of an eval model label: base 0, cpt 1, alpha<a> a (eval.interpolate)."""
    if label in ("base", "cpt"):
        return float(label == "cpt")
    if label.startswith("alpha"):
        try:
            return float(label[5:])
        except ValueError:
            return None
    return None


def tradeoff(run: Path, resamples: int = 2000) -> list[dict]:
    """Per probe type, setting and interpolation weight (the base model, eval.interpolate's mixes,
    the trained model): accuracy, mean target log-likelihood, and the paired test against the base
    model in the same setting (the reading check, for every a). [] without records."""
    path = run / "eval" / "records.jsonl"
    if not path.is_file() or not (run / "eval" / ".done.json").is_file():
        return []
    by: dict[tuple[str, str, str], dict[str, dict]] = {}
    for r in read_jsonl(path):
        label, setting = r["condition"].rsplit("_", 1)
        by.setdefault((label, setting, r.get("probe_type", "")), {})[r["qid"]] = r
    rows = []
    for (label, setting, ptype), recs in by.items():
        alpha = model_alpha(label)
        if alpha is None or (alpha == 0 and label != "base" and ("base", setting, ptype) in by):
            continue  # alpha0 is the base model, bit for bit
        if alpha == 1 and label != "cpt" and ("cpt", setting, ptype) in by:
            continue
        row = {"alpha": alpha, "model": label, "setting": setting, "probe_type": ptype, **figures(recs, resamples)}
        base = by.get(("base", setting, ptype))
        if base and label != "base":
            row["vs_base"] = paired_test(recs, base, resamples, 0)
        rows.append(row)
    order = {s: i for i, s in enumerate(SETTINGS)}
    return sorted(rows, key=lambda r: (r["probe_type"], r["alpha"], order.get(r["setting"], 9)))


class Analysis:
    def __init__(self, study: StudyConfig, root: Path, specs: dict[str, RunSpec], chosen: dict, evidence: dict):
        self.study, self.root, self.specs = study, root, specs
        self.chosen, self.evidence = chosen, evidence
        self.recipes = {r.name: r for r in study.recipes}
        self.base = next((r.name for r in study.recipes if not r.train), None)
        self.resamples = 2000

    def model(self, name: str) -> str:
        """The eval label of a recipe's model in its reporting run."""
        r = self.recipes[name]
        return CONTROL if r.train_docs is not None else ("cpt" if r.train else "base")

    def reporting(self, probes: str) -> dict[str, RunSpec]:
        return {s.recipe: s for s in self.specs.values() if s.role == "reporting" and s.probes == probes}

    def run(self) -> dict:
        s = self.study
        tuning_docs = tuning_documents(self.root, self.specs.values())
        out: dict = {
            "study": s.name, "written": time.strftime("%Y-%m-%d %H:%M"), "config": s.config_path,
            "split": {"tuning": None if s.split.tuning is None else vars(s.split.tuning),
                      "reporting": vars(s.split.reporting), "tuning_documents": sorted(tuning_docs),
                      "check": "no reported question or document is a tuning document"},
            "select": vars(s.select), "base": self.base, "reference": s.reference, "probes": list(s.probes),
            "recipes": {}, "paired": {}, "gap_closed": {}, "tuning": {}, "runs": {},
        }
        records: dict[str, dict[str, dict]] = {}  # probes -> recipe -> records
        for probes in s.probes:
            records[probes] = {}
            for name, spec in self.reporting(probes).items():
                records[probes][name] = load_records(self.root / spec.name, self.model(name))
        for name, recipe in self.recipes.items():
            spec = self.reporting(s.probes[0]).get(name)
            if spec is None:
                continue
            run = self.root / spec.name
            res = _read(run / "eval" / "results.json") or {}
            trained = self.specs.get(f"{name}-train") if recipe.train_docs is not None else None
            train_run = self.root / trained.name if trained else run
            timing = timings(run, spec.stages)
            if trained:  # a control: its training ran in <name>-train
                timing["stages"] = {**timings(train_run, trained.stages)["stages"], **timing["stages"]}
            entry = {"run": spec.name, "description": recipe.description, "group": recipe.group,
                     "train": recipe.train, "point": spec.point, "tuned_like": recipe.tuned_like,
                     "control": trained.name if trained else None,
                     "complete": bool(records[s.probes[0]].get(name)),
                     "synthetic_token_share": recipe.synthetic_token_share, "results": {},
                     "tokens": tokens(train_run), "timings": timing}
            for probes in s.probes:
                for (setting, ptype), recs in sorted(records[probes].get(name, {}).items()):
                    entry["results"][f"{setting}/{ptype}"] = figures(recs, self.resamples)
            if recipe.train and recipe.train_docs is None and entry["complete"]:
                entry["reading"] = self._reading(run, res)
                entry["forgetting"] = self._forgetting(res, tuning_docs)
            out["recipes"][name] = entry
        for probes in s.probes:
            self._pairs(out, records[probes])
        for name, evidence in self.evidence.items():
            out["tuning"][name] = {"chosen": self.chosen.get(name, {}).get("point"),
                                   "why": self.chosen.get(name, {}).get("why", ""), "evidence": evidence}
        for name, c in self.chosen.items():
            if c.get("like"):
                out["tuning"].setdefault(name, {"chosen": c["point"], "why": f"as chosen for {c['like']}",
                                                "evidence": []})
        base_tune = next((sp for sp in self.specs.values() if sp.role == "tuning" and sp.recipe == self.base), None)
        if base_tune is not None:
            from .runner import measure

            out["tuning_base"] = {"run": base_tune.name, **measure(self.root / base_tune.name, "base_closed")}
        for spec in self.specs.values():
            t = timings(self.root / spec.name, spec.stages)
            out["runs"][spec.name] = {"recipe": spec.recipe, "role": spec.role, "probes": spec.probes,
                                      "point": spec.point, **t}
        out["compute"] = self._compute(out["runs"])
        out["tradeoff"] = {}  # runs scored in context (or at several interpolation weights): every model's curve
        for spec in self.specs.values():
            rows = tradeoff(self.root / spec.name, self.resamples)
            if any(r["setting"] != "closed" for r in rows) or len({r["alpha"] for r in rows}) > 2:
                out["tradeoff"][spec.name] = rows
        if len(s.probes) > 1:
            out["ranking"] = self._ranking(records)
        return out

    # --- pieces ---------------------------------------------------------------------------------
    def _pairs(self, out: dict, recs: dict[str, dict]) -> None:
        refs = [r for r in (self.base, self.study.reference) if r]
        for name, mine in recs.items():
            for ref in refs:
                if ref == name or ref not in recs:
                    continue
                for key, a in mine.items():
                    b = recs[ref].get(key)
                    if b:
                        out["paired"][f"{name} vs {ref}: {key[0]}/{key[1]}"] = paired_test(a, b, self.resamples, 0)
        base = recs.get(self.base or "", {})
        for name, mine in recs.items():
            for (setting, ptype), closed in mine.items():
                lo, hi = base.get(("closed", ptype)), base.get(("oracle", ptype))
                if setting != "closed" or not (lo and hi):
                    continue
                qids = sorted(set(lo) & set(hi) & set(closed))
                a = np.mean([lo[q]["correct"] for q in qids])
                b = np.mean([hi[q]["correct"] for q in qids])
                got = np.mean([closed[q]["correct"] for q in qids])
                out["gap_closed"][f"{name}/{ptype}"] = float((got - a) / (b - a)) if b > a else None

    def _reading(self, run: Path, res: dict) -> list[dict]:
        """The reading check per probe type: the adapted model against the base model, same context."""
        cpt, base = load_records(run, "cpt"), load_records(run, "base")
        out = []
        for (setting, ptype), a in sorted(cpt.items()):
            b = base.get((setting, ptype))
            if setting in ("rag", "oracle") and b:
                out.append({"setting": setting, "probe_type": ptype, "cpt": figures(a, self.resamples),
                            "base": figures(b, self.resamples), **paired_test(a, b, self.resamples, 0)})
        return out

    @staticmethod
    def _forgetting(res: dict, tuning_docs: dict) -> dict:
        f = res.get("forgetting") or {"skipped": "not measured (eval/results.json has no forgetting entry)"}
        leaked = sorted(set(f.get("doc_ids", [])) & set(tuning_docs))
        if leaked:  # held-out corpus text that is a tuning document: not a reporting number
            return {"skipped": f"withheld: its held-out text includes tuning documents ({', '.join(leaked[:3])}); "
                               "set eval.forgetting_paths"}
        return f

    @staticmethod
    def _compute(runs: dict) -> dict:
        spent = sum(r["spent_seconds"] for r in runs.values())
        saved = sum(st["ran_seconds"] for r in runs.values() for st in r["stages"].values() if st["reused"])
        reused = sum(st["reused"] for r in runs.values() for st in r["stages"].values())
        return {"spent_seconds": round(spent, 1), "saved_seconds": round(saved, 1), "reused_stages": reused,
                "stages": sum(len(r["stages"]) for r in runs.values())}

    def _ranking(self, records: dict[str, dict[str, dict]]) -> dict:
        """Do the generated probes order the recipes as the given probes do? Closed-book, all probe
        types of each kind pooled; every pair of recipes compared on both kinds."""
        kinds = list(self.study.probes)
        pooled: dict[str, dict[str, dict]] = {}
        for probes in kinds:
            pooled[probes] = {}
            for name, recs in records[probes].items():
                merged: dict[str, dict] = {}
                for (setting, _), rs in recs.items():
                    if setting == "closed":
                        merged.update(rs)
                if merged:
                    pooled[probes][name] = merged
        names = [n for n in (self.study.ranking or list(self.recipes)) if all(n in pooled[k] for k in kinds)]
        order = {}
        for k in kinds:
            figs = {n: figures(pooled[k][n], self.resamples) for n in names}
            order[k] = {"accuracy": sorted(names, key=lambda n: -figs[n]["accuracy"]),
                        "target_logprob": sorted(names, key=lambda n: -(figs[n]["target_logprob"] or float("-inf"))),
                        "figures": figs}
        pairs = []
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                row = {"a": a, "b": b}
                for k in kinds:
                    row[k] = paired_test(pooled[k][a], pooled[k][b], self.resamples, 0)
                g, h = row[kinds[0]], row[kinds[1]]
                row["agree_accuracy"] = bool(np.sign(round(g["diff"], 9)) == np.sign(round(h["diff"], 9)))
                if "logprob_diff" in g and "logprob_diff" in h:
                    row["agree_logprob"] = bool(np.sign(g["logprob_diff"]) == np.sign(h["logprob_diff"]))
                pairs.append(row)
        same = {m: order[kinds[0]][m] == order[kinds[1]][m] for m in ("accuracy", "target_logprob")}
        return {"kinds": kinds, "recipes": names, "order": order, "pairs": pairs, "same_order": same}

