import pytest
import torch
from transformers import UMT5Config

from magicinfinite_core.errors import InputError
from magicinfinite_core.mini.text_encoder import EOS_ID, SmallTextEncoder, tokenize


def _encoder(text_len: int = 16) -> SmallTextEncoder:
    torch.manual_seed(0)
    config = UMT5Config(vocab_size=259, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    return SmallTextEncoder(config, text_len=text_len).eval()


def test_tokenize_is_bytes_then_eos_and_respects_length():
    assert tokenize("ab", 8) == [ord("a") + 3, ord("b") + 3, EOS_ID]
    assert len(tokenize("x" * 100, 8)) == 8


def test_context_is_zero_past_the_prompt_and_differs_between_prompts():
    enc = _encoder()
    ctx = enc.encode(["smiling", "a surprised face"])
    assert ctx.shape == (2, 16, 32)
    assert torch.all(ctx[0, len("smiling") + 1 :] == 0)
    assert ctx[0, : len("smiling") + 1].abs().sum(-1).min() > 0
    assert not torch.allclose(ctx[0, :4], ctx[1, :4])


def test_non_ascii_prompt_encodes_and_small_vocab_is_refused():
    assert _encoder().encode(["笑顔"]).isfinite().all()
    with pytest.raises(InputError, match="vocab_size"):
        SmallTextEncoder(UMT5Config(vocab_size=100, d_model=8, d_kv=2, d_ff=8, num_layers=1, num_heads=4), 8)
