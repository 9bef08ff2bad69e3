"""Screenshots of the latest sweep in a running MLflow UI (retakes docs/img/mlflow-ui*.png).

    python docs/img/screenshot.py http://127.0.0.1:5055 docs/img [--experiment normcoef]

Finds the sweep's parent run (tag ``normcoef.summary``) and its best run through the REST API,
then shoots five pages with headless Chromium, as a reviewer first opens them: the review
view a sweep links to (runs table, test metrics as columns) with the sweep expanded, the parent
run's overview (its description holds the table) and ``ablation_table.md``, the best run's
charts and its error figure. Chromium is driven over
``--remote-debugging-pipe`` (standard library only) because a plain ``chromium --screenshot``
cannot click the parent run's expander. See docs/reviewing.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

CLOSE_ASSISTANT = '[data-component-id="mlflow.assistant.chat_panel.close"]'
EXPAND_RUN = '[data-component-id$="runnamecellrenderer.tsx_46"]'
# The link a sweep prints (normcoef.tracking.review_url), and the run pages as a reviewer
# reaches them from it, in the model-training layout.
TRAINING_VIEW = "workflowType=machine_learning"
REVIEW_VIEW = f"viewStateShareKey=normcoef&{TRAINING_VIEW}"


class Browser:
    """One headless Chromium page driven through the DevTools protocol on fds 3 and 4."""

    def __init__(self, width: int, height: int) -> None:
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()

        def pipes_as_fds_3_and_4() -> None:
            # Copies first: a pipe may already sit on fd 3 or 4 (and close on exec there).
            copies = os.dup(to_browser), os.dup(from_browser)
            os.dup2(copies[0], 3)
            os.dup2(copies[1], 4)

        chromium = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        self._process = subprocess.Popen(
            [chromium, *flags, "--remote-debugging-pipe", "about:blank"],
            preexec_fn=pipes_as_fds_3_and_4,
            close_fds=False,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._ids = 0
        self._buffer = b""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False, session=True)  # fmt: skip

    def send(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._ids += 1
        message: dict[str, Any] = {"id": self._ids, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._ids:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", session=True, expression=expression)
        return result["result"].get("value")

    def wait_for(self, selector: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(f"document.querySelector({json.dumps(selector)}) !== null"):
                return True
            time.sleep(0.5)
        return False

    def click_all(self, selector: str) -> int:
        return self.evaluate(
            f"(() => {{ const found = document.querySelectorAll({json.dumps(selector)});"
            " found.forEach((element) => element.click()); return found.length; })()"
        )

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=20)


def search_runs(base: str, experiment: str, filter_string: str) -> list[dict[str, Any]]:
    def call(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base + path, data, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    found = call(f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}")
    body = {"experiment_ids": [found["experiment"]["experiment_id"]], "filter": filter_string}
    return call(
        "/api/2.0/mlflow/runs/search", {**body, "order_by": ["attributes.start_time DESC"]}
    )["runs"]


def review_pages(base: str, experiment: str) -> list[tuple[str, str, list[str]]]:
    """(file name, URL, selectors to click) of the pages docs/reviewing.md shows."""
    summaries = search_runs(base, experiment, "tags.`normcoef.summary` = 'true'")
    if not summaries:
        raise SystemExit(f"error: no sweep parent run in experiment {experiment!r} at {base}")
    parent = summaries[0]
    tags = {tag["key"]: tag["value"] for tag in parent["data"].get("tags", [])}
    runs = f"{base}/#/experiments/{parent['info']['experiment_id']}/runs"
    pages = [
        ("mlflow-ui.png", f"{runs}?{REVIEW_VIEW}", [EXPAND_RUN]),
        ("mlflow-ui-parent.png", f"{runs}/{parent['info']['run_id']}?{TRAINING_VIEW}", []),
        ("mlflow-ui-table.png", f"{runs}/{parent['info']['run_id']}/artifacts/ablation_table.md"
         f"?{TRAINING_VIEW}", []),
    ]  # fmt: skip
    if "normcoef.best_run" in tags:
        best = f"{runs}/{tags['normcoef.best_run']}"
        pages.append(("mlflow-ui-run-charts.png", f"{best}/model-metrics?{TRAINING_VIEW}", []))
        figure = f"{best}/artifacts/figures/error_by_distance.png?{TRAINING_VIEW}"
        pages.append(("mlflow-ui-figures.png", figure, []))
    return pages


def shoot(browser: Browser, url: str, clicks: list[str], output: Path, timeout: float) -> None:
    browser.send("Page.navigate", session=True, url=url)
    time.sleep(3)  # the single-page app renders its panels
    # MLflow 3.17 opens its Assistant panel on a first visit: a reviewer closes it once.
    if browser.wait_for(CLOSE_ASSISTANT, 10):
        browser.click_all(CLOSE_ASSISTANT)
    for selector in clicks:
        if not browser.wait_for(selector, timeout):
            raise SystemExit(f"error: no element {selector!r} on {url}")
        browser.click_all(selector)
    time.sleep(3)  # what the page loads after
    shot = browser.send("Page.captureScreenshot", session=True, format="png")
    output.write_bytes(base64.b64decode(shot["data"]))
    print(f"{output} from {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the UI, e.g. http://127.0.0.1:5055")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--experiment", default="normcoef")
    parser.add_argument("--size", default="1400x900", help="window WIDTHxHEIGHT")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per element")
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split("x"))
    pages = review_pages(args.base.rstrip("/"), args.experiment)

    browser = Browser(width, height)
    try:
        for name, url, clicks in pages:
            shoot(browser, url, clicks, args.out_dir / name, args.timeout)
    finally:
        browser.close()


if __name__ == "__main__":
    main()
