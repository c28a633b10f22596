"""Probe the host defects the host-fix patches address; ``ok`` is true where EasyEdit behaves correctly.

Run in a fresh interpreter against an EasyEdit copy (pristine: every probe should fail with the
known error; patched: every probe should pass). Usage: ``host_defects.py WORKDIR``.

* ``generate-fast-kv-mask``: greedy ``generate_fast`` (top_k=1) under the KV cache equals a greedy
  decode with full forward passes, for a right-padded batch of prompts of different lengths;
* ``layer-stats-progress-none``: ``layer_stats(..., progress=None)`` computes the statistics
  (rome and r_rome), from a local corpus put in place of ``load_dataset``;
* ``mend-checkpoint-plain-config``: a checkpoint of EasyEdit's own MEND, written by ``BaseTrainer``,
  reloads under torch's ``weights_only=True`` (``BaseTrainer.run``, ``load_archive``), and
  ``mend_main`` does not ask for ``weights_only=False``.
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


def _tiny_mend(model):
    """EasyEdit's own MEND wrapped around ``model``, with the settings of its MEND hparams files."""
    mend = importlib.import_module("easyeditor.trainer.algs.MEND")
    config = SimpleNamespace(
        model_name="tiny-qwen2", model_class="Qwen2ForCausalLM", exact_match=False, device="cpu",
        model_parallel=False, inner_params=["model.layers.2.mlp.down_proj.weight"], edit_lr=1e-4, shared=True,
        mlp_class="IDMLP", n_hidden=1, init="id", act="relu", rank=1920, norm=True, combine=True, x_only=False,
        delta_only=False, one_sided=False, n_blocks=2, dropout=0.0, train_base=False, no_grad_layers=None,
        lr_lr=1e-4, lr_scale=1.0,
    )
    return mend.MEND(copy.deepcopy(model), config, lambda: copy.deepcopy(model))


def probe_trainer_reload(model, work):
    """``BaseTrainer.run`` reloads the MEND checkpoint it wrote, and ``load_archive`` and
    ``mend_main``'s loader read it, all under torch's ``weights_only=True``."""
    base = importlib.import_module("easyeditor.trainer.BaseTrainer")
    tutils = importlib.import_module("easyeditor.trainer.utils")
    mend_main = importlib.import_module("easyeditor.models.mend.mend_main")
    reloads = []

    class Trainer(base.BaseTrainer):
        def __init__(self):  # only what run() reads; the real __init__ builds a MEND model from a config
            self.config = SimpleNamespace(
                max_epochs=None, max_iters=3, alg="MEND", log_interval=1, val_interval=1, eval_only=False,
                debug=False, save=True, final_eval=True, model_parallel=False, device="cpu", val_steps=1,
                results_dir=str(work), early_stop_patience=5, early_stop_key="loss/total_edit_val",
                batch_size=1, silent=True,
            )
            self.model = _tiny_mend(model)
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

    def recording_load(*args, **kwargs):  # what each load asked for; None = torch's default (True since 2.6)
        reloads.append(kwargs.get("weights_only"))
        return original_load(*args, **kwargs)

    torch.load = recording_load
    try:
        trainer.run()
        archive, _ = tutils.load_archive(trainer.save_path)
        trainer.model.load_state_dict(dict(archive["model"]))
    finally:
        torch.load = original_load
    # the edit-time loader asks for weights_only=False (it runs whatever the pickle names) unless fixed
    unsafe = "weights_only=False" in Path(mend_main.__file__).read_text(encoding="utf-8")
    return {"ok": bool(reloads) and False not in reloads and not unsafe,
            "reloads": [str(r) for r in reloads], "mend_main_weights_only_false": unsafe}


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
        "mend-checkpoint-plain-config": lambda: probe_trainer_reload(model, work / "trainer"),
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
