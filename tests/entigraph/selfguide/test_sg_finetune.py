"""Loss masking (prompt tokens ignored), a training step, and greedy prediction on the tiny model."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from entigraph.selfguide.settings import FinetuneConfig
from entigraph.selfguide.finetune import IGNORE, build_features, collate, finetune, predict, prompt_text
from entigraph.selfguide.tasks import Task

TASK = Task(task="t", kind="classification", metric="exact_match", instruction="Is the harbour mentioned?",
            examples=[{"input": "The Harbour Guild built the clock.", "output": "yes"}], labels=["yes", "no"])


def test_labels_mask_the_prompt_exactly(tiny_lm):
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    prompt = prompt_text(tok, TASK, "Mara Velt studied salt marshes.", None)
    f = build_features(tok, prompt, "no", max_length=512)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert f["labels"][:n_prompt] == [IGNORE] * n_prompt
    assert f["labels"][n_prompt:] == f["input_ids"][n_prompt:]
    assert f["input_ids"][-1] == tok.eos_token_id  # the model learns to stop
    assert tok.decode(f["input_ids"][n_prompt:], skip_special_tokens=True) == "no"
    # too long: the prompt loses its start, the output survives
    short = build_features(tok, prompt, "no", max_length=n_prompt // 2)
    assert len(short["input_ids"]) == n_prompt // 2
    assert short["labels"][-len(f["labels"][n_prompt:]):] == f["labels"][n_prompt:]


def test_loss_ignores_prompt_tokens(tiny_lm):
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    feats = [build_features(tok, prompt_text(tok, TASK, text, None), out, 512)
             for text, out in (("Mara Velt studied marshes.", "no"), ("Kettle Point.", "yes"))]
    batch = collate(feats, tok.pad_token_id)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()  # padding ignored too
    with torch.no_grad():
        loss = model(**batch).loss
        # the same loss by hand, over output tokens only
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        shift_logits, shift_labels = logits[:, :-1], batch["labels"][:, 1:]
        keep = shift_labels != IGNORE
        manual = torch.nn.functional.cross_entropy(shift_logits[keep], shift_labels[keep])
        # every scored position is an output token (or the end-of-turn after it)
        assert keep.sum() == sum(sum(x != IGNORE for x in f["labels"]) for f in feats)
    assert torch.allclose(loss, manual, atol=1e-5)


def test_finetune_lowers_the_output_loss_and_predicts(tiny_lm):
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    feats = [build_features(tok, prompt_text(tok, TASK, f"Harbour clock {i}.", None), "yes", 512) for i in range(8)]
    epochs = []
    log = finetune(model, tok, feats, FinetuneConfig(lr=3e-3, batch_size=4, bf16=False), 4, seed=0,
                   on_epoch=lambda e, loss: epochs.append(e))
    assert epochs == [1, 2, 3, 4] and log[-1]["loss"] < log[0]["loss"]
    preds = predict(model, tok, [prompt_text(tok, TASK, "Harbour clock 9.", None)] * 3, 4, 2, bf16=False)
    assert len(preds) == 3 and preds[0] == preds[1] == preds[2]  # greedy: deterministic
    assert tok.padding_side == AutoTokenizer.from_pretrained(tiny_lm).padding_side  # restored
