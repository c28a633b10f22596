"""Load MEMLA adapters with peft after checking they belong to the given weights.

Plain ``PeftModel.from_pretrained(base, DIR)`` works on any MEMLA adapter directory; these
helpers add the sidecar check (an update trained on other weights is silently wrong, not an
error, in peft) and name the combination that is exact for MEMLA edits.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

from .sidecar import AdapterError, check_model, read_sidecar


def load_memla_adapter(
    model: Any,
    directory: Union[str, Path],
    adapter_name: str = "default",
    verify_model: bool = True,
    fingerprint: Optional[str] = None,
) -> Any:
    """``model`` with the adapter in ``directory`` loaded as ``adapter_name`` (a PeftModel).

    ``model`` is a transformers model or a PeftModel that already holds other adapters (the
    new one is added, not activated). With ``verify_model`` the weights must hash to the
    sidecar's ``model_hash`` (pass ``fingerprint`` to reuse a hash already computed);
    otherwise :class:`AdapterError` is raised before peft touches the model.
    """
    from peft import PeftModel  # lazy

    directory = Path(directory)
    sidecar = read_sidecar(directory)
    if verify_model:
        check_model(sidecar, model, source=f"adapter {directory}", fingerprint=fingerprint)
    if isinstance(model, PeftModel):
        if adapter_name in model.peft_config:
            raise AdapterError(f"adapter name {adapter_name!r} is already loaded; choose another adapter_name")
        model.load_adapter(str(directory), adapter_name=adapter_name)
        return model
    return PeftModel.from_pretrained(model, str(directory), adapter_name=adapter_name)


def combine_adapters(
    peft_model: Any,
    adapter_names: Sequence[str],
    new_name: str,
    weights: Optional[Sequence[float]] = None,
    activate: bool = True,
) -> Any:
    """Add ``new_name`` = the weighted sum of ``adapter_names``' updates, by rank concatenation.

    peft's ``combination_type="cat"`` stacks the factors, so with weights 1 the new update is
    exactly the sum of the edits' updates: the same as merging the edits one after the other
    (up to float rounding). SVD-based or "linear" combinations would approximate or mix ranks.
    """
    names = list(adapter_names)
    if len(names) < 2:
        raise AdapterError(f"combine_adapters needs at least two adapters, got {names}")
    missing = [n for n in names if n not in peft_model.peft_config]
    if missing:
        raise AdapterError(f"adapter(s) {missing} are not loaded (loaded: {sorted(peft_model.peft_config)})")
    if new_name in peft_model.peft_config:
        raise AdapterError(f"adapter name {new_name!r} is already loaded; choose another name")
    w = [1.0] * len(names) if weights is None else [float(x) for x in weights]
    if len(w) != len(names):
        raise AdapterError(f"{len(w)} weights for {len(names)} adapters")
    peft_model.add_weighted_adapter(names, w, new_name, combination_type="cat")
    if activate:
        peft_model.set_adapter(new_name)
    return peft_model
