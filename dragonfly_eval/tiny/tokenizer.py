"""The tokenizer of dragonfly-tiny: a 512-token byte-level BPE with the Llama-3 special tokens,
trained (deterministically) on a few lines of the mini suite's prompts and answers.

Regenerate the shipped `assets/tokenizer.json` with `python -m dragonfly_eval.tiny.tokenizer`
(then retrain the weights: `python -m dragonfly_eval.tiny.train`).
"""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedTokenizerFast

from dragonfly_eval.tiny import assets_dir

SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    *[f"<|reserved_special_token_{i}|>" for i in range(6)],
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
TOKENIZER_VOCAB = 512
_CORPUS = """
What is written on the sign? Answer the question using a single word or phrase.
Answer the question with a single word. Answer with the option's letter from the given choices
directly. Is there a red circle in the image? Please answer yes or no. Describe the image in detail.
Provide a one-sentence caption for the provided image. What is the value of the tallest bar?
What is the title of the document? How many shapes are there? The quick brown fox jumps over the
lazy dog. A photo of a cat sitting on a chair. Options: A. red B. green C. blue D. yellow.
yes no 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 stop open closed left right top bottom sales revenue
"""


def tokenizer_path() -> Path:
    """The shipped tokenizer.json of dragonfly-tiny."""
    return assets_dir() / "tokenizer.json"


def train_tokenizer(path: Path) -> None:
    """Train the small byte-level BPE (deterministic) and write it to `path`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.split("\n"), trainer=trainer)
    bos = SPECIAL_TOKENS[0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """The shipped tokenizer as a transformers fast tokenizer."""
    return PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_path()),
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<|end_of_text|>",
    )


if __name__ == "__main__":
    train_tokenizer(tokenizer_path())
    print(f"wrote {tokenizer_path()}")
