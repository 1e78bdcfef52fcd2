"""Fabricated published weights and a loopback HTTP server that serves them, for offline tests.

The checkpoints have the real key names and shapes (built from pytorchvideo's ``create_x3d`` and
torchvision's ``r3d_18``) and random values; :class:`WeightsServer` serves files from a folder on
127.0.0.1, counts the requests per file and can cut a download half-way.
"""

from __future__ import annotations

import http.server
import threading
from collections import Counter
from pathlib import Path
from types import TracebackType

import torch
from pytorchvideo.models.x3d import create_x3d  # test-only reference (the "test" extra)
from torch import Tensor
from torchvision.models.video import r3d_18

from hdf_lightning.models import X3D_PRESETS


def _randomised(state: dict[str, Tensor], seed: int) -> dict[str, Tensor]:
    """The state dict with every floating tensor redrawn (so loaded values can be told apart)."""
    gen = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone()
        for k, v in state.items()
    }


def pytorchvideo_kinetics_state(size: str = "s", seed: int = 0) -> dict[str, Tensor]:
    """A pytorchvideo X3D state dict of ``size`` with 400 classes (X3D_<SIZE>.pyth's keys)."""
    preset = X3D_PRESETS[size]
    model = create_x3d(
        input_clip_length=preset.num_frames,
        input_crop_size=preset.crop_size,
        depth_factor=preset.depth_factor,
        model_num_class=400,
    )
    return _randomised(model.state_dict(), seed)


def write_x3d_checkpoint(path: Path, size: str = "s", seed: int = 0) -> dict[str, Tensor]:
    """Write ``{"model_state": state_dict, "epoch": 1}`` as pytorchvideo's hub files hold it."""
    state = pytorchvideo_kinetics_state(size, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state": state, "epoch": 1}, path)
    return state


def write_r3d18_state_dict(path: Path, seed: int = 0) -> dict[str, Tensor]:
    """Write a torchvision ``r3d_18`` (400 classes) state dict, as r3d_18-<hash>.pth holds it."""
    state = _randomised(r3d_18(weights=None).state_dict(), seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _CountingServer

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        self.server.requests[name] += 1
        file = self.server.folder / name
        if not file.is_file():
            self.send_error(404)
            return
        data = file.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        # a cut download: the announced length, half the bytes, then the connection closes
        self.wfile.write(data[: len(data) // 2] if self.server.cut else data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _CountingServer(http.server.ThreadingHTTPServer):
    def __init__(self, folder: Path, cut: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.folder = folder
        self.cut = cut
        self.requests: Counter[str] = Counter()


class WeightsServer:
    """Serve the files of ``folder`` at ``http://127.0.0.1:<port>/weights/<name>`` in a thread.

    Attributes:
        url: the mirror URL (set it as ``HDF_WEIGHTS_MIRROR``).
        requests: GET requests so far, by file name.
    """

    def __init__(self, folder: Path, *, cut: bool = False) -> None:
        self._server = _CountingServer(folder, cut)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}/weights"

    @property
    def requests(self) -> Counter[str]:
        return self._server.requests

    def __enter__(self) -> WeightsServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
