"""`entigraph ask RUN_OR_CONFIG ["question" ...]`: try what a run produced without writing code.

The adapted model (the run's train/model; the base model with --base) answers from retrieved chunks
of the run's corpus, retrieved as the eval stage does (eval.retrieval settings). The numbered
sources it was given are listed first, then the answer, which cites the source numbers it used.
--closed-book answers without retrieval. Several questions, or none (one per line from standard
input, a prompt at a terminal), share one loaded model and index.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from . import artifacts
from .config import RunConfig, load_config
from .corpus import locate
from .errors import EntigraphError

PROMPT = ("Answer the question from the numbered passages in one short sentence, and end it with the "
          "number of the passage you used in brackets, like [2].\n\n{context}\n\nQuestion: {question}")
# Where a small model's answer ends and it starts inventing: a new line (a passage, a question, a
# paragraph), the end of its first sentence. Generation stops on them (the local model) and the
# text is cut there (any backend): the answer is one sentence.
STOP = ("\n", "Question:", ". ")
TOP_K = 8  # `ask`'s passages (the eval's retrieval.top_k is 3); 8 x 100 words fit SmolLM2's context
LABEL = re.compile(r"^\s*(?:answer|a)\s*[:.]\s*", re.I)  # "Answer: 1946" -> "1946"
CITE = re.compile(r"\s*\[(\d+)\]")
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
# words that say nothing about which source an answer came from
COMMON = set("""a an and are as at be by for from has have he her his in is it its of on or she that the their
they this to was were which who with did does do what when where how year years became become""".split())


@dataclass
class Answer:
    question: str
    answer: str
    model: str
    citations: list[dict]  # chunk_id, doc_id, title, where (page/section), score, text
    cited: list[int]  # 1-based numbers of the sources the answer cites
    cited_by: str = "model"  # model: the answer wrote the numbers; overlap: matched afterwards; none
    seconds: float = 0.0


def run_config(target: str, overrides: list[str] | None = None) -> RunConfig:
    """A run folder (runs/<name>, holding config.yaml) or a config file."""
    path = Path(target)
    config = path / "config.yaml" if path.is_dir() else path
    if not config.is_file():
        raise EntigraphError(f"{target}: neither a run folder with config.yaml nor a config file")
    cfg = load_config(config, overrides)
    if path.is_dir():  # the folder given wins over the name and run_dir written in its config
        cfg.run_dir, cfg.name = str(path.parent), path.name
    return cfg


class Sources:
    """The run's corpus chunked and indexed once, as the eval stage does it."""

    def __init__(self, cfg: RunConfig) -> None:
        from .evaluation.compare import make_embedder
        from .retrieval import Retriever, chunk_documents, count_words, token_counter

        r = cfg.eval.retrieval
        self.documents = {d.doc_id: d for d in artifacts.documents(cfg.out)}
        embed = make_embedder(cfg) if (r.method != "bm25" or r.chunk_unit == "tokens") else None
        if hasattr(embed, "show_progress"):
            embed.show_progress = False  # no "Batches" bar above the answer
        length = token_counter(embed.tokenizer) if r.chunk_unit == "tokens" else count_words
        chunks = chunk_documents(list(self.documents.values()), r.chunk_words, r.chunk_overlap, r.title_prefix,
                                 length)
        self.retriever = Retriever.build(chunks, r.method, embed, r.index,
                                         artifacts.stage_dir(cfg.out, "eval") / "index", cfg.models.embedder,
                                         r.reranker, r.rrf_k, r.candidates)
        self.by_id = {c.chunk_id: c for c in chunks}

    def search(self, question: str, k: int) -> list[dict]:
        cited = []
        for hit in self.retriever.search(question, k):
            c, doc = self.by_id[hit.chunk_id], self.documents[hit.doc_id]
            cited.append({"chunk_id": c.chunk_id, "doc_id": c.doc_id, "title": doc.title,
                          "score": round(hit.score, 4), "where": locate(doc, c.start, c.end), "text": c.text})
        return cited


def retrieve(cfg: RunConfig, question: str, k: int) -> list[dict]:
    return Sources(cfg).search(question, k)


