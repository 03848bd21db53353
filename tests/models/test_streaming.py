"""Block streaming under a byte budget (magicinfinite_core/models/streaming.py), on the CPU.

Both "devices" are the CPU here, so `.device` proves nothing: residency is counted from the streamer's own
events, blocks out of their slot hold meta tensors (a block run without its weights fails), and a transfer
that copies only when the compute asks for the block checks the order of copy / ready / release.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_inputs, make_tiny_model

from magicinfinite_core.checkpoints.fp8 import quantize_fp8
from magicinfinite_core.errors import InputError
from magicinfinite_core.models.cast import CastLinear, DensePatch, LowRankPatch
from magicinfinite_core.models.config import WAN_14B
from magicinfinite_core.models.streaming import (
    BlockStreamer,
    GiB,
    StreamEvent,
    SyncTransfer,
    activation_reserve,
    block_bytes,
    parse_budget,
    resident_bytes,
)

NUM_BLOCKS = 5


def fp8_model_with_loras():
    """A tiny i2v model with audio, fp8 (scaled) block linears and a LoRA beside every block linear."""
    model = make_tiny_model(num_layers=NUM_BLOCKS)
    g = torch.Generator().manual_seed(3)
    for name, layer in model.named_modules():
        if isinstance(layer, CastLinear) and name.startswith("blocks."):
            layer.weight.data, layer.scale_weight = quantize_fp8(layer.weight.data)
            out_features, in_features = layer.weight.shape
            layer.patches = [
                LowRankPatch(torch.randn(2, in_features, generator=g),
                             torch.randn(out_features, 2, generator=g), 0.05),
                DensePatch(torch.randn(out_features, in_features, generator=g), 0.01),
            ]
    return model


def run(model, inputs):
    kwargs = {k: v for k, v in inputs.items() if k != "features"}
    with torch.no_grad():
        tokens = model.encode_audio(inputs["features"])
        return model(**kwargs, audio_tokens=tokens)


def slots_budget(model, slots: int) -> int:
    return resident_bytes(model) + slots * block_bytes(model)


class DeferredTransfer(SyncTransfer):
    """Copies only when the compute waits for the slot, as an asynchronous copy may land that late; logs
    the calls and fails if a slot is overwritten before the compute released it."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int]] = []
        self.pending: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.busy: set[int] = set()

    def copy(self, slot, dst, src):
        assert slot not in self.busy, f"slot {slot} overwritten while its block may still compute"
        self.log.append(("copy", slot))
        self.pending[slot] = (dst, src)
        self.busy.add(slot)

    def ready(self, slot):
        self.log.append(("ready", slot))
        dst, src = self.pending.pop(slot)
        dst.copy_(src)

    def release(self, slot):
        self.log.append(("release", slot))
        self.busy.discard(slot)


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_streamed_output_equals_resident_output_with_fp8_and_lora(slots):
    model = fp8_model_with_loras()
    inputs = make_inputs(model.config, speakers=1)
    expected = run(model, inputs)
    events: list[StreamEvent] = []
    budget = slots_budget(model, slots)
    with BlockStreamer(model, "cpu", budget, transfer=DeferredTransfer(), on_event=events.append,
                       absent_on_meta=True) as streamer:
        assert streamer.streaming and streamer.num_slots == slots
        first = run(model, inputs)
        second = run(model, inputs)  # the ring wraps into the next forward
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    torch.testing.assert_close(second, expected, rtol=0, atol=0)
    assert max(e.resident_bytes for e in events) <= budget
    ready = [e.block for e in events if e.kind == "ready"]
    assert ready == list(range(NUM_BLOCKS)) * 2
    # LoRA patches travelled with their block and came back to the host ones afterwards.
    assert run(model, inputs).equal(expected)


def test_residency_counted_from_events_never_exceeds_the_budget_and_blocks_are_absent_outside_slots():
    model = fp8_model_with_loras()
    inputs = make_inputs(model.config, speakers=1)
    budget = slots_budget(model, 2) + block_bytes(model) // 2  # room for 2.5 blocks: 2 slots
    resident = resident_bytes(model)
    loaded: set[int] = set()  # copied into a slot, not yet released
    placed: set[int] = set()  # and handed to the compute
    peak = 0

    def count(event: StreamEvent) -> None:
        nonlocal peak
        if event.kind == "copy":
            loaded.add(event.block)
        elif event.kind == "ready":
            placed.add(event.block)
        else:
            loaded.discard(event.block)
            placed.discard(event.block)
        mine = resident + len(loaded) * block_bytes(model)
        assert mine == event.resident_bytes
        peak = max(peak, mine)
        # Only blocks handed to the compute hold weights; the others hold meta tensors (no storage).
        for index, block in enumerate(model.blocks):
            on_meta = block.ffn[0].weight.is_meta and block.ffn[0].patches[0].up.is_meta
            assert on_meta == (index not in placed), (event, index)

    with BlockStreamer(model, "cpu", budget, on_event=count, absent_on_meta=True):
        run(model, inputs)
    assert peak == resident + 2 * block_bytes(model) <= budget


