"""`entigraph ask RUN_OR_CONFIG "question"`: try what a run produced without writing code.

The adapted model (the run's train/model; the base model with --base) answers from retrieved chunks
of the run's corpus, retrieved as the eval stage does (eval.retrieval settings), and the answer comes
with the chunks it was given, each cited by document, page or section, and score. --closed-book
answers without retrieval.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from . import artifacts
from .config import RunConfig, load_config
from .corpus import locate
from .errors import EntigraphError

PROMPT = ("Answer the question using the numbered passages when they help. Answer in one or two "
          "sentences.\n\n{context}\n\nQuestion: {question}")


@dataclass
class Answer:
    question: str
    answer: str
    model: str
    citations: list[dict]  # chunk_id, doc_id, title, where (page/section), score, text


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


def retrieve(cfg: RunConfig, question: str, k: int) -> list[dict]:
    from .evaluation.compare import make_embedder
    from .retrieval import Retriever, chunk_documents, count_words, token_counter

    r = cfg.eval.retrieval
    documents = {d.doc_id: d for d in artifacts.documents(cfg.out)}
    embed = make_embedder(cfg) if (r.method != "bm25" or r.chunk_unit == "tokens") else None
    length = token_counter(embed.tokenizer) if r.chunk_unit == "tokens" else count_words
    chunks = chunk_documents(list(documents.values()), r.chunk_words, r.chunk_overlap, r.title_prefix, length)
    retriever = Retriever.build(chunks, r.method, embed, r.index, artifacts.stage_dir(cfg.out, "eval") / "index",
                                cfg.models.embedder, r.reranker, r.rrf_k, r.candidates)
    by_id = {c.chunk_id: c for c in chunks}
    cited = []
    for hit in retriever.search(question, k):
        c, doc = by_id[hit.chunk_id], documents[hit.doc_id]
        cited.append({"chunk_id": c.chunk_id, "doc_id": c.doc_id, "title": doc.title, "score": round(hit.score, 4),
                      "where": locate(doc, c.start, c.end), "text": c.text})
    return cited


def ask(cfg: RunConfig, question: str, *, base: bool = False, closed_book: bool = False,
        max_new_tokens: int = 96, backend=None) -> Answer:
    """Answer `question`; `backend` replaces the local model (tests)."""
    from dataclasses import replace

    from .backends import Request, get_backend
    from .models import resolve_lm

    model = resolve_lm(cfg.models.base, cfg.models.cache_dir) if base else str(artifacts.trained_model(cfg.out))
    citations = [] if closed_book else retrieve(cfg, question, cfg.eval.retrieval.top_k)
    context = "\n\n".join(f"[{i + 1}] {c['title']}: {c['text']}" for i, c in enumerate(citations))
    content = PROMPT.format(context=context, question=question) if citations else f"Question: {question}"
    if backend is None:  # greedy, with the run's backend settings (hf by default) on the chosen model
        settings = replace(cfg.backend, model=model, kind="vllm" if cfg.backend.kind == "vllm" else "hf")
        backend = get_backend(settings, device=cfg.device, seed=cfg.seed, cache_dir=cfg.models.cache_dir,
                              work_dir=cfg.out)
    sampling = replace(cfg.backend.sampling, temperature=0.0, top_p=1.0, repetition_penalty=1.0,
                       max_new_tokens=max_new_tokens)
    try:
        gen = backend.generate([Request([{"role": "user", "content": content}], sampling, seed=cfg.seed)])[0]
    finally:
        backend.close()
    if gen.finish_reason == "error":
        raise EntigraphError(f"the model could not answer: {gen.error}")
    return Answer(question, gen.text.strip(), model, citations)


def format_answer(a: Answer) -> str:
    lines = [a.answer, ""]
    if a.citations:
        lines.append("Sources given to the model:")
        for i, c in enumerate(a.citations, 1):
            where = f", {c['where']}" if c["where"] else ""
            snippet = " ".join(c["text"].split())[:160]
            lines.append(f"  [{i}] {c['title']} ({c['doc_id']}{where}; score {c['score']:.3f}): {snippet}...")
    else:
        lines.append("(closed-book: no passages were given)")
    lines.append(f"model: {a.model}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from .errors import run_reporting_errors

    p = argparse.ArgumentParser(prog="entigraph ask", description=__doc__.splitlines()[0])
    p.add_argument("run", help="a run folder (runs/<name>) or its config file")
    p.add_argument("question")
    p.add_argument("--base", action="store_true", help="ask the base model instead of the adapted one")
    p.add_argument("--closed-book", action="store_true", help="no retrieval: the model's own knowledge")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)

    def work() -> None:
        cfg = run_config(args.run, args.overrides)
        print(format_answer(ask(cfg, args.question, base=args.base, closed_book=args.closed_book,
                                max_new_tokens=args.max_new_tokens)))

    return run_reporting_errors(work)
