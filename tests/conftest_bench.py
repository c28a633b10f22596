"""Fixtures and helpers of the benchmark-harness tests (imported by tests/test_bench_*.py).

``bench_env`` lays out everything a harness run needs in a temp dir, offline and small:
a tiny Qwen2 saved with its tokenizer (so ``model=hf model.name_or_path=DIR`` loads it
through ``memla_plugin.models.load_model``, also from a subprocess), a tiny 12-language
MKEB file, and MEMLA hparams with few attribution/training steps.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

LANGS = ("en", "zh", "fr", "de", "it", "es", "pt", "pl", "ru", "ja", "ko", "th")

# (subject, relation template, true, new, neighbour prompt, neighbour answer, multi-hop q, multi-hop a)
FACTS = [
    ("France", "The capital of {} is", "Paris", "Rome", "The capital of Italy is", "Rome",
     "The country whose capital is the capital of France is", "Italy"),
    ("Germany", "The capital of {} is", "Berlin", "Madrid", "The capital of France is", "Paris",
     "The language spoken in the capital of Germany is", "Spanish"),
    ("Italy", "The capital of {} is", "Rome", "Tokyo", "The capital of Germany is", "Berlin",
     "The continent of the capital of Italy is", "Asia"),
    ("Toyota", "{} is produced by", "Japan", "France", "Apple was founded by", "Steve Jobs",
     "The capital of the country that produces Toyota is", "Paris"),
    ("Danielle Darrieux", "The mother tongue of {} is", "French", "Italian", "The Eiffel Tower is located in",
     "Paris", "The country of the mother tongue of Danielle Darrieux is", "Italy"),
    ("The Eiffel Tower", "{} is located in", "Paris", "London", "Rome is a city in", "Italy",
     "The country in which the Eiffel Tower is located is", "England"),
]


def mkeb_record(i: int, *, zsre: bool = False, untemplatable: tuple[str, ...] = ()) -> dict[str, Any]:
    """One MKEB record in all 12 languages (language tag in the text keeps them distinct)."""
    subj, tmpl, true, new, nb_p, nb_a, mh_q, mh_a = FACTS[i % len(FACTS)]
    edit, para, nprompts, nans, mhq, mha = {}, {}, {}, {}, {}, {}
    for lang in LANGS:
        tag = "" if lang == "en" else f"[{lang}] "
        fact: dict[str, Any] = {"prompt": tag + tmpl, "subject": subj, "target_new": new}
        if lang in untemplatable:
            fact = {"prompt": tag + tmpl.replace("{}", subj.lower()), "subject": subj, "target_new": new,
                    "has_subject_slot": False}
        if not zsre:
            fact["target_true"] = true
        edit[lang] = fact
        para[lang] = [tag + f"In short, {tmpl.replace('{}', subj)}"]
        nprompts[lang] = [tag + nb_p]
        nans[lang] = [nb_a]
        mhq[lang] = [tag + mh_q]
        mha[lang] = mh_a
    return {
        "example_id": 100 + i,
        "relation_description": tmpl,
        "edit": edit,
        "paraphrase_prompts": para,
        "neighborhood_prompts": nprompts,
        "neighborhood_answers": nans,
        "multi_hop_questions": mhq,
        "multi_hop_new_answer": mha,
    }


def write_mkeb(path: Path, n: int, **kw: Any) -> Path:
    path.write_text(json.dumps([mkeb_record(i, **kw) for i in range(n)], ensure_ascii=False), encoding="utf-8")
    return path


TINY_MEMLA = """\
alg_name: MEMLA
model_name: tiny
device: cpu
dtype: float32
attr_steps: 2
attr_threshold: 0.3
attr_batch_size: 8
id_langs: [en, zh, fr]
max_steps: 2
seed: 42
"""


@dataclass
class BenchEnv:
    root: Path
    model_dir: Path
    hparams_dir: Path
    data: Path
    run_dir: Path
    extra: list[str] = field(default_factory=list)

    def overrides(self, *more: str, run_dir: Path | None = None, data: Path | None = None) -> list[str]:
        """Hydra overrides for a quiet run on the tiny model (later ones win)."""
        return [
            "model=hf",
            "model.name=tiny",
            f"model.name_or_path={self.model_dir}",
            "model.hparams_name=tiny",
            f"hparams_dir={self.hparams_dir}",
            f"data.path={data or self.data}",
            f"run_dir={run_dir or self.run_dir}",
            "methods=[unedited,memla]",
            "source_langs=[en]",
            "eval_langs=[en,zh,fr]",
            "run.progress=false",
            "eval.batch_size=8",
            *self.extra,
            *more,
        ]


@pytest.fixture(scope="session")
def bench_model_dir(tmp_path_factory, tiny_tok, _pristine_models):
    """The tiny Qwen2 + tokenizer saved as a model directory (loadable by load_model)."""
    out = tmp_path_factory.mktemp("tiny_qwen2")
    _pristine_models["qwen2"].save_pretrained(out)
    tiny_tok.save_pretrained(out)
    return out


def make_bench_env(root: Path, model_dir: Path, n_records: int = 4) -> BenchEnv:
    hp = root / "hparams"
    (hp / "MEMLA").mkdir(parents=True, exist_ok=True)
    (hp / "MEMLA" / "tiny.yaml").write_text(TINY_MEMLA, encoding="utf-8")
    data = write_mkeb(root / "tiny_mkeb.json", n_records)
    return BenchEnv(root, model_dir, hp, data, root / "run")


@pytest.fixture
def bench_env(tmp_path, bench_model_dir) -> BenchEnv:
    return make_bench_env(tmp_path, bench_model_dir)


def compose(overrides: list[str]) -> Any:
    from memla_mkeb.app import compose_config

    return compose_config(overrides)


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    from memla_mkeb.store import RESULTS_GLOB, iter_files, read_jsonl

    return [row for p in iter_files(Path(run_dir), RESULTS_GLOB) for row in read_jsonl(p)]


def read_keyed(run_dir: Path, pattern: str) -> dict[str, dict[str, Any]]:
    """Group rows (sequences or batches, chosen by ``pattern``) by key, so tests can look one up."""
    from memla_mkeb.store import iter_files, read_jsonl

    return {r["key"]: r for p in iter_files(Path(run_dir), pattern) for r in read_jsonl(p)}


def grouped_run(root: Path, model_dir: Path, settings: tuple[str, ...], read) -> tuple[BenchEnv, Any, dict]:
    """One run with ``settings``, made once and shared by a module's tests: env, summary, rows."""
    from memla_mkeb.runner import run_benchmark

    env = make_bench_env(root, model_dir)
    summary = run_benchmark(compose(env.overrides(*settings)))
    return env, summary, read(env.run_dir)


