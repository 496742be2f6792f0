"""Acceptance: the labelling page works in headless Chromium from file:// with real key events.

Drives Debian's `chromium` over the Chrome DevTools Protocol on `--remote-debugging-pipe` (no new
Python dependency): keys go through Input.dispatchKeyEvent, the Export click through
Input.dispatchMouseEvent, the download is captured with Browser.setDownloadBehavior, and console
messages, uncaught exceptions and CSP violations are collected from Runtime and Log events.
Without chromium the tests skip locally, and fail when CI=true (`apt-get install -y chromium`).
"""

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from t2i_audit.audits.labels.labelling import draw_label_sample, page_items, read_labels, write_labelling_page

FIX = Path(__file__).parent / "fixtures"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--remote-debugging-pipe"]
CLASSES = ["man", "woman"]
KEYS = {"1": ("Digit1", 49), "2": ("Digit2", 50), "u": ("KeyU", 85), "n": ("KeyN", 78), "s": ("KeyS", 83),
        "Backspace": ("Backspace", 8)}


def chromium() -> str:
    exe = os.environ.get("T2I_AUDIT_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed but CI=true: install it with `apt-get install -y chromium`")
        pytest.skip("chromium not installed (apt-get install -y chromium); CI=true makes this a failure")
    return exe


class Browser:
    """A minimal CDP client over the pipe: fd 3 carries commands in, fd 4 replies out, NUL-separated."""

    def __init__(self, exe: str, profile: Path, log: Path):
        to_child, self._w = os.pipe()
        self._r, from_child = os.pipe()

        def fds():  # in the child: the browser reads commands on fd 3 and writes replies on fd 4
            a, b = os.dup(to_child), os.dup(from_child)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._log = open(log, "wb")
        self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     preexec_fn=fds, close_fds=False)
        os.close(to_child)
        os.close(from_child)
        self._buf, self._id, self.events = b"", 0, []

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._r], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "chromium did not answer in time"
            chunk = os.read(self._r, 1 << 20)
            assert chunk, "chromium closed the pipe"
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, session: str | None = None, timeout: float = 30, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                assert "error" not in reply, (method, reply["error"])
                return reply.get("result", {})
            self.events.append(reply)

    def wait(self, method: str, timeout: float = 30, **match) -> dict:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if ev.get("method") == method and all(ev["params"].get(k) == v for k, v in match.items()):
                    self.events.remove(ev)
                    return ev["params"]
            seen = len(self.events)
            self.events.append(self._read(deadline))

    def close(self):
        self.proc.kill()
        self.proc.wait(timeout=30)
        os.close(self._w)
        os.close(self._r)
        self._log.close()


class Page:
    def __init__(self, browser: Browser, downloads: Path):
        self.b = browser
        self.target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        self.s = browser.send("Target.attachToTarget", targetId=self.target, flatten=True)["sessionId"]
        browser.send("Browser.setDownloadBehavior", behavior="allowAndName", downloadPath=str(downloads),
                     eventsEnabled=True)
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", self.s)
        self.downloads = downloads

    def goto(self, url: str):
        self._load(lambda: self.b.send("Page.navigate", self.s, url=url))

    def reload(self):
        self._load(lambda: self.b.send("Page.reload", self.s))

    def _load(self, navigate, timeout: float = 30):
        """Navigate, then wait until a NEW document has loaded (the old one carried a marker)."""
        self.eval("window.__t2i_old_document = true")
        navigate()
        deadline = time.monotonic() + timeout
        while not self.eval("window.__t2i_old_document !== true && document.readyState === 'complete'"):
            assert time.monotonic() < deadline, "the page did not load"
            time.sleep(0.02)

    def eval(self, expr: str):
        out = self.b.send("Runtime.evaluate", self.s, expression=expr, returnByValue=True)
        assert "exceptionDetails" not in out, out["exceptionDetails"]
        return out["result"].get("value")

    def key(self, name: str, modifiers: int = 0):
        code, vk = KEYS[name]
        text = {} if name == "Backspace" or modifiers else {"text": name}
        for kind in ("keyDown", "keyUp"):
            self.b.send("Input.dispatchKeyEvent", self.s, type=kind, key=name, code=code, windowsVirtualKeyCode=vk,
                        modifiers=modifiers, **(text if kind == "keyDown" else {}))

    def click(self, selector: str):
        box = self.eval(f"(function(){{var r=document.querySelector({json.dumps(selector)})"
                        ".getBoundingClientRect();return [r.x+r.width/2,r.y+r.height/2];})()")
        for kind in ("mousePressed", "mouseReleased"):
            self.b.send("Input.dispatchMouseEvent", self.s, type=kind, x=box[0], y=box[1], button="left",
                        clickCount=1)

    def close(self):
        self.b.send("Target.closeTarget", targetId=self.target)

    def download(self) -> tuple[str, bytes]:
        begin = self.b.wait("Browser.downloadWillBegin")
        self.b.wait("Browser.downloadProgress", guid=begin["guid"], state="completed")
        return begin["suggestedFilename"], (self.downloads / begin["guid"]).read_bytes()

    def problems(self) -> list:
        kinds = {"Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded"}
        return [e for e in self.b.events if e.get("method") in kinds]


