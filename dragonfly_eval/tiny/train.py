"""Train the embedded `dragonfly-tiny` on rendered images, so that the offline demo measures
something: `python -m dragonfly_eval.tiny.train` (about 20 minutes on 2 CPU cores).

The whole model learns (CLIP tower, projector, language model) at the released v2 zoom geometry
(41 crops of 336 px, patch 14, 2098 image positions), with the tiny widths of
`tiny.config.tiny_config`. Training the tower costs its backward pass (about a fifth of a
full-zoom image's step) and lets the patch embedding learn what 1-pixel stripes and checks look
like, which the fine-detail family is about; a frozen random tower was not tried.

The data are the mini suite's scenes (`datagen.make_mini`), drawn from the training seed instead of
the suite's, and every question a scene allows, prompted exactly as the suite's lmms-eval YAMLs
prompt them (their own `doc_to_text`, wrapped in Dragonfly's chat format). Three in four of the
signs, charts, documents and shapes are seen at `zoom=low` (one 336x336 crop, about eight times
cheaper than 41), which is where their answers already show: the budget buys about four times as
many images, and the full-zoom quarter teaches the model to find the same answers among the 2098
positions of `zoom=full`. The fine-detail family is always seen at `zoom=full`: its answer is
only in the zoomed-in crops, and at `zoom=low` there is nothing to learn, which is what the demo
shows.

Deterministic from the seed: one RNG per step draws the scenes, torch's generator the initial
weights, and a fixed thread count keeps the float reductions in one order. The run writes
`model.safetensors` and `training.json` (settings, loss curve, the weights' SHA-256), which
`tests/tiny/test_tiny_train.py` checks against the shipped files.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from dragonfly_eval.datagen import make_mini
from dragonfly_eval.errors import ExitCode
from dragonfly_eval.lmms_files.task_yaml import task_config
from dragonfly_eval.modeling.modeling import DragonflyForCausalLM
from dragonfly_eval.modeling.processing import DragonflyProcessor, chat_prompt
from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.tiny import assets_dir
from dragonfly_eval.tiny.checkpoint import file_sha256
from dragonfly_eval.tiny.config import tiny_config
from dragonfly_eval.tiny.tokenizer import build_tiny_tokenizer

WEIGHTS = "model.safetensors"
RECORD = "training.json"
IGNORE = -100


@dataclass(frozen=True)
class Settings:
    """Everything that decides the trained weights (with the code and the torch version)."""

    seed: int = 20240605
    steps: int = 1100
    images_per_step: int = 8
    learning_rate: float = 2e-3
    vision_lr_scale: float = 1.0  # the tower's and projector's rate, relative to learning_rate
    warmup_steps: int = 50
    weight_decay: float = 0.01
    threads: int = 2
    # how often each scene kind is drawn
    scene_weights: tuple[tuple[str, float], ...] = (
        ("sign", 0.8),
        ("chart", 1.3),
        ("doc", 1.0),
        ("shape", 1.1),
        ("fine", 0.4),
    )
    # how often a scene kind is seen at zoom=low (one 336x336 crop, about eight times cheaper
    # than the 41 crops of zoom=full); the fine-detail family has nothing to learn there
    low_zoom: tuple[tuple[str, float], ...] = (
        ("sign", 0.75),
        ("chart", 0.75),
        ("doc", 0.75),
        ("shape", 0.75),
        ("fine", 0.0),
    )


class Prompts:
    """The mini suite's own prompts and targets: each family's task YAML is read with the
    project's task-YAML reader, and the `doc_to_text` it names (lmms-eval's own function, with the
    YAML's prompt kwargs) builds the text."""

    def __init__(self) -> None:
        self.configs = {  # each family's task is task_yaml/mini/<family>.yaml
            family: task_config(task_yaml_dir() / "mini" / f"{family}.yaml", "refs")
            for family in make_mini.FAMILIES
        }

    def context(self, family: str, record: dict) -> str:
        """The question text lmms-eval builds for this record."""
        config = self.configs[family]
        kwargs = config.get("lmms_eval_specific_kwargs", {}).get("default")
        module, _, name = config["doc_to_text"].target.rpartition(".")
        doc_to_text = getattr(importlib.import_module(module), name)
        return doc_to_text(record, kwargs) if kwargs is not None else doc_to_text(record)

    @staticmethod
    def target(family: str, record: dict) -> str:
        """The answer the model learns to give (the first reference where there are several)."""
        if family == "mc":
            return "ABCD"[int(record["answer"])]
        answer = record.get("answers", record.get("answer"))
        return answer[0] if isinstance(answer, list) else str(answer)


