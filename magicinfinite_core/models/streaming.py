"""Run a `WanModel` on a device that cannot hold all of it: its blocks stream in under a byte budget.

What stays on the device ("resident"): everything outside `model.blocks` (patch, text, time and image
embeddings, `time_projection`, head, audio projection; ~0.3 B parameters at 14B). The blocks live in
pinned host memory, one flat byte buffer per block, and are copied into a ring of `slots` device buffers
(as many as the budget holds after the resident part). While block i computes, the next blocks are copied
on a side stream, so the copy hides behind the compute when the link is fast enough.

Order of events per slot (what makes it safe; `Transfer` carries it out, CUDA events on a GPU):
copy(slot) waits until the compute stream released the slot's previous block, then copies; the compute
stream waits for that copy before the block runs (`ready`), and releases the slot after the block ran.
Fixed slots bound the memory exactly: the caching allocator never sees a block's weights freed while the
CPU runs ahead of the GPU. Blocks not in a slot point at their host buffer (so `state_dict()`, e.g. for a
resume fingerprint, still reads real weights; a block run there on a GPU fails on the device mismatch), or
with `absent_on_meta` at meta tensors, which makes any block that runs outside its slot fail, also on a CPU.

LoRA deltas kept beside fp8 weights (`CastLinear.patches`) are packed into their block's buffer and
travel with it. diffusers' group offloading does the same job but is not a ComfyUI dependency (and is
absent on the GPU machines we test on), has no byte budget and allocates per transfer; hence this module.
"""

from __future__ import annotations

import functools
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from typing import Literal, Protocol

import torch
from torch import nn

from ..errors import InputError
from .cast import CastLinear

GiB = 1024**3
_HOST_BUFFERS: weakref.WeakKeyDictionary[nn.Module, torch.Tensor] = weakref.WeakKeyDictionary()
ALIGN = 256  # bytes between packed tensors: every dtype's alignment, and the CUDA copy engines' preference


@dataclass(frozen=True)
class StreamEvent:
    """One step of the streamer: `resident_bytes` counts the resident part plus every block copied or
    being copied into a slot and not yet released, after the event."""

    kind: Literal["copy", "ready", "release"]
    block: int
    slot: int
    resident_bytes: int


class Transfer(Protocol):
    """Moves packed blocks into device slots and orders the copies against the compute."""

    def copy(self, slot: int, dst: torch.Tensor, src: torch.Tensor) -> None:
        """Copy src (host bytes) into dst (the slot) once the slot's previous block was released."""

    def ready(self, slot: int) -> None:
        """The compute that follows waits for the slot's copy."""

    def release(self, slot: int) -> None:
        """The compute issued so far is the last use of the slot's current block."""

    def close(self) -> None:
        """Wait for every copy issued (the slots and host buffers may be freed after)."""


class SyncTransfer:
    """Copies at once, in order with the compute (CPU, or any device without side streams)."""

    def copy(self, slot: int, dst: torch.Tensor, src: torch.Tensor) -> None:
        dst.copy_(src)

    def ready(self, slot: int) -> None:
        pass

    def release(self, slot: int) -> None:
        pass

    def close(self) -> None:
        pass


class CudaTransfer:
    """Copies on a side CUDA stream from pinned memory, ordered by one event per slot each way."""

    def __init__(self, device: torch.device, slots: int) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device)
        self.copied = [torch.cuda.Event() for _ in range(slots)]
        self.released: list[torch.cuda.Event | None] = [None] * slots

    def copy(self, slot: int, dst: torch.Tensor, src: torch.Tensor) -> None:
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.stream):
            if self.released[slot] is None:
                # A fresh slot was allocated on the compute stream, whose earlier kernels may still use
                # that memory under its previous owner.
                self.stream.wait_stream(compute)
            else:
                self.stream.wait_event(self.released[slot])
            # src is a block's persistent pinned buffer: it outlives the asynchronous copy.
            dst.copy_(src, non_blocking=True)
            self.copied[slot].record(self.stream)

    def ready(self, slot: int) -> None:
        torch.cuda.current_stream(self.device).wait_event(self.copied[slot])

    def release(self, slot: int) -> None:
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        self.released[slot] = event

    def close(self) -> None:
        self.stream.synchronize()


def _gib(nbytes: int) -> str:
    return f"{nbytes / GiB:.3g} GiB"


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


def _patch_tensors(patch) -> list[torch.Tensor]:
    return [value for f in fields(patch) if isinstance(value := getattr(patch, f.name), torch.Tensor)]


def _with_tensors(patch, tensors: Iterator[torch.Tensor]):
    return replace(patch, **{
        f.name: next(tensors) for f in fields(patch) if isinstance(getattr(patch, f.name), torch.Tensor)
    })


