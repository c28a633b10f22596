"""Damaged caches in the reliability suite: the converted model, the neuron cache, MEND checkpoints.

Each check returns a :class:`CacheOutcome` (what was tried, what happened, and whether every
promise held); ``tests/test_reliability_faults.py`` asserts them and the doc lists them.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from conftest_bench import BenchEnv, compose, read_rows
from reliability_faults import build_default_cache, mid_model, overwrite


@dataclass
class CacheOutcome:
    name: str
    tried: str
    result: str  # one line: what the user sees (paths as <tmp>)
    held: bool  # every promise of the case held
    detail: str = ""  # what failed, when something did


def _harness(env: BenchEnv, patch: Callable[[Any, str, Any], None], *over: str) -> tuple[int, str, int]:
    """Run memla-mkeb in-process with a fresh model cache; (status, error line, scores computed)."""
    import memla_mkeb.runner as runner
    import memla_plugin.mkeb.metrics as metrics
    from memla_mkeb.app import run_task

    scored = [0]
    real = metrics.unedited_reference

    def counting(*a: Any, **k: Any) -> Any:
        scored[0] += 1
        return real(*a, **k)

    patch(metrics, "unedited_reference", counting)
    patch(runner, "_MODEL_CACHE", {})
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = run_task(compose(env.overrides("data.limit=1", "methods=[unedited]", *over)))
    lines = [x for x in err.getvalue().splitlines() if x.startswith("memla-mkeb: error:")]
    return status, (lines[0] if len(lines) == 1 else err.getvalue()), scored[0]


def model_cache_cases(env: BenchEnv, tok: Any, patch: Callable[[Any, str, Any], None]) -> list[CacheOutcome]:
    """The converted default model damaged in the middle of a tensor (size unchanged), and a model
    directory with NaN weights. ``$MEMLA_CACHE`` must point into a temporary folder."""
    from memla_plugin.models import default_model

    model = mid_model(tok)
    out = []
    tmp = str(env.root.parent)
    for name, tried, digests, expect in (
        ("cache-digest-mismatch", "4 KiB of 0x3f (finite values) inside `model.layers.1.mlp.up_proj.weight` "
         "of the cached default model", True, "(model.layers.1.mlp.up_proj.weight)"),
        ("cache-old-manifest", "the same damage in a cache whose manifest predates parameter digests", False,
         "sha256 mismatch of model.safetensors"),
    ):
        target = build_default_cache(model, tok, with_digests=digests)
        overwrite(target / "model.safetensors", "model.layers.1.mlp.up_proj.weight", 0x3F)
        status, line, scored = _harness(env, patch, "model.name_or_path=default", f"run_dir={env.root / name}")
        marked = not (target / default_model.MANIFEST_NAME).exists()
        rows = read_rows(env.root / name)
        held = status == 2 and scored == 0 and not rows and marked and expect in line
        out.append(CacheOutcome(name, tried, line.replace(tmp, "<tmp>"), held,
                                f"status {status}, scores {scored}, rows {len(rows)}, marked {marked}: {line}"))
        default_model._rmtree_quiet(target)
    nan_dir = env.root / "nan_model"
    model.save_pretrained(nan_dir)
    tok.save_pretrained(nan_dir)
    overwrite(nan_dir / "model.safetensors", "model.layers.0.mlp.down_proj.weight", 0xFF)
    status, line, scored = _harness(env, patch, f"model.name_or_path={nan_dir}", f"run_dir={env.root / 'nan'}")
    held = status == 2 and scored == 0 and "logits are NaN or infinite" in line and not read_rows(env.root / "nan")
    out.append(CacheOutcome("cache-nan-weights", "4 KiB of 0xff (NaN) inside `model.layers.0.mlp.down_proj.weight` "
                            "of a model directory", line.replace(tmp, "<tmp>"), held,
                            f"status {status}, scores {scored}: {line}"))
    return out


def old_manifest_gets_digests(env: BenchEnv, tok: Any) -> CacheOutcome:
    """An intact cache with an older manifest: its files are re-hashed once, then the digests recorded."""
    from memla_plugin.models import default_model, load_model
    from memla_plugin.models.integrity import param_digests, recorded_digests, verify_loaded

    target = build_default_cache(mid_model(tok), tok, with_digests=False)
    loaded, _ = load_model("default")
    first = verify_loaded(target, loaded, param_digests(loaded))
    second = verify_loaded(target, loaded, param_digests(loaded))
    held = first == "recorded" and second == "digests" and recorded_digests(target) is not None
    default_model._rmtree_quiet(target)
    return CacheOutcome("cache-old-manifest-intact", "an intact cache whose manifest predates parameter digests",
                        f"first load: {first}; second load: {second}", held)


def neuron_cache_case(root: Path, model: Any, tok: Any, request: dict[str, Any]) -> CacheOutcome:
    """Cached neurons outside the model (layer 99, index -1): a miss, logged with the file, then replaced."""
    from memla_plugin.hparams import MEMLAHyperParams
    from memla_plugin.memla_main import apply_memla_to_model, last_edit_report

    cache = root / "neurons"
    hp = MEMLAHyperParams(model_name="tiny", attr_steps=2, max_steps=2, neuron_cache_dir=str(cache))
    apply_memla_to_model(model, tok, [request], hp, return_orig_weights=True)
    files = sorted(cache.rglob("*.json"))
    for path, bad in zip(files, ([99, 0], [0, -1])):
        entries = json.loads(path.read_text(encoding="utf-8"))
        entries[0]["neurons"] = [bad]
        path.write_text(json.dumps(entries), encoding="utf-8")
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    logging.getLogger("memla_plugin.neurons.cache").addHandler(handler)
    try:
        _, originals = apply_memla_to_model(model, tok, [request], hp, return_orig_weights=True)
    finally:
        logging.getLogger("memla_plugin.neurons.cache").removeHandler(handler)
    report = last_edit_report()
    named = all(str(p) in logs.getvalue() for p in files[:2])
    fixed = all(all(n[0] < 3 and n[1] >= 0 for e in json.loads(p.read_text()) for n in e["neurons"]) for p in files)
    held = bool(originals) and report is not None and report.cache_hits == len(files) - 2 and named and fixed
    return CacheOutcome("neuron-cache-out-of-range", "neuron cache entries naming layer 99 and index -1",
                        f"edit made; {2} entries recomputed, each logged with its file; the file now holds "
                        f"neurons inside the model", held, logs.getvalue()[-300:])


class _Boom:
    """Unpickling this would create the file ``marker`` (what a malicious checkpoint could do)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        import os

        return (os.system, (f"touch {self.marker}",))


