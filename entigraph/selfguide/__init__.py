"""SELF-GUIDE (Zhao, Jia et al., 2024): a model writes its own task data, then is fine-tuned on it.

    tasks.py     task file, splits, the shared task prompt
    generate.py  input generation (growing pool, label-conditioned for classification)
    annotate.py  output annotation with a self-consistency vote
    filters.py   empty / duplicate / noise / length filters, class balancing
    finetune.py  loss on output tokens only; greedy prediction
    metrics.py   label mapping, exact match, ROUGE-L, bootstrap intervals
    search.py    "one parameter fits all" over temperature x epochs
    run.py       `entigraph selfguide CONFIG` (run, main, report_section_html)
"""
