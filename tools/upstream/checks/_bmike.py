"""A two-item BMIKE-53-style folder (en parts inside the zh and fr files), for the MKEB checks."""
import json
import os

PARTS = {
    1: {
        "en": {"subject": "France", "src": "The capital of France is", "rephrase": "France's capital city is",
               "old": "Paris", "alt": "Rome", "loc": ["Toyota is produced by"], "loc_ans": ["Japan"],
               "port": ["The Eiffel Tower is in the capital of France, which is"], "port_ans": ["Rome"]},
        "zh": {"subject": "法国", "src": "法国的首都是", "rephrase": "法国的首都城市是", "old": "巴黎", "alt": "罗马",
               "loc": ["丰田的生产国是"], "loc_ans": ["日本"], "port": ["埃菲尔铁塔所在的首都是"], "port_ans": ["罗马"]},
        "fr": {"subject": "France", "src": "La capitale de la France est", "rephrase": "La ville capitale de la France est",
               "old": "Paris", "alt": "Rome", "loc": ["Berlin est en"], "loc_ans": ["Allemagne"],
               "port": ["La tour Eiffel est dans la capitale de la France, qui est"], "port_ans": ["Rome"]},
    },
    2: {
        "en": {"subject": "Germany", "src": "The capital of Germany is", "rephrase": "Germany's capital city is",
               "old": "Berlin", "alt": "Madrid", "loc": ["The capital of Italy is"], "loc_ans": ["Rome"],
               "port": ["The Brandenburg Gate is in the capital of Germany, which is"], "port_ans": ["Madrid"]},
        "zh": {"subject": "德国", "src": "德国的首都是", "rephrase": "德国的首都城市是", "old": "柏林", "alt": "马德里",
               "loc": ["意大利的首都是"], "loc_ans": ["罗马"], "port": ["勃兰登堡门所在的首都是"], "port_ans": ["马德里"]},
        "fr": {"subject": "Allemagne", "src": "La capitale de l'Allemagne est",
               "rephrase": "La ville capitale de l'Allemagne est", "old": "Berlin", "alt": "Madrid",
               "loc": ["La capitale de l'Italie est"], "loc_ans": ["Rome"],
               "port": ["La porte de Brandebourg est dans la capitale de l'Allemagne, qui est"], "port_ans": ["Madrid"]},
    },
}


def write_bmike(directory):
    os.makedirs(directory, exist_ok=True)
    for lang in ("zh", "fr"):
        items = [{"en": dict(parts["en"], case_id=cid), lang: dict(parts[lang], case_id=cid)}
                 for cid, parts in PARTS.items()]
        with open(os.path.join(directory, f"counterfact_test_{lang}.json"), "w", encoding="utf-8") as fh:
            json.dump(items, fh, ensure_ascii=False)
    return directory