class WeightGroup:
    """The parameters, buffers and LoRA patches of a set of modules, which can be pointed at any storage."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.tensors: list[tuple[nn.Module, str, bool]] = []  # (module, name, is_parameter)
        for module in modules:
            self.tensors += [(module, name, True) for name, p in module._parameters.items() if p is not None]
            self.tensors += [(module, name, False) for name, b in module._buffers.items() if b is not None]
        self.linears = [m for m in modules if isinstance(m, CastLinear) and m.patches]

    def current(self) -> list[torch.Tensor]:
        """Every tensor of the group, parameters and buffers first, then the patches' tensors."""
        out = [(m._parameters if is_param else m._buffers)[name] for m, name, is_param in self.tensors]
        return out + [t for m in self.linears for patch in m.patches for t in _patch_tensors(patch)]

    def point_at(self, tensors: list[torch.Tensor]) -> None:
        """Make the group use `tensors` (same order, shapes and dtypes as `current()`)."""
        given = iter(tensors)
        for (module, name, is_param), tensor in zip(self.tensors, given, strict=False):
            if is_param:  # a new Parameter: `.data =` refuses to switch to or from meta tensors
                module._parameters[name] = nn.Parameter(tensor, module._parameters[name].requires_grad)
            else:
                module._buffers[name] = tensor
        for linear in self.linears:
            linear.patches = [_with_tensors(patch, given) for patch in linear.patches]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.current())


