"""Sinks of a sequence parallel render: rank 0 writes the video, the other processes only compute.

Every process runs the same window loop, so they must all start from the same window: rank 0 reads the
resume state beside its output and broadcasts it (the others may be on machines without that folder).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from magicinfinite_core.sampling.resume import ResumeState, ResumeStore
from magicinfinite_core.sampling.sinks import FrameSink, VideoResult


class SharedResume:
    """Rank 0's resume store (None on the others); `load` is collective: every process gets rank 0's state."""

    def __init__(self, store: ResumeStore | None, group: dist.ProcessGroup | None = None):
        self.store, self.group = store, group

    def load(self, params_hash: str) -> ResumeState | None:
        box = [None if self.store is None else self.store.load(params_hash)]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def save(self, state: ResumeState) -> None:
        if self.store is not None:
            self.store.save(state)


class WriterSink:
    """Rank 0: `sink` itself, with its resume state shared with the other processes."""

    def __init__(self, sink: FrameSink, group: dist.ProcessGroup | None = None):
        self.sink = sink
        store = sink.resume_store
        self.resume_store = SharedResume(store, group)

    def start(self, windows_done: int) -> None:
        self.sink.start(windows_done)

    def write(self, window_index: int, frames: torch.Tensor) -> None:
        self.sink.write(window_index, frames)

    def finish(self) -> VideoResult:
        return self.sink.finish()

    def abort(self) -> None:
        self.sink.abort()


class ComputeOnlySink:
    """Ranks above 0: frames are dropped (rank 0 has the same ones); the resume state comes from rank 0."""

    def __init__(self, *, num_frames: int, fps: float, sample_rate: int,
                 group: dist.ProcessGroup | None = None):
        self.num_frames, self.fps, self.sample_rate = num_frames, fps, sample_rate
        self.resume_store = SharedResume(None, group)

    def start(self, windows_done: int) -> None:
        pass

    def write(self, window_index: int, frames: torch.Tensor) -> None:
        pass

    def finish(self) -> VideoResult:
        return VideoResult(torch.zeros(0), self.fps, self.num_frames, torch.zeros(1, 0), self.sample_rate)

    def abort(self) -> None:
        pass
