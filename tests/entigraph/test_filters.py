"""Each quality gate catches what it should and passes what it should."""

import pytest

from entigraph.backends.base import Generation
from entigraph.config import FilterConfig, SupportConfig
from entigraph.filters import (
    Echo, Empty, Failed, FilterContext, Grounding, Judge, Length, NearDup, Noise, Repetition,
    Truncated, apply_filters,
)
from entigraph.filters.repetition import dup_line_ratio, dup_ngram_share, top_ngram_share
from entigraph.records import Document, Entity, Passage, SynthPassage
from entigraph.stages.filter import build_filters
from entigraph.text import name_candidates, words

SOURCE = (
    "Marit Ellery kept the Quarrow tide station for thirty-one years. Every morning she walked from "
    "Brask House to the gauge hut on Hobb's Nab and changed the paper on the Veslin drum. In the storm "
    "of November 1963 the float wire snapped, and Jonas Pell rowed the boat Patience across the "
    "Merrin Sound to fetch a spare wire from Saltmere. The Harbour Board later paid for a second gauge."
)
PROMPT = (
    "You are a careful writer. You write only what the given text supports.\n"
    f'Text from "The Quarrow Tide Station":\n\n{SOURCE}\n\n'
    "Write about Marit Ellery and Jonas Pell using only the text above. First, say what the text "
    "tells about Marit Ellery. Next, say what the text tells about Jonas Pell. Then explain how "
    "Marit Ellery and Jonas Pell are connected in the text. Write plain paragraphs."
)
GOOD = (
    "Marit Ellery looked after the tide station on Quarrow for thirty-one years, walking each morning "
    "from Brask House to the gauge hut. When the float wire snapped in the storm of 1963, Jonas Pell "
    "took the boat Patience over the sound to Saltmere for a spare wire, so her record could go on."
)


def sp(text=GOOD, seq=0, **kw):
    defaults = dict(task_id=f"t{seq}", mode="pair", entities=["Marit Ellery", "Jonas Pell"],
                    doc_ids=["d1"], passage_ids=["d1:p0"], text=text, finish_reason="stop",
                    completion_tokens=len(text.split()), seq=seq, prompt=PROMPT)
    defaults.update(kw)
    return SynthPassage(**defaults)


@pytest.fixture
def ctx():
    doc = Document("d1", "The Quarrow Tide Station", SOURCE)
    passage = Passage("d1:p0", "d1", 0, 0, len(SOURCE), SOURCE)
    entities = [
        Entity("marit-ellery", "Marit Ellery", "PERSON", aliases=["Ellery", "Marit"]),
        Entity("jonas-pell", "Jonas Pell", "PERSON", aliases=["Pell"]),
        Entity("brask-house", "Brask House", "FAC"),
    ]
    return FilterContext.build([doc], [passage], entities)


def flag(f, p, ctx):
    return f.run([p], ctx)[0]


def test_failed_and_empty(ctx):
    assert flag(Failed(), sp(status="failed", error="timeout", text=""), ctx).reason.endswith("timeout")
    assert flag(Failed(), sp(finish_reason="error"), ctx) is not None
    assert flag(Failed(), sp(), ctx) is None
    assert flag(Empty(), sp(text="  \n ... "), ctx) is not None
    assert flag(Empty(), sp(), ctx) is None


def test_truncated_is_trimmed_to_last_sentence_when_long_enough(ctx):
    cut = GOOD + " Later the Harbour Board paid for a second gauge, which"
    f = flag(Truncated(min_words=10), sp(cut, finish_reason="length"), ctx)
    assert f.text == GOOD and "trimmed" in f.reason


