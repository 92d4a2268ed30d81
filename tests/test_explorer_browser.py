"""The log explorer at / in a real headless Chromium (selenium, Debian's chromium-driver),
against gunicorn as `make run` starts it: search, histogram, detail, live tail, paging past
1,000 records while new ones arrive, the read key, the keyboard, accessibility (axe-core).

Every test ends with the browser's console free of errors. The main view and the detail are
saved as screenshots: into EXPLORER_SCREENSHOTS when set (`make screenshots` writes the
README's docs/explorer.png and docs/explorer-detail.png), else into the test's temporary folder.
"""

import json
import os
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from browser import SKIP, accessibility_violations, chromium, console_errors, describe
from helpers import create_key, request
from server import Server

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]
if SKIP is None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

WAIT = 15  # seconds for the page to show what a step expects

# Real lines from LogHub (https://github.com/logpai/loghub: HDFS, OpenSSH, Apache, Zookeeper,
# Spark, OpenStack), as (service, severity, component, message).
LOGHUB = [
    ("hdfs", "INFO", "dfs.DataNode$PacketResponder",
     "PacketResponder 1 for block blk_38865049064139660 terminating"),
    ("hdfs", "WARN", "dfs.DataNode$DataXceiver",
     "10.251.123.132:50010:Got exception while serving blk_3763728533434719668 to "
     "/10.251.38.214:"),
    ("hdfs", "INFO", "dfs.FSNamesystem",
     "BLOCK* NameSystem.addStoredBlock: blockMap updated: 10.250.15.240:50010 is added to "
     "blk_-1055254430948037872 size 67108864"),
    ("hdfs", "INFO", "dfs.DataNode$DataXceiver",
     "10.250.11.194:50010 Served block blk_3087787567144441647 to /10.251.91.84"),
    ("sshd", "WARN", "sshd", "reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com "
     "[173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!"),
    ("sshd", "INFO", "sshd", "Received disconnect from 112.95.230.3: 11: Bye Bye [preauth]"),
    ("sshd", "ERROR", "sshd", "Failed password for uucp from 195.154.37.122 port 59266 ssh2"),
    ("sshd", "INFO", "sshd", "input_userauth_request: invalid user admin [preauth]"),
    ("sshd", "ERROR", "sshd",
     "Failed password for invalid user admin from 185.190.58.151 port 41650 ssh2"),
    ("apache", "NOTICE", "httpd", "workerEnv.init() ok /etc/httpd/conf/workers2.properties"),
    ("apache", "NOTICE", "httpd", "jk2_init() Found child 8553 in scoreboard slot 8"),
    ("apache", "ERROR", "httpd", "mod_jk child workerEnv in error state 7"),
    ("zookeeper", "INFO", "FastLeaderElection", "Notification time out: 3200"),
    ("zookeeper", "INFO", "QuorumCnxManager$Listener",
     "Received connection request /10.10.34.13:58421"),
    ("zookeeper", "WARN", "QuorumCnxManager$SendWorker", "Send worker leaving thread"),
    ("spark", "INFO", "executor.CoarseGrainedExecutorBackend",
     "Registered signal handlers for [TERM, HUP, INT]"),
    ("spark", "INFO", "storage.MemoryStore",
     "Block rdd_2_1 stored as bytes in memory (estimated size 935.0 B, free 322.1 KB)"),
    ("spark", "DEBUG", "storage.BlockManager", "Found block rdd_2_3 locally"),
    ("nova", "WARN", "nova.virt.libvirt.imagecache",
     "Unknown base file: /var/lib/nova/instances/_base/a489c868f0c37da93b76227c91bb03908ac0e742"),
    ("nova", "INFO", "nova.compute.claims",
     "[instance: b562ef10-ba2d-48ae-bf4a-18666cba4a51] Attempting claim: memory 2048 MB, "
     "disk 20 GB, vcpus 1 CPU"),
]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
LONG_MESSAGE = "Exception in task 0.0 in stage 1.0 (TID 1)\n" + "\n".join(
    f"\tat org.apache.spark.executor.Executor$TaskRunner.run(Executor.scala:{line})"
    for line in range(200, 240))
REPEAT = 12  # times the lines are stored, over the last 20 hours
BURST = 24  # failed logins within 45 minutes, 5 hours ago


