"""Headless Chromium driven by selenium with Debian's chromium-driver, for the page tests.

Selenium Manager never runs: the driver and the browser are named, so nothing is fetched
from the network (SE_OFFLINE=true makes sure of it). ``SKIP`` says why a test cannot run.
"""

import json
import os
import shutil

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
except ImportError:  # the test tools are not installed
    webdriver = None

SKIP = ("selenium is not installed (requirements-test.txt)" if webdriver is None
        else "Chromium is not installed (.ci/run installs it)" if CHROMIUM is None
        else "chromedriver is not installed (Debian's chromium-driver; .ci/run installs it)"
        if CHROMEDRIVER is None else None)
# Off the network (this machine has none) and out of first-run chores.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1400,900",
         "--force-device-scale-factor=1"]


def chromium(profile):
    """A headless Chromium whose console messages can be read (``console_errors``)."""
    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    return driver


def console_errors(driver):
    """The console's errors since the last call (the browser log empties as it is read)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def accessibility_violations(driver):
    """axe-core's violations on the page as it is (selenium-axe-python's axe-core)."""
    from selenium_axe_python import Axe

    axe = Axe(driver)
    axe.inject()
    found = axe.run(options=json.dumps({"resultTypes": ["violations"]}))
    return [{"id": v["id"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]]}
            for v in found["violations"]]


def describe(violations):
    return json.dumps(violations, indent=1)
