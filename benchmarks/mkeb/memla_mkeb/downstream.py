"""Downstream cost of an edit in the loop: held-out perplexity before and after (``perplexity.*``).

The texts come from records no run evaluates (:func:`.planning.perplexity_records` refuses an overlap);
the unedited model's perplexity is measured once per sitting, on the model as loaded, and every
edited row (or sequence) adds the perplexity of the edited model. See
:mod:`memla_plugin.mkeb.perplexity` for what is computed.
"""
from __future__ import annotations

import time
from typing import Any, Optional

from .planning import HeldOut


class PerplexityProbe:
    """Held-out perplexity of one run: ``before`` once, ``after`` per edit."""

    def __init__(self, heldout: HeldOut, tok: Any, langs: list[str], device: str) -> None:
        from memla_plugin.mkeb.perplexity import heldout_texts

        self.tok, self.device, self.batch_size = tok, device, heldout.batch_size
        self.texts = heldout_texts(heldout.records, langs)
        self._before: Optional[dict[str, Any]] = None

    def measure(self, model: Any) -> dict[str, Any]:
        """Perplexity per language of ``model`` on the held-out texts, with the seconds it took."""
        from memla_plugin.mkeb.perplexity import perplexity, summary

        t0 = time.perf_counter()
        out = summary(perplexity(model, self.tok, self.texts, batch_size=self.batch_size, device=self.device))
        out["s"] = time.perf_counter() - t0
        return out

    def before(self, model: Any) -> dict[str, Any]:
        """The unedited model's perplexity; call it only while ``model`` is as loaded."""
        if self._before is None:
            self._before = self.measure(model)
        return self._before

    def row_field(self, model: Any, edited: Optional[Any]) -> dict[str, Any]:
        """``{"before", "after"}`` for a row: ``edited`` is the edited model, or None when nothing was
        edited (unedited reference: after = before; a failed or skipped edit: after = null)."""
        before = self.before(model)
        return {"before": before, "after": self.measure(edited) if edited is not None else None}


def probe_for(plan: Any, tok: Any) -> Optional[PerplexityProbe]:
    """The run's probe, or None when ``perplexity.enabled`` is false."""
    if plan.heldout is None:
        return None
    from memla_plugin.languages import MKEB_LANGS

    return PerplexityProbe(plan.heldout, tok, list(MKEB_LANGS), plan.device)


__all__ = ["PerplexityProbe", "probe_for"]
