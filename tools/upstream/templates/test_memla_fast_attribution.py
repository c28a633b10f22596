"""MEMLA's fast attribution gives the reference attribution's scores and neurons (tiny Qwen2 and Llama, CPU)."""
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from easyeditor.models.memla.architectures import resolve_architecture  # noqa: E402
from easyeditor.models.memla.neurons.attribution import AttributionSettings, attribute_reference  # noqa: E402
from easyeditor.models.memla.neurons.fast import attribute_fast  # noqa: E402
from easyeditor.models.memla.neurons.attribution import select_neurons  # noqa: E402
from easyeditor.models.memla.neurons.stack import resolve_stack  # noqa: E402


class _Tok:
    """Characters as token ids: enough for attribution, which only needs ids and an EOS."""

    eos_token_id = 1
    pad_token_id = 1
    bos_token_id = None

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [2 + (ord(c) % 60) for c in text]}

    def encode(self, text, add_special_tokens=True):
        return self(text)["input_ids"]


def _tiny(family):
    common = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, eos_token_id=1, pad_token_id=1)
    if family == "qwen2":
        return transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common)).eval()
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**common)).eval()


@pytest.mark.parametrize("case", [("qwen2", "amig"), ("qwen2", "zero"), ("llama", "amig")])
def test_fast_equals_reference(case):
    family, baseline = case
    torch.manual_seed(0)
    model = _tiny(family)
    arch = resolve_architecture(model)
    assert resolve_stack(model, arch) is not None  # the fast path runs, not its fallback to the reference
    settings = AttributionSettings(steps=6, baseline=baseline, batch_size=4)
    args = (model, _Tok(), "The capital of France is", " Paris", arch)
    fast = attribute_fast(*args, settings)
    ref = attribute_reference(*args, settings)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-6)
    assert select_neurons(fast, 0.3) == select_neurons(ref, 0.3)
