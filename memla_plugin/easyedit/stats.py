"""Second-moment statistics of down-projection inputs for EasyEdit's ROME and MEMIT.

EasyEdit's ``layer_stats`` computes, per edited layer, ``mom2 = sum_t x_t x_t^T`` over the
inputs ``x_t`` of the FFN down-projection, from English Wikipedia downloaded with
``datasets`` (unreachable offline), one pass over the corpus per layer. Here the inputs of
every needed layer are collected in one pass over a local corpus (one forward pre-hook per
module, forward stopped after the deepest one) and written exactly where ``layer_stats``
looks, in the file layout ``tally``/``CombinedStat`` read back:

``{stats_dir}/{model.config._name_or_path.rsplit('/')[-1]}/{mom2_dataset}_stats/``
``{module}_{mom2_dtype}_mom2_{mom2_n_samples}.npz`` with keys ``mom2.constructor``,
``mom2.count``, ``mom2.mom2`` (d_ff x d_ff, the undivided sum) and ``sample_size``
(== ``mom2_n_samples``, the number of texts, as in ``layer_stats``).

Each file gets a ``.json`` provenance sidecar (corpus, token count, model fingerprint).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ..errors import MEMLAError

LOG = logging.getLogger(__name__)

STATS_FORMAT = 1


class StatsError(MEMLAError):
    """Second-moment statistics cannot be computed as the hparams ask (e.g. corpus too small)."""


class _StopForward(Exception):
    """Raised after the deepest hooked module: the rest of the network is not needed."""


@dataclass
class Mom2:
    """Undivided second moment of one module's inputs."""

    mom2: Any  # torch.Tensor float64 [d, d]
    count: int


def model_dir_name(model) -> str:
    """The directory EasyEdit's ``layer_stats`` uses for ``model``."""
    return str(model.config._name_or_path).rsplit("/")[-1]


def mom2_file(stats_dir, model, mom2_dataset: str, module: str, mom2_dtype: str, mom2_n_samples: int) -> Path:
    """Path of the statistics file ``layer_stats`` loads for ``module`` (see module docstring)."""
    return (
        Path(stats_dir)
        / model_dir_name(model)
        / f"{mom2_dataset}_stats"
        / f"{module}_{mom2_dtype}_mom2_{mom2_n_samples}.npz"
    )


#: config flags that editors flip at run time without changing the model (EasyEdit's LoRA sets
#: ``use_cache = False`` on the model it is given), with the value a freshly loaded model has
RUNTIME_CONFIG_FLAGS = {"use_cache": True}


