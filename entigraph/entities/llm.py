"""LLM candidates: the EntiGraph entity prompt, lenient JSON parsing, names located in the text."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from ..records import Document, Passage
from .spans import (
    _TRIM,
    CONCEPT,
    GENERIC_NOUNS,
    LLM_TYPES,
    MISC,
    PRONOUNS,
    Candidate,
    Drops,
    clean_span,
    norm_space,
)

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..config import RunConfig

# The EntiGraph entity-extraction prompt (Yang et al. 2024, appendix), asking for strict JSON.
LLM_PROMPT = """As a knowledge analyzer, your task is to dissect and understand an article provided by the user. You are required to perform the following steps:
1. Summarize the Article: Provide a concise summary of the entire article, capturing the main points and themes.
2. Extract Entities: Identify and list all significant "nouns" or entities mentioned within the article. These entities should include but not limited to:
    * People: Any individuals mentioned in the article, using the names or references provided.
    * Places: Both specific locations and abstract spaces relevant to the content.
    * Object: Any concrete object that is referenced by the provided content.
    * Concepts: Any significant abstract ideas or themes that are central to the article's discussion.

Try to exhaust as many entities as possible. Write each entity exactly as it appears in the article. Your response should be structured in a JSON format to organize the information effectively. Ensure that the summary is brief yet comprehensive, and the list of entities is detailed and accurate.

Here is the format you should use for your response:

{
  "summary": "<A concise summary of the article>",
  "entities": ["entity1", "entity2", ...]
}"""


def _first_block(text: str) -> str | None:
    """The first balanced {...} or [...] block (string-aware); an unclosed one is closed."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None
    start = min(starts)
    stack, in_str, quote, esc = [], False, "", False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            esc = (c == "\\") and not esc
            if c == quote and not esc:
                in_str = False
            continue
        if c in "\"":
            in_str, quote, esc = True, c, False
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
        elif c in "}]":
            if stack and stack[-1] == c:
                stack.pop()
            if not stack:
                return text[start:i + 1]
    # truncated output (max_new_tokens): cut back to the last complete item and close it
    body = text[start:]
    body = body[:max(body.rfind('",'), body.rfind('"]'), body.rfind('}'), 0) + 1] if in_str else body
    body = body.rstrip().rstrip(",")
    need = []
    for c in body:  # recount brackets outside strings, roughly
        if c in "{[":
            need.append("}" if c == "{" else "]")
        elif c in "}]" and need:
            need.pop()
    return body + "".join(reversed(need))


def _loads_lenient(block: str):
    attempts = [block, re.sub(r",\s*([}\]])", r"\1", block)]
    # single quotes used as JSON quotes ('a', 'b'), but not apostrophes inside words (Tr'en)
    attempts.append(re.sub(r"(?<![A-Za-z])'|'(?![A-Za-z])", '"', attempts[1]))
    for a in attempts:
        try:
            return json.loads(a)
        except json.JSONDecodeError:
            continue
    raise ValueError("no valid JSON block")


def _names_from(obj) -> list[tuple[str, str]]:
    if isinstance(obj, dict):
        for key in ("entities", "Entities", "entity", "nouns"):
            if key in obj:
                return _names_from(obj[key])
        if all(isinstance(v, list) for v in obj.values()) and obj:  # {"people": [...], "places": [...]}
            return [(n, t or k) for k, v in obj.items() for n, t in _names_from(v)]
        for key in ("name", "entity", "text"):
            if isinstance(obj.get(key), str):
                return [(obj[key], str(obj.get("type", "")))]
        return []
    if isinstance(obj, list):
        return [pair for item in obj for pair in _names_from(item)]
    if isinstance(obj, str):
        return [(obj, "")]
    return []


_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(?:\*\*)?(.+?)(?:\*\*)?\s*$", re.M)


def parse_llm_entities(text: str) -> list[tuple[str, str]]:
    """(name, type) pairs from an LLM answer; tolerant of fences, trailing commas, single quotes,
    prose around the JSON, truncated output, and plain bulleted/numbered lists.

    Raises ValueError when nothing usable is found (the caller retries, then records a failure).
    """
    text = re.sub(r"```(?:json|JSON)?", "", text)
    block = _first_block(text)
    if block is not None:
        try:
            names = _names_from(_loads_lenient(block))
            names = [(n.strip(), t.strip().lower()) for n, t in names if isinstance(n, str) and n.strip()]
            if names:
                return names
        except ValueError:
            pass
        # a broken JSON list still holds quoted strings after "entities"
        tail = text[text.find('"entities"'):] if '"entities"' in text else ""
        quoted = re.findall(r'"([^"\n]{1,80})"', tail)[1:]
        if quoted:
            return [(q.strip(), "") for q in quoted if q.strip()]
    items = [m.group(1).split(":")[0].strip(" *\"'") for m in _BULLET.finditer(text)]
    items = [i for i in items if 0 < len(i.split()) <= 8]
    if items:
        return [(i, "") for i in items]
    raise ValueError("no JSON object and no list of entities in the answer")


