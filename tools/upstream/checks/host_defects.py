"""Probe the host defects the host-fix patches address; ``ok`` is true where EasyEdit behaves correctly.

Run in a fresh interpreter against an EasyEdit copy (pristine: every probe should fail with the
known error; patched: every probe should pass). Usage: ``host_defects.py WORKDIR``.

* ``generate-fast-kv-mask``: greedy ``generate_fast`` (top_k=1) under the KV cache equals a greedy
  decode with full forward passes, for a right-padded batch of prompts of different lengths;
* ``layer-stats-progress-none``: ``layer_stats(..., progress=None)`` computes the statistics
  (rome and r_rome), from a local corpus put in place of ``load_dataset``;
* ``trainer-reload-weights-only``: ``BaseTrainer.run`` reloads the checkpoint it wrote, whose
  model state holds a config object as MEND's does.
"""
import copy
import importlib
import os
import sys
import time
import traceback
import unicodedata
from pathlib import Path
from types import SimpleNamespace

import torch

from _tiny import CORPUS, build_qwen2, build_tokenizer, emit


def _clean(text):
    return unicodedata.normalize("NFKD", text).replace("\n\n", " ").replace("<|endoftext|>", "")


def probe_generate_fast(model, tok):
    gen = importlib.import_module("easyeditor.util.generate")
    tok = copy.deepcopy(tok)
    tok.padding_side = "right"  # as ROME/MEMIT use it
    prompts = ["The", "Therefore the capital", "Because"]
    max_len = 20
    reference = []
    for prompt in prompts:
        ids = tok.encode(prompt)
        with torch.no_grad():
            while len(ids) < max_len:
                ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
        reference.append(_clean(tok.decode(ids, skip_special_tokens=True)))
    fast = gen.generate_fast(model, tok, prompts, n_gen_per_prompt=1, top_k=1, max_out_len=max_len)
    same = [a == b for a, b in zip(fast, reference)]
    return {"ok": all(same), "matching_prompts": sum(same), "n_prompts": len(prompts),
            "fast": fast, "reference": reference}


def probe_layer_stats(model, tok, work):
    out = {}
    for mod_name in ("easyeditor.models.rome.layer_stats", "easyeditor.models.r_rome.layer_stats"):
        mod = importlib.import_module(mod_name)
        mod.load_dataset = lambda *a, **k: {"train": [{"text": t} for t in CORPUS]}  # no download
        stat = mod.layer_stats(
            model, tok, "model.layers.0.mlp.down_proj", str(work / mod_name.split(".")[2]), "wikitext", ["mom2"],
            model_name="tiny-qwen2", sample_size=len(CORPUS), precision="float32", progress=None,
            hparams=SimpleNamespace(device="cpu"),
        )
        out[mod_name] = int(stat.mom2.count)
    return {"ok": all(v > 0 for v in out.values()), "token_counts": out}


class _WithConfig(torch.nn.Module):
    """A model whose state dict carries its config object, as EasyEdit's MEND.state_dict does."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        state["model_config"] = self.inner.config
        return state

    def load_state_dict(self, state_dict, strict=True):
        state_dict = dict(state_dict)
        state_dict.pop("model_config")
        return super().load_state_dict(state_dict, strict=strict)


def probe_trainer_reload(model, work):
    base = importlib.import_module("easyeditor.trainer.BaseTrainer")
    tutils = importlib.import_module("easyeditor.trainer.utils")
    reloads = []

    class Trainer(base.BaseTrainer):
        def __init__(self):  # only what run() reads; the real __init__ builds a MEND model from a config
            self.config = SimpleNamespace(
                max_epochs=None, max_iters=3, alg="MEND", log_interval=1, val_interval=1, eval_only=False,
                debug=False, save=True, final_eval=True, model_parallel=False, device="cpu", val_steps=1,
                results_dir=str(work), early_stop_patience=5, early_stop_key="loss/total_edit_val",
                batch_size=1, silent=True,
            )
            self.model = _WithConfig(copy.deepcopy(model))
            self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
            self.lr_opt = None
            self.train_set = [0, 1, 2, 3]
            self.train_loader = [{"x": i} for i in range(4)]
            self.save_path = str(work / "trainer_ckpt")
            self.start_time = tutils.formatted_timestamp()

        def train_step(self, batch):
            return {"loss/total_edit": 0.5}

        def validate(self, steps=None, log=False):
            return {"loss/total_edit_val": 0.25}

    trainer = Trainer()
    original_load = torch.load

    def counting_load(*args, **kwargs):
        reloads.append(kwargs.get("weights_only", "default"))
        return original_load(*args, **kwargs)

    torch.load = counting_load
    try:
        trainer.run()
    finally:
        torch.load = original_load
    # load_archive (used to load MEND's trained hypernetwork) reads the same kind of file
    path = work / "archive.pt"
    torch.save({"model": _WithConfig(copy.deepcopy(model)).state_dict()}, path)
    archive, _ = tutils.load_archive(str(path))
    return {"ok": bool(reloads) and "model" in archive, "reloads": [str(r) for r in reloads]}


def main():
    work = Path(sys.argv[1])
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    tok = build_tokenizer()
    model = build_qwen2(tok)
    t0 = time.monotonic()
    import easyeditor  # noqa: F401  (the package must import before its modules are probed)

    result = {"easyeditor_file": sys.modules["easyeditor"].__file__}
    probes = {
        "generate-fast-kv-mask": lambda: probe_generate_fast(model, tok),
        "layer-stats-progress-none": lambda: probe_layer_stats(model, tok, work / "stats"),
        "trainer-reload-weights-only": lambda: probe_trainer_reload(model, work / "trainer"),
    }
    result["import_s"] = round(time.monotonic() - t0, 1)
    for name, probe in probes.items():
        (work / "trainer").mkdir(exist_ok=True)
        t1 = time.monotonic()
        try:
            result[name] = probe()
        except Exception as exc:  # a defect shows as an exception: record it
            result[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500],
                            "where": traceback.format_exc(limit=-2)[-800:]}
        result[name]["seconds"] = round(time.monotonic() - t1, 1)
    emit(result)


if __name__ == "__main__":
    main()
