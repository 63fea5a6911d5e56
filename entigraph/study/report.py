"""The study report: runs/<study>/study.html (self-contained, like report.html), study.md (the
markdown tables, also spliced into a document by --write-docs) and study-results.json (every figure).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from ..reporting import CSS, SCRIPT, esc, fig_b64, html_note, html_section, html_table, md_table, points
from ..io import atomic_path, write_json
from .analysis import probe_name

GENERATED = ("Generated probes are not human-written questions: sentences of the reporting documents cut "
             "before a name, number or noun phrase, the options being that span and others of its kind from "
             "the same document (eval.probes: generated).")


# --- formatting ------------------------------------------------------------------------------
def spct(x: float) -> str:
    return ("+" if x >= 0 else "") + points(x)


def fmt_acc(r: dict | None) -> str:
    if not r:
        return "—"
    return f"{points(r['accuracy'])} [{points(r['ci95'][0])}, {points(r['ci95'][1])}]"


def fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.0e}"


def fmt_test(p: dict | None) -> str:
    return "—" if not p else f"{spct(100 * p['diff'])} (p = {fmt_p(p['mcnemar_p'])})"


def fmt_lp(p: dict | None) -> str:
    if not p or "logprob_diff" not in p:
        return "—"
    lo, hi = p["logprob_ci95"]
    return f"{p['logprob_diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


METRIC = {"target_logprob": "mean target log-likelihood", "accuracy": "accuracy", "order": "grid order"}


def fmt_point(point: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "—"


def probe_kinds(res: dict) -> list[tuple[str, str]]:
    """(probe type, label) of the reported tables, in order: the first probe kind's types, then the
    generated ones."""
    seen: list[str] = []
    for e in res["recipes"].values():
        for key in e["results"]:
            ptype = key.split("/", 1)[1]
            if ptype not in seen:
                seen.append(ptype)
    seen.sort(key=lambda t: (t.startswith("generated"), t))
    return [(t, probe_name(t)) for t in seen]


def _n(res: dict, ptype: str) -> int:
    return next((e["results"][f"closed/{ptype}"]["n"] for e in res["recipes"].values()
                 if f"closed/{ptype}" in e["results"]), 0)


def _refs(res: dict) -> list[str]:
    return [r for r in (res.get("base"), res.get("reference")) if r]


# --- rows shared by markdown and HTML --------------------------------------------------------
def comparison_rows(res: dict, ptype: str) -> tuple[list[str], list[list[str]]]:
    refs = _refs(res)
    header = ["method", "synthetic tokens", "training tokens", "closed-book", "RAG", "oracle", "gap closed",
              *[f"vs {r}, closed (McNemar p)" for r in refs]]
    rows = []
    for name, e in res["recipes"].items():
        rs = e["results"]
        if f"closed/{ptype}" not in rs:
            continue
        gap = res["gap_closed"].get(f"{name}/{ptype}")
        t = e.get("tokens", {})
        rows.append([name, f"{t.get('synthetic', 0):,}", f"{t.get('training', 0):,}", fmt_acc(rs.get(f"closed/{ptype}")),
                     fmt_acc(rs.get(f"rag/{ptype}")), fmt_acc(rs.get(f"oracle/{ptype}")),
                     "—" if gap is None else f"{100 * gap:.0f} %",
                     *[fmt_test(res["paired"].get(f"{name} vs {r}: closed/{ptype}")) for r in refs]])
    return header, rows


def loglik_rows(res: dict) -> tuple[list[str], list[list[str]]]:
    refs = _refs(res)
    header = ["method", "probes"] + [c for r in refs for c in (f"vs {r}: Δ log-lik [95 % CI]", "wins")]
    rows = []
    for name in res["recipes"]:
        if name == res.get("base"):
            continue
        for ptype, label in probe_kinds(res):
            cells, any_ = [], False
            for r in refs:
                p = res["paired"].get(f"{name} vs {r}: closed/{ptype}")
                if p and "logprob_diff" in p:
                    any_ = True
                    cells += [fmt_lp(p), f"{p['logprob_wins']}/{p['n']}"]
                else:
                    cells += ["—", "—"]
            if any_:
                rows.append([name, label, *cells])
    return header, rows


def reading_rows(res: dict) -> tuple[list[str], list[list[str]]]:
    header = ["method", "probes", "RAG vs base RAG: Δ acc (McNemar p)", "Δ log-lik [95 % CI]",
              "oracle vs base oracle: Δ acc (McNemar p)", "Δ log-lik [95 % CI]"]
    rows = []
    for name, e in res["recipes"].items():
        by = {}
        for r in e.get("reading") or []:
            by.setdefault(r["probe_type"], {})[r["setting"]] = r
        for ptype, s in by.items():
            rows.append([name, probe_name(ptype), fmt_test(s.get("rag")), fmt_lp(s.get("rag")),
                         fmt_test(s.get("oracle")), fmt_lp(s.get("oracle"))])
    return header, rows


def forgetting_rows(res: dict) -> tuple[list[str], list[list[str]]]:
    header = ["method", "held-out text", "blocks", "base loss", "adapted loss", "Δ nats/token [95 % CI]", "blocks worse"]
    rows = []
    for name, e in res["recipes"].items():
        f = e.get("forgetting")
        if not f:
            continue
        if "diff" not in f:
            rows.append([name, f.get("skipped", "not measured"), "—", "—", "—", "—", "—"])
            continue
        rows.append([name, f.get("detail") or f.get("source", ""), str(f["blocks"]), f"{f['base_loss']:.3f}",
                     f"{f['cpt_loss']:.3f}", f"{f['diff']:+.3f} [{f['ci95'][0]:+.3f}, {f['ci95'][1]:+.3f}]",
                     f"{f['worse_blocks']}/{f['blocks']}"])
    return header, rows


def _stage_cell(timing: dict) -> str:
    parts = []
    for stage, t in timing.get("stages", {}).items():
        if stage == "report":
            continue
        if t["reused"]:
            parts.append(f"{stage} cached ({t['ran_seconds']:.0f})")
        elif t["complete"]:
            extra = f", {t['attempts']} attempts" if t["attempts"] > 1 else ""
            parts.append(f"{stage} {t['seconds']:.0f}{extra}")
        else:
            parts.append(f"{stage} —")
    return ", ".join(parts)


def runs_rows(res: dict) -> tuple[list[str], list[list[str]]]:
    header = ["method", "run", "what", "settings", "steps", "stage seconds (all attempts; cached: reused, seconds where it ran)"]
    rows = []
    for name, e in res["recipes"].items():
        rows.append([name + ("" if e["complete"] else " (not finished)"), f"`{e['run']}`", e["description"] or "—",
                     fmt_point(e["point"]), str(e["tokens"].get("steps") or "—"), _stage_cell(e["timings"])])
    return header, rows


def tuning_rows(res: dict) -> tuple[list[str], list[list[str]]]:
    header = ["recipe", "run", "settings", "probes", "closed-book accuracy % [95 % CI]", "mean target log-lik", "chosen"]
    rows = []

    def add(recipe: str, run: str, point: str, m: dict, chosen: str) -> None:
        types = m.get("by_type") or {"": m}
        for ptype, f in types.items():
            if not f.get("n"):
                continue
            acc = {"accuracy": 100 * f["accuracy"], "ci95": [100 * f["ci95"][0], 100 * f["ci95"][1]]}
            lp = "—" if f.get("target_logprob") is None else f"{f['target_logprob']:.3f}"
            rows.append([recipe, f"`{run}`", point, probe_name(ptype), fmt_acc(acc), lp, chosen])

    if res.get("tuning_base"):
        add(res["base"], res["tuning_base"]["run"], "not trained", res["tuning_base"], "")
    for name, t in res["tuning"].items():
        for ev in t["evidence"]:
            add(name, ev["run"], fmt_point(ev["point"]), ev, "✓" if ev["point"] == t["chosen"] else "")
    return header, rows


def ranking_rows(res: dict) -> tuple[list[str], list[list[str]]]:
    rk = res.get("ranking") or {}
    kinds = rk.get("kinds", [])
    header = ["pair"] + [c for k in kinds for c in (f"{k}: Δ acc (McNemar p)", f"{k}: Δ log-lik [95 % CI]")] + ["same direction"]
    rows = []
    for p in rk.get("pairs", []):
        cells = [c for k in kinds for c in (fmt_test(p[k]), fmt_lp(p[k]))]
        agree = "accuracy " + ("yes" if p["agree_accuracy"] else "**no**")
        if "agree_logprob" in p:
            agree += ", log-lik " + ("yes" if p["agree_logprob"] else "**no**")
        rows.append([f"{p['a']} − {p['b']}", *cells, agree])
    return header, rows


def ranking_sentence(res: dict) -> str:
    rk = res.get("ranking")
    if not rk or not rk.get("recipes"):
        return "No recipe was evaluated on both probe kinds."
    k0, k1 = rk["kinds"]
    parts = []
    for metric, label in (("accuracy", "closed-book accuracy"), ("target_logprob", "target log-likelihood")):
        a, b = rk["order"][k0][metric], rk["order"][k1][metric]
        if rk["same_order"][metric]:
            parts.append(f"by {label} both rank {' > '.join(a)}")
        else:
            parts.append(f"by {label} they **disagree**: {k0} {' > '.join(a)}, {k1} {' > '.join(b)}")
    dis = [f"{p['a']} vs {p['b']}" for p in rk["pairs"] if not p["agree_accuracy"]]
    tail = f" Pairs ordered differently by accuracy: {', '.join(dis)}." if dis else ""
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:] + tail


def verdicts(res: dict) -> list[str]:
    """What the tests say, one line per trained recipe and probe type, at p < 0.05; and where the
    reading and forgetting checks find a loss."""
    lines = []
    refs = _refs(res)
    for name, e in res["recipes"].items():
        if not e["train"]:
            continue
        for ptype, label in probe_kinds(res):
            bits = []
            for r in refs:
                p = res["paired"].get(f"{name} vs {r}: closed/{ptype}")
                if not p or r == name:
                    continue
                sig = p["mcnemar_p"] < 0.05
                lp = p.get("logprob_ci95")
                lp_sig = lp is not None and (lp[0] > 0 or lp[1] < 0)
                word = ("better than" if p["diff"] > 0 else "worse than") if sig else "not distinguishable from"
                extra = ""
                if not sig and lp_sig:
                    extra = f", though its target log-likelihood is {'higher' if p['logprob_diff'] > 0 else 'lower'} ({fmt_lp(p)})"
                bits.append(f"{word} {r} in accuracy ({spct(100 * p['diff'])} points, p = {fmt_p(p['mcnemar_p'])}){extra}")
            if bits:
                lines.append(f"{name}, {label} probes, closed-book: " + "; ".join(bits) + ".")
        for r in e.get("reading") or []:
            acc_worse = r["diff"] < 0 and r["mcnemar_p"] < 0.05
            lp_worse = bool(r.get("logprob_ci95")) and r["logprob_ci95"][1] < 0
            what = {"rag": "retrieved chunks", "oracle": "the document"}.get(r["setting"], r["setting"])
            where = f"with {what} in context, {probe_name(r['probe_type'])} probes"
            if acc_worse:
                lines.append(f"{name} reads its context worse than the base model ({where}: accuracy "
                             f"{spct(100 * r['diff'])} points, p = {fmt_p(r['mcnemar_p'])}; target log-lik {fmt_lp(r)}).")
            elif lp_worse:
                lines.append(f"{name} gives the right target a lower likelihood than the base model does ({where}: "
                             f"{fmt_lp(r)}), at an accuracy difference the test does not call "
                             f"({spct(100 * r['diff'])} points, p = {fmt_p(r['mcnemar_p'])}).")
        f = e.get("forgetting") or {}
        if "diff" in f and f["ci95"][0] > 0:
            lines.append(f"{name} models held-out general text worse than the base model "
                         f"(+{f['diff']:.3f} nats/token [{f['ci95'][0]:+.3f}, {f['ci95'][1]:+.3f}]).")
    return lines


# --- markdown --------------------------------------------------------------------------------
RIGHT = ("synthetic tokens", "training tokens", "gap closed", "steps", "blocks")  # right-aligned columns


def _md(header: list[str], rows: list[list[str]]) -> list[str]:
    return md_table(header, rows, right=RIGHT)


def markdown_comparison(res: dict) -> str:
    lines: list[str] = []
    for ptype, label in probe_kinds(res):
        n = _n(res, ptype)
        gen = " — *generated from the documents, not human-written*" if ptype.startswith("generated") else ""
        lines += [f"**{label[0].upper() + label[1:]} probes**{gen} (accuracy %, 95 % bootstrap interval; n = {n})", ""]
        lines += _md(*comparison_rows(res, ptype)) + [""]
    h, rows = loglik_rows(res)
    if rows:
        lines += ["**Target log-likelihood** (mean per-token log-probability of the right answer, closed-book; "
                  "paired bootstrap 95 % interval of the difference; wins = probes where it rose)", ""]
        lines += _md(h, rows) + [""]
    h, rows = reading_rows(res)
    if rows:
        lines += ["**Reading check**: each trained model against the base model with the same context "
                  "(retrieved chunks; the document itself), same probes", ""]
        lines += _md(h, rows) + [""]
    h, rows = forgetting_rows(res)
    if rows:
        lines += ["**Forgetting**: mean token loss on held-out general text, base against trained model "
                  "(paired bootstrap over blocks; positive = worse)", ""]
        lines += _md(h, rows) + [""]
    more = markdown_tradeoff(res, "reporting")
    if more:
        lines += [more]
    lines += ["**Runs** (wall seconds per stage on this machine; every attempt counted)", ""]
    lines += _md(*runs_rows(res)) + [""]
    c = res.get("compute", {})
    if c:
        lines += [f"Machine time spent on this study's runs: {c['spent_seconds'] / 60:.0f} min; "
                  f"{c['reused_stages']} of {c['stages']} stages came from the stage cache "
                  f"(saving {c['saved_seconds'] / 60:.0f} min).", ""]
    return "\n".join(lines)


def tradeoff_rows(res: dict, role: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Per run and probe type, each model (base a = 0, eval.interpolate's mixes, trained a = 1):
    closed-book, and with retrieved chunks and the document against the base model in that setting."""
    header = ["run", "probes", "a", "closed-book", "closed target log-lik", "RAG", "RAG vs base: Δ acc (McNemar p)",
              "RAG vs base: Δ log-lik [95 % CI]", "oracle", "oracle vs base: Δ log-lik [95 % CI]"]
    rows = []
    for run, curve in (res.get("tradeoff") or {}).items():
        if role and res["runs"].get(run, {}).get("role") != role:
            continue
        cells: dict[tuple[str, float], dict[str, dict]] = {}
        for r in curve:
            cells.setdefault((r["probe_type"], r["alpha"]), {})[r["setting"]] = r
        for (ptype, alpha), by in cells.items():
            closed, rag, oracle = by.get("closed"), by.get("rag"), by.get("oracle")
            lp = f"{closed['target_logprob']:.3f}" if closed and closed.get("target_logprob") is not None else "—"
            rows.append([f"`{run}`", probe_name(ptype), f"{alpha:g}", fmt_acc(closed), lp, fmt_acc(rag),
                         fmt_test((rag or {}).get("vs_base")), fmt_lp((rag or {}).get("vs_base")), fmt_acc(oracle),
                         fmt_lp((oracle or {}).get("vs_base"))])
    return header, rows


