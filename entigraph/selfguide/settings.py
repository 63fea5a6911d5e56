"""SELF-GUIDE run settings: a YAML file with ``--set key.sub=value`` overrides.

Reuses entigraph.config's builder, so unknown keys and wrong types fail the same way (one-line
ConfigError naming the setting).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from ..config import (BackendConfig, Device, NonNegative, Positive, PositiveFloat, Range, SamplingConfig, load,
                      validate_name)
from ..errors import ConfigError

# Noise terms dropped from every task (the task file adds its own, e.g. "input", "\n\n").
DEFAULT_NOISE_TERMS = [
    "Input:", "Output:", "Answer:", "Example", "###", "<|im_start|>", "<|im_end|>", "<|endoftext|>",
    "As an AI", "I'm sorry", "I am sorry", "I cannot", "I can't", "Sure,", "Here is", "Here's",
]


@dataclass
class GenerationConfig:
    """Input generation: high temperature, prompts mix seed examples with the growing pool."""
    num_inputs: Positive = 64  # inputs requested per task (before any filter)
    batch_size: Positive = 8  # requests per backend call; the pool grows between calls
    shots: Positive = 3  # seed examples shown in each generation prompt (a random sample)
    pool_examples: NonNegative = 2  # previously generated inputs mixed into each prompt
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(
        temperature=1.0, top_p=0.95, repetition_penalty=1.1, max_new_tokens=96))


@dataclass
class AnnotationConfig:
    """Output annotation: low temperature, several samples per input, self-consistency vote."""
    samples: Positive = 3  # annotations sampled per input
    min_votes: Positive = 2  # samples that must agree on the (normalised / mapped) output
    balance: bool = True  # classification: downsample every label to the rarest kept label
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(
        temperature=0.3, top_p=0.95, repetition_penalty=1.0, max_new_tokens=48))


@dataclass
class SGFilterConfig:
    noise_terms: list[str] = field(default_factory=lambda: list(DEFAULT_NOISE_TERMS))
    task_noise_terms: bool = True  # add the task file's own noise_terms
    length_sigma: PositiveFloat = 2.0  # keep lengths (words) within mean ± sigma·std of the seed examples


@dataclass
class PromptConfig:
    shots: NonNegative | None = None  # seed demonstrations in the task prompt (None = all); the same prompt
    # serves few-shot prompting, annotation, fine-tuning and evaluation of the fine-tuned model


@dataclass
class FinetuneConfig:
    lr: PositiveFloat = 2e-5  # constant after warmup, so the model after epoch e equals an e-epoch run
    warmup_steps: NonNegative = 2
    batch_size: Positive = 8
    max_length: Positive = 768  # tokens; longer prompts are cut from the left, the output is kept
    weight_decay: Annotated[float, Range(ge=0)] = 0.0
    bf16: bool = True  # autocast on CPUs with bf16 and on CUDA
    threads: int | None = None  # torch threads; None = leave torch's default


@dataclass
class SGEvalConfig:
    limit: Positive | None = 100  # rows per split (a seeded sample); None = all
    batch_size: Positive = 8
    max_new_tokens_classification: Positive = 8
    max_new_tokens_generation: Positive = 48
    bootstrap: Positive = 1000  # resamples for the 95 % intervals
    bf16: bool = False  # bf16 autocast for greedy decoding; measured 3x slower than fp32 on the dev CPU


@dataclass
class SearchConfig:
    """"One parameter fits all": maximise the worst validation task's gain over prompting."""
    temperatures: list[Annotated[float, Range(ge=0)]] = field(default_factory=lambda: [0.7, 1.0])
    epochs: list[Positive] = field(default_factory=lambda: [1, 3])


@dataclass
class SelfGuideConfig:
    name: str = "selfguide"
    run_dir: str = "runs"
    seed: NonNegative = 0
    device: Device = "auto"
    data_dir: str = "../shared/data/self-guide"  # tasks.jsonl, validation/<task>.jsonl, test/<task>.jsonl
    val_tasks: list[str] = field(default_factory=list)  # parameters are chosen on these (validation split)
    test_tasks: list[str] = field(default_factory=list)  # reported with the chosen parameters (test split)
    cache_dir: str | None = None  # converted embedded models; default ~/.cache/entigraph
    # backend.model generates, annotates, and is fine-tuned; the sampling settings are per step
    # (generation.sampling, annotation.sampling)
    backend: BackendConfig = field(default_factory=BackendConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    annotation: AnnotationConfig = field(default_factory=AnnotationConfig)
    filter: SGFilterConfig = field(default_factory=SGFilterConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval: SGEvalConfig = field(default_factory=SGEvalConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    config_path: str = ""

    @property
    def out(self) -> Path:
        return Path(self.run_dir) / self.name / "selfguide"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def model(self) -> str:
        return self.backend.model

    def validate(self) -> None:
        _validate(self)


# Keys of SELF-GUIDE configs before the shared `backend:` section.
MOVED = {"model": "backend.model", "backend": "backend.kind", "dtype": "backend.dtype",
         "openai": "backend.openai", "vllm": "backend.vllm"}


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> SelfGuideConfig:
    return load(SelfGuideConfig, path, overrides, MOVED)


def _validate(cfg: SelfGuideConfig) -> None:
    """Checks across settings; single values are checked by their types while loading."""
    if not cfg.val_tasks and not cfg.test_tasks:
        raise ConfigError("val_tasks and test_tasks are both empty: name at least one task")
    if cfg.test_tasks and (not cfg.search.temperatures or not cfg.search.epochs):
        raise ConfigError("search.temperatures and search.epochs need at least one value each")
    if len(cfg.search.temperatures) * len(cfg.search.epochs) > 1 and not cfg.val_tasks:
        raise ConfigError("a search grid with more than one point needs val_tasks")
    if cfg.annotation.min_votes > cfg.annotation.samples:
        raise ConfigError(
            f"annotation.min_votes ({cfg.annotation.min_votes}) exceeds annotation.samples "
            f"({cfg.annotation.samples})")
    validate_name("name", cfg.name)
