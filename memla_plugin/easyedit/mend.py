"""MEND hypernetworks trained with EasyEdit's own trainer, cached with their provenance.

MEND (Mitchell et al., 2022) edits with a hypernetwork that has to be trained first on edits
of the same model. EasyEdit trains it with ``EditTrainer`` on ``ZsreDataset`` files; here the
training items are the held-out MKEB edits (records in neither the test nor the dev id list,
all 12 languages, see :mod:`.corpus`) written in that zsRE layout, the training runs on CPU
for a small number of steps, and the checkpoint is cached per model fingerprint:

``<MEMLA cache>/easyedit/mend/<model dir name>-<fingerprint[:12]>/mend.pt`` + ``provenance.json``.

The trainer reloads its own checkpoint with ``torch.load`` defaults, which fails on
torch >= 2.6 (``weights_only=True``: the checkpoint pickles the model config);
:func:`memla_plugin.easyedit.patches.apply_host_fixes` fixes that for ``BaseTrainer.run``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import MEMLAError
from .hparams_map import DEFAULT

LOG = logging.getLogger(__name__)

MEND_FORMAT = 1
DEFAULT_STEPS = 200          # CPU budget; EasyEdit trains for 20k-100k iterations on a GPU
DEFAULT_VAL_ITEMS = 24
# MENDTrainingHparams fields that only the trainer has, and their values for a short CPU run
TRAINING_ONLY = {
    "alg": "MEND",
    "model_save_pt": 5000,
    "log_interval": 20,
    "eval_log_interval": 20,
    "final_eval": True,
    "early_stop_patience": 10**9,
    "early_stop_key": "loss/total_edit_val",
    "eval_only": False,
    "debug": False,
    "save": True,
    "silent": False,
    "verbose": False,
    "val_batch_size": 4,
    "accumulate_bs": 10,
    "val_steps": 10,
    "opt": "Adam",
    "grad_clip": 100.0,
}


class MENDTrainingError(MEMLAError):
    """MEND could not be trained or its checkpoint not found."""


def _checkpoint_dir(model, fingerprint: str) -> Path:
    from .paths import mend_dir
    from .stats import model_dir_name

    return mend_dir() / f"{model_dir_name(model)}-{fingerprint[:12]}"


def space_prefixed_targets(tok) -> bool:
    """True for tokenizers (byte-level BPE: GPT-2, Qwen) whose word tokens after a space differ
    from the same word at the start of a text."""
    word = "English"
    return tok.encode(" " + word, add_special_tokens=False) != tok.encode(word, add_special_tokens=False)


def training_hparams_from(
    hparams, *, steps: int, val_items: int, results_dir: str, tok=None, overrides: Optional[dict[str, Any]] = None
) -> Any:
    """EasyEdit ``MENDTrainingHparams`` for the edit-time ``hparams`` (same model, layers, method
    constants), training ``steps`` iterations with a validation at the end.

    EasyEdit's zsRE collate appends ``" " + target`` to the prompt but tokenises the label
    ``target`` without the space unless ``tokenizer_class`` contains "gpt"; for byte-level BPE
    tokenizers (Qwen's) the labels would then not be the tokens of the sentence. The trainer
    reads ``tokenizer_class`` for nothing else, so for such tokenizers it is set to
    ``GPT2TokenizerFast`` (the family Qwen's tokenizer belongs to)."""
    from easyeditor.trainer.training_hparams import MENDTrainingHparams

    names = {f.name for f in fields(MENDTrainingHparams)}
    values = {k: getattr(hparams, k) for k in names if hasattr(hparams, k)}
    values.update({k: v for k, v in TRAINING_ONLY.items() if k in names})
    values.update(
        archive=None,
        device="cpu" if str(getattr(hparams, "device", "cpu")) == "cpu" else hparams.device,
        batch_size=1,
        max_iters=steps + 1,  # the trainer stops when global_iter reaches max_iters
        max_epochs=None,
        val_interval=steps,
        results_dir=results_dir,
        model_parallel=False,
        half=False,
    )
    if tok is not None and space_prefixed_targets(tok):
        values["tokenizer_class"] = "GPT2TokenizerFast"
    unknown = sorted(set(overrides or {}) - names)
    if unknown:
        raise MENDTrainingError(f"training overrides {unknown} are not MENDTrainingHparams fields")
    values.update(overrides or {})
    missing = sorted(names - set(values))
    if missing:
        raise MENDTrainingError(f"cannot build MEND training hparams: missing {missing}")
    return MENDTrainingHparams(**values)


@contextlib.contextmanager
def _working_dir(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def train_mend(
    hparams,
    train_items: Sequence[dict[str, Any]],
    val_items: Sequence[dict[str, Any]],
    *,
    steps: int,
    work_dir: Path,
    tok=None,
    overrides: Optional[dict[str, Any]] = None,
) -> tuple[Path, dict[str, Any]]:
    """Run EasyEdit's ``EditTrainer`` (MEND) on zsRE-layout items; returns (checkpoint, val stats)."""
    import torch
    from easyeditor.dataset import ZsreDataset
    from easyeditor.trainer import EditTrainer

    from .patches import apply_host_fixes

    apply_host_fixes()  # BaseTrainer.run reload under weights_only
    work_dir.mkdir(parents=True, exist_ok=True)
    train_file, val_file = work_dir / "train.json", work_dir / "val.json"
    train_file.write_text(json.dumps(list(train_items), ensure_ascii=False), encoding="utf-8")
    val_file.write_text(json.dumps(list(val_items), ensure_ascii=False), encoding="utf-8")
    config = training_hparams_from(
        hparams, steps=steps, val_items=len(val_items), results_dir=str(work_dir), tok=tok, overrides=overrides
    )
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    with _working_dir(work_dir):  # the trainer writes ./logs and results.json next to cwd
        train_set = ZsreDataset(str(train_file), config=config)
        val_set = ZsreDataset(str(val_file), config=config)
        trainer = EditTrainer(config=config, train_set=train_set, val_set=val_set)
        trainer.run()
    checkpoint = Path(trainer.save_path)
    if not checkpoint.is_file():
        raise MENDTrainingError(f"EasyEdit's trainer wrote no checkpoint at {checkpoint}")
    results = work_dir / "results.json"
    val = json.loads(results.read_text())["results"] if results.is_file() else {}
    return checkpoint, val


def ensure_mend_checkpoint(
    model,
    tok,
    hparams,
    *,
    train_items: Optional[Sequence[dict[str, Any]]] = None,
    val_items: Optional[Sequence[dict[str, Any]]] = None,
    steps: int = DEFAULT_STEPS,
    out_dir=None,
    corpus_info: Optional[dict[str, Any]] = None,
    training_overrides: Optional[dict[str, Any]] = None,
) -> Path:
    """Set ``hparams.archive`` to a MEND checkpoint for ``model``, training one if none is cached.

    An existing ``archive`` path in the hparams is used as is. Otherwise the cached checkpoint
    for this model's fingerprint and these steps/inner params is reused, or trained from
    ``train_items`` (default: the held-out MKEB edits; the last ``DEFAULT_VAL_ITEMS`` of them
    validate). ``training_overrides`` replace MENDTrainingHparams values of the run (recorded in
    the provenance and part of the cache key).
    """
    from .stats import model_fingerprint

    archive = getattr(hparams, "archive", None)
    if archive not in (None, DEFAULT, ""):
        if not Path(archive).is_file():
            raise MENDTrainingError(f"MEND archive {archive!r} does not exist; set archive: default to train one")
        return Path(archive)
    fingerprint = model_fingerprint(model)
    target = Path(out_dir) if out_dir is not None else _checkpoint_dir(model, fingerprint)
    checkpoint, prov_file = target / "mend.pt", target / "provenance.json"
    wanted = {
        "model_fingerprint": fingerprint,
        "steps": steps,
        "inner_params": list(hparams.inner_params),
        "training_overrides": dict(training_overrides or {}),
    }
    if checkpoint.is_file() and prov_file.is_file():
        prov = json.loads(prov_file.read_text(encoding="utf-8"))
        if all(prov.get(k) == v for k, v in wanted.items()) and prov.get("format") == MEND_FORMAT:
            hparams.archive = str(checkpoint)
            return checkpoint

    if train_items is None:
        from .corpus import heldout_records, zsre_training_items

        held = heldout_records()
        items = zsre_training_items(held)
        corpus_info = {"name": "mkeb_heldout (zsRE layout)", **held.source}
        val_items = items[-DEFAULT_VAL_ITEMS:]
        train_items = items[:-DEFAULT_VAL_ITEMS]
    if val_items is None:
        val_items = list(train_items[-min(DEFAULT_VAL_ITEMS, len(train_items)) :])
    if not train_items:
        raise MENDTrainingError("no MEND training items")
    t0 = time.perf_counter()
    LOG.info("training MEND for %s: %d steps on %d items (CPU)", model.config._name_or_path, steps, len(train_items))
    with tempfile.TemporaryDirectory(prefix="mend-train-") as work:
        trained, val = train_mend(
            hparams, train_items, val_items, steps=steps, work_dir=Path(work), tok=tok, overrides=training_overrides
        )
        target.mkdir(parents=True, exist_ok=True)
        tmp = checkpoint.with_suffix(".tmp")
        shutil.copyfile(trained, tmp)
        tmp.replace(checkpoint)
    import torch
    import transformers

    provenance = {
        "format": MEND_FORMAT,
        **wanted,
        "model": str(model.config._name_or_path),
        "trainer": "easyeditor.trainer.EditTrainer (MEND), EasyEdit's own training loop",
        "train_items": len(train_items),
        "val_items": len(val_items),
        "languages": sorted({str(i.get("lang")) for i in train_items if i.get("lang")}),
        "corpus": corpus_info or {"name": "user items"},
        "final_validation": val,
        "seconds": round(time.perf_counter() - t0, 1),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    prov_file.write_text(json.dumps(provenance, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    hparams.archive = str(checkpoint)
    return checkpoint
