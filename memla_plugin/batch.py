"""Joint batch editing: several facts in one MEMLA edit (``hparams.batch_mode = "joint"``).

EasyEdit's ``BaseEditor.batch_edit`` hands the apply function a list of requests. With the
default ``batch_mode: sequential`` MEMLA edits them one after another; ``joint`` edits them
together, in four steps:

1. every fact is attributed and split into LIKN/LSKN exactly as a single edit does it, on the
   unedited model (so the neuron cache of single edits is reused);
2. every fact gets its own masked dual LoRA over its own neurons, seeded as a single edit is, so
   a fact's start does not depend on which other facts share its batch;
3. one training loop over one padded batch holding every fact's prompt+new and prompt+true rows.
   Each fact's rows see all facts' updates (the model as it will be after the merge), but the
   other facts' updates enter them detached: a fact's loss only reaches its own editor, that is
   its own neurons (per-fact masks). A fact whose stopping rule holds (loss below ``stop_loss`` or
   P(new) above ``stop_prob``) takes no optimiser step; it trains again if another fact's update
   undoes it. The loop ends when every fact's rule holds at once or after ``max_steps``;
4. one merge of ``apply_scale * sum_f Delta_f``.

Why per-fact masks rather than one editor over the union: with a union editor a fact's loss would
move rows of neurons that only other facts carry, so facts would trade each other's neurons; here
a neuron row changes only for the facts whose attribution selected it, and facts interact only
where their neuron sets overlap (both updates add there) and through the forward pass, which the
training sees. With one request the loop is exactly the single edit's (same batch, loss, Adam
steps and stop), so the updates are bit for bit those of ``batch_mode: sequential``.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from .architectures import ArchSpec, layer_list, resolve_architecture
from .devices import model_device
from .edit_report import EditReport
from .errors import HParamsError, NaNLossError, NoNeuronsError
from .masked_lora import MaskedLoRAConfig, MaskedLoRAModel
from .prompt_format import format_prompt
from .request import MultilingualRequest
from .training import EditBatch, LowerLayerCache, _kept_logits, encode_edit

#: settings a joint edit does not offer (each would need its own per-fact design)
UNSUPPORTED = ("locality_weight", "save_adapter_dir")


def check_joint(hparams: Any, **kwargs: Any) -> None:
    """Refuse, before anything runs, what a joint edit cannot honour."""
    if float(getattr(hparams, "locality_weight", 0.0) or 0.0) > 0:
        raise HParamsError("batch_mode=joint has no locality term; set locality_weight: 0 or batch_mode: sequential")
    if getattr(hparams, "save_adapter_dir", None) or kwargs.get("on_trained") is not None:
        raise HParamsError("batch_mode=joint cannot save adapters (one adapter per fact would be needed); "
                           "unset save_adapter_dir or use batch_mode: sequential")


# ---------------------------------------------------------------------------- one fact's part
@dataclass
class FactEdit:
    """One fact of the batch: its request, report, editors and encoded rows."""

    req: MultilingualRequest
    report: EditReport
    lora: MaskedLoRAModel
    rows: EditBatch
    losses: list[float] = field(default_factory=list)
    p_new: list[float] = field(default_factory=list)
    p_true: list[float] = field(default_factory=list)
    stopped_by: str = "max_steps"


def prepare_fact(model: nn.Module, tok: Any, request: dict, arch: ArchSpec, hparams: Any) -> FactEdit:
    """Attribution, neuron sets and editors of one fact, as :func:`memla_main.execute_memla` makes them."""
    from . import memla_main as mm  # memla_main imports this module lazily; here the cycle is closed

    report = EditReport()
    req = MultilingualRequest.from_easyedit(request)
    report.case_id = "?" if req.case_id is None else req.case_id
    report.edit_lang, report.model_type = req.edit_lang, arch.model_type
    mm._check_targets(tok, req)
    per_lang = mm._attribute(model, tok, req, arch, hparams, report)
    t0 = time.perf_counter()
    if hparams.generic_max_share is not None:  # not in the paper (memla_plugin.neurons.background)
        from .neurons.background import drop_generic

        background = mm._open_background(model, hparams)
        per_lang, report.generic_dropped_per_lang = drop_generic(per_lang, background, hparams.generic_max_share)
    sets = mm._neuron_sets(per_lang, req, hparams, report)
    config = MaskedLoRAConfig.from_neuron_sets(
        sets, use_specific=hparams.use_language_specific, use_independent=hparams.use_language_independent,
        rank_per_neuron=hparams.rank_per_neuron, use_masks=hparams.use_masks)
    report.sets_s = time.perf_counter() - t0
    report.n_lskn_trained, report.n_likn_trained = config.n_specific, config.n_independent
    report.layers = config.layers
    if config.is_empty():
        raise NoNeuronsError(f"nothing to train for {req.label}: LSKN has {sets.n_lskn} and LIKN {sets.n_likn} "
                             f"neurons (batch_mode=joint edits no fact of a batch unless it can edit all of them)")
    lora = MaskedLoRAModel(model, config, arch.edit_module_tmp, seed=hparams.seed)
    report.n_trainable = sum(p.numel() for p in lora.parameters())
    prompt = format_prompt(tok, req.prompt, getattr(hparams, "prompt_format", "bare"))
    rows = encode_edit(tok, prompt, req.target_new, req.target_true, req.edit_lang, model_device(model),
                       label=req.label)
    return FactEdit(req, report, lora, rows)


# ---------------------------------------------------------------------------- the joint batch
@dataclass
class JointBatch:
    """Every fact's two rows (new, true) right-padded into one batch; fact f owns rows 2f and 2f+1."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    first_read: int

    @property
    def n_keep(self) -> int:
        return self.input_ids.shape[1] - self.first_read


