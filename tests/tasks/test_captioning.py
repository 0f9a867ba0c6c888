import pytest

from dragonfly_eval.tasks import captioning

DOCS = [
    {"image_id": 1, "caption": "a chest x ray showing a large mass in the left lung"},
    {"image_id": 2, "caption": ["computed tomography of the abdomen", "abdominal ct scan"]},
    {"image_id": 3, "caption": "an mri of the brain with a bright lesion"},
]


def _records(predictions):
    return [
        captioning.process_results(doc, [pred])["cider"]
        for doc, pred in zip(DOCS, predictions, strict=True)
    ]


def test_process_results_keeps_every_reference_and_blanks_non_strings():
    assert captioning.process_results(DOCS[1], [None])["bleu4"] == {
        "id": "2",
        "prediction": "",
        "references": ["computed tomography of the abdomen", "abdominal ct scan"],
    }
    assert set(captioning.process_results(DOCS[0], [])) == set(captioning.METRICS)


def test_exact_captions_outscore_wrong_and_empty_ones():
    exact = _records([DOCS[0]["caption"], DOCS[1]["caption"][0], DOCS[2]["caption"]])
    wrong = _records(["a dog on a beach", "a red car", "two people walking"])
    empty = _records([None, "", 7])
    for aggregate in (
        captioning.aggregate_bleu4,
        captioning.aggregate_rouge_l,
        captioning.aggregate_cider,
    ):
        assert aggregate(exact) > aggregate(wrong) >= aggregate(empty) >= 0.0
    assert captioning.aggregate_rouge_l(exact) == pytest.approx(1.0)
    assert captioning.aggregate_bleu4(exact) == pytest.approx(1.0, abs=1e-6)
    assert captioning.aggregate_cider(empty) == 0.0


@pytest.mark.slow  # METEOR's Java process loads its paraphrase tables: ~20 s per call
def test_meteor_ranks_exact_above_wrong():
    exact = _records([DOCS[0]["caption"], DOCS[1]["caption"][0], DOCS[2]["caption"]])
    wrong = _records(["a dog on a beach", "a red car", "two people walking"])
    assert captioning.aggregate_meteor(exact) > captioning.aggregate_meteor(wrong)


def test_scoring_nothing_is_an_error():
    with pytest.raises(ValueError, match="at least one"):
        captioning.aggregate_cider([])
