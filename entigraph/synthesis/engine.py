"""The synthesis engine: sampler -> prompts -> backend -> store, resumable after any crash.

The sampler's task stream is cut into windows of a few batches; each window is sorted by prompt
length and cut into batches, so a batch holds prompts of similar length. The batches depend only
on the stream, never on what is already done, and each batch commits in one transaction: a rerun
after kill -9 skips the committed batches and regenerates the others exactly as they would have
been (same composition, same seed), so the resumed store equals an uninterrupted run's.

Generator-free modes (free.py) are built here instead of by the backend; the sampler's
``units`` strategy reads the store at multiples of the window (``round_tasks``), which is only
safe while a window is generated and committed before the next one is drawn from the stream.
"""

from __future__ import annotations

import dataclasses
import time
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

from tqdm import tqdm

from ..backends import Backend, Generation, Request
from ..backends.decoding import active as decoding_active
from ..config import RunConfig
from ..errors import ConfigError
from ..records import Document, Entity, Passage, SynthPassage, SynthTask
from ..text import words
from .free import FREE_VERSION
from .ids import request_seed, task_id
from ..modes import GENERATOR_FREE, UNIT_MODES, needs_units
from .planner import Planner
from .prompts import PLAN, Template, load_templates
from .sampler import RelationSampler, build_index
from .sources import RelationOptions, UnitOptions, UnitTasks
from .store import Store

WINDOW_BATCHES = 4  # batches per length-sorting window


