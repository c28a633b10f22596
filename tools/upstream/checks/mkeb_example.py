"""The MKEB pull request's converter and example on a tiny model, in a fresh interpreter without the plugin.

Usage: ``mkeb_example.py WORKDIR``. Writes a BMIKE-53-style folder, converts it with
``python -m easyeditor.dataset.mkeb.convert``, runs ``examples/run_mkeb.py`` (MEMLA, one record)
and saves what the plugin-side comparison needs: the tiny model, the converted file, the scores
the example computed and the edited model's changed weights (``edited_weights.pt``).
Prints ``RESULT_JSON: {...}``.
"""
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from _bmike import write_bmike
from _tiny import emit, save_tiny_qwen2


def main():
    work = Path(sys.argv[1])
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    root = Path(os.environ["EASYEDIT_UNDER_TEST"])
    result = {}
    try:
        import memla_plugin  # noqa: F401
        result["memla_plugin_importable"] = True
    except ImportError:
        result["memla_plugin_importable"] = False

    src = write_bmike(str(work / "bmike53"))
    data = work / "mkeb" / "counterfact_mkeb.json"
    env = dict(os.environ)
    # the converter as a user runs it (python -m), through the bootstrap so the plugin stays blocked
    conv = subprocess.run([sys.executable, "-I", str(Path(__file__).with_name("_bootstrap.py")), str(root),
                           "-m", "easyeditor.dataset.mkeb.convert", "bmike53", "--src", src, "--out", str(data)],
                          capture_output=True, text=True, env=env)
    result["converter_exit"] = conv.returncode
    result["converter_tail"] = (conv.stdout + conv.stderr)[-1500:]
    if conv.returncode != 0:
        result["ok"] = False
        emit(result)
        sys.exit(1)

    model_dir = save_tiny_qwen2(str(work / "tiny-qwen2-model"))
    config = yaml.safe_load((root / "hparams/MEMLA/qwen2.5-coder-0.5b-instruct.yaml").read_text(encoding="utf-8"))
    config.update(model_name=model_dir, device="cpu", attr_steps=4, max_steps=10, lr=5e-2)
    hp_path = work / "memla-tiny.yaml"
    hp_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")

    example = root / "examples" / "run_mkeb.py"
    namespace = runpy.run_path(str(example), run_name="mkeb_example")
    run_globals = namespace["main"].__globals__
    real_score = run_globals["score_record"]
    edited_weights = {}

    def keep_edited(model, tok, record, langs, **kw):  # the edited weights, for the plugin-side comparison
        base = {k: v for k, v in torch.load(work / "base_state.pt").items()}
        edited_weights.update({k: v.detach().clone() for k, v in model.state_dict().items()
                               if not torch.equal(v, base[k])})
        return real_score(model, tok, record, langs, **kw)

    run_globals["score_record"] = keep_edited
    real_from_hparams = run_globals["BaseEditor"].from_hparams

    def from_hparams(hp):
        editor = real_from_hparams(hp)
        torch.save(editor.model.state_dict(), work / "base_state.pt")
        return editor

    run_globals["BaseEditor"].from_hparams = from_hparams
    out = work / "example_scores.json"
    results = namespace["main"](["--hparams", str(hp_path), "--data", str(data), "--size", "1",
                                 "--output", str(out)])
    torch.save(edited_weights, work / "edited_weights.pt")
    result.update(
        converted_records=len(json.loads(data.read_text(encoding="utf-8"))),
        example_records=len(results),
        edited_params=sorted(edited_weights),
        post_en=results[0]["post"]["en"] if results else None,
        pre_en=results[0]["pre"]["en"] if results else None,
    )
    result["ok"] = (not result["memla_plugin_importable"] and result["converted_records"] == 2
                    and len(results) == 1 and bool(edited_weights))
    emit(result)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