def join_rows(facts: list[FactEdit], pad: int) -> JointBatch:
    """One batch of all facts' rows; with one fact it is that fact's own batch, value for value."""
    width = max(f.rows.input_ids.shape[1] for f in facts)
    ref = facts[0].rows.input_ids
    ids = torch.full((2 * len(facts), width), pad, dtype=ref.dtype, device=ref.device)
    mask = torch.zeros((2 * len(facts), width), dtype=facts[0].rows.attention_mask.dtype, device=ref.device)
    for k, f in enumerate(facts):
        w = f.rows.input_ids.shape[1]
        ids[2 * k: 2 * k + 2, :w] = f.rows.input_ids
        mask[2 * k: 2 * k + 2, :w] = f.rows.attention_mask
    return JointBatch(ids, mask, min(f.rows.prompt_len - 1 for f in facts))


def fact_logprobs(logits: torch.Tensor, batch: JointBatch, k: int, fact: FactEdit) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probabilities of fact ``k``'s new and true targets, read from its own rows."""
    off = fact.rows.prompt_len - 1 - batch.first_read
    out = []
    for row, ids in ((2 * k, fact.rows.new_ids), (2 * k + 1, fact.rows.true_ids)):
        pred = logits[row, off: off + len(ids)].float().log_softmax(-1)
        out.append(pred.gather(-1, torch.tensor(ids, device=pred.device).unsqueeze(-1)).sum())
    return out[0], out[1]


class JointHooks:
    """One forward hook per edited layer adding every fact's update; other facts' enter detached."""

    def __init__(self, facts: list[FactEdit], n_rows: int, device: torch.device) -> None:
        self.facts = facts
        self.own = []  # per fact: bool (rows, 1, 1), True on that fact's rows
        for k in range(len(facts)):
            m = torch.zeros(n_rows, 1, 1, dtype=torch.bool, device=device)
            m[2 * k: 2 * k + 2] = True
            self.own.append(m)
        self._handles: list = []

    def attach(self) -> None:
        """One hook per layer that any fact edits (the hooks add up every fact editing that layer)."""
        layers = sorted({layer for f in self.facts for layer in f.lora.layers})
        for layer in layers:
            module = next(f.lora.targets[layer] for f in self.facts if layer in f.lora.targets)
            editors = [(k, f.lora.editors[str(layer)]) for k, f in enumerate(self.facts) if layer in f.lora.targets]
            self._handles.append(module.register_forward_hook(self._hook(editors)))

    def _hook(self, editors: list):
        single = len(self.facts) == 1

        def hook(module, args, output):
            total = None
            for k, editor in editors:
                e = editor(args[0])
                if not single:  # the gradient of fact k's rows reaches fact k's editor only
                    e = torch.where(self.own[k], e, e.detach())
                total = e if total is None else total + e
            return output + total.to(output.dtype)

        return hook

    def detach(self) -> None:
        """Remove the hooks (training is over or failed)."""
        for h in self._handles:
            h.remove()
        self._handles = []