def loghub_records(count, service=None, spread=3600, end=None, **extra):
    """``count`` records cycled from LOGHUB, newest ``end`` (default now), ``spread`` s apart in
    all, oldest first; under ``service`` when given, else the line's own."""
    end = time.time() - 1 if end is None else end
    records = []
    for i in range(count):
        system, severity, component, message = LOGHUB[i % len(LOGHUB)]
        records.append({
            "service": service or system, "severity": severity, "message": message,
            "timestamp": end - spread * (count - 1 - i) / max(count - 1, 1),
            "host": f"node-{i % 3 + 1}",
            "attributes": {"component": component, "pid": 1000 + i % 7,
                           "deploy": {"region": "eu-west" if i % 2 else "us-east"}},
            **({"trace_id": TRACE} if i % 5 == 0 else {}),
            **extra,
        })
    return records


def ingest(port, records, key=None):
    """Store ``records``; their ids, in order."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    status, body = request(port, "POST", "/ingest", json.dumps(records).encode(), headers)
    assert status == 201, body
    answer = json.loads(body)
    return list(range(answer["first_id"], answer["last_id"] + 1))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("explorer")
    with Server(workdir, workdir / "collector.db") as running:
        ingest(running.port, loghub_records(len(LOGHUB) * REPEAT, spread=20 * 3600))
        ingest(running.port, [
            {**record, "service": "sshd", "severity": "ERROR", "message": LOGHUB[8][3]}
            for record in loghub_records(BURST, spread=2700, end=time.time() - 5 * 3600)])
        # A long message, in several lines: folded in the list.
        ingest(running.port, [{"service": "spark", "severity": "ERROR",
                               "message": LONG_MESSAGE, "timestamp": time.time() - 7200}])
        # A message that is markup: shown as text, never run.
        ingest(running.port, [{"service": "web", "severity": "ERROR",
                               "message": '<img src=x onerror="window.hacked=1"> injected',
                               "timestamp": time.time() - 120}])
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium"))
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, server):
    """The browser on a fresh tab state; the test fails on any console error it causes."""
    browser.get(f"http://127.0.0.1:{server.port}/healthz")
    browser.execute_script("sessionStorage.clear()")
    console_errors(browser)  # empty the log
    yield browser
    assert console_errors(browser) == []


def screenshots_dir(tmp_path):
    target = Path(os.environ.get("EXPLORER_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def wait(driver, condition, message, timeout=WAIT):
    return WebDriverWait(driver, timeout).until(lambda d: condition(d), message)


def open_explorer(driver, server, query=""):
    driver.get(f"http://127.0.0.1:{server.port}/{query}")
    wait_loaded(driver)


def wait_loaded(driver):
    """Until the results and the histogram are shown (aria-busy false on both)."""
    wait(driver, lambda d: d.execute_script(
        "return document.querySelector('#results-section').getAttribute('aria-busy') === 'false'"
        " && document.querySelector('#histogram').getAttribute('aria-busy') === 'false'"),
        "the results and the histogram did not load")


def rows(driver):
    """(id, service, severity, message, timestamp) of the records listed, top first."""
    return [tuple(row) for row in driver.execute_script(
        "return [...document.querySelectorAll('#results li.record')].map(r => ["
        "Number(r.dataset.id), r.querySelector('.service').textContent,"
        "r.querySelector('.severity').textContent, r.querySelector('.message').textContent,"
        "r.querySelector('time').dateTime])")]


def url_params(driver):
    return {k: v[0] for k, v in parse_qs(urlparse(driver.current_url).query).items()}


def search_for(driver, text, field="#q"):
    box = driver.find_element(By.CSS_SELECTOR, field)
    box.clear()
    box.send_keys(text, Keys.ENTER)
    wait_loaded(driver)


def parse_time(text):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_search_by_word_and_by_service(page, server, tmp_path):
    open_explorer(page, server)
    shown = rows(page)
    assert len(shown) == 200  # the first page; the next one loads on scrolling
    stamps = [parse_time(row[4]) for row in shown]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    # Text, not markup: the message reads as written and its onerror never ran.
    assert any(row[3] == '<img src=x onerror="window.hacked=1"> injected' for row in shown)
    assert page.execute_script("return window.hacked") is None
    stored = len(LOGHUB) * REPEAT + BURST + 2
    assert page.find_element(By.ID, "status").text == f"{stored} records in range, 200 shown"
    page.save_screenshot(str(screenshots_dir(tmp_path) / "explorer.png"))

    search_for(page, "password")
    found = rows(page)
    assert found and all("password" in row[3].lower() for row in found)
    assert len(found) == 2 * REPEAT + BURST
    assert url_params(page)["q"] == "password"

    page.find_element(By.ID, "q").clear()
    search_for(page, "zookeeper", "#service")
    found = rows(page)
    assert len(found) == 3 * REPEAT and {row[1] for row in found} == {"zookeeper"}
    assert url_params(page)["service"] == "zookeeper"
    # The service facet keeps the other services in sight; the chosen one is pressed.
    pressed = page.find_elements(By.CSS_SELECTOR,
                                 ".facet[data-facet=service] button[aria-pressed=true]")
    assert [button.text.split("\n")[0] for button in pressed] == ["zookeeper"]
    assert len(page.find_elements(By.CSS_SELECTOR, ".facet[data-facet=service] button")) == 7

    # The URL is the view: opened afresh, it shows the same records.
    page.get(page.current_url)
    wait_loaded(page)
    assert rows(page) == found


def test_long_messages_fold_and_unfold(page, server):
    open_explorer(page, server, "?service=spark&min_severity=error")
    row = page.find_element(By.CSS_SELECTOR, "#results li.record")
    message = row.find_element(By.CLASS_NAME, "message")
    assert message.text.endswith("…") and len(message.text) < 400
    fold = row.find_element(By.CSS_SELECTOR, "button.fold")
    assert fold.get_attribute("aria-expanded") == "false"
    fold.click()
    assert message.get_attribute("textContent") == LONG_MESSAGE
    assert fold.get_attribute("aria-expanded") == "true"
    assert page.find_element(By.ID, "detail").is_displayed() is False  # folding opens nothing
    fold.click()
    assert message.text.endswith("…")


def facet_counts(driver, name):
    """{value: count} of the facet ``name``'s buttons."""
    return {button.find_element(By.CLASS_NAME, "value").text:
            button.find_element(By.CLASS_NAME, "count").text
            for button in driver.find_elements(
                By.CSS_SELECTOR, f".facet[data-facet={name}] button.pick")}