def cut(text: str) -> str:
    """The answer up to the first stop sequence (a sentence keeps its full stop), without an
    "Answer:" label in front."""
    text = LABEL.sub("", text.strip())
    ends = [i + (s == ". ") for s in STOP if (i := text.find(s)) > 0]
    if not ends:
        return text.strip()
    end = min(ends)
    cite = re.match(r"[ \t]*(?:\[\d+\][ \t]*)+", text[end:])  # "... keeper. [2]": the citation stays
    return text[:end + (cite.end() if cite else 0)].strip()


def _content(text: str) -> set[str]:
    return {w.lower() for w in WORD.findall(text) if w.lower() not in COMMON}


def attribute(answer: str, citations: list[dict]) -> tuple[str, list[int], str]:
    """The answer keeping only citations of sources it was given, the numbers cited, and who chose
    them: the model's own [n] when it wrote any; else the source that supports it best, holding
    every number of the answer and at least half its content words (not function words); else none
    (an answer no source supports cites nothing)."""
    n = len(citations)
    numbers = [int(m) for m in CITE.findall(answer)]
    kept = [i for i in dict.fromkeys(numbers) if 1 <= i <= n]
    # drop invented numbers ([4] of three sources) from the text
    text = CITE.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= n else "", answer).strip()
    if kept:
        return text, kept, "model"
    words = _content(text)
    if not words or not citations or text == "(no answer)":
        return text, [], "none"
    numbers = {w for w in words if any(ch.isdigit() for ch in w)}
    held = [_content(c["text"]) for c in citations]
    shares = [len(words & h) / len(words) if numbers <= h else 0.0 for h in held]
    best = max(range(n), key=lambda i: (shares[i], -i))  # ties: the better-ranked source
    if shares[best] < 0.5:
        return text, [], "none"
    return f"{text.rstrip()} [{best + 1}]", [best + 1], "overlap"


class Asker:
    """The model and the index loaded once; `ask` answers one question."""

    def __init__(self, cfg: RunConfig, *, base: bool = False, closed_book: bool = False,
                 max_new_tokens: int = 48, top_k: int | None = None, backend=None) -> None:
        from dataclasses import replace

        from .backends import get_backend
        from .models import resolve_lm

        self.cfg, self.max_new_tokens = cfg, max_new_tokens
        self.top_k = top_k or cfg.eval.retrieval.top_k
        self.model = resolve_lm(cfg.models.base, cfg.models.cache_dir) if base else str(artifacts.trained_model(cfg.out))
        self.sources = None if closed_book else Sources(cfg)
        if backend is None:  # greedy, with the run's backend settings (hf by default) on the chosen model
            settings = replace(cfg.backend, model=self.model, kind="vllm" if cfg.backend.kind == "vllm" else "hf")
            backend = get_backend(settings, device=cfg.device, seed=cfg.seed, cache_dir=cfg.models.cache_dir,
                                  work_dir=cfg.out)
        self.backend = backend
        self.sampling = replace(cfg.backend.sampling, temperature=0.0, top_p=1.0, repetition_penalty=1.0,
                                max_new_tokens=max_new_tokens)

    def _generate(self, content: str) -> str:
        from .backends import Request

        lm, tok = getattr(self.backend, "lm", None), getattr(self.backend, "tokenizer", None)
        if lm is not None and tok is not None:  # the local transformers model: stop while generating
            import torch

            from .backends.base import render_chat

            chat = bool(getattr(tok, "chat_template", None))
            enc = tok(render_chat(tok, [{"role": "user", "content": content}]), return_tensors="pt",
                      add_special_tokens=not chat).to(lm.device)
            with torch.inference_mode():
                out = lm.generate(**enc, do_sample=False, max_new_tokens=self.max_new_tokens, stop_strings=list(STOP),
                                  tokenizer=tok, pad_token_id=tok.pad_token_id)
            return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        gen = self.backend.generate([Request([{"role": "user", "content": content}], self.sampling,
                                             seed=self.cfg.seed)])[0]
        if gen.finish_reason == "error":
            raise EntigraphError(f"the model could not answer: {gen.error}")
        return gen.text

    def ask(self, question: str) -> Answer:
        start = time.perf_counter()
        citations = self.sources.search(question, self.top_k) if self.sources else []
        context = "\n\n".join(f"[{i + 1}] {c['title']}: {' '.join(c['text'].split())}" for i, c in enumerate(citations))
        content = PROMPT.format(context=context, question=question) if citations else f"Question: {question}"
        text = " ".join(cut(self._generate(content)).split()) or "(no answer)"
        text, cited, by = attribute(text, citations) if citations else (text, [], "none")
        return Answer(question, text, self.model, citations, cited, by, time.perf_counter() - start)

    def close(self) -> None:
        self.backend.close()


