"""MEND hypernetworks trained with EasyEdit's own trainer, cached with their provenance.

MEND (Mitchell et al., 2022) edits with a hypernetwork that has to be trained first on edits
of the same model. EasyEdit trains it with ``EditTrainer`` on ``ZsreDataset`` files; here the
training items are the held-out MKEB edits (records in neither the test nor the dev id list,
all 12 languages, see :mod:`.corpus`) written in that zsRE layout, the training runs on CPU
for a small number of steps, and the checkpoint is cached per model fingerprint:

``<MEMLA cache>/easyedit/mend/<model dir name>-<fingerprint[:12]>/mend.pt`` + ``provenance.json``.

The trainer reloads its own checkpoint with ``torch.load`` defaults, which fails on
torch >= 2.6 (``weights_only=True``: the checkpoint pickles the model config);
:func:`memla_plugin.easyedit.patches.apply_host_fixes` fixes that for ``BaseTrainer.run`` and
makes EasyEdit's edit-time loader use ``weights_only=True`` too (:mod:`.checkpoints`). A cached
checkpoint is reused only when its sha256 equals the provenance's; a user's ``archive`` must
load under ``weights_only``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import MEMLAError
from .checkpoints import cached_checkpoint_ok, checked_archive, file_sha256
from .hparams_map import DEFAULT

LOG = logging.getLogger(__name__)

MEND_FORMAT = 2               # 2: provenance carries the loss curve and the training budget
#: Trainer iterations (one training edit each) at most. EasyEdit trains for 20k-100k iterations on a
#: GPU; on the shared 2-core CPU one iteration took 20 s and more, so the run is also bounded in time.
DEFAULT_STEPS = 120
#: Wall-clock seconds of training after which the run stops at the end of the current iteration,
#: validates and keeps that checkpoint (the iterations it reached are in the provenance's "budget").
#: None: the budget is the iteration count alone. A time cap made the budget depend on the machine's
#: load (a run on a shared CPU stopped after 5 of 120 iterations), so the trained checkpoint did too.
DEFAULT_MAX_SECONDS: Optional[float] = None
DEFAULT_VAL_ITEMS = 8
#: The training recipe for a short CPU budget, recorded in the provenance and part of the cache key.
#: The authors' rates (hypernetwork lr 1e-6, step-size lr 1e-4, an update every 10 edits) are set for
#: 100k iterations; the 200-iteration checkpoint they gave made 20 updates and stayed at its start,
#: whose edit is a gradient *ascent* step on the new target (the step sizes start positive and the
#: edit adds them times the gradient). Here: an update every 2 edits (60 updates), hypernetwork lr
#: 1e-4 and step-size lr 1e-3, so the learned step sizes can turn round and settle within the budget.
DEFAULT_TRAINING = {"lr": 1e-4, "lr_lr": 1e-3, "accumulate_bs": 2}
# MENDTrainingHparams fields that only the trainer has, and their values for a short CPU run
TRAINING_ONLY = {
    "alg": "MEND",
    "model_save_pt": 5000,
    "log_interval": 10,
    "eval_log_interval": 10,
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
    values["log_interval"] = max(1, min(int(values.get("log_interval", 20)), steps))
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
    curve_file: Optional[Path] = None,
    max_seconds: Optional[float] = None,
) -> tuple[Path, dict[str, Any]]:
    """Run EasyEdit's ``EditTrainer`` (MEND) on zsRE-layout items.

    Returns (checkpoint, record) where the record holds the final validation, the loss curve
    (:func:`record_curve`) and the training settings that decide the budget."""
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
        curve = record_curve(trainer, curve_file)
        done = stop_after(trainer, max_seconds)
        trainer.run()
    checkpoint = Path(trainer.save_path)
    if not checkpoint.is_file():
        raise MENDTrainingError(f"EasyEdit's trainer wrote no checkpoint at {checkpoint}")
    results = work_dir / "results.json"
    val = json.loads(results.read_text())["results"] if results.is_file() else {}
    return checkpoint, {"final_validation": val, "curve": curve, "config": {
        "iterations": done["iterations"],
        "max_iterations": steps, "max_seconds": max_seconds, "accumulate_bs": config.accumulate_bs, "lr": config.lr, "lr_lr": config.lr_lr,
        "edit_lr": config.edit_lr, "cedit": config.cedit, "cloc": config.cloc, "log_interval": config.log_interval}}


def stop_after(trainer: Any, max_seconds: Optional[float]) -> dict[str, int]:
    """Count the training iterations and bound EasyEdit's loop in time: once ``max_seconds`` have
    passed (``None``: never), the iteration under way validates and saves (its ``val_interval``
    becomes the current iteration) and the loop ends after it (``max_iters`` becomes the next one);
    the trainer's own final evaluation then runs as usual. Returns ``{"iterations": n}``, filled as it runs."""
    t0 = time.perf_counter()
    step = trainer.train_step
    done = {"iterations": 0}

    def step_and_check(batch: Any) -> Any:
        info = step(batch)
        done["iterations"] += 1
        if max_seconds is None:
            return info
        if time.perf_counter() - t0 > max_seconds and trainer.config.max_iters > trainer.global_iter + 1:
            trainer.config.val_interval = trainer.global_iter
            trainer.config.max_iters = trainer.global_iter + 1
            LOG.info("MEND training: %.0f s budget reached at iteration %d", max_seconds, trainer.global_iter)
        return info

    trainer.train_step = step_and_check
    return done