class PackedBlock:
    """One block's tensors in one flat byte buffer (pinned on CUDA hosts); the block's weights become views
    into it, so packing does not keep a second host copy. A block still pointing at the buffer of an earlier
    streamer reuses it (no new pinned allocation and copy per render)."""

    def __init__(self, block: nn.Module, pin: bool) -> None:
        self.group = group = WeightGroup(list(block.modules()))
        tensors = group.current()
        self.layout: list[tuple[int, torch.Size, torch.dtype]] = []
        offset = 0
        for t in tensors:
            self.layout.append((offset, t.shape, t.dtype))
            offset += _aligned(t.numel() * t.element_size())
        self.nbytes = offset
        earlier = _HOST_BUFFERS.get(block)
        if earlier is not None and earlier.is_pinned() == pin and earlier.numel() == offset and [
            v.data_ptr() for v in self.views(earlier)
        ] == [t.data_ptr() for t in tensors]:
            self.host = earlier
            return
        self.host = torch.empty(offset, dtype=torch.uint8, pin_memory=pin)
        views = self.views(self.host)
        for view, t in zip(views, tensors, strict=True):
            view.copy_(t)
        group.point_at(views)
        _HOST_BUFFERS[block] = self.host

    def views(self, buffer: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for offset, shape, dtype in self.layout:
            size = shape.numel() * dtype.itemsize
            out.append(buffer[offset : offset + size].view(dtype).view(shape))
        return out

    def on_host(self) -> None:
        self.group.point_at(self.views(self.host))

    def absent(self, on_meta: bool) -> None:
        if not on_meta:
            self.on_host()
            return
        self.group.point_at([torch.empty(shape, dtype=dtype, device="meta") for _, shape, dtype in
                             self.layout])


def _block_modules(model: nn.Module) -> list[list[nn.Module]]:
    return [list(block.modules()) for block in model.blocks]


def _resident_group(model: nn.Module) -> WeightGroup:
    """What the streamer keeps on the device: the model outside its blocks."""
    in_blocks = {id(m) for modules in _block_modules(model) for m in modules}
    return WeightGroup([m for m in model.modules() if id(m) not in in_blocks])


def resident_bytes(model: nn.Module) -> int:
    """Bytes of what the streamer keeps on the device: the model outside its blocks."""
    return _resident_group(model).nbytes()


def block_bytes(model: nn.Module) -> int:
    """Bytes of the largest block (packed), the unit the budget is spent in."""
    return max(
        sum(_aligned(t.numel() * t.element_size()) for t in WeightGroup(modules).current())
        for modules in _block_modules(model)
    )


def activation_reserve(dim: int, ffn_dim: int, tokens: int, batch: int = 1) -> int:
    """Device bytes a forward needs beside the weights: per token 20 bytes per model channel (the float32
    residual stream and its normed copy, q/k/v and the attention output) and 4 per feed-forward channel (its
    hidden state and activation), plus 1 GiB for library workspaces and allocator fragmentation. At the 14B
    shape and 480x832x81 (32,760 tokens) that is 5.8 GiB; bench/gpu.py measured 4.8 GiB on an H200."""
    return batch * tokens * (20 * dim + 4 * ffn_dim) + GiB


def auto_budget(device: torch.device, reserve: int) -> int:
    """Free device memory minus `reserve` (what activations need), for a CUDA device."""
    free, _ = torch.cuda.mem_get_info(device)
    return max(free - reserve, 0)


def parse_budget(value: str | float | None) -> float | Literal["auto"] | None:
    """The `vram_budget_gb` option: "auto", a number of GiB (> 0), or off ("off", "", 0 or None)."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("auto",):
        return "auto"
    if text in ("", "off", "none", "0", "0.0"):
        return None
    try:
        number = float(text)
    except ValueError:
        number = -1.0
    if not number > 0:
        raise InputError(
            f"vram_budget_gb: expected 'auto', 'off' or a positive number of GiB (e.g. 12), got {value!r}."
        )
    return number


class BlockStreamer:
    """Context manager: inside it the model's resident part is on `device` and its blocks stream through
    `budget` bytes. `on_event` receives every `StreamEvent` (tests count residency from them);
    `absent_on_meta` (tests) leaves blocks outside their slot on meta tensors.

    Outside the context the model's weights are on the host again (pinned when the device is CUDA).
    """

    def __init__(
        self,
        model: nn.Module,
        device: torch.device | str,
        budget: int,
        *,
        transfer: Transfer | None = None,
        on_event: Callable[[StreamEvent], None] | None = None,
        absent_on_meta: bool = False,
    ) -> None:
        self.model = model
        self.device = torch.device(device)
        self.resident = _resident_group(model)
        self.resident_nbytes = self.resident.nbytes()
        self.block_nbytes = block_bytes(model)
        need = self.resident_nbytes + self.block_nbytes
        if budget < need:
            raise InputError(
                f"vram_budget_gb: {_gib(budget)} is below what this model needs at the least, {_gib(need)} "
                f"(the part that stays on the device, {_gib(self.resident_nbytes)}, plus one block, "
                f"{_gib(self.block_nbytes)}); raise vram_budget_gb, or use fp8 weights (half the bytes of "
                "bf16)."
            )
        num_blocks = len(model.blocks)
        self.num_slots = min((budget - self.resident_nbytes) // self.block_nbytes, num_blocks)
        self.streaming = self.num_slots < num_blocks
        cuda = self.device.type == "cuda"
        self.transfer = transfer or (CudaTransfer(self.device, self.num_slots) if cuda else SyncTransfer())
        self.on_event = on_event or (lambda event: None)
        self.absent_on_meta = absent_on_meta
        self.packed = [PackedBlock(block, pin=cuda) for block in model.blocks]
        self.host_resident: list[torch.Tensor] = []
        self.slots: list[torch.Tensor] = []
        self.queue: deque[tuple[int, int]] = deque()  # (block, slot) copied and not yet released
        self.next_block = self.next_slot = 0
        self.in_slots = self.resident_nbytes
        self.hooks: list = []

    @property
    def budget_used(self) -> int:
        """Device bytes of weights the streamer holds: the resident part plus the slots."""
        return self.resident_nbytes + self.num_slots * self.block_nbytes

    def __enter__(self) -> BlockStreamer:
        self.host_resident = self.resident.current()
        self.resident.point_at([t.to(self.device) for t in self.host_resident])
        self.slots = [torch.empty(self.block_nbytes, dtype=torch.uint8, device=self.device)
                      for _ in range(self.num_slots)]
        for packed in self.packed:
            packed.absent(self.absent_on_meta)
        self._fill()
        if self.streaming:
            for index, block in enumerate(self.model.blocks):
                self.hooks.append(block.register_forward_pre_hook(functools.partial(self._before, index)))
                self.hooks.append(block.register_forward_hook(functools.partial(self._after, index)))
        else:  # everything fits: load once, no hooks
            for block, slot in self.queue:
                self._place(block, slot)
        return self

    def __exit__(self, *exc) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()
        self.transfer.close()
        for packed in self.packed:
            packed.on_host()
        self.resident.point_at(self.host_resident)
        self.slots.clear()
        self.queue.clear()

    def _emit(self, kind: Literal["copy", "ready", "release"], block: int, slot: int) -> None:
        self.on_event(StreamEvent(kind, block, slot, self.in_slots))

    def _fill(self) -> None:
        """Start copying the next blocks (in forward order, wrapping to the next forward) into free slots."""
        while len(self.queue) < self.num_slots:
            block, slot = self.next_block, self.next_slot
            packed = self.packed[block]
            self.transfer.copy(slot, self.slots[slot][: packed.nbytes], packed.host)
            self.in_slots += packed.nbytes
            self.queue.append((block, slot))
            self._emit("copy", block, slot)
            self.next_block = (block + 1) % len(self.packed)
            self.next_slot = (slot + 1) % self.num_slots

    def _place(self, block: int, slot: int) -> None:
        self.transfer.ready(slot)
        packed = self.packed[block]
        packed.group.point_at(packed.views(self.slots[slot]))
        self._emit("ready", block, slot)

    def _release_head(self) -> None:
        block, slot = self.queue.popleft()
        self.transfer.release(slot)
        self.packed[block].absent(self.absent_on_meta)
        self.in_slots -= self.packed[block].nbytes
        self._emit("release", block, slot)

    def _before(self, index: int, module: nn.Module, args) -> None:
        if self.queue[0][0] != index:
            # The last forward stopped part-way (an error, a cancel): start over from this block.
            while self.queue:
                self._release_head()
            self.next_block = index
            self._fill()
        self._place(*self.queue[0])

    def _after(self, index: int, module: nn.Module, args, output) -> None:
        self._release_head()
        self._fill()
