"""EasyEdit users get the adapter without leaving EasyEdit: ``save_adapter_dir`` in MEMLA's hparams.

Runs ``BaseEditor.edit`` (edit, evaluate, restore) on a tiny Qwen2 saved under a name EasyEdit
dispatches, then reloads the saved adapter with peft onto the restored model.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
LANGUAGES = {
    "en": {"prompt": "The mother tongue of Danielle Darrieux", "subject": "Danielle Darrieux", "target_new": "English",
           "target_true": "French", "paraphrases": []},
    "fr": {"prompt": "La langue maternelle de Danielle Darrieux", "subject": "Danielle Darrieux",
           "target_new": "anglais", "target_true": "français", "paraphrases": []},
    "zh": {"prompt": "Danielle Darrieux的母语是", "subject": "Danielle Darrieux", "target_new": "英语",
           "target_true": "法语", "paraphrases": []},
}
IDS = torch.tensor([[5, 17, 33, 8, 90, 2, 41, 7]])


@pytest.fixture(scope="module")
def easyedit_host():
    pytest.importorskip("easyeditor")
    from memla_plugin import easyedit

    easyedit.register()
    return easyedit


def test_base_editor_edit_saves_a_loadable_adapter(easyedit_host, tmp_path, qwen2_model, tiny_tok):
    from easyeditor import BaseEditor
    from peft import PeftModel

    from memla_plugin.adapters import model_fingerprint, read_sidecar
    from memla_plugin.hparams import MEMLAHyperParams
    from memla_plugin.memla_main import last_edit_report

    model_dir = tmp_path / "tiny-qwen2-model"  # "qwen2" in the name: EasyEdit's loader dispatches it
    qwen2_model.save_pretrained(model_dir)
    tiny_tok.save_pretrained(model_dir)
    config = yaml.safe_load((REPO / "hparams" / "MEMLA" / "qwen2.5-0.5b.yaml").read_text())
    config.update(model_name=str(model_dir), attr_steps=4, max_steps=20, lr=5e-2,
                  save_adapter_dir=str(tmp_path / "adapters"))
    (tmp_path / "memla.yaml").write_text(yaml.safe_dump(config))
    editor = BaseEditor.from_hparams(MEMLAHyperParams.from_hparams(tmp_path / "memla.yaml"))
    base_hash = model_fingerprint(editor.model)

    seen = {}
    apply = editor.apply_algo

    def spy(model, tok, requests, hparams, **kw):  # the edited model's logits before EasyEdit restores it
        edited, weights_copy = apply(model, tok, requests, hparams, **kw)
        with torch.no_grad():
            seen["logits"] = edited(input_ids=IDS).logits.clone()
        return edited, weights_copy

    editor.apply_algo = spy
    en = LANGUAGES["en"]
    editor.edit(prompts=en["prompt"], target_new=en["target_new"], ground_truth=en["target_true"], subject=en["subject"],
                languages=LANGUAGES, edit_lang="en", case_id=3, sequential_edit=False, verbose=False)
    editor.apply_algo = apply

    out = Path(last_edit_report().adapter_dir)
    assert out.parent == tmp_path / "adapters" and out.name == "case3-en"
    sidecar = read_sidecar(out)
    assert sidecar.model_hash == base_hash and sidecar.edits[0].target_new == "English"
    assert model_fingerprint(editor.model) == base_hash  # EasyEdit restored the weights
    model = PeftModel.from_pretrained(editor.model, str(out))
    with torch.no_grad():
        diff = (model(input_ids=IDS).logits - seen["logits"]).abs().max().item()
    assert diff <= 1e-5, f"adapter on the restored model differs from EasyEdit's edited model by {diff}"
