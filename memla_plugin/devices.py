"""One parser for device settings and one answer to "where does this model live".

Hyperparameter files, ``load_model``, training and attribution all take a device the same
way EasyEdit's hparams do: "cpu", "cuda", "cuda:N", "mps", or a bare GPU index (int or digit
string). :func:`parse_device` turns any of them into a canonical string and names the bad
value otherwise; :func:`model_device` is where inputs for a (possibly multi-device) model go.
"""
from __future__ import annotations

from typing import Any, Optional

DEVICE_HELP = "'cpu', 'cuda', 'cuda:N', 'mps' or a GPU index"


def parse_device(device: Any) -> Optional[str]:
    """Canonical device string ("cpu", "cuda", "cuda:1", "mps"), or None when ``device`` is not one.

    A bare index (``1`` or ``"1"``) means ``"cuda:1"``; booleans and negative indices are
    rejected. Callers raise their own error class with :data:`DEVICE_HELP` on None.
    """
    if isinstance(device, bool):
        return None
    if isinstance(device, int):
        return f"cuda:{device}" if device >= 0 else None
    if not isinstance(device, str):
        return None
    dev = device.strip()
    if dev.isdigit():
        return f"cuda:{int(dev)}"
    if dev in ("cpu", "cuda", "mps"):
        return dev
    if dev.startswith("cuda:") and dev[5:].isdigit():
        return f"cuda:{int(dev[5:])}"
    return None


def model_device(model: Any):
    """The device of the model's input embeddings (where token ids must go), else its first parameter."""
    get_emb = getattr(model, "get_input_embeddings", None)
    emb = get_emb() if callable(get_emb) else None
    if emb is not None and getattr(emb, "weight", None) is not None:
        return emb.weight.device
    return next(model.parameters()).device
