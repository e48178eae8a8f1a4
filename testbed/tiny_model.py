"""Build a tiny random GPT-2 and a BPE tokenizer offline (no hub access in tests, CI or checks).

Shared by the runtime tests and `make gpu-check` (bench/gpu_check.py).
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "hello world, temporal workers run activities on gpus and cpus.",
    "the quick brown fox jumps over the lazy dog 0123456789",
] * 20


def save_tiny_model(
    path: Path, n_positions: int = 4096, *, n_layer: int = 1, n_head: int = 2, n_embd: int = 32
) -> Path:
    """Save tokenizer + GPT-2 (random weights; 1 layer, 32 wide by default) as a model folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    fast.save_pretrained(path)
    eos = fast.eos_token_id
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(), n_positions=n_positions, n_layer=n_layer,
        n_head=n_head, n_embd=n_embd, bos_token_id=eos, eos_token_id=eos,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(path)
    return path
