"""MKEB metrics, one import away: the public names of the scoring modules in one place.

Where things live:

* :mod:`.metric_registry`: what each metric (ES, PS, NS, MQ and EasyEdit's token
  accuracies) measures, needs and how it is computed, declared once;
* :mod:`.scoring`: :func:`score_record` / :func:`score_records` on MKEB records;
* :mod:`.reference`: the unedited model's results and their cache;
* :mod:`.engine` and :mod:`.kv_fork`: batched teacher forcing and greedy decoding;
* :mod:`memla_plugin.tokenisation`: how prompts and targets become token ids.

Importing this module does not import torch.
"""
from __future__ import annotations

from memla_plugin.tokenisation import encode_prompt, encode_target, target_with_space, uses_space_prefix

from .engine import MAX_LOGIT_POSITIONS, TFResult, greedy_decode, group_by_length, teacher_forced
from .kv_fork import shared_prompt_scoring
from .metric_registry import METRIC_REGISTRY, METRICS, Metric, canonical_tokens, token_set_f1
from .reference import ReferenceCache, UneditedReference, unedited_reference, unedited_references
from .scoring import MetricConfigError, Scores, ScoringOptions, score_record, score_records

__all__ = [
    "MAX_LOGIT_POSITIONS",
    "METRICS",
    "METRIC_REGISTRY",
    "Metric",
    "MetricConfigError",
    "ReferenceCache",
    "Scores",
    "ScoringOptions",
    "TFResult",
    "UneditedReference",
    "canonical_tokens",
    "encode_prompt",
    "encode_target",
    "greedy_decode",
    "group_by_length",
    "score_record",
    "score_records",
    "shared_prompt_scoring",
    "target_with_space",
    "teacher_forced",
    "token_set_f1",
    "unedited_reference",
    "unedited_references",
    "uses_space_prefix",
]
