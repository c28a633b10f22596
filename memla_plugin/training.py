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
from .prompt_format import format_prompt
from .tokenisation import target_ids, target_with_space

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
    #: the first position whose logits the loss reads
    first_read: int
    #: last-token positions of the locality prompts in rows 2.. (empty: the paper's two rows only)
    loc_last: list[int] = field(default_factory=list)

    @property
    def n_keep(self) -> int:
        """Positions from the first one the loss reads to the end of the batch."""
        return self.input_ids.shape[1] - self.first_read

    @property
    def edit_offset(self) -> int:
        """Index of the last edit-prompt position within the kept logits."""
        return self.prompt_len - 1 - self.first_read


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
    return EditBatch(ids.to(device), mask.to(device), len(prompt_ids), new_ids, true_ids, len(prompt_ids) - 1)


def add_locality_rows(batch: EditBatch, tok, prompts: list[str]) -> EditBatch:
    """The edit batch with one right-padded row per locality prompt appended (not in the paper)."""
    rows = [list(tok(p)["input_ids"]) for p in prompts]
    rows = [r for r in rows if r]
    if not rows:
        return batch
    width = max(batch.input_ids.shape[1], max(len(r) for r in rows))
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    n = 2 + len(rows)
    ids = torch.full((n, width), pad, dtype=torch.long, device=batch.input_ids.device)
    mask = torch.zeros((n, width), dtype=torch.long, device=batch.input_ids.device)
    ids[:2, : batch.input_ids.shape[1]] = batch.input_ids
    mask[:2, : batch.input_ids.shape[1]] = batch.attention_mask
    for k, r in enumerate(rows, start=2):
        ids[k, : len(r)] = torch.tensor(r)
        mask[k, : len(r)] = 1
    loc_last = [len(r) - 1 for r in rows]
    first_read = min([batch.prompt_len - 1, *loc_last])
    return EditBatch(ids, mask, batch.prompt_len, batch.new_ids, batch.true_ids, first_read, loc_last)


def _accepts_logits_to_keep(model: nn.Module) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _kept_logits(model: nn.Module, batch: EditBatch) -> torch.Tensor:
    kwargs: dict[str, Any] = {"attention_mask": batch.attention_mask, "use_cache": False}
    keep = batch.n_keep
    if _accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = keep
    logits = model(input_ids=batch.input_ids, **kwargs).logits
    return logits[:, -keep:]


def _target_logprobs(logits: torch.Tensor, batch: EditBatch) -> tuple[torch.Tensor, torch.Tensor]:
    off = batch.edit_offset  # kept position off + k predicts token prompt_len + k
    out = []
    for row, ids in enumerate((batch.new_ids, batch.true_ids)):
        pred = logits[row, off : off + len(ids)].float().log_softmax(-1)
        tgt = torch.tensor(ids, device=pred.device).unsqueeze(-1)
        out.append(pred.gather(-1, tgt).sum())
    return out[0], out[1]


