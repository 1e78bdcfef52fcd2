"""``hdf app``: a local web page to look at what a trained model sees in a video.

The page (Gradio, the optional extra ``pip install hdf-lightning[app]``) takes an uploaded video,
or one picked from a folder named at start, runs the same :class:`~hdf_lightning.inference.
predict.Predictor` as ``hdf predict`` and shows:

* the video with the tracked face box drawn on every frame (H.264 MP4);
* the class probabilities over time (:func:`~hdf_lightning.inference.timeline.timeline_svg`:
  hovering a window shows its probabilities; windows without a face are grey);
* the top expression and its share of the video, and the per-window table;
* downloads of the JSONL, CSV and timeline PNG that ``hdf predict`` writes;
* the checkpoint's classes, frames and preprocessing.

A bad upload (not a video, damaged, no face, too short, over the size limit) shows a message on
the page and leaves the app working. Each browser session works in a folder of its own, removed
when its tab closes; everything the app wrote (uploads included) is removed when it stops. The
server binds to 127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from hdf_lightning.data.video import VIDEO_EXTENSIONS, is_video
from hdf_lightning.errors import command_error
from hdf_lightning.inference.checkpoint import LoadedModel
from hdf_lightning.inference.options import PredictOptions
from hdf_lightning.inference.predict import Predictor
from hdf_lightning.inference.results import VideoResult
from hdf_lightning.inference.sources import InputError, open_source
from hdf_lightning.inference.timeline import timeline_svg
from hdf_lightning.inference.windows import ShortVideoError
from hdf_lightning.inference.writers import video_summary, write_outputs

__all__ = ["Analysis", "AppSettings", "analyse", "annotate_video", "app_main", "build_app"]

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class AppSettings:
    """Options of the page itself (``hdf app`` flags of the same names).

    Attributes:
        host: address the server binds to (127.0.0.1: this machine only).
        port: its port (0: any free port).
        folder: a folder whose videos the page offers in a list, besides uploads.
        max_upload_mb: uploads larger than this are refused with a message.
    """

    host: str = "127.0.0.1"
    port: int = 7860
    folder: Path | None = None
    max_upload_mb: float = 200.0


@dataclass
class Analysis:
    """What the page shows for one video: the result and the files made from it."""

    result: VideoResult
    headline: str
    svg: str
    rows: list[list[Any]]
    downloads: list[str]
    video: str | None
    columns: list[str] = field(default_factory=list)


class PageError(Exception):
    """A video the page cannot analyse; the message is shown on the page."""


def analyse(
    path: Path,
    predictor: Predictor,
    workdir: Path,
    *,
    max_upload_mb: float = float("inf"),
    progress: Progress | None = None,
) -> Analysis:
    """Run ``hdf predict``'s predictor on one video and prepare what the page shows.

    Args:
        path: the video file (or frame folder).
        predictor: the :class:`Predictor` of the checkpoint.
        workdir: folder for this video's outputs (created).
        max_upload_mb: refuse larger files.
        progress: called with (fraction done, what is being done).

    Raises:
        PageError: not a video, damaged, no face, too short, too large (the message names it).
    """
    report = progress or (lambda fraction, text: None)
    if path.is_file() and path.stat().st_size > max_upload_mb * 1e6:
        raise PageError(
            f"{path.name} is {path.stat().st_size / 1e6:.1f} MB, over the limit of "
            f"{max_upload_mb:g} MB (hdf app --max_upload_mb)"
        )
    if path.is_file() and not is_video(path):
        expected = ", ".join(sorted(VIDEO_EXTENSIONS))
        raise PageError(f"{path.name} is not a video file: expected one of {expected}")
    report(0.05, "reading the video")
    try:
        source = open_source(path, fps=predictor.options.fps)
        report(0.15, "finding the face and classifying the windows")
        result = predictor.predict(source)
    except (InputError, ShortVideoError) as err:
        raise PageError(str(err)) from err
    report(0.75, "writing the results")
    names = predictor.model.preprocessing.class_names
    outputs = write_outputs(
        result, workdir, path.stem or "video", predictor.model, predictor.options
    )
    mean = result.mean_probs()
    if mean is None:
        raise PageError(f"{path.name}: no face found in any window")
    report(0.85, "drawing the face box on the video")
    video = annotate_video(result, workdir / f"{path.stem or 'video'}.faces.mp4")
    return Analysis(
        result=result,
        headline=_headline(result, names),
        svg=timeline_svg(
            [w.start_s for w in result.windows],
            [w.end_s for w in result.windows],
            result.window_probs(len(names)),
            names,
            duration=result.duration,
        ),
        rows=_rows(result, names),
        columns=["window", "start (s)", "end (s)", "face", "top class", "top prob", *names],
        downloads=[outputs[k] for k in ("jsonl", "csv", "timeline") if k in outputs],
        video=str(video) if video is not None else None,
    )


def _headline(result: VideoResult, names: tuple[str, ...]) -> str:
    """The top expression (mean over windows with a face) and its share of those windows."""
    summary = video_summary(result, names)
    faces = result.face_windows()
    tops = [names[int(w.probs.argmax())] for w in faces if w.probs is not None]
    share = tops.count(summary["top_class"]) / len(tops) if tops else 0.0
    lines = [
        f"**{summary['top_class']}** (mean probability {summary['top_prob']:.2f}); the top class "
        f"of {100 * share:.0f} % of the {len(faces)} windows with a face "
        f"({len(result.windows)} windows, {result.duration:.1f} s)"
    ]
    if result.damaged and result.video_length is not None:
        lines.append(f"warning: {result.video_length.describe()}")
    return "\n\n".join(lines)


def _rows(result: VideoResult, names: tuple[str, ...]) -> list[list[Any]]:
    rows = []
    for w in result.windows:
        probs = (
            [round(float(p), 4) for p in w.probs] if w.probs is not None else [None] * len(names)
        )
        top = int(w.probs.argmax()) if w.probs is not None else None
        rows.append(
            [
                w.window.index,
                round(w.start_s, 2),
                round(w.end_s, 2),
                w.probs is not None,
                names[top] if top is not None else "",
                probs[top] if top is not None else None,
                *probs,
            ]
        )
    return rows


def annotate_video(result: VideoResult, out: Path) -> Path | None:
    """Write the video with its tracked face box on every frame as H.264 MP4 (browsers play it).

    Frames are scaled to at most 640 pixels wide. Returns None for a frame folder or a result
    without a face track.
    """
    import av

    from hdf_lightning.data.opencv import opencv
    from hdf_lightning.data.video import iter_video_frames

    track = result.track
    if result.kind != "video" or track is None:
        return None
    cv2 = opencv()
    scale = min(1.0, 640 / result.width)
    width, height = round(result.width * scale / 2) * 2, round(result.height * scale / 2) * 2
    thickness = max(1, width // 200)
    out.parent.mkdir(parents=True, exist_ok=True)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(result.path)) as source, av.open(str(out), mode="w") as target:
        stream = cast(av.VideoStream, target.add_stream(codec, rate=round(result.fps) or 25))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, frame in enumerate(iter_video_frames(source, result.path)):
            rgb = np.ascontiguousarray(frame.to_ndarray(width=width, height=height, format="rgb24"))
            if i < track.video_frames and track.found[i]:
                x0, y0, x1, y1 = (round(float(v) * scale) for v in track.boxes[i])
                cv2.rectangle(rgb, (x0, y0), (x1, y1), (0, 220, 0), thickness)
            target.mux(stream.encode(av.VideoFrame.from_ndarray(rgb.astype(np.uint8), "rgb24")))
        target.mux(stream.encode(None))
    return out


def _model_card(model: LoadedModel, options: PredictOptions) -> str:
    pre = model.preprocessing
    rows = [
        ("checkpoint", str(model.path)),
        ("network", str(model.net_config.get("class_path"))),
        ("classes", ", ".join(pre.class_names)),
        ("frames per window", f"{pre.num_frames} ({pre.sampler} sampling)"),
        ("input", f"{pre.crop_size}x{pre.crop_size} from {pre.load_size}-px face crops"),
        ("face crop", f"detector {options.detector}, margin {options.margin}"),
        ("windows", f"{options.window} every {options.stride}"),
    ]
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="model-card">{cells}</table>'


def build_app(predictor: Predictor, settings: AppSettings, workdir: Path) -> Any:
    """The Gradio page of a predictor (see the module docstring).

    Args:
        predictor: the :class:`Predictor` of a checkpoint.
        settings: the page's options.
        workdir: where the sessions' folders are made (removed by the caller when it stops).

    Returns:
        A ``gradio.Blocks``; ``.launch()`` serves it.
    """
    run, cleanup = _handlers(predictor, settings, _Sessions(workdir))
    return _page(predictor, _folder_videos(settings.folder), run, cleanup)


def _folder_videos(folder: Path | None) -> list[str]:
    """The videos under ``folder`` (any depth), sorted; none without a folder."""
    if folder is None:
        return []
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and is_video(p))


def _handlers(
    predictor: Predictor, settings: AppSettings, sessions: _Sessions
) -> tuple[Callable[..., tuple[Any, ...]], Callable[..., None]]:
    """The page's handlers: ``run`` (the Analyse button: the page's outputs for the uploaded or
    picked video) and ``cleanup`` (a tab closed: its session's files go)."""
    import gradio as gr

    def run(
        upload: str | None,
        picked: str | None,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to report progress)
    ) -> tuple[Any, ...]:
        chosen = upload or picked
        if not chosen:
            return _failure("Upload a video or pick one from the list first.")
        path = Path(chosen)
        if upload:
            sessions.uploaded(request, path)
        try:
            analysis = analyse(
                path,
                predictor,
                sessions.next_run(request),
                max_upload_mb=settings.max_upload_mb,
                progress=lambda f, text: progress(f, desc=text),
            )
        except PageError as err:
            return _failure(str(err))
        except Exception as err:  # a bug: keep the page working and say so
            log.exception("hdf app: analysing %s failed", path)
            return _failure(f"{path.name}: unexpected error ({type(err).__name__}: {err})")
        return _shown(path, analysis)

    def cleanup(request: gr.Request) -> None:
        sessions.cleanup(request)

    # Gradio hands a handler the browser session through a parameter whose resolved type hint is
    # gr.Request; this module's annotations are strings naming the locally imported gradio, which
    # typing cannot resolve, so the handlers get the objects themselves.
    run.__annotations__.update(request=gr.Request, progress=gr.Progress)
    cleanup.__annotations__.update(request=gr.Request)
    return run, cleanup


