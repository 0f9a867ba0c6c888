import math

import pytest

from dragonfly_eval.tasks import medical


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes.", "yes"),
        ("  The LEFT lung!  ", "left lung"),
        ("an x-ray of a chest", "x ray of chest"),
        ("", ""),
        (None, ""),
        (42, ""),
    ],
)
def test_normalize_answer_lowercases_strips_punctuation_and_articles(text, expected):
    assert medical.normalize_answer(text) == expected


def test_closed_question_is_labelled_or_yes_no():
    assert medical.is_closed({"answer": "Yes"})
    assert medical.is_closed({"answer": "no"})
    assert not medical.is_closed({"answer": "left lung"})
    assert medical.is_closed({"answer": "liver", "answer_type": "CLOSED"})
    assert not medical.is_closed({"answer": "yes", "answer_type": "OPEN"})


def test_closed_score_is_exact_after_normalization():
    assert medical.closed_score("Yes.", "yes") == 1.0
    assert medical.closed_score("yes, there is", "yes") == 0.0
    assert medical.closed_score("no", "yes") == 0.0


@pytest.mark.parametrize("prediction", [None, "", "   ", "...", 3.5, ["yes"]])
def test_bad_predictions_score_zero(prediction):
    assert medical.closed_score(prediction, "yes") == 0.0
    assert medical.token_f1(prediction, "left lung") == 0.0


def test_token_f1_on_hand_computed_cases():
    assert medical.token_f1("left lung", "left lung") == 1.0
    # prediction 3 tokens, reference 2, overlap 1: p=1/3, r=1/2, f1=0.4
    assert medical.token_f1("the right upper lung", "left lung") == pytest.approx(0.4)
    assert medical.token_f1("heart", "left lung") == 0.0
    # counts are clipped: "lung lung" against "lung" overlaps once: p=1/2, r=1, f1=2/3
    assert medical.token_f1("lung lung", "lung") == pytest.approx(2 / 3)


def test_aggregation_splits_closed_and_open_questions():
    docs_and_predictions = [
        ({"answer": "yes"}, "Yes"),  # closed, right
        ({"answer": "no"}, "yes"),  # closed, wrong
        ({"answer": "no"}, None),  # closed, no answer
        ({"answer": "left lung"}, "left lung"),  # open, f1 1
        ({"answer": "left lung"}, "the right upper lung"),  # open, f1 0.4
    ]
    per_doc = [medical.process_results(doc, [pred]) for doc, pred in docs_and_predictions]
    closed = medical.aggregate_closed_accuracy([r["closed_accuracy"] for r in per_doc])
    open_f1 = medical.aggregate_open_token_f1([r["open_token_f1"] for r in per_doc])
    assert closed == pytest.approx(1 / 3)
    assert open_f1 == pytest.approx(0.7)


def test_aggregation_without_questions_of_a_kind_is_nan_not_zero():
    records = [medical.process_results({"answer": "yes"}, ["yes"])["closed_accuracy"]]
    assert medical.aggregate_closed_accuracy(records) == 1.0
    assert math.isnan(medical.aggregate_open_token_f1(records))


def test_process_results_survives_empty_results():
    assert medical.process_results({"answer": "yes"}, [])["closed_accuracy"]["score"] == 0.0


def test_doc_to_text_appends_the_short_answer_prompt():
    kwargs = {"pre_prompt": "", "post_prompt": "\nAnswer briefly."}
    assert (
        medical.doc_to_text({"question": " Is this a CT? "}, kwargs)
        == "Is this a CT?\nAnswer briefly."
    )
    assert medical.doc_to_text({"question": "Q?"}).endswith(medical.SHORT_ANSWER_PROMPT)


def test_slake_images_need_the_image_folder(monkeypatch, tmp_path):
    monkeypatch.delenv(medical.SLAKE_IMAGE_ENV, raising=False)
    with pytest.raises(RuntimeError, match=medical.SLAKE_IMAGE_ENV):
        medical.slake_doc_to_visual({"img_name": "xmlab1/source.jpg"})
    monkeypatch.setenv(medical.SLAKE_IMAGE_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="xmlab1"):
        medical.slake_doc_to_visual({"img_name": "xmlab1/source.jpg"})