#: What the loss curve keeps of the trainer's running averages (train) and validations (val).
CURVE_KEYS = ("loss/edit", "loss/loc", "loss/total_edit", "edit/acc", "acc/pre", "acc/post", "nll/pre", "nll/post")


def record_curve(trainer: Any, curve_file: Optional[Path] = None) -> list[dict[str, Any]]:
    """Keep every line the trainer echoes (running training averages every ``log_interval``
    iterations, then the validations) as a loss-curve point with its elapsed seconds.

    EasyEdit's trainer only logs these numbers; the list returned fills as it runs, and each
    point is also appended to ``curve_file`` at once, so a long run can be watched.
    """
    curve: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    echo = trainer.echo

    def echo_and_keep(step: int, info: dict[str, Any], pretty: bool = False) -> None:
        point = {"iteration": int(step), "seconds": round(time.perf_counter() - t0, 1)}
        for key, value in info.items():
            base = key[: -len("_train")] if key.endswith("_train") else key[: -len("_val")] if key.endswith("_val") else key
            if base in CURVE_KEYS:
                point["split"] = "train" if key.endswith("_train") else "val" if key.endswith("_val") else "?"
                point[base] = round(float(value), 6)
        curve.append(point)
        if curve_file is not None:
            with open(curve_file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(point) + "\n")
        echo(step, info, pretty=pretty)

    trainer.echo = echo_and_keep
    return curve


def _reusable(checkpoint: Path, prov_file: Path, wanted: dict[str, Any], model) -> bool:
    """A cached checkpoint trained for exactly ``wanted``, whose bytes still match its provenance."""
    if not (checkpoint.is_file() and prov_file.is_file()):
        return False
    prov = json.loads(prov_file.read_text(encoding="utf-8"))
    return (all(prov.get(k) == v for k, v in wanted.items()) and prov.get("format") == MEND_FORMAT
            and cached_checkpoint_ok(checkpoint, prov_file, prov, getattr(model, "config", None)))


