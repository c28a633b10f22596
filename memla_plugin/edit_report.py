"""What one MEMLA edit did and how long each phase took.

:func:`memla_plugin.memla_main.execute_memla` fills an :class:`EditReport` phase by phase (so a
failed edit still shows how far it got) and returns it; ``as_dict()`` gives the JSON-ready
mapping the benchmark stores with every result row.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Optional


@dataclass
class EditReport:
    """Timings (seconds) and counts of one request; fields stay None until their phase ran."""

    case_id: Any = None
    edit_lang: Optional[str] = None
    model_type: Optional[str] = None
    # attribution
    attribution_s: Optional[float] = None
    attribution_s_per_lang: Optional[dict[str, float]] = None
    cache_hits: Optional[int] = None
    neurons_per_lang: Optional[dict[str, int]] = None
    # neuron sets
    missing_id_langs: Optional[list[str]] = None
    generic_dropped_per_lang: Optional[dict[str, int]] = None  # neurons the generic filter removed
    n_likn: Optional[int] = None
    n_lskn: Optional[int] = None
    sets_s: Optional[float] = None
    n_lskn_trained: Optional[int] = None
    n_likn_trained: Optional[int] = None
    layers: Optional[list[int]] = None
    # training
    n_trainable: Optional[int] = None
    train_s: Optional[float] = None
    steps: Optional[int] = None
    stopped_by: Optional[str] = None
    final_loss: Optional[float] = None
    p_new: Optional[float] = None
    p_true: Optional[float] = None
    initial_loss: Optional[float] = None
    reused_lower_layers: Optional[bool] = None
    locality_kl: Optional[float] = None  # the locality term's mean KL at the last step (when it is on)
    loss_trace: Optional[list[float]] = None
    p_new_trace: Optional[list[float]] = None
    total_s: Optional[float] = None
    # merging (set by apply_memla_to_model)
    merge_s: Optional[float] = None
    changed_params: Optional[list[str]] = None
    n_requests: Optional[int] = None
    apply_s: Optional[float] = None
    adapter_dir: Optional[str] = None  # where save_adapter_dir wrote the edit as a peft adapter
    per_request: list["EditReport"] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The fields that were set, in phase order; ``per_request`` only for several requests."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "per_request":
                if len(value) > 1:
                    out["per_request"] = [r.as_dict() for r in value]
            elif value is not None:
                out[f.name] = value
        return out
