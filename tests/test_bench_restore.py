"""ParamSnapshot: every restore-check mode catches a one-ulp change; sha256/exact also a swap."""
from __future__ import annotations

import pytest
import torch

from memla_mkeb.restore import MODES, ParamSnapshot
from memla_plugin.errors import RestoreMismatchError


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4, bias=False).to(torch.bfloat16))


@pytest.mark.parametrize("mode", MODES)
def test_unchanged_model_passes_and_one_ulp_fails(mode):
    model = _model()
    snap = ParamSnapshot(model, mode)
    assert snap.verify(model, "record 1") == 3
    w = model[0].weight
    with torch.no_grad():
        w[3, 5] = torch.nextafter(w[3, 5], torch.tensor(float("inf")))
    with pytest.raises(RestoreMismatchError, match=r"record 7: restored weights differ .* 0\.weight"):
        snap.verify(model, "record 7")


@pytest.mark.parametrize("mode", ["sha256", "exact"])
def test_swapped_values_are_caught(mode):
    model = _model()
    snap = ParamSnapshot(model, mode)
    w = model[1].weight  # bfloat16
    with torch.no_grad():
        a, b = w[0, 0].clone(), w[1, 1].clone()
        assert a != b
        w[0, 0], w[1, 1] = b, a
    with pytest.raises(RestoreMismatchError, match="1.weight"):
        snap.verify(model, "record 2")


def test_checksum_mode_misses_a_swap_which_is_why_it_is_not_the_default():
    model = _model()
    snap = ParamSnapshot(model, "checksum")
    w = model[1].weight
    with torch.no_grad():
        a, b = w[0, 0].clone(), w[1, 1].clone()
        w[0, 0], w[1, 1] = b, a
    assert snap.verify(model, "record 2") == 3


def test_sha256_snapshot_holds_no_tensor_copies():
    snap = ParamSnapshot(_model(), "sha256")
    assert snap.copy is None and all(isinstance(d[0], str) and len(d[0]) == 64 for d in snap.digests.values())


def test_unknown_mode_is_named():
    with pytest.raises(ValueError, match="restore check mode 'md5' unknown"):
        ParamSnapshot(_model(), "md5")
