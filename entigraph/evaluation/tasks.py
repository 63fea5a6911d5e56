"""Question sets → (documents, Question records). Documents become the corpus; questions never
enter synthesis or training.

Formats (detected from the file):
- quality:   QuALITY as packaged by L-Eval, the corpus.format of that name (alias leval): one article
             per line, `input`, `instructions` holding the question and "(A) .. (D)" options in one
             string, `outputs` "(X) option text".
- quality_release: the original QuALITY release (one article per line: `article`, `title`,
             `questions` with `question`, `options`, 1-based `gold_label`).
- fictional: Fictional Knowledge (a JSON list; `train_context` plus mem/gen/hard_gen cloze probes).
- simple:    users' own JSONL, one question per line: {question, options?, answer, doc_id?}; answer
             is an option index, a letter, or the option text; without options a short answer.
Document ids are assigned exactly as the corpus loader assigns them (entigraph.corpus.load_file),
so a question points at the document the pipeline extracted.
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from typing import Sequence

from entigraph.corpus import expand_paths, fictional_rows, jsonl_rows, load_file, row_layout
from entigraph.errors import InputError
from entigraph.records import Document, Question

LETTERS = "ABCDEFGHIJ"
# an option marker "(A)" at the start of a line (L-Eval puts a space before it)
_OPTION = re.compile(r"(?:^|\n)[ \t]*\(([A-J])\)[ \t]*")
_ANSWER = re.compile(r"^\s*\(?([A-J])\)")


def detect_question_format(path: Path) -> str | None:
    """quality | quality_release | fictional | simple, or None for a corpus file that carries no questions."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "fictional"
    return row_layout(path) if suffix == ".jsonl" else None


def _rows(path: Path) -> list[tuple[int, dict]]:
    return list(jsonl_rows(path))


def parse_leval_instruction(text: str) -> tuple[str, list[str]]:
    """'question\\n\\n (A) one \\n (B) two ...' → ('question', ['one', 'two', ...])."""
    parts = _OPTION.split(text)
    question, rest = parts[0].strip(), parts[1:]
    letters, options = rest[0::2], [" ".join(o.split()) for o in rest[1::2]]
    if len(options) < 2 or "".join(letters) != LETTERS[: len(letters)]:
        raise ValueError("expected options (A), (B), ... in order")
    return question, options


def _answer_index(answer, options: list[str]) -> int:
    """An answer given as an index, a letter ('B', '(B)', '(B) text') or the option's text."""
    if isinstance(answer, bool):
        raise ValueError(f"bad answer {answer!r}")
    if isinstance(answer, int):
        if 0 <= answer < len(options):
            return answer
        raise ValueError(f"answer index {answer} out of range for {len(options)} options")
    text = str(answer).strip()
    m = _ANSWER.match(text) or (re.fullmatch(r"([A-J])", text))
    if m and LETTERS.index(m.group(1)) < len(options):
        return LETTERS.index(m.group(1))
    norm = " ".join(text.split()).lower()
    for i, opt in enumerate(options):
        if " ".join(opt.split()).lower() == norm:
            return i
    raise ValueError(f"answer {answer!r} matches no option")


def load_leval(path: Path) -> tuple[list[Document], list[Question]]:
    docs = load_file(path, "quality")
    questions = []
    for doc, (lineno, row) in zip(docs, _rows(path)):
        instructions, outputs = row.get("instructions") or [], row.get("outputs") or []
        if len(instructions) != len(outputs):
            raise InputError(f"{path}:{lineno}: {len(instructions)} instructions but {len(outputs)} outputs")
        for j, (inst, out) in enumerate(zip(instructions, outputs)):
            try:
                question, options = parse_leval_instruction(inst)
                answer = _answer_index(out, options)
            except ValueError as e:
                raise InputError(f"{path}:{lineno}: question {j + 1}: {e}") from None
            questions.append(Question(f"{doc.doc_id}:q{j:02d}", doc.doc_id, question, options, answer,
                                      options[answer], "mc", {"source": str(path)}))
    return docs, questions