def initial_model(seed: int):
    """dragonfly-tiny with transformers' own initialisation, drawn from `seed`."""
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(seed)
    model = DragonflyForCausalLM(tiny_config(len(tokenizer)))
    return model, tokenizer


class Trainer:
    """One optimisation run; `step(i)` is a pure function of the settings, the step index and
    the weights so far."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        torch.set_num_threads(settings.threads)
        torch.use_deterministic_algorithms(True)
        self.model, self.tokenizer = initial_model(settings.seed)
        self.model.train()
        full = DragonflyProcessor.for_config(self.model.config, self.tokenizer)
        self.processors = {"full": full, "low": full.with_zoom("low")}
        self.prompts = Prompts()
        self.eot = self.tokenizer.convert_tokens_to_ids("<|eot_id|>")
        groups = []
        for scale, prefix_ok in (
            (settings.vision_lr_scale, lambda n: not n.startswith("language_model.")),
            (1.0, lambda n: n.startswith("language_model.")),
        ):
            named = [(n, p) for n, p in self.model.named_parameters() if prefix_ok(n)]
            for decay, keep in ((settings.weight_decay, True), (0.0, False)):
                params = [p for n, p in named if (p.dim() >= 2) == keep]
                groups.append({"params": params, "weight_decay": decay, "lr_scale": scale})
        self.optimizer = torch.optim.AdamW(groups, lr=settings.learning_rate, betas=(0.9, 0.98))
        self.losses: list[float] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiny-train-data")
        self._ahead: dict[int, Future] = {}

    def learning_rate(self, step: int) -> float:
        """Linear warm-up, then a cosine down to a tenth of the peak."""
        s = self.settings
        if step < s.warmup_steps:
            return s.learning_rate * (step + 1) / s.warmup_steps
        progress = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
        return s.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    def draw(self, step: int) -> list[tuple[make_mini.Scene, list[tuple[str, dict]], str]]:
        """The step's images: (scene, its questions, zoom), from the step's own RNG."""
        s = self.settings
        rng = random.Random(f"{s.seed}-train-{step}")
        kinds = [k for k, _ in s.scene_weights]
        weights = [w for _, w in s.scene_weights]
        low = dict(s.low_zoom)
        drawn = []
        for _ in range(s.images_per_step):
            kind = rng.choices(kinds, weights)[0]
            scene = make_mini.SCENES[kind](rng)
            zoom = "low" if rng.random() < low[kind] else "full"
            drawn.append((scene, make_mini.questions_for(scene, rng), zoom))
        return drawn

    def pixels(self, image, zoom: str) -> torch.Tensor:
        """The image's crops as the processor cuts them: [1, n_crops, 3, se, se]."""
        return self.processors[zoom].image_processor([image])[0][None]

    def prepare(self, step: int) -> list[tuple[torch.Tensor, list[tuple[str, dict]], str]]:
        """The step's images as crops, with their questions and zoom."""
        return [(self.pixels(scene.image, zoom), qs, zoom) for scene, qs, zoom in self.draw(step)]

    def image_loss(self, pixels: torch.Tensor, questions: list[tuple[str, dict]], zoom: str):
        """Mean cross-entropy over the answer tokens of every question about one image: the
        image block runs through the language model once and its KV cache serves them all."""
        model, processor = self.model, self.processors[zoom]
        block = processor.layout_ids([[]], [1], padding_side="right")
        (prefix,) = model.prefill_image_prefixes(
            input_ids=block["input_ids"],
            attention_mask=block["attention_mask"],
            image_patches_indices=block["image_patches_indices"],
            visual_embeds=model.encode_images(pixels),
        )
        rows, labels = [], []
        for family, fields in questions:
            prompt = processor.text_ids(chat_prompt(self.prompts.context(family, fields)))
            answer = self.tokenizer(self.prompts.target(family, fields), add_special_tokens=False)[
                "input_ids"
            ] + [self.eot]
            rows.append(prompt + answer)
            labels.append([IGNORE] * len(prompt) + answer)
        width = max(len(r) for r in rows)
        pad = self.tokenizer.eos_token_id
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        target = torch.tensor([lab + [IGNORE] * (width - len(lab)) for lab in labels])
        text_mask = (target != IGNORE) | (
            torch.arange(width)[None] < torch.tensor([len(r) for r in rows])[:, None]
        )
        n_prefix = model.image_prefix_length(prefix)
        mask = torch.cat([torch.ones(len(rows), n_prefix, dtype=torch.long), text_mask.long()], 1)
        positions = (n_prefix + torch.arange(width))[None].expand(len(rows), -1)
        logits = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=model.image_prefix_cache([prefix] * len(rows)),
            use_cache=False,
        ).logits
        return F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
            target[:, 1:].reshape(-1),
            ignore_index=IGNORE,
        )

    def step(self, step: int) -> float:
        """One optimiser step over the step's images; returns the mean loss."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(step) * group["lr_scale"]
        total = 0.0
        # The next step's images are cut on another thread while this one computes (Pillow
        # releases the GIL); the result is the same as cutting them in turn.
        ahead = self._ahead.pop(step, None)
        drawn = ahead.result() if ahead is not None else self.prepare(step)
        if step + 1 < self.settings.steps:
            self._ahead[step + 1] = self._pool.submit(self.prepare, step + 1)
        for pixels, questions, zoom in drawn:
            loss = self.image_loss(pixels, questions, zoom) / len(drawn)
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.losses.append(total)
        return total

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The weights, contiguous and detached, in safetensors' layout."""
        return {k: v.detach().contiguous().clone() for k, v in self.model.state_dict().items()}


