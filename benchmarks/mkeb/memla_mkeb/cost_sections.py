"""The report's closing sections: what an edit cost (wall time, memory); the pictures are in :mod:`.figures`.

Same contract as :mod:`.sections`: markdown lines back, CSV tables and PNG files into ``files``.
"""
from __future__ import annotations

from . import costs
from .markdown import csv_bytes, gib, md_table, num, secs
from .report_data import ReportData, method_order

Files = dict[str, bytes]


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def _timing_row(d: ReportData, m: str, attr_index: dict) -> tuple[list[str], list, bool]:
    """One method's wall-time cells, its CSV row, and whether some of its edits read a cached attribution."""
    edited = d.attempted(m)
    e_s = sorted(float(r.get("edit_s") or 0.0) for r in edited)
    v_s = [float(r.get("eval_s") or 0.0) for r in edited if r.get("status") == "ok"]
    mean_e, med = sum(e_s) / len(e_s), _median(e_s)
    mean_v = sum(v_s) / len(v_s) if v_s else None
    cpu = [float(r["edit_cpu_s"]) for r in edited if r.get("edit_cpu_s") is not None]
    mean_cpu = sum(cpu) / len(cpu) if cpu else None
    hwm = "; ".join(sorted({str(r.get("hardware")) for r in edited}))
    ca = costs.with_cached_attribution(edited, attr_index)
    if ca.cached_edits:
        with_txt = secs(ca.mean_edit_s) if ca.complete else f"n/a ({ca.cached - ca.found} of {ca.cached} unmeasured)"
        cached_txt = f"{ca.cached_edits} ({ca.cached} language{'s' if ca.cached != 1 else ''})"
        with_num = num(ca.mean_edit_s, 3)
    else:
        cached_txt, with_txt, with_num = "0", "–", ""
    cells = [m, str(len(e_s)), secs(mean_e), secs(med), secs(sum(e_s)), secs(mean_cpu), secs(mean_v),
             cached_txt, with_txt, hwm]
    csv_row = [m, len(e_s), num(mean_e, 3), num(med, 3), num(sum(e_s), 3), num(mean_cpu, 3), num(mean_v, 3),
               ca.cached_edits, ca.cached, with_num, hwm]
    return cells, csv_row, bool(ca.cached_edits)


def sequence_timing(d: ReportData, files: Files) -> list[str]:
    """Wall time per edit of the sequences (``sequential.n``), per method, N and edit language.

    A sequence row holds its totals: edit time, the scoring right after each edit, and the scoring of
    every edit after the last one; each is shown per edit so that N = 10 and N = 50 read alike.
    """
    groups: dict[tuple[str, int, str], list[dict]] = {}
    for key in sorted(d.c.sequences):
        row = d.c.sequences[key]
        groups.setdefault((str(row["method"]), int(row["n"]), str(row["source"])), []).append(row)
    if not groups:
        return []
    table, csv_rows = [], []
    rank = {m: i for i, m in enumerate(method_order([m for m, _, _ in groups], d.kinds))}
    for (m, n, source), rows in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][2], rank[kv[0][0]])):
        edits = sum(len(r.get("steps") or []) for r in rows)
        if not edits:
            continue
        edit_s = sum(float(r.get("edit_s") or 0.0) for r in rows) / edits
        step_s = sum(float(r.get("eval_s") or 0.0) for r in rows) / edits
        final_s = sum(float((r.get("final") or {}).get("eval_s") or 0.0) for r in rows) / edits
        peaks = [float(r["row_peak_rss_mib"]) / 1024 for r in rows if r.get("row_peak_rss_mib") is not None]
        peak = max(peaks) if peaks else None
        resumed = sum(bool(r.get("resumed_at")) for r in rows)
        hw = "; ".join(sorted({str(r.get("hardware")) for r in rows}))
        table.append([m, str(n), source, str(len(rows)), str(edits), secs(edit_s), secs(step_s), secs(final_s),
                      gib(peak), str(resumed), hw])
        csv_rows.append([m, n, source, len(rows), edits, num(edit_s, 3), num(step_s, 3), num(final_s, 3),
                         num(peak), resumed, hw])
    files[f"{d.files_dir}/sequence_timing.csv"] = csv_bytes(
        ["method", "n", "source", "sequences", "edits", "edit_s_per_edit", "scoring_right_after_s_per_edit",
         "scoring_after_all_s_per_edit", "row_peak_gib_max", "sequences_resumed", "hardware"], csv_rows)
    return ["### Sequences\n",
            md_table(["method", "N", "edit language", "sequences", "edits", "edit s per edit",
                      "scoring right after, s per edit", "scoring after all N, s per edit", "peak GiB (max)",
                      "resumed in a later sitting", "hardware"], table),
            "",
            "A sequence's times are its totals over its edits divided by the number of edits. MEMLA attributes "
            "on the model the earlier edits left, so a sequence never reads the neuron cache and every edit "
            "includes its attribution. A sequence resumed in a later sitting (from its saved state) sums the "
            "edit and scoring times of every sitting; its peak memory is that of the sitting that finished it.\n"]