def test_truncated_too_short_is_dropped_and_complete_passes(ctx):
    short = "Marit Ellery kept the station. Then Jonas Pell rowed the boat Patience across the sound to"
    f = flag(Truncated(min_words=10), sp(short, finish_reason="length"), ctx)
    assert f.text is None and "min_words 10" in f.reason
    assert flag(Truncated(min_words=10), sp(GOOD, finish_reason="length"), ctx) is None  # stopped at a sentence end
    assert flag(Truncated(min_words=10), sp(GOOD + ' She said "go."', finish_reason="length"), ctx) is None
    assert flag(Truncated(min_words=10), sp(short, finish_reason="stop"), ctx) is None  # not cut at the limit


def test_echo_flags_copied_instructions_but_not_copied_source(ctx):
    echo = ("Write about Marit Ellery and Jonas Pell using only the text above. First, say what the "
            "text tells about Marit Ellery. Next, say what the text tells about Jonas Pell.")
    f = flag(Echo(threshold=0.9), sp(echo), ctx)
    assert f is not None and "echo_threshold 90%" in f.reason
    assert flag(Echo(threshold=0.9), sp(SOURCE), ctx) is None  # quoting the source context is copying, not echo
    assert flag(Echo(threshold=0.9), sp(GOOD), ctx) is None
    assert flag(Echo(threshold=0.9), sp(echo, prompt=""), ctx) is None


def test_noise_terms(ctx):
    f = flag(Noise(FilterConfig().noise_terms), sp("Sure, I'd be happy to help! " + GOOD), ctx)
    assert "'Sure,'" in f.reason and "I'd be happy to" in f.reason
    assert flag(Noise(FilterConfig().noise_terms), sp(GOOD + " <|im_end|>"), ctx) is not None
    assert flag(Noise(FilterConfig().noise_terms), sp(GOOD + " a \\\\ b"), ctx) is not None
    assert flag(Noise(FilterConfig().noise_terms), sp(GOOD), ctx) is None
    assert flag(Noise(["gauge hut"]), sp(GOOD), ctx) is not None


def test_length_outliers_both_sides_against_accepted(ctx):
    def of(n, seq):
        return sp(" ".join(["station"] * n), seq=seq)

    ps = [of(44 + i % 3, i) for i in range(20)] + [of(90, 20), of(5, 21), of(14, 22)]
    flags = Length(min_words=10, sigma=2.0, reference="accepted").run(ps, ctx)  # accepted lengths: mean 44, sd 14.1 -> [16, 72]
    assert all(f is None for f in flags[:20])
    assert flags[20].reason == "90 words outside mean ± 2σ of the accepted lengths [16, 72]"
    assert flags[21].reason == "5 words < min_words 10"
    assert flags[22].reason.startswith("14 words outside")  # short for the distribution


def test_length_source_reference(ctx):
    ctx.source_lengths = [100, 110, 90, 105, 95]
    flags = Length(min_words=10, sigma=2.0, reference="source").run([sp(" ".join(["w"] * n)) for n in (100, 60, 140)], ctx)
    assert flags[0] is None and "source lengths [86, 114]" in flags[1].reason and flags[2] is not None


def test_gopher_measures():
    assert dup_line_ratio("a\nb\na\na\n\n") == 0.5
    toks = words("the cat the cat the cat sat")
    text_len = len("the cat the cat the cat sat")
    assert top_ngram_share(toks, 2, text_len) == pytest.approx(3 * len("the cat") / text_len)
    assert top_ngram_share(words("a b c d"), 2, 7) == 0.0  # nothing repeats
    assert dup_ngram_share(words("a b c d a b c d"), 4, 15) == pytest.approx(len("a b c d") / 15)