def test_facets_count_and_narrow(page, server):
    open_explorer(page, server, "?service=hdfs")
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, ".facet[data-facet=host] button.pick"),
         "no host facet")
    assert facet_counts(page, "host") == {"node-1": "16", "node-2": "16", "node-3": "16"}
    page.find_element(By.ID, "facet-key").send_keys("deploy.region", Keys.ENTER)
    buttons = wait(page, lambda d: d.find_elements(
        By.CSS_SELECTOR, ".facet[data-facet=attribute] button.pick"), "no attribute facet")
    assert facet_counts(page, "attribute") == {"eu-west": "24", "us-east": "24"}
    assert url_params(page)["facet"] == "deploy.region"
    next(b for b in buttons if "eu-west" in b.text).click()
    wait(page, lambda d: url_params(d).get("attr.deploy.region") == "eu-west", "no filter")
    wait_loaded(page)
    assert len(rows(page)) == 24
    assert page.find_element(By.ID, "attributes").get_attribute("value") == \
        "deploy.region=eu-west"
    page.find_element(By.CSS_SELECTOR, ".facet[data-facet=host] button.pick").click()
    wait(page, lambda d: url_params(d).get("host", "").startswith("node-"), "no host filter")
    wait_loaded(page)
    assert 0 < len(rows(page)) < 24


def test_a_bad_query_shows_the_apis_message(page, server):
    open_explorer(page, server)
    page.find_element(By.ID, "q").send_keys('"unbalanced', Keys.ENTER)
    error = wait(page, lambda d: d.find_element(By.ID, "query-error").text,
                 "no error message for a bad query")
    assert error == "q: Unbalanced double quote."
    assert page.find_element(By.ID, "q").get_attribute("aria-invalid") == "true"
    # The API's 400 is an answer, not a fault of the page: no other console message.
    assert all("400" in entry["message"] for entry in console_errors(page))


