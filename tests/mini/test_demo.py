"""`python -m magicinfinite_core demo`: an MP4 with floor(duration x fps) frames and an audio track in the
current folder, the user's own picture and recording, a plain statement of what the model is, and clear
errors for bad options."""

from __future__ import annotations

import dataclasses
import json
import math
import socket
import wave

import av
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from magicinfinite_core.__main__ import main
from magicinfinite_core.mini import demo
from magicinfinite_core.mini.bundle import EMBEDDED_BUNDLE_DIR, INFO_FILE, BundleInfo, load_bundle
from magicinfinite_core.mini.demo import DEFAULT_OUT, describe_model
from magicinfinite_core.sampling.resume import FORMAT_VERSION, STATE_FILE

# The demo follows the shipped bundle's bundle.json (frame rate, window, steps), so do these tests.
INFO = BundleInfo.from_json((EMBEDDED_BUNDLE_DIR / INFO_FILE).read_text(encoding="utf-8"))
# Half a frame past the first window plus 4 frames: exactly two windows, away from a frame boundary.
TWO_WINDOWS_S = (INFO.window_frames + 4.5) / INFO.fps
TWO_WINDOWS_FRAMES = INFO.window_frames + 4


def probe(path) -> tuple[int, float, int]:
    """(decoded video frames, frame rate, audio streams) of a video file."""
    with av.open(str(path)) as container:
        rate = float(container.streams.video[0].average_rate)
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:
        return frames, rate, len(container.streams.audio)


