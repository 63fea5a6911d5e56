#!/usr/bin/env bash
# The runs behind docs/results.md: Fictional Knowledge reporting documents 0-9 (configs/fictional-dev.yaml),
# each method its own run folder under runs/, evaluated on the same 50 paraphrased + 50 composition probes.
#
#   bash bench/efficacy_runs.sh base raw rephrase entigraph budgets pairs noreplay egraw eglr document ungrounded
#   .venv/bin/python bench/efficacy.py report                                   # tables, plot, JSON
#
# Runs that reuse EntiGraph's synthesis copy its extract/synthesize/filter folders (their completion
# markers are fingerprints of the settings, so only the stages whose settings differ run again).
# Two sections can run side by side on two cores: each job uses one thread (THREADS).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${THREADS:-1} HF_HUB_OFFLINE=1
E=.venv/bin/entigraph
C=configs/fictional-dev.yaml
MAIN='eval.conditions=[cpt_closed,cpt_rag,cpt_oracle]'
SHORT='eval.conditions=[cpt_closed]'   # ablations: closed-book only (RAG + oracle cost 8 min a run)

stage() {  # stage STAGE NAME SETTING...
  local st=$1 name=$2; shift 2
  local args=(); for s in "$@"; do args+=(--set "$s"); done
  $E "$st" $C --set name="$name" --set train.threads="$OMP_NUM_THREADS" "${args[@]}"
}
from_entigraph() {  # from_entigraph NAME [STAGE_DIR...]: a run that starts from EntiGraph's stages
  local name=$1; shift
  mkdir -p "runs/$name"
  for d in "${@:-extract synth filter}"; do
    for one in $d; do [ -e "runs/$name/$one" ] || cp -r "runs/fk-eg/$one" "runs/$name/$one"; done
  done
}
kept_tokens() { .venv/bin/python bench/kept_tokens.py runs/fk-eg; }  # the budgets' total

for section in "$@"; do
  case $section in
    base)
      stage extract fk-base
      stage eval fk-base 'eval.conditions=[base_closed,base_rag,base_oracle]' ;;
    raw)
      stage extract fk-raw
      stage train fk-raw train.data=raw
      stage eval fk-raw train.data=raw "$MAIN" ;;
    rephrase)
      R=(synthesis.modes=[rephrase])
      for st in extract synthesize filter train; do stage $st fk-rephrase "${R[@]}"; done
      stage eval fk-rephrase "${R[@]}" "$MAIN" ;;
    entigraph)
      for st in extract synthesize filter train; do stage $st fk-eg; done
      stage eval fk-eg "$MAIN" ;;
    budgets)
      total=$(kept_tokens)
      for part in e:8 q:4 h:2; do
        name=fk-eg-${part%%:*}; budget=$(( total / ${part##*:} ))
        from_entigraph "$name"
        stage train "$name" train.max_synthetic_tokens=$budget
        stage eval "$name" train.max_synthetic_tokens=$budget "$MAIN"
      done ;;
    pairs|noreplay|egraw|eglr)
      case $section in
        eglr) name=fk-eg-lr3e-4 setting=train.lr=3e-4 ;;
        pairs) name=fk-eg-pairs setting='train.synthetic_modes=[summary,pair]' ;;
        noreplay) name=fk-eg-noreplay setting=train.replay.fraction=0 ;;
        egraw) name=fk-eg-raw setting=train.data=synthetic+raw ;;
      esac
      from_entigraph "$name"
      stage train "$name" "$setting"
      conds=$SHORT; case $section in egraw|eglr) conds=$MAIN ;; esac   # the two best also with RAG and oracle
      stage eval "$name" "$setting" "$conds" ;;
    document)  # whole-document context, at the budget of the eighth (the first 40 generations)
      D=(synthesis.context=document synthesis.max_passages=40)
      for st in extract synthesize filter train; do stage $st fk-eg-doc "${D[@]}"; done
      stage eval fk-eg-doc "${D[@]}" "$SHORT" ;;
    ungrounded)  # no grounding filter, at the eighth's token budget (compare with fk-eg-e)
      U=(filter.require_entities=false filter.max_invented_rate=1.0 train.max_synthetic_tokens=$(( $(kept_tokens) / 8 )))
      from_entigraph fk-eg-ungrounded extract synth   # its own filter
      for st in filter train; do stage $st fk-eg-ungrounded "${U[@]}"; done
      stage eval fk-eg-ungrounded "${U[@]}" "$SHORT" ;;
    *) echo "unknown section: $section (base raw rephrase entigraph budgets pairs noreplay egraw eglr document ungrounded)" >&2; exit 2 ;;
  esac
done