@pytest.fixture
def page(tmp_path):
    exe = chromium()
    (tmp_path / "downloads").mkdir()
    browser = Browser(exe, tmp_path / "profile", tmp_path / "chromium.log")
    try:
        yield Page(browser, tmp_path / "downloads")
    finally:
        browser.close()


def profession(row) -> str | None:
    return json.loads(row["expect"]).get("person", {}).get("profession")


def make_page(tmp_path: Path, n_per_group: int, show_prompt: bool = False):
    sample = draw_label_sample(pd.read_parquet(FIX / "run_a" / "manifest.parquet"), profession, n_per_group,
                               per_group=True, seed=3)
    path = write_labelling_page(tmp_path / "page" / "label.html", page_items(FIX / "run_a", sample),
                                "presentation", CLASSES, "run_a", show_prompt=show_prompt)
    return path, list(sample["image_id"]), list(sample["text"])


def state(page: Page) -> dict:
    return page.eval("(function(){var i=document.getElementById('img');return {progress:"
                     "document.getElementById('progress').textContent,alt:i.alt,hidden:i.hidden,"
                     "loaded:i.complete&&i.naturalWidth===32,caption:document.getElementById('caption').textContent,"
                     "done:!document.getElementById('done').hidden,scripts:document.scripts.length};})()")


def wait_stored(page: Page, url: str, n: int, timeout: float = 30):
    """Wait until a second tab sees ``n`` labels: the renderer hands localStorage writes to the browser
    process asynchronously, so a reload a few milliseconds after a key press may start without them."""
    tab = Page(page.b, page.downloads)
    deadline = time.monotonic() + timeout
    try:
        while True:
            tab.goto(url)
            got = tab.eval("Object.keys(JSON.parse(localStorage.getItem('t2i-audit-labels/run_a/presentation')"
                           " || '{}')).length")
            if got >= n:
                return
            assert time.monotonic() < deadline, f"only {got} of {n} labels reached the browser's localStorage"
            time.sleep(0.05)
    finally:
        tab.close()


def test_label_every_image_reload_undo_and_export(page, tmp_path):
    path, ids, _ = make_page(tmp_path, 3)
    assert len(ids) == 9
    page.goto(path.as_uri())
    s = state(page)
    assert s == {"progress": "0 / 9", "alt": "image 1 of 9", "hidden": False, "loaded": True, "caption": "",
                 "done": False, "scripts": 2}, s
    for k in ("1", "2", "1"):
        page.key(k)
    assert state(page)["progress"] == "3 / 9"
    wait_stored(page, path.as_uri(), 3)
    page.reload()  # localStorage keeps the three labels; the page resumes at the fourth image
    s = state(page)
    assert (s["progress"], s["alt"]) == ("3 / 9", "image 4 of 9"), s
    for k in ("u", "2", "n", "1"):
        page.key(k)
    assert state(page)["alt"] == "image 8 of 9"
    page.key("Backspace")  # back to image 7 and clear its label
    s = state(page)
    assert (s["progress"], s["alt"]) == ("6 / 9", "image 7 of 9"), s
    for k in ("2", "1", "2"):
        page.key(k)
    s = state(page)
    assert s["progress"] == "9 / 9" and s["done"] and s["hidden"], s

    labels = ["man", "woman", "man", "unsure", "woman", "no person", "woman", "man", "woman"]
    expected = tmp_path / "expected.csv"
    expected.write_bytes(("image_id,attribute,label\n" + "".join(
        f"{i},presentation,{lab}\n" for i, lab in zip(ids, labels))).encode())
    page.click("#export")
    name, body = page.download()
    assert name == "labels.csv" and body == expected.read_bytes(), body
    page.key("s", modifiers=2)  # Ctrl+S exports the same file
    name, body = page.download()
    assert name == "labels.csv" and body == expected.read_bytes(), body
    assert page.problems() == []

    got = read_labels(expected, classes=CLASSES, image_ids=ids)
    assert list(got["label"]) == labels and list(got["image_id"]) == ids


