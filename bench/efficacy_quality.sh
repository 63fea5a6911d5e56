#!/usr/bin/env bash
# The QuALITY part of docs/results.md: the first 3 articles of ../shared/data/quality-leval/dev.jsonl
# (40 questions, 62 passages, 8.8k words), every method closed-book, with RAG and with the oracle
# article, with the recipe tuned on Fictional Knowledge (lr 1e-3, 4 epochs). Three articles, not
# ten: a 135M model is at chance on these questions even with the article in context, so these runs
# can only confirm that, and the hours go where the model can learn.
#   bash bench/efficacy_quality.sh base raw rephrase entigraph budgets pairs noreplay control
#   .venv/bin/python bench/efficacy.py quality
# Two sections can run side by side on two cores (THREADS=1 each); budgets, pairs and noreplay
# start from entigraph's synthesis, so run them after it.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${THREADS:-1} HF_HUB_OFFLINE=1
E=.venv/bin/entigraph
C=configs/quality-dev.yaml
COMMON=(corpus.limit_docs=3 synthesis.max_passages=48 train.lr=1e-3 train.epochs=4 train.val_fraction=0
        train.threads=$OMP_NUM_THREADS)
MAIN='eval.conditions=[cpt_closed,cpt_rag,cpt_oracle]'
EG=(synthesis.max_passages=144)   # 48 generations per article (the first 48 are the earlier run's)
stage() {  # stage STAGE NAME SETTING...
  local st=$1 name=$2; shift 2
  local args=(); for s in "${COMMON[@]}" "$@"; do args+=(--set "$s"); done
  $E "$st" $C --set name="$name" "${args[@]}"
}
from_entigraph() {  # from_entigraph NAME: a run that starts from EntiGraph's extract/synthesize/filter folders
  mkdir -p "runs/$1"
  for d in extract synth filter; do [ -e "runs/$1/$d" ] || cp -r "runs/qd-eg/$d" "runs/$1/$d"; done
}
kept_tokens() { .venv/bin/python bench/kept_tokens.py runs/qd-eg; }  # the budgets' total
for section in "$@"; do
  case $section in
    base) stage extract qd-base; stage eval qd-base 'eval.conditions=[base_closed,base_rag,base_oracle]' ;;
    raw) stage extract qd-raw; stage train qd-raw train.data=raw; stage eval qd-raw train.data=raw "$MAIN" ;;
    rephrase)  # one paraphrase of each of the 62 passages
      R=(synthesis.modes=[rephrase] synthesis.max_passages=62)
      for st in extract synthesize filter train; do stage $st qd-rephrase "${R[@]}"; done
      stage eval qd-rephrase "${R[@]}" "$MAIN" ;;
    entigraph) for st in extract synthesize filter train; do stage $st qd-eg "${EG[@]}"; done; stage eval qd-eg "${EG[@]}" "$MAIN" ;;
    budgets)
      total=$(kept_tokens)
      for part in q:4 h:2; do
        name=qd-eg-${part%%:*}; budget=$(( total / ${part##*:} ))
        from_entigraph "$name"
        stage train "$name" "${EG[@]}" train.max_synthetic_tokens=$budget
        stage eval "$name" "${EG[@]}" train.max_synthetic_tokens=$budget "$MAIN"
      done ;;
    pairs|noreplay)
      case $section in
        pairs) name=qd-eg-pairs setting='train.synthetic_modes=[summary,pair]' ;;
        noreplay) name=qd-eg-noreplay setting=train.replay.fraction=0 ;;
      esac
      from_entigraph "$name"
      stage train "$name" "${EG[@]}" "$setting"
      stage eval "$name" "${EG[@]}" "$setting" "$MAIN" ;;
    control)  # Raw CPT on three *other* articles (4-6), asked about articles 1-3: what training alone
              # does to the answers, with none of the knowledge the questions need
      stage extract qd-control corpus.skip_docs=3; stage train qd-control corpus.skip_docs=3 train.data=raw
      stage extract qd-control-eval
      stage eval qd-control-eval 'eval.conditions=[base_closed]' "eval.extra_models={other: runs/qd-control/train/model}" ;;
    *) echo "unknown section: $section (base raw rephrase entigraph budgets pairs noreplay control)" >&2; exit 2 ;;
  esac
done
