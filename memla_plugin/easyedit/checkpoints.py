"""Loading MEND checkpoints without running pickled code, and knowing which file was used.

EasyEdit's trainer saves a MEND hypernetwork with ``torch.save`` of a dict that also pickles
the edited model's config object; EasyEdit's own edit-time loader reads it back with
``torch.load(weights_only=False)``, which executes whatever a pickle names. The plugin points
that loader at a user-given file or at its cached ``mend.pt``, so every load here uses
``weights_only=True`` with an allowlist of exactly the types such a checkpoint holds
(:func:`checkpoint_globals`), and a cached checkpoint is reused only when its sha256 matches
the one its provenance recorded when it was trained.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Optional

from ..errors import MEMLAError
from ..hashing import file_sha256

LOG = logging.getLogger(__name__)


class UnsafeCheckpointError(MEMLAError):
    """A checkpoint does not load with ``weights_only=True`` and the allowed types."""


def _config_classes() -> list[type]:
    """Every transformers config class loaded in this process (the checkpoint pickles one of them)."""
    try:
        from transformers import PretrainedConfig
    except ImportError:  # pragma: no cover - transformers is a core dependency
        return []
    seen: list[type] = []
    todo = [PretrainedConfig]
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.append(cls)
            todo.extend(cls.__subclasses__())
    return seen


def checkpoint_globals(model_config: Any = None) -> list[Any]:
    """Types a checkpoint of EasyEdit's ``BaseTrainer.save_state`` may pickle besides tensors:
    the model's config class (every loaded config class when none is given) and numpy scalars
    and arrays from ``val_stats``."""
    import numpy as np

    allowed: list[Any] = [np.dtype, np.ndarray]
    allowed += [type(model_config)] if model_config is not None else _config_classes()
    for name in ("_reconstruct", "scalar"):
        for mod_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
            try:
                mod = __import__(mod_name, fromlist=[name])
                allowed.append(getattr(mod, name))
                break
            except (ImportError, AttributeError):
                continue
    allowed.extend(type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool"))
    return allowed


def safe_load(path: Any, *args: Any, model_config: Any = None, **kwargs: Any) -> Any:
    """``torch.load(path, weights_only=True)`` with :func:`checkpoint_globals` allowed; other
    pickled types raise :class:`UnsafeCheckpointError` naming the file."""
    import pickle

    import torch

    kwargs["weights_only"] = True
    try:
        with torch.serialization.safe_globals(checkpoint_globals(model_config)):
            return torch.load(path, *args, **kwargs)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        found = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", str(exc))
        why = f"it pickles {found.group(1)}" if found else " ".join(str(exc).split())[:200]
        raise UnsafeCheckpointError(
            f"MEND checkpoint {path}: refused by torch.load(weights_only=True): {why}; only tensors, the model "
            f"config and numpy scalars are accepted"
        ) from None



def checked_archive(path: Path, model_config: Any = None) -> str:
    """A user-given checkpoint, proven loadable under ``weights_only``; returns its sha256 (logged)."""
    safe_load(path, map_location="cpu", model_config=model_config)
    digest = file_sha256(path)
    LOG.info("MEND archive %s: sha256 %s, loads with weights_only=True", path, digest)
    return digest


def cached_checkpoint_ok(checkpoint: Path, prov_file: Path, provenance: dict[str, Any],
                         model_config: Any = None) -> bool:
    """Whether a cached checkpoint may be reused: its sha256 equals the provenance's.

    A provenance written before hashes were recorded gets the hash once the file has been proven
    loadable under ``weights_only`` (so nothing pickled has run); a mismatch or an unsafe file is
    logged and means: train again.
    """
    recorded: Optional[str] = provenance.get("sha256")
    digest = file_sha256(checkpoint)
    if recorded is not None:
        if digest != recorded:
            LOG.warning("MEND checkpoint %s: sha256 %s differs from its provenance (%s); training again",
                        checkpoint, digest[:16], recorded[:16])
        return digest == recorded
    try:
        safe_load(checkpoint, map_location="cpu", model_config=model_config)
    except UnsafeCheckpointError as exc:
        LOG.warning("%s; training again", exc)
        return False
    prov_file.write_text(json.dumps({**provenance, "sha256": digest}, indent=2, ensure_ascii=False, default=str),
                         encoding="utf-8")
    return True


__all__ = ["UnsafeCheckpointError", "cached_checkpoint_ok", "checked_archive", "checkpoint_globals",
           "file_sha256", "safe_load"]
