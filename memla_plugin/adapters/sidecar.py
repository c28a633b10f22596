"""Provenance written next to a MEMLA adapter (``memla_edit.json``), and the model check.

peft's ``adapter_config.json`` says which modules an adapter touches, not which fact it
encodes or which weights it was computed on. A MEMLA update is only meaningful on the exact
weights it was trained against, so the sidecar records a fingerprint of those weights and
:func:`memla_plugin.adapters.load_memla_adapter` refuses a model that does not match.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import MEMLAError

SIDECAR_NAME = "memla_edit.json"
FORMAT = "memla-adapter/1"


class AdapterError(MEMLAError):
    """A MEMLA adapter directory is missing, malformed, or made for other model weights."""


# ----------------------------------------------------------------------------- fingerprints
def model_fingerprint(model: Any) -> str:
    """sha256 over every parameter's name, dtype, shape and bytes (peft wrappers see through).

    LoRA parameters injected by peft are skipped and ``.base_layer.`` is folded away, so a
    PeftModel whose adapters are not merged hashes like its base model.
    """
    import torch

    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                continue
            name = name.replace(".base_layer.", ".")
            t = p.detach()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
            h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def hparams_hash(hparams: dict[str, Any]) -> str:
    """sha256 of the hparams as canonical JSON (sorted keys)."""
    text = json.dumps(hparams, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def code_version() -> dict[str, Any]:
    """The plugin's version and, in a git checkout, its commit and whether tracked files differ."""
    from importlib import metadata

    out: dict[str, Any] = {"commit": None, "dirty": None}
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=20)
        if head.returncode == 0:
            out["commit"] = head.stdout.strip()
            st = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=20)
            out["dirty"] = bool(st.stdout.strip()) if st.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    for pkg in ("memla-plugin", "torch", "transformers", "peft"):
        try:
            out[pkg] = metadata.version(pkg)
        except Exception:  # noqa: BLE001 - provenance only
            out[pkg] = None
    return out


# ----------------------------------------------------------------------------- records
def _int_keys(d: dict) -> dict[int, list[int]]:
    return {int(k): [int(i) for i in v] for k, v in sorted(d.items(), key=lambda kv: int(kv[0]))}


@dataclass
class EditProvenance:
    """One fact edited into the adapter: the request, its neurons and how training went."""

    case_id: Any
    edit_lang: str
    prompt: str
    subject: str
    target_new: str
    target_true: str
    paraphrases: list[str] = field(default_factory=list)
    #: languages attributed, each with the number of neurons found there
    neurons_per_lang: dict[str, int] = field(default_factory=dict)
    #: LIKN / LSKN found ({layer: [neuron, ...]}) and the sets actually trained
    likn: dict[int, list[int]] = field(default_factory=dict)
    lskn: dict[int, list[int]] = field(default_factory=dict)
    trained_specific: dict[int, list[int]] = field(default_factory=dict)
    trained_independent: dict[int, list[int]] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "EditProvenance":
        d = dict(d)
        for key in ("likn", "lskn", "trained_specific", "trained_independent"):
            d[key] = _int_keys(d.get(key) or {})
        return cls(**d)


@dataclass
class AdapterSidecar:
    """Everything needed to tell what an adapter directory holds and what it applies to."""

    model_name: str
    model_type: str
    model_hash: str
    apply_scale: float
    hparams: dict[str, Any]
    hparams_hash: str
    edits: list[EditProvenance]
    modules: dict[str, dict[str, Any]]
    code: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {"format": d.pop("format"), **d}

    @classmethod
    def from_dict(cls, d: dict, source: str = "<dict>") -> "AdapterSidecar":
        if d.get("format") != FORMAT:
            raise AdapterError(f"{source}: format {d.get('format')!r} is not {FORMAT!r}")
        d = dict(d)
        try:
            d["edits"] = [EditProvenance.from_dict(e) for e in d.get("edits") or []]
            return cls(**d)
        except TypeError as exc:
            raise AdapterError(f"{source}: malformed sidecar ({exc})") from None

    def write(self, directory: Union[str, Path]) -> Path:
        path = Path(directory) / SIDECAR_NAME
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        return path


def read_sidecar(directory: Union[str, Path]) -> AdapterSidecar:
    """The sidecar of an adapter directory; AdapterError when it is absent or unreadable."""
    path = Path(directory) / SIDECAR_NAME
    if not path.is_file():
        raise AdapterError(f"{directory}: no {SIDECAR_NAME}, so not a MEMLA adapter directory (load it with peft directly)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AdapterError(f"{path}: not valid JSON ({exc})") from None
    return AdapterSidecar.from_dict(data, source=str(path))


def check_model(sidecar: AdapterSidecar, model: Any, source: str = "adapter", fingerprint: Optional[str] = None) -> str:
    """Raise AdapterError unless ``model``'s weights are the ones the adapter was made for."""
    found = fingerprint or model_fingerprint(model)
    if found != sidecar.model_hash:
        raise AdapterError(
            f"{source} was made for model {sidecar.model_name!r} (weights sha256 {sidecar.model_hash[:12]}…), "
            f"but the given model's weights hash to {found[:12]}…; load the matching base model "
            "(same weights and dtype) or pass verify_model=False to skip this check"
        )
    return found
