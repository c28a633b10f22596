"""Operating points: the pinned files checked against the dev selection, and the report citing it by hash.

A tiny catalog (memla with its file, a variant with overrides, rome) and selection stand in for the real ones;
the report reads rows and plans written here by hand.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from memla_mkeb.operating_points import OperatingPointError, build, main
from memla_mkeb.report import write_report
from memla_mkeb.settings import file_sha256

CATALOG = {
    "memla": {"kind": "memla", "alg_name": "MEMLA", "hparams": "{hparams_dir}/MEMLA/{model}.yaml"},
    "memla_no_mask": {"kind": "memla", "alg_name": "MEMLA", "hparams": "{hparams_dir}/MEMLA/{model}.yaml",
                      "overrides": {"use_masks": False}},
    "rome": {"kind": "easyedit", "alg_name": "ROME"},
}


def _point(name: str, value: float, mean: float) -> dict:
    return {"name": name, "value": value, "composite": {"n": 4, "mean": mean, "lo": mean - 0.1, "hi": mean + 0.1}}


SELECTION = {"rule": "highest composite", "source": "en", "view": "others", "methods": {
    "memla": {"knob": "apply_scale", "records": ["1", "2", "3", "4"], "chosen": {"name": "memla@0.5", "value": 0.5},
              "points": [_point("memla@0.3", 0.3, 0.4), _point("memla@0.5", 0.5, 0.532)]},
    "rome": {"knob": "clamp_norm_factor", "records": ["1", "2"], "chosen": {"name": "rome@4", "value": 4},
             "points": [_point("rome@2", 2, 0.5), _point("rome@4", 4, 0.644)]},
}}


@pytest.fixture
def pinned(tmp_path) -> Path:
    hp = tmp_path / "series" / "hparams"
    (hp / "MEMLA").mkdir(parents=True)
    (hp / "ROME").mkdir()
    (hp / "MEMLA" / "m.yaml").write_text("alg_name: MEMLA\napply_scale: 0.5\n", encoding="utf-8")
    (hp / "ROME" / "m.yaml").write_text("alg_name: ROME\nclamp_norm_factor: 4\n", encoding="utf-8")
    return hp


def test_build_cites_the_selection_and_hashes_the_pinned_files(pinned):
    doc = build(SELECTION, pinned, selection_path="dev/selection.json", model_key="m", catalog=CATALOG,
                also={"memla_no_mask": "the paper's ablation"})
    memla = doc["methods"]["memla"]
    assert memla["hparams_sha"] == file_sha256(pinned / "MEMLA" / "m.yaml")[:16]
    assert (memla["knob"], memla["value"], memla["chosen_by"], memla["dev_records"]) == \
        ("apply_scale", 0.5, "dev/selection.json", 4)
    assert memla["dev_composite"]["mean"] == 0.532 and [p["value"] for p in memla["points"]] == [0.3, 0.5]
    assert doc["methods"]["memla_no_mask"] == {"hparams": (pinned / "MEMLA" / "m.yaml").as_posix(),
                                               "hparams_sha": memla["hparams_sha"], "overrides": {"use_masks": False},
                                               "chosen_by": "the paper's ablation"}


def test_a_pinned_value_other_than_the_choice_is_refused(pinned, tmp_path, capsys):
    (pinned / "ROME" / "m.yaml").write_text("alg_name: ROME\nclamp_norm_factor: 2\n", encoding="utf-8")
    with pytest.raises(OperatingPointError, match=r"rome: .*clamp_norm_factor=2.*chose 4"):
        build(SELECTION, pinned, selection_path="s.json", model_key="m", catalog=CATALOG)
    sel = tmp_path / "selection.json"
    sel.write_text(json.dumps(SELECTION), encoding="utf-8")
    out = tmp_path / "op.json"
    assert main(["--selection", str(sel), "--hparams-dir", str(pinned), "--out", str(out), "--model", "nope"]) == 2
    assert "hparams file" in capsys.readouterr().err and not out.exists()


def _row(method: str, rid: int) -> dict:
    scores = {lang: {"ES": 1.0, "PS": 1.0, "NS_cf": 1.0} for lang in ("en", "fr")}
    return {"key": f"{method}|en|{rid}", "method": method, "kind": CATALOG.get(method, {}).get("kind", "unedited"),
            "source": "en", "record_id": str(rid), "record_index": rid, "status": "ok", "scores": scores, "seed": 42,
            "cfg_id": method, "hardware": "CPU: test", "edit_s": 1.0, "eval_s": 1.0,
            "restore": {"checked": 1, "restored": 1}, "protocol": 2, "code": {"commit": "c" * 40, "dirty": False}}


def test_report_cites_each_methods_selection_and_checks_the_hash(pinned):
    series = pinned.parent
    doc = build(SELECTION, pinned, selection_path="dev/selection.json", model_key="m", catalog=CATALOG)
    (series / "operating_points.json").write_text(json.dumps(doc), encoding="utf-8")
    run = series / "en"
    run.mkdir()
    methods = ["unedited", "memla", "memla_no_mask", "rome", "ft_l"]  # ft_l: rows, but no plan names it
    (run / "results.jsonl").write_text("".join(json.dumps(_row(m, r)) + "\n" for m in methods for r in (1, 2)),
                                       encoding="utf-8")
    sha = doc["methods"]["memla"]["hparams_sha"]
    plan = {"settings": {"methods": {
        "unedited": {"kind": "unedited", "hparams": None, "overrides": {}},
        "memla": {"kind": "memla", "hparams": sha, "overrides": {}},
        "memla_no_mask": {"kind": "memla", "hparams": sha, "overrides": {"use_masks": False}},
        "rome": {"kind": "easyedit", "hparams": "0123456789abcdef", "overrides": {}}}}}
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    md = write_report([run], n_boot=50, seed=0).read_text(encoding="utf-8")
    section = md.split("## Operating points\n", 1)[1].split("\n## ", 1)[0]
    assert f"From `{(series / 'operating_points.json').as_posix()}`" in section
    assert "| memla | apply_scale=0.5 | 53.2 [43.2, 63.2] | dev/selection.json | ✓ |" in section
    assert "| memla_no_mask | memla's: apply_scale=0.5; use_masks=false | – | as memla | ✓ |" in section
    # rome's rows were made with another file than the one the selection is cited for
    assert "| rome | clamp_norm_factor=4 | 64.4 [54.4, 74.4] | dev/selection.json | differs: 0123456789abcdef |" \
        in section
    assert "unedited |" not in section
    assert "| ft_l | – | – | no plan file of these run dirs names it, so its settings are not checked | – |" in section
