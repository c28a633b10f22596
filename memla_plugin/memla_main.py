"""MEMLA in EasyEdit's apply-function contract.

``apply_memla_to_model`` has the signature EasyEdit's ``BaseEditor`` calls
(``ALG_DICT[alg_name](model, tok, requests, hparams, copy=..., return_orig_weights=...,
keep_original_weight=..., **kw) -> (model, weights_copy)``). One request is edited like this
(MEMLA paper, arXiv 2406.11566, §3):

1. resolve the model's FFN module names (``memla_plugin.architectures``);
2. find the knowledge neurons of the fact in the edit language and in each identification
   language the request carries (or the neuron cache holds);
3. split them into language-independent (LIKN) and language-specific (LSKN) sets;
4. train masked dual LoRA editors on the edit prompt;
5. merge ``apply_scale * Delta`` into the down-projections.

Requests are EasyEdit dicts as described in :mod:`memla_plugin.request`.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from copy import deepcopy
from typing import Any, Optional, Union

import torch
from torch import nn

from . import neurons
from .architectures import ArchSpec, resolve_architecture
from .edit_report import EditReport
from .errors import EmptyTargetError, MissingLanguageError, NaNLossError, NoNeuronsError
from .hparams import MEMLAHyperParams
from .masked_lora import MaskedLoRAConfig, MaskedLoRAModel, merge_update
from .neurons.settings import AttributionSettings
from .request import MultilingualRequest
from .training import target_ids, target_with_space, train_masked_lora

LOG = logging.getLogger(__name__)

Neuron = tuple[int, int]

_last = threading.local()


def last_edit_report() -> Optional[EditReport]:
    """The report of the latest MEMLA edit in this thread (None before the first one).

    EasyEdit's contract fixes what an apply function returns, ``(model, weights_copy)``, and
    ``BaseEditor`` passes no extra arguments through, so a return value or a callback cannot
    reach a caller that edits through the host. This accessor can; each edit gets a fresh
    report object (a reference kept by the caller is never changed by a later edit), and a
    failed edit leaves the report of how far it got. Direct callers may instead take the
    report :func:`execute_memla` returns.
    """
    return getattr(_last, "report", None)


def _set_last(report: EditReport) -> None:
    _last.report = report


# ---------------------------------------------------------------------------- neurons
def _find_neurons(model, tok, prompts: list[str], target: str, arch: ArchSpec, hparams) -> set[Neuron]:
    # resolved at call time, so a wrapper installed on the package (memla-edit's progress) is used
    return {(int(l), int(i)) for l, i in neurons.find_neurons(model, tok, prompts, target, arch, hparams)}


def _model_name(model: nn.Module, hparams: MEMLAHyperParams) -> str:
    name = str(hparams.model_name)
    if name == "default":
        name = str(getattr(getattr(model, "config", None), "name_or_path", "") or "default")
    return name


def _open_cache(model: nn.Module, hparams: MEMLAHyperParams, settings: AttributionSettings):
    if not hparams.neuron_cache_dir:
        return None
    return neurons.NeuronCache(hparams.neuron_cache_dir, settings.cache_key(_model_name(model, hparams)))


def _open_background(model: nn.Module, hparams: MEMLAHyperParams):
    """The train-split background (generic filter, locality term) under this edit's attribution settings."""
    from .neurons.background import Background

    settings = AttributionSettings.from_hparams(hparams)
    return Background(hparams.background_dir, settings.cache_key(_model_name(model, hparams)))


def _cache_id(request: MultilingualRequest, lang: str, settings: AttributionSettings) -> Any:
    """The case id when the caller gave one, else an id of the language's attribution inputs."""
    if request.case_id is not None:
        return request.case_id
    return request.content_id(lang, repr(settings))


