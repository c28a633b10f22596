"""MKEB metrics: hand-computed values on a stub LM, tokenisation rules, batching invariance."""
from __future__ import annotations

import pytest
import torch
from conftest_mkeb import BigramStub, byte_level_tok, mkeb_record, sentencepiece_like_tok, word_tok

from memla_plugin.errors import EmptyTargetError
from memla_plugin.mkeb.loader import record_from_json
from memla_plugin.mkeb.metrics import (
    ReferenceCache,
    encode_prompt,
    encode_target,
    greedy_decode,
    score_record,
    score_records,
    target_with_space,
    teacher_forced,
    token_set_f1,
    unedited_reference,
    uses_space_prefix,
)



@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread; with other jobs on the 2 cores, 2 threads spin-wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


PROBS = {
    "?": {"A": 0.5, "C": 0.3},
    "!": {"A": 0.8, "C": 0.1},
    "A": {"B": 0.5, "D": 0.2},
    "B": {"x": 0.6},
}


def stub_record():
    return record_from_json({
        "example_id": 1,
        "edit": {
            "en": {"prompt": "{} ?", "subject": "Q", "target_new": "A D", "target_true": "C"},
            "zh": {"prompt": "{} !", "subject": "Q", "target_new": "A D", "target_true": None},
        },
        "paraphrase_prompts": {"en": ["R ?", "R !"], "zh": ["R !"]},
        "neighborhood_prompts": {"en": ["N ?", "N !"], "zh": ["N !"]},
        "neighborhood_answers": {"en": ["A D", "C"], "zh": ["A"]},
        "multi_hop_questions": {"en": ["M !"], "zh": ["M ?"]},
        "multi_hop_new_answer": {"en": "A B D", "zh": "C"},
    })


def test_hand_computed_scores_on_stub():
    tok, model = word_tok(), BigramStub(PROBS)
    scores = score_record(model, tok, stub_record(), ["en", "zh"], device="cpu", batch_size=4)
    en = scores["en"]
    # ES: P(A D | Q ?) = .5*.2 = .10 < P(C | Q ?) = .3
    assert en["ES"] == 0.0
    # PS: "R ?" -> .10 < .30 (0); "R !" -> .8*.2 = .16 > .10 (1)
    assert en["PS"] == pytest.approx(0.5)
    # NS: "N ?" decodes 2 tokens [A, B] vs {A, D}: F1 .5 ; "N !" decodes [A] vs {C}: 0
    assert en["NS"] == pytest.approx(0.25)
    # MQ: "M !" decodes 3 tokens [A, B, x] vs {A, B, D}: P = R = 2/3
    assert en["MQ"] == pytest.approx(2 / 3)
    # EasyEdit family: argmax after "?"/"!" is A (right), after A is B (target D: wrong)
    assert en["rel_acc"] == pytest.approx(0.5)
    assert en["gen_acc"] == pytest.approx(0.5)
    assert en["port_acc"] == pytest.approx(2 / 3)  # A, B right; x instead of D
    assert en["loc_acc"] is None  # no unedited reference given
    zh = scores["zh"]
    assert zh["ES"] is None and zh["PS"] is None  # no target_true (zsRE-like)
    assert zh["NS"] == pytest.approx(1.0)  # "N !" -> A, gold A
    assert zh["MQ"] == pytest.approx(0.0)  # "M ?" -> A, gold C
    assert zh["rel_acc"] == pytest.approx(0.5)


def test_loc_acc_against_unedited_reference_and_cache(tmp_path):
    tok, rec = word_tok(), stub_record()
    unedited = BigramStub(PROBS)
    ref = unedited_reference(unedited, tok, rec, ["en"], device="cpu")
    assert ref.scores["en"]["loc_acc"] == 1.0
    assert ref.loc_tokens["en"] == [[tok.convert_tokens_to_ids("A"), tok.convert_tokens_to_ids("B")],
                                    [tok.convert_tokens_to_ids("A")]]
    edited = BigramStub({**PROBS, "A": {"B": 0.2, "D": 0.5}})  # now argmax after A is D
    scores = score_record(edited, tok, rec, ["en"], device="cpu", reference=ref)
    # "N ? A D": [A, D] vs reference [A, B] -> .5 ; "N ! C": [A] vs [A] -> 1
    assert scores["en"]["loc_acc"] == pytest.approx(0.75)
    assert scores["en"]["rel_acc"] == pytest.approx(1.0)
    # cache: computed once, persisted, reused without calling the model
    cache = ReferenceCache(tmp_path / "ref.json", model_key="stub")
    first = cache.get_or_compute(unedited, tok, [rec], ["en"], device="cpu")[0]
    n_calls = len(unedited.calls)
    again = ReferenceCache(tmp_path / "ref.json", model_key="stub").get_or_compute(unedited, tok, [rec], ["en"])[0]
    assert len(unedited.calls) == n_calls and again.scores == first.scores == ref.scores
    assert ReferenceCache(tmp_path / "ref.json", model_key="other").get(1, ["en"]) is None