def write_png(path, width: int, height: int) -> None:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (200, 80, 40)
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        for packet in (*stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")), *stream.encode()):
            container.mux(packet)


def write_wav(path, seconds: float, rate: int = 44100, channels: int = 2) -> None:
    t = np.arange(round(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    pcm = (np.repeat(tone[:, None], channels, axis=1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm.tobytes())


def no_network(*args, **kwargs):
    raise AssertionError("the demo tried to open a network connection")


def test_demo_writes_a_video_with_audio_into_the_current_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(socket.socket, "connect", no_network)  # nothing may be downloaded
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert main(["demo", "--seconds", str(TWO_WINDOWS_S), "--seed", "5"]) == 0
    frames, fps, audio_streams = probe(tmp_path / DEFAULT_OUT)
    assert frames == math.floor(TWO_WINDOWS_S * INFO.fps) == TWO_WINDOWS_FRAMES
    assert fps == INFO.fps and audio_streams == 1
    log = capsys.readouterr().err
    assert "small stand-in model" in log
    assert f"] {2 * INFO.steps}/{2 * INFO.steps} window 2/2" in log  # every step of both windows counted
    last = log.strip().splitlines()[-1]
    assert last.startswith(f"Wrote {tmp_path / DEFAULT_OUT}: {frames} frames at {INFO.fps:g} fps, "
                           f"{frames / INFO.fps:.2f} s, with audio")
    assert not list(tmp_path.glob("*.parts")) and not list(tmp_path.glob("*.partial"))


def test_an_interrupted_demo_continues_from_the_last_finished_window(tmp_path, monkeypatch, capsys):
    out = tmp_path / "resumed.mp4"
    seen: list[tuple[str, int]] = []
    update = demo.TextProgressBar.update

    interrupts = [KeyboardInterrupt()]  # one Ctrl-C, in the second window of the first run

    def stop_in_window_2_once(bar, done, detail=""):
        seen.append((bar.label.strip(), done))
        if seen[-1] == ("sample", INFO.steps + 2) and interrupts:
            raise interrupts.pop()
        update(bar, done, detail)

    monkeypatch.setattr(demo.TextProgressBar, "update", stop_in_window_2_once)
    argv = ["demo", "--seconds", str(TWO_WINDOWS_S), "--out", str(out), "--live"]
    assert main(argv) == 130
    assert "Run the same command again to continue" in capsys.readouterr().err and not out.exists()
    playlist = tmp_path / "resumed.m3u8"
    assert playlist.read_text().splitlines()[-1] == "resumed.hls/000000.ts"  # window 1, still open
    seen.clear()
    assert main(argv) == 0
    second_window = list(range(INFO.steps + 1, 2 * INFO.steps + 1))
    assert [done for label, done in seen if label == "sample"] == second_window  # window 1 was kept
    assert probe(out)[0] == TWO_WINDOWS_FRAMES
    lines = playlist.read_text().splitlines()  # the resumed run continued the live playlist
    segments = [line for line in lines if not line.startswith("#")]
    assert segments == ["resumed.hls/000000.ts", "resumed.hls/000001.ts"] and lines[-1] == "#EXT-X-ENDLIST"


def test_demo_takes_the_users_picture_recording_and_prompt_schedule(tmp_path, capsys):
    write_png(tmp_path / "me.png", 40, 30)
    write_wav(tmp_path / "me.wav", 0.9)
    out = tmp_path / "mine.mp4"
    code = main(["demo", "--image", str(tmp_path / "me.png"), "--audio", str(tmp_path / "me.wav"),
                 "--seconds", "0.5", "--prompt", "0: a smiling person / 0.2: a surprised person",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    frames, fps, audio_streams = probe(out)
    assert frames == math.floor(0.5 * INFO.fps) and fps == INFO.fps and audio_streams == 1
    assert "first 0.5 of 0.90 s" in capsys.readouterr().err


def test_the_model_is_described_as_a_stand_in_trained_or_not():
    bundle = load_bundle()
    untrained = dataclasses.replace(bundle, info=dataclasses.replace(bundle.info, trained=False))
    trained = dataclasses.replace(bundle, info=dataclasses.replace(bundle.info, trained=True))
    assert "small stand-in" in describe_model(untrained) and "UNTRAINED" in describe_model(untrained)
    assert "small stand-in" in describe_model(trained) and "UNTRAINED" not in describe_model(trained)
    assert "cartoon" in describe_model(trained) and "world only" in describe_model(trained)
    assert "Wan2.1-I2V-14B" in describe_model(trained)


@pytest.mark.parametrize("argv, expected", [
    (["--seconds", "0"], "--seconds: expected a positive number of seconds"),
    (["--seconds", "ten"], "--seconds: expected a number of seconds"),
    (["--seconds", "nan"], "--seconds: expected a positive number"),
    (["--seed", "-1"], "--seed: expected a whole number from 0"),
    (["--unknown"], "unrecognized arguments: --unknown"),
])
def test_bad_option_values_stop_the_command_line_with_a_clear_message(argv, expected, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["demo", *argv])
    assert stop.value.code == 2
    assert expected.replace("--seconds: ", "argument --seconds: ").replace("--seed: ", "argument --seed: ") \
        in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    (["--out", "video.avi"], "--out: the demo writes an MP4 video; give a name ending in .mp4"),
    (["--out", "no/such/folder/video.mp4"], "--out: the folder 'no/such/folder' does not exist"),
    (["--image", "missing.png"], "--image: 'missing.png' is not a file"),
    (["--image", "notes.txt"], "--image: 'notes.txt' cannot be read as a picture"),
    (["--audio", "missing.wav"], "--audio: 'missing.wav' is not a file"),
    (["--audio", "picture.png"], "--audio: 'picture.png' holds no audio stream"),
])
def test_bad_files_are_reported_before_any_work(argv, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a picture")
    write_png(tmp_path / "picture.png", 16, 16)
    assert main(["demo", *argv]) == 2
    err = capsys.readouterr().err
    assert f"error: {expected}" in err and "Model:" not in err  # nothing loaded or sampled
    assert not list(tmp_path.glob("*.mp4"))


def test_an_unfinished_render_of_another_format_starts_over_and_the_demo_says_why(tmp_path, monkeypatch,
                                                                                   capsys):
    out, parts = tmp_path / "old.mp4", tmp_path / "old.mp4.parts"
    argv = ["demo", "--seconds", str(TWO_WINDOWS_S), "--out", str(out)]
    update, seen, interrupts = demo.TextProgressBar.update, [], [KeyboardInterrupt()]

    def stop_in_window_2_once(bar, done, detail=""):
        seen.append((bar.label.strip(), done))
        if seen[-1] == ("sample", INFO.steps + 2) and interrupts:
            raise interrupts.pop()
        update(bar, done, detail)

    monkeypatch.setattr(demo.TextProgressBar, "update", stop_in_window_2_once)
    assert main(argv) == 130
    capsys.readouterr()
    # As the previous resume format saved it: the same inputs, digests made another way.
    with safe_open(str(parts / STATE_FILE), framework="pt") as handle:
        meta, motion = json.loads(handle.metadata()["state"]), handle.get_tensor("motion_frames")
    save_file({"motion_frames": motion}, str(parts / STATE_FILE),
              metadata={"state": json.dumps(meta | {"format": "1"})})
    seen.clear()
    assert main(argv) == 0
    assert [done for label, done in seen if label == "sample"] == list(range(1, 2 * INFO.steps + 1))
    assert (f"warning: {parts}: an unfinished render saved by another version of MagicInfinite (resume "
            f"format 1; this version reads {FORMAT_VERSION}) cannot be continued: this render starts over "
            "from the first window and replaces it.\n") in capsys.readouterr().err
    assert probe(out)[0] == TWO_WINDOWS_FRAMES