def test_histogram_zoom_and_click_narrow_the_range(page, server):
    open_explorer(page, server, "?since=24h")
    over = page.find_element(By.CSS_SELECTOR, "#histogram .u-over")
    width = over.size["width"]
    # Drag across the last quarter of the day, where the records are.
    ActionChains(page).move_to_element_with_offset(over, width // 4, 0).click_and_hold() \
        .move_by_offset(width // 5, 0).release().perform()
    wait(page, lambda d: "until" in url_params(d), "the drag did not zoom")
    wait_loaded(page)
    params = url_params(page)
    since, until = parse_time(params["since"]), parse_time(params["until"])
    assert 3600 < until - since < 12 * 3600, params  # a fifth of a day
    assert page.find_element(By.ID, "range").get_attribute("value") == "custom"
    zoomed = rows(page)
    assert zoomed and all(since <= parse_time(row[4]) < until for row in zoomed)

    # A click on a bar narrows to that bar's bucket.
    for fraction in (0.5, 0.3, 0.7, 0.1, 0.9):  # somewhere with records
        over = page.find_element(By.CSS_SELECTOR, "#histogram .u-over")
        ActionChains(page).move_to_element_with_offset(
            over, int(over.size["width"] * (fraction - 0.5)), 0).click().perform()
        wait(page, lambda d: url_params(d) != params, "the click did nothing")
        wait_loaded(page)
        if rows(page):
            break
        page.back()
        wait_loaded(page)
    narrowed = url_params(page)
    bucket = parse_time(narrowed["until"]) - parse_time(narrowed["since"])
    assert bucket in (60, 300, 600, 900, 1800), narrowed  # one bucket of the zoomed chart
    assert all(parse_time(narrowed["since"]) <= parse_time(row[4]) < parse_time(narrowed["until"])
               for row in rows(page))
    # Back undoes the narrowing: the zoomed view again, its records and its form.
    page.back()
    wait(page, lambda d: url_params(d) == params, "Back did not return to the zoomed view")
    wait_loaded(page)
    assert rows(page) == zoomed
    assert page.find_element(By.ID, "range").get_attribute("value") == "custom"


def test_detail_keyboard_and_links(page, server, tmp_path):
    open_explorer(page, server, "?service=sshd")
    first = rows(page)[0]
    # / focuses the query; arrows move between records; Enter opens one; Esc closes it.
    page.find_element(By.TAG_NAME, "body").send_keys("/")
    assert page.switch_to.active_element.get_attribute("id") == "q"
    page.execute_script("document.activeElement.blur()")
    ActionChains(page).send_keys(Keys.ARROW_DOWN).perform()  # from the first record
    assert page.switch_to.active_element.get_attribute("data-id") == str(rows(page)[1][0])
    ActionChains(page).send_keys(Keys.ARROW_UP).perform()
    assert page.switch_to.active_element.get_attribute("data-id") == str(first[0])
    page.find_element(By.CSS_SELECTOR, f"li.record[data-id='{first[0]}']").click()
    detail = page.find_element(By.ID, "detail")
    wait(page, lambda d: detail.is_displayed(), "the detail did not open")
    assert page.find_element(By.ID, "detail-title").text == f"Record {first[0]}"
    assert url_params(page)["record"] == str(first[0])
    fields = dict(zip([e.text for e in detail.find_elements(By.TAG_NAME, "dt")],
                      [e.text for e in detail.find_elements(By.TAG_NAME, "dd")], strict=True))
    assert set(fields) == {"id", "timestamp", "received_at", "service", "severity", "host",
                           "trace_id", "span_id", "event_id", "api_key_id", "pattern_id"}
    assert fields["service"] == "sshd" and fields["severity"] == first[2]
    assert first[4] in fields["timestamp"]  # local time, and the UTC time beside it
    assert page.find_element(By.ID, "detail-message").text == first[3]
    tree = page.find_element(By.ID, "detail-attributes").text
    assert "component: \"sshd\"" in tree and "deploy {1}" in tree and "region:" in tree
    page.save_screenshot(str(screenshots_dir(tmp_path) / "explorer-detail.png"))

    ActionChains(page).send_keys(Keys.ARROW_DOWN).perform()
    second = rows(page)[1]
    wait(page, lambda d: d.find_element(By.ID, "detail-title").text == f"Record {second[0]}",
         "the arrow did not move the detail to the next record")

    page.execute_cdp_cmd("Browser.grantPermissions", {
        "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
        "origin": f"http://127.0.0.1:{server.port}"})
    page.find_element(By.ID, "copy-json").click()
    wait(page, lambda d: d.find_element(By.ID, "copy-status").text == "Copied", "not copied")
    copied = page.execute_async_script(
        "navigator.clipboard.readText().then(arguments[arguments.length - 1])")
    assert json.loads(copied)["id"] == second[0] and json.loads(copied)["service"] == "sshd"

    links = {name: page.find_element(By.ID, name).get_attribute("href")
             for name in ("same-trace", "same-service", "same-host")}
    shown_host = page.find_elements(By.CSS_SELECTOR, "#detail dd")[5].text
    assert parse_qs(urlparse(links["same-host"]).query)["host"] == [shown_host]
    around = parse_qs(urlparse(links["same-service"]).query)
    assert around["service"] == ["sshd"]
    assert parse_time(around["until"][0]) - parse_time(around["since"][0]) == 600

    ActionChains(page).send_keys(Keys.ESCAPE).perform()
    wait(page, lambda d: not detail.is_displayed(), "Esc did not close the detail")
    assert "record" not in url_params(page)

    # Same trace: every record of the trace, whatever its service.
    page.get(f"http://127.0.0.1:{server.port}/?trace_id={TRACE}")
    wait_loaded(page)
    traced = rows(page)
    assert len({row[1] for row in traced}) > 1
    page.find_element(By.CSS_SELECTOR, f"li.record[data-id='{traced[0][0]}']").click()
    wait(page, lambda d: d.find_element(By.ID, "same-trace").is_displayed(), "no trace link")
    page.find_element(By.ID, "same-trace").click()
    wait(page, lambda d: "since" in url_params(d) and url_params(d).get("trace_id") == TRACE,
         "the trace link did not open")
    wait_loaded(page)
    assert {row[0] for row in rows(page)} >= {traced[0][0]}


def test_live_tail_follows_pauses_and_resumes(page, server):
    open_explorer(page, server, "?service=live")
    assert rows(page) == []
    page.find_element(By.ID, "live").click()
    assert page.find_element(By.ID, "live").get_attribute("aria-pressed") == "true"
    time.sleep(0.5)  # the follow request is waiting
    [first] = ingest(server.port, loghub_records(1, service="live"))
    wait(page, lambda d: [row[0] for row in rows(d)] == [first], "the new record did not arrive")

    page.find_element(By.ID, "pause").click()
    later = ingest(server.port, loghub_records(3, service="live", spread=3))
    wait(page, lambda d: d.find_element(By.ID, "pause").text == "Resume (3 new)",
         "no counter of what arrived while paused")
    assert [row[0] for row in rows(page)] == [first]  # nothing shown while paused
    page.find_element(By.ID, "pause").click()
    wait(page, lambda d: [row[0] for row in rows(d)] == [*reversed(later), first],
         "the records that arrived while paused were not shown on resume")
    page.find_element(By.ID, "live").click()  # off: the follow request is cancelled
    assert page.find_element(By.ID, "pause").is_displayed() is False


def test_paging_past_1000_records_while_new_ones_arrive(page, server):
    count = 1_250
    stored = loghub_records(count, service="paging", spread=1200)
    ids = ingest(server.port, stored)
    expected = [record_id for _, record_id in sorted(
        zip((r["timestamp"] for r in stored), ids, strict=True), reverse=True)]
    open_explorer(page, server, "?service=paging&range=1h")
    arriving = threading.Event()

    def keep_ingesting():  # newer records, and late ones inside the range: neither is listed
        while not arriving.is_set():
            ingest(server.port, loghub_records(5, service="paging", spread=600))
            time.sleep(0.05)

    sender = threading.Thread(target=keep_ingesting)
    sender.start()
    try:
        deadline = time.monotonic() + 90
        while "End of the results" not in page.find_element(By.ID, "results-end").text:
            assert time.monotonic() < deadline, f"stuck at {len(rows(page))} records"
            page.execute_script("document.querySelector('#results-end').scrollIntoView()")
            time.sleep(0.1)
    finally:
        arriving.set()
        sender.join()
    shown = [row[0] for row in rows(page)]
    assert len(shown) == len(set(shown))  # no repeat
    assert shown == expected  # no gap, newest first, nothing that arrived since


def test_the_page_passes_axe(page, server):
    open_explorer(page, server)
    assert accessibility_violations(page) == [], describe(accessibility_violations(page))
    page.find_element(By.CSS_SELECTOR, "#results li.record").click()
    wait(page, lambda d: d.find_element(By.ID, "detail").is_displayed(), "no detail")
    violations = accessibility_violations(page)
    assert violations == [], describe(violations)
    # Focus: every control is reached by Tab, with a visible focus ring.
    page.find_element(By.TAG_NAME, "body").send_keys("/")
    outline = page.execute_script(
        "return getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


def test_read_key_flow_on_a_server_that_requires_keys(tmp_path, browser):
    database = tmp_path / "collector.db"
    reader = create_key(database, "reader", "read")
    shipper = create_key(database, "shipper", "ingest")
    with Server(tmp_path, database, env={"AUTH": "on"}) as secured:
        [record_id] = ingest(secured.port, loghub_records(1, service="secret"), key=shipper)
        status, _ = request(secured.port, "GET", "/", headers={"Accept": "text/html"})
        assert status == 200  # the page and its assets need no key
        browser.get(f"http://127.0.0.1:{secured.port}/")
        dialog = browser.find_element(By.ID, "key-dialog")
        wait(browser, lambda d: dialog.is_displayed(), "no key was asked for")
        assert "requires an API key" in browser.find_element(By.ID, "key-reason").text
        violations = accessibility_violations(browser)
        assert violations == [], describe(violations)

        browser.find_element(By.ID, "key-input").send_keys(shipper, Keys.ENTER)
        wait(browser, lambda d: "lacks the read scope" in d.find_element(By.ID, "key-reason").text
             and dialog.is_displayed(), "an ingest key was not refused in words")

        browser.find_element(By.ID, "key-input").send_keys(reader, Keys.ENTER)
        wait_loaded(browser)
        assert [row[0] for row in rows(browser)] == [record_id]
        assert browser.execute_script("return sessionStorage.getItem('collector.apiKey')") \
            == reader
        # Asked once: a reload in the same tab uses the kept key.
        browser.refresh()
        wait_loaded(browser)
        assert not browser.find_element(By.ID, "key-dialog").is_displayed()
        assert len(rows(browser)) == 1
        requested = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        assert requested and not any(reader in url for url in requested + [browser.current_url])
        # The refusals were answers of the API; nothing else reached the console.
        assert all(" 401 " in e["message"] or " 403 " in e["message"]
                   for e in console_errors(browser)), console_errors(browser)


def wait_mined(server):
    """Wait until the miner has reached every record and the sshd burst's pattern counts all
    of its records."""
    deadline, body = time.monotonic() + WAIT, b""
    while time.monotonic() < deadline:
        status, body = request(server.port, "GET", "/logs/patterns?service=sshd&limit=1")
        answer = json.loads(body) if status == 200 else None
        if (answer and not answer["mining"]["pending_records"] and answer["patterns"]
                and answer["patterns"][0]["count"] == REPEAT + BURST):
            return
        time.sleep(0.2)
    raise AssertionError(f"the miner did not reach every record: {body.decode()}")


def pattern_rows(driver):
    """(id, count, template, service) of the patterns listed, top first."""
    return [tuple(row) for row in driver.execute_script(
        "return [...document.querySelectorAll('#patterns tr.pattern')].map(r => ["
        "Number(r.dataset.id), Number(r.querySelector('.count').textContent.replace(/,/g, '')),"
        "r.querySelector('.template button').textContent, r.querySelector('.service').textContent"
        "])")]


def test_patterns_tab_lists_the_patterns_and_narrows_to_one(page, server):
    wait_mined(server)
    open_explorer(page, server, "?service=sshd")  # other tests add services of their own
    page.find_element(By.ID, "tab-patterns").click()
    wait(page, lambda d: pattern_rows(d), "no pattern listed")
    assert url_params(page)["view"] == "patterns"
    listed = pattern_rows(page)
    counts = [count for _, count, _, _ in listed]
    assert counts == sorted(counts, reverse=True)
    top_id, top_count, template, service = listed[0]
    assert (service, template) == (
        "sshd", "Failed password for invalid user admin from <IP> port <NUM> ssh2")
    assert top_count == REPEAT + BURST
    assert page.find_element(By.CSS_SELECTOR, "#patterns tr.pattern .sparkline").is_displayed()
    assert accessibility_violations(page) == [], describe(accessibility_violations(page))

    page.find_element(By.CSS_SELECTOR, "#patterns tr.pattern .template button").click()
    wait_loaded(page)
    wait(page, lambda d: len(rows(d)) == top_count, "the pattern's records are not listed")
    assert url_params(page)["pattern"] == str(top_id) and "view" not in url_params(page)
    assert {message for _, _, _, message, _ in rows(page)} == {LOGHUB[8][3]}
    chip = page.find_element(By.CSS_SELECTOR, "#levels .chip.pattern")
    chip.click()  # the filter taken out again
    wait_loaded(page)
    assert "pattern" not in url_params(page)

    page.find_element(By.CSS_SELECTOR, "#results li.record").click()
    same = wait(page, lambda d: d.find_element(By.ID, "same-pattern"), "no pattern link")
    assert "pattern=" in same.get_attribute("href")