def model_fingerprint(model) -> str:
    """Cheap identity of the weights: config plus a strided sample of every parameter.

    Run-time flags (:data:`RUNTIME_CONFIG_FLAGS`) are hashed at their load-time value, so a cached
    MEND checkpoint or statistics file is found again after an editor flipped one of them.
    """
    import torch

    h = hashlib.sha256()
    config = model.config.to_dict()
    config.update({k: v for k, v in RUNTIME_CONFIG_FLAGS.items() if k in config})
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, p in model.named_parameters():
            flat = p.detach().reshape(-1)
            step = max(1, flat.numel() // 4096)
            h.update(name.encode())
            h.update(str(tuple(p.shape)).encode())
            h.update(flat[::step].to(torch.float32).cpu().numpy().tobytes())
    return h.hexdigest()


def _max_len(model) -> int:
    # the same cap layer_stats applies (positions, and 4096 for Qwen models)
    cfg = model.config
    for key in ("n_positions", "max_sequence_length", "max_position_embeddings", "seq_length"):
        if getattr(cfg, key, None):
            n = int(getattr(cfg, key))
            break
    else:
        n = 2048
    if "qwen" in str(getattr(cfg, "model_type", "")):
        n = min(n, 4096)
    return n


def _token_batches(encoded: list[list[int]], batch_tokens: int) -> list[list[list[int]]]:
    """Greedy batches of length-sorted sequences (longest first, like ``length_collation``)."""
    batches: list[list[list[int]]] = []
    current: list[list[int]] = []
    for ids in encoded:
        width = len(current[0]) if current else len(ids)
        if current and width * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current = []
        current.append(ids)
    if current:
        batches.append(current)
    return batches


class _Mom2Hooks:
    """Forward pre-hooks that add ``x^T x`` of unpadded positions; the last module stops the forward."""

    def __init__(self, model, modules: Sequence[str]) -> None:
        named = dict(model.named_modules())
        self.acc: dict[str, Mom2] = {}
        self.keep = None  # flat mask of the current batch's real (unpadded) positions
        order = [name for name, _ in model.named_modules() if name in set(modules)]
        self.last = order[-1]
        self.handles = [named[m].register_forward_pre_hook(self._hook(m)) for m in modules]

    def _hook(self, name: str):
        import torch

        def hook(_module, args):
            x = args[0]
            flat = x.reshape(-1, x.shape[-1])[self.keep].to(torch.float32)
            prod = (flat.T @ flat).to(torch.float64)
            if name not in self.acc:
                self.acc[name] = Mom2(mom2=prod, count=0)
            else:
                self.acc[name].mom2 += prod
            self.acc[name].count += flat.shape[0]
            if name == self.last:
                raise _StopForward

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _forward_batch(model, batch: list[list[int]], pad_id: int, device, hooks: _Mom2Hooks) -> int:
    """Right-pad one batch, run it up to the last hooked module; returns its real token count."""
    import torch

    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for i, ids in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
    positions = torch.arange(width).unsqueeze(0).expand(len(batch), -1)
    hooks.keep = attention.reshape(-1).bool().to(device)
    try:
        model(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            position_ids=positions.to(device),
            use_cache=False,
        )
    except _StopForward:
        pass
    return int(attention.sum())


def collect_mom2(
    model,
    tok,
    modules: Sequence[str],
    texts: Iterable[str],
    *,
    batch_tokens: int = 4096,
    progress: bool = True,
) -> tuple[dict[str, Mom2], int]:
    """One pass over ``texts``: ``sum x x^T`` of the inputs of every module in ``modules``.

    Texts are tokenised like ``layer_stats`` does (``tok.encode``, truncated to the model's
    positions), sorted by length and batched to about ``batch_tokens`` tokens with right
    padding; padded positions are excluded. Each batch's product is taken in float32 and
    added to a float64 accumulator. Returns ``({module: Mom2}, n_tokens)``.
    """
    import torch

    if not modules:
        raise StatsError("collect_mom2: no modules given")
    max_len = _max_len(model)
    encoded = [tok.encode(t, truncation=True, max_length=max_len) for t in texts]
    encoded = sorted((ids for ids in encoded if ids), key=len, reverse=True)
    device = next(model.parameters()).device
    named = dict(model.named_modules())
    missing = [m for m in modules if m not in named]
    if missing:
        raise StatsError(f"modules {missing} do not exist in {type(model).__name__}; check rewrite_module_tmp")

    batches = _token_batches(encoded, batch_tokens)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    hooks = _Mom2Hooks(model, modules)
    n_tokens = 0
    iterator: Iterable = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc=f"mom2 over {len(modules)} modules", unit="batch")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in iterator:
                n_tokens += _forward_batch(model, batch, pad_id, device, hooks)
    finally:
        hooks.remove()
        model.train(was_training)
    return hooks.acc, n_tokens