def ensure_mend_checkpoint(
    model,
    tok,
    hparams,
    *,
    train_items: Optional[Sequence[dict[str, Any]]] = None,
    val_items: Optional[Sequence[dict[str, Any]]] = None,
    steps: int = DEFAULT_STEPS,
    max_seconds: Optional[float] = DEFAULT_MAX_SECONDS,
    out_dir=None,
    corpus_info: Optional[dict[str, Any]] = None,
    training_overrides: Optional[dict[str, Any]] = None,
) -> Path:
    """Set ``hparams.archive`` to a MEND checkpoint for ``model``, training one if none is cached.

    An existing ``archive`` path in the hparams is used as is. Otherwise the cached checkpoint
    for this model's fingerprint and these steps/inner params/recipe is reused, or trained from
    ``train_items`` (default: the held-out MKEB edits; the last ``DEFAULT_VAL_ITEMS`` of them
    validate). ``training_overrides`` replace MENDTrainingHparams values on top of
    :data:`DEFAULT_TRAINING` (recorded in the provenance and part of the cache key).
    """
    from .stats import model_fingerprint

    archive = getattr(hparams, "archive", None)
    if archive not in (None, DEFAULT, ""):
        if not Path(archive).is_file():
            raise MENDTrainingError(f"MEND archive {archive!r} does not exist; set archive: default to train one")
        checked_archive(Path(archive), getattr(model, "config", None))  # weights_only, or a one-line refusal
        return Path(archive)
    fingerprint = model_fingerprint(model)
    target = Path(out_dir) if out_dir is not None else _checkpoint_dir(model, fingerprint)
    checkpoint, prov_file = target / "mend.pt", target / "provenance.json"
    recipe = {**DEFAULT_TRAINING, **(training_overrides or {})}
    wanted = {
        "model_fingerprint": fingerprint,
        "steps": steps,
        "max_seconds": max_seconds,
        "inner_params": list(hparams.inner_params),
        "training_overrides": recipe,
    }
    if _reusable(checkpoint, prov_file, wanted, model):
        hparams.archive = str(checkpoint)
        return checkpoint

    if train_items is None:
        train_items, val_items, corpus_info = heldout_items()
    if val_items is None:
        val_items = list(train_items[-min(DEFAULT_VAL_ITEMS, len(train_items)) :])
    if not train_items:
        raise MENDTrainingError("no MEND training items")
    t0 = time.perf_counter()
    LOG.info("training MEND for %s: %d steps on %d items (CPU)", model.config._name_or_path, steps, len(train_items))
    target.mkdir(parents=True, exist_ok=True)
    curve_file = target / "curve.partial.jsonl"  # watchable while training; removed when done
    curve_file.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="mend-train-") as work:
        trained, record = train_mend(hparams, train_items, val_items, steps=steps, work_dir=Path(work), tok=tok,
                                     overrides=recipe, curve_file=curve_file, max_seconds=max_seconds)
        tmp = checkpoint.with_suffix(".tmp")
        shutil.copyfile(trained, tmp)
        tmp.replace(checkpoint)
    seconds = round(time.perf_counter() - t0, 1)
    provenance = {
        "format": MEND_FORMAT,
        **wanted,
        "sha256": file_sha256(checkpoint),  # a reuse must find these very bytes
        "model": str(model.config._name_or_path),
        "trainer": "easyeditor.trainer.EditTrainer (MEND), EasyEdit's own training loop",
        "train_items": len(train_items),
        "val_items": len(val_items),
        "languages": sorted({str(i.get("lang")) for i in train_items if i.get("lang")}),
        "corpus": corpus_info or {"name": "user items"},
        **training_record(record, seconds),
    }
    prov_file.write_text(json.dumps(provenance, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    curve_file.unlink(missing_ok=True)
    hparams.archive = str(checkpoint)
    return checkpoint


def write_training_files(provenance: dict[str, Any], out_dir: Path, stem: str = "mend_training") -> list[Path]:
    """A small committed account of a training run: ``<stem>.json`` (budget, recipe, final losses,
    validation; no machine paths) and ``<stem>_curve.csv`` (one line per loss-curve point)."""
    import csv

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keep = ("format", "steps", "training_overrides", "inner_params", "train_items", "val_items", "languages",
            "corpus", "budget", "final_train", "final_validation", "torch", "transformers", "created")
    summary = {k: provenance.get(k) for k in keep if k in provenance}
    js, cs = out_dir / f"{stem}.json", out_dir / f"{stem}_curve.csv"
    js.write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    cols = ["iteration", "seconds", "split", *CURVE_KEYS]
    with open(cs, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(cols)
        for point in provenance.get("curve", []):
            w.writerow(["" if point.get(c) is None else point.get(c) for c in cols])
    return [js, cs]


def heldout_items() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(training items, validation items, corpus description): the held-out MKEB edits in zsRE layout,
    the last :data:`DEFAULT_VAL_ITEMS` of them for validation."""
    from .corpus import heldout_records, zsre_training_items

    held = heldout_records()
    items = zsre_training_items(held)
    corpus = {"name": "mkeb_heldout (zsRE layout)", **held.source}
    return items[:-DEFAULT_VAL_ITEMS], items[-DEFAULT_VAL_ITEMS:], corpus


def training_record(record: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The provenance's account of a training run: budget, final losses, loss curve, software.

    ``budget`` says what was spent (iterations, optimiser updates, seconds), ``final_train`` the
    last running training averages, ``final_validation`` EasyEdit's validation of the kept checkpoint.
    """
    import torch
    import transformers

    config, curve = record.get("config", {}), record.get("curve", [])
    train_points = [p for p in curve if p.get("split") == "train"]
    iterations = int(config.get("iterations", 0))
    return {
        "budget": {
            "iterations": iterations,
            "optimizer_updates": iterations // max(1, int(config.get("accumulate_bs", 1))),
            "stopped_by": "time" if iterations < int(config.get("max_iterations", iterations)) else "iterations",
            "seconds": seconds,
            "device": "cpu",
            **config,
        },
        "final_train": train_points[-1] if train_points else {},
        "final_validation": record.get("final_validation", {}),
        "curve": curve,
        "seconds": seconds,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m memla_plugin.easyedit.mend --export DIR [--provenance FILE]``: write a checkpoint's
    training record (budget, final losses, loss curve) as a small JSON + CSV, e.g. to commit it."""
    import argparse

    from .paths import mend_dir

    ap = argparse.ArgumentParser(prog="python -m memla_plugin.easyedit.mend", description=main.__doc__.split("\n")[0])
    ap.add_argument("--export", type=Path, required=True, help="folder for mend_training.json and mend_training_curve.csv")
    ap.add_argument("--provenance", type=Path, default=None,
                    help="a checkpoint's provenance.json (default: the newest under the MEND cache)")
    args = ap.parse_args(argv)
    prov_file = args.provenance
    if prov_file is None:
        found = sorted(Path(mend_dir()).glob("*/provenance.json"), key=lambda p: p.stat().st_mtime)
        if not found:
            print(f"mend: error: no trained checkpoint under {mend_dir()}", file=sys.stderr)
            return 2
        prov_file = found[-1]
    for path in write_training_files(json.loads(prov_file.read_text(encoding="utf-8")), args.export):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
