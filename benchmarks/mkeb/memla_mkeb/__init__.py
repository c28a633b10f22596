"""memla_mkeb: the shared MKEB benchmark harness (``benchmarks/mkeb/memla_mkeb``; its data beside it).

The harness only runs things: the data format and the metric definitions live in
``memla_plugin.mkeb`` (lm-evaluation-harness style split). Entry points:

* ``memla-mkeb`` (:mod:`memla_mkeb.app`): Hydra app that edits, evaluates, restores and
  appends one JSONL row per (method, source language, record) to a run directory;
* ``memla-mkeb-report`` (:mod:`memla_mkeb.report`): tables, bootstrap intervals and plots
  from one or more run directories (shards merged).

The modules are listed in ``benchmarks/mkeb/README.md`` ("Code layout").

Importing this package has no side effects and does not import torch.
"""
from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