def ask(cfg: RunConfig, question: str, *, base: bool = False, closed_book: bool = False,
        max_new_tokens: int = 48, top_k: int | None = None, backend=None) -> Answer:
    """Answer one `question`; `backend` replaces the local model (tests)."""
    asker = Asker(cfg, base=base, closed_book=closed_book, max_new_tokens=max_new_tokens, top_k=top_k,
                  backend=backend)
    try:
        return asker.ask(question)
    finally:
        asker.close()


def format_answer(a: Answer) -> str:
    """The sources first, the answer last: nothing follows the answer."""
    lines = []
    for i, c in enumerate(a.citations, 1):
        where = f", {c['where']}" if c["where"] else ""
        mark = ("  <- cited" + (" (matched by its words)" if a.cited_by == "overlap" else "")) if i in a.cited else ""
        lines.append(f"[{i}] {c['title']} ({c['doc_id']}{where}; score {c['score']:.3f}){mark}")
    if not a.citations:
        lines.append("(closed-book: no passages were given)")
    return "\n".join(lines + [a.answer])


def _questions(given: list[str]) -> Iterator[str]:
    if given:
        yield from given
        return
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("question (empty line to stop)> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line or (interactive and not line.strip()):
            return
        if line.strip():
            yield line.strip()


def quiet() -> None:
    """No progress bars or loading chatter in the answer's output."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.disable_progress_bar()  # "Loading weights" of every from_pretrained
    hf_logging.set_verbosity_error()


def answer_all(asker: Asker, questions: Iterable[str], show_time: bool = False) -> None:
    for n, question in enumerate(questions):
        a = asker.ask(question)
        print(("\n" if n else "") + format_answer(a), flush=True)
        if show_time:
            print(f"({a.seconds:.1f} s)", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    from .errors import run_reporting_errors

    p = argparse.ArgumentParser(prog="entigraph ask", description=__doc__.splitlines()[0])
    p.add_argument("run", help="a run folder (runs/<name>) or its config file")
    p.add_argument("questions", nargs="*", metavar="question",
                   help="one or more questions; none: one per line from standard input (a prompt at a terminal)")
    p.add_argument("--base", action="store_true", help="ask the base model instead of the adapted one")
    p.add_argument("--closed-book", action="store_true", help="no retrieval: the model's own knowledge")
    p.add_argument("--max-new-tokens", type=int, default=48, help="length cap of an answer, in tokens")
    # A question a person types shares fewer words with the document than the eval's questions do:
    # on the demo's "In which year did Marit Ellery become keeper?" the chunks with the years rank 8th
    p.add_argument("--top-k", type=int, default=TOP_K, help=f"passages given to the model (default {TOP_K})")
    p.add_argument("--time", action="store_true", help="each answer's seconds on standard error")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    empty = next((n for n, q in enumerate(args.questions, 1) if not q.strip()), None)
    if empty is not None:  # refused before anything loads: an empty question has no answer

        def refuse() -> None:
            raise EntigraphError(f"question {empty} is empty: ask something, e.g. "
                                 f"entigraph ask {args.run} \"Who kept the station?\"")
        return run_reporting_errors(refuse)
    quiet()

    def work() -> None:
        cfg = run_config(args.run, args.overrides)
        asker = Asker(cfg, base=args.base, closed_book=args.closed_book, max_new_tokens=args.max_new_tokens,
                      top_k=args.top_k)
        try:
            answer_all(asker, _questions(args.questions), args.time)
        finally:
            asker.close()

    return run_reporting_errors(work)
