"""train.kl: KL to the base model on the reading examples. Zero when the model is the base model;
the gradient flows only from the chosen positions of the `rag` blocks; a run killed between
checkpoints resumes to the same end as an uninterrupted one."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from entigraph.config import MixtureSource
from entigraph.io import read_json, write_jsonl
from entigraph.records import Document, Passage, to_dict
from entigraph.training.kl import PositionFinder, kl_to_base, kl_trainer_class
from entigraph.training.rag import render
from entigraph.training.trainer import last_checkpoint, train

TEXTS = [
    "Marit Ellery kept the Quarrow tide station for thirty-one years. Jonas Pell rowed the boat Patience "
    "to Saltmere in 1963. The Harbour Board paid for a second gauge.",
    "Oskar Brenn studied the salt marshes near Kettle Point. The Lumen Bay guild built a tidal clock in "
    "Mara Velt in 1871. Its keeper wound it every Sunday.",
    "The river Tamsin floods the lower fields each March. Ada Voss mapped its banks for the county in "
    "1904. Her survey still hangs in the Quarrow library.",
]


def _tokenizer(tiny_lm: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_lm)


def test_answer_positions_are_the_answers_tokens(tiny_lm):
    tok = _tokenizer(tiny_lm)
    examples = [render("Who rowed to Saltmere?", ["Jonas Pell rowed. Answer: not this one", "other words"], "Jonas Pell"),
                render("When was the clock built?", ["The guild built it in 1871."], "in 1871")]
    ids = []
    for text in examples:
        ids += tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = np.asarray(ids + [tok.eos_token_id] * 7, dtype=np.int64)  # a padded tail
    n = len(ids) - 7
    finder = PositionFinder(tok, "answer", tok.eos_token_id)
    spans = finder.answer_spans(ids, n)
    assert [tok.decode(ids[a:b]).strip() for a, b in spans] == ["Jonas Pell" + tok.eos_token, "in 1871" + tok.eos_token]
    mask = finder.mask(ids, n)
    # position t predicts token t + 1: the chosen positions are one before each answer token
    assert np.flatnonzero(mask).tolist() == [t - 1 for a, b in spans for t in range(a, b)]
    every = PositionFinder(tok, "example", tok.eos_token_id).mask(ids, n)
    assert every[: n - 1].all() and not every[n - 1:].any()


def test_kl_is_zero_at_the_base_model_and_its_gradient_stays_on_the_chosen_positions():
    torch.manual_seed(0)
    base = torch.randn(2, 6, 11)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, 2:4] = True
    same = base.clone().requires_grad_(True)
    kl = kl_to_base(same, base, mask)
    assert kl.item() == 0.0
    logits = (base + torch.randn(2, 6, 11)).requires_grad_(True)
    kl = kl_to_base(logits, base, mask)
    assert kl.item() > 0
    kl.backward()
    moved = logits.grad.abs().sum(-1) > 0
    assert torch.equal(moved, mask)
    nothing = torch.zeros_like(mask)
    empty = kl_to_base(logits, base, nothing)
    assert empty.item() == 0.0 and empty.requires_grad


def _tiny_model(tiny_lm: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_lm, dtype=torch.float32)


def _trainer(tiny_lm: str, base, weight: float, tmp_path: Path):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", remove_unused_columns=False)
    model = _tiny_model(tiny_lm)
    plain = Trainer(model=model, args=args)
    kind = kl_trainer_class()
    with_kl = kind(model=model, args=args, base_model=base, kl_weight=weight)
    return model, plain, with_kl


def test_the_trainer_adds_the_term_only_on_masked_rows(tiny_lm, tmp_path):
    torch.manual_seed(0)
    ids = torch.randint(5, 200, (2, 12))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[1, 3:8] = True

    model, plain, with_kl = _trainer(tiny_lm, _tiny_model(tiny_lm), 2.0, tmp_path)
    model.train()
    lm = plain.compute_loss(model, dict(batch))
    at_base = with_kl.compute_loss(model, {**batch, "kl_mask": mask})
    assert at_base.item() == pytest.approx(lm.item(), abs=1e-6)  # the model is the base model: no term

    other = _tiny_model(tiny_lm)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model, plain, with_kl = _trainer(tiny_lm, other, 2.0, tmp_path)
    model.train()
    lm = plain.compute_loss(model, dict(batch))
    assert with_kl.compute_loss(model, {**batch, "kl_mask": torch.zeros_like(mask)}).item() == pytest.approx(lm.item())
    with torch.no_grad():
        want = kl_to_base(model(input_ids=ids[1:]).logits, other(input_ids=ids[1:]).logits, mask[1:])
    got = with_kl.compute_loss(model, {**batch, "kl_mask": mask})
    assert want.item() > 0 and got.item() == pytest.approx(lm.item() + 2.0 * want.item(), rel=1e-5)
    got.backward()  # the base model stays frozen
    assert all(p.grad is None for p in other.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def _rag_run(make_run, root: Path, weight: float, deepspeed: str | None = None):
    cfg = make_run(root)
    docs = [Document(doc_id=f"d{i}", title=f"D{i}", text=t) for i, t in enumerate(TEXTS)]
    write_jsonl(cfg.out / "extract" / "documents.jsonl", [to_dict(d) for d in docs])
    write_jsonl(cfg.out / "extract" / "passages.jsonl",
                [to_dict(Passage(f"{d.doc_id}:p0", d.doc_id, 0, 0, len(d.text), d.text)) for d in docs])
    write_jsonl(cfg.out / "extract" / "entities.jsonl", [])
    t = cfg.train
    t.deepspeed, t.val_fraction, t.replay.source = deepspeed, 0.0, "none"
    t.mixture = [MixtureSource(source="synthetic", epochs=1.0), MixtureSource(source="raw", epochs=2.0),
                 MixtureSource(source="rag", share=0.4)]
    t.kl.weight = weight
    return cfg


@pytest.mark.parametrize("deepspeed", [None, "zero2"], ids=["plain", "deepspeed-zero2"])
def test_sigkill_between_checkpoints_resumes_to_the_same_result_with_the_kl_term(tmp_path, make_run,
                                                                             train_until_killed, deepspeed):
    ref = _rag_run(make_run, tmp_path / "ref", 1.0, deepspeed)
    _, ref_summary = train(ref)
    assert ref_summary["tokens_by_source"].get("rag", 0) > 0
    if deepspeed is None:
        without = _rag_run(make_run, tmp_path / "without", 0.0)
        _, plain_summary = train(without)
        assert plain_summary["data_hash"] == ref_summary["data_hash"]  # the same blocks, in the same order
        assert read_json(without.out / "train" / "loss.json")["train_loss"] != \
            read_json(ref.out / "train" / "loss.json")["train_loss"]  # the term changes training

    cfg = _rag_run(make_run, tmp_path / "killed", 1.0, deepspeed)
    config = tmp_path / "killed.yaml"
    config.write_text(yaml.safe_dump(cfg.to_dict()))
    proc = train_until_killed(config, 10)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert last_checkpoint(cfg.out / "train" / "checkpoints").name == "checkpoint-8"

    _, summary = train(cfg)
    assert summary["resumed_from_step"] == 8 and summary["steps"] == ref_summary["steps"] > 10
    assert read_json(cfg.out / "train" / "loss.json")["train_loss"] == pytest.approx(
        read_json(ref.out / "train" / "loss.json")["train_loss"], rel=1e-5)
    got = load_file(cfg.out / "train" / "model" / "model.safetensors")
    want = load_file(ref.out / "train" / "model" / "model.safetensors")
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_kl_without_reading_examples_is_refused(tmp_path, make_run):
    from entigraph.errors import ConfigError

    cfg = _rag_run(make_run, tmp_path / "r", 1.0)
    cfg.train.mixture = [MixtureSource(source="raw", epochs=1.0)]
    with pytest.raises(ConfigError, match="rag"):
        train(cfg)