def wall_time(d: ReportData, files: Files) -> list[str]:
    """Per-edit wall and CPU time per method, with MEMLA's cached attributions added back."""
    md = ["## Per-edit wall time\n"]
    attr_index = costs.attribution_index(d.rows)
    measured = [_timing_row(d, m, attr_index) for m in d.methods
                if d.kinds.get(m) != "unedited" and d.attempted(m)]
    files[f"{d.files_dir}/timing.csv"] = csv_bytes(
        ["method", "edits", "edit_s_mean", "edit_s_median", "edit_s_total", "edit_cpu_s_mean", "eval_s_mean",
         "cached_attribution_edits", "cached_attributions", "edit_s_with_cached_attribution_mean", "hardware"],
        [r[1] for r in measured])
    sequences = sequence_timing(d, files)
    if not measured:
        return md + sequences if sequences else []
    md += [md_table(["method", "edits", "edit s (mean)", "edit s (median)", "edit s (total)",
                     "edit CPU s (mean)", f"evaluation s (mean, {len(d.targets)} languages)",
                     "edits with cached attribution", "edit s + cached attribution (mean)", "hardware"],
                    [r[0] for r in measured]), ""]
    ref_s = [float(r.get("eval_s") or 0.0) for r in d.c.unedited]
    ref_ids = {str(r.get("record_id")) for r in d.c.unedited}
    # a record evaluated again by another run dir (an ablation run on the same ids) counts each time
    ref_n = f"{len(ref_s)} records" if len(ref_ids) == len(ref_s) else f"{len(ref_s)} evaluations of {len(ref_ids)} records"
    ref_txt = f" (evaluation of the unedited model: {ref_n}, mean {secs(sum(ref_s) / len(ref_s))} s)" if ref_s else ""
    md.append("Wall time is what the run took on its machine (other jobs on a shared machine slow it); CPU s is "
              "the process's CPU time summed over its threads. The unedited model's scores are computed once per "
              f"record and reused for every method and edit language{ref_txt}.\n")
    if any(r[2] for r in measured):
        md.append("MEMLA rows share one attribution per record and language through the neuron cache: the first "
                  "row that needs it computes it, later rows (another edit language, an ablation) read it, and "
                  "their edit time leaves it out. \"edit s + cached attribution\" adds back, for each cached "
                  "language, the attribution time measured by the row of this report that computed it.\n")
    return md + sequences


def memory(d: ReportData, files: Files) -> list[str]:
    """Per-row peak resident memory per method (left out when no row measured it)."""
    peaks = {m: costs.row_peaks(d.attempted(m)) for m in d.methods}
    if not any(p.measured for p in peaks.values()):
        return []
    table, csv_rows = [], []
    for m, p in peaks.items():
        if p.rows:
            table.append([m, f"{p.measured} of {p.rows}", gib(p.mean_gib), gib(p.max_gib), gib(p.max_start_gib)])
            csv_rows.append([m, p.rows, p.measured, num(p.mean_gib), num(p.max_gib), num(p.max_start_gib)])
    files[f"{d.files_dir}/memory.csv"] = csv_bytes(
        ["method", "rows", "rows_measured", "row_peak_gib_mean", "row_peak_gib_max", "row_start_gib_max"], csv_rows)
    return ["## Peak memory\n",
            md_table(["method", "rows measured", "row peak GiB (mean)", "row peak GiB (max)",
                      "resident at row start GiB (max)"], table),
            "",
            "Resident memory (RSS) of the benchmark process. Each row resets the kernel's high-water mark "
            "before it starts, so a row's peak is its own (edit, evaluation and restore) and includes what was "
            "already resident: the model's weights, libraries, and caches the editors keep between edits. Rows "
            "from harness versions without this measurement are counted as not measured. One-time "
            "preparation before a method's first row (statistics, a MEND hypernetwork) is in no row.\n"]


__all__ = ["memory", "sequence_timing", "wall_time"]
