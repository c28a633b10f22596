"""MEMLA hyperparameters in the shape EasyEdit expects of a method's hparams class.

EasyEdit's ``BaseEditor`` reads ``alg_name``, ``model_name``, ``device``,
``model_parallel``, ``max_length``, ``batch_size`` and ``fp16`` from whatever object it is
given, and its ``HyperParams`` base class offers ``to_dict()`` and
``construct_float_from_scientific_notation``. This dataclass provides the same surface
without importing EasyEdit, so ``memla_plugin`` stays importable (and cheap to import)
on machines without the host framework. Every constant of the MEMLA paper's method
section (arXiv 2406.11566, §3) is a field whose default is the paper's value.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Union

from .devices import DEVICE_HELP, parse_device
from .errors import HParamsError
from .languages import MKEB_LANGS
from .neurons.settings import METHODS as _ATTR_METHODS
from .neurons.settings import POSITIONS as _ATTR_POSITIONS
from .prompt_format import PROMPT_FORMATS

ALG_NAME = "MEMLA"

_DTYPES = ("float32", "bfloat16", "float16")
_BASELINES = ("amig", "zero")

_FLOAT_FIELDS = (
    "attr_threshold",
    "lr",
    "stop_loss",
    "stop_prob",
    "new_loss_weight",
    "true_loss_weight",
    "apply_scale",
    "locality_weight",
)
_INT_FIELDS = (
    "max_length", "batch_size", "attr_steps", "attr_batch_size", "rank_per_neuron", "max_steps", "seed",
    "locality_prompts",
)
_TARGET_FORMS = ("unspaced", "scored")
#: how one call edits several requests (memla_plugin.batch)
BATCH_MODES = ("sequential", "joint")
_BOOL_FIELDS = ("model_parallel", "fp16", "use_masks", "use_language_specific", "use_language_independent")


@dataclass
class MEMLAHyperParams:
    """Hyperparameters of one MEMLA run (defaults: the paper's values)."""

    # --- EasyEdit's contract -------------------------------------------------------
    alg_name: str = ALG_NAME
    model_name: str = "default"
    device: Union[str, int] = "cpu"
    model_parallel: bool = False
    max_length: int = 40
    batch_size: int = 1
    fp16: bool = False
    dtype: Optional[str] = None
    # --- module names (None: taken from memla_plugin.architectures) ---------------
    attr_module_tmp: Optional[str] = None
    edit_module_tmp: Optional[str] = None
    # --- §3.1 attribution ------------------------------------------------------------
    layers: Optional[list[int]] = None
    attr_steps: int = 20
    attr_threshold: float = 0.3
    attr_baseline: str = "amig"
    attr_batch_size: int = 64
    #: "ig" (integrated gradients with attr_steps steps: the paper) or "atp" (one-pass attribution
    #: patching against the same baseline; memla_plugin.neurons.onepass)
    attr_method: str = "ig"
    # --- §3.2 neuron sets ------------------------------------------------------------
    id_langs: list[str] = field(default_factory=lambda: ["en", "zh", "fr"])
    neuron_cache_dir: Optional[str] = None
    # --- §3.3 masked dual LoRA -------------------------------------------------------
    rank_per_neuron: int = 4
    use_masks: bool = True
    use_language_specific: bool = True
    use_language_independent: bool = True
    # --- §3.4 training ---------------------------------------------------------------
    lr: float = 1e-3
    max_steps: int = 60
    stop_loss: float = 0.01
    stop_prob: float = 0.96
    new_loss_weight: float = 2.5
    true_loss_weight: float = 2.0
    # --- §3.5 apply ------------------------------------------------------------------
    apply_scale: float = 0.5
    seed: int = 42
    # --- switches beyond the paper (off by default: the defaults are the paper's method) --------
    #: how attribution tokenises target_true: "unspaced" (the authors' code: as given) or "scored"
    #: (the form training and scoring use, with the leading space where the language takes one)
    attr_target_form: str = "unspaced"
    #: where a multi-token target is attributed: "last" (the authors' code: every target token scored
    #: with the activation patched at the last prompt position) or "each" (target token i scored with the
    #: activation patched at its own input position, the prompt followed by target tokens 0..i-1; the
    #: per-token scores are averaged, as in Dai et al. 2022's knowledge-neuron code)
    attr_positions: str = "last"
    #: LIKN = neurons found in at least this many identification languages (null: all of them)
    likn_min_langs: Optional[int] = None
    #: directory of train-split background facts (benchmarks/mkeb/build_background.py): their neuron sets and prompts
    background_dir: Optional[str] = None
    #: drop neurons selected for more than this share of the background facts (null: no filter)
    generic_max_share: Optional[float] = None
    #: weight of KL(unedited || edited) on background prompts in the training loss (0: the paper's loss)
    locality_weight: float = 0.0
    #: how many background prompts of the edit language the locality term reads
    locality_prompts: int = 8
    # --- how prompts are put to the model (memla_plugin.prompt_format) ----------------
    #: bare (the paper's code: the question as it is), chat (the tokenizer's chat template) or preamble;
    #: attribution and training both read it, and scoring should use the same
    prompt_format: str = "bare"
    # --- several requests in one call (EasyEdit's batch_edit) ------------------------------
    #: sequential: each request is edited on the model the previous ones left (one training and merge each);
    #: joint: one training over all requests' neurons, each fact through its own masked editors, one merge
    batch_mode: str = "sequential"
    # --- output ----------------------------------------------------------------------
    #: also save each edit call as a peft LoRA adapter in a new subdirectory of this one
    save_adapter_dir: Optional[str] = None

    def __post_init__(self) -> None:
        self._coerce()
        self._validate()

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_hparams(cls, hparams_name_or_path: Union[str, Path]) -> "MEMLAHyperParams":
        """Read a YAML (or JSON) hparams file; ``.yaml`` is appended when no suffix is given."""
        path = Path(str(hparams_name_or_path))
        if path.suffix not in (".yaml", ".yml", ".json"):
            path = Path(str(path) + ".yaml")
        if not path.is_file():
            raise HParamsError(f"MEMLA hparams file not found: {path}")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HParamsError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte offset {exc.start})") from None
        if path.suffix == ".json":
            try:
                config = json.loads(text)
            except json.JSONDecodeError as exc:
                raise HParamsError(f"{path}: not valid JSON ({exc})") from None
        else:
            import yaml  # lazy: keeps `import memla_plugin` light

            try:
                config = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise HParamsError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(config, dict):
            raise HParamsError(f"{path}: the hparams file must hold a mapping of keys to values")
        return cls.from_dict(config, source=str(path))

    @classmethod
    def from_json(cls, fpath: Union[str, Path]) -> "MEMLAHyperParams":
        """EasyEdit's HyperParams offers ``from_json``; same checks as :meth:`from_hparams`."""
        path = Path(str(fpath))
        if path.suffix != ".json":
            raise HParamsError(f"from_json expects a .json file, got {path}")
        return cls.from_hparams(path)

    @classmethod
    def from_dict(cls, config: dict, source: str = "<dict>") -> "MEMLAHyperParams":
        """Build from a mapping, rejecting unknown keys and a foreign ``alg_name``."""
        config = dict(config)
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in config if k not in known)
        if unknown:
            raise HParamsError(
                f"{source}: unknown MEMLA hparams key(s): {', '.join(unknown)} "
                f"(known keys: {', '.join(sorted(known))})"
            )
        alg = config.get("alg_name", ALG_NAME)
        if alg != ALG_NAME:
            raise HParamsError(f"{source}: alg_name is {alg!r}, expected {ALG_NAME!r} for MEMLAHyperParams")
        config = cls.construct_float_from_scientific_notation(config)
        try:
            return cls(**config)
        except HParamsError as exc:
            raise HParamsError(f"{source}: {exc}") from None

    @staticmethod
    def construct_float_from_scientific_notation(config: dict) -> dict:
        """Turn "1e-3"-style strings of float fields into floats (YAML 1.1 reads them as str).

        Unlike EasyEdit's helper this touches only float-typed fields, so a string such as
        ``model_name: "1e5"`` or ``device: "0"`` keeps its type.
        """
        out = dict(config)
        for key in _FLOAT_FIELDS:
            value = out.get(key)
            if isinstance(value, str):
                try:
                    out[key] = float(value)
                except ValueError:
                    raise HParamsError(f"{key}={value!r} is not a number") from None
        return out

    # ------------------------------------------------------------------ EasyEdit surface
    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes: Any) -> "MEMLAHyperParams":
        """A validated copy with some fields changed (used by ablations and tests)."""
        unknown = sorted(k for k in changes if k not in {f.name for f in fields(self)})
        if unknown:
            raise HParamsError(f"unknown MEMLA hparams key(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def torch_device(self):
        """``device`` as a ``torch.device`` ("cpu", "cuda", "cuda:N", or an int meaning cuda:N)."""
        import torch

        return torch.device(parse_device(self.device))

    def torch_dtype(self):
        """The dtype to load a model in: ``dtype`` if set, else float16 when ``fp16``, else None."""
        import torch

        if self.dtype is not None:
            return getattr(torch, self.dtype)
        return torch.float16 if self.fp16 else None

    # ------------------------------------------------------------------ checks
    def _coerce(self) -> None:
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise HParamsError(f"{name}={value!r} is not a number") from None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise HParamsError(f"{name} must be a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise HParamsError(f"{name} must be finite, got {value!r}")
            setattr(self, name, value)
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise HParamsError(f"{name} must be an integer, got {value!r}")
            setattr(self, name, value)
        for name in _BOOL_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise HParamsError(f"{name} must be true or false, got {value!r}")
        if isinstance(self.device, str):
            self.device = self.device.strip()
        if isinstance(self.id_langs, str):
            self.id_langs = [self.id_langs]
        if isinstance(self.id_langs, tuple):
            self.id_langs = list(self.id_langs)
        if isinstance(self.layers, tuple):
            self.layers = list(self.layers)
        if isinstance(self.attr_baseline, str):
            self.attr_baseline = self.attr_baseline.lower()

    def _validate(self) -> None:
        if self.alg_name != ALG_NAME:
            raise HParamsError(f"alg_name is {self.alg_name!r}, expected {ALG_NAME!r}")
        if not isinstance(self.model_name, str) or not self.model_name:
            raise HParamsError(f"model_name must be a non-empty string, got {self.model_name!r}")
        self._validate_device()
        if self.dtype is not None and self.dtype not in _DTYPES:
            raise HParamsError(f"dtype={self.dtype!r}; choose one of {', '.join(_DTYPES)} or leave it unset")
        for name in ("attr_module_tmp", "edit_module_tmp"):
            tmp = getattr(self, name)
            if tmp is not None and (not isinstance(tmp, str) or "{}" not in tmp):
                raise HParamsError(f"{name}={tmp!r} must be a string with a '{{}}' for the layer index")
        if self.layers is not None:
            if not isinstance(self.layers, list) or not all(
                isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in self.layers
            ):
                raise HParamsError(f"layers must be a list of non-negative layer indices or null, got {self.layers!r}")
            if not self.layers:
                raise HParamsError("layers is an empty list; use null to attribute over all layers")
        for name in ("max_length", "batch_size", "attr_steps", "attr_batch_size", "rank_per_neuron", "max_steps"):
            if getattr(self, name) < 1:
                raise HParamsError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.attr_method not in _ATTR_METHODS:
            raise HParamsError(f"attr_method={self.attr_method!r}; choose one of {', '.join(_ATTR_METHODS)}")
        if self.attr_baseline not in _BASELINES:
            raise HParamsError(f"attr_baseline={self.attr_baseline!r}; choose one of {', '.join(_BASELINES)}")
        if not 0.0 <= self.attr_threshold <= 1.0:
            raise HParamsError(f"attr_threshold must lie in [0, 1] (fraction of the max attribution), got {self.attr_threshold}")
        if not isinstance(self.id_langs, list) or not self.id_langs:
            raise HParamsError(f"id_langs must be a non-empty list of language codes, got {self.id_langs!r}")
        bad = [lang for lang in self.id_langs if lang not in MKEB_LANGS]
        if bad:
            raise HParamsError(
                f"id_langs has unknown language code(s) {bad}; known: {', '.join(MKEB_LANGS)}"
            )
        if len(set(self.id_langs)) != len(self.id_langs):
            raise HParamsError(f"id_langs lists a language twice: {self.id_langs}")
        if self.neuron_cache_dir is not None and not isinstance(self.neuron_cache_dir, (str, Path)):
            raise HParamsError(f"neuron_cache_dir must be a path or null, got {self.neuron_cache_dir!r}")
        if self.neuron_cache_dir is not None:
            self.neuron_cache_dir = str(self.neuron_cache_dir)
        if self.save_adapter_dir is not None:
            if not isinstance(self.save_adapter_dir, (str, Path)) or not str(self.save_adapter_dir).strip():
                raise HParamsError(f"save_adapter_dir must be a directory path or null, got {self.save_adapter_dir!r}")
            if Path(self.save_adapter_dir).exists() and not Path(self.save_adapter_dir).is_dir():
                raise HParamsError(f"save_adapter_dir={str(self.save_adapter_dir)!r} exists and is not a directory")
            self.save_adapter_dir = str(self.save_adapter_dir)
        if self.prompt_format not in PROMPT_FORMATS:
            raise HParamsError(f"prompt_format={self.prompt_format!r}; choose one of {', '.join(PROMPT_FORMATS)}")
        if self.batch_mode not in BATCH_MODES:
            raise HParamsError(f"batch_mode={self.batch_mode!r}; choose one of {', '.join(BATCH_MODES)}")
        if self.lr <= 0:
            raise HParamsError(f"lr must be positive, got {self.lr}")
        if self.apply_scale <= 0:  # W += gamma * Delta: 0 applies nothing, a negative gamma reverses the edit
            raise HParamsError(f"apply_scale must be positive (the paper uses 0.5), got {self.apply_scale}")
        if self.stop_loss < 0:
            raise HParamsError(f"stop_loss must be >= 0, got {self.stop_loss}")
        if not 0.0 <= self.stop_prob <= 1.0:
            raise HParamsError(f"stop_prob must lie in [0, 1], got {self.stop_prob}")
        if self.new_loss_weight < 0 or self.true_loss_weight < 0:
            raise HParamsError(
                f"loss weights must be >= 0, got new_loss_weight={self.new_loss_weight}, "
                f"true_loss_weight={self.true_loss_weight}"
            )
        if self.new_loss_weight == 0 and self.true_loss_weight == 0:
            raise HParamsError("new_loss_weight and true_loss_weight are both 0: nothing to train")
        if not (self.use_language_specific or self.use_language_independent):
            raise HParamsError("use_language_specific and use_language_independent are both false: nothing to train")
        self._validate_switches()

    def _validate_switches(self) -> None:
        """The switches beyond the paper's method (see the field comments)."""
        if self.attr_target_form not in _TARGET_FORMS:
            raise HParamsError(f"attr_target_form={self.attr_target_form!r}; choose one of {', '.join(_TARGET_FORMS)}")
        if self.attr_positions not in _ATTR_POSITIONS:
            raise HParamsError(f"attr_positions={self.attr_positions!r}; choose one of {', '.join(_ATTR_POSITIONS)}")
        k = self.likn_min_langs
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(self.id_langs)):
            raise HParamsError(f"likn_min_langs must be null or an integer in 1..{len(self.id_langs)} (len(id_langs)), got {k!r}")
        share = self.generic_max_share
        if isinstance(share, str):
            try:
                share = self.generic_max_share = float(share)
            except ValueError:
                raise HParamsError(f"generic_max_share={share!r} is not a number") from None
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share < 1.0):
            raise HParamsError(f"generic_max_share must be null or a share in [0, 1), got {share!r}")
        if self.locality_weight < 0:
            raise HParamsError(f"locality_weight must be >= 0, got {self.locality_weight}")
        if self.locality_prompts < 1:
            raise HParamsError(f"locality_prompts must be a positive integer, got {self.locality_prompts}")
        needs = [n for n, on in (("generic_max_share", share is not None), ("locality_weight", self.locality_weight > 0)) if on]
        if needs and not self.background_dir:
            raise HParamsError(f"{' and '.join(needs)} need{'s' if len(needs) == 1 else ''} background_dir (train-split background facts, built by benchmarks/mkeb/build_background.py)")
        if self.background_dir is not None:
            self.background_dir = str(self.background_dir)

    def _validate_device(self) -> None:
        if parse_device(self.device) is None:
            raise HParamsError(f"device must be {DEVICE_HELP}, got {self.device!r}")
