"""The shipped MEMLA hparams: every key accepted by MEMLAHyperParams, the paper's constants."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from memla_plugin.hparams import MEMLAHyperParams

HP_DIR = Path(__file__).resolve().parents[1] / "hparams" / "MEMLA"
PAPER = {
    "attr_steps": 20, "attr_threshold": 0.3, "attr_baseline": "amig", "id_langs": ["en", "zh", "fr"],
    "rank_per_neuron": 4, "use_masks": True, "use_language_specific": True, "use_language_independent": True,
    "lr": 1e-3, "max_steps": 60, "stop_loss": 0.01, "stop_prob": 0.96, "new_loss_weight": 2.5,
    "true_loss_weight": 2.0, "apply_scale": 0.5,
}
FILES = {
    "qwen2.5-0.5b.yaml": "default",
    "mgpt-1.3b.yaml": "ai-forever/mGPT",
    "llama3-8b.yaml": "meta-llama/Meta-Llama-3-8B",
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_hparams_file_loads_with_paper_constants(name):
    path = HP_DIR / name
    raw = yaml.safe_load(path.read_text())
    hp = MEMLAHyperParams.from_hparams(path)  # rejects unknown keys
    assert hp.alg_name == "MEMLA" and hp.model_name == FILES[name]
    assert set(raw) <= set(hp.to_dict())
    got = {k: getattr(hp, k) for k in PAPER}
    assert got == PAPER


def test_paper_models_run_on_a_gpu_and_the_default_on_cpu():
    assert MEMLAHyperParams.from_hparams(HP_DIR / "qwen2.5-0.5b.yaml").device == "cpu"
    for name in ("mgpt-1.3b.yaml", "llama3-8b.yaml"):
        assert MEMLAHyperParams.from_hparams(HP_DIR / name).device == 0
