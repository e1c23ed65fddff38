"""Driving a seidr view in headless Chromium (selenium, Debian's chromium and chromedriver)."""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def chromium() -> Iterator:
    """A headless Chromium driven by selenium, quit on leaving."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, selector: str) -> list:
    """The elements `selector` finds once the page has drawn them."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # A loaded machine can keep the renderer busy past the load event; wait for the tree, and if
    # it never comes, fail with what the page's console said rather than an IndexError.
    try:
        return WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))
    except TimeoutException:
        console = "\n".join(entry["message"] for entry in driver.get_log("browser"))
        raise AssertionError(f"no {selector} on the page; browser console:\n{console}") from None


def screenshot_view(page: Path, screenshot: Path, click_kind: str = "repair") -> dict:
    """Open the page, click the deepest program of `click_kind`, screenshot, and return what shows."""
    from selenium.webdriver.common.by import By

    with chromium() as driver:
        driver.get(page.resolve().as_uri())
        target = wait_for(driver, f'.node[data-kind="{click_kind}"]')[-1]
        target.click()
        detail = driver.find_element(By.ID, "detail-pane")
        texts = {"detail": detail.text, "code": detail.find_element(By.CSS_SELECTOR, "pre.code").text,
                 "diff_lines": len(detail.find_elements(By.CSS_SELECTOR, ".diff .add, .diff .del")),
                 "selected": driver.find_element(By.CSS_SELECTOR, ".node.selected").get_attribute("data-id")}
        driver.save_screenshot(str(screenshot))
        return texts


# Clicks every program in turn and reads back, as exact text, what the page drew for it.
READ_EVERY_PROGRAM = """
const text = (node) => node ? node.textContent : null;
const programs = [];
for (const node of document.querySelectorAll(".node")) {
  node.click();
  const pane = document.getElementById("detail-pane");
  programs.push({id: Number(node.dataset.id), row: node.textContent, heading: text(pane.querySelector("h2")),
                 code: text(pane.querySelector("pre.code")), explanation: text(pane.querySelector(".explanation")),
                 shown: [...pane.querySelectorAll("pre:not(.code):not(.diff)")].map(text),
                 diff: text(pane.querySelector("pre.diff"))});
}
return {programs, title: text(document.getElementById("title")), documentTitle: document.title,
        summary: text(document.getElementById("summary")),
        elements: [...document.querySelectorAll("*")].map((e) => e.tagName.toLowerCase())};
"""
RAN = "return window.__seidrRan === undefined ? null : String(window.__seidrRan);"


def read_view(page: Path) -> dict:
    """Every program's texts as the page shows them, the page's elements, whether any injected
    script set `window.__seidrRan`, and the browser console's errors."""
    with chromium() as driver:
        driver.get(page.resolve().as_uri())
        wait_for(driver, ".node")
        seen = driver.execute_script(READ_EVERY_PROGRAM)
        time.sleep(1)  # an injected handler (an image's onerror) would run after the clicks
        seen["ran"] = driver.execute_script(RAN)
        console = driver.get_log("browser")
        seen["errors"] = [entry["message"] for entry in console if entry["level"] == "SEVERE"]
        return seen
