"""`python -m magicinfinite_core demo`: an MP4 with floor(duration x fps) frames and an audio track in the
current folder, the user's own picture and recording, a plain statement of what the model is, and clear
errors for bad options."""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import math
import socket
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from magicinfinite_core.__main__ import main
from magicinfinite_core.mini import demo, demo_command
from magicinfinite_core.mini.bundle import EMBEDDED_BUNDLE_DIR, INFO_FILE, BundleInfo, load_bundle
from magicinfinite_core.mini.demo import describe_model
from magicinfinite_core.mini.demo_command import DEFAULT_OUT
from magicinfinite_core.sampling import Mp4Sink
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


def stop_once_at(monkeypatch, label: str, done: int) -> list[tuple[str, int]]:
    """Ctrl-C once, when progress bar `label` reaches `done`; returns the (label, done) updates seen."""
    seen: list[tuple[str, int]] = []
    update, interrupts = demo.TextProgressBar.update, [KeyboardInterrupt()]

    def stop_once(bar, done_now, detail=""):
        seen.append((bar.label.strip(), done_now))
        if seen[-1] == (label, done) and interrupts:
            raise interrupts.pop()
        update(bar, done_now, detail)

    monkeypatch.setattr(demo.TextProgressBar, "update", stop_once)
    return seen


def test_an_interrupted_demo_continues_and_another_seed_leaves_it_where_it_is(tmp_path, monkeypatch, capsys):
    out = tmp_path / "resumed.mp4"
    seed_0, seed_1 = tmp_path / "resumed.mp4.parts" / "seed-0", tmp_path / "resumed.mp4.parts" / "seed-1"
    seen = stop_once_at(monkeypatch, "sample", INFO.steps + 2)  # in the second window of the first run
    argv = ["demo", "--seconds", str(TWO_WINDOWS_S), "--out", str(out)]
    assert main([*argv, "--live"]) == 130
    err = capsys.readouterr().err
    assert err.endswith(f"\nStopped. Window 1 is kept in {seed_0}: run the same command again to continue "
                        "from window 2.\n") and "Traceback" not in err and not out.exists()
    playlist = tmp_path / "resumed.m3u8"
    assert playlist.read_text().splitlines()[-1] == "resumed.hls/000000.ts"  # window 1, still open

    assert main([*argv, "--seed", "1"]) == 0  # another seed: a render of its own, from window 1
    err = capsys.readouterr().err
    assert (f"The unfinished render of seed 0 stays in {seed_0}: run with --seed 0 to continue it, or delete "
            "that folder.\n") in err and "Continuing" not in err
    assert sorted(p.name for p in seed_0.iterdir()) == ["000000.seg", "resume.safetensors"]
    assert not seed_1.exists()

    seen.clear()
    assert main([*argv, "--live"]) == 0
    assert f"Continuing the unfinished render in {seed_0}: from window 2 of 2.\n" in capsys.readouterr().err
    second_window = list(range(INFO.steps + 1, 2 * INFO.steps + 1))
    assert [done for label, done in seen if label == "sample"] == second_window  # window 1 was kept
    assert probe(out)[0] == TWO_WINDOWS_FRAMES
    lines = playlist.read_text().splitlines()  # the resumed run continued the live playlist
    segments = [line for line in lines if not line.startswith("#")]
    assert segments == ["resumed.hls/000000.ts", "resumed.hls/000001.ts"] and lines[-1] == "#EXT-X-ENDLIST"
    assert not (tmp_path / "resumed.mp4.parts").exists()  # no seed has an unfinished render left


def test_the_time_left_is_paced_from_the_first_step_not_from_loading():
    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

    clock, log = Clock(), io.StringIO()
    bar = demo.TextProgressBar("sample ", 20, log, clock=clock)
    clock.now = 100.0  # loading and the first step's one-time costs
    bar.update(1)
    assert "left" not in log.getvalue()  # one point is no pace yet
    clock.now = 102.0
    bar.update(3)  # 1 s a step since the first update
    assert log.getvalue().splitlines()[-1].endswith("(102 s, about 17 s left)")


def test_a_full_disk_is_one_line_naming_out_and_a_failing_cleanup_does_not_hide_it(tmp_path, monkeypatch,
                                                                                  capsys):
    out = tmp_path / "full.mp4"

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    def disk_full(sink, window_index, frames):
        monkeypatch.setattr(Path, "unlink", read_only)  # the sink's cleanup fails as well
        raise OSError(errno.ENOSPC, "No space left on device", str(sink.parts / "000000.tmp"))

    monkeypatch.setattr(Mp4Sink, "write", disk_full)
    assert main(["demo", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"error: --out {out}: writing the video failed: No space left on device "
        f"({tmp_path / 'full.mp4.parts' / 'seed-0' / '000000.tmp'}). Free disk space or choose another "
        "--out; finished windows are kept, so the same command continues them.")
    assert "Traceback" not in err and "Read-only" not in err


def test_any_other_failure_is_one_line_naming_out(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("something unexpected")

    monkeypatch.setattr(demo, "sample_video", broken)
    assert main(["demo", "--out", str(tmp_path / "x.mp4")]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (f"error: the demo failed while making --out {tmp_path / 'x.mp4'}: "
                                    "RuntimeError: something unexpected. Finished windows are kept, so the "
                                    "same command continues them.")
    assert "Traceback" not in err


def test_a_read_only_output_folder_is_reported_before_anything_loads(tmp_path, monkeypatch, capsys):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(demo_command.tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr(demo, "load_bundle", lambda: pytest.fail("the model was loaded"))
    assert main(["demo", "--out", str(tmp_path / "x.mp4")]) == 2
    assert capsys.readouterr().err == (f"\nerror: --out: cannot write into the folder {str(tmp_path)!r} "
                                       "(Read-only file system); choose an --out in a folder you can write "
                                       "to.\n")


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
    (["--out", "notes.txt/video.mp4"], "--out: the folder 'notes.txt' does not exist (or is not a folder)"),
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
    out, parts = tmp_path / "old.mp4", tmp_path / "old.mp4.parts" / "seed-0"
    argv = ["demo", "--seconds", str(TWO_WINDOWS_S), "--out", str(out)]
    seen = stop_once_at(monkeypatch, "sample", INFO.steps + 2)
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



def test_an_unfinished_render_of_an_earlier_version_in_the_parts_folder_itself_is_named(tmp_path, monkeypatch,
                                                                                      capsys):
    out, old = tmp_path / "x.mp4", tmp_path / "x.mp4.parts"  # where an earlier demo kept its one render
    old.mkdir()
    save_file({}, str(old / STATE_FILE), metadata={"state": json.dumps({"format": "1", "next_window": 1})})

    def stop(*args, **kwargs):
        raise RuntimeError("stop before sampling")

    monkeypatch.setattr(demo, "sample_video", stop)
    assert main(["demo", "--out", str(out)]) == 1
    assert (f"warning: {old}: an unfinished render saved by another version of MagicInfinite (resume format "
            f"1; this version reads {FORMAT_VERSION}) cannot be continued: this render starts over in "
            f"{old / 'seed-0'}; delete the other files of {old} to free their disk space.\n"
            ) in capsys.readouterr().err
