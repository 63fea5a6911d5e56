"""The report stage: runs/<name>/report.html, one self-contained page (inline CSS, plots as base64
PNGs, no external assets) that says what was adapted and whether it helped.

Every section reads its stage's files and degrades to a short note when they are missing, so a
partial run still gets a report. All text from files is escaped.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

from entigraph import artifacts
from entigraph.config import RunConfig
from entigraph.io import read_json
from entigraph.reporting import CSS, SCRIPT, Html, esc, fig_b64, html_note, html_section, html_table, pct

def _read(path: Path) -> Any:
    try:
        return read_json(path) if path.is_file() else None
    except (OSError, ValueError):
        return None


def _png(path: Path) -> str | None:
    return base64.b64encode(path.read_bytes()).decode() if path.is_file() else None


def _img(b64: str | None, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{b64}">' if b64 else ""


def _kv_table(data: dict, limit: int = 24) -> str:
    """Scalars of a stage summary (nested dicts one level down), for summaries whose shape varies."""
    rows = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows += [[f"{key}.{k}", _short(v)] for k, v in value.items() if not isinstance(v, (dict, list))]
        elif isinstance(value, list):
            rows.append([key, _short(value)])
        else:
            rows.append([key, _short(value)])
    return html_table(["", "value"], rows[:limit], "kv") if rows else html_note("empty summary")


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        text = ", ".join(str(x) for x in v[:8]) + (f", … ({len(v)} in all)" if len(v) > 8 else "")
        return text
    return str(v)


# --- sections --------------------------------------------------------------------------------
def _count_lines(path: Path) -> int | None:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def headline(results: dict | None, cfg: RunConfig) -> str:
    """What was adapted, and the comparison in one sentence."""
    out = cfg.out
    kept = _count_lines(artifacts.stage_dir(out, "filter") / "kept.jsonl")
    docs = _count_lines(artifacts.stage_dir(out, "extract") / "documents.jsonl")
    data = f"{kept} synthetic passages" if kept is not None else "synthetic passages"
    about = f"{docs} documents of {_corpus_name(cfg)}" if docs is not None else _corpus_name(cfg)
    adapted = any(c.startswith("cpt_") for c in (results or {}).get("conditions", {})) or \
        artifacts.stage_dir(out, "train").joinpath("model").is_dir()
    what = (f"{esc(cfg.models.base)} continued-pretrained on {esc(data)} about {esc(about)}" if adapted else
            f"{esc(cfg.models.base)} on {esc(about)} (no continued-pretrained model in this run)")
    if not results or not results.get("conditions"):
        return f'<p class="headline">{what}. No evaluation results yet: run <code>entigraph eval</code>.</p>'
    conds = results["conditions"]
    n = results.get("questions", 0)
    parts = []
    pair = _pair(results, "cpt_closed", "base_closed")
    if pair:
        a, b = conds["cpt_closed"], conds["base_closed"]
        parts.append(f"closed-book accuracy went from {pct(b['accuracy'])} to {pct(a['accuracy'])} "
                     f"({_signed(pair)}) on {n} questions")
    else:
        best = max(conds, key=lambda c: conds[c]["accuracy"])
        parts.append(f"best condition {esc(best)} at {pct(conds[best]['accuracy'])} on {n} questions")
    if "base_rag" in conds:
        parts.append(f"the base model with retrieval scores {pct(conds['base_rag']['accuracy'])}")
    if results.get("chance"):
        parts.append(f"chance is {pct(results['chance'])}")
    if results.get("probes") == "generated":
        parts.append("the questions are generated cloze probes, not human-written ones")
    return f'<p class="headline">{what}: ' + "; ".join(parts) + ".</p>"


def _pair(results: dict, a: str, b: str) -> dict | None:
    return next((p for p in results.get("paired", []) if (p["a"], p["b"]) == (a, b)), None)


def _loglik(p: dict) -> str:
    return f"; target log-likelihood {_lp_diff(p)} nats" if "logprob_diff" in p else ""


def verdict(results: dict | None) -> str:
    """The two answers a reader opens the report for, each with its evidence: did the adapted model
    learn the documents (closed-book, adapted vs base), and does it help or hurt retrieval (RAG with
    the adapted model vs RAG with the base model). "Yes" needs McNemar p < 0.05; a difference that
    test does not call is said to be within noise."""
    if not results:
        return ""
    conds, rows = results.get("conditions", {}), []
    learned = _pair(results, "cpt_closed", "base_closed")
    if learned:
        a, b = conds["cpt_closed"], conds["base_closed"]
        word = ("Yes" if learned["diff"] > 0 else "No: it got worse") if learned["mcnemar_p"] < 0.05 else \
            "Not shown (the difference is within noise)"
        rows.append(("Did the adapted model learn the documents?",
                     f"{word}. Closed-book {pct(b['accuracy'])} → {pct(a['accuracy'])}, {_signed(learned)}{_loglik(learned)}."))
    reads = _pair(results, "cpt_rag", "base_rag")
    if reads:
        a, b = conds["cpt_rag"], conds["base_rag"]
        if reads["mcnemar_p"] < 0.05:
            word = "It helps" if reads["diff"] > 0 else "It hurts"
        else:
            word = "It does not hurt" if reads["diff"] >= 0 else "Slightly lower, within noise"
        rows.append(("Does it help or hurt retrieval (RAG)?",
                     f"{word}. RAG with the base model {pct(b['accuracy'])}, with the adapted model "
                     f"{pct(a['accuracy'])}: {_signed(reads)}{_loglik(reads)}."))
    if not rows:
        return ""
    body = "".join(f"<dt>{esc(q)}</dt><dd>{answer}</dd>" for q, answer in rows)
    return f'<div class="verdict" id="verdict"><dl>{body}</dl></div>'


def _diff(p: dict) -> str:
    """The difference in points, green/red only when McNemar's test calls it (p < 0.05)."""
    cls = ("good" if p["diff"] > 0 else "bad") if p["mcnemar_p"] < 0.05 else "flat"
    return f'<span class="{cls}">{100 * p["diff"]:+.1f} points</span>'


