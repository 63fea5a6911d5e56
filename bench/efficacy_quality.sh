#!/usr/bin/env bash
# The QuALITY part of docs/results.md: base, Raw CPT and EntiGraph CPT on the first 3 articles of
# ../shared/data/quality-leval/dev.jsonl (36 questions), closed-book, RAG and oracle article, with
# the recipe tuned on Fictional Knowledge (lr 1e-3, 4 epochs). Three articles, not ten, and no
# Rephrase or budget runs: a 135M model is at chance on these questions even with the article in
# context, so the runs can only confirm that; the hours go where the model can learn.
#   bash bench/efficacy_quality.sh base raw entigraph && .venv/bin/python bench/efficacy.py quality
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${THREADS:-1} HF_HUB_OFFLINE=1
E=.venv/bin/entigraph
C=configs/quality-dev.yaml
COMMON=(corpus.limit_docs=3 synthesis.max_passages=48 train.lr=1e-3 train.epochs=4 train.val_fraction=0
        train.threads=$OMP_NUM_THREADS)
MAIN='eval.conditions=[cpt_closed,cpt_rag,cpt_oracle]'
stage() {  # stage STAGE NAME SETTING...
  local st=$1 name=$2; shift 2
  local args=(); for s in "${COMMON[@]}" "$@"; do args+=(--set "$s"); done
  $E "$st" $C --set name="$name" "${args[@]}"
}
for section in "$@"; do
  case $section in
    base) stage extract qd-base; stage eval qd-base 'eval.conditions=[base_closed,base_rag,base_oracle]' ;;
    raw) stage extract qd-raw; stage train qd-raw train.data=raw; stage eval qd-raw train.data=raw "$MAIN" ;;
    entigraph) for st in extract synthesize filter train; do stage $st qd-eg; done; stage eval qd-eg "$MAIN" ;;
    *) echo "unknown section: $section (base raw entigraph)" >&2; exit 2 ;;
  esac
done
