"""Turning a (prompt, target) pair into the token ids attribution works on (MEMLA paper §3.1).

The prompt is tokenised the way the model normally sees it (special tokens as the tokenizer
adds them); the target is tokenised exactly as given with ``add_special_tokens=False`` so no
BOS ends up inside it and no leading space is invented.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import MEMLAError
from ..tokenisation import unspaced_target_ids


class EmptyPromptError(MEMLAError, ValueError):
    """A prompt tokenises to zero tokens, so it has no last position to attribute at."""


class MissingEOSError(MEMLAError, ValueError):
    """The AMIG baseline needs an EOS token id and neither tokenizer nor model config has one."""


@dataclass(frozen=True)
class FactTokens:
    """Token ids of one attribution problem (all on the model's device, batch dim 1)."""

    prompt_ids: torch.Tensor  # [1, T]
    target_ids: torch.Tensor  # [k]

    @property
    def prompt_len(self) -> int:
        return int(self.prompt_ids.shape[1])

    @property
    def n_target(self) -> int:
        return int(self.target_ids.shape[0])

    @property
    def last(self) -> int:
        """Index of the last prompt token: where activations are patched."""
        return self.prompt_len - 1

    def teacher_forced(self, full: bool = False) -> torch.Tensor:
        """Prompt followed by the target tokens, [1, T + k] (``full``) or [1, T + k - 1].

        The last target token is never an input to a prediction that is scored, so the
        short form suffices; the straightforward reference feeds the full sequence.
        """
        tgt = self.target_ids if full else self.target_ids[:-1]
        return torch.cat([self.prompt_ids, tgt.unsqueeze(0)], dim=1)


def encode_fact(tok, prompt: str, target: str, device) -> FactTokens:
    """Tokenise ``prompt`` and ``target``; raise named errors for empty inputs."""
    target_ids = unspaced_target_ids(tok, target)  # no leading space, as the authors' attribution does
    prompt_ids = tok(prompt)["input_ids"]
    if len(prompt_ids) == 0:
        raise EmptyPromptError(f"prompt {prompt!r} tokenises to no tokens; attribution needs at least one")
    return FactTokens(
        prompt_ids=torch.tensor([prompt_ids], dtype=torch.long, device=device),
        target_ids=torch.tensor(target_ids, dtype=torch.long, device=device),
    )


def eos_token_id(tok, model) -> int:
    """EOS id used by the AMIG baseline: tokenizer first, then the model config."""
    eos = getattr(tok, "eos_token_id", None)
    if eos is None:
        eos = getattr(getattr(model, "config", None), "eos_token_id", None)
    if isinstance(eos, (list, tuple)):
        eos = eos[0] if eos else None
    if eos is None:
        raise MissingEOSError(
            "attr_baseline='amig' replaces prompt tokens by EOS, but neither the tokenizer nor "
            "model.config defines eos_token_id; set one or use attr_baseline='zero'"
        )
    return int(eos)


def amig_inputs(fact: FactTokens, eos: int) -> torch.Tensor:
    """The T token-replaced prompts of the AMIG baseline: row j has token j replaced by EOS."""
    T = fact.prompt_len
    ids = fact.prompt_ids.repeat(T, 1)
    idx = torch.arange(T, device=ids.device)
    ids[idx, idx] = eos
    return ids