def _signed(p: dict) -> str:
    lo, hi = p["ci95"]
    return f"{_diff(p)}, 95 % CI [{100 * lo:+.1f}, {100 * hi:+.1f}], McNemar p = {p['mcnemar_p']:.3g}"


def _corpus_name(cfg: RunConfig) -> str:
    return ", ".join(Path(p).name if p != "demo" else "the demo corpus" for p in cfg.corpus.paths) or "a corpus"


def comparison_plot(results: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches
    import matplotlib.pyplot as plt

    conds = list(results["conditions"])
    acc = [results["conditions"][c]["accuracy"] * 100 for c in conds]
    lo = [a - results["conditions"][c]["ci95"][0] * 100 for a, c in zip(acc, conds)]
    hi = [results["conditions"][c]["ci95"][1] * 100 - a for a, c in zip(acc, conds)]
    palette = {"base": "#8aa1b8", "cpt": "#2f6fad"}
    colors = [palette.get(c.rsplit("_", 1)[0], "#c27c2c") for c in conds]
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(conds) + 1.4))
    y = list(range(len(conds)))[::-1]
    ax.barh(y, acc, color=colors, height=0.6)
    ax.errorbar(acc, y, xerr=[lo, hi], fmt="none", ecolor="#1d2733", capsize=4, lw=1.2)
    for yi, a, h in zip(y, acc, hi):
        ax.text(a + h + 1.5, yi, f"{a:.1f}", va="center", fontsize=9, color="#1d2733",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    labels = (("#8aa1b8", "base model"), ("#2f6fad", "continued-pretrained"), ("#c27c2c", "other models"))
    handles = [matplotlib.patches.Patch(color=c, label=name) for c, name in labels if c in colors]
    if results.get("chance"):
        handles.append(ax.axvline(results["chance"] * 100, color="#b3261e", ls="--", lw=1, label="chance"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(handles), frameon=False)
    ax.set_yticks(y, conds)
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"accuracy (%), {results.get('scoring', '')} scoring, 95 % bootstrap interval")
    ax.spines[["top", "right"]].set_visible(False)
    return fig_b64(fig)


def comparison_section(results: dict | None) -> str:
    if not results or not results.get("conditions"):
        return html_section("Comparison", html_note("eval/results.json is missing: run `entigraph eval`."), "comparison")
    modes = results.get("modes", [])
    rows = []
    for cond, c in results["conditions"].items():
        lo, hi = c["ci95"]
        row = [cond, pct(c["accuracy"]), f"[{100 * lo:.1f}, {100 * hi:.1f}]", c["correct"], c["n"]]
        row += [pct(c["by_mode"].get(m, {}).get("accuracy")) for m in modes]
        rows.append(row)
    table = html_table(["condition", "accuracy", "95 % CI", "correct", "n", *[f"{m}" for m in modes]], rows, "comparison")
    extra = []
    cloze = {c: v for c, v in results["conditions"].items() if "exact_match" in v}
    if cloze:
        extra.append(html_table(["condition", "greedy exact match", "mean target log-prob / token"],
                            [[c, pct(v["exact_match"]), f"{v.get('target_logprob', float('nan')):.3f}"]
                             for c, v in cloze.items()], "cloze"))
    if results.get("by_type"):
        conds = list(results["conditions"])
        extra.append(html_table(["probe type", *conds], [[t, *[pct(v.get(c, {}).get("accuracy")) for c in conds]]
                                                     for t, v in results["by_type"].items()], "by-type"))
    note = (f"Headline scoring: <b>{esc(results.get('scoring'))}</b>; the other columns rescore the same runs "
            "(raw = summed log-probability, length_norm = per token, char_norm = per character, "
            "calibrated = minus the option's likelihood after \"Answer:\").")
    truncated = sum(c.get("truncated", 0) for c in results["conditions"].values())
    if truncated:
        note += f" {truncated} prompts were cut from the left to fit the context limit."
    body = table + f"<p>{note}</p>" + "".join(extra) + _img(comparison_plot(results), "accuracy by condition")
    if results.get("probes") == "generated":
        body = f'<p class="generated"><b>Generated probes.</b> {esc(GENERATED_NOTE)}</p>' + body
    return html_section("Comparison", body, "comparison")


def paired_section(results: dict | None) -> str:
    if not results or not results.get("paired"):
        return html_section("Paired tests", html_note("No pair of conditions to compare."), "paired")
    loglik = any("logprob_diff" in p for p in results["paired"])
    rows = [[f"{p['a']} − {p['b']}", Html(_diff(p)),
             f"[{100 * p['ci95'][0]:+.1f}, {100 * p['ci95'][1]:+.1f}]", p["only_a"], p["only_b"],
             f"{p['mcnemar_p']:.3g}"] + ([_lp(p)] if loglik else []) for p in results["paired"]]
    body = html_table(["difference", "points", "95 % CI (paired bootstrap)", "only a right", "only b right",
                   "McNemar exact p"] + (["Δ target log-lik / token [95 % CI]"] if loglik else []), rows, "paired")
    body += html_note("Same questions under both conditions: the exact McNemar test looks only at questions "
                  "where exactly one condition is right.")
    return html_section("Paired tests", body, "paired")


GENERATED_NOTE = ("These are generated probes, not human-written questions: sentences of the documents cut "
                  "before a name, number or noun phrase, the options being that span and others of its kind "
                  "from the same document (eval.probes: generated). They test recall of the documents' wording; "
                  "read them as a proxy.")


def _lp_diff(r: dict) -> str:
    lo, hi = r["logprob_ci95"]
    return f"{r['logprob_diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _lp(r: dict) -> str:
    return f"{_lp_diff(r)} ({r['logprob_wins']}/{r['n']} rose)" if "logprob_diff" in r else "–"


def reading_section(results: dict | None) -> str:
    """The adapted model against the base model with the same context: learning the documents
    must not cost reading them."""
    rows = []
    for r in (results or {}).get("reading") or []:
        name = {"rag": "retrieved chunks (RAG)", "oracle": "the document itself (oracle)"}.get(r["setting"], r["setting"])
        ca, ba = r["cpt"], r["base"]
        rows.append([name, f"{pct(ca['accuracy'])} [{100 * ca['ci95'][0]:.1f}, {100 * ca['ci95'][1]:.1f}]",
                     f"{pct(ba['accuracy'])} [{100 * ba['ci95'][0]:.1f}, {100 * ba['ci95'][1]:.1f}]",
                     Html(_diff(r)), f"[{100 * r['ci95'][0]:+.1f}, {100 * r['ci95'][1]:+.1f}]",
                     f"{r['mcnemar_p']:.3g}", _lp(r), r["n"]])
    if not rows:
        return html_section("Reading check", html_note(
            "No reading check: it needs cpt_rag or cpt_oracle among eval.conditions (with eval.reading_check, "
            "the base model is then scored with the same context)."), "reading")
    body = html_table(["context", "adapted model", "base model", "difference", "95 % CI (paired bootstrap)",
                   "McNemar exact p", "Δ target log-lik / token [95 % CI]", "n"], rows, "reading")
    body += html_note("Same questions, same context for both models. A recipe that teaches the documents but "
                  "makes the model read its context worse shows a negative difference here.")
    return html_section("Reading check", body, "reading")


def forgetting_section(results: dict | None) -> str:
    f = (results or {}).get("forgetting") or {}
    if "diff" not in f:
        why = f.get("skipped", "eval/results.json has no forgetting check (written by a newer eval stage)")
        return html_section("Forgetting", html_note(f"Not measured: {why}."), "forgetting")
    lo, hi = f["ci95"]
    cls = ("bad" if f["diff"] > 0 else "good") if (lo > 0 or hi < 0) else "flat"
    body = html_table(["held-out text", "blocks", "tokens", "base model loss", "adapted model loss",
                   "difference (nats/token)", "95 % CI (paired bootstrap)", "blocks worse"],
                  [[f.get("detail") or f["source"], f["blocks"], f"{f['tokens']:,}", f"{f['base_loss']:.3f}",
                    f"{f['cpt_loss']:.3f}", Html(f'<span class="{cls}">{f["diff"]:+.3f}</span>'),
                    f"[{lo:+.3f}, {hi:+.3f}]", f"{f['worse_blocks']}/{f['blocks']}"]], "forgetting")
    body += html_note("Mean token loss on general text the training never saw (source: "
                  f"{f['source']}); a positive difference means the adapted model models it worse.")
    return html_section("Forgetting", body, "forgetting")


def documents_section(results: dict | None) -> str:
    if not results or not results.get("by_document"):
        return html_section("Per document", html_note("No per-document results."), "documents")
    conds = list(results["conditions"])
    rows = [[f"{doc_id} {v.get('title', '')[:60]}".strip(), v["n"], *[pct(v["accuracy"].get(c), 0) for c in conds]]
            for doc_id, v in results["by_document"].items()]
    return html_section("Per document", html_table(["document", "questions", *conds], rows, "documents"), "documents")


def retrieval_section(results: dict | None) -> str:
    r = (results or {}).get("retrieval") or {}
    if not r:
        return html_section("Retrieval", html_note("No retrieval-augmented condition was evaluated."), "retrieval")
    ks = [k for k in (1, 3, 5, 10) if f"recall@{k}" in r]
    body = html_table(["k", *[str(k) for k in ks]], [["document recall@k", *[pct(r[f"recall@{k}"], 0) for k in ks]]])
    lat = r.get("latency", {})
    body += (f"<p>{esc(r.get('method'))} retrieval over {esc(r.get('chunks'))} chunks of {esc(r.get('chunk_size'))} "
             f"{esc(r.get('chunk_unit'))} ({esc(r.get('index'))} index{', reranked by ' + esc(r['reranker']) if r.get('reranker') else ''}); "
             f"top {esc(r.get('top_k'))} chunks go into the prompt. Latency per query: "
             f"{lat.get('mean_ms', 0):.1f} ms mean, {lat.get('p95_ms', 0):.1f} ms p95.</p>")
    if r.get("index_note"):
        body += html_note(r["index_note"])
    rows = [[e["question"] if i == 0 else "", c["title"] + (f" ({c['where']})" if c["where"] else ""), f"{c['score']:.3f}"]
            for e in r.get("examples", []) for i, c in enumerate(e["chunks"])]
    if rows:
        body += "<p>What the first questions were given (each chunk cited by document, page or section):</p>"
        body += html_table(["question", "retrieved chunk", "score"], rows)
    return html_section("Retrieval", body, "retrieval")


def graph_section(out: Path) -> str:
    summary = _read(artifacts.stage_dir(out, "extract") / "summary.json")
    png = _png(artifacts.stage_dir(out, "extract") / "graph.png")
    if summary is None and png is None:
        return html_section("Knowledge graph", html_note("extract/ has no summary or graph picture: run `entigraph extract`."), "graph")
    body = (_kv_table(summary) if isinstance(summary, dict) else "") + _img(png, "entity graph")
    return html_section("Knowledge graph", body, "graph")


def synthesis_section(out: Path) -> str:
    summary = _read(artifacts.stage_dir(out, "synthesize") / "summary.json")
    if not isinstance(summary, dict):
        return html_section("Synthesis", html_note("synthesize/summary.json is missing: run `entigraph synthesize`."), "synthesis")
    return html_section("Synthesis", _kv_table(summary), "synthesis")


def filter_section(out: Path) -> str:
    report = _read(artifacts.stage_dir(out, "filter") / "report.json")
    if not isinstance(report, dict):
        return html_section("Filters and data quality", html_note("filter/report.json is missing: run `entigraph filter`."), "filter")
    try:
        from entigraph.quality import report_section_html  # the filter stage's own section
    except ImportError:
        return html_section("Filters and data quality", _kv_table(report), "filter")
    try:
        return f'<section id="filter">{report_section_html(report)}</section>'  # it has its heading, escapes its text
    except Exception as e:  # a broken section must not cost the whole report
        body = html_note(f"the data-quality section failed to render ({type(e).__name__}: {e})") + _kv_table(report)
        return html_section("Filters and data quality", body, "filter")


def training_section(out: Path) -> str:
    train = artifacts.stage_dir(out, "train")
    png, summary = _png(train / "loss.png"), _read(train / "summary.json")
    if png is None and summary is None:
        return html_section("Training", html_note("train/ has no loss curve or summary: run `entigraph train`."), "training")
    body = (_kv_table(summary) if isinstance(summary, dict) else "") + (_img(png, "loss curves") or html_note("no loss.png"))
    return html_section("Training", body, "training")


def config_section(out: Path) -> str:
    path = out / "config.yaml"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    timings = _read(out / "timings.json")
    body = ""
    if isinstance(timings, dict) and timings:
        # every attempt at the stage's settings (a crash and its resume), else the last attempt
        per_stage = {k: float(timings.get("total", {}).get(k, v)) for k, v in timings.items() if k != "total"}
        total = sum(per_stage.values())
        body += html_table(["stage", "seconds (all attempts)", "share"],
                       [[k, f"{v:.1f}", pct(v / total if total else 0, 0)] for k, v in per_stage.items()]
                       + [["total", f"{total:.1f}", ""]])
    else:
        body += html_note("timings.json is missing (stages run through the pipeline record their times).")
    body += (f"<details><summary>config.yaml</summary><pre>{esc(text)}</pre></details>" if text
             else html_note("config.yaml is missing."))
    return html_section("Timings and configuration", body, "config")


def render(cfg: RunConfig) -> str:
    out = cfg.out
    results = _read(artifacts.stage_dir(out, "eval") / "results.json") or _read(out / "results.json")
    sections = [
        comparison_section(results), paired_section(results), reading_section(results), forgetting_section(results),
        documents_section(results),
        retrieval_section(results), graph_section(out), synthesis_section(out), filter_section(out),
        training_section(out), config_section(out),
    ]
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>entigraph · {esc(cfg.name)}</title>"
        f"<style>{CSS}</style><script>{SCRIPT}</script></head><body><main>"
        f"<h1>entigraph run “{esc(cfg.name)}”</h1><p class=\"sub\">report written {esc(stamp)} from {esc(out)}</p>"
        + verdict(results) + headline(results, cfg) + "".join(sections) + "</main></body></html>"
    )
