"""The composite score (harmonic mean of ES, PS and locality) and its intervals, hand-checked.

Fixture, source en, evaluated in en and fr, view "others" = fr, "e2e" = en:

    method  record  en (ES, PS, NS_cf)   fr (ES, PS, NS_cf)   status
    a       1       (1, 1, 1)            (1, 1, 0.5)          ok
    a       2       (1, 1, 1)            (0, 0.5, 1)          ok
    a       3       (0, 0, 0)            (0, 0, 0)            error (failed edit: left out)
    b       1       (1, 1, 0)            (1, 1, 0)            ok
    b       2       (1, 1, 0)            (1, 1, 0.5)          ok

Method a, others: means (0.5, 0.75, 0.75) -> composite 3 / (2 + 4/3 + 4/3) = 9/14.
Method b, others: means (1, 1, 0.25) -> 3 / (1 + 1 + 4) = 0.5.
"""
from __future__ import annotations

import pytest

from memla_mkeb.composite import (
    composite,
    composite_difference,
    composite_estimate,
    method_composites,
    record_triples,
)


def _row(method: str, rid: int, en: tuple, fr: tuple, status: str = "ok") -> dict:
    def sc(t: tuple) -> dict:
        return {"ES": t[0], "PS": t[1], "NS_cf": t[2]}

    return {"method": method, "source": "en", "record_id": str(rid), "status": status,
            "scores": {"en": sc(en), "fr": sc(fr)}}


ROWS = [
    _row("a", 1, (1, 1, 1), (1, 1, 0.5)),
    _row("a", 2, (1, 1, 1), (0, 0.5, 1)),
    _row("a", 3, (0, 0, 0), (0, 0, 0), status="error"),
    _row("b", 1, (1, 1, 0), (1, 1, 0)),
    _row("b", 2, (1, 1, 0), (1, 1, 0.5)),
]


def test_composite_is_the_harmonic_mean():
    assert composite(1.0, 0.5, 0.5) == pytest.approx(0.6)
    assert composite(0.5, 0.75, 0.75) == pytest.approx(9 / 14)
    assert composite(1.0, 1.0, 0.0) == 0.0
    assert composite(1.0, None, 1.0) is None
    with pytest.raises(ValueError, match="locality=1.5"):
        composite(1.0, 1.0, 1.5)


def test_failed_edits_do_not_enter_the_composite():
    triples = record_triples([r for r in ROWS if r["method"] == "a"], "en", "others")
    assert triples == {"1": (1.0, 1.0, 0.5), "2": (0.0, 0.5, 1.0)}


def test_method_composites_hand_checked():
    est = method_composites(ROWS, "en", "others", seed=0, n_boot=0)
    assert est["a"].n == 2 and est["a"].mean == pytest.approx(9 / 14)
    assert est["b"].mean == pytest.approx(0.5)
    e2e = method_composites(ROWS, "en", "e2e", seed=0, n_boot=0)
    assert e2e["a"].mean == pytest.approx(1.0) and e2e["b"].mean == 0.0


def test_bootstrap_interval_is_the_range_of_resampled_composites():
    # Two records: a resample holds {1,1}, {1,2} (either order) or {2,2}; their composites are
    # HM(1, 1, 0.5) = 0.75, 9/14 and HM(0, 0.5, 1) = 0. A 95% interval over 4000 resamples
    # reaches both ends (each has probability 1/4), so it is exactly [0, 0.75].
    t = record_triples([r for r in ROWS if r["method"] == "a"], "en", "others")
    e = composite_estimate(t, label="a", seed=1, n_boot=4000)
    assert (e.lo, e.mean, e.hi) == (pytest.approx(0.0), pytest.approx(9 / 14), pytest.approx(0.75))
    assert composite_estimate(t, label="a", seed=1, n_boot=4000) == e  # seeded: same numbers again


def test_paired_difference_uses_common_records_only():
    a = record_triples([r for r in ROWS if r["method"] == "a"], "en", "others")
    b = record_triples([r for r in ROWS if r["method"] == "b"], "en", "others")
    b_more = dict(b, **{"9": (1.0, 1.0, 1.0)})
    d, is_interval = composite_difference(a, b_more, label="d", seed=0, n_boot=500)
    assert d.n == 2 and is_interval
    assert d.mean == pytest.approx(9 / 14 - 0.5)
    assert d.lo <= d.mean <= d.hi
    single, ok = composite_difference({"1": a["1"]}, {"1": b["1"]}, label="d", seed=0, n_boot=500)
    assert single.n == 1 and not ok and single.lo == single.hi == single.mean


def test_rows_without_the_locality_metric_have_no_composite():
    old = [{"method": "m", "source": "en", "record_id": "1", "status": "ok",
            "scores": {"en": {"ES": 1.0, "PS": 1.0}, "fr": {"ES": 1.0, "PS": 1.0}}}]
    est = method_composites(old, "en", "others", seed=0, n_boot=100)
    assert est["m"].n == 0 and est["m"].mean is None
