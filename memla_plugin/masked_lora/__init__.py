"""Masked dual LoRA on FFN down-projections (MEMLA paper, arXiv 2406.11566, §3.3), organised like a PEFT tuner.

``config`` says which neurons get an editor, ``layer`` holds the math of one layer's update,
``model`` wires the updates into a model with forward hooks and merges them into weights.
"""
from __future__ import annotations

from .config import MaskedLoRAConfig
from .layer import MaskedDualLoRA
from .model import MaskedLoRAModel, merge_update, module_kind

__all__ = ["MaskedLoRAConfig", "MaskedDualLoRA", "MaskedLoRAModel", "merge_update", "module_kind"]
