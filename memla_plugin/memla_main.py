"""MEMLA in EasyEdit's apply-function contract.

``apply_memla_to_model`` has the signature EasyEdit's ``BaseEditor`` calls
(``ALG_DICT[alg_name](model, tok, requests, hparams, copy=..., return_orig_weights=...,
keep_original_weight=..., **kw) -> (model, weights_copy)``). One request is edited like this
(DESIGN §3):

1. resolve the model's FFN module names (``memla_plugin.architectures``);
2. find the knowledge neurons of the fact in the edit language and in each identification
   language the request carries (or the neuron cache holds);
3. split them into language-independent (LIKN) and language-specific (LSKN) sets;
4. train masked dual LoRA editors on the edit prompt;
5. merge ``apply_scale * Delta`` into the down-projections.

A request is EasyEdit's dict (``prompt``, ``target_new``, ``ground_truth``, ``subject``,
``rephrase_prompt``, ...) plus ``edit_lang`` and ``languages`` = ``{lang: {prompt, subject,
target_new, target_true, paraphrases}}`` with the same fact in other languages.
"""
from __future__ import annotations

import logging
import time
from copy import deepcopy
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Optional, Union

import torch
from torch import nn

from .architectures import ArchSpec, resolve_architecture
from .errors import EmptyTargetError, MissingLanguageError, NaNLossError, NoNeuronsError
from .hparams import MEMLAHyperParams
from .masked_lora import MaskedLoRAConfig, MaskedLoRAModel, merge_update
from .training import target_ids, target_with_space, train_masked_lora

LOG = logging.getLogger(__name__)

#: timings and counts of the last request edited (mutated in place; import it freely)
LAST_EDIT_STATS: dict[str, Any] = {}

Neuron = tuple[int, int]


# ---------------------------------------------------------------------------- request views
@dataclass
class LangView:
    """What attribution needs of one language: prompts (edit + paraphrases) and the old target."""

    lang: str
    prompts: list[str]
    target_true: str


@dataclass
class EditView:
    """What training needs of the edit language."""

    case_id: Any
    edit_lang: str
    prompt: str
    subject: str
    target_new: str
    target_true: str
    paraphrases: list[str] = field(default_factory=list)
    relation: str = ""

    @property
    def label(self) -> str:
        return f"case {self.case_id}, {self.edit_lang}"


def _fill(prompt: str, subject: Optional[str]) -> str:
    """Requests normally carry filled prompts; a template with "{}" is filled with the subject."""
    if subject and "{}" in prompt:
        return prompt.replace("{}", subject)
    return prompt


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    return [str(v) for v in value if v is not None and str(v).strip()]


def edit_view(request: dict) -> EditView:
    """The edit-language fact of an EasyEdit request (top-level keys, else ``languages[edit_lang]``)."""
    case_id = request.get("case_id", "?")
    edit_lang = request.get("edit_lang") or "en"
    langs = request.get("languages") or {}
    own = langs.get(edit_lang) or {}

    def pick(top_key: str, lang_key: str) -> Any:
        value = request.get(top_key)
        if value is None:  # absent: take the language entry; present but empty stays an error
            value = own.get(lang_key)
        return value

    subject = pick("subject", "subject") or ""
    prompt = pick("prompt", "prompt")
    target_new = pick("target_new", "target_new")
    target_true = pick("ground_truth", "target_true")
    for key, value in (("prompt", prompt), ("target_new", target_new), ("ground_truth", target_true)):
        if value is None:
            raise MissingLanguageError(
                f"request case {case_id} ({edit_lang}) has no {key!r} (neither top-level nor in languages[{edit_lang!r}])"
            )
    if isinstance(target_new, dict):  # EasyEdit sometimes wraps targets as {"str": ...}
        target_new = target_new.get("str", "")
    if isinstance(target_true, dict):
        target_true = target_true.get("str", "")
    paraphrases = _as_list(own.get("paraphrases")) if "paraphrases" in own else _as_list(request.get("rephrase_prompt"))
    return EditView(
        case_id=case_id,
        edit_lang=edit_lang,
        prompt=_fill(str(prompt), subject),
        subject=str(subject),
        target_new=str(target_new),
        target_true=str(target_true),
        paraphrases=[_fill(p, subject) for p in paraphrases],
        relation=str(request.get("relation_name") or request.get("relation_description") or ""),
    )