def crash_then_resume(root: Path, model_dir: Path, settings: tuple[str, ...], read,
                      crash_id: str = "103", edited: list | None = None) -> tuple[set, Any, dict]:
    """Stop a fresh run before record ``crash_id`` is edited, then rerun it.

    Returns the keys the stopped run left, the rerun's summary and the rows it ends with, so a
    test can check how an interrupted group is taken up; ``edited`` (a list) receives the record
    ids the rerun edits.
    """
    from memla_mkeb.runner import Hooks, run_benchmark

    def crash(spec, source, record):
        if str(record.example_id) == crash_id:
            raise KeyboardInterrupt

    env = make_bench_env(root, model_dir)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(compose(env.overrides(*settings)), hooks=Hooks(before_edit=crash))
    left = set(read(env.run_dir))
    seen = edited if edited is not None else []
    summary = run_benchmark(compose(env.overrides(*settings)),
                            hooks=Hooks(before_edit=lambda spec, source, record: seen.append(str(record.example_id))))
    return left, summary, read(env.run_dir)


def assert_kept_apart(env: BenchEnv, rows: dict[str, Any], prefix: str) -> None:
    """Group rows carry their own key prefix, and a single-edit run on their run dir is refused."""
    from memla_mkeb.runner import run_benchmark

    assert all(k.startswith(prefix) for k in rows)
    with pytest.raises(Exception, match="made with other settings"):
        run_benchmark(compose(env.overrides("data.limit=4")))


def assert_refused_before_load(env: BenchEnv, capsys, setting: str, message: str) -> None:
    """A bad ``setting`` (space-separated overrides) must fail with one error line before any model loads."""
    import re

    from memla_mkeb.app import run_task

    cfg = compose(env.overrides("data.limit=4", *setting.split(" "), "model.name_or_path=/nonexistent/model"))
    assert run_task(cfg) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("memla-mkeb: error: ")
    assert re.search(message, err[0]), err[0]
    assert not env.run_dir.exists()


def write_host_hparams(env: BenchEnv, lora_dropout: float = 0.0) -> None:
    """ROME, FT-M and LoRA hparams for the tiny model: the repo's 0.5B files, made small."""
    import yaml

    repo = Path(__file__).resolve().parents[1] / "hparams"

    def write(alg_dir, name, out, **changes):
        cfg = yaml.safe_load((repo / alg_dir / name).read_text())
        cfg.update(changes)
        (env.hparams_dir / alg_dir).mkdir(exist_ok=True)
        (env.hparams_dir / alg_dir / out).write_text(yaml.safe_dump(cfg))

    model = str(env.model_dir)
    write("ROME", "qwen2.5-0.5b.yaml", "tiny.yaml", model_name=model, layers=[1], v_loss_layer=2, mom2_n_samples=24,
          context_template_length_params=[[5, 5]], stats_dir=str(env.root / "stats"))
    write("FT", "qwen2.5-0.5b-ft-m.yaml", "tiny-ft-m.yaml", model_name=model, layers=[2], lr=5e-2)
    write("LoRA", "qwen2.5-0.5b.yaml", "tiny.yaml", model_name=model, num_steps=5, lora_dropout=lora_dropout)


def fake_apply(corrupt_case: str | None = None, fail_case: str | None = None):
    """A stand-in editor: adds 1 to one down-projection; misreports originals / fails on request."""

    import torch

    from memla_plugin.errors import NoNeuronsError

    def apply(model, tok, requests, hparams, copy=False, return_orig_weights=False, **kw):
        case = str(requests[0]["case_id"])
        name = "model.layers.1.mlp.down_proj.weight"
        weight = model.get_parameter(name)
        original = weight.detach().clone()
        with torch.no_grad():
            weight += 1.0
        if case == fail_case:  # raises without undoing its change: the harness must notice
            raise NoNeuronsError(f"case {case}: injected failure")
        if case == corrupt_case:
            original = original + 1e-3  # the "original" it hands back is wrong
        return model, {name: original}

    return apply
