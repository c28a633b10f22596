"""Pieces of the integrated-gradients recipe shared by the reference and the fast path.

MEMLA paper (arXiv 2406.11566) §3.1: ``attr_i = (a_i / m) * sum_{k=0..m-1} dP(y | a' + k/m (a - a')) / da_i``: a left
Riemann sum that starts at the baseline and stops one step short of ``a``, multiplied by the
activation itself (not ``a - a'``), with P the softmax probability of each target token,
summed over the teacher-forced target tokens.

AMIG baseline, precise reading used here: for every prompt position j the prompt with token j
replaced by EOS gives a baseline activation ``a'_j`` at the last position, and the path
points are averaged over j: ``x_k = mean_j (a'_j + k/m (a - a'_j))``. Because a path point
is affine in its baseline this equals the single path from the mean baseline
``mean_j a'_j``, so AMIG costs m gradient evaluations per layer, like the zero baseline.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch

BASELINES = ("amig", "zero")


def path_points(a: torch.Tensor, base: torch.Tensor, steps: int) -> torch.Tensor:
    """[steps, d] points ``base + k/steps (a - base)`` for k = 0..steps-1 (left Riemann sum)."""
    alphas = torch.arange(steps, device=a.device, dtype=torch.float32) / steps
    pts = base.float().unsqueeze(0) + alphas.unsqueeze(1) * (a.float() - base.float()).unsqueeze(0)
    return pts.to(a.dtype)


def finish_scores(a: torch.Tensor, grad_sum: torch.Tensor, steps: int) -> torch.Tensor:
    """``a / m * sum_k grad_k`` in float32."""
    return a.float() * grad_sum.float() / steps


def _acc_dtype(t: torch.Tensor) -> torch.dtype:
    """float32 at least (bf16/fp16 logits are upcast), float64 stays float64."""
    return torch.promote_types(t.dtype, torch.float32)


class _TargetProbability(torch.autograd.Function):
    """softmax(z)[y] over the vocabulary with a lean backward.

    Autograd's log_softmax -> gather -> exp keeps a log-probability tensor of the full
    vocabulary and makes several passes over it in backward (a zero-filled scatter target,
    then the softmax backward). Here backward is one pass: ``g * p_y * (e_y - softmax(z))``.
    With a 150k vocabulary this is most of the non-matmul time of the fast path.
    """

    @staticmethod
    def forward(ctx, logits, idx):
        z = logits.to(_acc_dtype(logits))
        lse = torch.logsumexp(z, dim=-1, keepdim=True)
        p = (z.gather(-1, idx) - lse).exp()
        ctx.save_for_backward(logits, lse, p, idx)
        return p.squeeze(-1)

    @staticmethod
    def backward(ctx, g):
        logits, lse, p, idx = ctx.saved_tensors
        w = g.unsqueeze(-1) * p
        grad = torch.sub(logits.to(lse.dtype), lse).exp_().mul_(-w)
        grad.scatter_add_(-1, idx, w)
        return grad.to(logits.dtype), None


def target_probability(logits: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
    """P(target token t | its teacher-forced prefix) for logits [B, k, V] -> [B, k] (float32)."""
    idx = target_ids.view(1, -1, 1).expand(logits.shape[0], -1, 1)
    return _TargetProbability.apply(logits, idx)


def check_baseline(baseline: str) -> str:
    b = str(baseline).lower()
    if b not in BASELINES:
        from ..errors import HParamsError

        raise HParamsError(f"attr_baseline={baseline!r} is not one of {', '.join(BASELINES)}")
    return b


def check_layers(layers: Sequence[int] | None, num_layers: int) -> list[int]:
    """Sorted unique layer indices to attribute; all layers when ``layers`` is None."""
    if layers is None:
        return list(range(num_layers))
    out = sorted({int(l) for l in layers})
    bad = [l for l in out if not 0 <= l < num_layers]
    if bad:
        from ..errors import HParamsError

        raise HParamsError(f"layers={list(layers)!r}: {bad} outside the model's 0..{num_layers - 1}")
    if not out:
        from ..errors import HParamsError

        raise HParamsError("layers=[] leaves no layer to attribute; use null for all layers")
    return out


@contextlib.contextmanager
def attribution_mode(model) -> Iterator[None]:
    """Eval mode (no dropout) and frozen parameters for the duration; restores both after.

    Freezing keeps autograd from saving tensors for weight gradients the attribution never
    uses, and leaves ``.grad`` of the user's parameters untouched.
    """
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        with torch.enable_grad():
            yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


@contextlib.contextmanager
def layer_hooks(model, arch, layers: Sequence[int], hook) -> Iterator[None]:
    """Run ``hook(l, out)`` after ``attr_module(l)`` of each layer until exit; a non-None result replaces ``out``."""
    with contextlib.ExitStack() as hooks:
        for l in layers:
            module = model.get_submodule(arch.attr_module(l))
            hooks.callback(module.register_forward_hook(lambda _m, _inp, out, l=l: hook(l, out)).remove)
        yield


def capture_at(model, arch, layers: Sequence[int], position: int, store: dict) -> contextlib.AbstractContextManager:
    """Record ``attr_module(l)`` output at ``position`` (all batch rows) into ``store[l]``."""

    def keep(l, out):
        store[l] = out[:, position].detach()

    return layer_hooks(model, arch, layers, keep)


@contextlib.contextmanager
def patch_rows(module, x: torch.Tensor, position: int, first_row: int = 0) -> Iterator[None]:
    """Replace ``module``'s output at ``position`` for rows ``first_row:`` by ``x`` (differentiably)."""

    def hook(_m, _inp, out):
        out = out.clone()
        out[first_row:, position] = x.to(out.dtype)
        return out

    h = module.register_forward_hook(hook)
    try:
        yield
    finally:
        h.remove()


def step_batches(steps: int, batch_size: int) -> list[tuple[int, int]]:
    """Split ``range(steps)`` into [start, stop) pieces of at most ``batch_size``."""
    bs = max(1, int(batch_size))
    return [(s, min(s + bs, steps)) for s in range(0, steps, bs)]