def load_quality_release(path: Path) -> tuple[list[Document], list[Question]]:
    docs = load_file(path, "jsonl", text_field="article")
    questions = []
    for doc, (lineno, row) in zip(docs, _rows(path)):
        if row.get("title"):
            doc.title = str(row["title"])
        for j, q in enumerate(row.get("questions") or []):
            options = [str(o) for o in q.get("options") or []]
            gold = q.get("gold_label")
            if len(options) < 2 or not isinstance(gold, int) or not 1 <= gold <= len(options):
                raise InputError(f"{path}:{lineno}: question {j + 1} needs options and a 1-based gold_label")
            qid = str(q.get("question_unique_id") or f"{doc.doc_id}:q{j:02d}")
            questions.append(Question(qid, doc.doc_id, str(q["question"]).strip(), options, gold - 1,
                                      options[gold - 1], "mc", {"source": str(path)}))
    return docs, questions


def _seeded(seed: int, key: str) -> random.Random:
    """An RNG per question, so its options do not depend on which other questions were loaded."""
    return random.Random(int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:16], 16))


def load_fictional(path: Path, probe_types: Sequence[str] = ("mem", "gen", "hard_gen"), mc: bool = True,
                   distractors: str = "same_doc", num_options: int = 4, seed: int = 0
                   ) -> tuple[list[Document], list[Question]]:
    """Cloze probes. With `mc`, each probe also gets options: its target plus distractors drawn
    (seeded) from the other targets of the same probe type in the same document ("same_doc", the
    honest variant: same topic, so the probe's words do not give the answer away) or in other
    documents ("other_doc")."""
    if distractors not in ("same_doc", "other_doc"):
        raise ValueError(f"distractors must be same_doc or other_doc, got {distractors!r}")
    docs = load_file(path, "fictional")
    rows = fictional_rows(path)
    probes = []  # (doc_id, type, index, prefix, target)
    for doc, row in zip(docs, rows):
        for ptype in probe_types:
            inputs, targets = row.get(f"{ptype}_input") or [], row.get(f"{ptype}_target") or []
            if len(inputs) != len(targets):
                raise InputError(f"{path}: document {doc.doc_id}: {ptype}_input and {ptype}_target differ in length")
            probes += [(doc.doc_id, ptype, j, p.strip(), t.strip()) for j, (p, t) in enumerate(zip(inputs, targets))]
    pools: dict[tuple[str, str], list[str]] = {}  # (doc_id, type) -> distinct targets
    for doc_id, ptype, _, _, target in probes:
        pool = pools.setdefault((doc_id, ptype), [])
        if target not in pool:
            pool.append(target)
    questions = []
    for doc_id, ptype, j, prefix, target in probes:
        qid = f"{doc_id}:{ptype}{j}"
        options, answer = [], -1
        if mc:
            rng = _seeded(seed, qid)
            if distractors == "same_doc":
                pool = [t for t in pools[(doc_id, ptype)] if t != target]
            else:
                pool = sorted({t for (d, p), ts in pools.items() if d != doc_id and p == ptype for t in ts} - {target})
            options = rng.sample(pool, min(num_options - 1, len(pool))) + [target]
            rng.shuffle(options)
            answer = options.index(target)
        questions.append(Question(qid, doc_id, prefix, options, answer, target, "cloze",
                                  {"probe_type": ptype, "source": str(path), "distractors": distractors if mc else ""}))
    return docs, questions


def load_simple(path: Path) -> tuple[list[Document], list[Question]]:
    questions = []
    for lineno, row in _rows(path):
        if not isinstance(row.get("question"), str) or "answer" not in row:
            raise InputError(f"{path}:{lineno}: each line needs 'question' and 'answer'")
        options = [str(o) for o in row.get("options") or []]
        qid = str(row.get("qid") or row.get("id") or f"{Path(path).stem}-q{lineno:04d}")
        doc_id = str(row.get("doc_id") or "")
        if options:
            try:
                answer = _answer_index(row["answer"], options)
            except ValueError as e:
                raise InputError(f"{path}:{lineno}: {e}") from None
            questions.append(Question(qid, doc_id, row["question"].strip(), options, answer, options[answer], "mc"))
        else:  # short answer: scored by the likelihood of the answer and exact match of a greedy reply
            questions.append(Question(qid, doc_id, row["question"].strip(), [], -1, str(row["answer"]).strip(), "short"))
    return [], questions


