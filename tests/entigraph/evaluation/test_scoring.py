import numpy as np
import pytest

from entigraph.records import Question
from entigraph.evaluation.answers import exact_match, normalize_answer
from entigraph.evaluation.scoring import LMScorer, mc_messages, parse_answer

CONTEXT = "The Harbour Guild of Lumen Bay built the tidal clock in 1887. " * 4
MC = Question("q1", "d", "Who built the tidal clock?",
              ["The Harbour Guild", "Mara Velt and Oskar Brenn", "Kettle Point", "a"], 0)


@pytest.fixture(scope="module")
def scorer(tiny_lm):
    return LMScorer(tiny_lm, device="cpu", dtype="float32", max_context_tokens=256)


@pytest.mark.parametrize("batch", [True, False])
def test_cached_context_equals_full_sequence_scores(scorer, batch):
    prefix, _ = scorer.prompt_ids(MC, CONTEXT)
    conts = [scorer.continuation_ids(o) for o in MC.options]
    assert len({len(c) for c in conts}) > 1  # options of different lengths exercise the padding
    scorer.batch_options = batch
    cached, _ = scorer.continuation_logprobs(prefix, conts)
    scorer.batch_options = True
    separate = scorer.separate_logprobs(prefix, conts)
    for c, s in zip(cached, separate):
        np.testing.assert_allclose(c, s, atol=1e-4)


def test_score_modes_are_consistent(scorer):
    rec = scorer.score(MC, CONTEXT)
    prefix, _ = scorer.prompt_ids(MC, CONTEXT)
    conts = [scorer.continuation_ids(o) for o in MC.options]
    full = [lp.sum() for lp in scorer.separate_logprobs(prefix, conts)]
    uncond = [lp.sum() for lp in scorer.separate_logprobs(scorer.specials + scorer.encode("Answer:"), conts)]
    s = rec["scores"]
    np.testing.assert_allclose(s["raw"], full, atol=1e-3)
    np.testing.assert_allclose(s["length_norm"], np.array(full) / [len(c) for c in conts], atol=1e-3)
    np.testing.assert_allclose(s["calibrated"], np.array(full) - uncond, atol=1e-3)
    np.testing.assert_allclose(s["char_norm"], np.array(full) / [len(o) for o in MC.options], atol=1e-3)
    assert rec["predicted"] == {m: int(np.argmax(v)) for m, v in s.items()}


def test_long_context_is_cut_from_the_left_keeping_the_question(scorer):
    ids, truncated = scorer.prompt_ids(MC, CONTEXT * 20)
    tail = scorer.encode(f"Question: {MC.question}\nAnswer:")
    assert truncated and len(ids) == scorer.max_context_tokens and ids[-len(tail):] == tail
    assert scorer.prompt_ids(MC, None) == (scorer.specials + tail, False)


def test_cloze_target_likelihood_and_greedy_exact_match(scorer):
    cloze = Question("c", "d", "Mara Velt studied the salt marshes near", ["Kettle Point", "Lumen Bay"], 0,
                     "Kettle Point", "cloze")
    rec = scorer.score(cloze, None)
    prefix, _ = scorer.prompt_ids(cloze, None)
    target = scorer.continuation_ids("Kettle Point")
    expected = scorer.separate_logprobs(prefix, [target])[0].mean()
    assert rec["target_logprob"] == pytest.approx(expected, abs=1e-4)
    assert isinstance(rec["greedy"], str) and rec["exact_match"] == exact_match(rec["greedy"], "Kettle Point", prefix=True)
    # greedy decoding from the cache equals transformers' own greedy generate
    import torch
    out = scorer.model.generate(torch.tensor([prefix]), max_new_tokens=len(target) + 1, do_sample=False)
    assert rec["greedy"] == scorer.tokenizer.decode(out[0, len(prefix):], skip_special_tokens=True)
    short = scorer.score(Question("s", "d", "Where?", [], -1, "Kettle Point", "short"), CONTEXT)
    assert "scores" not in short and "target_logprob" in short


def test_the_kv_cache_goes_by_the_name_transformers_5_wants(scorer):
    """transformers 5.2x renamed forward()'s past_key_values to cache (the old name warns, and goes
    in 5.40): scoring and greedy decoding from the cache raise no FutureWarning."""
    import warnings

    from entigraph.evaluation.scoring import cache_argument

    assert cache_argument(scorer.model) == "cache"
    cloze = Question("c", "d", "Mara Velt studied the salt marshes near", ["Kettle Point", "Lumen Bay"], 0,
                     "Kettle Point", "cloze")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        scorer.score(MC, CONTEXT)
        scorer.score(cloze, None)


def test_exact_match_normalises_and_allows_a_longer_continuation():
    assert normalize_answer("The  Harbour-Guild!") == "harbourguild"
    assert exact_match(" Zorgon's leadership, who ruled", "Zorgon’s leadership", prefix=True)
    assert not exact_match("Zorgons leaderships", "Zorgon's leadership", prefix=True)  # prefix of a longer word
    assert not exact_match("anything", "", prefix=True)


@pytest.mark.parametrize("reply, expected", [
    ("Answer: (B)", 1), ("The answer is C.", 2), ("Let me think. (A) is wrong... so Answer: D", 3),
    ("B) The Guild", 1), ("I think (C) fits best", 2), ("It was Kettle Point.", 2), ("no idea", -1),
    ("Answer: (F)", -1),
])
def test_parse_answer(reply, expected):
    assert parse_answer(reply, ["The Harbour Guild", "Mara Velt", "Kettle Point", "nobody"]) == expected


def test_mc_messages_few_shot_and_chain_of_thought():
    shot = Question("s", "e", "Which colour?", ["red", "blue"], 1)
    msgs = mc_messages(MC, "ctx", [shot], chain_of_thought=True)
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[1]["content"] == "Answer: (B)"
    assert msgs[2]["content"].startswith("ctx\n\nQuestion: Who built") and "step by step" in msgs[2]["content"]
    assert "(D) a" in msgs[2]["content"]
