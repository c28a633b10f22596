"""Training the masked dual LoRA on the edit prompt (MEMLA paper, arXiv 2406.11566, §3.4).

Only the edit prompt in the edit language is used. The loss is
``new_loss_weight * NLL(" " + target_new) + true_loss_weight * P(" " + target_true)``:
the summed negative log-likelihood of the new target pushes it up, the (sequence)
probability of the old target pushes that down. Adam on the A and B matrices only; the
model's own weights are frozen for the duration and restored afterwards. Training stops
before a step once the loss is below ``stop_loss`` or P(new) above ``stop_prob``.

Speed: the editors sit in layers >= L (the lowest edited layer), so everything below L
computes the same thing every step. Those layers run once without gradients; during the
steps they are swapped for stand-ins that return the recorded output. The model's own
forward still runs (masks, rotary embeddings, final norm, soft-capping), so this works for
any model whose decoder layers live in an ``nn.ModuleList`` that the forward walks in order.
"""
from __future__ import annotations

import inspect
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from .architectures import layer_list
from .devices import model_device
from .errors import EmptyTargetError, NaNLossError
from .masked_lora import MaskedLoRAModel
from .tokenisation import target_ids
from .tokenisation import target_with_space_unstripped as target_with_space

LOG = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- batch
@dataclass
class EditBatch:
    """prompt+new and prompt+true as one right-padded batch of two sequences."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prompt_len: int
    new_ids: list[int]
    true_ids: list[int]

    @property
    def n_keep(self) -> int:
        """Positions from the last prompt token to the end: all that the loss reads."""
        return self.input_ids.shape[1] - self.prompt_len + 1


def encode_edit(
    tok, prompt: str, target_new: str, target_true: str, lang: str, device: torch.device, *, label: str = ""
) -> EditBatch:
    where = f" ({label})" if label else ""
    prompt_ids = list(tok(prompt)["input_ids"])
    if not prompt_ids:
        raise EmptyTargetError(f"edit prompt {prompt!r}{where} tokenises to zero tokens")
    new_ids = target_ids(tok, target_with_space(target_new, lang, tok), what=f"target_new{where}")
    true_ids = target_ids(tok, target_with_space(target_true, lang, tok), what=f"target_true{where}")
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    seqs = [prompt_ids + new_ids, prompt_ids + true_ids]
    width = max(len(s) for s in seqs)
    ids = torch.full((2, width), pad, dtype=torch.long)
    mask = torch.zeros((2, width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return EditBatch(ids.to(device), mask.to(device), len(prompt_ids), new_ids, true_ids)


def _accepts_logits_to_keep(model: nn.Module) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def target_logprobs(model: nn.Module, batch: EditBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probabilities of the new (row 0) and true (row 1) targets after the prompt."""
    kwargs: dict[str, Any] = {"attention_mask": batch.attention_mask, "use_cache": False}
    keep = batch.n_keep
    if _accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = keep
    logits = model(input_ids=batch.input_ids, **kwargs).logits
    logits = logits[:, -keep:]  # position k predicts token prompt_len + k
    out = []
    for row, ids in enumerate((batch.new_ids, batch.true_ids)):
        pred = logits[row, : len(ids)].float().log_softmax(-1)
        tgt = torch.tensor(ids, device=pred.device).unsqueeze(-1)
        out.append(pred.gather(-1, tgt).sum())
    return out[0], out[1]


# ---------------------------------------------------------------------------- lower-layer reuse
class _StopForward(Exception):
    pass


class _Replay(nn.Module):
    """Stands in for a frozen lower decoder layer: returns the recorded output of the last one."""

    def __init__(self, original: nn.Module, output: Any) -> None:
        super().__init__()
        object.__setattr__(self, "_original", original)
        object.__setattr__(self, "_output", output)

    def forward(self, *args, **kwargs):
        return self._output

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "_original"), name)


def _detach(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_detach(x) for x in obj)
    if isinstance(obj, list):
        return [_detach(x) for x in obj]
    return obj


