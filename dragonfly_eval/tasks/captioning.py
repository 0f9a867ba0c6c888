"""Caption scoring through pycocoevalcap (BLEU-4, METEOR, ROUGE-L, CIDEr; no SPICE: it needs a
download) for datasets whose documents hold `image_id` and `caption` (a string or a list of
strings), such as ROCO. A prediction that is None or not a string is scored as an empty caption.
pycocoevalcap's tokenizer and METEOR run Java.
"""

from __future__ import annotations

from collections.abc import Callable

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

CAPTION_PROMPT = "Provide a one-sentence caption for the provided image."
METRICS = ("bleu4", "meteor", "rouge_l", "cider")


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The captioning instruction (lmms-eval's COCO wording unless the YAML sets `prompt`)."""
    return (lmms_eval_specific_kwargs or {}).get("prompt", CAPTION_PROMPT)


def doc_to_visual(doc: dict) -> list:
    """The document's decoded `image` column as RGB."""
    return [doc["image"].convert("RGB")]


def process_results(doc: dict, results: list) -> dict:
    """One record (id, prediction, references) under every caption metric's name."""
    prediction = results[0] if results else None
    references = doc["caption"]
    record = {
        "id": str(doc["image_id"]),
        "prediction": prediction if isinstance(prediction, str) else "",
        "references": [references] if isinstance(references, str) else list(references),
    }
    return {metric: record for metric in METRICS}


def _tokenized(records: list[dict]) -> tuple[dict, dict]:
    gts, res = {}, {}
    for k, record in enumerate(records):
        key = f"{k}:{record['id']}"
        gts[key] = [{"caption": ref} for ref in record["references"]]
        res[key] = [{"caption": record["prediction"]}]
    tokenizer = PTBTokenizer()
    return tokenizer.tokenize(gts), tokenizer.tokenize(res)


def _score(records: list[dict], compute: Callable[[dict, dict], float]) -> float:
    if not records:
        raise ValueError("caption scoring needs at least one document")
    gts, res = _tokenized(records)
    return float(compute(gts, res))


def aggregate_bleu4(records: list[dict]) -> float:
    """Corpus BLEU-4 (0-1)."""
    return _score(records, lambda g, r: Bleu(4).compute_score(g, r, verbose=0)[0][3])


def aggregate_meteor(records: list[dict]) -> float:
    """METEOR (0-1)."""
    return _score(records, lambda g, r: Meteor().compute_score(g, r)[0])


def aggregate_rouge_l(records: list[dict]) -> float:
    """ROUGE-L F-score (0-1)."""
    return _score(records, lambda g, r: Rouge().compute_score(g, r)[0])


def aggregate_cider(records: list[dict]) -> float:
    """CIDEr-D as pycocoevalcap reports it (0-10 scale; x100 on leaderboards as published)."""
    return _score(records, lambda g, r: Cider().compute_score(g, r)[0])
