"""``hdf app``: what the page shows for a video, its messages for bad uploads, and the page itself
in a real browser (Debian's Chromium through Selenium; nothing downloads a browser)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from cli_utils import REPO, tiny_checkpoint
from face_videos import write_face_video
from hdf_lightning.inference.app import AppSettings, PageError, analyse, serve
from hdf_lightning.inference.options import PredictOptions
from hdf_lightning.inference.predict import Predictor, build_predictor

pytest.importorskip("gradio", reason="hdf app needs the [app] extra (Gradio)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    checkpoint = tiny_checkpoint(tmp_path_factory.mktemp("fit"))
    return build_predictor(str(checkpoint), None, PredictOptions(window="1s", stride="0.5s"))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    text = folder / "notes.txt"
    text.write_text("this is not a video\n")
    return {
        "video": write_face_video(folder / "face.mp4", 60, label=1, seed=3),
        "short": write_face_video(folder / "short.mp4", 10, label=1, seed=3),
        "empty": write_face_video(folder / "empty.mp4", 40, face_frames=0),
        "text": text,
    }


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_analyse_gives_the_page_its_headline_plot_table_video_and_files(
    predictor: Predictor, media: dict[str, Path], tmp_path: Path
) -> None:
    steps: list[str] = []
    analysis = analyse(
        media["video"], predictor, tmp_path, progress=lambda f, text: steps.append(text)
    )
    result = analysis.result
    names = predictor.model.preprocessing.class_names
    top = names[int(result.mean_probs().argmax())]  # type: ignore[union-attr]
    assert analysis.headline.startswith(f"**{top}**") and "windows with a face" in analysis.headline
    assert analysis.svg.count('class="window"') == len(result.windows) == len(analysis.rows)
    assert analysis.svg.count("<title>") == len(result.windows)
    assert [Path(p).suffix for p in analysis.downloads] == [".jsonl", ".csv", ".png"]
    assert all(Path(p).is_file() for p in analysis.downloads)
    assert analysis.video is not None and _frames(Path(analysis.video)) == result.video_frames
    assert steps[0] == "reading the video" and len(steps) >= 3


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("text", "is not a video file"),
        ("short", "shorter than one window"),
        ("empty", "no face found in any window"),
    ],
)
def test_bad_uploads_are_a_message(
    kind: str, expected: str, predictor: Predictor, media: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(PageError, match=expected) as caught:
        analyse(media[kind], predictor, tmp_path)
    assert media[kind].name in str(caught.value)


def test_an_upload_over_the_limit_is_refused_before_it_is_read(
    predictor: Predictor, media: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(PageError, match=r"over the limit of 0\.001 MB"):
        analyse(media["video"], predictor, tmp_path, max_upload_mb=0.001)


# ----------------------------------------------------------------------------------- browser
@pytest.fixture
def browser() -> Iterator[object]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("no Chromium here: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,2000")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: object, condition: object, timeout: float = 120.0) -> object:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)  # type: ignore[arg-type]


def _click(driver: object, by: str, selector: str, timeout: float = 60.0) -> None:
    """Click an element once nothing covers it (an upload's progress overlay can, briefly)."""
    from selenium.common.exceptions import ElementClickInterceptedException

    def clicked(d: object) -> bool:
        try:
            d.find_element(by, selector).click()  # type: ignore[attr-defined]
        except ElementClickInterceptedException:
            return False
        return True

    _wait(driver, clicked, timeout)


def _upload_and_analyse(driver: object, path: Path) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.CSS_SELECTOR, "#upload input[type=file]")  # type: ignore[attr-defined]
    field.send_keys(str(path))
    # the file's name shows once it is uploaded (the page wraps it over lines)
    _wait(driver, lambda d: path.name in d.find_element(By.ID, "upload").text.replace("\n", ""))
    _click(driver, By.ID, "analyse")


