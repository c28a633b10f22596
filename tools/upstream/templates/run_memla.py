"""Edit one fact with MEMLA through BaseEditor and print EasyEdit's metrics.

    python examples/run_memla.py --hparams ./hparams/MEMLA/qwen2.5-coder-0.5b-instruct.yaml [--edit_lang zh]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from easyeditor import BaseEditor, MEMLAHyperParams  # noqa: E402

FACT = {  # in MEMLA's default identification languages, so both updates are trained
    "en": {"prompt": "The capital of France is", "subject": "France", "target_new": "Rome", "target_true": "Paris",
           "paraphrases": ["France's capital city is"]},
    "zh": {"prompt": "法国的首都是", "subject": "法国", "target_new": "罗马", "target_true": "巴黎"},
    "fr": {"prompt": "La capitale de la France est", "subject": "France", "target_new": "Rome", "target_true": "Paris"},
}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hparams", required=True, help="a hparams/MEMLA/*.yaml file")
    parser.add_argument("--edit_lang", default="en", choices=sorted(FACT))
    args = parser.parse_args()
    editor = BaseEditor.from_hparams(MEMLAHyperParams.from_hparams(args.hparams))
    fact = FACT[args.edit_lang]
    request = {"prompt": fact["prompt"], "subject": fact["subject"], "target_new": fact["target_new"],
               "ground_truth": fact["target_true"], "locality": {}, "portability": {},
               "edit_lang": args.edit_lang, "languages": FACT}
    metrics, _, _ = editor.edit_requests([request], sequential_edit=False)
    print(json.dumps(metrics, indent=2, ensure_ascii=False, default=str))
