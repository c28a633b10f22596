"""The tuning grid (one knob, the same number of points per method) and the selection rule, hand-checked.

Selection fixture, source en, evaluated in en and fr, view "others" = fr. Grid "m": knob k, values
[1, 2, 3] (weakest first), names m@1, m@2, m@3; parts (ES, PS, NS_cf) in fr:

    point  record 1          record 2          record 3 (only m@1 and m@2 have it)
    m@1    (1, 1, 1)         (0, 0, 1)         (1, 1, 1)
    m@2    (1, 1, 0.5)       (1, 1, 0.5)       (0, 0, 0)
    m@3    (1, 1, 0)         (1, 1, 0)         -

Common records {1, 2}. m@1: means (0.5, 0.5, 1) -> 3 / (2 + 2 + 1) = 0.6; m@2: (1, 1, 0.5) -> 3 / 4 = 0.75;
m@3: (1, 1, 0) -> 0. The rule picks m@2. Record 3 would have lowered m@2 to composite 0.5 and
raised m@1, which is why points are compared on the records they all have.
"""
from __future__ import annotations

import json

import pytest

from memla_mkeb.grid import Knob, default_grid_file, grid_catalog, load_grid, point_name, with_grid
from memla_mkeb.select import choose, main, select, select_method
from memla_mkeb.settings import BenchConfigError, resolve_methods


def _row(name: str, rid: int, fr: tuple, status: str = "ok", index: int = 0) -> dict:
    base, value = name.split("@")
    sc = {"ES": fr[0], "PS": fr[1], "NS_cf": fr[2]}
    return {"key": f"{name}|en|{rid}", "method": name, "source": "en", "record_id": str(rid), "status": status,
            "cfg_id": f"id-{name}", "grid_point": {"method": base, "knob": "k", "value": int(value), "index": index},
            "scores": {"en": {"ES": 1.0, "PS": 1.0, "NS_cf": 1.0}, "fr": sc}}


KNOB = Knob("m", "k", (1, 2, 3))
ROWS = [
    _row("m@1", 1, (1, 1, 1)), _row("m@1", 2, (0, 0, 1)), _row("m@1", 3, (1, 1, 1)),
    _row("m@2", 1, (1, 1, 0.5), index=1), _row("m@2", 2, (1, 1, 0.5), index=1), _row("m@2", 3, (0, 0, 0), index=1),
    _row("m@3", 1, (1, 1, 0), index=2), _row("m@3", 2, (1, 1, 0), index=2),
]


def test_shipped_grid_gives_every_method_the_same_number_of_points():
    knobs = load_grid()
    assert {k.method for k in knobs} >= {"memla", "rome", "memit", "ft_l", "ft_m", "lora"}
    assert {len(k.values) for k in knobs} == {3}
    names = [n for k in knobs for n in k.names()]
    assert len(names) == len(set(names)) == 3 * len(knobs)
    assert "memla@0.3" in names and "memit@15000" in names and "ft_l@5e-05" in names


def test_unequal_grid_is_refused_naming_the_method():
    grid = {"points_per_method": 3, "methods": {"memla": {"knob": "apply_scale", "values": [0.3, 0.5]}}}
    with pytest.raises(BenchConfigError, match=r"grid.methods.memla.values has 2 points"):
        load_grid(grid)
    with pytest.raises(BenchConfigError, match=r"grid.methods.lora: give knob"):
        load_grid({"points_per_method": 1, "methods": {"lora": {"values": [1]}}})


def test_grid_points_are_catalog_entries_with_the_knob_as_override():
    catalog = {"memla": {"kind": "memla", "alg_name": "MEMLA", "overrides": {"rank_per_neuron": 8}}}
    cat = grid_catalog([Knob("memla", "apply_scale", (0.3, 0.5, 1.0))], catalog)
    assert list(cat) == ["memla@0.3", "memla@0.5", "memla@1"]
    assert cat["memla@0.3"]["overrides"] == {"rank_per_neuron": 8, "apply_scale": 0.3}
    assert cat["memla@1"]["grid_point"] == {"method": "memla", "knob": "apply_scale", "value": 1.0, "index": 2}
    assert catalog["memla"]["overrides"] == {"rank_per_neuron": 8}  # the base entry is not touched
    assert grid_catalog([Knob("rome", "clamp_norm_factor", (1,))], catalog) == {}  # not in this catalog