def load_questions(path: str | Path, fmt: str = "auto", **fictional_opts) -> tuple[list[Document], list[Question]]:
    """Documents and questions from one file; ([], []) for a corpus file without questions."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"question file not found: {path}")
    fmt = detect_question_format(path) if fmt == "auto" else fmt
    if fmt is None:
        return [], []
    loaders = {"quality": load_leval, "leval": load_leval, "quality_release": load_quality_release,
               "simple": load_simple}
    if fmt == "fictional":
        return load_fictional(path, **fictional_opts)
    if fmt not in loaders:
        raise InputError(f"{path}: unknown question format {fmt!r} (quality | quality_release | fictional | simple)")
    return loaders[fmt](path)


def _text_key(text: str) -> str:
    return hashlib.sha1(" ".join(text.split()).encode()).hexdigest()


def questions_for_run(cfg, documents: Sequence[Document]) -> tuple[list[Question], dict]:
    """The run's questions (eval.questions, else those that came with the corpus files), pointed at
    the run's documents by text, so renamed or deduplicated ids still match. Returns the questions
    and notes on what was dropped and why."""
    e = cfg.eval
    if getattr(e, "probes", "given") == "generated":
        return generated_questions(cfg, documents)
    paths = e.questions or cfg.corpus.paths
    fmt = e.format if e.questions else "auto"
    by_text = {_text_key(d.text): d.doc_id for d in documents}
    known = {d.doc_id for d in documents}
    questions: list[Question] = []
    notes = {"files": [], "dropped_outside_corpus": 0}
    for path in expand_paths(paths):
        docs, qs = load_questions(path, fmt, probe_types=e.probe_types, distractors=e.distractors,
                                  num_options=e.num_options, seed=cfg.seed)
        remap = {d.doc_id: by_text.get(_text_key(d.text), "") for d in docs}
        for q in qs:
            q.doc_id = remap.get(q.doc_id, q.doc_id if q.doc_id in known else "")
            if docs and not q.doc_id:  # its document is not in this run's corpus (e.g. limit_docs)
                notes["dropped_outside_corpus"] += 1
                continue
            questions.append(q)
        if qs:
            notes["files"].append(str(path))
    if not questions:
        where = "eval.questions" if e.questions else "the corpus files (corpus.paths)"
        raise InputError(f"no questions found in {where}; point eval.questions at a question file, "
                         "or set eval.probes=generated to mine cloze probes from the documents")
    if e.limit:
        questions = questions[: e.limit]
    return questions, notes


def generated_questions(cfg, documents: Sequence[Document]) -> tuple[list[Question], dict]:
    """Cloze probes mined from the run's documents (eval/probes.py), with the extract stage's
    entities when it wrote them. Labelled as generated: probe type `generated`."""
    from entigraph import artifacts
    from entigraph.errors import EntigraphError

    from .probes import generate_probes

    try:
        entities = artifacts.entities(cfg.out)
    except EntigraphError:  # no extract stage output: names and phrases come from nowhere, numbers still do
        entities = []
    g = cfg.eval.generated
    questions = generate_probes(documents, entities, g, cfg.eval.num_options, cfg.seed)
    if not questions:
        raise InputError("eval.probes=generated: no probe could be made from the documents (each needs a "
                         f"sentence with a name, number or phrase after {g.min_prefix_words} words, and "
                         f"{cfg.eval.num_options - 1} others of its kind in the same document)")
    if cfg.eval.limit:
        questions = questions[: cfg.eval.limit]
    kinds: dict[str, int] = {}
    for q in questions:
        kinds[q.meta["target_kind"]] = kinds.get(q.meta["target_kind"], 0) + 1
    notes = {"files": [], "dropped_outside_corpus": 0, "probes": "generated", "generated": {
        "documents": len({q.doc_id for q in questions}), "per_doc": g.per_doc, "by_kind": kinds,
        "distractors": "same kind, same document"}}
    return questions, notes