def test_repetition_flags_loops_and_repeated_lines(ctx):
    loop = GOOD + " " + "The station was important to the island. " * 6
    assert flag(Repetition(0.3, [0.20, 0.18, 0.16], 0.3), sp(loop), ctx).reason == "top 4-gram covers 0.28 of characters > 0.16"
    twice = flag(Repetition(0.3, [0.20, 0.18, 0.16], 0.3), sp(GOOD + " " + GOOD), ctx).reason  # no n-gram more than twice
    assert twice.startswith("duplicated 4-grams cover 0.4") and twice.endswith("> 0.3")
    lines = "\n".join(["Marit Ellery kept the station."] * 3 + ["Jonas Pell rowed the boat Patience."])
    assert "duplicate line ratio 0.50" in flag(Repetition(0.3, [0.20, 0.18, 0.16], 0.3), sp(lines), ctx).reason
    assert flag(Repetition(0.3, [0.20, 0.18, 0.16], 0.3), sp(GOOD), ctx) is None
    assert flag(Repetition(0.3, [0.20, 0.18, 0.16], 0.3), sp(SOURCE), ctx) is None


def test_name_candidates_skip_sentence_starts():
    text = "Marit Ellery walked to Brask House. She met Dr. Sarah Johnson there. I said: Hello."
    assert name_candidates(text) == ["Ellery", "Brask House", "Dr Sarah Johnson"]


def test_grounding_passes_aliases_and_quotes_and_flags_missing_or_invented(ctx):
    by_alias = ("Ellery kept the tide station for thirty-one years, and Pell rowed the boat "
                "Patience to Saltmere in the storm of 1963 to fetch a wire.")
    assert flag(Grounding(require_entities=True, max_invented_rate=0.5), sp(by_alias), ctx) is None
    assert flag(Grounding(require_entities=True, max_invented_rate=0.5), sp(SOURCE), ctx) is None  # quoting the source legitimately
    missing = "Marit Ellery kept the tide station on Quarrow for many years and wrote the tides."
    assert "not mentioned: Jonas Pell" in flag(Grounding(require_entities=True, max_invented_rate=0.5), sp(missing), ctx).reason
    assert flag(Grounding(require_entities=True, max_invented_rate=0.5), sp(missing, entities=[]), ctx) is None
    assert flag(Grounding(require_entities=True, max_invented_rate=0.5), sp(missing, mode="summary"), ctx) is None  # one of a summary's entities
    assert flag(Grounding(require_entities=True, max_invented_rate=0.5), sp(missing, mode="summary", entities=["Jonas Pell"]), ctx) is not None
    invented = ("Marit Ellery and Jonas Pell met Captain Horatio Blackwood and Lady Penelope Ashgrove "
                "at the Grand Lighthouse Company in Edinburgh.")
    f = flag(Grounding(require_entities=True, max_invented_rate=0.5), sp(invented), ctx)
    assert "invented-name rate" in f.reason and "Edinburgh" in f.reason
    assert flag(Grounding(require_entities=False, max_invented_rate=0.5), sp(missing), ctx) is None


def test_near_duplicates_keep_first_in_seq_order(ctx):
    base = " ".join(f"word{i}" for i in range(150))
    variant = base.replace("word75", "changed")
    other = " ".join(f"other{i}" for i in range(150))
    ps = [sp(variant, seq=2), sp(base, seq=1), sp(other, seq=3)]
    out = apply_filters(ps, [NearDup(threshold=0.8, num_perm=128)], ctx)
    assert [p.task_id for p in out.kept] == ["t1", "t3"]
    (p, name, reason), = out.dropped
    assert p.task_id == "t2" and name == "near_dup" and "near-duplicate of t1" in reason
    assert NearDup(threshold=0.8, num_perm=128).run([sp(base), sp(other)], ctx) == [None, None]


def test_near_duplicate_threshold_is_exact(ctx):
    base = [f"word{i}" for i in range(150)]  # 146 shingles; each spread-out edit changes 5

    def edited(k):
        spots = [20, 50, 80, 110][:k]
        return " ".join(f"new{i}" if i in spots else w for i, w in enumerate(base))

    flags = NearDup(threshold=0.8, num_perm=128).run([sp(" ".join(base), seq=0), sp(edited(3), seq=1), sp(edited(4), seq=2)], ctx)
    assert "(5-gram Jaccard 0.81 >= 0.8)" in flags[1].reason  # 131/161
    assert flags[2] is None  # 126/166 = 0.76: similar, but below the threshold


