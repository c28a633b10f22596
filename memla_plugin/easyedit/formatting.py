"""The prompt format for EasyEdit's own editors: their requests are formatted before they see them.

At the pinned commit only WISE and IKE read a ``use_chat_template`` switch; ROME, MEMIT, FT,
LoRA and MEND take ``request["prompt"]`` as it is. So the prompt format
(:mod:`memla_plugin.prompt_format`) reaches them here, as a copy of the request whose
``prompt`` and ``rephrase_prompt`` are put in the format, the same way MEMLA's attribution and
training and the MKEB scorer put theirs. The subject stays verbatim inside the formatted
prompt, so ROME and MEMIT still find it; a prompt that is a template (``"{} was born in"``)
stays one.
"""
from __future__ import annotations

import copy
from typing import Any

from ..prompt_format import check_prompt_format, format_prompt

#: request keys holding prompts that an editor optimises on
PROMPT_KEYS = ("prompt", "rephrase_prompt")


def format_request(request: dict[str, Any], tok: Any, prompt_format: str) -> dict[str, Any]:
    """A copy of an EasyEdit request with its prompts put in ``prompt_format`` (``bare``: unchanged copy)."""
    fmt = check_prompt_format(prompt_format)
    out = copy.deepcopy(request)
    if fmt == "bare":
        return out
    for key in PROMPT_KEYS:
        value = out.get(key)
        if isinstance(value, str):
            out[key] = format_prompt(tok, value, fmt)
        elif isinstance(value, list):
            out[key] = [format_prompt(tok, v, fmt) if isinstance(v, str) else v for v in value]
    return out


def format_requests(requests: list[dict[str, Any]], tok: Any, prompt_format: str) -> list[dict[str, Any]]:
    """:func:`format_request` for each request."""
    return [format_request(r, tok, prompt_format) for r in requests]


__all__ = ["PROMPT_KEYS", "format_request", "format_requests"]
