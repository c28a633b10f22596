"""MKEB: records, loader/validation, BMIKE-53 converter, metrics, aggregation, dataset adapter.

Works without EasyEdit. Heavy modules (scoring runs need torch, the dataset's HF export
needs ``datasets``) are imported lazily.
"""
from __future__ import annotations

from ..lazy import lazy_getattr

from .loader import load_mkeb, read_meta, read_test_ids, shipped_data_dir
from .metric_registry import METRICS
from .schema import LANGS, EditFact, MKEBRecord
from .validate import validate

_LAZY = {
    "MKEBDataset": "memla_plugin.mkeb.dataset",
    "score_record": "memla_plugin.mkeb.scoring",
    "target_with_space": "memla_plugin.tokenisation",
    "convert_bmike53": "memla_plugin.mkeb.convert",
}

__all__ = sorted(
    ["LANGS", "METRICS", "EditFact", "MKEBRecord", "load_mkeb", "read_meta", "read_test_ids", "shipped_data_dir", "validate"]
    + list(_LAZY)
)


__getattr__ = lazy_getattr(__name__, _LAZY)