# ---------------------------------------------------------------------------- training
def _fact_stop(fact: FactEdit, hparams: Any) -> Optional[str]:
    """Why fact's rule holds now ("loss" or "prob"), None while it still trains."""
    if fact.losses[-1] < hparams.stop_loss:
        return "loss"
    if fact.p_new[-1] > hparams.stop_prob:
        return "prob"
    return None


def _step(model: nn.Module, batch: JointBatch, facts: list[FactEdit], hparams: Any,
          steps: int) -> dict[int, torch.Tensor]:
    """One forward; every fact's loss logged; returns {fact index: loss} of the facts that still train."""
    logits = _kept_logits(model, batch)
    active = {}
    for k, fact in enumerate(facts):
        lp_new, lp_true = fact_logprobs(logits, batch, k, fact)
        p_true = lp_true.exp()
        loss = hparams.new_loss_weight * (-lp_new) + hparams.true_loss_weight * p_true
        fact.losses.append(float(loss.detach()))
        fact.p_new.append(float(lp_new.detach().exp()))
        fact.p_true.append(float(p_true.detach()))
        if not math.isfinite(fact.losses[-1]):
            raise NaNLossError(f"MEMLA loss of {fact.req.label} became {fact.losses[-1]} after {steps} joint "
                               f"step(s) (lr={hparams.lr}); the model was left unchanged")
        reason = _fact_stop(fact, hparams)
        fact.stopped_by = reason or "max_steps"
        if reason is None:
            active[k] = loss
    return active


def train_joint(model: nn.Module, tok: Any, facts: list[FactEdit], hparams: Any, *,
                reuse_lower_layers: bool = True) -> tuple[int, bool]:
    """Train every fact's editors in one loop (module docstring); returns (optimiser steps, lower layers reused)."""
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    batch = join_rows(facts, pad)
    params = [p for f in facts for p in f.lora.parameters()]
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    cache: Optional[LowerLayerCache] = None
    hooks = JointHooks(facts, batch.input_ids.shape[0], batch.input_ids.device)
    steps = 0
    try:
        for p, _ in frozen:
            p.requires_grad_(False)
        model.eval()
        lowest = min(layer for f in facts for layer in f.lora.layers)
        layers = layer_list(model, facts[0].lora.edit_module_tmp) if reuse_lower_layers and lowest > 0 else None
        if layers is not None and len(layers) > lowest:
            cache = LowerLayerCache(model, layers, lowest)
            cache.record(batch)
        hooks.attach()
        opt = torch.optim.Adam(params, lr=hparams.lr)
        while True:
            with torch.enable_grad():
                active = _step(model, batch, facts, hparams, steps)
            if not active or steps >= hparams.max_steps:
                break
            losses = list(active.values())
            loss = losses[0]
            for more in losses[1:]:
                loss = loss + more
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for k, fact in enumerate(facts):  # zeros reach a resting fact through the detached rows: no Adam step
                if k not in active:
                    for p in fact.lora.parameters():
                        p.grad = None
            opt.step()
            steps += 1
    finally:
        hooks.detach()
        if cache is not None:
            cache.restore()
        for p, flag in frozen:
            p.requires_grad_(flag)
        model.train(was_training)
    return steps, cache is not None


# ---------------------------------------------------------------------------- the call
def _fill_training(fact: FactEdit, steps: int, seconds: float, reused: bool) -> None:
    r = fact.report
    r.train_s, r.steps, r.stopped_by, r.reused_lower_layers = seconds, steps, fact.stopped_by, reused
    r.final_loss, r.p_new, r.p_true = fact.losses[-1], fact.p_new[-1], fact.p_true[-1]
    r.initial_loss = fact.losses[0]
    r.loss_trace, r.p_new_trace = list(fact.losses), list(fact.p_new)


