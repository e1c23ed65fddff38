"""Driving a seidr view in headless Chromium (selenium, Debian's chromium and chromedriver)."""

from __future__ import annotations

import shutil
from pathlib import Path


def screenshot_view(page: Path, screenshot: Path, click_kind: str = "repair") -> dict:
    """Open the page, click the deepest program of `click_kind`, screenshot, and return what shows."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    try:
        driver.get(page.resolve().as_uri())
        nodes = driver.find_elements(By.CSS_SELECTOR, f'.node[data-kind="{click_kind}"]')
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
