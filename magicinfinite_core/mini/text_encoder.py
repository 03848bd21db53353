"""The embedded bundle's small text encoder: the umT5 encoder architecture over a byte vocabulary.

Real models use umT5-XXL through the host's CLIPLoader; the small bundle needs an encoder that runs with no
download, so its vocabulary is the 256 byte values (no tokenizer file to fetch), as ByT5 does.
"""

from __future__ import annotations

from transformers import UMT5Config, UMT5EncoderModel

from magicinfinite_core.encoders.umt5 import EOS_ID, UMT5TextEncoder
from magicinfinite_core.errors import InputError

BYTE_OFFSET = 3  # ids 0..2 are pad / eos / unk, as in T5 vocabularies


def tokenize(text: str, max_tokens: int) -> list[int]:
    """UTF-8 bytes shifted past the special ids, cut to leave room for the end-of-sequence id."""
    ids = [b + BYTE_OFFSET for b in text.encode("utf-8")][: max_tokens - 1]
    return [*ids, EOS_ID]


class SmallTextEncoder(UMT5TextEncoder):
    """The umT5 encoder over the byte vocabulary: the same encoder as the real umT5 files load into, with
    `tokenize` for a tokenizer."""

    def __init__(self, config: UMT5Config, text_len: int) -> None:
        if config.vocab_size < 256 + BYTE_OFFSET:
            raise InputError(
                f"text encoder vocab_size is {config.vocab_size}; a byte vocabulary needs at least "
                f"{256 + BYTE_OFFSET}"
            )
        super().__init__(UMT5EncoderModel(config), tokenize, text_len)
