"""MEMLA edits as standard PEFT LoRA adapters (save, share, load, stack, undo with ``peft``).

A masked update of a down-projection, ``Delta = sum_s (B_s A_s) * M_s`` with row masks
``M_s``, is exactly an ordinary LoRA update: in ``nn.Linear`` layout (``weight`` = Delta^T)
peft's ``lora_A`` (r x d_ff) holds the B_s^T with the columns of unselected neurons zeroed
and ``lora_B`` (d x r) holds the A_s^T times ``apply_scale``; rank = the summed sub-editor
ranks, ``lora_alpha = r`` so peft's scaling is 1. GPT-2's Conv1D gets the same factors with
``fan_in_fan_out=True``.

Split like a PEFT tuner: ``factors`` (the math), ``sidecar`` (provenance next to the adapter),
``export`` (writing adapter directories, the capture hook used by ``apply_memla_to_model``),
``load`` (peft loading with the sidecar's model check, named adapters, combination).
Nothing here imports ``peft`` at module import time.
"""
from __future__ import annotations

from ..lazy import lazy_getattr

_LAZY = {
    "AdapterError": "memla_plugin.adapters.sidecar",
    "AdapterSidecar": "memla_plugin.adapters.sidecar",
    "EditProvenance": "memla_plugin.adapters.sidecar",
    "model_fingerprint": "memla_plugin.adapters.sidecar",
    "read_sidecar": "memla_plugin.adapters.sidecar",
    "SIDECAR_NAME": "memla_plugin.adapters.sidecar",
    "ModuleFactors": "memla_plugin.adapters.factors",
    "peft_factors": "memla_plugin.adapters.factors",
    "AdapterCapture": "memla_plugin.adapters.export",
    "export_adapter": "memla_plugin.adapters.export",
    "load_memla_adapter": "memla_plugin.adapters.load",
    "combine_adapters": "memla_plugin.adapters.load",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