def markdown_tradeoff(res: dict, role: str | None = None) -> str:
    h, rows = tradeoff_rows(res, role)
    if not rows:
        return ""
    return "\n".join(["**In context, and over the interpolation weight a** ((1 - a) x base + a x trained; a = 0 "
                      "is the base model, 1 the trained one; accuracy %, 95 % bootstrap interval; paired tests "
                      "against the base model with the same context)", "", *_md(h, rows)]) + "\n"


def markdown_tuning(res: dict) -> str:
    h, rows = tuning_rows(res)
    if not rows:
        return "No tuning runs.\n"
    chosen = [f"{name}: {fmt_point(t['chosen'] or {})} ({t['why']})" for name, t in res["tuning"].items()]
    s = res["select"]
    ties = f"ties within {s['tie_within']:g}" + (" or within noise (paired bootstrap per probe)" if s.get("noise") else "")
    then = "grid order" if s["tie_break"] == "order" else f"{METRIC[s['tie_break']]}, then grid order"
    rule = f"Chosen by closed-book {METRIC[s['metric']]} on the tuning documents' probes ({ties} broken by {then})."
    if s.get("reading_floor") is not None:
        rule += (f" Only points whose RAG target log-likelihood interval against the base model stays above "
                 f"-{s['reading_floor']:g} nats on every probe type are eligible.")
    more = markdown_tradeoff(res, "tuning")
    return "\n".join(_md(h, rows) + ["", rule, "", *[f"- {c}" for c in chosen]] + (["", more] if more else [])) + "\n"