def llm_chunks(passages: list[Passage], budget: int, count_tokens) -> list[tuple[int, int]]:
    """Group consecutive passages of one document into (start, end) spans of ≤ `budget` tokens."""
    out: list[tuple[int, int]] = []
    start = end = used = None
    for p in passages:
        n = count_tokens(p.text)
        if start is not None and used + n > budget:
            out.append((start, end))
            start = None
        if start is None:
            start, used = p.start, 0
        end, used = p.end, used + n
    if start is not None:
        out.append((start, end))
    return out


def find_in_text(text: str, name: str, lo: int = 0, hi: int | None = None) -> tuple[int, int] | None:
    """Case-insensitive, word-bounded search; whitespace in `name` matches any whitespace."""
    tokens = name.split()
    if not tokens:
        return None
    pattern = r"(?<![\w'’])" + r"\s+".join(map(re.escape, tokens)) + r"(?!\w)"
    m = re.compile(pattern, re.I).search(text, lo, len(text) if hi is None else hi)
    return (m.start(), m.end()) if m else None


def llm_candidates(docs: list[Document], passages: list[Passage], cfg: "RunConfig",
                   backend: "Backend", drops: Drops) -> tuple[list[Candidate], list[dict]]:
    """Ask the model for each chunk's entities (re-asking for replies that do not parse), then
    locate every name in the text; a name found nowhere is dropped as hallucinated."""
    by_doc = defaultdict(list)
    for p in passages:
        by_doc[p.doc_id].append(p)
    work = [(d, span) for d in docs
            for span in llm_chunks(by_doc[d.doc_id], cfg.entities.llm_chunk_tokens, backend.count_tokens)]
    parsed, errors = _ask(work, cfg, backend)
    failures = [{"doc_id": work[k][0].doc_id, "start": work[k][1][0], "end": work[k][1][1],
                 "attempts": 1 + cfg.entities.llm_retries, "error": err} for k, err in errors.items()]
    out = [c for k, names in parsed.items() for c in _locate(work[k][0], *work[k][1], names, drops)]
    return out, failures


def _ask(work: list[tuple[Document, tuple[int, int]]], cfg: "RunConfig",
         backend: "Backend") -> tuple[dict[int, list[tuple[str, str]]], dict[int, str]]:
    """(parsed names per chunk, last error per chunk that never parsed)."""
    from ..backends.base import Request

    sampling = dataclasses.replace(cfg.backend.sampling, max_new_tokens=cfg.entities.llm_max_new_tokens)
    parsed: dict[int, list[tuple[str, str]]] = {}
    errors: dict[int, str] = {}
    pending, bs = list(range(len(work))), cfg.backend.batch_size
    for attempt in range(1 + cfg.entities.llm_retries):
        if not pending:
            break
        gens = []
        desc = "LLM entities" + (f" (retry {attempt})" if attempt else "")
        for b in tqdm(range(0, len(pending), bs), desc=desc, unit="batch", leave=False):
            reqs = []
            for k in pending[b:b + bs]:
                doc, (s, e) = work[k]
                user = f"### Article: {doc.title}\n\n{doc.text[s:e]}"
                reqs.append(Request([{"role": "system", "content": LLM_PROMPT},
                                     {"role": "user", "content": user}],
                                    sampling, seed=cfg.seed + 7919 * attempt + k))
            gens.extend(backend.generate(reqs))
        still = []
        for k, gen in zip(pending, gens):
            if gen.finish_reason == "error":
                errors[k] = f"backend error: {gen.error}"
            else:
                try:
                    parsed[k] = parse_llm_entities(gen.text)
                    errors.pop(k, None)
                    continue
                except ValueError as e:
                    errors[k] = f"{e}; answer began {gen.text[:80]!r}"
            still.append(k)
        pending = still
    return parsed, {k: errors[k] for k in pending}


def _locate(doc: Document, s: int, e: int, names: list[tuple[str, str]], drops: Drops) -> list[Candidate]:
    """Candidates for the names the model gave for doc.text[s:e], with their offsets."""
    out: list[Candidate] = []
    for name, kind in names:
        name = norm_space(name.strip(_TRIM))
        if not name or len(name.split()) > 8:
            drops.add("llm: empty or too long", name)
            continue
        if name.lower() in PRONOUNS or name.lower() in GENERIC_NOUNS:
            drops.add("llm: pronoun or generic noun", name)
            continue
        # the chunk first (the mention the model saw), then anywhere in the document
        span = find_in_text(doc.text, name, s, e) or find_in_text(doc.text, name)
        span = span and clean_span(doc.text, *span)
        if not span:
            drops.add("llm: hallucinated (not in the document)", name)
            continue
        surface = doc.text[span[0]:span[1]]
        label = LLM_TYPES.get(kind, "")
        if not label:
            label = MISC if all(w[:1].isupper() for w in surface.split()) else CONCEPT
        out.append(Candidate(doc.doc_id, span[0], span[1], surface, label, "llm",
                             common=label == CONCEPT and surface.split()[-1].islower()))
    return out
