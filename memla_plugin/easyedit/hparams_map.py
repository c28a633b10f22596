"""Method names -> EasyEdit hyperparameter classes and apply functions.

``FT-L`` and ``FT-M`` are EasyEdit's FT method with ``objective_optimization`` ``prompt_last``
and ``target_new`` (EasyEdit's survey names them so); both run as ``alg_name: FT``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from ..errors import HParamsError

LOG = logging.getLogger(__name__)

# user-facing method name -> (EasyEdit alg_name, class name exported by easyeditor)
METHODS: dict[str, tuple[str, str]] = {
    "ROME": ("ROME", "ROMEHyperParams"),
    "MEMIT": ("MEMIT", "MEMITHyperParams"),
    "MEND": ("MEND", "MENDHyperParams"),
    "FT": ("FT", "FTHyperParams"),
    "FT-L": ("FT", "FTHyperParams"),
    "FT-M": ("FT", "FTHyperParams"),
    "LoRA": ("LoRA", "LoRAHyperParams"),
    "IKE": ("IKE", "IKEHyperParams"),
    "MEMLA": ("MEMLA", "MEMLAHyperParams"),
}
FT_OBJECTIVE = {"FT-L": "prompt_last", "FT-M": "target_new"}
# hparams values that mean "the MEMLA cache decides" (resolved here or by prepare_baseline)
DEFAULT = "default"


def canonical_alg(alg_name: str) -> str:
    """EasyEdit's ``alg_name`` for a method name (``FT-L`` -> ``FT``)."""
    try:
        return METHODS[alg_name][0]
    except KeyError:
        raise HParamsError(f"unknown method {alg_name!r}; known: {', '.join(METHODS)}") from None


def hparams_class(alg_name: str) -> type:
    """The HyperParams dataclass that reads ``alg_name``'s YAML files."""
    canonical_alg(alg_name)
    cls_name = METHODS[alg_name][1]
    if alg_name == "MEMLA":
        from ..hparams import MEMLAHyperParams

        return MEMLAHyperParams
    from .host import import_easyeditor

    return getattr(import_easyeditor(), cls_name)


def get_apply_fn(alg_name: str) -> Callable:
    """EasyEdit's apply function for ``alg_name`` (MEMLA's once registered)."""
    from .registry import register

    register()
    from easyeditor.util.alg_dict import ALG_DICT

    return ALG_DICT[canonical_alg(alg_name)]


def load_hparams(alg_name: str, path: str | Path) -> Any:
    """Read ``path`` with ``alg_name``'s HyperParams class and resolve the MEMLA-cache placeholders.

    ``model_name: default`` (and MEND's ``tokenizer_name: default``) become the converted
    default model's directory; ``stats_dir: default`` becomes the MEMLA cache's statistics
    directory. MEND's ``archive: default`` is left for :func:`prepare_baseline`, which trains
    or finds the checkpoint. For FT-L/FT-M the file's ``objective_optimization`` must match.
    """
    from .registry import register

    register()
    cls = hparams_class(alg_name)
    path = str(path)
    if not Path(path).exists() and Path(path + ".yaml").exists():
        path += ".yaml"
    if not Path(path).exists():
        raise HParamsError(f"{alg_name} hparams file {path!r} not found")
    try:
        hp = cls.from_hparams(path)
    except TypeError as exc:  # unknown / missing keys in the host's dataclasses
        raise HParamsError(f"{path}: not valid {cls.__name__} hparams ({exc})") from exc
    expected = canonical_alg(alg_name)
    if getattr(hp, "alg_name", None) != expected:
        raise HParamsError(f"{path}: alg_name is {getattr(hp, 'alg_name', None)!r}, expected {expected!r} for {alg_name}")
    if alg_name in FT_OBJECTIVE and hp.objective_optimization != FT_OBJECTIVE[alg_name]:
        raise HParamsError(
            f"{path}: {alg_name} means objective_optimization={FT_OBJECTIVE[alg_name]!r}, "
            f"the file says {hp.objective_optimization!r}"
        )
    from .loader import resolve_model_name

    if isinstance(hp.model_name, str):
        hp.model_name = resolve_model_name(hp.model_name)
    if getattr(hp, "tokenizer_name", None) == DEFAULT:
        hp.tokenizer_name = hp.model_name
    if getattr(hp, "stats_dir", None) == DEFAULT:
        from .paths import stats_dir

        hp.stats_dir = str(stats_dir())
    return hp
