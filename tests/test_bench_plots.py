"""The report's pictures: readable shapes, every method named, the same bytes on every run.

Each figure is read back from its matplotlib objects before it is saved (``plots.check_figure``):
its width / height must lie within ``plots.ASPECT_BOUNDS`` and every method it was given must be
one of its texts (legend entry, tick label, group label or point label). The report test spies on
that check, so it covers every PNG the report writes, and reads each PNG's own pixel size back.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from memla_mkeb import plots
from memla_mkeb.collect import ReportError, collect
from memla_mkeb.figures import glance_points, method_groups
from memla_mkeb.report import build
from memla_mkeb.stats import Estimate

LANGS = ("en", "zh", "fr", "de", "it", "es", "pt", "pl", "ru", "ja", "ko", "th")
BASELINES = ("memla", "rome", "memit", "mend", "ft_l", "ft_m", "lora")


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _est(v: float, half: float = 0.05) -> Estimate:
    return Estimate(10, v, max(0.0, v - half), min(1.0, v + half))


def _panel(metric: str, methods: tuple[str, ...], scale: float) -> plots.Panel:
    cells = {m: {t: _est(scale * ((i + 3 * k) % 10) / 10) for i, t in enumerate(LANGS)} for k, m in enumerate(methods)}
    return plots.Panel(f"{metric}: test", cells, {m: _est(0.4) for m in methods},
                       {t: scale * 0.3 for t in LANGS})


def _in_bounds(w: int, h: int) -> bool:
    lo, hi = plots.ASPECT_BOUNDS
    return lo <= w / h <= hi


def test_language_panels_names_every_method_within_bounds_and_reproducibly(tmp_path):
    panels = [_panel(x, BASELINES, s) for x, s in (("ES", 1.0), ("PS", 1.0), ("NS", 0.05), ("MQ", 0.15), ("loc", 1))]
    drawn = plots.language_panels(tmp_path / "a.png", panels, BASELINES, LANGS, "en", "seven editors")
    assert set(BASELINES) | {"unedited", "edit language (en)"} <= {
        line for t in drawn.texts for line in t.split("\n")}
    assert set(LANGS) <= drawn.texts  # every language code is a tick label
    assert "NS: test  (axis up to 10%)" in drawn.texts and "MQ: test  (axis up to 20%)" in drawn.texts
    data = (tmp_path / "a.png").read_bytes()
    assert png_size(data) == (drawn.width_px, drawn.height_px) and _in_bounds(*png_size(data))
    plots.language_panels(tmp_path / "b.png", panels, BASELINES, LANGS, "en", "seven editors")
    assert (tmp_path / "b.png").read_bytes() == data


def test_pareto_figure_labels_methods_and_knob_points(tmp_path):
    pts: list[dict[str, Any]] = [{"method": "unedited", "x": 1.0, "x_lo": 1.0, "x_hi": 1.0, "y": 0.3, "y_lo": 0.2,
                                  "y_hi": 0.4, "curve": None, "is_reference": True}]
    for k, m in enumerate(BASELINES + ("memla_fast", "ike", "memla_r8", "grace")):
        x, y = (0.1 + 0.07 * k) % 1.0, (0.9 - 0.05 * k) % 1.0
        pts.append({"method": m, "x": x, "x_lo": x - 0.03, "x_hi": None, "y": y, "y_lo": y - 0.05,
                    "y_hi": y + 0.05, "curve": None, "is_reference": False})
    pts[2]["curve"] = [(0.9, 0.2, "lr=1e-5"), (0.6, 0.5, "lr=1e-4"), (0.3, 0.8, "lr=1e-3")]
    drawn = plots.pareto_figure(pts, tmp_path / "p.png", "test")
    assert {p["method"] for p in pts} | {"lr=1e-5", "lr=1e-4", "lr=1e-3"} <= drawn.texts
    data = (tmp_path / "p.png").read_bytes()
    assert png_size(data) == (drawn.width_px, drawn.height_px) and _in_bounds(*png_size(data))
    plots.pareto_figure(pts, tmp_path / "q.png", "test")
    assert (tmp_path / "q.png").read_bytes() == data


def test_pareto_figure_names_a_method_it_cannot_place(tmp_path):
    pts = [{"method": "memla", "x": 0.6, "x_lo": 0.5, "x_hi": 0.7, "y": 0.4, "y_lo": 0.3, "y_hi": 0.5,
            "curve": None, "is_reference": False},
           {"method": "ike", "x": None, "x_lo": None, "x_hi": None, "y": 0.2, "y_lo": None, "y_hi": None,
            "curve": None, "is_reference": False}]
    drawn = plots.pareto_figure(pts, tmp_path / "n.png", "one missing")
    assert "memla" in drawn.texts and "no value to draw:\nike" in drawn.texts


def test_heatmap_of_one_edit_language_is_no_strip(tmp_path):
    drawn = plots.heatmap(tmp_path / "h.png", {"en": {t: 0.5 for t in LANGS}}, ["en"], LANGS, "one row")
    assert _in_bounds(drawn.width_px, drawn.height_px)
    assert png_size((tmp_path / "h.png").read_bytes()) == (drawn.width_px, drawn.height_px)


def test_a_figure_failing_the_read_back_is_not_written(tmp_path):
    with pytest.raises(ReportError, match=r"wide.png: aspect 1000x200 px outside"):
        with plots._figure(tmp_path / "wide.png", (10.0, 2.0)) as (fig, ax):
            ax.plot([0, 1], [0, 1])
    with pytest.raises(ReportError, match="unnamed.png: method.s. rome not named"):
        with plots._figure(tmp_path / "unnamed.png", (6.0, 4.0), ["memla", "rome"]) as (fig, ax):
            ax.plot([0, 1], [0, 1], label="memla")
            ax.legend()
            ax.text(0.5, 0.5, "rome").set_visible(False)  # a hidden text names nothing
    assert not (tmp_path / "wide.png").exists() and not (tmp_path / "unnamed.png").exists()


def test_method_groups_keep_ablations_and_presets_apart():
    kinds = {"unedited": "unedited", "memla": "memla", "memla_no_mask": "memla", "memla_scale0p3": "memla",
             "memla_fast": "memla", "rome": "easyedit", "ike": "easyedit"}
    assert method_groups(list(kinds), kinds) == [
        ("baselines", ["memla", "rome", "ike"]), ("ablations", ["memla", "memla_no_mask", "memla_scale0p3"]),
        ("presets", ["memla", "memla_fast"])]
    assert method_groups(["unedited", "rome"], kinds) == [("baselines", ["rome"])]


# --------------------------------------------------------------------------- every picture of a report

KINDS = {"unedited": "unedited", "memla": "memla", "memla_no_lse": "memla", "memla_fast": "memla",
         "rome": "easyedit", "ft_l": "easyedit", "lora": "easyedit", "memla_fast_no_cache": "memla"}
SOURCES = {"en": list(KINDS), "zh": ["unedited", "memla", "rome", "lora"]}


def _scores(m: str, source: str, i: int) -> dict[str, dict[str, float]]:
    k = list(KINDS).index(m)
    return {t: {"ES": float((i + k + (t == source)) % 3 > 0), "PS": ((i * k) % 4) / 4, "NS": 0.05 * (i % 2),
                "MQ": 0.0, "rel_acc": 0.5, "gen_acc": 0.5, "loc_acc": 1.0 - 0.1 * k, "port_acc": 0.0}
            for t in LANGS[:5]}


def _write_run(root: Path) -> Path:
    rows = [{"key": f"{m}|{s}|{i}", "method": m, "kind": KINDS[m], "source": s, "record_id": str(i),
             "record_index": i, "status": "ok", "error": None, "seed": 0, "cfg_id": f"cfg-{m}", "hardware": "CPU",
             "edit_s": 1.0, "eval_s": 0.5, "restore": {"checked": 1, "restored": 1}, "scores": _scores(m, s, i)}
            for s, ms in SOURCES.items() for m in ms for i in range(6)]
    plan = {"data_ids": None, "data_meta": {}, "data_path": "tiny.json",
            "methods": [{"name": m, "kind": k, "overrides": {}} for m, k in KINDS.items()],
            "model": {"name": "tiny", "name_or_path": "tiny", "device": "cpu", "dtype": None}}
    run = root / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), "utf-8")
    (run / "plan.json").write_text(json.dumps(plan, sort_keys=True), "utf-8")
    return run


def test_every_report_picture_is_checked_in_bounds_and_names_its_methods(tmp_path, monkeypatch):
    seen: dict[str, tuple[list[str], frozenset[str]]] = {}
    real = plots.check_figure

    def spy(fig: Any, names: Any, where: str) -> Any:
        out = real(fig, names, where)
        seen[Path(where).name] = (list(names), out[2])
        return out

    monkeypatch.setattr(plots, "check_figure", spy)
    c = collect([_write_run(tmp_path)])
    rep = build(c, tmp_path / "report.md", n_boot=50, seed=0)
    pngs = {Path(k).name: v for k, v in rep.files.items() if k.endswith(".png")}
    assert set(pngs) == set(seen) and "at_a_glance.png" in pngs
    for name, data in pngs.items():
        assert _in_bounds(*png_size(data)), name
        names, texts = seen[name]
        assert all(any(n in t.split("\n") for t in texts) for n in names), name
    # which figure holds which editors: ablations and presets apart from the baselines
    assert seen["languages_en_baselines.png"][0] == ["memla", "rome", "ft_l", "lora", "unedited"]
    assert seen["languages_en_ablations.png"][0] == ["memla", "memla_no_lse", "unedited"]
    assert seen["languages_en_presets.png"][0] == ["memla", "memla_fast", "memla_fast_no_cache", "unedited"]
    assert seen["languages_zh_baselines.png"][0] == ["memla", "rome", "lora", "unedited"]
    assert "languages_zh_ablations.png" not in pngs
    # the preset's own ablation stays in the presets figure, out of the at-a-glance one
    assert seen["at_a_glance.png"][0] == ["unedited", "memla", "rome", "ft_l", "lora", "memla_fast"]
    md = rep.markdown
    assert ("MEMLA's ablations and the presets' own ablations are left out here (they have figures of their own "
            "under Plots)") in md
    assert md.index("## At a glance") < md.index("## Runs and hardware")
    assert "](report_files/at_a_glance.png)" in md and "x: locality as loc_acc in the other evaluation" in md


def test_glance_points_read_the_others_view_estimates(tmp_path):
    from memla_mkeb.report_data import ReportData
    from memla_mkeb.invocation import Invocation

    c = collect([_write_run(tmp_path)])
    out = tmp_path / "r.md"
    d = ReportData.load(c, out, n_boot=50, seed=0, plots=True, shown=Invocation.of(c.run_dirs, out))
    (ref, rome) = glance_points(d, "en", ["unedited", "rome"])
    assert ref["is_reference"] and not rome["is_reference"]
    e = d.ests[("rome", "en", "loc_acc", "others")]
    assert (rome["x"], rome["x_lo"], rome["x_hi"]) == (e.mean, e.lo, e.hi)
    assert rome["x"] == pytest.approx(1.0 - 0.1 * list(KINDS).index("rome"))
    assert rome["y"] == d.ests[("rome", "en", "ES", "others")].mean


@pytest.mark.parametrize("n_methods,n_panels", [(20, 1), (1, 8)])
def test_language_panels_stay_in_bounds_at_the_extremes(tmp_path, n_methods, n_panels):
    methods = tuple(f"m{k}" for k in range(n_methods))
    panels = [_panel(f"X{i}", methods, 1.0) for i in range(n_panels)]
    drawn = plots.language_panels(tmp_path / "x.png", panels, methods, LANGS, "en", "extreme")
    assert _in_bounds(drawn.width_px, drawn.height_px)


def test_language_panels_without_an_unedited_run_claim_no_reference(tmp_path):
    panel = _panel("ES", ("memla", "rome"), 1.0)
    bare = plots.Panel(panel.title, panel.cells, panel.others, {})
    drawn = plots.language_panels(tmp_path / "r.png", [bare], ("memla", "rome"), LANGS, "en", "no reference")
    assert "unedited" not in drawn.texts and "edit language (en)" in drawn.texts


def test_glance_prefers_the_composite_locality_only_when_every_editor_has_it():
    from types import SimpleNamespace

    from memla_mkeb.composite import LOCALITY_METRIC
    from memla_mkeb.figures import glance_choice

    methods = ["unedited", "memla", "rome"]
    kinds = {"unedited": "unedited", "memla": "memla", "rome": "easyedit"}

    def data(with_cf: list[str]) -> Any:
        ests = {(m, "en", x, "others"): _est(0.5) for m in methods for x in ("ES", "loc_acc")}
        ests.update({(m, "en", LOCALITY_METRIC, "others"): _est(0.7) for m in with_cf})
        return SimpleNamespace(methods=methods, kinds=kinds, sources=["en"], ests=ests, has=lambda m, s: True)

    source, x, points = glance_choice(data(methods))
    assert (source, x, [p["method"] for p in points]) == ("en", LOCALITY_METRIC, methods)
    assert points[0]["is_reference"] and points[1]["x"] == 0.7
    # one editor without it (rows of the first protocol): the whole picture falls back to loc_acc
    assert glance_choice(data(["unedited", "memla"]))[1] == "loc_acc"


def test_language_bars_average_the_rows_the_tables_average(tmp_path):
    """A failed edit and a skipped row: each bar's mean is the by_record mean of that language."""
    from memla_mkeb import figures
    from memla_mkeb.invocation import Invocation
    from memla_mkeb.report_data import ReportData
    from memla_mkeb.stats import by_record

    run = _write_run(tmp_path)
    lines = (run / "results.jsonl").read_text("utf-8").splitlines()
    rows = [json.loads(x) for x in lines]
    for r in rows:
        if r["method"] == "rome" and r["source"] == "en" and r["record_id"] in ("1", "2"):
            r["status"] = "error" if r["record_id"] == "1" else "skipped"
    (run / "results.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), "utf-8")
    c = collect([run])
    out = tmp_path / "r.md"
    d = ReportData.load(c, out, n_boot=50, seed=0, plots=True, shown=Invocation.of(c.run_dirs, out))
    cells = figures._cells(d, "rome", "en", "ES")
    for t in LANGS[:5]:
        vals = by_record(d.grouped[("rome", "en")], t, "ES", "e2e")
        assert cells[t].n == len(vals) and cells[t].mean == pytest.approx(sum(vals.values()) / len(vals))
    # the edit language's bar is the table's edit→edit mean
    assert cells["en"].mean == pytest.approx(d.ests[("rome", "en", "ES", "e2e")].mean)