def write_mom2(path: Path, stat: Mom2, sample_size: int, mom2_dtype: str, provenance: dict[str, Any]) -> None:
    """Write one statistics file in the layout ``tally`` loads, plus its provenance sidecar."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        **{
            "mom2.constructor": np.array("easyeditor.util.runningstats.SecondMoment()"),
            "mom2.count": np.array(stat.count),
            "mom2.mom2": stat.mom2.cpu().numpy().astype(mom2_dtype),
            "sample_size": np.array(sample_size),
        },
    )
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(provenance, indent=2, ensure_ascii=False), encoding="utf-8")


def read_provenance(path: Path) -> Optional[dict[str, Any]]:
    sidecar = Path(path).with_suffix(".json")
    if not Path(path).is_file() or not sidecar.is_file():
        return None
    try:
        return json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def default_corpus() -> tuple[list[str], dict[str, Any]]:
    """Texts of the held-out MKEB records (all languages) and a description of them."""
    from .corpus import STATEMENT_RECIPE, heldout_records, statement_texts

    held = heldout_records()
    return statement_texts(held), {"name": "mkeb_heldout", "recipe": STATEMENT_RECIPE, **held.source}


def _corpus_sample(texts: Optional[Sequence[str]], corpus_info: Optional[dict[str, Any]],
                   n: int) -> tuple[list[str], dict[str, Any]]:
    """The first ``n`` texts of the given corpus (default: the held-out MKEB corpus)."""
    if texts is None:
        texts, corpus_info = default_corpus()
    corpus_info = dict(corpus_info or {"name": "user texts"})
    texts = list(texts)
    if len(texts) < n:
        raise StatsError(
            f"mom2_n_samples={n} but the corpus {corpus_info.get('name', '')!r} has only {len(texts)} texts; "
            f"set mom2_n_samples <= {len(texts)} in the hparams"
        )
    return texts[:n], corpus_info


def _provenance(model, hparams, module: str, fingerprint: str, count: int, n: int, n_tokens: int,
                corpus_info: dict[str, Any], todo: list[str], elapsed: float) -> dict[str, Any]:
    """What a statistics file was computed from, stored in its sidecar and checked on reuse."""
    import torch
    import transformers

    return {
        "format": STATS_FORMAT,
        "what": f"sum of x x^T over inputs of {module} (undivided), EasyEdit layer_stats layout",
        "module": module,
        "model": str(model.config._name_or_path),
        "model_fingerprint": fingerprint,
        "mom2_dataset": hparams.mom2_dataset,
        "mom2_dtype": hparams.mom2_dtype,
        "sample_size_texts": n,
        "n_tokens": n_tokens,
        "count": count,
        "corpus": corpus_info,
        "modules_in_pass": todo,
        "seconds_for_pass": round(elapsed, 1),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def ensure_mom2_stats(
    model,
    tok,
    hparams,
    *,
    texts: Optional[Sequence[str]] = None,
    corpus_info: Optional[dict[str, Any]] = None,
    stats_dir=None,
    layers: Optional[Sequence[int]] = None,
    progress: bool = True,
) -> list[Path]:
    """Make sure the statistics files of ``hparams.layers`` exist for ``model``; compute the missing
    ones in one pass. ``stats_dir`` defaults to ``hparams.stats_dir`` (``default``: the MEMLA cache);
    ``hparams.stats_dir`` is set to the directory used. Returns the file paths.

    ``texts``/``corpus_info`` default to the held-out MKEB corpus; the first
    ``hparams.mom2_n_samples`` texts are used (as ``layer_stats`` would, ``sample_size`` counts
    texts), and the corpus must have at least that many.
    """
    from .paths import stats_dir as default_stats_dir

    if stats_dir is None:
        configured = getattr(hparams, "stats_dir", None)
        stats_dir = default_stats_dir() if configured in (None, "", "default") else configured
    root = Path(stats_dir)
    hparams.stats_dir = str(root)
    layers = list(layers if layers is not None else hparams.layers)
    n = int(hparams.mom2_n_samples)
    modules = [hparams.rewrite_module_tmp.format(layer) for layer in layers]
    paths = {
        m: mom2_file(root, model, hparams.mom2_dataset, m, hparams.mom2_dtype, n) for m in modules
    }
    fingerprint = model_fingerprint(model)
    todo = []
    for module, path in paths.items():
        prov = read_provenance(path)
        if prov is None or prov.get("model_fingerprint") != fingerprint or prov.get("format") != STATS_FORMAT:
            todo.append(module)
    if not todo:
        return list(paths.values())

    texts, corpus_info = _corpus_sample(texts, corpus_info, n)
    t0 = time.perf_counter()
    LOG.info("computing mom2 statistics for %s over %d texts (one pass)", todo, n)
    acc, n_tokens = collect_mom2(model, tok, todo, texts, progress=progress)
    elapsed = time.perf_counter() - t0
    for module in todo:
        provenance = _provenance(model, hparams, module, fingerprint, acc[module].count, n, n_tokens,
                                 corpus_info, todo, elapsed)
        write_mom2(paths[module], acc[module], n, hparams.mom2_dtype, provenance)
    LOG.info("mom2 statistics: %d texts, %d tokens, %.1f s -> %s", n, n_tokens, elapsed, paths[todo[0]].parent)
    return list(paths.values())
