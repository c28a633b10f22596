"""benchmarks/mkeb/results/seq_snapshot.py: an unfinished sequence's state survives a machine that lost its cache.

The state is written by the harness's own SequenceState and read back by it after a save, the loss of the
live state and a restore: same state.json bytes, same parameter bits. The snapshot never goes back in time
(a live state further on is neither overwritten nor snapshotted over a further snapshot), is dropped once
its sequence's row is written, and refuses a base model whose parameters are not the ones it was made on.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from memla_mkeb.seq_state import SequenceState

KEY = "seq3|rome|en|101"
IDENTITY = {"key": KEY, "cfg_id": "abc", "seed": 42, "code": "e14d649"}


@pytest.fixture(scope="module")
def snap(results_script):
    return results_script("seq_snapshot.py")


def _model(root: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    base = {"layers.0.down.weight": torch.randn(48, 80, generator=g) * 0.02,
            "layers.1.down.weight": torch.randn(48, 80, generator=g) * 0.02,
            "layers.1.down.bias": torch.randn(80, generator=g),
            "layers.2.half": torch.randn(8, 8, generator=g).half()}
    model_dir = root / "models" / "tiny-abc"
    model_dir.mkdir(parents=True)
    save_file(base, str(model_dir / "model.safetensors"))
    return model_dir, base


def _edited(base: dict[str, torch.Tensor], edits: int) -> dict[str, torch.Tensor]:
    """What a few edits leave: rank-one terms added one at a time (ROME's kind, rounded after each), two
    changed columns (MEMLA's kind), a changed bias, a half-precision tensor."""
    g = torch.Generator().manual_seed(edits)
    dense = base["layers.0.down.weight"].clone()
    for _ in range(edits):
        dense += torch.outer(torch.randn(48, generator=g), torch.randn(80, generator=g)) * 1e-3
    sparse = base["layers.1.down.weight"].clone()
    sparse[:, [5, 61]] += torch.randn(48, 2, generator=g) * 1e-2
    return {"layers.0.down.weight": dense, "layers.1.down.weight": sparse,
            "layers.1.down.bias": base["layers.1.down.bias"] + 0.5, "layers.2.half": base["layers.2.half"] * 2}


def _save_state(run_dir: Path, edits: int, values: dict[str, torch.Tensor]) -> SequenceState:
    state = SequenceState(run_dir, KEY, IDENTITY)
    state.save({"steps": [{"position": i} for i in range(edits)], "final": {"scores": []},
                "editor": {"contexts": ["{}"]}}, values)
    return state


def _bits(values: dict[str, torch.Tensor]) -> dict[str, bytes]:
    return {k: v.contiguous().view(torch.uint8).numpy().tobytes() for k, v in values.items()}


def test_a_lost_state_comes_back_bit_for_bit(snap, tmp_path):
    model_dir, base = _model(tmp_path)
    run_dir = tmp_path / "seq50"
    values = _edited(base, 3)
    live = _save_state(run_dir, 3, values)
    state_json = (live.dir / "state.json").read_bytes()
    said = snap.save(run_dir, model_dir)
    assert said == [f"{KEY}: 3 edits, " + said[0].split(", ", 1)[1]]
    # what it says of the tensors: the low-rank one by name, the others as a count
    assert said[0].endswith(" MiB (layers.0.down.weight: rank 3, 3 tensors without a low-rank part)")
    manifest = json.loads((run_dir / "state_snapshot" / live.dir.name / "manifest.json").read_text())
    ranks = {t["name"]: t["rank"] for t in manifest["tensors"]}
    # the three rank-one edits are stored as three factors, the two changed columns as a plain bit difference
    assert ranks == {"layers.0.down.weight": 3, "layers.1.down.weight": 0, "layers.1.down.bias": 0,
                     "layers.2.half": 0}
    live.clear()  # the machine lost its cache
    assert snap.restore(run_dir, model_dir) == [f"{KEY}: restored with 3 edits done, weights checked bit for bit"]
    assert (live.dir / "state.json").read_bytes() == state_json
    again = SequenceState(run_dir, KEY, IDENTITY)  # the harness accepts it, with every parameter's bits
    loaded = again.load()
    assert loaded is not None and len(loaded["steps"]) == 3
    assert _bits(again.weights()) == _bits(values)


def test_a_lora_adapters_tensors_come_back(snap, tmp_path):
    """A LoRA sequence's state holds the adapter's tensors, which the model lacks: they are stored
    against zeros and come back bit for bit; a name the model lacks outside the adapter is still refused."""
    model_dir, base = _model(tmp_path)
    run_dir = tmp_path / "seq50"
    g = torch.Generator().manual_seed(3)
    adapter = {"peft_adapter/default/base_model.model.layers.0.q.lora_A.weight": torch.randn(4, 48, generator=g),
               "peft_adapter/default/base_model.model.layers.0.q.lora_B.weight": torch.randn(80, 4, generator=g)}
    live = _save_state(run_dir, 2, adapter)
    snap.save(run_dir, model_dir)
    live.clear()
    assert snap.restore(run_dir, model_dir) == [f"{KEY}: restored with 2 edits done, weights checked bit for bit"]
    again = SequenceState(run_dir, KEY, IDENTITY)
    assert again.load() is not None and _bits(again.weights()) == _bits(adapter)
    _save_state(run_dir, 3, {"layers.9.missing": torch.ones(2)})
    with pytest.raises(snap.SnapshotError, match="has no parameter layers.9.missing"):
        snap.save(run_dir, model_dir)


def test_never_goes_back_to_an_earlier_edit(snap, tmp_path):
    model_dir, base = _model(tmp_path)
    run_dir = tmp_path / "seq50"
    _save_state(run_dir, 2, _edited(base, 2))
    snap.save(run_dir, model_dir)
    assert snap.save(run_dir, model_dir) == [f"{KEY}: snapshot up to date (2 edits)"]
    further = _edited(base, 4)
    _save_state(run_dir, 4, further)  # this machine went on
    assert snap.restore(run_dir, model_dir) == [f"{KEY}: the live state got as far (4): left as it is"]
    assert snap.save(run_dir, model_dir)[0].startswith(f"{KEY}: 4 edits, ")
    _save_state(run_dir, 1, _edited(base, 1))  # a live state behind the snapshot: kept apart, then restored
    assert "is further than the live state" in snap.save(run_dir, model_dir)[0]
    assert snap.restore(run_dir, model_dir) == [f"{KEY}: restored with 4 edits done, weights checked bit for bit"]
    state = SequenceState(run_dir, KEY, IDENTITY)
    assert len(state.load()["steps"]) == 4 and _bits(state.weights()) == _bits(further)


def test_a_written_row_ends_the_snapshot(snap, tmp_path):
    model_dir, base = _model(tmp_path)
    run_dir = tmp_path / "seq50"
    live = _save_state(run_dir, 2, _edited(base, 2))
    snap.save(run_dir, model_dir)
    (run_dir / "sequences.shard0of2.jsonl").write_text(json.dumps({"key": KEY}) + "\n" + '{"key": "to', "utf-8")
    live.clear()
    assert snap.restore(run_dir, model_dir) == []  # the sequence is done: nothing to put back
    assert not (run_dir / ".sequence_state").exists()
    assert snap.save(run_dir, model_dir) == [f"{KEY}: its row is written, snapshot removed"]
    assert not (run_dir / "state_snapshot").exists()


def test_another_base_model_is_refused(snap, tmp_path, capsys):
    model_dir, base = _model(tmp_path)
    run_dir = tmp_path / "seq50"
    _save_state(run_dir, 2, _edited(base, 2))
    snap.save(run_dir, model_dir)
    (run_dir / ".sequence_state").rename(tmp_path / "lost")
    other = dict(base, **{"layers.0.down.weight": base["layers.0.down.weight"] + 1e-3})
    save_file(other, str(model_dir / "model.safetensors"))
    assert snap.main(["restore", str(run_dir), "--model", str(model_dir)]) == 1
    err = capsys.readouterr().err
    assert "layers.0.down.weight is not the one the snapshot was made against" in err
    assert not (run_dir / ".sequence_state" / SequenceState(run_dir, KEY, IDENTITY).dir.name).exists()


def test_decoding_is_exact_for_awkward_bits(snap):
    """Sign changes, zeros, denormals and large exponent jumps all come back exactly."""
    base = np.array([[1.0, -0.0, 1e-40, 3.0e38], [-2.5, 0.0, 7.0, -1e-3]], dtype=np.float32)
    value = np.array([[-1.0, 0.0, -1e-40, 1.0e-30], [-2.5, 5.0, 7.0000005, 1e-3]], dtype=np.float32)
    stored = snap.encode(base, value)
    assert snap.decode(base, stored).tobytes() == value.tobytes()


def test_a_state_without_weights_comes_back(snap, tmp_path):
    """IKE's sequence changes no parameter: its state is the editor's own (the facts it keeps in context)."""
    model_dir, _ = _model(tmp_path)
    run_dir = tmp_path / "seq50"
    live = SequenceState(run_dir, KEY, IDENTITY)
    live.save({"steps": [{"position": 0}], "final": {"scores": []}, "editor": {"facts": ["a", "b"]}})
    state_json = (live.dir / "state.json").read_bytes()
    assert snap.save(run_dir, model_dir)[0].endswith("(no weights)")
    live.clear()
    assert snap.restore(run_dir, model_dir)[0].startswith(f"{KEY}: restored with 1 edits done")
    again = SequenceState(run_dir, KEY, IDENTITY)
    assert (again.dir / "state.json").read_bytes() == state_json
    assert again.load()["editor"] == {"facts": ["a", "b"]} and again.weights() == {}