def markdown_ranking(res: dict) -> str:
    if not res.get("ranking"):
        return ""
    h, rows = ranking_rows(res)
    return "\n".join([f"{GENERATED} Closed-book, each kind's probe types pooled. " + ranking_sentence(res), "",
                      *_md(h, rows)]) + "\n"


def markdown(res: dict) -> str:
    parts = [f"# Study {res['study']}", "", f"Written {res['written']} from `{res['config']}`.", ""]
    sp = res["split"]
    parts += [f"Reporting documents: {_range(sp['reporting'])}; tuning documents: "
              f"{_range(sp['tuning']) if sp['tuning'] else 'none'} ({sp['check']}).", ""]
    v = verdicts(res)
    if v:
        parts += ["## What the tests say (p < 0.05)", "", *[f"- {x}" for x in v], ""]
    parts += ["## Comparison", "", markdown_comparison(res), "## Tuning", "", markdown_tuning(res)]
    if res.get("ranking"):
        parts += ["## Generated against given probes", "", markdown_ranking(res)]
    return "\n".join(parts)


def _range(r: dict) -> str:
    lo, n = r["skip_docs"], r["limit_docs"]
    return (f"{lo}–{lo + n - 1}" if n > 1 else f"{lo}") if n else f"{lo} onwards"


