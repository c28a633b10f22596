"""memla-mkeb configuration: defaults, catalog, sharding, and one-line errors for bad values."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from conftest_bench import bench_env, bench_model_dir, compose  # noqa: F401
from memla_mkeb import settings
from memla_mkeb.app import CONF_DIR, run_task
from memla_mkeb.runner import plan_run


def test_defaults_are_the_readme_main_job():
    cfg = compose([])
    assert list(cfg.methods) == ["unedited", "memla", "rome", "memit", "ft_l"]
    assert list(cfg.source_langs) == ["en"] and cfg.eval_langs is None
    assert cfg.model.name_or_path == "default" and cfg.data.path == "default" and cfg.data.ids == "auto"
    assert cfg.shard.count == 1 and cfg.seed == 42
    assert cfg.run.malloc_mmap_threshold == 131072  # glibc: mid-size tensors mapped, freed to the OS
    assert cfg.run.drop_embedding_pages is True  # the restore check's read of the embedding is not kept resident
    assert settings.run_dir_name(cfg) == "runs/qwen2.5-coder-0.5b/dev-nall-seed42"
    specs = {s.name: s for s in settings.resolve_methods(cfg)}
    assert specs["memla"].kind == "memla" and specs["memla"].hparams.endswith("hparams/MEMLA/qwen2.5-0.5b.yaml")
    assert specs["rome"].needs_subject_slot and specs["rome"].alg_name == "ROME"
    assert specs["ft_l"].alg_name == "FT-L" and specs["ft_l"].hparams.endswith("hparams/FT/qwen2.5-0.5b-ft-l.yaml")
    for spec in specs.values():  # the default job's hparams files are in the repository
        assert spec.hparams is None or Path(spec.hparams).is_file(), spec.hparams


@pytest.mark.parametrize("choice, keys", [
    ("sequential=single", "sequential.n=null"), ("sequential=n10", "sequential.n=10"),
    ("sequential=n50", "sequential.n=50"), ("batch=single", "batch.size=null"), ("batch=size1", "batch.size=1"),
    ("batch=size8", "batch.size=8"), ("batch=size32", "batch.size=32"),
    ("perplexity=skip", "perplexity.enabled=false"), ("perplexity=heldout", "perplexity.enabled=true"),
])
def test_sequential_batch_and_perplexity_options_are_their_keys(choice, keys):
    # the group options name the published settings; the keys stay the way to ask for any other
    by_choice, by_keys = compose([choice]), compose([keys])
    assert OmegaConf.to_container(by_choice, resolve=True) == OmegaConf.to_container(by_keys, resolve=True)
    assert settings.run_dir_name(by_choice) == settings.run_dir_name(by_keys)


def test_single_edits_without_perplexity_by_default():
    cfg = compose([])
    assert cfg.sequential.n is None and cfg.batch.size is None and cfg.perplexity.enabled is False
    assert compose(["perplexity=heldout", "perplexity.last=20"]).perplexity.last == 20


def test_catalog_has_every_method_of_the_issue():
    cfg = compose(["methods=[unedited,memla,memla_no_mask,memla_no_lse,memla_no_lie,memla_scale0p3,"
                   "memla_scale1p0,rome,memit,mend,ft_l,ft_m,lora]"])
    specs = {s.name: s for s in settings.resolve_methods(cfg)}
    assert specs["memla_no_mask"].overrides == {"use_masks": False}
    assert specs["memla_no_lse"].overrides == {"use_language_specific": False}
    assert specs["memla_no_lie"].overrides == {"use_language_independent": False}
    assert [specs[f"memla_scale{x}"].overrides["apply_scale"] for x in ("0p3", "1p0")] == [0.3, 1.0]
    assert specs["ft_m"].alg_name == "FT-M" and specs["ft_m"].hparams.endswith("FT/qwen2.5-0.5b-ft-m.yaml")
    assert {specs[n].kind for n in ("rome", "memit", "mend", "ft_l", "ft_m", "lora")} == {"easyedit"}


def test_ig5_entry_is_the_paper_file_with_five_steps():
    """memla_ig5 (benchmarks/perf/README.md) = the faithful hparams with attr_steps 5, as the shipped preset file says."""
    cfg = compose(["methods=[memla,memla_ig5]"])
    specs = {s.name: s for s in settings.resolve_methods(cfg)}
    assert specs["memla_ig5"].hparams == specs["memla"].hparams and specs["memla_ig5"].overrides == {"attr_steps": 5}
    preset_file = Path(__file__).resolve().parents[1] / "hparams" / "MEMLA" / "qwen2.5-0.5b-ig5.yaml"
    preset = yaml.safe_load(preset_file.read_text(encoding="utf-8"))
    assert preset["attr_steps"] == 5


def test_memla_ablation_overrides_reach_the_hparams(bench_env):
    from memla_mkeb.methods import build_hparams

    cfg = compose(bench_env.overrides("methods=[memla_no_lie,memla_scale1p0]"))
    hps = [build_hparams(s, "cpu") for s in settings.resolve_methods(cfg)]
    assert hps[0].use_language_independent is False and hps[0].attr_steps == 2
    assert hps[1].apply_scale == 1.0


def test_shipped_data_and_languages_agree():
    from memla_plugin.mkeb import LANGS

    assert tuple(LANGS) == settings.MKEB_LANGS
    cfg = compose(["methods=[unedited]"])
    path, ids = settings.data_paths(cfg)
    assert path.name == "counterfact_mkeb.json" and ids == "dev"
    # with a user file the shipped dev list does not apply
    cfg = compose(["methods=[unedited]", f"data.path={path}"])
    assert settings.data_paths(cfg)[1] is None and settings.data_name(cfg) == "counterfact_mkeb"


@pytest.mark.parametrize("mode", ["contiguous", "strided"])
@pytest.mark.parametrize("n,count", [(10, 3), (3, 2), (2, 4), (7, 1)])
def test_shards_partition_the_records(n, count, mode):
    items = list(range(n))
    parts = [settings.shard_slice(items, i, count, mode) for i in range(count)]
    assert sorted(x for p in parts for x in p) == items
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    if mode == "contiguous":
        assert [x for p in parts for x in p] == items
    assert settings.shard_tag(0, 1) == "" and settings.shard_tag(1, 3) == ".shard1of3"


BAD = [
    (["methods=[unedited,foo]"], "unknown method 'foo' in methods; known: "),
    (["source_langs=[en,xx]"], "unknown language 'xx' in source_langs"),
    (["eval_langs=[en,qq]"], "unknown language 'qq' in eval_langs"),
    (["data.path=/nonexistent/mkeb.json"], "data file not found: data.path=/nonexistent/mkeb.json"),
    (["shard.count=2", "shard.index=2"], "shard.index=2 must be in 0..1"),
    (["shard.mode=random"], "shard.mode='random' unknown"),
    (["data.limit=0"], "data.limit=0 must be at least 1"),
    (["model.hparams_name=nope"], "hparams file for method 'memla' not found"),
    (["data.ids=/nonexistent/ids.txt"], "id file not found: data.ids=/nonexistent/ids.txt"),
    (["run.malloc_mmap_threshold=-1"], "run.malloc_mmap_threshold=-1: give a size in bytes"),
    (["run.malloc_mmap_threshold=big"], "run.malloc_mmap_threshold='big': give a size in bytes"),
    (["run.drop_embedding_pages=sometimes"], "run.drop_embedding_pages='sometimes': give true or false"),
    # types and choices from the structured configs (memla_mkeb/schema.py)
    (["eval.batch_size=many"], "eval.batch_size='many': give an integer"),
    (["run.restore_check=md5"], "run.restore_check='md5' unknown; use sha256, exact or checksum"),
    (["+run.restore=exact"], "run.restore is not a setting; run has drop_embedding_pages, host_output"),
]


@pytest.mark.parametrize("extra,message", BAD, ids=[b[1].split()[0] + str(i) for i, b in enumerate(BAD)])
def test_bad_config_values_give_one_line_errors(bench_env, capsys, extra, message):
    assert run_task(compose(bench_env.overrides(*extra))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("memla-mkeb: error: ") and message in err, err
    assert not bench_env.run_dir.exists()  # nothing written for a rejected config


def test_bad_config_from_the_command_line_has_no_traceback(tmp_path):
    for args, needle in ((["methods=[unedited,foo]"], "'foo'"), (["source_langs=[xx]"], "'xx'"),
                         ([f"data.path={tmp_path / 'missing.json'}"], "missing.json")):
        proc = subprocess.run([sys.executable, "-m", "memla_mkeb.app", f"run_dir={tmp_path / 'r'}", *args],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and needle in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no stray Hydra output dirs in the cwd


def test_slurm_launcher_config_extends_submitit():
    conf = yaml.safe_load((CONF_DIR / "hydra" / "launcher" / "slurm.yaml").read_text())
    assert conf["defaults"] == ["submitit_slurm"]
    assert conf["gpus_per_node"] == 1 and "timeout_min" in conf and "partition" in conf


def test_plan_selects_dev_subset_and_limit(bench_env):
    plan = plan_run(compose(bench_env.overrides("data.limit=3", "shard.count=2", "shard.index=1")))
    assert plan.all_ids == ["100", "101", "102"] and [str(r.example_id) for r in plan.records] == ["102"]
    assert plan.tag == ".shard1of2" and Path(plan.run_dir) == bench_env.run_dir
