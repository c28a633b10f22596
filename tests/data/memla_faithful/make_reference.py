"""Write the paper's-MEMLA reference updates that tests/test_memla_refined.py compares with.

The reference must come from the code as it was before the refined preset's switches existed
(commit 76f66ad), so run this file from a checkout of that commit on the import path:

    git worktree add --detach /tmp/memla-76f66ad 76f66ad
    PYTHONSAFEPATH=1 PYTHONPATH=/tmp/memla-76f66ad python tests/data/memla_faithful/make_reference.py

It builds the same tiny models and request as the test session (tests/conftest.py) and saves
the updates ``execute_memla`` returns with default hparams at two attribution thresholds.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for conftest's builders

from conftest import build_fact_request, build_model, build_tokenizer  # noqa: E402

from memla_plugin.hparams import MEMLAHyperParams  # noqa: E402
from memla_plugin.memla_main import execute_memla  # noqa: E402

CASES = [("gpt2", 0.3), ("gpt2", 0.1), ("qwen2", 0.3), ("qwen2", 0.1)]
OUT = HERE / "updates.pt"


def main() -> None:
    import memla_plugin

    print(f"memla_plugin from {memla_plugin.__file__}")
    tok = build_tokenizer()
    reference = {}
    for kind, threshold in CASES:
        model = build_model(kind, len(tok), tok.eos_token_id)
        hp = MEMLAHyperParams(model_name="tiny", attr_threshold=threshold)
        updates, _ = execute_memla(model, tok, build_fact_request(), hp)
        reference[f"{kind}|{threshold}"] = {k: v.detach().to(torch.float32).contiguous() for k, v in updates.items()}
    torch.save(reference, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
