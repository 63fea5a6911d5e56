"""The study file: a base run config, named recipes, a tuning grid per recipe and a document split.

    name: fictional-dev
    base: configs/fictional-dev.yaml          # a run config; relative paths: working dir, then this file's
    set: {train.threads: 1}                   # settings for every run of the study
    split:
      tuning: {skip_docs: 10, limit_docs: 5}  # hyperparameters are chosen on these documents only
      reporting: {skip_docs: 0, limit_docs: 10}
    select: {metric: target_logprob, tie_break: accuracy}
    reference: raw                            # every recipe is tested against this one and the base model
    probes: [given, generated]                # the corpus's questions; cloze probes mined from it
    recipes:
      - {name: base, train: false}
      - {name: raw, set: {train.data: raw}, grid: {train.lr: [1.0e-4, 1.0e-3]}}
      - {name: entigraph, grid: {train.lr: [3.0e-4, 1.0e-3]}}
      - {name: eg-half, tuned_like: entigraph, synthetic_token_share: 0.5, group: budget}

Loaded with entigraph.config.load: types check choices and ranges, unknown keys are errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from ..config import NonNegative, NonNegativeFloat, Positive, Range, validate_name
from ..errors import ConfigError

Setting = Literal["closed", "rag", "oracle"]
Probes = Literal["given", "generated"]


@dataclass
class DocRange:
    skip_docs: NonNegative = 0  # the range starts after this many documents of the corpus
    limit_docs: Positive | None = None  # and holds this many (None: to the end)
    set: dict[str, Any] = field(default_factory=dict)  # run settings for this range (budgets that scale with it)

    def indices(self) -> tuple[int, float]:
        return self.skip_docs, float("inf") if self.limit_docs is None else self.skip_docs + self.limit_docs


@dataclass
class SplitConfig:
    # documents the hyperparameters are chosen on; none of them, and none of their probes, ever
    # reaches a reported number. None: no tuning (every recipe keeps the settings it names)
    tuning: DocRange | None = None
    reporting: DocRange = field(default_factory=DocRange)  # the documents every reported number is measured on


@dataclass
class SelectConfig:
    # closed-book, on the tuning documents' probes: the right target's mean token log-likelihood
    # (cloze probes; multiple-choice questions fall back to accuracy) or accuracy
    metric: Literal["target_logprob", "accuracy"] = "target_logprob"
    # among tied points: the better other metric, or the first in grid order (write the grid in
    # order of preference, e.g. the setting the comparison was planned with first)
    tie_break: Literal["accuracy", "target_logprob", "order"] = "accuracy"
    tie_within: NonNegativeFloat = 0.0  # metric differences up to this are ties
    # also ties: points the best is not better than beyond noise (the paired bootstrap 95 % interval
    # of their per-probe difference from the best includes 0)
    noise: bool = False
    # reading: points whose target log-likelihood with retrieved chunks may fall more than this below
    # the base model's with the same chunks (the 95 % paired bootstrap interval of the mean difference
    # reaches below -reading_floor), on any probe type, are not chosen (the tuning runs need rag in
    # tuning_conditions); when none is left, the point that reads best. None: no floor
    reading_floor: NonNegativeFloat | None = None


@dataclass
class Recipe:
    name: str = ""  # its run folder: runs/<study>/<name>; tuning runs <name>-tune-<point>
    description: str = ""  # one line for the tables
    train: bool = True  # false: the base model itself (its conditions are base_closed, base_rag, ...)
    set: dict[str, Any] = field(default_factory=dict)  # run settings, dotted keys: {train.data: raw}
    grid: dict[str, list[Any]] = field(default_factory=dict)  # settings tried on the tuning documents
    tuned_like: str | None = None  # no grid of its own: the settings chosen for that recipe
    # train on this share of the kept synthetic tokens (counted with models.base's tokenizer, in
    # synthesis order): the points of a token-budget curve, from one synthesis
    synthetic_token_share: Annotated[float, Range(gt=0, le=1)] | None = None
    budget_like: str | None = None  # train on as many synthetic tokens as that (earlier) recipe's reporting run
    # a control: train on these documents instead (run <name>-train), then ask the reporting
    # documents' questions: what training does to the answers without the knowledge they need
    train_docs: DocRange | None = None
    conditions: list[Setting] | None = None  # reporting conditions; None = the study's
    group: str = "main"  # main | budget | ablation ...: how the report groups the rows
    default: bool = True  # false: run only when named with --only


@dataclass
class DocsConfig:
    """Markers in a markdown file (--write-docs) that take the study's tables: <!-- TAG:begin --> ... end."""

    comparison: str | None = None  # the comparison tables
    tuning: str | None = None  # the tuning evidence
    probes: str | None = None  # generated against given probes