def train(settings: Settings, progress: bool = True) -> Trainer:
    """Run every step of `settings`, printing the loss now and then."""
    from dragonfly_eval.progress import progress_bar

    trainer = Trainer(settings)
    started = time.monotonic()
    bar = progress_bar(settings.steps, "training dragonfly-tiny", disable=not progress)
    for i in range(settings.steps):
        trainer.step(i)
        bar.update(1)
    bar.close()
    trainer.seconds = time.monotonic() - started
    return trainer


def save(trainer: Trainer, out: Path) -> dict:
    """Write the weights and the training record into `out`; returns the record."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file(trainer.state_dict(), out / WEIGHTS, metadata={"format": "pt"})
    record = {
        "settings": asdict(trainer.settings),
        "sha256": file_sha256(out / WEIGHTS),
        "torch": torch.__version__,
        "seconds": round(getattr(trainer, "seconds", 0.0), 1),
        "loss_first_10": [round(x, 4) for x in trainer.losses[:10]],
        "loss_last_10": [round(x, 4) for x in trainer.losses[-10:]],
    }
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    """Command line: train and write the weights (default: into the package's assets)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=assets_dir())
    parser.add_argument("--steps", type=int, default=Settings.steps)
    parser.add_argument("--seed", type=int, default=Settings.seed)
    args = parser.parse_args(argv)
    settings = Settings(seed=args.seed, steps=args.steps)
    trainer = train(settings)
    record = save(trainer, args.out)
    print(
        f"trained {settings.steps} steps in {record['seconds']:.0f} s; "
        f"wrote {args.out / WEIGHTS} (sha256 {record['sha256'][:16]}...)"
    )
    return ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