def _markers(tag: str) -> tuple[str, str]:
    return f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"


def spliced(md_path: Path, tag: str) -> str:
    """The text between <!-- tag:begin --> and <!-- tag:end --> ("" when absent)."""
    text = md_path.read_text(encoding="utf-8") if md_path.is_file() else ""
    begin, end = _markers(tag)
    found = re.search(re.escape(begin) + r"(.*?)" + re.escape(end), text, flags=re.S)
    return found.group(1) if found else ""


def splice(md_path: Path, block: str, tag: str) -> None:
    """Replace the text between <!-- tag:begin --> and <!-- tag:end --> (appended when absent)."""
    text = md_path.read_text(encoding="utf-8") if md_path.is_file() else ""
    begin, end = _markers(tag)
    new = f"{begin}\n{block.rstrip()}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: new, text, flags=re.S)
    else:
        text += "\n" + new + "\n"
    with atomic_path(md_path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# --- the scaling plot --------------------------------------------------------------------------
def scaling_members(res: dict, names: list[str]) -> list[str]:
    if names:
        return [n for n in names if n in res["recipes"]]
    budget = [n for n, e in res["recipes"].items() if e.get("synthetic_token_share") is not None]
    parents = {res["recipes"][n]["tuned_like"] for n in budget} - {None}
    members = budget + [p for p in parents if p in res["recipes"]]
    return members or [n for n, e in res["recipes"].items() if e["train"]]


def scaling_plot(res: dict, names: list[str], path: Path | None = None) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    members = scaling_members(res, names)
    budget = any(res["recipes"][n].get("synthetic_token_share") is not None for n in members)
    xkey = "synthetic" if budget else "training"
    pts = [(res["recipes"][n]["tokens"].get(xkey) or 0, n) for n in members]
    pts = sorted((x, n) for x, n in pts if x > 0)
    kinds = probe_kinds(res)
    if not pts or not kinds:
        return None
    rows = [("accuracy", "closed-book accuracy (%)"), ("target_logprob", "target log-lik / token")]
    fig, axes = plt.subplots(2, len(kinds), figsize=(max(6, 4.2 * len(kinds)), 7), squeeze=False, sharex=True)
    base = res["recipes"].get(res.get("base") or "", {}).get("results", {})
    ref = res["recipes"].get(res.get("reference") or "", {}).get("results", {})
    for col, (ptype, label) in enumerate(kinds):
        for row, (key, ylabel) in enumerate(rows):
            ax = axes[row][col]
            got = [(x, n, res["recipes"][n]["results"].get(f"closed/{ptype}")) for x, n in pts]
            got = [(x, n, r) for x, n, r in got if r and r.get(key) is not None]
            if got:
                xs, ys = [x for x, _, _ in got], [r[key] for _, _, r in got]
                err = ([[r[key] - r["ci95"][0] for _, _, r in got], [r["ci95"][1] - r[key] for _, _, r in got]]
                       if key == "accuracy" else None)
                # a line only along one recipe's token budget: between different recipes it would invent a trend
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, color="tab:blue", label="closed-book",
                            ls="-" if budget else "none")
                for x, n, r in got:
                    ax.annotate(n, (x, r[key]), textcoords="offset points", xytext=(4, 4), fontsize=7)
            for results, setting, style, color, what in ((base, "closed", ":", "grey", "base, closed-book"),
                                                         (base, "rag", ":", "tab:orange", "base + RAG"),
                                                         (base, "oracle", "-", "black", "base + document"),
                                                         (ref, "closed", "--", "tab:red", f"{res.get('reference')}, closed-book")):
                r = results.get(f"{setting}/{ptype}")
                if r and r.get(key) is not None and not (results is ref and res.get("reference") in members):
                    ax.axhline(r[key], ls=style, color=color, lw=1, label=what)
            ax.set_xscale("log")
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(f"{label} probes", fontsize=10)
            if row == 1:
                ax.set_xlabel(f"{xkey} tokens" + (" (one epoch)" if budget else ""))
            if col == 0:
                ax.set_ylabel(ylabel)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig_b64(fig)