def lang_view(request: dict, lang: str, edit: EditView) -> Optional[LangView]:
    """Attribution inputs of ``lang`` from the request; None when the request lacks that language."""
    if lang == edit.edit_lang:
        return LangView(lang, [edit.prompt] + edit.paraphrases, edit.target_true)
    data = (request.get("languages") or {}).get(lang)
    if not data or not data.get("prompt") or not data.get("target_true"):
        return None
    subject = data.get("subject")
    prompts = [_fill(str(data["prompt"]), subject)] + [_fill(p, subject) for p in _as_list(data.get("paraphrases"))]
    return LangView(lang, prompts, str(data["target_true"]))


# ---------------------------------------------------------------------------- neurons (ATTRIBUTION helper's module)
def _neurons():
    return import_module("memla_plugin.neurons")


def _find_neurons(model, tok, prompts: list[str], target: str, arch: ArchSpec, hparams) -> set[Neuron]:
    return {(int(l), int(i)) for l, i in _neurons().find_neurons(model, tok, prompts, target, arch, hparams)}


def _build_neuron_sets(per_lang: dict[str, set[Neuron]], edit_lang: str, id_langs: list[str]):
    return _neurons().build_neuron_sets(per_lang, edit_lang, id_langs)


def _model_key(model: nn.Module, hparams: MEMLAHyperParams) -> str:
    """Cache key: the model's name plus the attribution settings that change the neurons."""
    name = str(hparams.model_name)
    if name == "default":
        name = str(getattr(getattr(model, "config", None), "name_or_path", "") or "default")
    return _neurons().cache_key(
        name, hparams.attr_steps, hparams.attr_baseline, hparams.attr_threshold, hparams.layers
    )


def _open_cache(model: nn.Module, hparams: MEMLAHyperParams):
    if not hparams.neuron_cache_dir:
        return None
    return _neurons().NeuronCache(hparams.neuron_cache_dir, _model_key(model, hparams))


