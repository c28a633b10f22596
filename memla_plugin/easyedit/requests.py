"""Carry MEMLA's extra request keys through EasyEdit's ``BaseEditor.edit``.

``BaseEditor.edit(**kwargs)`` hands every keyword to ``_prepare_requests``, which reads only
``subject`` and ``loc_prompts`` and silently drops the rest, so ``languages`` (the per-language
prompts/targets MEMLA reads its identification languages from), ``edit_lang`` and ``case_id``
never reach the apply function. The wrapper installed here calls the host's function unchanged
and then attaches those keys, one value per request.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from ..errors import DataValidationError

EXTRA_REQUEST_KEYS = ("languages", "edit_lang", "case_id")
_MARK = "__memla_extra_request_keys__"


def attach_extra_keys(requests: list[dict], kwargs: dict[str, Any]) -> list[dict]:
    """Copy ``kwargs[key]`` for each of :data:`EXTRA_REQUEST_KEYS` onto ``requests``.

    A list/tuple gives one value per request; a single value is used as is for a single
    request, and is broadcast for scalars (``edit_lang="en"``) with several requests.
    """
    for key in EXTRA_REQUEST_KEYS:
        value = kwargs.get(key)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            if len(value) != len(requests):
                raise DataValidationError(
                    f"edit(): {key} has {len(value)} entries but there are {len(requests)} prompts; "
                    f"give one {key} per prompt"
                )
            values = list(value)
        elif len(requests) == 1 or isinstance(value, (str, int)):
            values = [value] * len(requests)
        else:
            raise DataValidationError(
                f"edit(): {key} must be a list with one entry per prompt when editing {len(requests)} prompts"
            )
        for request, item in zip(requests, values):
            request[key] = item
    return requests


def with_extra_keys(original: Callable) -> Callable:
    """Wrap the host's ``_prepare_requests`` so it keeps MEMLA's extra keys."""
    if getattr(original, _MARK, False):
        return original

    @functools.wraps(original)
    def _prepare_requests(*args, **kwargs):
        return attach_extra_keys(original(*args, **kwargs), kwargs)

    setattr(_prepare_requests, _MARK, True)
    return _prepare_requests


def install(editor_module) -> bool:
    """Rebind ``_prepare_requests`` in EasyEdit's editor module; False if already done."""
    current = editor_module._prepare_requests
    if getattr(current, _MARK, False):
        return False
    editor_module._prepare_requests = with_extra_keys(current)
    return True
