"""Edit MKEB records with MEMLA and score every language before and after the edit.

    python -m easyeditor.dataset.mkeb.convert bmike53 --src ./data/BMIKE53/counterfact \
        --out ./data/MKEB/counterfact_mkeb.json
    python examples/run_mkeb.py --hparams ./hparams/MEMLA/qwen2.5-coder-0.5b-instruct.yaml \
        --data ./data/MKEB/counterfact_mkeb.json --size 10

Each record is edited on its own (the model is restored before the next one). The table is
the mean over records per language of MKEB's metrics (see easyeditor/evaluate/mkeb/metrics.py).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from easyeditor import BaseEditor, MEMLAHyperParams  # noqa: E402
from easyeditor.dataset.mkeb import MKEBDataset  # noqa: E402
from easyeditor.evaluate.mkeb import score_record, unedited_reference  # noqa: E402

SHOWN = ("ES", "PS", "NS", "MQ")


def restore(model, weights_copy):
    with torch.no_grad():
        for name, value in weights_copy.items():
            model.get_parameter(name).copy_(value)


def mean_table(results, langs, when):
    rows = []
    for lang in langs:
        cells = []
        for metric in SHOWN:
            values = [r[when][lang][metric] for r in results if r[when][lang][metric] is not None]
            cells.append(f"{100 * sum(values) / len(values):6.1f}" if values else "     -")
        rows.append(f"{when:5s} {lang:5s}" + "".join(cells))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hparams", required=True, help="a hparams/MEMLA/*.yaml file")
    parser.add_argument("--data", required=True, help="MKEB JSON (from the converter or the authors' MLiKE_v2.json)")
    parser.add_argument("--edit_lang", default="en")
    parser.add_argument("--langs", nargs="+", default=None, help="languages to carry and score (default: all)")
    parser.add_argument("--ids", default=None, help="file of record ids to keep, one per line")
    parser.add_argument("--size", type=int, default=None, help="only the first N records")
    parser.add_argument("--output", default=None, help="write the per-record scores to this JSON file")
    args = parser.parse_args(argv)

    editor = BaseEditor.from_hparams(MEMLAHyperParams.from_hparams(args.hparams))
    dataset = MKEBDataset(args.data, edit_lang=args.edit_lang, test_ids=args.ids, langs=args.langs, size=args.size)
    results = []
    for record, request in zip(dataset.records, dataset):
        langs = args.langs or list(record.langs)
        before = unedited_reference(editor.model, editor.tok, record, langs)
        _, edited, weights_copy = editor.edit_requests([request], sequential_edit=True, verbose=False)
        after = score_record(edited, editor.tok, record, langs, reference=before)
        restore(editor.model, weights_copy)
        results.append({"example_id": record.example_id, "pre": before.scores, "post": after})

    langs = args.langs or list(dataset.records[0].langs) if dataset.records else []
    print(f"{'':11s}" + "".join(f"{m:>6s}" for m in SHOWN))
    print("\n".join(mean_table(results, langs, "pre") + mean_table(results, langs, "post")))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            json.dump(results, fh, ensure_ascii=False, indent=1)
    return results


if __name__ == "__main__":
    main()
