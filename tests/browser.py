"""Driving a seidr view in headless Chromium (selenium, Debian's chromium and chromedriver)."""

from __future__ import annotations

import shutil
from pathlib import Path


def screenshot_view(page: Path, screenshot: Path, click_kind: str = "repair") -> dict:
    """Open the page, click the deepest program of `click_kind`, screenshot, and return what shows."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    try:
        driver.get(page.resolve().as_uri())
        selector = f'.node[data-kind="{click_kind}"]'
        # A loaded machine can keep the renderer busy past the load event; wait for the tree, and if
        # it never comes, fail with what the page's console said rather than an IndexError.
        try:
            nodes = WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))
        except TimeoutException:
            console = "\n".join(entry["message"] for entry in driver.get_log("browser"))
            raise AssertionError(f"no {selector} on the page; browser console:\n{console}") from None
        target = nodes[-1]
        target.click()
        detail = driver.find_element(By.ID, "detail-pane")
        texts = {"detail": detail.text, "code": detail.find_element(By.CSS_SELECTOR, "pre.code").text,
                 "diff_lines": len(detail.find_elements(By.CSS_SELECTOR, ".diff .add, .diff .del")),
                 "selected": driver.find_element(By.CSS_SELECTOR, ".node.selected").get_attribute("data-id")}
        driver.save_screenshot(str(screenshot))
        return texts
    finally:
        driver.quit()