def _attribute(model, tok, request: MultilingualRequest, arch: ArchSpec, hparams, report: EditReport):
    """Neurons of the edit language and every identification language available (paper §3.1)."""
    t0 = time.perf_counter()
    settings = AttributionSettings.from_hparams(hparams)
    cache = _open_cache(model, hparams, settings)
    bounds = neurons.neuron_bounds(model, arch) if cache is not None else None
    wanted = [request.edit_lang] + [l for l in hparams.id_langs if l != request.edit_lang]
    per_lang: dict[str, set[Neuron]] = {}
    lang_seconds: dict[str, float] = {}
    hits = 0
    for lang in wanted:
        key = _cache_id(request, lang, settings)
        cached = cache.get(key, lang, bounds) if cache is not None and key is not None else None
        if cached is not None:
            per_lang[lang] = {(int(l), int(i)) for l, i in cached}
            hits += 1
            continue
        inputs = request.attribution_inputs(lang)
        if inputs is None:
            continue
        prompts, target = inputs  # the language's target_true
        if not target.strip():
            raise EmptyTargetError(f"target_true of case {'?' if request.case_id is None else request.case_id}, "
                                  f"{lang} is empty")
        t_lang = time.perf_counter()
        target = settings.attribution_target(target, lang, tok)
        per_lang[lang] = _find_neurons(model, tok, prompts, target, arch, hparams)
        lang_seconds[lang] = time.perf_counter() - t_lang
        if cache is not None:
            cache.put(key, lang, request.relation, sorted(per_lang[lang]))
    report.attribution_s = time.perf_counter() - t0
    report.attribution_s_per_lang = lang_seconds
    report.cache_hits = hits
    report.neurons_per_lang = {lang: len(s) for lang, s in per_lang.items()}
    if not any(per_lang.values()):
        raise NoNeuronsError(
            f"attribution found no neurons for {request.label} in any language "
            f"({', '.join(per_lang) or 'none'}; attr_threshold={hparams.attr_threshold}, "
            f"attr_steps={hparams.attr_steps}); nothing to edit"
        )
    return per_lang


def _neuron_sets(per_lang: dict[str, set[Neuron]], request: MultilingualRequest, hparams, report: EditReport):
    """LIKN and LSKN (paper §3.2), warning when identification languages are missing."""
    available = [l for l in hparams.id_langs if l in per_lang]
    missing = [l for l in hparams.id_langs if l not in per_lang]
    report.missing_id_langs = missing
    if request.edit_lang not in per_lang:
        raise MissingLanguageError(f"no attribution for the edit language of {request.label}")
    # an intersection over fewer than two languages would call every neuron language-independent
    use_ids = available if len(available) >= 2 else []
    sets = neurons.build_neuron_sets(per_lang, request.edit_lang, use_ids, min_langs=hparams.likn_min_langs)
    if missing:
        LOG.warning(
            "MEMLA %s: identification language(s) %s missing from the request and the neuron cache; %s",
            request.label, ", ".join(missing),
            f"language-independent neurons are the intersection over {', '.join(available)} only" if use_ids
            else "editing with the language-specific editor alone (no language-independent neurons)",
        )
    report.n_likn, report.n_lskn = sets.n_likn, sets.n_lskn
    return sets


def _check_targets(tok, request: MultilingualRequest) -> None:
    """Fail fast on targets that cannot be trained on."""
    for what, text in (("target_new", request.target_new), ("target_true", request.target_true)):
        if not text or not text.strip():
            raise EmptyTargetError(f"{what} of {request.label} is empty")
        target_ids(tok, target_with_space(text, request.edit_lang, tok), what=f"{what} of {request.label}")


def _record_training(report: EditReport, result) -> None:
    report.train_s = result.seconds
    report.steps = result.steps
    report.stopped_by = result.stopped_by
    report.final_loss = result.final_loss
    report.p_new = result.final_p_new
    report.p_true = result.final_p_true
    report.initial_loss = result.losses[0] if result.losses else float("nan")
    report.reused_lower_layers = result.reused_lower_layers
    report.loss_trace = list(result.losses)
    report.p_new_trace = list(result.p_new)
    if result.locality_kl:
        report.locality_kl = result.locality_kl[-1]