def _page(
    predictor: Predictor,
    folder_videos: list[str],
    run: Callable[..., tuple[Any, ...]],
    cleanup: Callable[..., None],
) -> Any:
    """The page's layout (model card, inputs, outputs), its button wired to ``run`` and its
    tabs' closing to ``cleanup``."""
    import gradio as gr

    with gr.Blocks(title="hdf app", delete_cache=(600, 3600)) as page:
        gr.Markdown("# What the model sees\nUpload a face video (or pick one) and press Analyse.")
        gr.HTML(_model_card(predictor.model, predictor.options), elem_id="model-card")
        with gr.Row():
            upload = gr.File(label="video", elem_id="upload", type="filepath")
            picked = gr.Dropdown(
                choices=folder_videos,
                label="or a video of the folder",
                visible=bool(folder_videos),
                elem_id="picked",
            )
        button = gr.Button("Analyse", variant="primary", elem_id="analyse")
        status = gr.Markdown(visible=False, elem_id="status")
        headline = gr.Markdown(elem_id="headline")
        video = gr.Video(label="tracked face", elem_id="video", interactive=False, height=360)
        plot = gr.HTML(elem_id="timeline")
        table = gr.Dataframe(label="windows", elem_id="windows", interactive=False)
        files = gr.File(label="downloads", file_count="multiple", elem_id="downloads")
        button.click(
            run,
            [upload, picked],
            [status, headline, video, plot, table, files],
            api_visibility="private",
        )
        page.unload(cleanup)
    return page


