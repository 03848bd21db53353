"""A stand-in compute device for CPU tests: code is told its device is "meta", runs for real on the CPU, and
every tensor that would live on that device is tracked, with its dtype.

How: a TorchFunctionMode rewrites every request for the meta device (`device=` of factory functions, the
device argument of `Tensor.to`) into a fresh CPU tensor whose storage is marked as on the device. Whatever an
op computes from a marked tensor is marked too, unless the op explicitly asks for the CPU (`.cpu()`,
`.to("cpu", ...)`, `device="cpu"`). Parameters moved by `module.to(device)` share the marked storage, so a
module moved there computes "on the device". Apple's MPS has no float64: `float64_on_device` lists every op
that produced a float64 tensor on the device.
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

DEVICE = torch.device("meta")  # what the code under test is given as its compute device
_WIDE = (torch.float64, torch.complex128)


def _device_type(value) -> str | None:
    """The device type a str / torch.device argument names; None for anything else (an einsum equation)."""
    if isinstance(value, torch.device):
        return value.type
    if isinstance(value, str):
        try:
            return torch.device(value).type
        except RuntimeError:
            return None
    return None


def _is_device(value) -> bool:
    return _device_type(value) == DEVICE.type


def _is_cpu(value) -> bool:
    return _device_type(value) == "cpu"


class DeviceStandIn(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.marked: dict[int, torch.Tensor] = {}  # storage pointer -> a tensor keeping that storage alive
        self.float64_on_device: list[str] = []
        self.ops_on_device = 0

    def _on_device(self, value) -> bool:
        return (isinstance(value, torch.Tensor) and value.device.type == "cpu" and value.numel() > 0
                and value.untyped_storage().data_ptr() in self.marked)

    def _mark(self, value, name: str) -> None:
        if not isinstance(value, torch.Tensor) or value.device.type != "cpu" or value.numel() == 0:
            return
        self.marked[value.untyped_storage().data_ptr()] = value
        self.ops_on_device += 1
        if value.dtype in _WIDE:
            self.float64_on_device.append(f"{name} -> {value.dtype} {tuple(value.shape)}")

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", str(func))
        if name == "_parse_to":  # Module.to reads its target here: keep it, its tensors' .to moves them
            return func(*args, **kwargs)
        flat_args, _ = tree_flatten((args, kwargs))
        to_device = any(_is_device(v) for v in flat_args)
        to_cpu = name == "cpu" or any(_is_cpu(v) for v in flat_args)
        if to_device:
            args, kwargs = tree_map(lambda v: torch.device("cpu") if _is_device(v) else v, (args, kwargs))
            if name == "to":  # a move must copy, or the CPU original would be marked along with it
                kwargs["copy"] = True
        from_device = any(self._on_device(v) for v in flat_args)
        out = func(*args, **kwargs)
        if to_device or (from_device and not to_cpu):
            for value in tree_flatten(out)[0]:
                self._mark(value, name)
        return out
