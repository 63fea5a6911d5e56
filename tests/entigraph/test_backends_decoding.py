"""Faithful decoding (entigraph/backends/decoding.py): each variant changes the scores where it
should and nowhere else, on the tiny model's tokenizer; the contrast's cached forward pass equals a
full one; the hf backend generates with it; the engine retries a pair that misses a name."""

from types import SimpleNamespace

import pytest
import torch

from entigraph.backends.base import Generation, Request
from entigraph.backends.decoding import FaithfulLogits, RowSource, TokenTable, allowed_words, strip_context
from entigraph.backends.hf import HFBackend
from entigraph.config import DecodingConfig, SamplingConfig

CONTEXT = "Mara Velt and Oskar Brenn studied the salt marshes near Kettle Point in 1887."
MESSAGES = [{"role": "user", "content": f"Context: {CONTEXT}\nWrite about Mara Velt."}]


@pytest.fixture(scope="module")
def backend(tiny_lm):
    b = HFBackend(tiny_lm, device="cpu", batch_size=4)
    yield b
    b.close()


@pytest.fixture(scope="module")
def table(backend):
    return TokenTable(backend.tokenizer, backend.lm.config.vocab_size)


def processor(backend, table, lm=None, contexts=(CONTEXT,), **settings) -> FaithfulLogits:
    rows = [RowSource(c, backend.render([{"role": "user", "content": f"Context: {c}\nWrite."}]),
                      backend.render([{"role": "user", "content": "Context: \nWrite."}])) for c in contexts]
    prompt = backend.tokenizer([r.prompt for r in rows], return_tensors="pt", padding=True, add_special_tokens=False)
    return FaithfulLogits(lm or backend.lm, backend.tokenizer, table, rows, DecodingConfig(**settings),
                          prompt["input_ids"].shape[1], backend.eos_ids, "cpu", False)


def ids_with_core(table, core: str, lead: bool = True) -> list[int]:
    return [i for i in table.by_core.get(core, []) if bool(table.lead[i]) == lead]


def test_copy_bias_raises_exactly_the_context_tokens(backend, table):
    proc = processor(backend, table, copy_bias=2.0)
    context_ids = set(backend.tokenizer(CONTEXT, add_special_tokens=False)["input_ids"]) | backend.eos_ids
    scores = torch.zeros(1, table.size)
    other = next(i for i in range(table.size) if i not in context_ids)
    scores[0, other] = 1.0  # the plain choice: a token the context does not have
    out = proc(torch.zeros(1, proc.prompt_length, dtype=torch.long), scores.clone())
    delta = out - scores
    assert set(torch.nonzero(delta[0]).flatten().tolist()) == context_ids  # only there ...
    assert torch.all(delta[0, list(context_ids)] == 2.0)  # ... by the bias
    assert int(out.argmax()) in context_ids and int(scores.argmax()) == other  # the choice moved


def test_novel_penalty_hits_capitalised_words_absent_from_the_prompt_and_nothing_else(backend, table):
    proc = processor(backend, table, novel_penalty=5.0)
    words = allowed_words(proc.rows[0].prompt)
    assert {"Mara", "Kettle", "1887", "The"} <= words and "Harbour" not in words
    scores = torch.zeros(1, table.size)
    harbour, mara = (backend.tokenizer(" " + w, add_special_tokens=False)["input_ids"][0] for w in ("Harbour", "Mara"))
    scores[0, harbour], scores[0, mara] = 1.0, 0.5  # the plain choice: (the start of) an invented name
    out = proc(torch.zeros(1, proc.prompt_length, dtype=torch.long), scores.clone())
    hit = set(torch.nonzero(out[0] - scores[0]).flatten().tolist())
    for i in range(table.size):  # at the start of the text, a token starts a word: penalised iff
        core = table.core[i]      # a capital or digit opens it and no allowed word begins with it
        should = bool(core) and (core[0].isupper() or core[0].isdigit()) and not any(w.startswith(core) for w in words)
        assert (i in hit) == should, (i, table.texts[i])
    assert harbour in hit and int(out.argmax()) == mara
    lower = [i for i in range(table.size) if table.core[i][:1].islower()]
    assert lower and not hit & set(lower)  # lowercase words are never touched


