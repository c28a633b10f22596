"""load_model on local directories (what a user with a local copy or the HF cache has)."""
from __future__ import annotations

import hashlib

import pytest
import torch

from memla_plugin.models import default_model as models
from memla_plugin.models import loading
from memla_plugin.errors import DefaultModelError
from memla_plugin.models import ModelLoadError, load_model, resolve_device, resolve_dtype


@pytest.fixture
def tiny_dir(tmp_path, qwen2_model, tiny_tok):
    """A tiny Qwen2 + a tokenizer *without* pad token saved like a hub snapshot."""
    from transformers import PreTrainedTokenizerFast

    d = tmp_path / "tiny-qwen2"
    qwen2_model.save_pretrained(d)
    tok = PreTrainedTokenizerFast(tokenizer_object=tiny_tok.backend_tokenizer, eos_token="<|endoftext|>")
    assert tok.pad_token is None
    tok.save_pretrained(d)
    return d


def test_local_directory_loads_in_eval_mode_with_pad_token(tiny_dir, qwen2_model):
    model, tok = load_model(str(tiny_dir))
    assert not model.training
    assert model.dtype == torch.float32  # None -> full precision
    assert tok.pad_token == tok.eos_token and model.config.pad_token_id == tok.pad_token_id
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, qwen2_model(ids).logits, atol=1e-6)


@pytest.mark.parametrize("dtype, expected", [("bfloat16", torch.bfloat16), ("float16", torch.float16),
                                              (torch.bfloat16, torch.bfloat16), ("fp32", torch.float32)])
def test_dtype_option(tiny_dir, dtype, expected):
    model, _ = load_model(str(tiny_dir), dtype=dtype)
    assert model.dtype == expected


def test_bad_dtype_and_device_are_named_errors(monkeypatch):
    with pytest.raises(ModelLoadError, match="int8"):
        resolve_dtype("int8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match="CUDA is not available"):
        resolve_device(0)
    with pytest.raises(ModelLoadError, match="not understood"):
        resolve_device("gpu-please")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == "auto"


def test_integer_device_means_cuda_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(1) == torch.device("cuda:1")
    assert resolve_device("0") == torch.device("cuda:0")


def test_missing_model_offline_is_a_named_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE"):
        load_model(str(tmp_path / "no-such-model"))


def test_default_alias_goes_through_the_cache(tmp_path, monkeypatch, qwen2_model, tiny_tok):
    """load_model("default") = convert once into MEMLA_CACHE, then load from there."""
    payload = b"fake gguf bytes"
    part = tmp_path / "part01.bin"
    part.write_bytes(payload)
    monkeypatch.setenv("MEMLA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "find_default_parts", lambda: [models.PartFile("p1", part)])
    monkeypatch.setattr(models, "DEFAULT_GGUF_SHA256", hashlib.sha256(payload).hexdigest())
    calls = []

    def fake_convert(gguf_path, out_dir):
        calls.append(gguf_path)
        qwen2_model.save_pretrained(out_dir)
        tiny_tok.save_pretrained(out_dir)

    monkeypatch.setattr(models, "convert_gguf", fake_convert)
    model, tok = load_model("default")
    assert "Qwen2.5-Coder-0.5B-Instruct" in model.name_or_path
    assert model.config.model_type == "qwen2" and len(calls) == 1
    assert models.resolve_model_path("default") == model.name_or_path
    assert models.resolve_model_path("ai-forever/mGPT") == "ai-forever/mGPT"

    # a cache that passes the cheap check but does not load is rebuilt once
    real = loading._from_pretrained
    failures = []

    def flaky(path, device, dtype):
        if not failures:
            failures.append(path)
            raise OSError("simulated unreadable safetensors")
        return real(path, device, dtype)

    monkeypatch.setattr(loading, "_from_pretrained", flaky)
    model2, _ = load_model("default")
    assert len(calls) == 2 and failures
    monkeypatch.setattr(loading, "_from_pretrained", lambda *a: (_ for _ in ()).throw(OSError("still broken")))
    with pytest.raises(DefaultModelError, match="does not load"):
        load_model("default")
