"""From a study to run configs: one per recipe and document range (and grid point, and probe kind).

Every run of a study lives under {run_dir}/{study}/ with ``stage_cache: true``, so a stage two runs
share (the extract of the same documents, a synthesis two recipes differ after) runs once and is
reused by its fingerprint. Sections a run's stages never read are reset to their defaults, so they
do not enter its fingerprints: the base model's evaluation does not rerun when a training setting
changes, nor Raw CPT's training when a synthesis setting does.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import yaml

from ..stages import STAGES
from ..config import MOVED, RunConfig, load_config, read_config_data
from ..errors import ConfigError
from .config import Recipe, StudyConfig


@dataclass
class RunSpec:
    name: str  # the run folder's name under {run_dir}/{study}/
    recipe: str
    role: str  # tuning | reporting
    probes: str  # given | generated
    point: dict[str, Any] = field(default_factory=dict)  # the grid point (tuning) or the chosen one
    stages: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)  # the run config as a mapping


def study_dir(study: StudyConfig) -> Path:
    return Path(study.run_dir) / study.name


def resolve_base(study: StudyConfig) -> Path:
    """The base run config: relative to the working directory (as run configs' own paths are),
    else to the study file's folder."""
    path = Path(study.base)
    if path.is_file() or path.is_absolute() or not study.config_path:
        return path
    beside = Path(study.config_path).parent / path
    return beside if beside.is_file() else path


def deep_set(data: dict, key: str, value: Any) -> None:
    """data[a][b] = value for key "a.b"; mappings merge (nested study `set:` entries)."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
        for k, v in value.items():
            deep_set(node[parts[-1]], str(k), v)
    else:
        node[parts[-1]] = copy.deepcopy(value)


def apply(data: dict, settings: dict[str, Any]) -> dict:
    for key, value in settings.items():
        deep_set(data, str(key), value)
    return data


def slug(point: dict[str, Any]) -> str:
    """A grid point as part of a run name: {train.lr: 0.001, train.epochs: 2} -> "lr0.001-epochs2"."""
    parts = []
    for key, value in point.items():
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        parts.append(key.split(".")[-1] + re.sub(r"[^A-Za-z0-9._-]+", "", text))
    return "-".join(parts) or "default"


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in product(*(grid[k] for k in keys))] if keys else [{}]


def needs_synthesis(cfg: RunConfig) -> bool:
    return any(m.source == "synthetic" for m in cfg.train.mixture)


def stages_for(cfg: RunConfig, trains: bool) -> tuple[str, ...]:
    if not trains:
        return ("extract", "eval", "report")
    if not needs_synthesis(cfg):
        return ("extract", "train", "eval", "report")
    return STAGES


def _uses_backend(cfg: RunConfig, stages: tuple[str, ...]) -> bool:
    from ..pipeline import uses_backend as uses

    paraphrase = cfg.eval.probes == "generated" and cfg.eval.generated.paraphrase
    return any(uses(cfg, s) for s in stages) or paraphrase


CONTROL = "control"  # the eval label of a control recipe's model (eval.extra_models)
UNREAD = {"synthesize": ("synthesis", "filter", "report"), "train": ("train",)}  # sections only these stages read


def canonical(data: dict, cfg: RunConfig, stages: tuple[str, ...]) -> dict:
    """The run config with the sections its stages never read left at their defaults."""
    data = copy.deepcopy(data)
    for stage, sections in UNREAD.items():
        if stage not in stages:
            for section in sections:
                data.pop(section, None)
    if not _uses_backend(cfg, stages):
        data.pop("backend", None)
    return data


class Planner:
    """Run configs of a study's recipes (loaded and checked like any run config)."""

    def __init__(self, study: StudyConfig, config_dir: Path | None = None):
        self.study = study
        self.base_data = read_config_data(resolve_base(study))
        self.config_dir = config_dir or study_dir(study) / ".configs"
        self.recipes = {r.name: r for r in study.recipes}

    def conditions(self, recipe: Recipe, settings: list[str]) -> list[str]:
        model = "cpt" if recipe.train and recipe.train_docs is None else "base"
        return [f"{model}_{s}" for s in settings]

    def build(self, recipe: Recipe, role: str, probes: str, point: dict[str, Any],
              extra: dict[str, Any] | None = None) -> RunSpec:
        """role: tuning | reporting | control-train (a control's training on its own documents)."""
        s = self.study
        rng = {"tuning": s.split.tuning, "control-train": recipe.train_docs}.get(role, s.split.reporting)
        name = {"reporting": recipe.name, "control-train": f"{recipe.name}-train"}.get(
            role, f"{recipe.name}-tune" + (f"-{slug(point)}" if point else ""))
        if probes != s.probes[0]:
            name += f".{probes}"
        if role == "tuning":
            settings = s.tuning_conditions
        elif probes != s.probes[0]:
            settings = s.generated_conditions
        else:
            settings = recipe.conditions or s.conditions
        data = copy.deepcopy(self.base_data)
        apply(data, s.set)
        apply(data, rng.set)
        apply(data, recipe.set)
        apply(data, point)
        apply(data, extra or {})
        apply(data, {"name": name, "run_dir": str(study_dir(s)), "stage_cache": True,
                     "corpus.skip_docs": rng.skip_docs, "corpus.limit_docs": rng.limit_docs,
                     "eval.conditions": self.conditions(recipe, settings), "eval.probes": probes})
        if role == "tuning":  # the choice reads closed-book probes only; forgetting is a reported number
            apply(data, {"eval.forgetting_blocks": 0})
        control = recipe.train_docs is not None  # its reporting run gets the model as eval.extra_models (runner)
        cfg = self.load(name, data)
        stages = stages_for(cfg, recipe.train and not (control and role == "reporting"))
        if role == "control-train":
            stages = tuple(st for st in stages if st not in ("eval", "report"))
        data = canonical(data, cfg, stages)
        self.load(name, data)  # the canonical form is valid too
        return RunSpec(name, recipe.name, role, probes, dict(point), stages, data)

    def load(self, name: str, data: dict) -> RunConfig:
        path = self.write(name, data)
        try:
            return load_config(path)
        except ConfigError as e:
            raise ConfigError(f"study {self.study.name}, run {name}: {e}") from None

    def write(self, name: str, data: dict) -> Path:
        from ..io import atomic_path

        path = self.config_dir / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(data, sort_keys=False)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            with atomic_path(path) as tmp:
                tmp.write_text(text, encoding="utf-8")
        return path

    def config(self, spec: RunSpec) -> RunConfig:
        return self.load(spec.name, spec.data)


def check_moved_keys(study: StudyConfig) -> None:
    """A study's `set:` may not use a key that moved (the run config loader says where it went)."""
    for scope, settings in [("set", study.set)] + [(f"recipes[{r.name}].set", r.set) for r in study.recipes]:
        for key in settings:
            if key in MOVED:
                raise ConfigError(f"{scope}: {key} moved to {MOVED[key]}")
