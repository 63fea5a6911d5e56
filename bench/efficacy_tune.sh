#!/usr/bin/env bash
# Learning-rate choice for docs/results.md, on the tuning documents only (Fictional Knowledge
# documents 10-14; the reporting documents are 0-9): Raw CPT at three learning rates, closed-book.
#   bash bench/efficacy_tune.sh        then: .venv/bin/python bench/efficacy.py tune
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${THREADS:-1} HF_HUB_OFFLINE=1
E=.venv/bin/entigraph
C=configs/fictional-dev.yaml
T=(--set corpus.skip_docs=10 --set corpus.limit_docs=5 --set train.threads=$OMP_NUM_THREADS)
$E extract $C --set name=fk-tune-base "${T[@]}"
$E eval $C --set name=fk-tune-base "${T[@]}" --set 'eval.conditions=[base_closed]'
for lr in 1e-4 3e-4 1e-3 3e-3; do
  $E extract $C --set name=fk-tune-raw-$lr "${T[@]}"
  $E train $C --set name=fk-tune-raw-$lr "${T[@]}" --set train.data=raw --set train.lr=$lr
  $E eval $C --set name=fk-tune-raw-$lr "${T[@]}" --set train.data=raw --set train.lr=$lr --set 'eval.conditions=[cpt_closed]'
done
