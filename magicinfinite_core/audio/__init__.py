"""Audio: voice recordings of 1 to 4 speakers -> per-frame wav2vec2 features (AudioFeatures).

Data flow: preprocess (mono 16 kHz, loudness) -> speakers (timeline, mix) -> chunked (the reference's
wav2vec2 computation in flat memory) -> features (compact store, 5-frame windows for the adapter).
"""

from .chunked import ChunkPlan
from .embed import EncodedTrack, embed_audio, embed_encoder_outputs, embed_speakers, frame_count
from .encoder import AudioEncoder, infer_wav2vec2_config, load_audio_encoder
from .features import WINDOW_FRAMES, AudioFeatures, check_adapter_compatible, window_indices
from .preprocess import ENCODER_SAMPLE_RATE, SpeakerTrack, check_track
from .speakers import MAX_SPEAKERS, SPEAKER_MODES, SpeakerMode

__all__ = [
    "ENCODER_SAMPLE_RATE",
    "MAX_SPEAKERS",
    "SPEAKER_MODES",
    "WINDOW_FRAMES",
    "AudioEncoder",
    "AudioFeatures",
    "ChunkPlan",
    "EncodedTrack",
    "SpeakerMode",
    "SpeakerTrack",
    "check_adapter_compatible",
    "check_track",
    "embed_audio",
    "embed_encoder_outputs",
    "embed_speakers",
    "frame_count",
    "infer_wav2vec2_config",
    "load_audio_encoder",
    "window_indices",
]
