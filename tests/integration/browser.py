"""A real browser for the dashboard's tests: Debian's headless Chromium,
driven over the DevTools protocol (CDP) with python3-websocket. It loads
pages only from loopback; its background services (updates, sync, safe
browsing, translation) are off, so it makes no other connection. Console
errors, uncaught exceptions and the browser's own log errors (a refused
Content-Security-Policy, a 404 for a resource) are collected, so a test can
assert that a page had none."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import websocket  # python3-websocket

from harness import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    raise RuntimeError("chromium is not installed (scripts/deps.sh installs it): the dashboard is tested in it")


class Browser:
    def __init__(self, width=1280, height=900):
        self.dir = tempfile.mkdtemp(prefix="ricochet-chromium-")
        self.port = free_port()
        args = [CHROMIUM, "--headless=new", "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=%d" % self.port, "--remote-allow-origins=*",
                "--user-data-dir=" + self.dir, "--window-size=%d,%d" % (width, height),
                "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
                "--safebrowsing-disable-auto-update", "--metrics-recording-only", "--password-store=basic",
                "--disable-dev-shm-usage", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.errors = []   # console errors, exceptions, log errors, as text
        self.events = []
        self._id = 0
        self.ws = None
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % self.port, timeout=2) as r:
                    pages = [t for t in json.load(r) if t["type"] == "page"]
                if pages:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromium did not start (exit %s)" % self.proc.returncode)
            time.sleep(0.05)  # polling while the browser starts, not a synchronisation sleep
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        for domain in ("Page", "Runtime", "Log"):
            self.send(domain + ".enable")

    # --- protocol ------------------------------------------------------
    def send(self, method, **params):
        self._id += 1
        my = self._id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            self._event(msg)

    def _event(self, msg):
        m, p = msg.get("method"), msg.get("params", {})
        self.events.append(msg)
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
        elif m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.errors.append("exception: %s %s" % (d.get("text"), d.get("exception", {}).get("description", "")))
        elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
            self.errors.append("log: %s %s" % (p["entry"]["text"], p["entry"].get("url", "")))

    def pump(self, timeout=0.2):
        """Reads the events that arrived (console messages) without a command."""
        self.ws.settimeout(timeout)
        try:
            while True:
                self._event(json.loads(self.ws.recv()))
        except websocket.WebSocketTimeoutException:
            pass
        finally:
            self.ws.settimeout(30)

    # --- pages ---------------------------------------------------------
    def open(self, url):
        """Navigates and waits for the load event."""
        assert url.startswith("http://127.0.0.1:") or url.startswith("http://[::1]:"), url
        # From about:blank, so that a URL differing only in its #fragment
        # loads afresh instead of navigating within the document.
        self.send("Page.navigate", url="about:blank")
        self.send("Page.navigate", url=url)
        # Loaded: this URL's document, complete (a load event could still be about:blank's).
        self.wait("location.href === %s && document.readyState === 'complete'" % json.dumps(url),
                  what="the page to load: " + url)

    def eval(self, expression):
        """The value of a JavaScript expression (awaited if it is a promise)."""
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError("%s: %s" % (expression[:80], r["exceptionDetails"]))
        return r["result"].get("value")

    def wait(self, expression, timeout=30, what=None):
        """Polls until a JavaScript expression is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.eval("!!(%s)" % expression)  # a DOM node comes back as {}: test it here
            if v:
                return v
            if time.monotonic() > deadline:
                raise TimeoutError("timed out waiting for " + (what or expression))
            self.pump(0.1)

    def click(self, selector):
        """A real mouse click (pressed and released) in the middle of the element."""
        box = self.eval("(() => { const e = document.querySelector(%s); if (!e) return null; e.scrollIntoView();"
                        " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
                        % json.dumps(selector))
        if not box:
            raise AssertionError("nothing matches " + selector)
        for t in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=t, x=box[0], y=box[1], button="left", clickCount=1)

    def type(self, selector, text):
        """Focuses an input and types into it (as a keyboard would insert it)."""
        self.eval("(() => { const e = document.querySelector(%s); e.focus(); e.select && e.select(); })()"
                  % json.dumps(selector))
        self.send("Input.insertText", text=text)

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self):
        try:
            if self.ws:
                self.ws.close()
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            shutil.rmtree(self.dir, ignore_errors=True)
