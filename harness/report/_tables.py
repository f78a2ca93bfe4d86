"""The report's tables: top-K by bpc and by efficiency, the parameter summary, as CSV, Parquet, Markdown, LaTeX, HTML."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.parquet

TOP_COLUMNS = {
    "number": "trial", "model": "model", "hidden_dim": "hidden", "layers": "layers", "embedding_dim": "embed",
    "seq_len": "seq", "batch_size": "batch", "lr": "lr", "dropout": "dropout", "best_bpc": "bpc (bits/char)",
    "best_ppl": "perplexity", "device_seconds": "device (s)", "train_chars_per_s": "chars/s",
    "efficiency_bits_per_device_s": "efficiency (bits/char/device-s)", "energy_j": "energy (J)",
    "peak_mem_mib": "peak mem (MiB)",
}


def top_table(frame: pd.DataFrame, by: str, k: int) -> pd.DataFrame:
    done = frame[frame["state"] == "COMPLETE"].copy()
    done["peak_mem_mib"] = done["peak_mem_bytes"].astype(float) / 2**20
    ascending = by != "efficiency_bits_per_device_s"
    top = done.sort_values(by, ascending=ascending).head(k)
    columns = [c for c in TOP_COLUMNS if c in top.columns and top[c].notna().any()]
    return top[columns].rename(columns=TOP_COLUMNS)


MIN_EFFECT_TRIALS = 3  # a rank correlation of two points is always +-1


def param_summary(frame: pd.DataFrame, params: dict[str, dict]) -> pd.DataFrame:
    """Per sampled parameter: its best value, and how bpc moves with it (Spearman rho, or per-choice means)."""
    done = frame[frame["state"] == "COMPLETE"]
    rows = []
    for name, info in params.items():
        if name not in done.columns or done[name].isna().all():
            continue
        best = done.loc[done["best_bpc"].idxmin(), name]
        if info.get("kind") == "categorical":
            groups = done.groupby(name)["best_bpc"]
            means, sizes = groups.mean().sort_values(), groups.size()
            effect = "; ".join(f"{v}: {m:.3f} ({sizes[v]} trial{'s' if sizes[v] != 1 else ''})" for v, m in means.items())
            rows.append({"parameter": name, "best value": best, "trials": int(done[name].notna().sum()),
                         "effect on bpc": f"mean bpc by value: {effect}"})
        elif done[name].notna().sum() < MIN_EFFECT_TRIALS:
            rows.append({"parameter": name, "best value": best, "trials": int(done[name].notna().sum()),
                         "effect on bpc": f"too few complete trials where it acted to read an effect "
                                          f"({MIN_EFFECT_TRIALS} needed)"})
        else:
            rho = done[[name, "best_bpc"]].astype(float).corr(method="spearman").iloc[0, 1]
            rows.append({"parameter": name, "best value": best, "trials": int(done[name].notna().sum()),
                         "effect on bpc": f"Spearman rho {rho:+.2f} (range {done[name].min():.3g} to "
                                          f"{done[name].max():.3g})"})
    return pd.DataFrame(rows)


def write_tables(frame: pd.DataFrame, params: dict, out: Path, k: int, baseline: dict | None = None) -> list[Path]:
    """trials.csv/.parquet, the top tables and the parameter summary. A CSV has no place for metadata, so the
    count model's figures go beside it in trials.meta.json (and into the Parquet file's own metadata), and
    each trial's `val_bpc_minus_count_model` says by how much it beat (negative) or missed that figure."""
    files = []
    flat = frame.drop(columns=["start", "complete"]).assign(
        start=frame["start"].astype(str), complete=frame["complete"].astype(str))
    if baseline and "val_bpc" in flat:
        flat["val_bpc_minus_count_model"] = flat["val_bpc"].astype(float) - float(baseline["val_bpc"])
    meta = {"count_model": baseline, "columns": "one row per trial; bpc are bits per character",
            "unigram_val_bpc": (baseline or {}).get("unigram_val_bpc")}
    (out / "trials.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    flat.to_csv(out / "trials.csv", index=False)
    for column in flat.columns:  # Parquet needs one type per column; mixed object columns become text
        if flat[column].dtype == object:
            flat[column] = flat[column].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v))
                                            else str(v))
    table = pyarrow.Table.from_pandas(flat, preserve_index=False)
    schema_meta = {**(table.schema.metadata or {}), b"harness": json.dumps(meta).encode()}
    pyarrow.parquet.write_table(table.replace_schema_metadata(schema_meta), out / "trials.parquet")
    files += [out / "trials.csv", out / "trials.parquet", out / "trials.meta.json"]
    by_bpc, by_eff = top_table(frame, "best_bpc", k), top_table(frame, "efficiency_bits_per_device_s", k)
    md = [f"## Top {k} by held-out bits per character\n", markdown_table(by_bpc), "",
          f"## Top {k} by efficiency (bits per character saved over a uniform guess, per device-second)\n",
          markdown_table(by_eff), ""]
    (out / "top.md").write_text("\n".join(md))
    tex = [latex_table(by_bpc, f"Top {k} configurations by held-out bits per character."),
           latex_table(by_eff, f"Top {k} configurations by efficiency (bits per character saved per device-second).")]
    (out / "top.tex").write_text("\n\n".join(tex) + "\n")
    summary = param_summary(frame, params)
    summary.to_csv(out / "param_summary.csv", index=False)
    (out / "param_summary.md").write_text(markdown_table(summary) + "\n")
    files += [out / "top.md", out / "top.tex", out / "param_summary.csv", out / "param_summary.md"]
    return files


def _cell(v, column: str = "") -> str:
    """One way to write each number: bits per character with 3 decimals (a column named for bpc), other
    figures with 3 significant digits (thousands grouped), and a missing value as "-" (pandas' <NA> and
    NaT included, never printed as such)."""
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float | np.floating):
        v = float(v)
        if "bpc" in column:
            return f"{v:.3f}"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.2e}" if 0 < abs(v) < 1e-3 else f"{v:.3g}"
    return str(v)


def markdown_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_no finished trial_"
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(_cell(v, str(c)).replace("|", "\\|") for c, v in zip(df.columns, row, strict=True)) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def latex_table(df: pd.DataFrame, caption: str) -> str:
    def esc(text: str) -> str:
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                     ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}")):
            text = text.replace(a, b)
        return text

    lines = [r"\begin{table}[ht]", r"\centering", r"\small", r"\begin{tabular}{" + "r" * len(df.columns) + "}",
             r"\toprule", " & ".join(esc(str(c)) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(_cell(v, str(c))) for c, v in zip(df.columns, row, strict=True)) + r" \\"
              for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{esc(caption)}}}", r"\end{table}"]
    return "\n".join(lines)


def html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p>No finished trial.</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    kinds = ["n" if pd.api.types.is_numeric_dtype(df[c]) or df[c].map(_short).all() else "t" for c in df.columns]
    rows = "".join("<tr>" + "".join(f"<td class='{k}'>{html.escape(_cell(v, str(c)))}</td>"
                                    for k, c, v in zip(kinds, df.columns, row, strict=True))
                   + "</tr>" for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _short(value) -> bool:
    """A cell that reads as one token (a number, '#3', '-'): kept on one line; longer text wraps."""
    return len(_cell(value)) <= 12 and " " not in _cell(value)