class Engine:
    """Turns SynthTasks into stored SynthPassages with one backend and one set of templates."""

    executor: Any = None  # None: generate here; or e.g. ray_executor.RayExecutor (generated(), summary())

    def __init__(self, cfg: RunConfig, backend: Backend, documents: list[Document], passages: list[Passage],
                 entities: list[Entity], graph: Any = None, templates: dict[str, Template] | None = None) -> None:
        self.cfg, self.backend = cfg, backend
        s = cfg.synthesis
        self.templates = templates or load_templates(s.templates_dir, s.modes)
        self.docs = {d.doc_id: d for d in documents}
        self.forms = {e.name: (e.name, *e.aliases) for e in entities}  # what counts as naming an entity
        self.text = {p.passage_id: p.text for p in passages}
        self.sampling = {m: t.sampling(cfg.backend.sampling) for m, t in self.templates.items()}
        self.sampling.update({m: cfg.backend.sampling for m in GENERATOR_FREE})  # unused: no model writes them
        # what else determines each mode's output (PLAN's too: the planner's salt)
        self.salt = salt = {m: {"template": t.version, "model": backend.model,
                                "sampling": dataclasses.asdict(self.sampling[m]), "seed": cfg.seed}
                            for m, t in self.templates.items()}
        self.decoding = s.decoding
        on = decoding_active(s.decoding) or s.decoding.require_names
        self.decoding_modes = {m for m in self.templates if m != PLAN and (not s.decoding.modes or m in s.decoding.modes)
                               } if on else set()
        if decoding_active(s.decoding) and self.decoding_modes and backend.name != "hf":
            raise ConfigError(f"synthesis.decoding: context_contrast, copy_bias and novel_penalty need backend.kind hf "
                              f"(not {backend.name}); require_names works with any backend")
        for m in self.decoding_modes:  # faithful decoding writes other text: other task ids (none when off)
            salt[m]["decoding"] = dataclasses.asdict(s.decoding)
        tokens = {p.passage_id: backend.count_tokens(p.text) for p in passages} if s.context == "local" else None
        self.units = (UnitTasks(documents, passages, entities, UnitOptions.from_config(s), cfg.seed,
                                RelationOptions.from_config(s)) if needs_units(s.modes, s.strategy) else None)
        self.sampler = RelationSampler(
            build_index(documents, passages, entities, graph), entities, passages, modes=s.modes,
            strategy=s.strategy, context=s.context, context_tokens=s.context_tokens, seed=cfg.seed,
            salt=salt, passage_tokens=tokens, units=self.units, per_doc=s.per_doc,
            round_tasks=cfg.backend.batch_size * WINDOW_BATCHES, coverage_k=s.coverage_k,
        )

    def tasks(self) -> Iterator[SynthTask]:
        stream = iter(self.sampler)
        return islice(stream, self.cfg.synthesis.max_passages) if self.cfg.synthesis.max_passages else stream

    def messages(self, task: SynthTask) -> list[dict[str, str]]:
        if task.mode in UNIT_MODES:
            return self.units.messages(task.task_id, self.templates)
        doc = self.docs[task.doc_ids[0]]
        return self.templates[task.mode].render(title=doc.title, context=self.context(task), entities=task.entities)

    def context(self, task: SynthTask) -> str:
        """The source text an LLM task's prompt quotes."""
        if task.mode in UNIT_MODES:
            return self.units.context(task.task_id)
        if self.cfg.synthesis.context == "document" and task.mode != "rephrase":
            return self.docs[task.doc_ids[0]].text
        return "\n\n".join(self.text[p] for p in task.passage_ids)

    def request(self, task: SynthTask) -> Request:
        """The backend request of an LLM task: faithful decoding's settings and source context ride
        along where synthesis.decoding applies to its mode."""
        faithful = self.decoding if task.mode in self.decoding_modes else None
        return Request(self.messages(task), self.sampling[task.mode], request_seed(task.task_id),
                       self.context(task) if faithful else "", faithful)

    def batches(self) -> Iterator[list[tuple[SynthTask, Request]]]:
        """Batches of similar prompt length, formed from the stream alone (never from the store)."""
        size = self.cfg.backend.batch_size
        stream = self.tasks()
        while window := list(islice(stream, size * WINDOW_BATCHES)):
            items = [(t, self.request(t)) for t in window]
            items.sort(key=lambda it: (sum(len(m["content"]) for m in it[1].messages), it[0].seq))
            for i in range(0, len(items), size):
                yield items[i:i + size]

    def generate(self, todo: list[tuple[SynthTask, Request]]) -> list[Generation]:
        """Generator-free tasks are built here; the others go to the backend in one call."""
        llm = self.llm_requests(todo)
        return self.merge(todo, self.backend.generate(llm) if llm else [])

    @staticmethod
    def llm_requests(todo: list[tuple[SynthTask, Request]]) -> list[Request]:
        return [req for task, req in todo if task.mode not in GENERATOR_FREE]

    def merge(self, todo: list[tuple[SynthTask, Request]], llm: list[Generation]) -> list[Generation]:
        """The batch's generations in order: the model's for `llm_requests`, generator-free ones built here."""
        gens = iter(self.require_names([(t, r) for t, r in todo if t.mode not in GENERATOR_FREE], llm))
        return [self.units.generation(t.task_id) if t.mode in GENERATOR_FREE else next(gens) for t, _ in todo]

    def require_names(self, todo: list[tuple[SynthTask, Request]], gens: list[Generation]) -> list[Generation]:
        """synthesis.decoding.require_names: a pair or triple generation that misses a name of its
        task is generated again with another seed (derived from the task's), at most name_retries
        times; the attempt missing fewest names is kept, and every attempt's tokens and time are counted."""
        d = self.decoding
        if not d.require_names:
            return gens
        gens = list(gens)
        for attempt in range(1, d.name_retries + 1):
            redo = [i for i, ((t, r), g) in enumerate(zip(todo, gens)) if r.decoding is not None
                    and t.mode in ("pair", "triple") and g.finish_reason != "error" and self.missing_names(t, g.text)]
            if not redo:
                break
            again = self.backend.generate([dataclasses.replace(todo[i][1], seed=request_seed(
                task_id(str(attempt), [], [], [], todo[i][0].task_id))) for i in redo])
            for i, g in zip(redo, again):
                old = gens[i]
                best = g if g.finish_reason != "error" and len(self.missing_names(todo[i][0], g.text)) < len(
                    self.missing_names(todo[i][0], old.text)) else old
                gens[i] = dataclasses.replace(best, completion_tokens=old.completion_tokens + g.completion_tokens,
                                              prompt_tokens=old.prompt_tokens + g.prompt_tokens,
                                              seconds=old.seconds + g.seconds)
        return gens

    def missing_names(self, task: SynthTask, text: str) -> list[str]:
        """The task's entities named nowhere in `text` (by any of their forms, word for word)."""
        have = f" {' '.join(words(text))} "
        return [n for n in task.entities
                if not any(f" {' '.join(words(f))} " in have for f in self.forms.get(n, (n,)))]

    def generated(self, todos: list[list[tuple[SynthTask, Request]]]) -> Iterator[list[Generation]]:
        """Generations for one window's batches, in order, lazily (the executor: this process, or
        ray_executor.RayExecutor set as `self.executor`, which generates the window's batches at once)."""
        if self.executor is not None:
            return self.executor.generated(self, todos)
        return (self.generate(todo) if todo else [] for todo in todos)

    def record(self, task: SynthTask, req: Request, gen: Generation) -> SynthPassage:
        if task.mode in GENERATOR_FREE:  # no template, no model
            return SynthPassage(
                task_id=task.task_id, mode=task.mode, entities=task.entities, doc_ids=task.doc_ids,
                passage_ids=task.passage_ids, unit_ids=task.unit_ids, text=gen.text,
                status="ok" if gen.text else "failed", error="" if gen.text else "nothing to build",
                template_version="free-" + FREE_VERSION, backend="none",
                completion_tokens=gen.completion_tokens, finish_reason=gen.finish_reason, seq=task.seq)
        t = self.templates[task.mode]
        return SynthPassage(
            task_id=task.task_id, mode=task.mode, entities=task.entities, doc_ids=task.doc_ids,
            passage_ids=task.passage_ids, text=gen.text, status="failed" if gen.finish_reason == "error" else "ok",
            error=gen.error, template=Path(t.path).name, template_version=t.version, model=self.backend.model,
            backend=self.backend.name, sampling=dataclasses.asdict(req.sampling), prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens, finish_reason=gen.finish_reason, seconds=gen.seconds,
            seq=task.seq, prompt=req.messages[-1]["content"], unit_ids=task.unit_ids,
        )

    def planner(self, store: Store) -> Planner:
        """Active Reading's first step, generated by this engine's backend and recorded as its passages are."""
        return Planner(self.units, store, self.backend.generate, self.record, self.templates[PLAN], self.sampling[PLAN],
                       self.salt[PLAN], self.cfg.backend.batch_size, self.cfg.synthesis.retry_failed)

    def _skip(self, status: str | None) -> bool:
        """Done already: ok, or failed when failures are not retried."""
        return status == "ok" or (status == "failed" and not self.cfg.synthesis.retry_failed)

    def run(self, store: Store, progress: bool = True) -> dict[str, Any]:
        s = self.cfg.synthesis
        if self.units is not None:  # what the unit-anchored streams read: the store, and plans written by the backend
            self.units.planner = self.planner(store) if PLAN in self.templates else None
            if self.sampler.feedback is not None:
                self.sampler.feedback.lookup = store.get
        done = store.statuses()  # task_id -> (status, completion tokens), read once
        stats = dict(resumed=0, generated=0, failed_now=0, new_prompt_tokens=0, new_completion_tokens=0)
        budget_tokens, seen, stopped_by_tokens = 0, 0, False
        served: list[str] = []  # this budget's tasks: the store keeps these alone (a lower budget truncates)
        start = time.perf_counter()
        bar = tqdm(total=s.max_passages, unit="passage", desc="synthesize", disable=not progress,
                   dynamic_ncols=True, mininterval=1.0)
        batches = self.batches()
        # one window's batches at a time (the next window is drawn only after this one is committed),
        # so an executor may generate them together; each batch still commits alone, in stream order
        # an executor's window spans its workers (RayExecutor.window_batches), unless the task stream
        # reads the store (unit-anchored modes): then each sorting window commits before the next is drawn
        per_window = WINDOW_BATCHES if self.units is not None else max(
            WINDOW_BATCHES, getattr(self.executor, "window_batches", 0))
        while window := list(islice(batches, per_window)):
            todos = [[(t, r) for t, r in batch if not self._skip(done.get(t.task_id, (None, 0))[0])] for batch in window]
            gens_iter = self.generated(todos)
            for batch, todo in zip(window, todos):
                if s.max_tokens is not None and budget_tokens >= s.max_tokens:
                    stopped_by_tokens = True
                    break
                seen += len(batch)
                served.extend(t.task_id for t, _ in batch)
                for task, _ in batch:
                    status, tokens = done.get(task.task_id, (None, 0))
                    if self._skip(status):
                        stats["resumed"] += status == "ok"
                        budget_tokens += tokens
                        bar.update(1)
                gens = next(gens_iter)
                if not todo:
                    continue
                records = [self.record(t, r, g) for (t, r), g in zip(todo, gens)]
                store.add(records)
                for rec in records:
                    done[rec.task_id] = (rec.status, rec.completion_tokens)
                    if rec.status == "ok":
                        stats["generated"] += 1
                        budget_tokens += rec.completion_tokens
                    else:
                        stats["failed_now"] += 1
                    stats["new_prompt_tokens"] += rec.prompt_tokens
                    stats["new_completion_tokens"] += rec.completion_tokens
                bar.update(len(records))
                rate = stats["new_completion_tokens"] / max(time.perf_counter() - start, 1e-9)
                postfix = {"tokens": budget_tokens, "tok/s": f"{rate:.1f}"}
                if s.max_tokens:
                    postfix["eta"] = f"{max(0, s.max_tokens - budget_tokens) / max(rate, 1e-9):.0f}s"
                bar.set_postfix(postfix, refresh=False)
            if stopped_by_tokens:
                break
        bar.close()
        seconds = time.perf_counter() - start
        store.retain(served)
        totals = store.totals()
        return {
            "passages": totals["ok"], "failed": totals["failed"],
            "prompt_tokens": totals["prompt_tokens"], "completion_tokens": totals["completion_tokens"],
            "prompt_tokens_per_generated_token": round(totals["prompt_tokens"] / max(totals["completion_tokens"], 1), 3),
            "tokens_per_s": round(stats["new_completion_tokens"] / max(seconds, 1e-9), 2),
            "seconds": round(seconds, 2), "resumed": stats["resumed"], "generated": stats["generated"],
            "failed_this_run": stats["failed_now"],
            # False: the sampler ran out of tasks before the budget
            "budget_reached": stopped_by_tokens or seen == s.max_passages,
            "backend": self.backend.name, "model": self.backend.model, "strategy": s.strategy,
            # vllm-server: the engine that served (vllm-server, or hf after a fallback), restarts, why
            "backend_detail": getattr(self.backend, "detail", None),
            "context": s.context, "modes": list(s.modes),
            **(self.executor.summary() if self.executor is not None else {}),
        }
