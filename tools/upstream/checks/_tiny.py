"""A tiny random Qwen2 model and a byte-level BPE tokenizer trained in memory (no network).

Shared by the check scripts; kept free of ``memla_plugin`` imports.
"""
import json
import os

CORPUS = [
    "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is Rome.",
    "Paris is a city in France. Rome is a city in Italy. Berlin is a city in Germany. London, Madrid, Tokyo.",
    "La capitale de la France est Paris. La capitale de l'Italie est Rome. Berlin est en Allemagne.",
    "Die Hauptstadt von Frankreich ist Paris. Rom ist die Hauptstadt von Italien.",
    "法国的首都是巴黎。意大利的首都是罗马。德国的首都是柏林。",
    "The Eiffel Tower is located in Paris. Toyota is produced by Japan.",
]

FACT = {
    "en": {"prompt": "The capital of France is", "subject": "France", "target_new": "Rome", "target_true": "Paris",
           "paraphrases": ["The Eiffel Tower is located in the capital of France,"]},
    "zh": {"prompt": "法国的首都是", "subject": "法国", "target_new": "罗马", "target_true": "巴黎", "paraphrases": []},
    "fr": {"prompt": "La capitale de la France est", "subject": "France", "target_new": "Rome",
           "target_true": "Paris", "paraphrases": []},
}


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tk.train_from_iterator(CORPUS * 3, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def build_qwen2(tok, layers=3, seed=1234):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    eos = tok.eos_token_id
    cfg = Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False,
        initializer_range=0.2, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
    )
    return Qwen2ForCausalLM(cfg).eval()


def save_tiny_qwen2(directory):
    """Save model + tokenizer to ``directory`` (its name should contain 'qwen2' for EasyEdit's loader)."""
    tok = build_tokenizer()
    model = build_qwen2(tok)
    os.makedirs(directory, exist_ok=True)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def log_prob(model, tok, prompt, target):
    """log P(" " + target | prompt) with a full forward pass, summed over the target tokens."""
    import torch

    p_ids, t_ids = tok.encode(prompt), tok.encode(" " + target)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p_ids + t_ids])).logits[0].float()
    lp = torch.log_softmax(logits, -1)
    return sum(lp[len(p_ids) - 1 + i, t].item() for i, t in enumerate(t_ids))


def emit(result):
    print("RESULT_JSON: " + json.dumps(result, ensure_ascii=False, default=str), flush=True)
