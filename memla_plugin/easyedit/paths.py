"""Where the EasyEdit side keeps what it computes (mom2 statistics, MEND checkpoints, IKE embeddings).

Everything lives under the MEMLA cache directory, the same root the default model uses:
:func:`memla_plugin.models.cache_root` (``$MEMLA_CACHE``, else the platform's user cache
directory).
"""
from __future__ import annotations

from pathlib import Path


def memla_cache_dir() -> Path:
    """Root of the MEMLA cache (created on demand by the callers that write into it)."""
    from ..models import cache_root

    return Path(cache_root())


def stats_dir() -> Path:
    """``stats_dir`` handed to EasyEdit's ROME/MEMIT hparams."""
    return memla_cache_dir() / "easyedit" / "stats"


def mend_dir() -> Path:
    """Directory of trained MEND hypernetworks, one subdirectory per model."""
    return memla_cache_dir() / "easyedit" / "mend"


def ike_dir() -> Path:
    """Embeddings of IKE's demonstration pools, one subdirectory per (language, encoder, pool)."""
    return memla_cache_dir() / "easyedit" / "ike"