@pytest.mark.slow
def test_the_page_in_a_browser_shows_the_result_and_cleans_up(
    predictor: Predictor, media: dict[str, Path], browser: object
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    with serve(predictor, AppSettings(port=0)) as (_, url):
        workdir = Path(os.environ["GRADIO_TEMP_DIR"]).parent
        driver.get(url)  # type: ignore[attr-defined]
        card = _wait(driver, lambda d: d.find_element(By.ID, "model-card").text)
        names = predictor.model.preprocessing.class_names
        assert all(name in str(card) for name in names)
        _upload_and_analyse(driver, media["video"])
        headline = _wait(driver, lambda d: d.find_element(By.ID, "headline").text)
        expected = analyse(media["video"], predictor, workdir / "check")
        top = expected.headline.split("**")[1]
        assert str(headline).startswith(top) and "windows with a face" in str(headline)
        windows = driver.find_elements(By.CSS_SELECTOR, "#timeline svg rect.window")  # type: ignore[attr-defined]
        assert len(windows) == len(expected.result.windows)
        tip = windows[0].find_element(By.TAG_NAME, "title").get_attribute("textContent")
        assert tip.startswith("window 0, 0.00-") and top in tip
        rows = driver.find_elements(By.CSS_SELECTOR, "#windows [role=row]")  # type: ignore[attr-defined]
        assert len(rows) == 1 + len(expected.result.windows)  # the header and one per window
        assert driver.find_element(By.CSS_SELECTOR, "#video video").get_attribute("src")  # type: ignore[attr-defined]
        downloads = driver.find_element(By.ID, "downloads").text.replace("\n", "")  # type: ignore[attr-defined]
        assert "face.windows.jsonl" in downloads and "face.timeline.png" in downloads
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "app_result.png"))  # type: ignore[attr-defined]
        sessions = workdir / "sessions"
        assert any(sessions.iterdir())
        uploads = [p for p in (workdir / "uploads").rglob("*") if p.is_file()]
        assert any(p.name == "face.mp4" for p in uploads)
        driver.get("about:blank")  # the tab leaves the page: its session is cleaned up
        deadline = time.monotonic() + 30
        while any(sessions.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(sessions.iterdir())
        assert not any(p.name == "face.mp4" for p in (workdir / "uploads").rglob("*"))
    assert not workdir.exists()  # the app stopped: nothing it wrote is left


@pytest.mark.slow
def test_a_text_upload_shows_a_message_and_the_page_keeps_working(
    predictor: Predictor, media: dict[str, Path], browser: object
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    with serve(predictor, AppSettings(port=0)) as (_, url):
        driver.get(url)  # type: ignore[attr-defined]
        _wait(driver, lambda d: d.find_element(By.ID, "analyse"))
        _upload_and_analyse(driver, media["text"])
        message = _wait(driver, lambda d: d.find_element(By.ID, "status").text)
        assert "Could not analyse" in str(message) and "notes.txt is not a video file" in str(
            message
        )
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "app_message.png"))  # type: ignore[attr-defined]
        _click(driver, By.CSS_SELECTOR, "#upload button[aria-label='Clear']")
        _upload_and_analyse(driver, media["video"])
        headline = _wait(driver, lambda d: d.find_element(By.ID, "headline").text)
        assert "windows with a face" in str(headline)


def test_the_timeline_svg_shades_windows_without_a_face_and_titles_every_window() -> None:
    import numpy as np

    from hdf_lightning.inference.timeline import timeline_svg

    probs = np.array([[0.7, 0.2, 0.1], [np.nan] * 3, [0.1, 0.1, 0.8]])
    svg = timeline_svg(
        [0.0, 1.0, 2.0], [2.0, 3.0, 4.0], probs, ["happy", "sad", "fear"], duration=4
    )
    assert svg.count('class="window"') == 3 and svg.count('class="no-face"') == 1
    assert "<title>window 1, 1.00-3.00 s: no face</title>" in svg
    assert "<title>window 2, 2.00-4.00 s: fear 0.80, happy 0.10, sad 0.10</title>" in svg
    assert 'data-face="false"' in svg and svg.count('data-face="true"') == 2


def test_the_page_offers_the_videos_of_a_folder(
    predictor: Predictor, media: dict[str, Path], tmp_path: Path
) -> None:
    from hdf_lightning.inference.app import build_app

    page = build_app(predictor, AppSettings(folder=media["video"].parent), tmp_path)
    picked = next(b for b in page.blocks.values() if getattr(b, "elem_id", None) == "picked")
    offered = [Path(str(value)).name for _, value in picked.choices]
    assert sorted(offered) == ["empty.mp4", "face.mp4", "short.mp4"]  # notes.txt is no video
    assert picked.visible


def test_each_handler_is_given_its_browser_session(
    predictor: Predictor, media: dict[str, Path], tmp_path: Path
) -> None:
    """Gradio passes the session only to a parameter whose resolved type hint is gr.Request;
    without it every tab would share one folder, and closing one would clear the others'."""
    import inspect
    import typing

    import gradio as gr

    from hdf_lightning.inference.app import build_app

    page = build_app(predictor, AppSettings(), tmp_path)
    handlers = [f.fn for f in page.fns.values() if f.fn is not None]
    with_session = [fn for fn in handlers if "request" in inspect.signature(fn).parameters]
    assert len(with_session) == 2  # Analyse, and the tab's unload
    for fn in with_session:
        assert typing.get_type_hints(fn)["request"] is gr.Request


def test_print_config_writes_a_yaml_that_config_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hdf_lightning.inference.app import _parser

    flags = ["--ckpt_path=best.ckpt", "--port=8080", "--margin=0.3", f"--folder={tmp_path}"]
    with pytest.raises(SystemExit) as done:
        _parser().parse_args([*flags, "--print_config"])
    assert done.value.code == 0
    config = tmp_path / "app.yaml"
    config.write_text(capsys.readouterr().out)
    from_yaml = _parser().parse_args(["--config", str(config)])
    from_flags = _parser().parse_args(flags)
    assert (from_yaml.port, from_yaml.margin, from_yaml.folder) == (8080, 0.3, tmp_path)
    del from_yaml["config"], from_flags["config"]  # the YAML file itself
    assert from_yaml == from_flags