@dataclass
class StudyConfig:
    name: str = "study"  # runs go under {run_dir}/{name}/
    base: str = ""  # the base run config (YAML)
    set: dict[str, Any] = field(default_factory=dict)  # settings for every run, dotted keys
    run_dir: str = "runs"
    split: SplitConfig = field(default_factory=SplitConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    recipes: list[Recipe] = field(default_factory=list)
    reference: str | None = None  # a recipe every other is tested against (besides the base model)
    # given: the corpus's (or eval.questions') questions; generated: cloze probes mined from the
    # documents (labelled as generated everywhere). The first kind also chooses the hyperparameters.
    probes: list[Probes] = field(default_factory=lambda: ["given"])
    conditions: list[Setting] = field(default_factory=lambda: ["closed", "rag", "oracle"])
    tuning_conditions: list[Setting] = field(default_factory=lambda: ["closed"])
    generated_conditions: list[Setting] = field(default_factory=lambda: ["closed"])  # runs on the second probe kind
    # recipes ranked on each probe kind (and the only ones run on the second kind); [] = all
    ranking: list[str] = field(default_factory=list)
    scaling: list[str] = field(default_factory=list)  # recipes on the scaling plot; [] = budget group + parents
    # process: each run in its own `python -m entigraph.study.worker` (memory freed between
    # trainings); inline: in this process (tests)
    executor: Literal["process", "inline"] = "process"
    # choose every recipe's settings on the tuning documents and stop there: no reporting run (a
    # lever's tuning curve first; the reporting documents stay unused until it is chosen)
    tuning_only: bool = False
    docs: DocsConfig = field(default_factory=DocsConfig)
    config_path: str = ""

    def validate(self) -> None:
        validate_name("name", self.name)
        if not self.base:
            raise ConfigError("base: name the run config the recipes start from")
        if not self.recipes:
            raise ConfigError("recipes: a study needs at least one recipe")
        names = [r.name for r in self.recipes]
        for r in self.recipes:
            validate_name(f"recipes[{r.name or '?'}].name", r.name)
            if "." in r.name:
                raise ConfigError(f"recipes[{r.name}].name: no '.' (it separates a recipe from its probe kind)")
            if names.count(r.name) > 1:
                raise ConfigError(f"recipes: {r.name!r} appears twice")
            if r.tuned_like is not None and r.tuned_like not in names:
                raise ConfigError(f"recipes[{r.name}].tuned_like: no recipe named {r.tuned_like!r}")
            if r.budget_like is not None:
                if r.budget_like not in names[: names.index(r.name)]:
                    raise ConfigError(f"recipes[{r.name}].budget_like: no recipe named {r.budget_like!r} before it")
                if r.synthetic_token_share is not None:
                    raise ConfigError(f"recipes[{r.name}]: give synthetic_token_share or budget_like, not both")
            if r.tuned_like and r.grid:
                raise ConfigError(f"recipes[{r.name}]: give a grid or tuned_like, not both")
            if not r.train and (r.grid or r.synthetic_token_share is not None):
                raise ConfigError(f"recipes[{r.name}]: a recipe with train: false has nothing to tune or budget")
            for key, values in r.grid.items():
                if not values:
                    raise ConfigError(f"recipes[{r.name}].grid.{key}: give at least one value")
        for r in self.recipes:  # tuned_like chains end
            chain, cur = [r.name], r
            while cur.tuned_like:
                cur = next(x for x in self.recipes if x.name == cur.tuned_like)
                if cur.name in chain:
                    raise ConfigError(f"recipes: tuned_like goes round in a circle ({' -> '.join(chain + [cur.name])})")
                chain.append(cur.name)
        if self.reference is not None and self.reference not in names:
            raise ConfigError(f"reference: no recipe named {self.reference!r}")
        for key in ("ranking", "scaling"):
            for n in getattr(self, key):
                if n not in names:
                    raise ConfigError(f"{key}: no recipe named {n!r}")
        if len(set(self.probes)) != len(self.probes) or not self.probes:
            raise ConfigError("probes: one or both of given, generated, each once")
        if any(r.grid for r in self.recipes) and self.split.tuning is None:
            raise ConfigError("split.tuning: a recipe has a grid, so the study needs tuning documents")
        for r in self.recipes:
            if r.train_docs is not None and self.split.tuning is not None:
                a0, a1 = self.split.tuning.indices()
                c0, c1 = r.train_docs.indices()
                if a0 < c1 and c0 < a1:
                    raise ConfigError(f"recipes[{r.name}].train_docs overlap the tuning documents")
            if r.train_docs is not None and (r.grid or not r.train):
                raise ConfigError(f"recipes[{r.name}]: a control (train_docs) trains, and is not tuned")
        if self.split.tuning is not None:
            a0, a1 = self.split.tuning.indices()
            b0, b1 = self.split.reporting.indices()
            if a0 < b1 and b0 < a1:
                raise ConfigError(f"split: the tuning documents [{a0}, {a1}) and the reporting documents "
                                  f"[{b0}, {b1}) overlap; a tuning document must never reach a reported number")
