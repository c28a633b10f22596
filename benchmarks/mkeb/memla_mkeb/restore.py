"""Restoring a model after an edit (its weights and the flags host editors change), and proving
the restore worked.

The reference is taken once, when the model is loaded, not from what an editor hands back:
an editor that returns aliased or wrong "original" weights, or changes a parameter it does
not report, is caught on the record where it happens.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from memla_plugin.errors import RestoreMismatchError


def _checksum(t: Any) -> tuple[int, int]:
    """Exact-bits checksum of a tensor: (integer sum of its bit patterns, element count)."""
    import torch

    flat = t.detach().reshape(-1)
    int_view = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[flat.element_size()]
    bits = flat.contiguous().view(int_view)
    return int(bits.sum(dtype=torch.int64).item()), flat.numel()


def _digests(model: Any) -> dict[str, Any]:
    """Per-parameter SHA-256 digests of the raw bytes (the same digests a converted model's
    manifest records, so a load can be checked against them at no extra read)."""
    from memla_plugin.models.integrity import param_digests

    return param_digests(model)


#: run.restore_check values
MODES = ("sha256", "exact", "checksum")


class ParamSnapshot:
    """The pristine parameters of a model, to prove a restore bit for bit.

    ``sha256`` (default): per-parameter SHA-256 of the raw bytes; no second copy of the model
    in memory (a 0.5B fp32 model is 2 GB), about a second per check on 2 cores.
    ``exact``: a CPU copy of every parameter, compared with ``torch.equal`` (reports the
    largest difference on a mismatch; doubles the model's memory).
    ``checksum``: integer sums of the bit patterns (cheapest; misses a permutation of values).
    """

    def __init__(self, model: Any, mode: str = "sha256") -> None:
        if mode not in MODES:
            raise ValueError(f"restore check mode {mode!r} unknown; use one of {', '.join(MODES)}")
        self.mode = mode
        self.names = [n for n, _ in model.named_parameters()]
        self.copy = self.sums = self.digests = None
        if mode == "exact":
            self.copy = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()}
        elif mode == "sha256":
            self.digests = _digests(model)
        else:
            self.sums = {n: _checksum(p) for n, p in model.named_parameters()}

    def verify(self, model: Any, where: str) -> int:
        """Raise RestoreMismatchError naming ``where`` unless ``model`` equals the snapshot.

        Returns the number of parameters compared.
        """
        import torch

        params = dict(model.named_parameters())
        extra = sorted(set(params) - set(self.names))
        missing = sorted(set(self.names) - set(params))
        if extra or missing:
            raise RestoreMismatchError(
                f"{where}: after restoring, the model's parameters differ in name "
                f"(added: {', '.join(extra[:5]) or '-'}; gone: {', '.join(missing[:5]) or '-'})"
            )
        bad: list[str] = []
        worst: Optional[float] = None
        if self.digests is not None:
            now = _digests(model)
            bad = [name for name in self.names if now[name] != self.digests[name]]
        elif self.copy is not None:
            for name in self.names:
                p, ref = params[name].detach().to("cpu"), self.copy[name]
                if not (ref.shape == p.shape and ref.dtype == p.dtype and torch.equal(ref, p)):
                    bad.append(name)
                    if ref.shape == p.shape:
                        diff = (ref.float() - p.float()).abs().max().item()
                        worst = diff if worst is None else max(worst, diff)
        else:
            bad = [name for name in self.names if _checksum(params[name]) != self.sums[name]]  # type: ignore[index]
        if bad:
            extra_txt = f", max abs difference {worst:.3g}" if worst is not None else ""
            raise RestoreMismatchError(
                f"{where}: restored weights differ from the originals in {len(bad)} parameter(s): "
                f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}{extra_txt}; run stopped"
            )
        return len(self.names)


def verify_or_log(snapshot: "ParamSnapshot", model: Any, where: str, run_dir: Path, key: str) -> int:
    """``snapshot.verify``; a mismatch is first appended to the run dir's restore-failure log, then raised."""
    try:
        return snapshot.verify(model, where)
    except RestoreMismatchError as exc:
        from . import store

        with store.JsonlWriter(run_dir / store.RESTORE_FAILURES, wait=120) as fw:
            fw.append({"key": key, "message": str(exc)})
        raise


def restore(model: Any, weights_copy: dict[str, Any]) -> int:
    """Write ``weights_copy`` (EasyEdit's {param name: original}) back; returns how many."""
    import torch

    if not weights_copy:
        return 0
    with torch.no_grad():
        for name, value in weights_copy.items():
            param = model.get_parameter(name)
            param.copy_(value.to(device=param.device, dtype=param.dtype))
    return len(weights_copy)


@dataclass
class ModelFlags:
    """Non-parameter state some host editors change, put back after every edit: EasyEdit's LoRA
    turns on gradient checkpointing, input grads and ``use_cache=False``; its ROME and MEMIT
    switch ``requires_grad`` off on every parameter (MEND, run after them, then has no gradient)."""

    use_cache: Any
    checkpointing: bool
    requires_grad: dict[str, bool]

    @classmethod
    def of(cls, model: Any) -> "ModelFlags":
        return cls(getattr(getattr(model, "config", None), "use_cache", None),
                   bool(getattr(model, "is_gradient_checkpointing", False)),
                   {name: p.requires_grad for name, p in model.named_parameters()})

    def put_back(self, model: Any, keep_adapter: bool = False) -> None:
        """Put the flags back. ``keep_adapter``: leave a PEFT adapter's config on the model (between the
        edits of a sequence, so EasyEdit's LoRA trains on in the adapter it made, as its sequential_edit does)."""
        for name, p in model.named_parameters():
            flag = self.requires_grad.get(name)
            if flag is not None and p.requires_grad != flag:
                p.requires_grad_(flag)
        if getattr(model, "config", None) is not None and self.use_cache is not None:
            model.config.use_cache = self.use_cache
        if not self.checkpointing and getattr(model, "is_gradient_checkpointing", False):
            model.gradient_checkpointing_disable()
        if getattr(model, "_require_grads_hook", None) is not None and hasattr(model, "disable_input_require_grads"):
            model.disable_input_require_grads()
        if hasattr(model, "peft_config") and not keep_adapter:
            del model.peft_config
        model.eval()


def undo(model: Any, out_model: Any, weights_copy: Any, flags: ModelFlags) -> int:
    """Undo an edit as EasyEdit's restore_after_edit does: a callable restores itself, a PEFT
    wrapper is unloaded, otherwise the returned originals are copied back. Returns how many
    restore steps ran (parameters copied back, or 1 for a callable or an unload)."""
    n = 0
    if callable(weights_copy):
        import torch

        with torch.no_grad():
            weights_copy()
        n = 1
    elif out_model is not None and out_model is not model and hasattr(out_model, "unload"):
        out_model.unload()
        n = 1
    else:
        n = restore(model, weights_copy)
    flags.put_back(model)
    return n


__all__ = ["MODES", "ModelFlags", "ParamSnapshot", "restore", "undo", "verify_or_log"]
