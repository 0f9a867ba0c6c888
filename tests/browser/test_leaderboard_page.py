"""The HTML leaderboard in a real browser: headless Chromium sorts it, shows markers and tips.

Needs Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`, or
`BROWSER=1 bash scripts/bootstrap.sh`) and selenium (the test extra). Without them the tests
skip saying so, except under CI (CI=true), where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dragonfly_eval.cli import main

REPO = Path(__file__).resolve().parents[2]
BASELINE = next((REPO / "leaderboards" / "mini_baseline").glob("*_results.json"))
LIKELIHOOD_TASK = "dragonfly_mini_mc_ppl"
LIKELIHOOD_COLUMN = "Mini multiple choice (likelihood)"
LOSS_TASK = "dragonfly_mini_vqa_nll"
LOSS_COLUMN = "Mini answer loss (nats x100)"
_BASE = json.loads(BASELINE.read_text(encoding="utf-8"))
_STAMP = _BASE["date"]  # lmms-eval's YYYYMMDD_HHMMSS, shown as "YYYY-MM-DD HH:MM:SS +08:00"
BASE_DATE = f"{_STAMP[:4]}-{_STAMP[4:6]}-{_STAMP[6:8]} {_STAMP[9:11]}:{_STAMP[11:13]}:{_STAMP[13:]}"
# two variants above the baseline's likelihood score; a loss below the baseline's and one above
BASE_LIKELIHOOD = _BASE["results"][LIKELIHOOD_TASK]["acc,none"]
BASE_LOSS = _BASE["results"][LOSS_TASK]["answer_nll,none"]
STRONG = BASE_LIKELIHOOD + 2 * (1 - BASE_LIKELIHOOD) / 3
PARTIAL = BASE_LIKELIHOOD + (1 - BASE_LIKELIHOOD) / 3
HOSTILE = ["<img src=x onerror=alert(1)>", '"><script>document.title="owned"</script>']
INSTALL = (
    "needs Debian's chromium and chromium-driver and the selenium package: "
    "`apt-get install -y chromium chromium-driver` and `pip install selenium` "
    "(or `BROWSER=1 bash scripts/bootstrap.sh`)"
)


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    for program in ("chromium", "chromedriver"):
        if shutil.which(program) is None:
            return f"{program} is not on PATH"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """A headless Chromium driven through chromedriver (both from Debian, same version)."""
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: {INSTALL}")
        pytest.skip(f"{missing}: {INSTALL}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def _variant(
    root: Path, model: str, likelihood: float, loss: float = 6.6, effective: int | None = None
) -> None:
    """A copy of the mini baseline run under another model name, with its own scores."""
    payload = json.loads(BASELINE.read_text(encoding="utf-8"))
    args = payload["config"]["model_args"]
    payload["config"]["model_args"] = args.replace(
        "pretrained=dragonfly-tiny", f"pretrained={model}"
    )
    payload["results"][LIKELIHOOD_TASK]["acc,none"] = likelihood
    payload["results"][LOSS_TASK]["answer_nll,none"] = loss
    if effective is not None:
        payload["n-samples"][LIKELIHOOD_TASK]["effective"] = effective
    folder = root / model.replace("/", "__")
    folder.mkdir(parents=True)
    (folder / BASELINE.name).write_text(json.dumps(payload), encoding="utf-8")


def _write_page(root: Path, *paths: Path, suites: str = "mini") -> Path:
    """The page `dragonfly-eval leaderboard --suite SUITES --html` writes for `paths`."""
    out = root / "board.html"
    assert main(["leaderboard", *map(str, paths), "--suite", suites, "--html", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """The page for the baseline and two variants that score better on likelihood, one with a
    lower answer loss than the baseline's, one with a higher."""
    root = tmp_path_factory.mktemp("runs")
    _variant(root / "runs", "org/strong", STRONG, loss=BASE_LOSS * 1.5)
    _variant(root / "runs", "org/partial", PARTIAL, loss=BASE_LOSS * 0.6, effective=5)
    return _write_page(root, BASELINE.parent, root / "runs")