class _Sessions:
    """The browser sessions of a page: each works in a folder of its own under
    ``workdir/sessions``; its uploads (Gradio's copies) and outputs go when its tab closes."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.uploads: dict[Path, set[Path]] = {}

    def folder(self, request: Any) -> Path:
        name = str(getattr(request, "session_hash", None) or "session")
        return self.workdir / "sessions" / "".join(c for c in name if c.isalnum() or c in "-_")

    def uploaded(self, request: Any, path: Path) -> None:
        self.uploads.setdefault(self.folder(request), set()).add(path)

    def next_run(self, request: Any) -> Path:
        """A fresh output folder of the session (``run0``, ``run1``, ...)."""
        folder = self.folder(request)
        return folder / f"run{len(list(folder.glob('run*')))}"

    def cleanup(self, request: Any) -> None:
        """The tab closed: remove its outputs and its uploads."""
        folder = self.folder(request)
        shutil.rmtree(folder, ignore_errors=True)
        for path in self.uploads.pop(folder, set()):
            path.unlink(missing_ok=True)


def _shown(path: Path, analysis: Analysis) -> tuple[Any, ...]:
    """The page's outputs for an analysed video (status, headline, video, plot, table, files)."""
    import gradio as gr

    return (
        gr.update(value=f"Done: {path.name}", visible=True),
        analysis.headline,
        analysis.video,
        analysis.svg,
        gr.update(value=analysis.rows, headers=analysis.columns),
        analysis.downloads,
    )