# --- HTML --------------------------------------------------------------------------------------
def _html_table(header: list[str], rows: list[list[str]], cls: str) -> str:
    clean = [[re.sub(r"\*\*(.*?)\*\*", r"\1", c).strip("`") for c in r] for r in rows]
    return html_table(header, clean, cls)


def html(res: dict, plot_b64: str | None) -> str:
    sp = res["split"]
    head = (f"<h1>entigraph study “{esc(res['study'])}”</h1><p class=\"sub\">written {esc(res['written'])} from "
            f"{esc(res['config'])}; reporting documents {esc(_range(sp['reporting']))}, tuning documents "
            f"{esc(_range(sp['tuning']) if sp['tuning'] else 'none')} ({esc(sp['check'])})</p>")
    v = verdicts(res)
    sections = [html_section("What the tests say", ("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in v) + "</ul>") if v
                         else html_note("No trained recipe with paired tests yet."), "verdicts")]
    body = ""
    for ptype, label in probe_kinds(res):
        gen = ptype.startswith("generated")
        title = f"{label[0].upper() + label[1:]} probes (n = {_n(res, ptype)})"
        body += f"<h3>{esc(title)}</h3>"
        if gen:
            body += f'<p class="generated"><b>Generated probes.</b> {esc(GENERATED)}</p>'
        body += _html_table(*comparison_rows(res, ptype), "comparison")
    body += html_note("Accuracy in %, 95 % bootstrap intervals; gap closed = share of the base model's closed-book → "
                  "oracle gap the recipe closes closed-book; McNemar: exact test on the probes where exactly one "
                  "of the two is right.")
    sections.append(html_section("Comparison", body, "comparison"))
    if plot_b64:
        sections.append(html_section("Scaling", f'<img alt="scaling plot" src="data:image/png;base64,{plot_b64}">', "scaling"))
    for title, (h, rows), anchor, note in (
            ("Target log-likelihood", loglik_rows(res), "loglik",
             "Closed-book; paired bootstrap interval of the mean difference; wins = probes where it rose."),
            ("Reading check", reading_rows(res), "reading",
             "Each trained model against the base model with the same context: learning the documents must not cost reading them."),
            ("Forgetting", forgetting_rows(res), "forgetting",
             "Mean token loss on general text no training saw; positive = the trained model models it worse.")):
        sections.append(html_section(title, _html_table(h, rows, anchor) + html_note(note) if rows else html_note("Nothing to show."), anchor))
    h, rows = tradeoff_rows(res)
    if rows:
        sections.append(html_section("In context, and over the interpolation weight", _html_table(h, rows, "tradeoff")
                                     + html_note("(1 - a) x base + a x trained; a = 0 is the base model, 1 the trained "
                                                 "one; paired tests against the base model with the same context."),
                                     "tradeoff"))
    h, rows = tuning_rows(res)
    tune = _html_table(h, rows, "tuning") if rows else html_note("No tuning runs.")
    tune += "".join(f"<p>{esc(n)}: {esc(fmt_point(t['chosen'] or {}))} — {esc(t['why'])}</p>" for n, t in res["tuning"].items())
    sections.append(html_section("Chosen hyperparameters and the tuning evidence", tune, "tuning"))
    if res.get("ranking"):
        h, rows = ranking_rows(res)
        sections.append(html_section("Generated against given probes",
                                 f'<p class="generated">{esc(GENERATED)}</p><p>{esc(ranking_sentence(res).replace("**", ""))}</p>'
                                 + _html_table(h, rows, "ranking"), "ranking"))
    h, rows = runs_rows(res)
    c = res.get("compute", {})
    note = (f"Machine time spent: {c.get('spent_seconds', 0) / 60:.0f} min; {c.get('reused_stages', 0)} of "
            f"{c.get('stages', 0)} stages reused from the stage cache (saving {c.get('saved_seconds', 0) / 60:.0f} min).")
    all_runs = [[n, r["role"], r["probes"], fmt_point(r["point"]), _stage_cell(r)] for n, r in res["runs"].items()]
    sections.append(html_section("Token budgets and wall time", _html_table(h, rows, "runs") + html_note(note)
                             + "<h3>Every run</h3>" + _html_table(["run", "role", "probes", "settings", "stage seconds"],
                                                                   all_runs, "all-runs"), "runs"))
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>entigraph study · "
            f"{esc(res['study'])}</title><style>{CSS}.generated{{background:#fff7e0;border-left:4px solid #c27c2c;"
            f"padding:8px 12px}}</style><script>{SCRIPT}</script></head><body><main>" + head + "".join(sections)
            + "</main></body></html>")


def _clean(obj):
    """JSON without NaN (null instead)."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write(res: dict, out_dir: Path, scaling: list[str], plot_path: Path | None = None) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = scaling_plot(res, scaling, plot_path)
    paths = {"html": out_dir / "study.html", "markdown": out_dir / "study.md", "json": out_dir / "study-results.json"}
    with atomic_path(paths["html"]) as tmp:
        tmp.write_text(html(res, plot), encoding="utf-8")
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text(markdown(res), encoding="utf-8")
    write_json(paths["json"], json.loads(json.dumps(_clean(res), default=str)))
    return paths
