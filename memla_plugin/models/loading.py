"""Loading any Hugging Face causal LM (or the embedded default) in eval mode on a chosen device and dtype."""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Union

from ..devices import DEVICE_HELP, parse_device
from ..errors import DefaultModelError, MEMLAError
from . import default_model
from .default_model import is_default_model
from .integrity import CorruptModelError, check_finite_logits

log = logging.getLogger(__name__)

DtypeLike = Union[None, str, "torch.dtype"]  # noqa: F821 (torch is imported lazily)


class ModelLoadError(MEMLAError):
    """A model id/path, dtype or device given by the user could not be loaded or placed."""


_DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
}


def resolve_dtype(dtype: DtypeLike):
    """``None`` -> float32 (edits and gradients on CPU want full precision); names or torch dtypes."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).strip().lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ModelLoadError(f"dtype {dtype!r} not supported; use float32, bfloat16 or float16")
    return getattr(torch, _DTYPES[key])


def resolve_device(device: Any):
    """'cpu' | 'cuda' | 'cuda:N' | N | torch.device | 'auto' (spread with accelerate's device_map)."""
    import torch

    if isinstance(device, str) and device.strip().lower() == "auto":
        return "auto"
    if device is None:
        device = "cpu"
    name = parse_device(str(device) if isinstance(device, torch.device) else device)
    if name is None:
        raise ModelLoadError(f"device {device!r} not understood; use {DEVICE_HELP}")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available; set device: cpu")
    return dev


def ensure_pad_token(tok, model=None) -> None:
    """Give tokenizers without a pad token one (EOS, else UNK) so batched scoring works."""
    if tok.pad_token is None:
        if tok.eos_token is not None:
            tok.pad_token = tok.eos_token
        elif tok.unk_token is not None:
            tok.pad_token = tok.unk_token
        else:
            tok.add_special_tokens({"pad_token": "<|pad|>"})
            if model is not None:
                model.resize_token_embeddings(len(tok))
    if model is not None and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id
        gen = getattr(model, "generation_config", None)
        if gen is not None and getattr(gen, "pad_token_id", None) is None:
            gen.pad_token_id = tok.pad_token_id


def _from_pretrained(path: str, device, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": dtype}
    if device == "auto":
        kwargs["device_map"] = "auto"
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if device != "auto":
        model = model.to(device)
    model.eval()
    ensure_pad_token(tok, model)
    return model, tok


def load_model(name_or_path: Any = "default", device: Any = "cpu", dtype: DtypeLike = None):
    """Load ``(model, tokenizer)`` in eval mode.

    ``"default"`` (or None) is the embedded Qwen2.5-Coder-0.5B-Instruct, converted on first use;
    anything else is a Hugging Face id or a local directory (``HF_HUB_OFFLINE=1`` is honoured by
    transformers). ``dtype``: None (float32), "float32", "bfloat16", "float16" or a torch dtype.
    ``device``: "cpu", "cuda", "cuda:N", an int, or "auto" (accelerate device_map).
    """
    t_import = time.perf_counter()
    import transformers  # noqa: F401  (timed apart: importing torch + transformers is not loading)

    torch_dtype = resolve_dtype(dtype)
    dev = resolve_device(device)
    t0 = time.perf_counter()
    import_s = t0 - t_import
    if is_default_model(name_or_path):
        return _load_default(dev, torch_dtype, t0, import_s)
    name = str(name_or_path)
    try:
        model, tok = _from_pretrained(name, dev, torch_dtype)
    except OSError as e:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        hint = (
            "HF_HUB_OFFLINE is set: pass a local directory or a model already in the HF cache"
            if offline
            else "check the id, your network/HF token, or pass a local directory"
        )
        raise ModelLoadError(f"could not load model {name!r}: {str(e).splitlines()[0]} ({hint})") from e
    check_finite_logits(model, tok, f"model {name!r}")
    log.info("loaded %s in %.1f s", name, time.perf_counter() - t0)
    return model, tok


def _load_default(dev, torch_dtype, t0: float, import_s: float):
    """The default model from its cache; a cache that does not load is rebuilt once."""
    path = default_model.default_model_dir()
    try:
        model, tok = _from_pretrained(str(path), dev, torch_dtype)
        check_finite_logits(model, tok, f"cached default model {path}")
    except (OSError, ValueError, RuntimeError, EnvironmentError, CorruptModelError) as e:
        if isinstance(e, MEMLAError) and not isinstance(e, CorruptModelError):
            raise
        default_model._say(f"loading the cached default model failed ({type(e).__name__}: {e}); rebuilding the cache")
        default_model.invalidate_default_model()
        path = default_model.default_model_dir()
        try:
            model, tok = _from_pretrained(str(path), dev, torch_dtype)
            check_finite_logits(model, tok, f"rebuilt default model {path}")
        except Exception as e2:
            raise DefaultModelError(f"the rebuilt default model at {path} does not load: {e2}") from e2
    default_model._say(
        f"loaded default model {default_model.DEFAULT_MODEL_NAME} from {path} in {time.perf_counter() - t0:.1f} s"
        + (f" (+ {import_s:.1f} s importing transformers)" if import_s > 0.5 else "")
    )
    return model, tok
