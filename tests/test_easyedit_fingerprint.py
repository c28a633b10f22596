"""The model fingerprint that keys the cached ROME/MEMIT statistics and MEND checkpoints.

A harness runs several editors on one model in one process; EasyEdit's LoRA sets
``config.use_cache = False`` on it. The cached artefacts must still be found afterwards, and
must not be found once a weight differs.
"""
from __future__ import annotations

import torch

from memla_plugin.easyedit.stats import model_fingerprint


def test_fingerprint_ignores_run_time_flags_but_not_weights(tiny_model):
    before = model_fingerprint(tiny_model)
    tiny_model.config.use_cache = False  # what EasyEdit's LoRA does to the model it is given
    assert model_fingerprint(tiny_model) == before
    with torch.no_grad():
        next(tiny_model.parameters()).view(-1)[0] += 1.0
    assert model_fingerprint(tiny_model) != before


def test_fingerprint_still_sees_architecture_config(tiny_model):
    before = model_fingerprint(tiny_model)
    tiny_model.config.layer_norm_epsilon = 0.123  # a config value that changes the computation
    tiny_model.config.rms_norm_eps = 0.123
    assert model_fingerprint(tiny_model) != before
