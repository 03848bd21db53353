"""wav2vec2 features of a track of any length in flat memory, computed as the MultiTalk reference does.

The reference (MeiGen-AI MultiTalk/InfiniteTalk `src/audio_analysis/wav2vec2.py`) runs the CNN front end
on the whole waveform (~50 feature frames a second), interpolates its output linearly (align_corners) to
the video frame count, and only then runs the transformer encoder, at the video frame rate; the features
are its 12 hidden states after each layer (`hidden_states[1:]`).

Done whole, a 10-minute track needs gigabytes (the first convolution's output alone is 3.9 GB, attention
over 15,000 frames 10 GB per layer). Here:

* The CNN runs in pieces of `cnn_piece_frames` output frames, which is exact: its convolutions are
  unpadded and every piece starts on a multiple of the total stride. Its first layer's GroupNorm
  normalises each channel over the whole clip, so a first pass gathers those statistics; the waveform
  standardisation of models with do_normalize is handled the same way. Small pieces (2 s) keep the
  front end's transient memory near 100 MB for wav2vec2-base.
* The transformer runs over chunks of `core_frames` video frames plus `context_frames` on each side that
  are encoded and dropped. This is the one approximation: attention sees a chunk, not the whole clip. The
  context must exceed the positional convolution's reach (kernel 128 frames: 64 each side, 2.6 s at
  25 fps); 64 frames of context with 1000-frame cores keeps the transformer's extra work at 13%, and every
  kept frame still sees at least 2.6 s of audio on each side and up to 45 s in all (wav2vec2 was pretrained
  on crops of at most 15.6 s). Tracks of at most core + 2 x context frames (45 s at 25 fps) are encoded
  whole, exactly as the reference does. tests/audio/test_audio_chunked.py measures chunked against
whole; docs/audio.md reports the figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from magicinfinite_core.errors import InputError

from .encoder import AudioEncoder
from .preprocess import ENCODER_SAMPLE_RATE

SampleReader = Callable[[int, int], Tensor]  # (start, stop) -> [stop-start] float32 samples of the track
FrameWriter = Callable[[int, Tensor], None]  # (first frame, [n, layers, width]) -> store
_NORMALIZE_EPS = 1e-7  # Wav2Vec2FeatureExtractor's zero-mean unit-variance epsilon


@dataclass(frozen=True)
class ChunkPlan:
    """How a long track is cut (video frames for the transformer, CNN output frames for the front end)."""

    core_frames: int = 1000
    context_frames: int = 64
    cnn_piece_frames: int = 100

    @property
    def whole_limit(self) -> int:
        """Longest track (video frames) encoded in one pass."""
        return self.core_frames + 2 * self.context_frames


DEFAULT_PLAN = ChunkPlan()


def transformer_chunks(num_frames: int, plan: ChunkPlan) -> list[tuple[int, int, int, int]]:
    """(context start, core start, core stop, context stop) of each transformer pass; cores tile
    [0, num_frames) exactly once."""
    if num_frames <= plan.whole_limit:
        return [(0, 0, num_frames, num_frames)]
    count = math.ceil(num_frames / plan.core_frames)
    bounds = [round(i * num_frames / count) for i in range(count + 1)]
    return [(max(0, a - plan.context_frames), a, b, min(num_frames, b + plan.context_frames))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@dataclass(frozen=True)
class ConvGeometry:
    """Kernels and strides of the CNN front end."""

    kernels: tuple[int, ...]
    strides: tuple[int, ...]

    @property
    def hop(self) -> int:
        """Samples between consecutive output frames (320 = 20 ms at 16 kHz)."""
        return math.prod(self.strides)

    @property
    def receptive_field(self) -> int:
        """Samples one output frame sees (400 = 25 ms)."""
        field, step = self.kernels[0], self.strides[0]
        for kernel, stride in zip(self.kernels[1:], self.strides[1:], strict=True):
            field += (kernel - 1) * step
            step *= stride
        return field

    def output_frames(self, num_samples: int) -> int:
        length = num_samples
        for kernel, stride in zip(self.kernels, self.strides, strict=True):
            length = (length - kernel) // stride + 1 if length >= kernel else 0
        return length


def conv_geometry(encoder: AudioEncoder) -> ConvGeometry:
    config = encoder.module.config
    return ConvGeometry(tuple(config.conv_kernel), tuple(config.conv_stride))


def interpolation_weights(start: int, stop: int, num_frames: int,
                          num_inputs: int) -> tuple[Tensor, Tensor, Tensor]:
    """Left index, right index and right weight of output frames [start, stop) when num_inputs frames are
    linearly interpolated to num_frames with align_corners=True (torch's float32 arithmetic)."""
    ratio = float(num_inputs - 1) / (num_frames - 1) if num_frames > 1 else 0.0
    scale = torch.tensor(ratio, dtype=torch.float32)
    source = scale * torch.arange(start, stop, dtype=torch.float32)
    left = source.floor().to(torch.int64).clamp(max=num_inputs - 1)
    right = (left + 1).clamp(max=num_inputs - 1)
    return left, right, source - left


class FrontEnd:
    """The CNN front end of one track, computed piece by piece with clip-wide normalisation statistics."""

    def __init__(self, encoder: AudioEncoder, read: SampleReader, num_samples: int, plan: ChunkPlan,
                 device: torch.device) -> None:
        self.layers = encoder.module.feature_extractor.conv_layers
        self.geometry = conv_geometry(encoder)
        self.read_raw, self.num_samples, self.plan, self.device = read, num_samples, plan, device
        self.shift, self.scale = 0.0, 1.0
        if encoder.do_normalize:
            self.shift, self.scale = self._waveform_standardisation()
        group_norm = isinstance(self.layers[0].layer_norm, torch.nn.GroupNorm)
        self.group_stats = self._group_norm_stats() if group_norm else None
        self._cache: tuple[int, Tensor] | None = None

    def read(self, start: int, stop: int) -> Tensor:
        return self._standardised(start, stop).to(self.device)

    def _standardised(self, start: int, stop: int) -> Tensor:
        """Samples [start, stop) where the reader keeps them (the host), standardised if the model wants."""
        samples = self.read_raw(start, stop)
        if self.scale != 1.0 or self.shift != 0.0:
            samples = (samples - self.shift) * self.scale
        return samples

    def _sample_pieces(self, step: int):
        for start in range(0, self.num_samples, step):
            yield self.read_raw(start, min(start + step, self.num_samples))

    def _waveform_standardisation(self) -> tuple[float, float]:
        total = total_sq = 0.0
        for piece in self._sample_pieces(self.plan.cnn_piece_frames * self.geometry.hop):
            piece = piece.to(torch.float64)
            total += float(piece.sum())
            total_sq += float((piece * piece).sum())
        mean = total / self.num_samples
        var = max(total_sq / self.num_samples - mean * mean, 0.0)
        return mean, 1.0 / math.sqrt(var + _NORMALIZE_EPS)

    def _group_norm_stats(self) -> tuple[Tensor, Tensor]:
        """Scale and shift that apply the first layer's GroupNorm with clip-wide statistics.

        The first convolution has one input channel, so channel c's output at t is w_c . x_t + b_c with x_t
        the t-th window of samples: its mean and variance over the clip follow from the mean and the
        covariance of the windows (kernel x kernel), without computing the 512-channel output twice.
        The sums run in float64 on the CPU (not every accelerator has float64, e.g. Apple's MPS); only the
        float32 scale and shift go to the compute device.
        """
        conv = self.layers[0].conv
        kernel, stride = conv.kernel_size[0], conv.stride[0]
        outputs = (self.num_samples - kernel) // stride + 1
        step = self.plan.cnn_piece_frames * self.geometry.hop // stride  # windows per piece
        total = torch.zeros(kernel, dtype=torch.float64)
        gram = torch.zeros(kernel, kernel, dtype=torch.float64)
        for first in range(0, outputs, step):
            last = min(first + step, outputs)
            samples = self._standardised(first * stride, (last - 1) * stride + kernel)
            samples = samples.to("cpu", torch.float64)
            windows = samples.unfold(0, kernel, stride)
            total += windows.sum(dim=0)
            gram += windows.T @ windows
        window_mean = total / outputs
        covariance = gram / outputs - torch.outer(window_mean, window_mean)
        weight = conv.weight[:, 0, :].to("cpu", torch.float64)
        mean = weight @ window_mean
        if conv.bias is not None:
            mean = mean + conv.bias.to("cpu", torch.float64)
        var = ((weight @ covariance) * weight).sum(dim=1).clamp(min=0)
        norm = self.layers[0].layer_norm
        scale = norm.weight.to("cpu", torch.float64) / torch.sqrt(var + norm.eps)
        shift = norm.bias.to("cpu", torch.float64) - mean * scale
        return scale.to(self.device, torch.float32), shift.to(self.device, torch.float32)

    def _first_layer(self, samples: Tensor) -> Tensor:
        layer = self.layers[0]
        out = layer.conv(samples[None, None])
        if self.group_stats is None:  # LayerNorm over channels: local to each frame
            out = layer.layer_norm(out.transpose(-2, -1)).transpose(-2, -1)
        else:
            scale, shift = self.group_stats
            out = torch.addcmul(shift[:, None], out, scale[:, None])
        return layer.activation(out)

    def _compute(self, start: int, stop: int) -> Tensor:
        hop, field = self.geometry.hop, self.geometry.receptive_field
        pieces = []
        for first in range(start, stop, self.plan.cnn_piece_frames):
            last = min(first + self.plan.cnn_piece_frames, stop)
            hidden = self._first_layer(self.read(first * hop, (last - 1) * hop + field))
            for layer in self.layers[1:]:
                hidden = layer(hidden)
            pieces.append(hidden[0].transpose(0, 1))
        return torch.cat(pieces)

    def frames(self, start: int, stop: int) -> Tensor:
        """CNN output frames [start, stop) as [stop-start, channels]; reuses the previous call's overlap."""
        reused = None
        if self._cache is not None:
            cached_start, cached = self._cache
            if cached_start <= start < cached_start + cached.shape[0]:
                reused = cached[start - cached_start:stop - cached_start]
        if reused is None:
            result = self._compute(start, stop)
        elif start + reused.shape[0] >= stop:
            result = reused
        else:
            result = torch.cat([reused, self._compute(start + reused.shape[0], stop)])
        self._cache = (start, result)
        return result


def _encode_frames(encoder: AudioEncoder, features: Tensor, keep: slice, out: Tensor) -> None:
    """Projected frames [1, n, hidden] through the transformer; hidden states of the kept frames into
    out [kept, layers, width] (after each layer; a pre-norm model's last one after its final norm)."""
    module = encoder.module
    stable = module.config.do_stable_layer_norm
    hidden = features + module.encoder.pos_conv_embed(features)
    if not stable:
        hidden = module.encoder.layer_norm(hidden)
    last = len(module.encoder.layers) - 1
    for index, layer in enumerate(module.encoder.layers):
        result = layer(hidden, attention_mask=None)
        hidden = result[0] if isinstance(result, tuple) else result  # transformers 4 returns a tuple
        kept = module.encoder.layer_norm(hidden) if stable and index == last else hidden
        out[:, index] = kept[0, keep]


def encode_track(encoder: AudioEncoder, read: SampleReader, num_samples: int, num_frames: int,
                 write: FrameWriter, *, plan: ChunkPlan = DEFAULT_PLAN, device: torch.device | str = "cpu",
                 on_chunk: Callable[[], None] | None = None) -> None:
    """Encode one track of num_samples samples (16 kHz) into num_frames frames of stacked hidden states,
    handed to write(first_frame, [n, layers, width]) chunk by chunk in order."""
    device = torch.device(device)
    geometry = conv_geometry(encoder)
    num_cnn = geometry.output_frames(num_samples)
    if num_cnn < 1 or num_frames < 1:
        raise InputError(
            f"audio: {num_samples / ENCODER_SAMPLE_RATE:.3f} s is too short to encode: wav2vec2 needs at "
            f"least {geometry.receptive_field / ENCODER_SAMPLE_RATE * 1000:.0f} ms, and one video frame.")
    front = FrontEnd(encoder, read, num_samples, plan, device)
    projection = encoder.module.feature_projection
    with torch.inference_mode():
        for ctx_start, core_start, core_stop, ctx_stop in transformer_chunks(num_frames, plan):
            left, right, weight = interpolation_weights(ctx_start, ctx_stop, num_frames, num_cnn)
            base = int(left[0])
            cnn = front.frames(base, int(right[-1]) + 1)
            weight = weight.to(device)[:, None]
            frames = cnn[left - base] * (1 - weight) + cnn[right - base] * weight
            projected, _ = projection(frames[None])
            out = torch.empty(core_stop - core_start, encoder.feature_layers, encoder.feature_width,
                              device=device)
            _encode_frames(encoder, projected, slice(core_start - ctx_start, core_stop - ctx_start), out)
            write(core_start, out)
            if on_chunk is not None:
                on_chunk()


def interpolate_frames(features: Tensor, num_frames: int) -> Tensor:
    """[n, ...] frames linearly interpolated (align_corners) to [num_frames, ...], as the reference does."""
    flat = features.reshape(features.shape[0], -1).T[None]
    return F.interpolate(flat, size=num_frames, mode="linear", align_corners=True)[0].T.reshape(
        num_frames, *features.shape[1:])
