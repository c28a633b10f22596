"""What a sequence of LoRA edits needs, besides its parameters, to go on in a later sitting.

EasyEdit's LoRA wraps the model in a PEFT adapter at a sequence's first edit and trains on in it at
every later one. Its state is therefore the adapter's config and trained weights (read and written
with PEFT's own state-dict functions), plus the modes the sequence left the modules in: PEFT creates
the adapter's modules (its dropout among them) in training mode, and whatever switches modes later
(EasyEdit never does; scoring may) decides whether the next edit trains with that dropout on; gradient
checkpointing and the input-grad hook are on. A resumed sitting attaches a fresh adapter with the saved
config, loads the weights and puts the modes back, so the edits that follow (and their scores) are
those of an uninterrupted sitting.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .methods import jsonable

#: saved adapter tensors sit beside the model's own parameters in one file, under this prefix
ADAPTER_PREFIX = "peft_adapter/"


def adapter_config(wrapper: Any) -> dict[str, dict[str, Any]]:
    """The wrapper's adapter configs by adapter name, as JSON."""
    return {name: jsonable(cfg.to_dict()) for name, cfg in wrapper.peft_config.items()}


def adapter_weights(wrapper: Any) -> dict[str, Any]:
    """Every adapter's trained tensors, keyed ``<adapter>/<PEFT state-dict key>``."""
    from peft import get_peft_model_state_dict

    return {f"{name}/{key}": value for name in wrapper.peft_config
            for key, value in get_peft_model_state_dict(wrapper, adapter_name=name).items()}


def attach_adapter(model: Any, configs: dict[str, dict[str, Any]], weights: dict[str, Any]) -> Any:
    """Wrap ``model`` in the saved adapters and load their weights; returns the PEFT wrapper.

    Raises ``ValueError`` naming the adapter when a saved tensor has no place in it or one of its
    tensors was not saved (the state then belongs to another adapter layout)."""
    from peft import PeftConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    wrapper = None
    for name, raw in configs.items():
        cfg = PeftConfig.from_peft_type(**raw)
        if wrapper is None:
            wrapper = get_peft_model(model, cfg, adapter_name=name)
        else:
            wrapper.add_adapter(name, cfg)
        prefix = f"{name}/"
        state = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        expected = set(get_peft_model_state_dict(wrapper, adapter_name=name))
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ValueError(f"saved adapter {name!r} does not fit the model: missing {missing[:3]}, "
                             f"unexpected {extra[:3]}")
        set_peft_model_state_dict(wrapper, state, adapter_name=name)
    if wrapper is None:
        raise ValueError("the saved sequence state names an adapter but holds no adapter config")
    return wrapper


@dataclass(frozen=True)
class ModuleModes:
    """Which modules are in training mode and whether the input-grad hook is on, put back as the edits
    left them (:class:`.restore.ModelFlags`' put_back switches the hook and gradient checkpointing only
    off and every module to eval mode)."""

    training: frozenset[str]
    input_grads: bool

    @classmethod
    def of(cls, model: Any) -> "ModuleModes":
        return cls(frozenset(n for n, m in model.named_modules() if m.training),
                   getattr(model, "_require_grads_hook", None) is not None)

    def as_json(self) -> dict[str, Any]:
        return {"training": sorted(self.training), "input_grads": self.input_grads}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ModuleModes":
        return cls(frozenset(data["training"]), bool(data["input_grads"]))

    def put_back(self, model: Any, checkpointing: bool) -> None:
        """``checkpointing``: the saved ModelFlags' (whose put_back only ever switches it off)."""
        if checkpointing and not getattr(model, "is_gradient_checkpointing", False):
            model.gradient_checkpointing_enable()
        if self.input_grads and getattr(model, "_require_grads_hook", None) is None:
            model.enable_input_require_grads()
        for name, module in model.named_modules():
            module.training = name in self.training


__all__ = ["ADAPTER_PREFIX", "ModuleModes", "adapter_config", "adapter_weights", "attach_adapter"]
