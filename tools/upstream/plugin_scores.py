"""The plugin's MKEB scores for what ``checks/mkeb_example.py`` left in its work folder (run with the plugin).

Usage: ``python tools/upstream/plugin_scores.py WORKDIR``. Converts the same BMIKE-53 folder with
the plugin's converter, scores the same record with the plugin's scorer on the unedited tiny
model and on the edited weights the upstream example produced, and compares everything with
the upstream example's output. Prints ``RESULT_JSON: {...}``; exits non-zero on a difference.
"""
import json
import sys
from pathlib import Path


def main() -> int:
    work = Path(sys.argv[1])
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memla_plugin.mkeb.convert import convert_bmike53
    from memla_plugin.mkeb.reference import unedited_reference
    from memla_plugin.mkeb.scoring import score_record

    upstream_records = json.loads((work / "mkeb" / "counterfact_mkeb.json").read_text(encoding="utf-8"))
    example = json.loads((work / "example_scores.json").read_text(encoding="utf-8"))[0]
    records, _ = convert_bmike53(work / "bmike53")
    same_records = [r.to_json() for r in records] == upstream_records
    record = next(r for r in records if str(r.example_id) == str(example["example_id"]))
    model_dir = work / "tiny-qwen2-model"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    langs = list(record.langs)
    before = unedited_reference(model, tok, record, langs)
    edited = torch.load(work / "edited_weights.pt")
    with torch.no_grad():
        for name, value in edited.items():
            model.get_parameter(name).copy_(value)
    after = score_record(model, tok, record, langs, reference=before)
    diffs = [f"{when} {lang} {metric}: plugin {mine[lang].get(metric, 'absent')!r} "
             f"vs upstream {theirs[lang].get(metric, 'absent')!r}"
             for when, mine, theirs in (("pre", before.scores, example["pre"]), ("post", after, example["post"]))
             for lang in langs for metric in sorted(set(mine[lang]) | set(theirs[lang]))
             if mine[lang].get(metric, "absent") != theirs[lang].get(metric, "absent")]
    ok = same_records and not diffs and bool(edited)
    print("RESULT_JSON: " + json.dumps({"ok": ok, "same_converted_records": same_records, "langs": langs,
                                        "n_metrics_compared": 2 * sum(len(before.scores[l]) for l in langs),
                                        "differences": diffs, "post": after}, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