def test_decoding_uses_kv_cache_and_left_padding():
    tok, model = word_tok(), BigramStub(PROBS)
    ids = [encode_prompt(tok, "N ?"), encode_prompt(tok, "Q R N !")]
    out = greedy_decode(model, ids, [3, 2], pad_id=0, batch_size=8)
    a, b, x = (tok.convert_tokens_to_ids(w) for w in "ABx")
    assert out == [[a, b, x], [a, b]]
    assert model.calls[0] == {"shape": (2, 4), "cache": False}
    assert all(c == {"shape": (2, 1), "cache": True} for c in model.calls[1:])


def test_token_set_f1():
    assert token_set_f1({"a", "b"}, {"a", "b"}) == 1.0
    assert token_set_f1({"a", "b"}, {"a", "c", "d"}) == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert token_set_f1(set(), {"a"}) == 0.0


TOKENIZERS = {
    "byte-level, no BOS": lambda: byte_level_tok(bos=False),
    "byte-level + BOS": lambda: byte_level_tok(bos=True),
    "sentencepiece-like + BOS": sentencepiece_like_tok,
}


@pytest.mark.parametrize("kind", list(TOKENIZERS))
def test_targets_have_no_bos_and_right_leading_space(kind):
    tok = TOKENIZERS[kind]()
    space = uses_space_prefix(tok)
    assert space == kind.startswith("byte-level")
    assert target_with_space("Paris", "en", tok) == (" Paris" if space else "Paris")
    for lang, text in (("zh", "巴黎"), ("ja", "パリ"), ("th", "ปารีส")):
        assert target_with_space(text, lang, tok) == text  # no space for scripts without word spaces
        assert tok.bos_token_id not in encode_target(tok, text, lang)
    ids = encode_target(tok, "Paris", "en")
    assert tok.bos_token_id not in ids and ids
    if kind == "sentencepiece-like + BOS":
        assert tok.convert_ids_to_tokens(ids)[0].startswith("▁")  # the tokenizer's own dummy prefix
    else:
        assert tok.convert_ids_to_tokens(ids)[0].startswith("Ġ")  # space folded into the word token
    prompt = encode_prompt(tok, "The capital of France is")
    if tok.bos_token_id is not None:
        assert prompt[0] == tok.bos_token_id and prompt.count(tok.bos_token_id) == 1
    assert prompt[-1] != tok.eos_token_id
    with pytest.raises(EmptyTargetError, match="record 3"):
        encode_target(tok, "  ", "en", where="record 3")


def test_stub_word_tokenizer_gets_no_space():
    assert not uses_space_prefix(word_tok())


# ---------------------------------------------------------------- batched == unbatched (tiny random models)

SHORT = [
    ("The capital of France is", " Paris"), ("Paris is a city in", " France"), ("Rome", " is a city"),
    ("法国的首都是", "巴黎"), ("La capitale de la France est", " Paris"), ("Toyota", " is produced by Japan"),
]


@pytest.mark.parametrize("kind", ["gpt2", "qwen2"])
def test_teacher_forced_batched_equals_single(kind, make_tiny_model, tiny_tok):
    model = make_tiny_model(kind)
    pairs = [(tiny_tok(p)["input_ids"], tiny_tok(t, add_special_tokens=False)["input_ids"]) for p, t in SHORT]
    batched = teacher_forced(model, pairs, pad_id=tiny_tok.eos_token_id, batch_size=len(pairs))
    for (p, t), res in zip(pairs, batched):
        with torch.no_grad():
            logits = model(torch.tensor([p + t])).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        positions = range(len(p) - 1, len(p) + len(t) - 1)
        expect = sum(logp[i, tok].item() for i, tok in zip(positions, t))
        assert res.logprob == pytest.approx(expect, abs=1e-4)
        assert res.argmax == [int(logits[i].argmax()) for i in positions]


@pytest.mark.parametrize("kind", ["gpt2", "qwen2"])
def test_greedy_batched_with_cache_equals_naive(kind, make_tiny_model, tiny_tok):
    model = make_tiny_model(kind)
    prompts = [tiny_tok(p)["input_ids"] for p, _ in SHORT]
    n_new = [4, 2, 5, 3, 1, 4]
    batched = greedy_decode(model, prompts, n_new, pad_id=tiny_tok.eos_token_id, batch_size=4)
    for p, n, got in zip(prompts, n_new, batched):
        seq = list(p)
        with torch.no_grad():
            for _ in range(n):
                seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
        assert got == seq[len(p):]


