from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from entigraph.errors import ConfigError, InputError
from entigraph.io import read_jsonl, write_jsonl
from entigraph.config import MixtureSource
from entigraph.training.data import BlockDataset, build, pack
from entigraph.training.replay import replay_texts, seed_prompts


@pytest.fixture
def tok(tiny_lm):
    return AutoTokenizer.from_pretrained(tiny_lm)


def test_pack_puts_eos_after_each_document_and_pads_the_tail():
    blocks, lengths = pack([[5, 6, 7], [8, 9]], block_size=4, eos_id=2)
    assert blocks.tolist() == [[5, 6, 7, 2], [8, 9, 2, 2]]
    assert lengths.tolist() == [4, 3]  # the tail block is padded, not dropped
    assert pack([], 4, 2)[0].shape == (0, 4)


def test_block_dataset_masks_padding_out_of_loss_and_attention():
    from entigraph.training.data import PackedData

    blocks, lengths = pack([[5, 6, 7, 8, 9]], block_size=4, eos_id=2)
    data = PackedData(blocks, lengths, np.zeros(2, np.uint8), np.arange(2), np.zeros(0, np.int64), {})
    item = BlockDataset(data, data.order)[1]
    assert item["input_ids"].tolist() == [9, 2, 2, 2]
    assert item["labels"].tolist() == [9, 2, -100, -100]
    assert item["attention_mask"].tolist() == [1, 1, 0, 0]


