"""Tokens of a run's kept synthetic passages, counted by the base model's tokenizer: the total the
budget runs of bench/efficacy_runs.sh and bench/efficacy_quality.sh take fractions of.

    .venv/bin/python bench/kept_tokens.py runs/fk-eg
"""

import sys
from pathlib import Path

from transformers import AutoTokenizer

from entigraph.artifacts import kept
from entigraph.models import resolve_lm

tok = AutoTokenizer.from_pretrained(resolve_lm("smollm2-135m-instruct"))
print(sum(len(tok(p.text, add_special_tokens=False)["input_ids"]) for p in kept(Path(sys.argv[1])) if p.text.strip()))