def _failure(message: str) -> tuple[Any, ...]:
    """The page's outputs for a video that could not be analysed: the message only."""
    import gradio as gr

    return (
        gr.update(value=f"**Could not analyse:** {message}", visible=True),
        "",
        None,
        "",
        gr.update(value=[]),
        [],
    )


def _parser() -> Any:
    from hdf_lightning.inference.options import add_options, command_parser
    from hdf_lightning.inference.predict_cli import add_predict_arguments

    parser = command_parser(
        "hdf app",
        "A local web page for a trained model: upload a video, see the tracked face, the "
        "expression probabilities over time and the per-window table (Gradio; "
        "pip install hdf-lightning[app]).",
        checkpoint=True,
    )
    add_options(parser, AppSettings)
    add_predict_arguments(parser)
    return parser


@contextlib.contextmanager
def serve(predictor: Predictor, settings: AppSettings) -> Iterator[tuple[Any, str]]:
    """Serve the page in a background thread: yields ``(page, url)``; when the block ends the
    server stops and everything it wrote (sessions, uploads) is removed."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    workdir = Path(tempfile.mkdtemp(prefix="hdf-app-"))
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "uploads")  # uploads go where we clean up
    page = None
    try:
        page = build_app(predictor, settings, workdir)
        _, url, _ = page.queue().launch(
            server_name=settings.host,
            server_port=settings.port or None,
            share=False,
            allowed_paths=[str(workdir)],
            prevent_thread_lock=True,
            quiet=True,
        )
        yield page, str(url)
    finally:
        if page is not None:
            page.close()
        if previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous
        shutil.rmtree(workdir, ignore_errors=True)


def app_main(argv: list[str]) -> int:
    """``hdf app --ckpt_path CKPT [--host] [--port] [--folder DIR] [predict options]``."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    cfg = _parser().parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        return command_error("app", "the page needs Gradio: pip install 'hdf-lightning[app]'")
    from hdf_lightning.inference.checkpoint import CheckpointError
    from hdf_lightning.inference.options import FIT_CONFIG, options_from
    from hdf_lightning.inference.predict import build_predictor

    try:
        options = options_from(PredictOptions, cfg)
        predictor = build_predictor(cfg.ckpt_path, cfg[FIT_CONFIG], options, cfg.threads)
    except (CheckpointError, ValueError, FileNotFoundError) as err:
        return command_error("app", err)
    settings = options_from(AppSettings, cfg)
    if settings.folder is not None and not settings.folder.is_dir():
        return command_error("app", f"no such folder: {settings.folder} (--folder)")
    with serve(predictor, settings) as (_, url):
        print(f"hdf app: serving {predictor.model.path} at {url} (Ctrl-C stops it)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("hdf app: stopped; its uploads and results were removed")
    return 0