# ---------------------------------------------------------------------------- one request
def execute_memla(
    model: nn.Module, tok, request: dict, hparams: MEMLAHyperParams, **kwargs: Any
) -> tuple[dict[str, torch.Tensor], EditReport]:
    """Compute MEMLA's weight updates for one request without changing the model.

    Returns ``({parameter name: apply_scale * Delta}, report)``, each update in its weight's
    own layout (float32). The report is filled phase by phase and is also what
    :func:`last_edit_report` returns, so a failed edit still shows how far it got.
    """
    t_start = time.perf_counter()
    report = EditReport()
    _set_last(report)
    req = MultilingualRequest.from_easyedit(request)
    report.case_id = "?" if req.case_id is None else req.case_id
    report.edit_lang = req.edit_lang
    _check_targets(tok, req)
    arch = resolve_architecture(model, hparams.attr_module_tmp, hparams.edit_module_tmp)
    report.model_type = arch.model_type

    per_lang = _attribute(model, tok, req, arch, hparams, report)
    t0 = time.perf_counter()
    background = _open_background(model, hparams) if hparams.background_dir else None
    if hparams.generic_max_share is not None:  # not in the paper: see memla_plugin.neurons.background
        from .neurons.background import drop_generic

        per_lang, report.generic_dropped_per_lang = drop_generic(per_lang, background, hparams.generic_max_share)
    sets = _neuron_sets(per_lang, req, hparams, report)
    config = MaskedLoRAConfig.from_neuron_sets(
        sets,
        use_specific=hparams.use_language_specific,
        use_independent=hparams.use_language_independent,
        rank_per_neuron=hparams.rank_per_neuron,
        use_masks=hparams.use_masks,
    )
    report.sets_s = time.perf_counter() - t0
    report.n_lskn_trained, report.n_likn_trained = config.n_specific, config.n_independent
    report.layers = config.layers
    if config.is_empty():
        raise NoNeuronsError(
            f"nothing to train for {req.label}: LSKN has {sets.n_lskn} and LIKN {sets.n_likn} neurons, "
            f"use_language_specific={hparams.use_language_specific}, "
            f"use_language_independent={hparams.use_language_independent}"
        )

    # masked dual LoRA (paper §3.3), trained on the edit prompt (§3.4)
    lora = MaskedLoRAModel(model, config, arch.edit_module_tmp, seed=hparams.seed)
    report.n_trainable = sum(p.numel() for p in lora.parameters())
    loc_prompts = None
    if hparams.locality_weight > 0:  # not in the paper: prompts of training-split facts, never evaluation ones
        own = req.languages.get(req.edit_lang)
        template = own.extra.get("template") if own is not None else None
        loc_prompts = background.prompts(req.edit_lang, hparams.locality_prompts, template=template)
    result = train_masked_lora(
        model, tok, lora, req.prompt, req.target_new, req.target_true, req.edit_lang, hparams,
        reuse_lower_layers=kwargs.get("reuse_lower_layers", True), label=req.label, locality_prompts=loc_prompts,
    )
    _record_training(report, result)

    # the update to merge (§3.5)
    updates = lora.weight_updates(scale=hparams.apply_scale)
    for name, upd in updates.items():
        if not torch.isfinite(upd).all():
            raise NaNLossError(f"MEMLA update of {name} for {req.label} is not finite; the model was left unchanged")
    on_trained = kwargs.get("on_trained")  # e.g. memla_plugin.adapters.AdapterCapture: keeps the factors
    if on_trained is not None:
        on_trained(lora=lora, edit=req, per_lang=per_lang, likn=sets.likn, lskn=sets.lskn, hparams=hparams,
                   stats=report.as_dict())
    report.total_s = time.perf_counter() - t_start
    return updates, report