# ---------------------------------------------------------------------------- one request
def execute_memla(
    model: nn.Module, tok, request: dict, hparams: MEMLAHyperParams, **kwargs: Any
) -> dict[str, torch.Tensor]:
    """Compute MEMLA's weight updates for one request without changing the model.

    Returns ``{parameter name: apply_scale * Delta}`` in each weight's own layout (float32).
    Per-phase timings and counts land in :data:`LAST_EDIT_STATS`.
    """
    t_start = time.perf_counter()
    stats = LAST_EDIT_STATS  # filled as we go, so a failed edit still shows how far it got
    stats.clear()
    edit = edit_view(request)
    stats["case_id"] = edit.case_id
    stats["edit_lang"] = edit.edit_lang

    # fail fast on targets that cannot be trained on
    for what, text in (("target_new", edit.target_new), ("target_true", edit.target_true)):
        if not text or not text.strip():
            raise EmptyTargetError(f"{what} of {edit.label} is empty")
        target_ids(tok, target_with_space(text, edit.edit_lang, tok), what=f"{what} of {edit.label}")

    arch = resolve_architecture(model, hparams.attr_module_tmp, hparams.edit_module_tmp)
    stats["model_type"] = arch.model_type

    # --- §3.1 attribution: the edit language and every identification language available
    t0 = time.perf_counter()
    cache = _open_cache(model, hparams)
    wanted = [edit.edit_lang] + [l for l in hparams.id_langs if l != edit.edit_lang]
    per_lang: dict[str, set[Neuron]] = {}
    lang_seconds: dict[str, float] = {}
    cache_hits = 0
    for lang in wanted:
        cached = cache.get(edit.case_id, lang) if cache is not None else None
        if cached is not None:
            per_lang[lang] = {(int(l), int(i)) for l, i in cached}
            cache_hits += 1
            continue
        view = lang_view(request, lang, edit)
        if view is None:
            continue
        if not view.target_true.strip():
            raise EmptyTargetError(f"target_true of case {edit.case_id}, {lang} is empty")
        t_lang = time.perf_counter()
        per_lang[lang] = _find_neurons(model, tok, view.prompts, view.target_true, arch, hparams)
        lang_seconds[lang] = time.perf_counter() - t_lang
        if cache is not None:
            cache.put(edit.case_id, lang, edit.relation, sorted(per_lang[lang]))
    stats["attribution_s"] = time.perf_counter() - t0
    stats["attribution_s_per_lang"] = lang_seconds
    stats["cache_hits"] = cache_hits
    stats["neurons_per_lang"] = {lang: len(s) for lang, s in per_lang.items()}

    if not any(per_lang.values()):
        raise NoNeuronsError(
            f"attribution found no neurons for {edit.label} in any language "
            f"({', '.join(per_lang) or 'none'}; attr_threshold={hparams.attr_threshold}, "
            f"attr_steps={hparams.attr_steps}); nothing to edit"
        )

    # --- §3.2 neuron sets
    t0 = time.perf_counter()
    available = [l for l in hparams.id_langs if l in per_lang]
    missing = [l for l in hparams.id_langs if l not in per_lang]
    stats["missing_id_langs"] = missing
    if edit.edit_lang not in per_lang:
        raise MissingLanguageError(f"no attribution for the edit language of {edit.label}")
    # an intersection over fewer than two languages would call every neuron language-independent
    use_ids = available if len(available) >= 2 else []
    sets = _build_neuron_sets(per_lang, edit.edit_lang, use_ids)
    likn = {int(k): list(v) for k, v in sets.likn.items()}
    lskn = {int(k): list(v) for k, v in sets.lskn.items()}
    if missing and use_ids:
        LOG.warning(
            "MEMLA %s: identification language(s) %s missing from the request and the neuron cache; "
            "language-independent neurons are the intersection over %s only",
            edit.label, ", ".join(missing), ", ".join(available),
        )
    elif missing:
        LOG.warning(
            "MEMLA %s: identification language(s) %s missing from the request and the neuron cache; "
            "editing with the language-specific editor alone (no language-independent neurons)",
            edit.label, ", ".join(missing),
        )
    stats["n_likn"] = sum(len(v) for v in likn.values())
    stats["n_lskn"] = sum(len(v) for v in lskn.values())
    specific = lskn if hparams.use_language_specific else {}
    independent = likn if hparams.use_language_independent else {}
    config = MaskedLoRAConfig(
        specific=specific,
        independent=independent,
        rank_per_neuron=hparams.rank_per_neuron,
        use_masks=hparams.use_masks,
    )
    stats["sets_s"] = time.perf_counter() - t0
    stats["n_lskn_trained"] = config.n_specific
    stats["n_likn_trained"] = config.n_independent
    stats["layers"] = config.layers
    if config.is_empty():
        raise NoNeuronsError(
            f"nothing to train for {edit.label}: LSKN has {stats['n_lskn']} and LIKN {stats['n_likn']} neurons, "
            f"use_language_specific={hparams.use_language_specific}, "
            f"use_language_independent={hparams.use_language_independent}"
        )

    # --- §3.3/3.4 masked dual LoRA, trained on the edit prompt
    lora = MaskedLoRAModel(model, config, arch.edit_module_tmp, seed=hparams.seed)
    stats["n_trainable"] = sum(p.numel() for p in lora.parameters())
    result = train_masked_lora(
        model, tok, lora, edit.prompt, edit.target_new, edit.target_true, edit.edit_lang, hparams,
        reuse_lower_layers=kwargs.get("reuse_lower_layers", True), label=edit.label,
    )
    stats["train_s"] = result.seconds
    stats["steps"] = result.steps
    stats["stopped_by"] = result.stopped_by
    stats["final_loss"] = result.final_loss
    stats["p_new"] = result.final_p_new
    stats["p_true"] = result.final_p_true
    stats["initial_loss"] = result.losses[0] if result.losses else float("nan")
    stats["reused_lower_layers"] = result.reused_lower_layers
    stats["loss_trace"] = list(result.losses)
    stats["p_new_trace"] = list(result.p_new)

    # --- §3.5 the update to merge
    updates = lora.weight_updates(scale=hparams.apply_scale)
    for name, upd in updates.items():
        if not torch.isfinite(upd).all():
            raise NaNLossError(f"MEMLA update of {name} for {edit.label} is not finite; the model was left unchanged")
    on_trained = kwargs.get("on_trained")  # e.g. memla_plugin.adapters.AdapterCapture: keeps the factors
    if on_trained is not None:
        on_trained(lora=lora, edit=edit, per_lang=per_lang, likn=likn, lskn=lskn, hparams=hparams, stats=stats)
    stats["total_s"] = time.perf_counter() - t_start
    return updates


