"""The README's picture of ``hdf app``: the page in headless Chromium after analysing a video.

The video is the benchmark's 640×360 face video (``benchmarks/bench_predict.py``: the synthetic
generator's faces changing expression every few seconds while drifting over a background); the
checkpoint is the one given (the demo's by default).

    make demo && python scripts/app_screenshot.py --out docs/images/hdf_app.png
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def main(argv: list[str] | None = None) -> int:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from bench_predict import benchmark_video
    from hdf_lightning.inference.app import AppSettings, serve
    from hdf_lightning.inference.options import PredictOptions
    from hdf_lightning.inference.predict import build_predictor
    from hdf_lightning.run_folder import RunLayout

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", default=str(RunLayout(REPO / "runs/demo").best))
    parser.add_argument("--out", type=Path, default=REPO / "docs/images/hdf_app.png")
    parser.add_argument("--seconds", type=float, default=14.0)
    args = parser.parse_args(argv)
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        raise SystemExit("needs Debian's chromium and chromium-driver (scripts/install_browser.sh)")
    predictor = build_predictor(args.ckpt_path, None, PredictOptions())
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1100,1900")
    with tempfile.TemporaryDirectory() as tmp:
        video = benchmark_video(Path(tmp), seconds=args.seconds)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            with serve(predictor, AppSettings(port=0)) as (_, url):
                driver.get(url)
                wait = WebDriverWait(driver, 300)
                wait.until(lambda d: d.find_element(By.ID, "analyse"))
                driver.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(
                    str(video)
                )
                wait.until(
                    lambda d: video.name in d.find_element(By.ID, "upload").text.replace("\n", "")
                )
                driver.find_element(By.ID, "analyse").click()
                wait.until(lambda d: d.find_element(By.ID, "headline").text)
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline svg"))
                args.out.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