def test_harness_resolves_grid_point_names(tmp_path):
    from memla_mkeb.app import compose_config

    cfg = compose_config([f"methods=[memla,{point_name('memla', 0.3)},{point_name('lora', 2)}]",
                          f"hparams_dir={tmp_path}"])
    specs = {s.name: s for s in resolve_methods(cfg)}
    assert specs["memla@0.3"].overrides == {"apply_scale": 0.3} and specs["memla@0.3"].alg_name == "MEMLA"
    assert specs["lora@2"].overrides == {"num_steps": 2} and specs["lora@2"].grid_point["knob"] == "num_steps"
    assert specs["memla@0.3"].to_json()["grid_point"]["value"] == 0.3
    assert "grid_point" not in specs["memla"].to_json()  # settings ids of plain methods unchanged
    assert with_grid({"x": {"kind": "memla"}}, None) == {"x": {"kind": "memla"}}


def test_rule_picks_the_highest_composite_on_common_records():
    choice = select_method(KNOB, {n: [r for r in ROWS if r["method"] == n] for n in KNOB.names()},
                           source="en", view="others", seed=0, n_boot=0)
    assert choice.records == ["1", "2"]
    comps = {p.name: p.composite.mean for p in choice.points}
    assert comps == pytest.approx({"m@1": 0.6, "m@2": 0.75, "m@3": 0.0})
    assert choice.chosen == "m@2"
    assert choice.chosen_point().parts == pytest.approx({"ES": 1.0, "PS": 1.0, "NS_cf": 0.5})


def test_ties_go_to_the_weaker_edit_and_failed_edits_leave_the_means():
    rows = [_row("m@1", 1, (1, 1, 0.5)), _row("m@2", 1, (1, 1, 0.5), index=1),
            _row("m@3", 1, (1, 1, 0.5), index=2), _row("m@3", 2, (0, 0, 0), status="error", index=2),
            _row("m@1", 2, (1, 1, 0.5)), _row("m@2", 2, (1, 1, 0.5), index=1)]
    [choice] = select(rows, [KNOB], seed=0, n_boot=0)
    assert [p.composite.mean for p in choice.points] == pytest.approx([0.75, 0.75, 0.75])
    assert choice.chosen == "m@1"
    m3 = choice.points[2]
    assert (m3.attempted, m3.edited, m3.composite.n) == (2, 1, 1)
    only_failed = [r for r in rows if r["method"] != "m@3" or r["status"] == "error"]
    assert choose(select(only_failed, [Knob("m", "k", (3,))], seed=0, n_boot=0)[0].points) is None


def test_select_command_prints_and_writes_the_choice(tmp_path, capsys):
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    grid = tmp_path / "grid.yaml"
    grid.write_text("points_per_method: 3\nmethods:\n  m: {knob: k, values: [1, 2, 3]}\n", encoding="utf-8")
    assert main([str(tmp_path), "--grid", str(grid), "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "m@2" in out and "-> m: k=2" in out
    sel = json.loads((tmp_path / "selection.json").read_text())
    assert sel["methods"]["m"]["chosen"] == {"name": "m@2", "value": 2}
    assert sel["methods"]["m"]["records"] == ["1", "2"] and sel["view"] == "others"
    assert main([str(tmp_path), "--grid", str(grid), "--source", "zh"]) == 2
    assert "no grid rows for source zh" in capsys.readouterr().err


def test_shipped_grid_file_is_the_config_group():
    assert default_grid_file().parent.name == "grid" and default_grid_file().is_file()


def test_report_lists_each_methods_grid_and_choice(tmp_path):
    from memla_mkeb.grid_sections import knobs_from_rows
    from memla_mkeb.report import write_report

    rows = [{**r, "kind": "easyedit", "record_index": int(r["record_id"]), "seed": 42, "edit_s": 1.0, "eval_s": 1.0,
             "restore": {"checked": 1, "restored": 1}} for r in ROWS]
    assert knobs_from_rows(rows) == [KNOB]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    text = write_report([tmp_path], tmp_path / "report.md", n_boot=0, plots=False).read_text(encoding="utf-8")
    section = text.split("## Tuning grid: each method's operating point")[1].split("\n## ")[0]
    assert "| m | k=2 | 2 | 2 | 75.0 [75.0, 75.0] | 100.0 | 100.0 | 50.0 | ✓ |" in section
    assert "| m | k=1 | 2 | 2 | 60.0 [60.0, 60.0] |" in section and "highest composite" in section
    assert (tmp_path / "report_files" / "tuning_grid.csv").read_text().count("\nen,m,k,") == 3