# ---------------------------------------------------------------------------- EasyEdit entry point
def _get_parameter(model: nn.Module, name: str) -> nn.Parameter:
    try:
        return model.get_parameter(name)
    except AttributeError:
        raise LookupError(f"{name} is not a parameter of the model") from None


def _merge(model: nn.Module, updates: dict[str, torch.Tensor], originals: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, upd in updates.items():
            weight = _get_parameter(model, name)
            if name not in originals:
                originals[name] = weight.detach().clone()
            merge_update(weight, upd)


def _joint_edit(hparams: MEMLAHyperParams):
    """The joint batch edit of :mod:`memla_plugin.batch` when ``batch_mode`` asks for it, else None."""
    if getattr(hparams, "batch_mode", "sequential") != "joint":
        return None
    from .batch import apply_joint  # lazy: the module exists for batch calls alone

    return apply_joint


def apply_memla_to_model(
    model: nn.Module,
    tok,
    requests: Union[dict, list[dict]],
    hparams: MEMLAHyperParams,
    copy: bool = False,
    return_orig_weights: bool = False,
    keep_original_weight: bool = False,
    **kwargs: Any,
) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Edit ``model`` with MEMLA, one request after the other (EasyEdit's apply contract).

    With ``hparams.batch_mode == "joint"`` the requests are edited together instead
    (:mod:`memla_plugin.batch`: one training over all facts' neurons, one merge).

    ``copy=True`` edits a deep copy. With ``return_orig_weights`` the second value maps
    the full name of every changed parameter to a clone of its value before the first
    request. If any request fails, every change already made is undone before the error
    propagates, so a failed call leaves the model exactly as it was.
    ``keep_original_weight`` is accepted for the contract; MEMLA always edits in place.
    The edit report is available from :func:`last_edit_report` afterwards. With
    ``hparams.save_adapter_dir`` set, the call's edit is also written as a peft LoRA adapter
    into a new subdirectory of it (its path in the report's ``adapter_dir``).
    """
    if isinstance(requests, dict):
        requests = [requests]
    if copy:
        model = deepcopy(model)
    originals: dict[str, torch.Tensor] = {}
    t0 = time.perf_counter()
    reports: list[EditReport] = []
    capture = None
    adapter_dir = None
    # a caller's own on_trained hook (e.g. memla-edit --save-adapter) takes precedence over the hparams switch
    if getattr(hparams, "save_adapter_dir", None) and kwargs.get("on_trained") is None:
        from .adapters.export import AdapterCapture  # lazy: peft only when adapters are wanted

        capture = kwargs["on_trained"] = AdapterCapture(model, hparams)
    joint = _joint_edit(hparams)
    try:
        if joint is None:
            for request in requests:
                updates, report = execute_memla(model, tok, request, hparams, **kwargs)
                t_merge = time.perf_counter()
                _merge(model, updates, originals)
                report.merge_s = time.perf_counter() - t_merge
                report.changed_params = sorted(updates)
                reports.append(report)
        else:
            reports.append(joint(model, tok, requests, hparams, originals, **kwargs))
        if capture is not None:  # inside the try: a failed save undoes the edit like any failure
            from .adapters.export import unique_dir

            adapter_dir = str(capture.save(unique_dir(hparams.save_adapter_dir, capture.default_name())))
            LOG.info("MEMLA: saved the edit as a peft LoRA adapter in %s", adapter_dir)
    except BaseException:
        with torch.no_grad():
            for name, value in originals.items():
                _get_parameter(model, name).copy_(value)
        raise
    if reports:  # the call's report: the last request's, with the totals of the call
        total = dataclasses.replace(reports[-1], n_requests=len(requests), apply_s=time.perf_counter() - t0,
                                    per_request=reports if len(reports) > 1 else reports[-1].per_request,
                                    adapter_dir=adapter_dir)
        _set_last(total)
    return model, (originals if return_orig_weights else {})
