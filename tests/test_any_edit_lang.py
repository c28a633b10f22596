"""An edit stated in a language outside the identification languages (de, ru, ja) goes end to end:
memla-edit --lang and the harness's source_langs, on the tiny model. MEMLA attributes in the edit
language itself (its LSKN) and in the identification languages (their LIKN)."""
from __future__ import annotations

import json

import pytest
import yaml

from conftest_bench import bench_env, bench_model_dir, compose, read_rows  # noqa: F401
from memla_plugin.cli import edit as cli


@pytest.fixture
def tiny_hparams(tmp_path, qwen2_model, tiny_tok):
    model_dir = tmp_path / "tiny-qwen2"
    qwen2_model.save_pretrained(model_dir)
    tiny_tok.save_pretrained(model_dir)
    hp = yaml.safe_load(cli.find_hparams_file().read_text())
    hp.update(model_name=str(model_dir), attr_steps=4, lr=0.05, max_steps=10)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(hp))
    return path


@pytest.mark.parametrize("lang", ["de", "ru", "ja"])
def test_memla_edit_from_a_non_identification_language(tiny_hparams, tmp_path, capsys, lang):
    out = tmp_path / f"{lang}.json"
    assert cli.main(["--record", "4482", "--lang", lang, "--hparams", str(tiny_hparams), "--json", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"edit in {lang}, 12 languages" in err and f"attribution {lang} (1/4)" in err
    result = json.loads(out.read_text())
    stats = result["edit_stats"]
    assert result["request"]["edit_lang"] == lang and stats["edit_lang"] == lang
    assert set(stats["neurons_per_lang"]) == {lang, "en", "zh", "fr"}  # own attribution + identification languages
    assert stats["n_lskn"] <= stats["neurons_per_lang"][lang] and stats["n_lskn"] + stats["n_likn"] > 0
    assert set(result["after"]) == set(result["before"]) and len(result["after"]) == 12


def test_lskn_is_the_edit_language_minus_likn():
    from memla_plugin.neurons.sets import build_neuron_sets

    per_lang = {"de": {(0, 1), (0, 2), (1, 3)}, "en": {(0, 1), (1, 3), (2, 9)}, "zh": {(0, 1), (1, 3)},
                "fr": {(0, 1), (1, 3), (1, 4)}}
    sets = build_neuron_sets(per_lang, "de", ["en", "zh", "fr"])
    assert sets.likn == {0: [1], 1: [3]} and sets.lskn == {0: [2]}


@pytest.mark.parametrize("lang", ["de", "ja"])
def test_harness_source_language_outside_the_identification_languages(bench_env, lang):
    from memla_mkeb.report import write_report
    from memla_mkeb.runner import run_benchmark

    summary = run_benchmark(compose(bench_env.overrides("data.limit=2", f"source_langs=[{lang}]",
                                                        f"eval_langs=[en,{lang},ru]")))
    assert summary.errors == 0 and summary.restore_checks == 2
    rows = {r["key"]: r for r in read_rows(bench_env.run_dir)}
    row = rows[f"memla|{lang}|100"]
    assert row["status"] == "ok" and row["edit_stats"]["edit_lang"] == lang
    assert set(row["edit_stats"]["neurons_per_lang"]) == {lang, "en", "zh", "fr"}
    md = write_report([bench_env.run_dir], n_boot=20, plots=False).read_text(encoding="utf-8")
    from memla_plugin.languages import MKEB_LANGS

    shown = " ".join(sorted(["en", lang, "ru"], key=MKEB_LANGS.index))
    assert f"- Edit languages: {lang}; evaluation languages: {shown}" in md
    assert f"## Edit language {lang}" in md and f"| memla | {lang} | 2 | 2 | 0 | 0 | 2 |" in md