def test_novel_penalty_inside_a_name_allows_only_ways_to_finish_a_name_of_the_prompt(backend, table):
    proc = processor(backend, table, novel_penalty=5.0)
    def penalised() -> set[int]:
        out = proc(torch.zeros(1, proc.prompt_length, dtype=torch.long), torch.zeros(1, table.size))
        return set(torch.nonzero(out[0]).flatten().tolist())

    proc.tails[0] = "about Ma"  # inside a capitalised word: "Ma" may only go on towards a word of the prompt
    hit = penalised()
    finish = [i for i in range(table.size) if table.bare[i] and table.core[i] and "Mara".startswith("Ma" + table.core[i])]
    assert finish and not hit & set(finish)
    carry_on = [i for i in range(table.size) if table.bare[i] and table.core[i]
                and not any(w.startswith("Ma" + table.core[i]) for w in proc.words[0])]
    assert carry_on and set(carry_on) <= hit
    proc.tails[0] = "about ma"  # a lowercase word: its continuations are free
    assert not penalised() & set(carry_on)


class FixedLM:
    """Stands in for the model in the contrast: the same next-token logits for any input."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits

    def __call__(self, input_ids, **kw):
        return SimpleNamespace(logits=self.logits.expand(input_ids.shape[0], 1, -1).clone(), cache=None)


def test_context_contrast_favours_what_the_context_makes_likely_and_only_that(backend, table):
    v = table.size
    ctx = torch.full((1, v), -5.0)
    ctx[0, 10], ctx[0, 11] = 3.0, 2.9  # with the context, 10 is a little likelier than 11
    plain = ctx.clone()
    plain[0, 10] = 6.0  # without it, the model says 10 anyway: 11 is what the context adds
    plain[0, 12] = -20.0  # 12 is unlikely with the context, and far less likely without: the ratio lifts it
    proc = processor(backend, table, lm=FixedLM(plain[:, None, :]), context_contrast=1.0, contrast_plausibility=0.0)
    out = proc(torch.zeros(1, proc.prompt_length, dtype=torch.long), ctx.clone())
    expected = 2 * torch.log_softmax(ctx, -1) - torch.log_softmax(plain, -1)
    assert torch.allclose(out, expected) and int(out.argmax()) == 12 and int(ctx.argmax()) == 10
    proc = processor(backend, table, lm=FixedLM(plain[:, None, :]), context_contrast=1.0, contrast_plausibility=0.1)
    out = proc(torch.zeros(1, proc.prompt_length, dtype=torch.long), ctx.clone())
    assert int(out.argmax()) == 11  # what the context adds, among what it finds plausible
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [10, 11]  # p >= 0.1 x the likeliest's
    assert torch.allclose(out[0, [10, 11]], expected[0, [10, 11]])
    same = processor(backend, table, lm=FixedLM(ctx[:, None, :]), context_contrast=1.0, contrast_plausibility=0.0)
    out = same(torch.zeros(1, same.prompt_length, dtype=torch.long), ctx.clone())
    assert torch.allclose(torch.softmax(out, -1), torch.softmax(ctx, -1), atol=1e-6)  # the same distribution


def test_the_contrasts_cached_steps_equal_a_full_forward_pass(backend, table):
    contexts = (CONTEXT, "Ida Korr.")  # plain prompts of different lengths: left padding
    proc = processor(backend, table, contexts=contexts, context_contrast=1.0)
    tok = backend.tokenizer
    step = proc._plain_logits(None)
    new = torch.tensor([[tok.convert_tokens_to_ids("Mara") or 5], [7]])
    grown = torch.cat([torch.zeros(2, proc.prompt_length, dtype=torch.long), new], dim=1)
    with torch.inference_mode():
        step2 = proc._plain_logits(grown)
        for r, row in enumerate(proc.rows):
            ids = tok(row.plain_prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
            full = backend.lm(input_ids=torch.cat([ids, new[r:r + 1]], dim=1)).logits
            assert torch.allclose(step2[r], full[0, -1], atol=1e-4)
            assert torch.allclose(step[r], full[0, -2], atol=1e-4)


def test_the_backend_generates_with_each_variant_and_leaves_plain_requests_alone(backend, monkeypatch):
    s = SamplingConfig(max_new_tokens=12)
    plain = [Request(MESSAGES, s, seed) for seed in (1, 2)]
    alone = backend.generate(plain)
    copy = [Request(MESSAGES, s, seed, CONTEXT, DecodingConfig(copy_bias=100.0)) for seed in (1, 2)]
    decoded: list[list[int]] = []  # the tokens each generation is decoded from
    decode = backend.tokenizer.decode
    def spy(*args, **kw):
        ids = args[0] if args else kw["token_ids"]
        if not ids or isinstance(ids[0], int):
            decoded.append(list(ids))
        return decode(*args, **kw)

    monkeypatch.setattr(backend.tokenizer, "decode", spy)
    mixed = backend.generate(copy + plain)
    assert [g.text for g in mixed[2:]] == [g.text for g in alone]  # plain requests: plain sampling, same text
    allowed = set(backend.tokenizer(CONTEXT, add_special_tokens=False)["input_ids"])
    assert len(decoded) == 4  # the biased group first (as asked), then the plain one
    assert all(set(ids) <= allowed for ids in decoded[:2])  # a bias of 100: the context's tokens (or the end) only
    assert not any(set(ids) <= allowed for ids in decoded[2:])  # plain sampling wanders off it
    for settings in (DecodingConfig(context_contrast=1.0), DecodingConfig(novel_penalty=3.0, copy_bias=1.0)):
        reqs = [Request(MESSAGES, s, 1, CONTEXT, settings)]
        first, again = backend.generate(reqs), backend.generate(reqs)
        assert first[0].finish_reason in ("stop", "length") and first[0].text == again[0].text  # seeded


def test_strip_context_removes_the_quoted_source_once():
    assert strip_context(MESSAGES, CONTEXT)[0]["content"] == "Context: \nWrite about Mara Velt."
    assert MESSAGES[0]["content"].startswith("Context: Mara")  # the request's own messages are untouched


def test_a_pair_missing_a_name_is_generated_again_and_the_best_attempt_kept(tmp_path):
    from synth_inputs import CAST, tiny_config, write_inputs

    from entigraph import artifacts
    from entigraph.synthesis.engine import Engine

    class Scripted:
        name, model = "scripted", "m"

        def __init__(self):
            self.calls = []

        def generate(self, requests):
            self.calls.append([r.seed for r in requests])
            text = "Nobody in particular." if len(self.calls) == 1 else EVERYONE
            return [Generation(text, 5, 4) for _ in requests]

        def count_tokens(self, text):
            return len(text.split())

    global EVERYONE
    EVERYONE = " ".join(f"{n} was there." for cast in CAST.values() for n in cast)
    cfg = tiny_config(tmp_path, "m", modes=["pair"])
    cfg.synthesis.decoding = DecodingConfig(require_names=True, name_retries=2)
    write_inputs(cfg)
    out = cfg.out
    backend = Scripted()
    engine = Engine(cfg, backend, artifacts.documents(out), artifacts.passages(out), artifacts.entities(out))
    todo = next(engine.batches())[:1]
    task = todo[0][0]
    gens = engine.generate(todo)
    assert engine.missing_names(task, "Nobody in particular.") == task.entities
    assert len(backend.calls) == 2 and backend.calls[1] != backend.calls[0]  # another seed, then all names: done
    assert gens[0].text == EVERYONE and gens[0].completion_tokens == 8  # both attempts paid for
    off = tiny_config(tmp_path / "off", "m", modes=["pair"])
    write_inputs(off)
    plain = Engine(off, Scripted(), artifacts.documents(out), artifacts.passages(out), artifacts.entities(out))
    assert next(plain.batches())[0][0].task_id != task.task_id  # the setting is part of what a passage is