def _models(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#headline-mini tbody tr")
    return [row.find_element(By.TAG_NAME, "th").text.splitlines()[0] for row in rows]


def _header(driver, title: str):
    from selenium.webdriver.common.by import By

    for th in driver.find_elements(By.CSS_SELECTOR, "#headline-mini thead th"):
        if th.text.rstrip(" ▲▼") == title:
            return th
    raise AssertionError(f"no column {title!r}")


def test_clicking_a_header_sorts_the_rows(browser, page, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    assert browser.title == "dragonfly-eval leaderboard: mini"
    assert _models(browser) == ["dragonfly-tiny", "org/partial", "org/strong"]  # name order
    column = _header(browser, LIKELIHOOD_COLUMN)
    column.find_element(By.TAG_NAME, "button").click()
    assert column.get_attribute("aria-sort") == "descending"  # best first
    assert _models(browser) == ["org/strong", "org/partial", "dragonfly-tiny"]  # best first
    column.find_element(By.TAG_NAME, "button").click()
    assert column.get_attribute("aria-sort") == "ascending"
    assert _models(browser) == ["dragonfly-tiny", "org/partial", "org/strong"]
    model = _header(browser, "Model")
    model.find_element(By.TAG_NAME, "button").click()
    model.find_element(By.TAG_NAME, "button").click()  # Z to A
    assert _models(browser) == ["org/strong", "org/partial", "dragonfly-tiny"]
    assert column.get_attribute("aria-sort") == "none"
    loss = _header(browser, LOSS_COLUMN)  # lower is better: the first click puts the lowest first
    loss.find_element(By.TAG_NAME, "button").click()
    assert loss.get_attribute("aria-sort") == "ascending"
    assert _models(browser) == ["org/partial", "dragonfly-tiny", "org/strong"]  # lowest first
    shot = tmp_path / "leaderboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_partial_cell_is_marked_and_cells_carry_their_run(browser, page):
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    index = [
        th.text.rstrip(" ▲▼")
        for th in browser.find_elements(By.CSS_SELECTOR, "#headline-mini thead th")
    ].index(LIKELIHOOD_COLUMN)
    rows = {
        name: row
        for name, row in zip(
            _models(browser),
            browser.find_elements(By.CSS_SELECTOR, "#headline-mini tbody tr"),
            strict=True,
        )
    }
    partial = rows["org/partial"].find_elements(By.CSS_SELECTOR, "th, td")[index]
    assert partial.text == f"{100 * PARTIAL:.1f} (n=5)"
    assert "partial" in partial.get_attribute("class").split()
    # the marker shows: a shaded background that full cells do not have
    full = rows["org/strong"].find_elements(By.CSS_SELECTOR, "th, td")[index]
    assert partial.value_of_css_property("background-color") != full.value_of_css_property(
        "background-color"
    )
    tip = partial.get_attribute("title")
    assert "partial run (n=5)" in tip
    assert f"{LIKELIHOOD_TASK}: run {BASE_DATE} +08:00" in tip
    assert "model_args: pretrained=org/partial,device=cpu,batch_size=4" in tip
    assert "documents: 5 of 12" in tip
    chart = browser.find_element(By.CSS_SELECTOR, "figure.chart img")
    assert browser.execute_script("return arguments[0].naturalWidth", chart) > 0  # decoded


def test_the_page_loads_cleanly_and_hostile_names_stay_text(browser, tmp_path):
    from selenium.webdriver.common.by import By

    for index, name in enumerate(HOSTILE):
        _variant(tmp_path / "runs" / str(index), name, 0.1 * index)
    browser.get(_write_page(tmp_path, tmp_path / "runs").as_uri())
    assert sorted(_models(browser)) == sorted(HOSTILE)
    assert browser.title == "dragonfly-eval leaderboard: mini"  # the injected script never ran
    assert len(browser.find_elements(By.TAG_NAME, "img")) == 1  # the chart alone
    assert len(browser.find_elements(By.TAG_NAME, "script")) == 1
    # no blocked request, no refused script (the policy admits the page's own by its hash)
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    _header(browser, "Model").find_element(By.TAG_NAME, "button").click()
    assert _models(browser) == sorted(HOSTILE, key=str.casefold)


def _rerun(root: Path, name: str, stamp: str, tasks: list[str], model_args: str = "") -> None:
    """A copy of the baseline run of some of its tasks only, dated `stamp` (lmms-eval's
    YYYYMMDD_HHMMSS), with `model_args` appended to its own."""
    payload = json.loads(BASELINE.read_text(encoding="utf-8"))
    for section in ("results", "n-samples"):
        payload[section] = {t: v for t, v in payload[section].items() if t in tasks}
    payload["date"] = stamp
    payload["config"]["model_args"] += model_args
    folder = root / name
    folder.mkdir(parents=True)
    (folder / f"{stamp}_results.json").write_text(json.dumps(payload), encoding="utf-8")


@pytest.fixture(scope="module")
def crowded_page(tmp_path_factory) -> Path:
    """The page the README and docs/leaderboard-and-gate.md show (the mini baseline and the
    published numbers, suites mini and general) after a few more runs: two tasks re-run on later days, so one row holds runs of
    three days, and a zoom=low run, a row of its own."""
    root = tmp_path_factory.mktemp("crowded")
    _rerun(root / "runs", "a", "20261203_101500", [LIKELIHOOD_TASK])
    _rerun(root / "runs", "b", "20261207_183000", [LOSS_TASK])
    _rerun(root / "runs", "low", "20261208_090000", ["dragonfly_mini_fine"], ",zoom=low")
    return _write_page(root, BASELINE.parent, root / "runs", suites="mini,general")


LAYOUT = """
const width = document.documentElement.clientWidth;
const problems = [];
document.querySelectorAll("table.board th, table.board td").forEach((cell) => {
  const box = cell.getBoundingClientRect();
  const text = cell.innerText.replace(/\\s+/g, " ");
  if (box.right > width + 0.5) problems.push(`${text}: right edge ${box.right} > ${width}`);
  if (cell.scrollWidth > cell.clientWidth + 1)
    problems.push(`${text}: text ${cell.scrollWidth} px in a ${cell.clientWidth} px cell`);
});
document.querySelectorAll("figure.chart img").forEach((img) => {
  const box = img.getBoundingClientRect();
  if (box.right > width + 0.5) problems.push(`chart: right edge ${box.right} > ${width}`);
  if (box.width < 0.95 * img.naturalWidth)
    problems.push(`chart shrunk to ${box.width} of ${img.naturalWidth} px`);
});
return [width, problems];
"""


@pytest.mark.parametrize("width", [1280, 1440])
def test_every_column_and_chart_fits_a_laptop_screen(browser, crowded_page, width, tmp_path):
    from selenium.webdriver.common.by import By

    browser.set_window_size(width, 1000)
    browser.get(crowded_page.as_uri())
    viewport, problems = browser.execute_script(LAYOUT)
    assert width - 40 <= viewport <= width, viewport  # the window is the size asked for
    assert problems == []
    tables = [t.get_attribute("id") for t in browser.find_elements(By.CSS_SELECTOR, "table")]
    assert tables[:2] == ["headline-mini", "extra-mini"] and "headline-general" in tables
    for table in ("headline-mini", "headline-general"):
        last = browser.find_elements(By.CSS_SELECTOR, f"#{table} thead th")[-1]
        assert last.text.startswith("Avg")
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure.chart img")) == 2  # one a suite
    shot = tmp_path / f"board_{width}.png"
    assert browser.save_screenshot(str(shot))


def test_a_row_of_several_runs_shows_their_days_and_each_date_in_its_tip(browser, crowded_page):
    from selenium.webdriver.common.by import By

    browser.set_window_size(1280, 1000)
    browser.get(crowded_page.as_uri())
    rows = {
        row.find_element(By.TAG_NAME, "th").text.splitlines()[0]: row
        for row in browser.find_elements(By.CSS_SELECTOR, "#headline-mini tbody tr")
    }
    assert set(rows) == {"dragonfly-tiny", "dragonfly-tiny (zoom=low)"}
    date = rows["dragonfly-tiny"].find_elements(By.TAG_NAME, "td")[0]
    assert date.text == f"{BASE_DATE[:10]} – 2026-12-07 (3 runs)"
    assert date.get_attribute("title") == (
        f"runs: {BASE_DATE} +08:00; 2026-12-03 10:15:00 +08:00; 2026-12-07 18:30:00 +08:00"
    )
    low = rows["dragonfly-tiny (zoom=low)"].find_elements(By.TAG_NAME, "td")[0]
    assert low.text == "2026-12-08"
