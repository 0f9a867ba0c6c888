"""The embedded model's training script and its shipped weights agree: the weights are the ones the
recorded run wrote, the record holds the script's settings, and a few steps retrain to the
stored checkpoint of those steps."""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F

from dragonfly_eval.datagen import make_mini
from dragonfly_eval.modeling.processing import chat_prompt
from dragonfly_eval.tiny import assets_dir
from dragonfly_eval.tiny import train as tiny_train

STEPS_CHECKPOINT = Path(__file__).parents[1] / "data" / "tiny_train_steps.safetensors"


def few_steps_settings() -> tiny_train.Settings:
    """The short run whose result tests/data/tiny_train_steps.safetensors stores: past the
    warm-up at once, so that a changed step moves the weights by about the learning rate."""
    return tiny_train.Settings(steps=3, images_per_step=2, warmup_steps=1)


def _record() -> dict:
    return json.loads((assets_dir() / tiny_train.RECORD).read_text())


def test_the_shipped_weights_are_the_ones_the_recorded_run_wrote():
    assert tiny_train.file_sha256(assets_dir() / tiny_train.WEIGHTS) == _record()["sha256"]


def test_the_record_holds_the_scripts_default_settings():
    recorded = _record()["settings"]
    assert recorded == json.loads(json.dumps(asdict(tiny_train.Settings())))


def test_the_shipped_weights_load_into_the_tiny_model_with_no_key_missing_or_extra():
    model, _ = tiny_train.initial_model(0)
    shipped = load_file(str(assets_dir() / tiny_train.WEIGHTS))
    assert set(shipped) == set(model.state_dict())
    assert all(shipped[k].shape == v.shape for k, v in model.state_dict().items())


def test_a_few_steps_from_the_seed_retrain_to_the_stored_checkpoint():
    """Bit for bit on this machine; the tolerance only covers other CPUs' float kernels (a
    change of the data, the prompts or the optimiser moves weights by ~1e-3)."""
    trainer = tiny_train.train(few_steps_settings(), progress=False)
    stored = load_file(str(STEPS_CHECKPOINT))
    now = trainer.state_dict()
    assert set(stored) == set(now)
    worst = max(float((now[k] - stored[k]).abs().max()) for k in stored)
    assert worst < 1e-5, f"retrained weights differ from the stored ones by up to {worst:.2e}"
    moved = max(
        float((now[k] - v).abs().max())
        for k, v in tiny_train.initial_model(few_steps_settings().seed)[0].state_dict().items()
    )
    assert moved > 1e-3  # the steps did train


def test_the_shared_image_prefix_gives_the_loss_of_whole_sequences():
    """One image, several questions: the prefix's KV cache shared by all questions gives the
    same loss as each question run with its own copy of the image block."""
    trainer = tiny_train.Trainer(tiny_train.Settings())
    rng = random.Random(3)
    scene = make_mini.shape_scene(rng)
    questions = make_mini.questions_for(scene, rng)
    shared = float(trainer.image_loss(trainer.pixels(scene.image, "low"), questions, "low"))
    processor = trainer.processors["low"]
    total, count = 0.0, 0
    for family, fields in questions:
        prompt = processor.text_ids(chat_prompt(trainer.prompts.context(family, fields)))
        answer = trainer.tokenizer(
            trainer.prompts.target(family, fields), add_special_tokens=False
        )["input_ids"] + [trainer.eot]
        layout = processor.layout_ids([prompt + answer], [1], padding_side="right")
        logits = trainer.model(
            input_ids=layout["input_ids"],
            attention_mask=layout["attention_mask"],
            image_patches=processor.image_processor([scene.image])[0][None],
            image_patches_indices=layout["image_patches_indices"],
            images_per_sample=[1],
        ).logits[0]
        labels = torch.full((layout["input_ids"].shape[1],), tiny_train.IGNORE)
        labels[-len(answer) :] = torch.tensor(answer)
        total += float(F.cross_entropy(logits[:-1], labels[1:], reduction="sum"))
        count += len(answer)
    assert shared == pytest.approx(total / count, rel=1e-5)


def test_the_training_prompts_are_the_ones_lmms_eval_builds_for_the_mini_tasks():
    prompts = tiny_train.Prompts()
    (item, *_) = make_mini.build_items()["mc"]
    text = prompts.context("mc", item.record)
    assert text.startswith(item.record["question"] + "\nA. ")
    assert text.endswith("Answer with the option's letter from the given choices directly.")
    assert prompts.target("mc", item.record) == "ABCD"[item.record["answer"]]


def test_training_scenes_come_from_another_seed_than_the_suite():
    """The chart, document and fine-detail images the model learns from are not the suite's
    (their values, positions and backgrounds are drawn from the training seed)."""
    trainer = tiny_train.Trainer(tiny_train.Settings())
    drawn = [scene for step in range(4) for scene, _, _ in trainer.draw(step)]
    suite = make_mini.build_items()
    for family in ("chart", "doc", "fine"):
        kind = make_mini.SCENE_OF[family]
        trained = {scene.image.tobytes() for scene in drawn if scene.kind == kind}
        assert trained, f"no {kind} scene drawn in the first steps"
        assert not trained & {item.image.tobytes() for item in suite[family]}, family


def write_steps_checkpoint() -> None:
    """Regenerate tests/data/tiny_train_steps.safetensors (after an intended change)."""
    from safetensors.torch import save_file

    trainer = tiny_train.train(few_steps_settings(), progress=False)
    STEPS_CHECKPOINT.parent.mkdir(exist_ok=True)
    save_file(trainer.state_dict(), STEPS_CHECKPOINT, metadata={"format": "pt"})


if __name__ == "__main__":
    write_steps_checkpoint()