def test_next_block_is_copied_before_the_current_one_computes_and_slots_alternate():
    model = fp8_model_with_loras()
    inputs = make_inputs(model.config, speakers=1)
    transfer = DeferredTransfer()
    computed: list[int] = []
    with BlockStreamer(model, "cpu", slots_budget(model, 2), transfer=transfer, absent_on_meta=True):
        for index, block in enumerate(model.blocks):  # registered after the streamer's hooks: runs after them
            block.register_forward_pre_hook(
                lambda *_, i=index: computed.append(i) or transfer.log.append(("run", i)))
        run(model, inputs)
    log = transfer.log
    for index in range(NUM_BLOCKS - 1):
        run_at = log.index(("run", index))
        # block index + 1 goes to slot (index + 1) % 2; its copy was issued before block `index` ran
        copies = [i for i, entry in enumerate(log) if entry == ("copy", (index + 1) % 2)]
        assert any(i < run_at for i in copies)
    for slot in (0, 1):
        sequence = [kind for kind, s in log if s == slot and kind != "run"]
        expected = ["copy", "ready", "release"] * (len(sequence) // 3)
        assert sequence[: len(expected)] == expected
    assert computed == list(range(NUM_BLOCKS))


def test_an_interrupted_forward_does_not_derail_the_next():
    model = fp8_model_with_loras()
    inputs = make_inputs(model.config, speakers=1)
    expected = run(model, inputs)

    def fail(*_):
        raise RuntimeError("cancelled")

    budget = slots_budget(model, 2)
    with BlockStreamer(model, "cpu", budget, transfer=DeferredTransfer(), absent_on_meta=True):
        hook = model.blocks[2].register_forward_pre_hook(fail)
        with pytest.raises(RuntimeError, match="cancelled"):
            run(model, inputs)
        hook.remove()
        torch.testing.assert_close(run(model, inputs), expected, rtol=0, atol=0)


def test_a_budget_holding_every_block_loads_once_and_streams_nothing():
    model = fp8_model_with_loras()
    inputs = make_inputs(model.config, speakers=1)
    expected = run(model, inputs)
    events: list[StreamEvent] = []
    with BlockStreamer(model, "cpu", slots_budget(model, NUM_BLOCKS + 3), on_event=events.append,
                       absent_on_meta=True) as streamer:
        assert not streamer.streaming
        run(model, inputs)
        torch.testing.assert_close(run(model, inputs), expected, rtol=0, atol=0)
    assert [e.kind for e in events] == ["copy"] * NUM_BLOCKS + ["ready"] * NUM_BLOCKS


def test_by_default_blocks_outside_their_slot_read_as_the_host_weights():
    """What reads the weights while streaming (a resume fingerprint) sees the real values."""
    model = fp8_model_with_loras()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with BlockStreamer(model, "cpu", slots_budget(model, 1)):
        inside = model.state_dict()
        assert inside.keys() == before.keys()
        for key, value in before.items():
            assert inside[key].equal(value), key


def test_a_second_streamer_reuses_the_pinned_buffers_and_a_changed_lora_is_repacked():
    model = fp8_model_with_loras()
    inputs = make_inputs(model.config, speakers=1)
    first = BlockStreamer(model, "cpu", slots_budget(model, 1))
    again = BlockStreamer(model, "cpu", slots_budget(model, 2))
    assert [p.host.data_ptr() for p in again.packed] == [p.host.data_ptr() for p in first.packed]
    layer = model.blocks[3].ffn[0]
    layer.patches = [patch.apply(lambda t: 2 * t) for patch in layer.patches]
    expected = run(model, inputs)
    changed = BlockStreamer(model, "cpu", slots_budget(model, 2), absent_on_meta=True)
    assert changed.packed[3].host.data_ptr() != first.packed[3].host.data_ptr()
    assert changed.packed[2].host.data_ptr() == first.packed[2].host.data_ptr()
    with changed:
        torch.testing.assert_close(run(model, inputs), expected, rtol=0, atol=0)


def test_a_budget_below_one_block_names_the_option_and_the_need():
    model = fp8_model_with_loras()
    message = r"vram_budget_gb: .* GiB is below what this model needs at the least, .* GiB"
    with pytest.raises(InputError, match=message):
        BlockStreamer(model, "cpu", slots_budget(model, 1) - 1)


def test_the_activation_reserve_covers_the_measured_peak_without_wasting_a_small_card():
    """bench/gpu.py on an H200: one 480x832x81 pass of the 14B shape peaks 4.8 GiB above the weights held."""
    reserve = activation_reserve(WAN_14B.dim, WAN_14B.ffn_dim, tokens=21 * 30 * 52) / GiB
    assert 4.8 + 0.5 <= reserve <= 4.8 + 1.5


@pytest.mark.parametrize(("value", "expected"), [
    ("auto", "auto"), ("AUTO", "auto"), ("off", None), ("", None), (None, None), (0, None), ("12", 12.0),
    (7.5, 7.5),
])
def test_parse_budget(value, expected):
    assert parse_budget(value) == expected


@pytest.mark.parametrize("value", ["-1", "twelve", "nan"])
def test_parse_budget_rejects_nonsense(value):
    with pytest.raises(InputError, match="vram_budget_gb"):
        parse_budget(value)