class LowerLayerCache:
    """Runs layers below ``lowest`` once and replays their output during training steps."""

    def __init__(self, model: nn.Module, layers: nn.ModuleList, lowest: int) -> None:
        self.model, self.layers, self.lowest = model, layers, lowest
        self._saved: list[nn.Module] = []

    def record(self, batch: EditBatch) -> None:
        captured: dict[str, Any] = {}

        def grab(module, args, output):
            captured["out"] = _detach(output)

        def stop(module, args, kwargs=None):
            raise _StopForward

        h1 = self.layers[self.lowest - 1].register_forward_hook(grab)
        h2 = self.layers[self.lowest].register_forward_pre_hook(stop)
        try:
            with torch.no_grad():
                self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
        except _StopForward:
            pass
        finally:
            h1.remove()
            h2.remove()
        if "out" not in captured:
            raise RuntimeError("the model's forward never reached the lowest edited layer")
        out = captured["out"]
        self._saved = [self.layers[i] for i in range(self.lowest)]
        for i in range(self.lowest):
            self.layers[i] = _Replay(self._saved[i], out)

    def restore(self) -> None:
        for i, original in enumerate(self._saved):
            self.layers[i] = original
        self._saved = []


# ---------------------------------------------------------------------------- loop
@dataclass
class TrainResult:
    steps: int = 0
    stopped_by: str = "max_steps"  # "loss" | "prob" | "max_steps"
    losses: list[float] = field(default_factory=list)
    p_new: list[float] = field(default_factory=list)
    p_true: list[float] = field(default_factory=list)
    reused_lower_layers: bool = False
    seconds: float = 0.0

    @property
    def final_loss(self) -> float:
        return self.losses[-1] if self.losses else math.nan

    @property
    def final_p_new(self) -> float:
        return self.p_new[-1] if self.p_new else math.nan

    @property
    def final_p_true(self) -> float:
        return self.p_true[-1] if self.p_true else math.nan


def train_masked_lora(
    model: nn.Module,
    tok,
    lora: MaskedLoRAModel,
    prompt: str,
    target_new: str,
    target_true: str,
    lang: str,
    hparams,
    *,
    reuse_lower_layers: bool = True,
    label: str = "",
) -> TrainResult:
    """Train ``lora``'s A/B matrices so the model prefers ``target_new`` after ``prompt``.

    The hooks are attached for the duration and detached afterwards (merging is the
    caller's business). Raises :class:`NaNLossError` on a non-finite loss; the model's
    weights are never written here, so the model is unchanged when that happens.
    """
    t0 = time.perf_counter()
    batch = encode_edit(tok, prompt, target_new, target_true, lang, model_device(model), label=label)
    result = TrainResult()
    params = list(lora.parameters())
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    cache: Optional[LowerLayerCache] = None
    try:
        for p, _ in frozen:
            p.requires_grad_(False)
        model.eval()
        lowest = min(lora.layers)
        layers = layer_list(model, lora.edit_module_tmp) if reuse_lower_layers and lowest > 0 else None
        if layers is not None and len(layers) > lowest:
            cache = LowerLayerCache(model, layers, lowest)
            cache.record(batch)
            result.reused_lower_layers = True
        lora.attach()
        opt = torch.optim.Adam(params, lr=hparams.lr)
        while True:
            with torch.enable_grad():
                lp_new, lp_true = target_logprobs(model, batch)
                p_true = lp_true.exp()
                loss = hparams.new_loss_weight * (-lp_new) + hparams.true_loss_weight * p_true
            loss_v, p_new_v = float(loss.detach()), float(lp_new.detach().exp())
            if not math.isfinite(loss_v):
                raise NaNLossError(
                    f"MEMLA loss became {loss_v} after {result.steps} step(s){' for ' + label if label else ''} "
                    f"(lr={hparams.lr}); the model was left unchanged"
                )
            result.losses.append(loss_v)
            result.p_new.append(p_new_v)
            result.p_true.append(float(p_true.detach()))
            if loss_v < hparams.stop_loss:
                result.stopped_by = "loss"
                break
            if p_new_v > hparams.stop_prob:
                result.stopped_by = "prob"
                break
            if result.steps >= hparams.max_steps:
                result.stopped_by = "max_steps"
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            result.steps += 1
    finally:
        lora.detach()
        if cache is not None:
            cache.restore()
        for p, flag in frozen:
            p.requires_grad_(flag)
        model.train(was_training)
    result.seconds = time.perf_counter() - t0
    LOG.debug(
        "MEMLA training%s: %d steps, stopped by %s, loss %.4g, P(new) %.4g",
        f" ({label})" if label else "", result.steps, result.stopped_by, result.final_loss, result.final_p_new,
    )
    return result
