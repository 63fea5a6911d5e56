#!/usr/bin/env bash
# Learning-rate choice for docs/results.md, on the tuning documents only (Fictional Knowledge
# documents 10-14; the reporting documents are 0-9), closed-book:
#   bash bench/efficacy_tune.sh raw          Raw CPT at 1e-4, 3e-4, 1e-3, 3e-3 (and the base model)
#   bash bench/efficacy_tune.sh entigraph    EntiGraph CPT (32 generations per document) at LRS
#   .venv/bin/python bench/efficacy.py tune
# LRS="1e-3" bash bench/efficacy_tune.sh entigraph, then LRS="..." for the others side by side:
# every EntiGraph rate trains on the one synthesis in runs/fk-tune-eg.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${THREADS:-1} HF_HUB_OFFLINE=1
E=.venv/bin/entigraph
C=configs/fictional-dev.yaml
T=(--set corpus.skip_docs=10 --set corpus.limit_docs=5 --set synthesis.max_passages=160 --set train.threads=$OMP_NUM_THREADS)
CLOSED='eval.conditions=[cpt_closed]'
for section in "$@"; do
  case $section in
    raw)
      $E extract $C --set name=fk-tune-base "${T[@]}"
      $E eval $C --set name=fk-tune-base "${T[@]}" --set 'eval.conditions=[base_closed]'
      for lr in 1e-4 3e-4 1e-3 3e-3; do
        $E extract $C --set name=fk-tune-raw-$lr "${T[@]}"
        $E train $C --set name=fk-tune-raw-$lr "${T[@]}" --set train.data=raw --set train.lr=$lr
        $E eval $C --set name=fk-tune-raw-$lr "${T[@]}" --set train.data=raw --set train.lr=$lr --set "$CLOSED"
      done ;;
    entigraph)
      for st in extract synthesize filter; do $E $st $C --set name=fk-tune-eg "${T[@]}"; done
      for lr in ${LRS:-1e-4 3e-4 1e-3}; do
        mkdir -p runs/fk-tune-eg-$lr
        for d in extract synth filter; do [ -e runs/fk-tune-eg-$lr/$d ] || cp -r runs/fk-tune-eg/$d runs/fk-tune-eg-$lr/$d; done
        $E train $C --set name=fk-tune-eg-$lr "${T[@]}" --set train.lr=$lr
        $E eval $C --set name=fk-tune-eg-$lr "${T[@]}" --set train.lr=$lr --set "$CLOSED"
      done ;;
    *) echo "unknown section: $section (raw entigraph)" >&2; exit 2 ;;
  esac
done