def mend_cases(root: Path, config: Any) -> list[CacheOutcome]:
    """MEND checkpoints: pickled code refused, a changed cached file not reused, a real one accepted."""
    import numpy as np
    import torch

    from memla_plugin.easyedit.checkpoints import UnsafeCheckpointError, cached_checkpoint_ok, safe_load
    from memla_plugin.easyedit.patches import _WeightsOnlyTorch

    root.mkdir(parents=True, exist_ok=True)
    marker = root / "pwned"
    evil = root / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "x": _Boom(str(marker))}, evil)
    refused = []
    for load in (lambda: safe_load(evil, map_location="cpu"),
                 lambda: _WeightsOnlyTorch(torch).load(evil, map_location="cpu", weights_only=False)):
        try:
            load()
        except UnsafeCheckpointError as exc:
            refused.append(str(exc))
    out = [CacheOutcome("mend-pickled-code", "a MEND archive whose pickle would run code (create a file)",
                        refused[0].replace(str(root), "<tmp>") if refused else "loaded",
                        len(refused) == 2 and not marker.exists())]
    good, prov = root / "mend.pt", root / "provenance.json"
    torch.save({"model": {"w": torch.ones(3)}, "model_config": config, "val_stats": {"acc": np.float64(0.5)}}, good)
    prov.write_text(json.dumps({"format": 2}), encoding="utf-8")
    host = _WeightsOnlyTorch(torch).load(good, map_location="cpu", weights_only=False)  # as mend_main calls it
    first = cached_checkpoint_ok(good, prov, {"format": 2}, config) and type(host["model_config"]) is type(config)
    recorded = json.loads(prov.read_text())
    with open(good, "ab") as fh:
        fh.write(b"\0")
    second = cached_checkpoint_ok(good, prov, recorded, config)
    out.append(CacheOutcome("mend-checkpoint-changed", "a cached mend.pt changed after its provenance was written",
                            f"unhashed checkpoint with the model config: loads under weights_only (EasyEdit's call "
                            f"too), sha256 recorded ({first}); after one byte was appended: reused {second}",
                            first and "sha256" in recorded and not second))
    return out


__all__ = ["CacheOutcome", "mend_cases", "model_cache_cases", "neuron_cache_case", "old_manifest_gets_digests"]