def test_prompt_shown_only_when_asked_and_as_text(page, tmp_path):
    path, ids, texts = make_page(tmp_path, 9, show_prompt=True)
    page.goto(path.as_uri())
    captions = []
    for _ in ids:
        captions.append(state(page)["caption"])
        page.key("u")
    assert captions == texts and any("<script>" in t for t in texts)
    assert state(page)["scripts"] == 2 and page.problems() == []


def test_csp_blocks_a_tampered_script_and_the_check_sees_it(page, tmp_path):
    """Negative control: change one byte of the script and the CSP hash no longer admits it."""
    path, _, _ = make_page(tmp_path, 1)
    path.write_text(path.read_text().replace('"use strict";', '"use strict"; ', 1))
    page.goto(path.as_uri())
    page.key("1")
    assert state(page)["progress"] == "0 / 3"
    assert any("Content Security Policy" in json.dumps(e) for e in page.problems()), page.problems()


def reload_until(page: Page, progress: str, timeout: float = 30):
    """Reload until the page shows ``progress``: as in wait_stored, a reload can start before the
    browser process holds the renderer's last localStorage writes."""
    deadline = time.monotonic() + timeout
    while True:
        page.reload()
        if state(page)["progress"] == progress:
            return
        assert time.monotonic() < deadline, f"the reloaded page never showed {progress}: {state(page)}"
        time.sleep(0.05)


def labelled_ids(page: Page) -> list:
    return page.eval("Object.keys(JSON.parse(localStorage.getItem('t2i-audit-labels/run_a/presentation')"
                     " || '{}')).sort()")


def test_undo_removes_the_last_label_given_across_reloads_and_pages(page, tmp_path):
    """Backspace undoes labels newest first, whichever sitting or page gave them: a page written
    again with more images (its earlier labels scattered among new ones) undoes the new labels,
    then the earlier sitting's, never the image that happens to sit before the current one."""
    sample = draw_label_sample(pd.read_parquet(FIX / "run_a" / "manifest.parquet"), profession, 3,
                               per_group=True, seed=3)
    all_items = page_items(FIX / "run_a", sample)
    ids = list(sample["image_id"])
    first = write_labelling_page(tmp_path / "a" / "label.html", [all_items[i] for i in (1, 4, 7)],
                                 "presentation", CLASSES, "run_a")
    page.goto(first.as_uri())
    page.key("1")
    wait_stored(page, first.as_uri(), 1)
    reload_until(page, "1 / 3")  # a second sitting on the same page
    for k in ("2", "u"):
        page.key(k)
    assert state(page)["done"], state(page)
    wait_stored(page, first.as_uri(), 3)
    reload_until(page, "3 / 3")
    page.key("Backspace")  # the last label given: the third image, labelled just before the reload
    s = state(page)
    assert (s["progress"], s["alt"]) == ("2 / 3", "image 3 of 3"), s
    page.key("u")
    wait_stored(page, first.as_uri(), 3)

    more = write_labelling_page(tmp_path / "b" / "label.html", all_items, "presentation", CLASSES, "run_a")
    page.goto(more.as_uri())  # ids[1], ids[4], ids[7] are labelled already
    s = state(page)
    assert (s["progress"], s["alt"]) == ("3 / 9", "image 1 of 9"), s
    page.key("2")  # ids[0]
    page.key("1")  # ids[2] (ids[1] is labelled)
    assert state(page)["alt"] == "image 4 of 9"
    wait_stored(page, more.as_uri(), 5)
    reload_until(page, "5 / 9")
    page.key("Backspace")
    page.key("Backspace")  # ids[2], then ids[0]: never ids[1], which merely sits before them
    s = state(page)
    assert (s["progress"], s["alt"]) == ("3 / 9", "image 1 of 9"), s
    assert labelled_ids(page) == sorted([ids[1], ids[4], ids[7]])
    page.key("Backspace")  # then the earlier sitting's last label: ids[7], relabelled "unsure" above
    s = state(page)
    assert (s["progress"], s["alt"]) == ("2 / 9", "image 8 of 9"), s
    for _ in range(2):
        page.key("Backspace")
    assert labelled_ids(page) == [] and state(page)["alt"] == "image 2 of 9"
    page.key("Backspace")
    assert page.eval("document.getElementById('status').textContent") == "nothing to undo"
    assert page.problems() == []