class FakeJudge:
    name, model = "fake", "fake"

    def __init__(self, replies):
        self.replies = replies
        self.seen = []

    def generate(self, requests):
        self.seen += requests
        return [Generation(text=self.replies[len(self.seen) - len(requests) + i]) for i in range(len(requests))]

    def count_tokens(self, text):
        return len(text.split())

    def close(self):
        pass


def test_judge_scores_and_records_unparseable(ctx):
    ctx.judge = FakeJudge(["4", "Score: 2", "I cannot rate this."])
    judge = Judge(threshold=3, batch_size=2)
    flags = judge.run([sp(seq=0), sp(seq=1), sp(seq=2)], ctx)
    assert flags[0] is None and "judge score 2 < judge_threshold 3" in flags[1].reason and flags[2] is None
    assert judge.scores == {"t0": 4, "t1": 2, "t2": None}
    assert judge.unparseable[0]["task_id"] == "t2"
    assert SOURCE in ctx.judge.seen[0].messages[0]["content"]  # judged against the given context


def test_first_filter_wins_and_would_flag_counts_each_filter_alone(ctx):
    noisy_short = sp("Sure, I'd be happy to help!", seq=1)
    cut = sp(GOOD + " And then the", seq=2, finish_reason="length")
    ps = [sp(SOURCE, seq=0), noisy_short, cut, sp(status="failed", text="", seq=3)]
    out = apply_filters(ps, build_filters(FilterConfig(min_words=10)), ctx)
    assert [p.task_id for p in out.kept] == ["t0", "t2"]
    assert out.kept[1].text == GOOD and out.edits["t2"][0]["filter"] == "truncated"
    assert {(p.task_id, f) for p, f, _ in out.dropped} == {("t1", "noise"), ("t3", "failed")}
    stats = {s["filter"]: s for s in out.stats}
    assert stats["noise"]["dropped"] == 1 and stats["length"]["dropped"] == 0
    assert stats["length"]["would_flag"] == 2  # the short noisy one and the failed empty one
    assert stats["truncated"]["repaired"] == 1 and stats["near_dup"]["remaining"] == 2
    assert "judge" not in stats
    assert ps[2].text.endswith("And then the")  # inputs are not modified


# ---------------------------------------------------------------------------------------------
# The sentence support gate (filter.support) and the generator-free passages


def support_filter(**kw):
    from entigraph.filters import SentenceSupport

    args = dict(min_share=0.6, max_absent_names=0, max_absent_numbers=0, min_kept_sentences=1, min_kept_share=0.5)
    return SentenceSupport(**{**args, **kw})


def test_support_gate_keeps_supported_repairs_partly_supported_and_drops_unsupported(ctx):
    gate = support_filter()
    assert flag(gate, sp(GOOD), ctx) is None  # every sentence is supported: untouched
    quoting = sp("As the record says: Marit Ellery kept the Quarrow tide station for thirty-one years. "
                 "The Harbour Board later paid for a second gauge.")
    assert flag(gate, quoting, ctx) is None  # quoting the source is legitimate
    partly = sp(GOOD + " Jonas Pell was later knighted by Queen Zorbla in 1971. He loved the sea and poetry.")
    f = flag(gate, partly, ctx)
    assert f.text == GOOD and f.reason == "removed 2/4 sentences unsupported by the source"
    assert [s["reason"] for s in f.sentences] == [
        "name 'Queen Zorbla' absent from the source and the corpus",
        "shares 0/3 content words with the source (0.00 < 0.6)"]
    assert all(partly.text[s["start"]:s["end"]] == s["sentence"] for s in f.sentences)
    invented = sp("Zorblax Venn founded the Quarrow Trust in 1847. The Trust enjoys sailing and long dinners.")
    f = flag(gate, invented, ctx)
    assert f.text is None and f.reason.startswith("unsupported by its source: keeps 0/2 sentences")
    assert len(f.sentences) == 2
    assert gate.tally["pair"]["dropped"] == 1  # counted per mode
    only = support_filter(modes=["summary"])
    assert only.applies(sp(mode="summary")) and not only.applies(sp(mode="pair"))


