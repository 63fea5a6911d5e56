"""Weight interpolation (WiSE-FT): the endpoints exactly, the midpoint elementwise, tied weights mixed
once, buffers handled; train.interpolate re-mixes stored weights instead of retraining."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from entigraph.training.interpolate import interpolate_, interpolate_folder
from entigraph.training.trainer import train


def _tiny(seed: int, buffers: bool = True):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True))
    if buffers:
        model.register_buffer("scale", torch.randn(5))  # a float buffer: mixed like a weight
        model.register_buffer("steps", torch.tensor([3, 4]))  # an integer one: must agree, kept
    return model


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_endpoints_are_exact_and_the_midpoint_is_elementwise():
    base, trained = _snapshot(_tiny(0)), _snapshot(_tiny(1))
    assert not torch.equal(base["model.embed_tokens.weight"], trained["model.embed_tokens.weight"])
    for alpha, want in ((0.0, base), (1.0, trained)):
        model = _tiny(1)
        interpolate_(model, _tiny(0), alpha)
        for k, v in model.state_dict().items():
            assert torch.equal(v, want[k]), (alpha, k)  # bit for bit

    model = _tiny(1)
    interpolate_(model, _tiny(0), 0.5)
    got = model.state_dict()
    for k in base:
        if base[k].is_floating_point():
            torch.testing.assert_close(got[k], (base[k] + trained[k]) / 2, rtol=0, atol=1e-6)
        else:
            assert torch.equal(got[k], trained[k])
    # tied: the output head is the embedding, mixed once (twice would give 0.75 x trained + 0.25 x base)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    torch.testing.assert_close(got["lm_head.weight"], (base["lm_head.weight"] + trained["lm_head.weight"]) / 2,
                               rtol=0, atol=1e-6)


def test_mismatched_models_are_refused():
    other = _tiny(0)
    other.steps.fill_(9)
    with pytest.raises(ValueError, match="non-float"):
        interpolate_(_tiny(1), other, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        interpolate_(_tiny(1), _tiny(0), 1.5)


def test_interpolate_folder_writes_the_mix_and_may_replace_the_trained_folder(tmp_path, tiny_lm):
    a, b = _tiny(0, buffers=False), _tiny(1, buffers=False)
    a.save_pretrained(tmp_path / "base")
    b.save_pretrained(tmp_path / "trained")
    from transformers import AutoTokenizer  # a model folder needs a tokenizer: any small one

    AutoTokenizer.from_pretrained(tiny_lm).save_pretrained(tmp_path / "trained")
    wa = load_file(tmp_path / "base" / "model.safetensors")
    wb = load_file(tmp_path / "trained" / "model.safetensors")
    interpolate_folder(tmp_path / "base", tmp_path / "trained", 0.25, tmp_path / "trained")
    got = load_file(tmp_path / "trained" / "model.safetensors")
    assert got.keys() == wb.keys() and "lm_head.weight" not in got  # still tied
    for k in wb:
        torch.testing.assert_close(got[k], 0.75 * wa[k] + 0.25 * wb[k], rtol=0, atol=1e-6)


def test_train_interpolate_mixes_and_another_alpha_reuses_the_trained_weights(tmp_path, make_run, tiny_lm):
    base = load_file(f"{tiny_lm}/model.safetensors")

    def make(name: str):
        cfg = make_run(tmp_path / "runs")
        cfg.out.rename(cfg.out.with_name(name))
        cfg.name = name
        return cfg

    first = make("a")
    first.train.deepspeed, first.train.max_steps, first.train.interpolate = None, 6, 0.5
    trainer, summary = train(first)
    assert trainer is not None and summary["interpolate"] == 0.5
    stored = next((tmp_path / "runs" / ".trained").iterdir())
    trained = load_file(stored / "model" / "model.safetensors")
    got = load_file(first.out / "train" / "model" / "model.safetensors")
    assert not torch.equal(trained["model.norm.weight"], base["model.norm.weight"])  # it trained
    for k in trained:
        torch.testing.assert_close(got[k], 0.5 * base[k] + 0.5 * trained[k], rtol=0, atol=1e-6)

    second = make("b")  # another run, another alpha: nothing retrains
    second.train.deepspeed, second.train.max_steps, second.train.interpolate = None, 6, 1.0
    trainer, summary = train(second)
    assert trainer is None and summary["reused_training"] == str(stored)
    got = load_file(second.out / "train" / "model" / "model.safetensors")
    for k in trained:
        assert torch.equal(got[k], trained[k])
    assert summary["steps"] == 6 and (second.out / "train" / "loss.json").is_file()


def test_eval_interpolate_scores_the_curve_in_one_evaluation(tmp_path, tiny_lm, monkeypatch):
    """eval.interpolate: a = 0 answers as the base model, a = 1 as the trained one, bit for bit;
    every a is scored in the trained model's settings and tested against the base model's."""
    import json
    import shutil

    from eval_inputs import hashed_embedder


    from entigraph import artifacts
    from entigraph.config import RunConfig
    from entigraph.corpus import load_corpus
    from entigraph.evaluation import compare
    from entigraph.io import read_json, read_jsonl, write_jsonl
    from entigraph.records import to_dict
    from entigraph.stages import eval as eval_stage
    from entigraph.stages.report import run as report_run

    rows = [{"input": "THE TIDAL CLOCK\n\nThe Harbour Guild built the tidal clock in 1887. Mara Velt kept it.",
             "instructions": ["Who built the tidal clock?\n\n (A) Mara Velt\n (B) The Harbour Guild\n (C) Oskar Brenn\n (D) Nobody",
                              "When was it built?\n\n (A) 1887\n (B) 1901\n (C) 1931\n (D) 1963"],
             "outputs": ["(B) The Harbour Guild", "(A) 1887"]}]
    corpus = tmp_path / "mini.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))

    monkeypatch.setattr(compare, "make_embedder", hashed_embedder)
    cfg = RunConfig(name="t", run_dir=str(tmp_path / "runs"), device="cpu")
    cfg.corpus.paths, cfg.models.base = [str(corpus)], tiny_lm
    cfg.eval.bootstrap, cfg.eval.dtype, cfg.eval.forgetting_blocks, cfg.eval.cache = 100, "float32", 0, False
    cfg.eval.retrieval.chunk_words, cfg.eval.retrieval.chunk_overlap = 12, 0
    cfg.eval.conditions = ["base_closed", "cpt_closed", "cpt_rag"]
    cfg.eval.interpolate = [0.0, 0.5, 1.0]
    write_jsonl(artifacts.stage_dir(cfg.out, "extract") / "documents.jsonl",
                [to_dict(d) for d in load_corpus(cfg.corpus.paths)])
    trained = artifacts.stage_dir(cfg.out, "train") / "model"
    shutil.copytree(tiny_lm, trained)
    model = _tiny_from(trained)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.save_pretrained(trained)

    eval_stage.run(cfg)
    recs = {(r["condition"], r["qid"]): r for r in read_jsonl(cfg.out / "eval" / "records.jsonl")}
    conds = {c for c, _ in recs}
    assert {"alpha0_closed", "alpha0_rag", "alpha0.5_closed", "alpha0.5_rag", "alpha1_closed", "alpha1_rag",
            "base_rag"} <= conds
    for (cond, qid), r in recs.items():
        if cond.startswith("alpha0_"):
            assert r["scores"] == recs[(cond.replace("alpha0", "base"), qid)]["scores"]
        if cond.startswith("alpha1_"):
            assert r["scores"] == recs[(cond.replace("alpha1", "cpt"), qid)]["scores"]
    assert recs[("alpha0.5_closed", qid)]["scores"] != recs[("cpt_closed", qid)]["scores"]
    results = read_json(cfg.out / "results.json")
    assert any((p["a"], p["b"]) == ("alpha0.5_rag", "base_rag") for p in results["paired"])
    report_run(cfg)  # the run's report takes the extra rows


def _tiny_from(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
