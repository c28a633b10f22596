"""Restoring a model after an edit, and proving the restore worked.

The reference is taken once, when the model is loaded, not from what an editor hands back:
an editor that returns aliased or wrong "original" weights, or changes a parameter it does
not report, is caught on the record where it happens.
"""
from __future__ import annotations

from typing import Any, Optional

from memla_plugin.errors import RestoreMismatchError


def _checksum(t: Any) -> tuple[int, int]:
    """Exact-bits checksum of a tensor: (integer sum of its bit patterns, element count)."""
    import torch

    flat = t.detach().reshape(-1)
    int_view = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[flat.element_size()]
    bits = flat.contiguous().view(int_view)
    return int(bits.sum(dtype=torch.int64).item()), flat.numel()


class ParamSnapshot:
    """The pristine parameters of a model: exact copies (CPU) or per-parameter checksums."""

    def __init__(self, model: Any, mode: str = "exact") -> None:
        self.mode = mode
        self.names = [n for n, _ in model.named_parameters()]
        if mode == "exact":
            self.copy = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()}
            self.sums = None
        else:
            self.copy = None
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
        for name in self.names:
            p = params[name].detach()
            if self.copy is not None:
                ref = self.copy[name]
                same = ref.shape == p.shape and ref.dtype == p.dtype and torch.equal(ref, p.to("cpu"))
                if not same:
                    bad.append(name)
                    if ref.shape == p.shape:
                        diff = (ref.float() - p.to("cpu").float()).abs().max().item()
                        worst = diff if worst is None else max(worst, diff)
            elif _checksum(p) != self.sums[name]:  # type: ignore[index]
                bad.append(name)
        if bad:
            extra_txt = f", max abs difference {worst:.3g}" if worst is not None else ""
            raise RestoreMismatchError(
                f"{where}: restored weights differ from the originals in {len(bad)} parameter(s): "
                f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}{extra_txt}; run stopped"
            )
        return len(self.names)


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


__all__ = ["ParamSnapshot", "restore"]
