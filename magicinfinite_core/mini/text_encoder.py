"""The embedded bundle's small text encoder: the umT5 encoder architecture over a byte vocabulary.

Real models use umT5-XXL through the host's CLIPLoader; the small bundle needs an encoder that runs with no
download, so its vocabulary is the 256 byte values (no tokenizer file to fetch), as ByT5 does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import UMT5Config, UMT5EncoderModel

from magicinfinite_core.errors import InputError

PAD_ID, EOS_ID = 0, 1
BYTE_OFFSET = 3  # ids 0..2 are pad / eos / unk, as in T5 vocabularies


def tokenize(text: str, max_tokens: int) -> list[int]:
    """UTF-8 bytes shifted past the special ids, cut to leave room for the end-of-sequence id."""
    ids = [b + BYTE_OFFSET for b in text.encode("utf-8")][: max_tokens - 1]
    return [*ids, EOS_ID]


class SmallTextEncoder(nn.Module):
    """umT5 encoder whose output, like Wan's text context, is zero past each prompt's tokens."""

    def __init__(self, config: UMT5Config, text_len: int) -> None:
        super().__init__()
        if config.vocab_size < 256 + BYTE_OFFSET:
            raise InputError(
                f"text encoder vocab_size is {config.vocab_size}; a byte vocabulary needs at least "
                f"{256 + BYTE_OFFSET}"
            )
        self.text_len = text_len
        self.encoder = UMT5EncoderModel(config)

    @property
    def width(self) -> int:
        return self.encoder.config.d_model

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> context [len(prompts), text_len, width] in float32."""
        rows = [tokenize(p, self.text_len) for p in prompts]
        ids = torch.full((len(rows), self.text_len), PAD_ID, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        device = next(self.encoder.parameters()).device
        hidden = self.encoder(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        return (hidden.float() * mask.to(device).unsqueeze(-1)).cpu()