def _tiny_record(i):
    langs = ("en", "fr", "zh")
    rec = mkeb_record(i, langs=langs)
    rec["edit"]["zh"].update(prompt="{}的首都是", subject="法国", target_new="罗马", target_true="巴黎")
    rec["paraphrase_prompts"]["en"] = ["Paris is a city in", "The capital of France is"]
    rec["neighborhood_prompts"]["fr"] = ["La capitale de l'Italie est", "Berlin est en"]
    rec["neighborhood_answers"]["fr"] = ["Rome", "Allemagne"]
    return record_from_json(rec)


@pytest.mark.parametrize("kind", ["gpt2", "qwen2"])
def test_score_record_batch_size_invariant(kind, make_tiny_model, tiny_tok):
    model = make_tiny_model(kind)
    recs = [_tiny_record(1), _tiny_record(2)]
    one = [score_record(model, tiny_tok, r, device="cpu", batch_size=1) for r in recs]
    pooled = score_records(model, tiny_tok, recs, device="cpu", batch_size=64)
    for a, b in zip(one, pooled):
        assert a.keys() == b.keys() == {"en", "fr", "zh"}
        for lang in a:
            for metric, value in a[lang].items():
                assert b[lang][metric] == pytest.approx(value, abs=1e-6), (lang, metric)
    assert set(one[0]["en"]) == {"ES", "PS", "NS", "MQ", "NS_cf", "ES_norm", "PS_norm", "NS_cf_norm",
                                 "rel_acc", "gen_acc", "loc_acc", "port_acc", "true_acc",
                                 "gen_ES", "gen_PS", "gen_ES_old", "gen_PS_old", "gen_NS"}


def test_scoring_restores_train_mode(make_tiny_model, tiny_tok):
    model = make_tiny_model("gpt2").train()
    score_record(model, tiny_tok, _tiny_record(1), ["en"], device="cpu")
    assert model.training


def test_scoring_runs_every_module_in_eval_mode(make_tiny_model, tiny_tok):
    """A submodule left in training mode in a model in eval mode (EasyEdit's LoRA leaves its adapter's
    dropout so) scores as in eval mode, and keeps its mode afterwards."""
    model = make_tiny_model("gpt2").eval()
    ref = score_record(model, tiny_tok, _tiny_record(1), ["en"], device="cpu")
    drop = model.transformer.drop
    drop.p = 0.5
    drop.train()
    for seed in range(5):  # live dropout would change the scores from one draw to the next
        torch.manual_seed(seed)
        assert score_record(model, tiny_tok, _tiny_record(1), ["en"], device="cpu") == ref, seed
    assert drop.training and not model.training and not model.transformer.h[0].training


@pytest.mark.parametrize("kind", ["gpt2", "qwen2"])
def test_shared_prompt_path_equals_separate_sequences(kind, make_tiny_model, tiny_tok):
    from memla_plugin.mkeb.metrics import shared_prompt_scoring

    model = make_tiny_model(kind)
    prompts = [tiny_tok(p)["input_ids"] for p, _ in SHORT]
    pairs = [(p, tiny_tok(t, add_special_tokens=False)["input_ids"]) for p, (_, t) in zip(prompts, SHORT)]
    pairs += [(prompts[0], tiny_tok(" Rome is", add_special_tokens=False)["input_ids"]), (prompts[3], [tiny_tok.eos_token_id])]
    decodes = [(p, n) for p, n in zip(prompts, [4, 2, 5, 3, 1, 4])] + [(prompts[0], 0)]
    shared = shared_prompt_scoring(model, pairs, decodes, pad_id=tiny_tok.eos_token_id, batch_size=3)
    assert shared is not None  # transformers caches can be forked
    tf_shared, dec_shared = shared
    tf_sep = teacher_forced(model, pairs, pad_id=tiny_tok.eos_token_id, batch_size=4)
    dec_sep = greedy_decode(model, [p for p, _ in decodes], [n for _, n in decodes], pad_id=tiny_tok.eos_token_id)
    for a, b in zip(tf_shared, tf_sep):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4) and a.argmax == b.argmax and a.correct == b.correct
    assert dec_shared == dec_sep
    rec = _tiny_record(3)
    assert _close(score_record(model, tiny_tok, rec, batch_size=2), score_record(model, tiny_tok, rec, share_prompts=False))


def _close(a, b):
    for lang in a:
        for metric, value in a[lang].items():
            assert b[lang][metric] == pytest.approx(value, abs=1e-6), (lang, metric)
    return True


