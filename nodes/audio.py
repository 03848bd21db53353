"""Audio nodes: wav2vec2 loader (MI_AUDIO_ENCODER) and embedding of 1-4 voices (MI_AUDIO)."""

from magicinfinite_core.audio import (
    MAX_SPEAKERS,
    SPEAKER_MODES,
    embed_speakers,
    load_audio_encoder,
)
from magicinfinite_core.mini.bundle import AUDIO_ENCODER_FILE, EMBEDDED_BUNDLE_DIR, EMBEDDED_BUNDLE_NAME

from . import host
from .host_audio import encoded_track, speaker_tracks
from .inputs import refuse_undeclared

_SPEAKERS = range(1, MAX_SPEAKERS + 1)
# Pickles are listed too, so that choosing one explains why it is refused.
_MODEL_SUFFIXES = (".safetensors", ".sft", ".bin", ".pt", ".pth", ".ckpt")


class MagicInfiniteAudioEncoderLoader:
    @classmethod
    def INPUT_TYPES(cls) -> dict:
        names = [n for n in host.list_models("audio_encoders") if n.lower().endswith(_MODEL_SUFFIXES)]
        return {
            "required": {
                "audio_encoder_name": ([EMBEDDED_BUNDLE_NAME, *names], {"tooltip": (
                    "wav2vec2 from models/audio_encoders: a single .safetensors (with or without the "
                    "'wav2vec2.' key prefix) or a Hugging Face folder's model.safetensors next to its "
                    "config.json. MultiTalk/InfiniteTalk need chinese-wav2vec2-base (12 x 768 features). "
                    f"{EMBEDDED_BUNDLE_NAME}: the small encoder shipped for the embedded model (no "
                    "download); it fits only that model.")}),
            },
        }

    RETURN_TYPES = ("MI_AUDIO_ENCODER",)
    RETURN_NAMES = ("audio_encoder",)
    OUTPUT_TOOLTIPS = ("The wav2vec2 encoder, for MagicInfinite Audio Embed.",)
    FUNCTION = "load"
    CATEGORY = "MagicInfinite/audio"
    DESCRIPTION = ("Loads a wav2vec2 audio encoder (safetensors only) onto the CPU; embedding moves it to "
                   "the GPU.")

    def load(self, audio_encoder_name: str):
        if audio_encoder_name == EMBEDDED_BUNDLE_NAME:
            return (load_audio_encoder(EMBEDDED_BUNDLE_DIR / AUDIO_ENCODER_FILE),)
        return (load_audio_encoder(host.model_path("audio_encoders", audio_encoder_name)),)


def _speaker_inputs() -> dict:
    inputs: dict = {
        "audio_encoder": ("MI_AUDIO_ENCODER", {"tooltip": (
            "wav2vec2 from MagicInfinite Audio Encoder Loader: features computed exactly as MultiTalk/"
            "InfiniteTalk compute them, in flat memory for any length. Connect this or encoder_output_*.")}),
    }
    for i in _SPEAKERS[1:]:
        inputs[f"audio_{i}"] = ("AUDIO", {"tooltip": (
            f"Voice of speaker {i} (drives region {i}); any sample rate and channel count.")})
    for i in _SPEAKERS:
        inputs[f"encoder_output_{i}"] = ("AUDIO_ENCODER_OUTPUT", {"tooltip": (
            f"Instead of audio_encoder: ComfyUI's AudioEncoderEncode output for audio_{i} (wav2vec2). "
            "Short clips only; it differs from the reference: its features are interpolated to the frame "
            "rate after the encoder instead of before, with no loudness normalisation.")})
    for i in _SPEAKERS:
        inputs[f"gain_{i}"] = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.05, "tooltip": (
            f"Loudness factor of speaker {i} after normalisation, for the features and the mix; 0 mutes.")})
    return inputs


class MagicInfiniteAudioEmbed:
    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "audio_1": ("AUDIO", {"tooltip": (
                    "Voice of speaker 1 (drives region 1); any sample rate and channel count, any length.")}),
                "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 120.0, "step": 0.01, "tooltip": (
                    "Frame rate of the video: one feature frame per video frame, floor(seconds x fps) "
                    "frames. MultiTalk/InfiniteTalk were trained at 25.")}),
                "mode": (list(SPEAKER_MODES), {"default": "para", "tooltip": (
                    "'para': all speakers from the start, at the same time. 'add': turns, speaker 2 starts "
                    "when speaker 1 ends, and so on; each is silent during the others' turns.")}),
                "normalize_loudness": ("BOOLEAN", {"default": True, "tooltip": (
                    "Bring each voice to -23 LUFS first, as the reference does (silence and clips under "
                    "0.4 s are left as they are).")}),
            },
            "optional": _speaker_inputs(),
        }

    RETURN_TYPES = ("MI_AUDIO", "AUDIO", "INT")
    RETURN_NAMES = ("audio_features", "audio", "num_frames")
    OUTPUT_TOOLTIPS = (
        "Per-frame audio features of every speaker, for the MagicInfinite sampler.",
        "All speakers mixed on the same timeline, to mux into the video.",
        "Video frames the audio covers at this fps.",
    )
    FUNCTION = "embed"
    CATEGORY = "MagicInfinite/audio"
    DESCRIPTION = ("Turns 1 to 4 voice recordings into per-frame wav2vec2 features aligned to the video "
                   "(any length: long tracks are encoded in chunks and kept on disk).")

    def embed(self, audio_1, fps: float, mode: str, normalize_loudness: bool, audio_encoder=None, **optional):
        refuse_undeclared("MagicInfinite Audio Embed", optional, _speaker_inputs(), MAX_SPEAKERS)
        audios = [audio_1, *(optional.get(f"audio_{i}") for i in _SPEAKERS[1:])]
        tracks = speaker_tracks(audios, [optional.get(f"gain_{i}", 1.0) for i in _SPEAKERS])
        features = embed_speakers(
            tracks,
            encoder=audio_encoder,
            encoder_outputs=[encoded_track(optional.get(f"encoder_output_{i}"), f"encoder_output_{i}")
                             for i in _SPEAKERS],
            fps=fps,
            mode=mode,
            normalize_loudness=normalize_loudness,
            device=_device(),
            progress=_progress(),
        )
        mix = {"waveform": features.waveform[None], "sample_rate": features.sample_rate}
        return features, mix, features.num_frames


def _device():
    return host.model_management.get_torch_device() if host.model_management is not None else "cpu"


def _progress():
    """(done, total) -> the host's progress bar, created once the total is known; honours cancel."""
    bar = []

    def advance(done: int, total: int) -> None:
        if not bar:
            bar.append(host.progress_callback(total))
        bar[0](done)

    return advance


NODE_CLASS_MAPPINGS = {
    "MagicInfiniteAudioEncoderLoader": MagicInfiniteAudioEncoderLoader,
    "MagicInfiniteAudioEmbed": MagicInfiniteAudioEmbed,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "MagicInfiniteAudioEncoderLoader": "MagicInfinite Audio Encoder Loader",
    "MagicInfiniteAudioEmbed": "MagicInfinite Audio Embed",
}