def test_build_stores_data_and_reuses_it(run_cfg, tok):
    data_dir = run_cfg.out / "train" / "data"
    data = build(run_cfg, tok, [], global_batch=2, data_dir=data_dir)
    m = data.manifest
    assert m["val_blocks"] >= 1 and m["train_blocks"] > 0
    assert set(np.asarray(data.val)).isdisjoint(np.asarray(data.order))
    assert m["train_tokens_by_source"] == {"synthetic": m["train_tokens"]}
    assert m["steps"] == -(-m["train_blocks"] // 2)
    # EOS separates documents: one per kept passage in the synthetic pool
    eos = (np.asarray(data.blocks)[np.asarray(data.lengths) > 0] == tok.eos_token_id).sum()
    assert eos >= m["documents"]["synthetic"]
    mtime = (data_dir / "order.npy").stat().st_mtime_ns
    again = build(run_cfg, tok, [], global_batch=2, data_dir=data_dir)
    assert (data_dir / "order.npy").stat().st_mtime_ns == mtime  # read back, not rebuilt
    assert again.manifest["content_hash"] == m["content_hash"]
    run_cfg.seed = 1  # a different seed is a different order
    assert build(run_cfg, tok, [], 2, data_dir).manifest["content_hash"] != m["content_hash"]


def test_raw_cpt_and_anneal_on_raw_training_blocks(run_cfg, tok):
    run_cfg.train.mixture, run_cfg.train.anneal_fraction = [MixtureSource(source="raw", epochs=2.0)], 0.2
    data = build(run_cfg, tok, [], 2, run_cfg.out / "train" / "data")
    m = data.manifest
    assert "synthetic" not in m["documents"] and m["pool_blocks"]["anneal"] == 0
    assert set(m["train_tokens_by_source"]) == {"raw", "anneal"}
    tail = np.asarray(data.order[m["anneal_start"]:])
    assert len(tail) and set(tail).isdisjoint(np.asarray(data.val))  # no validation leak


def test_replay_share_and_empty_input_errors(run_cfg, tok):
    data = build(run_cfg, tok, ["some generic replay text about rivers and valleys"] * 30, 2,
                 run_cfg.out / "train" / "data")
    by = data.manifest["train_tokens_by_source"]
    assert 0.05 < by["replay"] / (by["replay"] + by["synthetic"]) < 0.15
    write_jsonl(run_cfg.out / "filter" / "kept.jsonl", [])
    with pytest.raises(InputError, match="no training text"):
        build(run_cfg, tok, [], 2, run_cfg.out / "train" / "data2")


def test_too_little_text_for_a_split_is_a_clear_error(run_cfg, tok):
    run_cfg.train.block_size = 100_000
    with pytest.raises(InputError, match="train.block_size"):
        build(run_cfg, tok, [], 2, run_cfg.out / "train" / "data")


def test_replay_from_files_and_none(run_cfg, tmp_path):
    (tmp_path / "r.txt").write_text("Rivers shape valleys over thousands of years.")
    run_cfg.train.replay.source, run_cfg.train.replay.paths = "files", [str(tmp_path / "r.txt")]
    texts, info = replay_texts(run_cfg, tmp_path / "data")
    assert texts == ["Rivers shape valleys over thousands of years."] and info["source"] == "files"
    run_cfg.train.replay.paths = []
    with pytest.raises(ConfigError):
        replay_texts(run_cfg, tmp_path / "data")
    run_cfg.train.replay.source = "none"
    assert replay_texts(run_cfg, tmp_path / "data")[0] == []


def test_self_replay_is_generated_once(run_cfg, tiny_lm, tok, tmp_path):
    from transformers import AutoModelForCausalLM

    calls = []

    def load():
        calls.append(1)
        return AutoModelForCausalLM.from_pretrained(tiny_lm)

    texts, info = replay_texts(run_cfg, tmp_path, tok, load)
    assert len(calls) == 1 and info["source"] == "self" and len(list(read_jsonl(tmp_path / "replay.jsonl"))) == 4
    again, _ = replay_texts(run_cfg, tmp_path, tok, load)
    assert again == texts and len(calls) == 1  # stored, not regenerated
    assert len(set(seed_prompts(50, 0))) == 50



def test_synthetic_subsets_by_mode_and_token_budget_in_synthesis_order(run_cfg, tok):
    from entigraph.records import SynthPassage, to_dict
    from entigraph.training.data import synthetic_texts

    kept = [SynthPassage(task_id=f"t{i}", mode=("pair", "triple")[i % 2], entities=[], doc_ids=[],
                         passage_ids=[], text=f"passage {i} about the tidal clock", seq=9 - i) for i in range(10)]
    write_jsonl(run_cfg.out / "filter" / "kept.jsonl", [to_dict(p) for p in kept])
    assert synthetic_texts(run_cfg)[0] == "passage 9 about the tidal clock"  # sampler order, not file order
    assert [t.split()[1] for t in synthetic_texts(run_cfg, modes=["pair"])] == ["8", "6", "4", "2", "0"]
    per = len(tok("passage 8 about the tidal clock", add_special_tokens=False)["input_ids"])
    run_cfg.train.max_synthetic_tokens = 2 * per + per // 2
    assert [t.split()[1] for t in synthetic_texts(run_cfg, tok, modes=["pair"])] == ["8", "6"]
    with pytest.raises(ValueError, match="tokenizer"):
        synthetic_texts(run_cfg)
    run_cfg.train.val_fraction = 0.0
    data = build(run_cfg, tok, [], 2, run_cfg.out / "train" / "data")  # the budget reaches the packed data
    assert data.manifest["documents"]["synthetic"] == 2


def test_mixture_token_shares_match_the_config_within_one_block(run_cfg, tok):

    t = run_cfg.train
    t.mixture = [MixtureSource(source="synthetic", epochs=2.0), MixtureSource(source="raw", share=0.3),
                 MixtureSource(source="replay", share=0.1)]
    t.val_fraction = 0.0
    replay = ["Rivers shape valleys over thousands of years. " * 40] * 3
    data = build(run_cfg, tok, replay, 2, run_cfg.out / "train" / "data")
    m = data.manifest
    by = m["train_tokens_by_source"]
    total = sum(by.values())
    pool_synthetic = m["pool_tokens"]["synthetic"]
    assert abs(by["synthetic"] - 2 * pool_synthetic) <= t.block_size  # epochs: 2 passes, within a block
    expected_total = 2 * pool_synthetic / (1 - 0.4)
    assert abs(by["raw"] - 0.3 * expected_total) <= t.block_size
    assert abs(by["replay"] - 0.1 * expected_total) <= t.block_size
    assert abs(total - expected_total) <= 3 * t.block_size
    assert m["sources"] == ["synthetic", "raw", "replay", "anneal"]


def test_sequential_order_keeps_the_mixture_order(run_cfg, tok):

    t = run_cfg.train
    t.mixture = [MixtureSource(source="raw", epochs=1.0), MixtureSource(source="synthetic", epochs=1.0)]
    t.order, t.val_fraction = "sequential", 0.0
    data = build(run_cfg, tok, [], 2, run_cfg.out / "train" / "data")
    order = np.asarray(data.order)
    codes = np.asarray(data.sources)[order[:len(order) - data.manifest["padded_blocks"]]]
    first_synthetic = int(np.argmax(codes == 1))
    assert (codes[:first_synthetic] == 0).all() and (codes[first_synthetic:] == 1).all()


def test_rag_examples_never_carry_an_evaluation_question():
    from entigraph.records import Document, Passage, Question
    from entigraph.training.rag import rag_examples

    text = ("Marit Ellery kept the Quarrow tide station for thirty-one years. Jonas Pell rowed the boat "
            "Patience to Saltmere in 1963. The Harbour Board paid for a second gauge.")
    doc = Document("d", "Quarrow", text)
    passages = [Passage("d:p0", "d", 0, 0, len(text), text),
                Passage("x:p0", "x", 0, 0, 30, "Unrelated words about a river."),
                Passage("y:p0", "y", 0, 0, 30, "More words about a far mountain.")]
    everything = rag_examples([doc], passages, [], [], seed=0, per_unit=5)
    assert everything.texts and everything.dropped_as_eval == 0
    asked = [t.split("Question: ")[1].split("\n")[0] for t in everything.texts]
    evaluation = [Question("q", "d", asked[0], [], -1, answer_text="")]
    held_out = rag_examples([doc], passages, [], evaluation, seed=0, per_unit=5)
    assert held_out.dropped_as_eval >= 1
    assert all(asked[0] not in t for t in held_out.texts)  # enforced, not trusted
    assert all(t.startswith("Context:\n[1] ") and "\nAnswer: " in t for t in held_out.texts)