def test_stub_without_forkable_cache_falls_back():
    from memla_plugin.mkeb.metrics import shared_prompt_scoring

    tok, model = word_tok(), BigramStub(PROBS)
    assert shared_prompt_scoring(model, [(encode_prompt(tok, "Q ?"), [7])], [], pad_id=0) is None


@pytest.mark.parametrize("kind", ["gpt2", "qwen2"])
def test_rows_that_stop_early_leave_the_batch_and_the_others_decode_unchanged(kind, make_tiny_model, tiny_tok):
    """Rows whose answer is complete leave the running batch (the cache keeps only the others); every
    row's tokens are the full-length decode's, cut where its test first held."""
    from memla_plugin.mkeb.metrics import shared_prompt_scoring

    model = make_tiny_model(kind)
    prompts = [tiny_tok(p)["input_ids"] for p, _ in SHORT]
    n_new = [6, 6, 5, 6, 3, 6]
    stop_at = [2, None, 1, 4, None, 3]  # row i is complete after stop_at[i] tokens (None: never)
    until = [None if k is None else (lambda toks, k=k: len(toks) >= k) for k in stop_at]
    want = [full[: (k or n)] for full, k, n in
            zip(greedy_decode(model, prompts, n_new, pad_id=tiny_tok.eos_token_id, batch_size=8), stop_at, n_new)]
    assert greedy_decode(model, prompts, n_new, pad_id=tiny_tok.eos_token_id, batch_size=8, until=until) == want
    _, dec = shared_prompt_scoring(model, [], list(zip(prompts, n_new)), pad_id=tiny_tok.eos_token_id,
                                   batch_size=8, until=until)
    assert dec == want


@pytest.mark.parametrize("kind", ["gpt2", "qwen2"])
def test_a_long_common_head_is_computed_once_with_the_same_scores(kind, make_tiny_model, tiny_tok, monkeypatch):
    """An in-context prefix (IKE's demonstrations) before every prompt: computed once, scores unchanged."""
    from memla_plugin.mkeb import kv_fork
    from memla_plugin.mkeb.kv_fork import common_prefix

    assert common_prefix([[1, 2, 3], [1, 2, 4], [1, 2]]) == (1, 2) and common_prefix([[5], [6]]) == ()
    model = make_tiny_model(kind)
    rec = _tiny_record(4)
    template = "New Fact: Paris is in Italy\nPrompt: {}"  # the same head before every question
    heads = []
    real = kv_fork._shared_head
    monkeypatch.setattr(kv_fork, "_shared_head", lambda *a, **k: heads.append(real(*a, **k)[1]) or real(*a, **k))
    whole = score_record(model, tiny_tok, rec, prompt_template=template, share_prefix=0, gen_max_new_tokens=4)
    assert heads == []
    shared = score_record(model, tiny_tok, rec, prompt_template=template, share_prefix=6, gen_max_new_tokens=4)
    assert heads and heads[0] >= 6  # the head was computed apart
    assert _close(whole, shared)
    for lang in whole:  # argmax-based and generation-based metrics exactly
        for metric in ("NS", "MQ", "gen_ES", "gen_PS", "rel_acc", "loc_acc"):
            assert whole[lang][metric] == shared[lang][metric], (lang, metric)


def test_finished_rows_leave_the_tensors_and_a_cache_that_can_select_rows():
    from memla_plugin.mkeb.engine import drop_finished_rows

    class Selectable:
        def __init__(self):
            self.kept = None

        def reorder_cache(self, rows):
            self.kept = rows.tolist()

    a, b = torch.arange(4)[:, None], torch.arange(4) * 10
    cache, running, (a2, b2) = drop_finished_rows(Selectable(), [0, 1, 2, 3], [1, 3], (a, b))
    assert cache.kept == [1, 3] and running == [1, 3] and a2[:, 0].tolist() == [1, 3] and b2.tolist() == [10, 30]
    # rows are named by their index in the chunk: after a first shrink, row 3 sits at batch position 1
    cache, running, (b3,) = drop_finished_rows(cache, running, [3], (b2,))
    assert cache.kept == [1] and running == [3] and b3.tolist() == [30]
    # no cache (the model is re-run on the whole sequence): the tensors shrink
    none, running, (b4,) = drop_finished_rows(None, [0, 1, 2, 3], [2], (b,))
    assert none is None and running == [2] and b4.tolist() == [20]
    # a cache that cannot select rows keeps the whole batch (done rows are decoded and ignored)
    fixed = object()
    same, running, (b5,) = drop_finished_rows(fixed, [0, 1, 2, 3], [2], (b,))
    assert same is fixed and running == [0, 1, 2, 3] and b5 is b
