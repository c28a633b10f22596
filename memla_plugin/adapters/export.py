"""Write MEMLA edits as peft LoRA adapter directories.

A directory holds what ``PeftModel.from_pretrained`` reads (``adapter_config.json`` and
``adapter_model.safetensors``) plus :data:`~memla_plugin.adapters.sidecar.SIDECAR_NAME`.
:class:`AdapterCapture` is the hook ``apply_memla_to_model`` calls after training each
request (``on_trained``), so the low-rank factors are kept rather than only their product.
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Optional, Union

from .factors import ModuleFactors, concat_factors, peft_factors
from .sidecar import AdapterError, AdapterSidecar, EditProvenance, code_version, hparams_hash, model_fingerprint

WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"


def _pattern_key(module: str) -> str:
    """A rank_pattern key for one module that every peft release since 0.13 matches.

    Older releases match ``.*\\.<key>$`` (a dot is required before the key), newer ones
    ``(.*\\.)?<key>$``; dropping the first name component and escaping satisfies both.
    """
    head, _, tail = module.partition(".")
    return re.escape(tail or head)


def lora_config(factors: dict[str, ModuleFactors], base_model_name_or_path: Optional[str] = None):
    """peft ``LoraConfig`` whose modules, ranks and alpha (= rank, scaling 1) fit ``factors``."""
    from peft import LoraConfig  # lazy: memla_plugin works without peft installed

    if not factors:
        raise AdapterError("no edited modules: nothing to export")
    kinds = {f.kind for f in factors.values()}
    if len(kinds) != 1:
        raise AdapterError(f"edited modules mix layouts {sorted(kinds)}; one adapter needs one layout")
    ranks = {name: f.rank for name, f in factors.items()}
    r = next(iter(ranks.values()))
    uniform = len(set(ranks.values())) == 1
    pattern = {} if uniform else {_pattern_key(name): rank for name, rank in ranks.items()}
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=r,
        lora_alpha=r,  # scaling = alpha / r = 1: apply_scale is already in lora_B
        rank_pattern=pattern,
        alpha_pattern=dict(pattern),
        target_modules=sorted(factors),
        lora_dropout=0.0,
        bias="none",
        fan_in_fan_out=kinds == {"conv1d"},
        use_rslora=False,
        init_lora_weights=True,
        base_model_name_or_path=base_model_name_or_path,
        inference_mode=True,
    )


def export_adapter(
    directory: Union[str, Path],
    factors: dict[str, ModuleFactors],
    sidecar: AdapterSidecar,
    overwrite: bool = False,
) -> Path:
    """Write ``factors`` as a peft LoRA adapter with ``sidecar`` into ``directory``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise AdapterError(f"adapter directory {directory} exists and is not a directory")
    if (directory / CONFIG_NAME).exists() and not overwrite:
        raise AdapterError(f"{directory} already holds an adapter ({CONFIG_NAME}); choose another directory")
    config = lora_config(factors, sidecar.model_name)
    directory.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(directory))
    tensors = {}
    for name, f in factors.items():
        tensors[f"base_model.model.{name}.lora_A.weight"] = f.lora_A.contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = f.lora_B.contiguous()
    save_file(tensors, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
    sidecar.write(directory)
    return directory


def unique_dir(parent: Union[str, Path], name: str) -> Path:
    """``parent/name``, or ``parent/name-2``, ``-3``... when taken (never overwrites an edit)."""
    parent = Path(parent)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "edit"
    candidate, n = parent / safe, 1
    while candidate.exists():
        n += 1
        candidate = parent / f"{safe}-{n}"
    return candidate


class AdapterCapture:
    """Collects each request's trained factors during ``apply_memla_to_model`` and saves them.

    Create it before the edit (it fingerprints the unedited weights) and pass it as
    ``on_trained=capture``; after the call, :meth:`save` writes one adapter whose update is the
    sum of every request's update, i.e. exactly what the call merged into the model.
    """

    def __init__(self, model: Any, hparams: Any) -> None:
        self.hparams = hparams
        config = getattr(model, "config", None)
        self.model_name = str(getattr(config, "name_or_path", "") or getattr(hparams, "model_name", ""))
        self.model_type = str(getattr(config, "model_type", "") or "")
        t0 = time.perf_counter()
        self.model_hash = model_fingerprint(model)
        self.fingerprint_s = time.perf_counter() - t0
        self.code = code_version()  # the code that makes the edit, read before it runs
        self.factors: list[dict[str, ModuleFactors]] = []
        self.edits: list[EditProvenance] = []

    def __call__(self, *, lora, edit, per_lang, likn, lskn, hparams, stats, **_: Any) -> None:
        """The ``on_trained`` hook: keep the factors and provenance of one trained request."""
        label = f"edit{len(self.edits)}"
        self.factors.append(peft_factors(lora, hparams.apply_scale, label=label))
        cfg = lora.config
        self.edits.append(EditProvenance(
            case_id=edit.case_id,
            edit_lang=edit.edit_lang,
            prompt=edit.prompt,
            subject=edit.subject,
            target_new=edit.target_new,
            target_true=edit.target_true,
            paraphrases=list(edit.paraphrases),
            neurons_per_lang={lang: len(s) for lang, s in per_lang.items()},
            likn={int(k): list(v) for k, v in likn.items()},
            lskn={int(k): list(v) for k, v in lskn.items()},
            trained_specific=dict(cfg.specific),
            trained_independent=dict(cfg.independent),
            training={k: stats.get(k) for k in ("steps", "stopped_by", "final_loss", "p_new", "p_true", "train_s")},
        ))

    def default_name(self) -> str:
        """A directory name from the edited requests: ``case<id>-<lang>`` (first one, plus a count)."""
        if not self.edits:
            return "edit"
        first = self.edits[0]
        name = f"case{first.case_id}-{first.edit_lang}"
        return name if len(self.edits) == 1 else f"{name}-and-{len(self.edits) - 1}-more"

    def sidecar(self, factors: dict[str, ModuleFactors]) -> AdapterSidecar:
        hp = self.hparams.to_dict() if hasattr(self.hparams, "to_dict") else dict(self.hparams)
        hp.pop("save_adapter_dir", None)  # where it was saved is not part of the edit
        return AdapterSidecar(
            model_name=self.model_name,
            model_type=self.model_type,
            model_hash=self.model_hash,
            apply_scale=float(hp.get("apply_scale", 1.0)),
            hparams=hp,
            hparams_hash=hparams_hash(hp),
            edits=list(self.edits),
            modules={
                name: {"kind": f.kind, "rank": f.rank,
                       "parts": [{"label": lab, "rank": r, "neurons": n} for lab, r, n in f.parts]}
                for name, f in factors.items()
            },
            code=dict(self.code),
        )

    def save(self, directory: Union[str, Path], overwrite: bool = False) -> Path:
        """Write the captured edits as one adapter into ``directory``."""
        if not self.factors:
            raise AdapterError("no edit was captured: run apply_memla_to_model(..., on_trained=capture) first")
        factors = concat_factors(self.factors)
        return export_adapter(directory, factors, self.sidecar(factors), overwrite=overwrite)