def target_logprobs(model: nn.Module, batch: EditBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probabilities of the new (row 0) and true (row 1) targets after the prompt."""
    return _target_logprobs(_kept_logits(model, batch), batch)


def logprobs_with_locality(model: nn.Module, batch: EditBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`target_logprobs` plus the next-token log-distributions [n, V] after each locality prompt."""
    logits = _kept_logits(model, batch)
    start = batch.input_ids.shape[1] - batch.n_keep
    rows = torch.arange(2, 2 + len(batch.loc_last), device=logits.device)
    cols = torch.tensor(batch.loc_last, device=logits.device) - start
    loc = logits[rows, cols].float().log_softmax(-1)
    return (*_target_logprobs(logits, batch), loc)


def locality_kl(reference: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
    """Mean over prompts of KL(reference || edited), both given as log-probabilities [n, V].

    Zero exactly when the edited distributions equal the reference ones; ROME's essence
    term and FT-M's locality loss compare the same two distributions.
    """
    return (reference.exp() * (reference - edited)).sum(-1).mean()


@dataclass
class LocalityTerm:
    """``weight * KL(unedited || edited)`` of the next token after each locality prompt (not in the paper)."""

    weight: float
    reference: Optional[torch.Tensor] = None

    def record(self, model: nn.Module, batch: EditBatch) -> None:
        """The unedited model's distributions (call before the editors are attached)."""
        with torch.no_grad():
            self.reference = logprobs_with_locality(model, batch)[2]

    def loss(self, loc: torch.Tensor, result: "TrainResult") -> torch.Tensor:
        kl = locality_kl(self.reference, loc)
        result.locality_kl.append(float(kl.detach()))
        return self.weight * kl


def with_locality(batch: EditBatch, tok, hparams, prompts: Optional[list[str]]):
    """``(batch, term)``: the batch with the locality rows and the term that reads them; the term is
    None (and the batch unchanged) without prompts or with ``hparams.locality_weight`` 0."""
    weight = float(getattr(hparams, "locality_weight", 0.0) or 0.0)
    if not prompts or weight <= 0:
        return batch, None
    fmt = getattr(hparams, "prompt_format", "bare")
    batch = add_locality_rows(batch, tok, [format_prompt(tok, p, fmt) for p in prompts])
    return batch, (LocalityTerm(weight) if batch.loc_last else None)


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
    locality_kl: list[float] = field(default_factory=list)  # per step, when the locality term is on

    @property
    def final_loss(self) -> float:
        return self.losses[-1] if self.losses else math.nan

    @property
    def final_p_new(self) -> float:
        return self.p_new[-1] if self.p_new else math.nan

    @property
    def final_p_true(self) -> float:
        return self.p_true[-1] if self.p_true else math.nan


def _step_loss(model: nn.Module, batch: EditBatch, hparams, result: "TrainResult",
               locality: Optional[LocalityTerm] = None) -> torch.Tensor:
    """The loss of one step, logged in ``result``.

    The paper's loss, plus ``locality``'s term when one is given (not in the paper).
    """
    if locality is None:
        lp_new, lp_true = target_logprobs(model, batch)
    else:
        lp_new, lp_true, loc = logprobs_with_locality(model, batch)
    p_true = lp_true.exp()
    loss = hparams.new_loss_weight * (-lp_new) + hparams.true_loss_weight * p_true
    if locality is not None:
        loss = loss + locality.loss(loc, result)
    result.losses.append(float(loss.detach()))
    result.p_new.append(float(lp_new.detach().exp()))
    result.p_true.append(float(p_true.detach()))
    return loss


def _stop_reason(result: "TrainResult", hparams) -> Optional[str]:
    """Why training stops before the next step (None: it goes on)."""
    if result.losses[-1] < hparams.stop_loss:
        return "loss"
    if result.p_new[-1] > hparams.stop_prob:
        return "prob"
    if result.steps >= hparams.max_steps:
        return "max_steps"
    return None


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
    locality_prompts: Optional[list[str]] = None,
) -> TrainResult:
    """Train ``lora``'s A/B matrices so the model prefers ``target_new`` after ``prompt``.

    The prompt is put in ``hparams.prompt_format`` first (:mod:`memla_plugin.prompt_format`). The hooks are attached for the duration and detached afterwards (merging is the
    caller's business). Raises :class:`NaNLossError` on a non-finite loss; the model's
    weights are never written here, so the model is unchanged when that happens.
    With ``locality_prompts`` and ``hparams.locality_weight > 0`` (not in the paper) the loss
    also holds ``locality_weight * KL(unedited || edited)`` of the next token after each prompt.
    """
    t0 = time.perf_counter()
    prompt = format_prompt(tok, prompt, getattr(hparams, "prompt_format", "bare"))  # as attribution and scoring put it
    batch = encode_edit(tok, prompt, target_new, target_true, lang, model_device(model), label=label)
    batch, locality = with_locality(batch, tok, hparams, locality_prompts)
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
        if locality is not None:  # the unedited model's distributions, before the editors are attached
            locality.record(model, batch)
        lora.attach()
        opt = torch.optim.Adam(params, lr=hparams.lr)
        while True:
            with torch.enable_grad():
                loss = _step_loss(model, batch, hparams, result, locality=locality)
            if not math.isfinite(result.losses[-1]):
                raise NaNLossError(
                    f"MEMLA loss became {result.losses[-1]} after {result.steps} step(s)"
                    f"{' for ' + label if label else ''} (lr={hparams.lr}); the model was left unchanged"
                )
            stop = _stop_reason(result, hparams)
            if stop is not None:
                result.stopped_by = stop
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
