"""ComfyUI's AUDIO and AUDIO_ENCODER_OUTPUT values read into the engine's plain tensors and rates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from magicinfinite_core.audio import EncodedTrack, SpeakerTrack, check_track
from magicinfinite_core.errors import InputError


def speaker_tracks(audios: Sequence[Mapping | None], gains: Sequence[float] = ()) -> list[SpeakerTrack]:
    """AUDIO values ({"waveform": [1, channels, samples], "sample_rate"}) of the inputs audio_1, audio_2,
    ... (None where not connected) -> one SpeakerTrack per speaker, in order, checked."""
    present = [i for i, audio in enumerate(audios) if audio is not None]
    if present != list(range(len(present))):
        missing = next(i for i in range(len(audios)) if i not in present)
        raise InputError(f"audio_{missing + 1} is not connected but audio_{present[-1] + 1} is: connect the "
                         "speakers in order (track i drives region i).")
    tracks = []
    for index in present:
        name, audio = f"audio_{index + 1}", audios[index]
        if not isinstance(audio, Mapping) or "waveform" not in audio or "sample_rate" not in audio:
            raise InputError(f"{name}: expected ComfyUI AUDIO (a dict with 'waveform' and 'sample_rate').")
        wave = audio["waveform"]
        if isinstance(wave, Tensor) and wave.dim() == 3:
            if wave.shape[0] != 1:
                raise InputError(f"{name}: holds a batch of {wave.shape[0]} recordings; connect one.")
            wave = wave[0]
        gain = float(gains[index]) if index < len(gains) else 1.0
        tracks.append(SpeakerTrack(wave, audio["sample_rate"], gain=gain, name=name))
    for track in tracks:
        check_track(track)
    return tracks


def encoded_track(output: Mapping | None, name: str) -> EncodedTrack | None:
    """One AUDIO_ENCODER_OUTPUT (AudioEncoderEncode on a wav2vec2) -> the hidden states after each layer.

    'encoded_audio_all_layers' holds the input to the first layer and then each layer's output, each
    [1, frames, width]; the input is skipped, as the reference's hidden_states[1:].
    """
    if output is None:
        return None
    if not isinstance(output, Mapping) or "encoded_audio_all_layers" not in output:
        raise InputError(f"{name}: expected ComfyUI's AUDIO_ENCODER_OUTPUT (a dict with "
                         "'encoded_audio_all_layers'); connect AudioEncoderEncode's output.")
    all_layers = output["encoded_audio_all_layers"]
    if not isinstance(all_layers, Sequence) or len(all_layers) < 2:
        raise InputError(f"{name}: 'encoded_audio_all_layers' should hold the input to the first layer and "
                         "the output of every layer; found fewer than two. Is this a wav2vec2 encoder?")
    first = all_layers[0]
    if not isinstance(first, Tensor) or first.dim() != 3 or first.shape[0] != 1:
        raise InputError(f"{name}: expected hidden states [1, frames, width], found "
                         f"{tuple(first.shape) if isinstance(first, Tensor) else type(first).__name__}.")
    samples = output.get("audio_samples")
    states = torch.stack([layer[0] for layer in all_layers[1:]], dim=1)
    return EncodedTrack(states, samples if isinstance(samples, int) else None)
