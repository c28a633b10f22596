"""Unmapping a memory-mapped tensor's untouched file pages: fewer resident pages, never a changed value."""
from __future__ import annotations

import mmap
import sys

import numpy as np
import pytest
import torch

from conftest_bench import bench_env, bench_model_dir, compose, fake_apply  # noqa: F401
from memla_mkeb.pages import drop_file_pages, page_flags, whole_pages
from memla_mkeb.runner import Hooks, _sparse_embedding, run_benchmark

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/pagemap is Linux's")

PAGE = mmap.PAGESIZE


def _resident_pages(tensor: torch.Tensor) -> int:
    first, last = whole_pages(tensor)
    return int(((page_flags(first, last) >> np.uint64(63)) & np.uint64(1)).sum())


@pytest.fixture
def mapped(tmp_path):
    """A float32 tensor over a private, writable mapping of a 64-page file (as safetensors loads weights)."""
    values = np.arange(64 * PAGE // 4, dtype=np.float32)
    path = tmp_path / "weights.bin"
    values.tofile(path)
    with open(path, "r+b") as f:
        region = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    tensor = torch.frombuffer(region, dtype=torch.float32)
    yield tensor, torch.from_numpy(values.copy())
    del tensor
    region.close()


def test_untouched_file_pages_leave_the_resident_set_and_read_back_the_same(mapped):
    tensor, expected = mapped
    assert float(tensor.sum()) == float(expected.sum())  # reads every page
    assert _resident_pages(tensor) == 64
    assert drop_file_pages(tensor) == 64 * PAGE
    assert _resident_pages(tensor) == 0
    assert torch.equal(tensor, expected)  # a re-read maps the file's pages again


def test_a_written_page_keeps_what_was_written(mapped):
    tensor, expected = mapped
    float(tensor.sum())
    step = PAGE // 4
    tensor[5 * step + 3] = -1.0  # a private copy of page 5 now holds the write
    expected[5 * step + 3] = -1.0
    assert drop_file_pages(tensor) == 63 * PAGE
    assert _resident_pages(tensor) == 1
    assert torch.equal(tensor, expected)


def test_ordinary_tensors_are_left_alone():
    x = torch.randn(1 << 20)
    before = x.clone()
    assert drop_file_pages(x) == 0
    assert torch.equal(x, before)
    assert drop_file_pages(torch.randn(8, 8)[:, ::2]) == 0  # not contiguous
    assert drop_file_pages(torch.empty(0)) == 0


def test_tied_embeddings_are_not_a_sparse_table(qwen2_model):
    assert _sparse_embedding(qwen2_model) is qwen2_model.get_input_embeddings().weight
    qwen2_model.lm_head.weight = qwen2_model.get_input_embeddings().weight
    assert _sparse_embedding(qwen2_model) is None


@pytest.mark.parametrize("drop", [True, False])
def test_harness_unmaps_the_embedding_after_each_restore_check(bench_env, monkeypatch, drop):
    """After an edited row, the embedding of the file-loaded tiny model is out of the resident set
    (the restore check read all of it), or wholly resident with run.drop_embedding_pages=false."""
    import memla_plugin.memla_main as mm
    from memla_mkeb import runner

    monkeypatch.setattr(mm, "apply_memla_to_model", fake_apply())
    seen: list[tuple[str, int, int]] = []

    def after_row(row):
        (model, _, _), = runner._MODEL_CACHE.values()
        emb = model.get_input_embeddings().weight
        first, last = whole_pages(emb)
        seen.append((row["method"], _resident_pages(emb), last - first))

    cfg = compose(bench_env.overrides("data.limit=2", "methods=[memla]", f"run.drop_embedding_pages={drop}"))
    summary = run_benchmark(cfg, hooks=Hooks(after_row=after_row))
    assert summary.restore_checks == 2 and len(seen) == 2
    for method, resident, pages in seen:
        assert pages > 4  # the tiny table spans whole pages to drop
        assert resident == (0 if drop else pages), (method, resident, pages)