def _call_report(facts: list[FactEdit], steps: int, seconds: float) -> EditReport:
    """One fact: its report. Several: totals, the worst fact's P(new), each fact under ``per_request``."""
    reports = [f.report for f in facts]
    if len(reports) == 1:
        return dataclasses.replace(reports[0])
    reasons = sorted({f.stopped_by for f in facts})
    return EditReport(
        case_id=[r.case_id for r in reports], edit_lang=reports[0].edit_lang, model_type=reports[0].model_type,
        attribution_s=sum(r.attribution_s or 0.0 for r in reports), cache_hits=sum(r.cache_hits or 0 for r in reports),
        n_likn=sum(r.n_likn or 0 for r in reports), n_lskn=sum(r.n_lskn or 0 for r in reports),
        n_lskn_trained=sum(r.n_lskn_trained for r in reports), n_likn_trained=sum(r.n_likn_trained for r in reports),
        layers=sorted({layer for r in reports for layer in r.layers}), n_trainable=sum(r.n_trainable for r in reports),
        train_s=seconds, steps=steps, stopped_by="max_steps" if "max_steps" in reasons else "+".join(reasons),
        final_loss=sum(f.losses[-1] for f in facts), p_new=min(f.p_new[-1] for f in facts),
        p_true=max(f.p_true[-1] for f in facts), per_request=reports)


def execute_joint(model: nn.Module, tok: Any, requests: list[dict], hparams: Any,
                  **kwargs: Any) -> tuple[dict[str, torch.Tensor], EditReport]:
    """MEMLA's updates for all ``requests`` edited together, without changing the model.

    Returns ``({parameter name: apply_scale * sum over facts of Delta_f}, report)``.
    """
    from . import memla_main as mm

    t_start = time.perf_counter()
    check_joint(hparams, **kwargs)
    if not requests:
        raise HParamsError("batch_mode=joint was given no requests")
    arch = resolve_architecture(model, hparams.attr_module_tmp, hparams.edit_module_tmp)
    facts = []
    for request in requests:
        facts.append(prepare_fact(model, tok, request, arch, hparams))
        mm._set_last(facts[-1].report)  # a failure shows how far the failing fact got
    t0 = time.perf_counter()
    steps, reused = train_joint(model, tok, facts, hparams, reuse_lower_layers=kwargs.get("reuse_lower_layers", True))
    seconds = time.perf_counter() - t0
    updates: dict[str, torch.Tensor] = {}
    for fact in facts:
        _fill_training(fact, steps, seconds, reused)
        for name, upd in fact.lora.weight_updates(scale=hparams.apply_scale).items():
            if not torch.isfinite(upd).all():
                raise NaNLossError(f"MEMLA update of {name} for {fact.req.label} is not finite; model unchanged")
            updates[name] = upd if name not in updates else updates[name] + upd
    report = _call_report(facts, steps, seconds)
    report.total_s = time.perf_counter() - t_start
    return updates, report


def apply_joint(model: nn.Module, tok: Any, requests: list[dict], hparams: Any,
                originals: dict[str, torch.Tensor], **kwargs: Any) -> EditReport:
    """Edit ``model`` in place with one joint edit of ``requests``; ``originals`` receives the weights before it."""
    from . import memla_main as mm

    t0 = time.perf_counter()
    updates, report = execute_joint(model, tok, requests, hparams, **kwargs)
    t_merge = time.perf_counter()
    mm._merge(model, updates, originals)
    report.merge_s = time.perf_counter() - t_merge
    report.changed_params = sorted(updates)
    report.n_requests = len(requests)
    report.apply_s = time.perf_counter() - t0
    mm._set_last(report)
    return report


__all__ = ["FactEdit", "JointBatch", "UNSUPPORTED", "apply_joint", "check_joint", "execute_joint", "join_rows",
           "prepare_fact", "train_joint"]
