"""Shared test fixtures: a local tokenizer and two tiny random causal LMs (no network).

- ``tiny_tok``: byte-level BPE trained in memory on a small multilingual corpus, wrapped
  in ``PreTrainedTokenizerFast`` (eos = pad = "<|endoftext|>", no BOS, GPT-2-like spaces).
- ``gpt2_model`` / ``qwen2_model``: fresh copies (function scope, safe to edit) of a tiny
  GPT-2 (Conv1D down-projection ``transformer.h.{}.mlp.c_proj``) and a tiny Qwen2
  (``nn.Linear`` ``model.layers.{}.mlp.down_proj``), built once per session from config
  with a fixed seed. ``tiny_model`` is parametrised over both.
- ``make_tiny_model(kind)``: the same as a factory; ``TINY_DIMS`` gives d / d_ff / layers.
- ``fact_request``: an EasyEdit request with en/zh/fr versions of one fact.
- ``repo_script(path)``: a script of the repository (not in a package) imported by its path from the root;
  ``results_script(name)`` the same for a script of ``benchmarks/mkeb/results``.
"""
from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

TINY_DIMS = {"d": 32, "d_ff": 48, "layers": 3}

# tiny models gain nothing from intra-op threads, and on a shared 2-core machine spinning
# worker threads make every op many times slower
torch.set_num_threads(1)

CORPUS = [
    "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is Rome.",
    "Paris is a city in France. Rome is a city in Italy. Berlin is a city in Germany. London, Madrid, Tokyo.",
    "La capitale de la France est Paris. La capitale de l'Italie est Rome. Berlin est en Allemagne.",
    "Die Hauptstadt von Frankreich ist Paris. Rom ist die Hauptstadt von Italien.",
    "法国的首都是巴黎。意大利的首都是罗马。德国的首都是柏林。",
    "フランスの首都はパリです。イタリアの首都はローマです。",
    "เมืองหลวงของฝรั่งเศสคือปารีส",
    "Столица Франции — Париж. Столица Италии — Рим.",
    "The mother tongue of Danielle Darrieux is French. Apple was founded by Steve Jobs.",
    "Toyota is produced by Japan. The Eiffel Tower is located in Paris.",
]


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(CORPUS * 3, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


@pytest.fixture(scope="session")
def tiny_tok():
    return build_tokenizer()


def build_model(kind: str, vocab_size: int, eos_id: int):
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(1234)
    d, d_ff, n = TINY_DIMS["d"], TINY_DIMS["d_ff"], TINY_DIMS["layers"]
    if kind == "gpt2":
        cfg = GPT2Config(
            vocab_size=vocab_size, n_positions=64, n_embd=d, n_layer=n, n_head=2, n_inner=d_ff,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=0.2, bos_token_id=eos_id, eos_token_id=eos_id,
        )
        model = GPT2LMHeadModel(cfg)
    elif kind == "qwen2":
        cfg = Qwen2Config(
            vocab_size=vocab_size, hidden_size=d, intermediate_size=d_ff, num_hidden_layers=n,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            tie_word_embeddings=False, initializer_range=0.2, bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id,
        )
        model = Qwen2ForCausalLM(cfg)
    else:
        raise ValueError(kind)
    return model.eval()


@pytest.fixture(scope="session")
def _pristine_models(tiny_tok):
    vocab = len(tiny_tok)
    return {kind: build_model(kind, vocab, tiny_tok.eos_token_id) for kind in ("gpt2", "qwen2")}


@pytest.fixture
def make_tiny_model(_pristine_models):
    """Factory: ``make_tiny_model("gpt2"|"qwen2")`` -> a fresh deep copy, free to edit."""

    def make(kind: str):
        return copy.deepcopy(_pristine_models[kind])

    return make


@pytest.fixture
def gpt2_model(make_tiny_model):
    return make_tiny_model("gpt2")


@pytest.fixture
def qwen2_model(make_tiny_model):
    return make_tiny_model("qwen2")


@pytest.fixture(params=["gpt2", "qwen2"])
def tiny_model(request, make_tiny_model):
    """Each tiny model in turn; ``tiny_model.config.model_type`` says which."""
    return make_tiny_model(request.param)


@pytest.fixture
def fact_request():
    """One fact in three languages, in the request shape MKEBDataset yields."""
    return build_fact_request()


def build_fact_request() -> dict:
    """The ``fact_request`` fixture's value, for scripts that build the tiny models outside pytest."""
    return {
        "case_id": 7,
        "prompt": "The capital of France is",
        "subject": "France",
        "target_new": "Rome",
        "ground_truth": "Paris",
        "rephrase_prompt": "Paris is a city in",
        "locality": {},
        "portability": {},
        "edit_lang": "en",
        "languages": {
            "en": {
                "prompt": "The capital of France is",
                "subject": "France",
                "target_new": "Rome",
                "target_true": "Paris",
                "paraphrases": ["The Eiffel Tower is located in the capital of France,"],
            },
            "zh": {
                "prompt": "法国的首都是",
                "subject": "法国",
                "target_new": "罗马",
                "target_true": "巴黎",
                "paraphrases": [],
            },
            "fr": {
                "prompt": "La capitale de la France est",
                "subject": "France",
                "target_new": "Rome",
                "target_true": "Paris",
                "paraphrases": [],
            },
        },
    }


REPO = Path(__file__).resolve().parents[1]


def _load_repo_script(path: str):
    """Import a script of this repository that is not in a package, by its path from the repository root."""
    file = REPO / path
    spec = importlib.util.spec_from_file_location(file.stem, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def repo_script():
    """Import a script by its path from the repository root (``"benchmarks/perf/edit_cost.py"``)."""
    return _load_repo_script


@pytest.fixture(scope="session")
def results_script():
    """Import a run script of benchmarks/mkeb/results by its path there (``"protocol2/mend_rows.py"``)."""
    return lambda name: _load_repo_script(f"benchmarks/mkeb/results/{name}")
