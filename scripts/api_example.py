r"""Run a MagicInfinite API workflow on a running ComfyUI with your own picture and voice; download the video.

    python scripts/api_example.py workflows/api/magicinfinite_one_speaker_distilled_4step.json \
        --image me.png --audio hello.wav --out hello.mp4

Steps (docs/api.md explains each): upload the files (POST /upload/image, which takes audio and video too),
put their names into the workflow's Load Image / Load Audio / Load Video / Load Image (as Mask) nodes,
queue it (POST /prompt), follow its progress (the /ws websocket when `websocket-client` is installed,
else by polling /history; with --live DIR by mirroring the render's HLS playlist and segments into DIR as
each window finishes), then download every video it saved (GET /history/<id>, GET /view).
Only the Python standard library is needed.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import posixpath
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

try:
    import websocket  # websocket-client, optional: live progress
except ImportError:
    websocket = None

# The loader nodes whose file widget takes an uploaded file: node type -> input name.
FILE_INPUTS = {"LoadImage": "image", "LoadImageMask": "image", "LoadAudio": "audio", "LoadVideo": "file"}
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov")
SAMPLER = "MagicInfiniteSampler"
SAVE = "MagicInfiniteSaveVideo"
PLAYLIST_SUFFIX = ".m3u8"
ENDLIST = "#EXT-X-ENDLIST"


class ComfyUIError(RuntimeError):
    """ComfyUI refused the workflow or failed to run it."""


class ComfyUI:
    """A running ComfyUI, reached over HTTP at `url` (e.g. http://127.0.0.1:8188)."""

    def __init__(self, url: str, client_id: str | None = None):
        self.url = url.rstrip("/")
        self.client_id = client_id or str(uuid.uuid4())

    def _request(self, path: str, data: bytes | None = None, headers: dict | None = None, *,
                 missing_ok: bool = False) -> bytes | None:
        request = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.read()
        except urllib.error.HTTPError as err:
            if missing_ok and err.code == 404:
                return None
            raise ComfyUIError(f"{path}: HTTP {err.code}: {err.read().decode('utf-8', 'replace')}") from err

    def get_json(self, path: str):
        return json.loads(self._request(path))

    def post_json(self, path: str, body: dict):
        data = json.dumps(body).encode()
        return json.loads(self._request(path, data, {"Content-Type": "application/json"}))

    def upload(self, path: Path, *, subfolder: str = "") -> str:
        """Put a file into ComfyUI's input folder; returns the name to give a loader node."""
        boundary = uuid.uuid4().hex
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        # Without "overwrite", ComfyUI keeps a file of the same name and picks a new name if they differ.
        fields = [("type", "input"), ("subfolder", subfolder)]
        body = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields
        )
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{path.name}"\r\n'
                 f"Content-Type: {kind}\r\n\r\n").encode()
        body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        reply = json.loads(self._request("/upload/image", body,
                                         {"Content-Type": f"multipart/form-data; boundary={boundary}"}))
        return f"{reply['subfolder']}/{reply['name']}" if reply.get("subfolder") else reply["name"]

    def queue(self, prompt: dict) -> str:
        """Queue an API-format workflow; returns its prompt id."""
        try:
            reply = self.post_json("/prompt", {"prompt": prompt, "client_id": self.client_id})
        except ComfyUIError as err:
            raise ComfyUIError(f"ComfyUI refused the workflow: {err}") from err
        return reply["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        """The finished run (outputs and status), or None while it is queued or running."""
        return self.get_json(f"/history/{prompt_id}").get(prompt_id)

    def view(self, filename: str, subfolder: str = "", kind: str = "output") -> bytes | None:
        """A file of ComfyUI's output (input, temp) folder through GET /view; None while it does not exist."""
        query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": kind})
        return self._request(f"/view?{query}", missing_ok=True)

    def download(self, saved: dict, destination: Path) -> Path:
        """Fetch one saved file ({"filename", "subfolder", "type"} from the history) to `destination`."""
        query = urllib.parse.urlencode({k: saved.get(k, "") for k in ("filename", "subfolder", "type")})
        destination.write_bytes(self._request(f"/view?{query}"))
        return destination


def _connect(comfy: ComfyUI):
    """The /ws connection for this client (opened before queueing, so no message is missed), or None."""
    if websocket is None:
        return None
    address = urllib.parse.urlparse(comfy.url)
    scheme = "wss" if address.scheme == "https" else "ws"
    return websocket.create_connection(f"{scheme}://{address.netloc}/ws?clientId={comfy.client_id}")


def _follow(connection, prompt_id: str, report: Callable[[str], None]) -> None:
    """Report the progress messages of `prompt_id` until it is done (the history then tells how it ended)."""
    while True:
        message = connection.recv()
        if not isinstance(message, str):  # binary: a preview image
            continue
        event = json.loads(message)
        data = event.get("data", {})
        if data.get("prompt_id") != prompt_id:
            continue
        if event["type"] == "progress":
            report(f"node {data['node']}: {data['value']}/{data['max']}")
        elif event["type"] == "executing" and data.get("node") is not None:
            report(f"running node {data['node']}")
        elif event["type"] in ("execution_success", "execution_error", "execution_interrupted") or (
                event["type"] == "executing" and data.get("node") is None):
            return


def wait(comfy: ComfyUI, prompt_id: str, *, connection=None, report: Callable[[str], None] = print,
         poll_s: float = 1.0, timeout_s: float = 24 * 3600) -> dict:
    """Wait for a queued workflow, following `connection` (from `_connect`) if there is one, else polling
    /history; returns its history entry, raises ComfyUIError if it failed."""
    if connection is not None:
        _follow(connection, prompt_id, report)
    start = last_report = time.monotonic()
    while (entry := comfy.history(prompt_id)) is None:
        now = time.monotonic()
        if now - start > timeout_s:
            raise ComfyUIError(f"{prompt_id} did not finish within {timeout_s:.0f} s")
        if now - last_report >= 15:
            report(f"running ({now - start:.0f} s)")
            last_report = now
        time.sleep(poll_s)
    status = entry.get("status", {})
    if status.get("status_str") == "error":
        errors = [data for kind, data in status.get("messages", []) if kind == "execution_error"]
        detail = errors[0] if errors else {}
        raise ComfyUIError(f"node {detail.get('node_id')} ({detail.get('node_type')}) failed: "
                           f"{detail.get('exception_message', 'see the ComfyUI console').strip()}")
    return entry


def saved_videos(entry: dict) -> list[dict]:
    """The videos a finished run saved, as listed in its history."""
    found = []
    for output in entry.get("outputs", {}).values():
        for key in ("images", "videos", "gifs"):
            found += [item for item in output.get(key, []) if item["filename"].endswith(VIDEO_SUFFIXES)]
    return found


def read_playlist(text: str) -> tuple[list[str], bool]:
    """The segment URIs of an HLS media playlist, in order, and whether it is ended (#EXT-X-ENDLIST)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [line for line in lines if not line.startswith("#")], ENDLIST in lines


def follow_live(comfy: ComfyUI, prompt_id: str, prefix: str, out_dir: Path, *,
                report: Callable[[str], None] = print, poll_s: float = 1.0,
                timeout_s: float = 24 * 3600) -> Path:
    """Mirror the live playlist `<prefix>.m3u8` of a running render (sampler output 'live') into `out_dir`:
    each segment is downloaded once, as soon as the playlist lists it, then the local copy of the playlist
    is rewritten, so it is playable (ffplay, VLC) while the render runs. Returns the local playlist once the
    server's is ended; raises ComfyUIError if the run fails or finishes without ending it."""
    folder, _, name = prefix.rpartition("/")
    name += PLAYLIST_SUFFIX
    local = out_dir / name
    out_dir.mkdir(parents=True, exist_ok=True)
    fetched, start = 0, time.monotonic()
    report(f"following {prefix}{PLAYLIST_SUFFIX} into {local}")
    while True:
        finished = comfy.history(prompt_id)  # read before the playlist: a finished run's playlist is final
        text = comfy.view(name, folder)
        uris, ended = read_playlist(text.decode()) if text is not None else ([], False)
        for uri in uris[fetched:]:
            segment_folder, _, segment = posixpath.join(folder, uri).rpartition("/")
            data = comfy.view(segment, segment_folder)
            if data is None:
                raise ComfyUIError(f"{uri}: listed in {name} but not found on the server")
            (out_dir / uri).parent.mkdir(parents=True, exist_ok=True)
            (out_dir / uri).write_bytes(data)
            report(f"segment {fetched + 1}: {uri}")
            fetched += 1
        if text is not None:
            partial = local.with_name(local.name + ".tmp")
            partial.write_bytes(text)
            partial.replace(local)
        if ended:
            return local
        if finished is not None:
            wait(comfy, prompt_id, report=report)  # raises with the node's error if the run failed
            raise ComfyUIError(f"the run finished without ending {prefix}{PLAYLIST_SUFFIX}: is the sampler's "
                               "output 'live'?")
        if time.monotonic() - start > timeout_s:
            raise ComfyUIError(f"{prompt_id} did not finish within {timeout_s:.0f} s")
        time.sleep(poll_s)


def make_live(prompt: dict, client_id: str) -> str:
    """Set the workflow's sampler to output 'live' under a prefix of its own (the client id appended, so the
    playlist followed cannot be an earlier render's); returns that prefix. A save node of the sampler's
    frames then copies its streamed file instead (with a file output the frames are only the last one)."""
    samplers = [node_id for node_id, node in prompt.items() if node["class_type"] == SAMPLER]
    if len(samplers) != 1:
        raise ComfyUIError(f"--live needs a workflow with one {SAMPLER} node, this one has {len(samplers)}")
    for node in prompt.values():
        if node["class_type"] == SAVE and node["inputs"].get("images") == [samplers[0], 0]:
            node["inputs"]["video_file"] = [samplers[0], 3]
    inputs = prompt[samplers[0]]["inputs"]
    inputs["output"] = "live"
    inputs["filename_prefix"] = f"{inputs.get('filename_prefix', 'MagicInfinite')}_{client_id[:8]}"
    return inputs["filename_prefix"]


def fill_inputs(prompt: dict, uploads: dict[str, list[str]]) -> dict:
    """The workflow with the uploaded names in its loader nodes, each kind in node-id order."""
    prompt = json.loads(json.dumps(prompt))
    order = sorted(prompt, key=lambda node_id: (len(node_id), node_id))  # "2" before "10"
    for node_type, names in uploads.items():
        nodes = [prompt[node_id] for node_id in order if prompt[node_id]["class_type"] == node_type]
        if len(names) > len(nodes):
            raise ComfyUIError(f"{len(names)} files for {node_type}, but the workflow has {len(nodes)} "
                               f"{node_type} nodes")
        for node, name in zip(nodes, names, strict=False):
            node["inputs"][FILE_INPUTS[node_type]] = name
    return prompt


def apply_settings(prompt: dict, settings: list[str]) -> dict:
    """NODE_ID.INPUT=VALUE overrides (VALUE read as JSON when it parses, else as text)."""
    for setting in settings:
        target, _, raw = setting.partition("=")
        node_id, _, name = target.partition(".")
        if node_id not in prompt or not name:
            raise ComfyUIError(f"--set {setting!r}: expected NODE_ID.INPUT=VALUE with a node id of the "
                               "workflow")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        prompt[node_id]["inputs"][name] = value
    return prompt


def run(url: str, workflow: Path, files: dict[str, list[Path]], out: Path, settings: list[str] = (),
        report: Callable[[str], None] = print, live_dir: Path | None = None) -> list[Path]:
    """Upload, queue, wait (mirroring the live playlist into `live_dir` if given) and download; returns the
    downloaded videos."""
    comfy = ComfyUI(url)
    uploads = {node_type: [comfy.upload(path) for path in paths] for node_type, paths in files.items()}
    prompt = apply_settings(fill_inputs(json.loads(workflow.read_text(encoding="utf-8")), uploads), settings)
    prefix = make_live(prompt, comfy.client_id) if live_dir is not None else None
    connection = _connect(comfy) if prefix is None else None
    try:
        prompt_id = comfy.queue(prompt)
        report(f"queued {prompt_id}")
        if prefix is not None:
            report(f"live: {follow_live(comfy, prompt_id, prefix, live_dir, report=report)}")
        entry = wait(comfy, prompt_id, connection=connection, report=report)
    finally:
        if connection is not None:
            connection.close()
    videos = saved_videos(entry)
    if not videos:
        raise ComfyUIError("the run finished but saved no video (is a Save Video node in the workflow?)")
    paths = []
    for index, saved in enumerate(videos):
        target = out if len(videos) == 1 else out.with_name(f"{out.stem}_{index + 1}{out.suffix}")
        paths.append(comfy.download(saved, target))
        report(f"saved {saved['subfolder']}/{saved['filename']} -> {target}")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workflow", type=Path, help="an API-format workflow (workflows/api/*.json)")
    parser.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI's address")
    for option, nodes in (("--image", "Load Image"), ("--audio", "Load Audio"),
                          ("--mask", "Load Image (as Mask)"), ("--video", "Load Video")):
        parser.add_argument(option, type=Path, nargs="+", default=[], help=f"files for the {nodes} nodes, "
                            "in node-id order")
    parser.add_argument("--set", action="append", default=[], metavar="NODE_ID.INPUT=VALUE",
                        help="change a widget, e.g. --set 13.seed=7 (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("magicinfinite.mp4"),
                        help="where to write the video")
    parser.add_argument("--live", type=Path, default=None, metavar="DIR", help=(
        "follow the render live: set the sampler's output to 'live' and mirror its HLS playlist and "
        "segments into DIR as each window finishes (play DIR/<prefix>.m3u8 while it renders)"))
    args = parser.parse_args()
    files = {"LoadImage": args.image, "LoadAudio": args.audio, "LoadImageMask": args.mask,
             "LoadVideo": args.video}
    try:
        run(args.server, args.workflow, {k: v for k, v in files.items() if v}, args.out, args.set,
            live_dir=args.live)
    except (ComfyUIError, OSError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