# ---------------------------------------------------------------------------- EasyEdit entry point
def _get_parameter(model: nn.Module, name: str) -> nn.Parameter:
    try:
        return model.get_parameter(name)
    except AttributeError:
        raise LookupError(f"{name} is not a parameter of the model") from None


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

    ``copy=True`` edits a deep copy. With ``return_orig_weights`` the second value maps
    the full name of every changed parameter to a clone of its value before the first
    request. If any request fails, every change already made is undone before the error
    propagates, so a failed call leaves the model exactly as it was.
    ``keep_original_weight`` is accepted for the contract; MEMLA always edits in place.
    With ``hparams.save_adapter_dir`` set, the call's edit is also written as a peft LoRA
    adapter into a new subdirectory of it (path in ``LAST_EDIT_STATS["adapter_dir"]``).
    """
    if isinstance(requests, dict):
        requests = [requests]
    if copy:
        model = deepcopy(model)
    originals: dict[str, torch.Tensor] = {}
    t0 = time.perf_counter()
    per_request: list[dict[str, Any]] = []
    capture = None
    # a caller's own on_trained hook (e.g. memla-edit --save-adapter) takes precedence over the hparams switch
    if getattr(hparams, "save_adapter_dir", None) and kwargs.get("on_trained") is None:
        from .adapters.export import AdapterCapture  # lazy: peft only when adapters are wanted

        capture = kwargs["on_trained"] = AdapterCapture(model, hparams)
    try:
        for request in requests:
            updates = execute_memla(model, tok, request, hparams, **kwargs)
            t_merge = time.perf_counter()
            with torch.no_grad():
                for name, upd in updates.items():
                    weight = _get_parameter(model, name)
                    if name not in originals:
                        originals[name] = weight.detach().clone()
                    merge_update(weight, upd)
            LAST_EDIT_STATS["merge_s"] = time.perf_counter() - t_merge
            LAST_EDIT_STATS["changed_params"] = sorted(updates)
            per_request.append(dict(LAST_EDIT_STATS))
        if capture is not None:  # inside the try: a failed save undoes the edit like any failure
            from .adapters.export import unique_dir

            adapter_dir = capture.save(unique_dir(hparams.save_adapter_dir, capture.default_name()))
            LAST_EDIT_STATS["adapter_dir"] = str(adapter_dir)
            LOG.info("MEMLA: saved the edit as a peft LoRA adapter in %s", adapter_dir)
    except BaseException:
        with torch.no_grad():
            for name, value in originals.items():
                _get_parameter(model, name).copy_(value)
        raise
    LAST_EDIT_STATS["n_requests"] = len(requests)
    LAST_EDIT_STATS["apply_s"] = time.perf_counter() - t0
    if len(per_request) > 1:
        LAST_EDIT_STATS["per_request"] = per_request
    return model, (originals if return_orig_weights else {})