def test_support_gate_reads_labels_as_markup_not_claims(ctx):
    quiz = ("Question: Who rowed the boat Patience across the Merrin Sound?\n"
            "Answer: Jonas Pell rowed the boat Patience across the Merrin Sound.\n"
            "Question: What did Marit Ellery keep?\nAnswer: The Quarrow tide station.")
    assert flag(support_filter(), sp(quiz, mode="quiz", entities=[]), ctx) is None
    dialogue = "Student: What snapped in 1963?\nTeacher: The float wire snapped in the storm of November 1963."
    assert flag(support_filter(), sp(dialogue, mode="dialogue", entities=[]), ctx) is None


def test_generator_free_passages_pass_every_content_filter_untouched(ctx):
    sentences = SOURCE.split(". ")
    reading = (SOURCE + "\n\nAnswer the questions based on the text above.\n\n"
               "Question: Who rowed the boat Patience?\nAnswer: Jonas Pell\n\n"
               "Fill in the blank: ____ later paid for a second gauge.\nAnswer: The Harbour Board")
    free = [sp(". ".join(sentences[::-1]), 0, mode="permute", entities=[]),
            sp(". ".join(sentences[1:] + sentences[:1]), 1, mode="permute", entities=[]),  # a near-duplicate
            sp(reading, 2, mode="reading", entities=[]),
            sp("Question: Who rowed the boat Patience?\nAnswer: Jonas Pell. " + sentences[2], 3, mode="qa", entities=[])]
    cfg = FilterConfig(support=SupportConfig(enabled=True), min_words=30)
    out = apply_filters(free + [sp(GOOD, 4), sp("", 5, mode="qa", entities=[])], build_filters(cfg), ctx)
    assert [p.task_id for p in out.kept] == ["t0", "t1", "t2", "t3", "t4"]  # only the empty one goes
    assert [p.text for p in out.kept[:4]] == [p.text for p in free]  # not mangled: nothing trimmed or repaired
    assert out.dropped[0][1] == "empty" and out.edits == {} and out.sentences == {}


def test_support_gate_records_removed_sentences_and_replaces_invented_name_grounding(ctx):
    partly = sp(GOOD + " Then Zorblax Venn and Quintus Marr painted the station red.", 0)
    cfg = FilterConfig(support=SupportConfig(enabled=True), min_words=10, max_invented_rate=0.2)
    filters = build_filters(cfg)
    assert [f.name for f in filters][:4] == ["failed", "empty", "truncated", "support"]
    out = apply_filters([partly], filters, ctx)
    assert out.kept[0].text == GOOD and out.edits["t0"][0]["filter"] == "support"
    removed = out.edits["t0"][0]["removed_sentences"]
    assert [s["sentence"] for s in removed] == [s["sentence"] for s in out.sentences["t0"]] == [
        "Then Zorblax Venn and Quintus Marr painted the station red."]
    assert out.sentences["t0"][0]["filter"] == "support"
    assert out.sentences["t0"][0]["reason"] == "name 'Zorblax Venn' absent from the source and the corpus"
    # the invented-name check is the gate's job for gated modes; without the gate it drops the passage
    assert apply_filters([partly], build_filters(FilterConfig(min_words=10, max_invented_rate=0.2)), ctx).dropped[0][1] == "grounding"
    assert flag(Grounding(True, 0.0, sentence_gated=["pair"]), sp(GOOD + " Zorblax Venn came too."), ctx) is None
