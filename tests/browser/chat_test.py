#!/usr/bin/python3
"""The demo page in a real browser: chat_test.py WSEDGE_BINARY ARTIFACT_DIR

Starts wsedge over wss:// with a self-signed certificate and its embedded chat backend, opens
the page it serves at / in two headless Chromium pages, checks that both negotiated
permessage-deflate, that what page A sends (short, and long enough to be compressed) reaches
page B, and that after A joins another room B no longer sees A. Then, against a server
that requires tokens (docs/AUTH.md), a page connects with its token as a `bearer.` subprotocol
(browsers cannot set headers) and is greeted by the token's name; without one it is refused. Leaves a screenshot of
page B in ARTIFACT_DIR/chat.png (also when a check fails: it shows what B saw). Exit status 0
when every check passed, 1 otherwise.

Needs python3-selenium and chromium-driver (Debian's /usr/bin/python3 has them).
"""
import os
import sys
import tempfile
import time

import jwt  # python3-jwt: the token is minted by a third party, as an identity provider would

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from log_lines import sum_counters  # noqa: E402
from wsedge_server import host_port, make_cert, start_server  # noqa: E402

WAIT_S = 15
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser(profile_dir):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new",
                 "--no-sandbox",  # containers run as root, where the sandbox cannot start
                 "--ignore-certificate-errors",  # the server's certificate is self-signed
                 "--disable-gpu",
                 "--disable-dev-shm-usage",  # a container's small /dev/shm crashes tabs
                 "--window-size=900,700",
                 f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait(driver, condition, what):
    try:
        return WebDriverWait(driver, WAIT_S).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out after {WAIT_S} s waiting for {what}") from None


def messages(driver):
    return driver.find_element(By.ID, "messages").text


def submit(driver, input_id, button_id, text):
    field = driver.find_element(By.ID, input_id)
    field.clear()
    field.send_keys(text)
    driver.find_element(By.ID, button_id).click()


def open_chat(driver, url, name):
    driver.get(url)
    # Exactly "connected": "disconnected (1006), retrying" contains it too.
    wait(driver, EC.text_to_be_present_in_element_attribute((By.ID, "status"), "data-state",
                                                            "connected"),
         f"{name}: #status to say connected")
    assert driver.find_element(By.ID, "status").text == "connected"
    # The welcome comes after the backend's SUBSCRIBE: once it is shown the room is set up.
    wait(driver, EC.text_to_be_present_in_element((By.ID, "current-room"), "lobby"),
         f"{name}: the welcome naming the lobby")


def chat(page_a, page_b, url):
    open_chat(page_a, url, "A")
    open_chat(page_b, url, "B")
    # Chromium always offers permessage-deflate; the server's default mode accepts it
    # (docs/DEFLATE.md). `ws` is the page's own socket (a global of its script).
    for name, page in (("A", page_a), ("B", page_b)):
        ext = page.execute_script("return ws.extensions")
        assert ext.startswith("permessage-deflate"), f"{name}: ws.extensions is {ext!r}"

    submit(page_a, "nick", "rename", "alice")
    wait(page_a, EC.text_to_be_present_in_element((By.ID, "messages"), "you are now alice"),
         "A: the rename confirmed")
    # Markup from another user is shown as text, never parsed.
    submit(page_a, "text", "send", "hello from A <b>not bold</b>")
    wait(page_b, EC.text_to_be_present_in_element((By.ID, "messages"), "hello from A"),
         "B: A's message")
    assert "alice" in messages(page_b), "B shows the message without A's name"
    assert "<b>not bold</b>" in messages(page_b), "B rendered A's text as HTML"
    assert not page_b.find_elements(By.CSS_SELECTOR, "#messages b"), "B made elements of A's text"
    # Long enough to be compressed both ways (past --deflate-min-size).
    long_text = "compressed " + "all the way from A to B " * 20 + "end"
    submit(page_a, "text", "send", long_text)
    wait(page_b, EC.text_to_be_present_in_element((By.ID, "messages"), long_text),
         "B: A's long message")

    submit(page_a, "room", "join", "elsewhere")
    wait(page_a, EC.text_to_be_present_in_element((By.ID, "current-room"), "elsewhere"),
         "A: the move to room elsewhere")
    # A sees its own message in its new room, so it has been published before B's marker is
    # even sent: had B still been subscribed, it would have got it before the marker.
    submit(page_a, "text", "send", "second from A")
    wait(page_a, EC.text_to_be_present_in_element((By.ID, "messages"), "second from A"),
         "A: its message in room elsewhere")
    submit(page_b, "text", "send", "marker from B")
    wait(page_b, EC.text_to_be_present_in_element((By.ID, "messages"), "marker from B"),
         "B: its own marker")
    assert "second from A" not in messages(page_b), "B still sees A after A left the lobby"


# Resolves to [protocol, first message] of a WebSocket opened with the token as a subprotocol,
# or ["closed", code] when the upgrade is refused (a browser only reports 1006 then).
TOKEN_JS = """
const [url, token, done] = arguments;
const offer = token ? ["wsedge", "bearer." + token] : ["wsedge"];
const ws = new WebSocket(url, offer);
ws.onmessage = (e) => { done([ws.protocol, e.data]); ws.close(); };
ws.onclose = (e) => done(["closed", e.code]);
"""


def token_in_browser(page, binary, tmp):
    secret = os.urandom(31) + b"s"  # not a trailing newline, which wsedge drops
    secret_file = os.path.join(tmp, "hs256.key")
    with open(secret_file, "wb") as f:
        f.write(secret)
    token = jwt.encode({"sub": "browser-user", "exp": int(time.time()) + 300}, secret,
                       algorithm="HS256")
    with start_server(binary, "--cores", "1", "--auth-hs256-secret-file", secret_file,
                      app="bridge", tls=make_cert(tmp, "localhost")) as (ws_url, proc):
        host, port = host_port(ws_url)
        page.get(f"https://{host}:{port}/")  # the page is public; its WebSocket is not
        page.set_script_timeout(WAIT_S)
        got = page.execute_async_script(TOKEN_JS, f"wss://{host}:{port}/", token)
        assert got[0] == "wsedge", f"the answered subprotocol: {got}"
        assert "as browser-user" in got[1], f"the greeting does not name the token's user: {got}"
        got = page.execute_async_script(TOKEN_JS, f"wss://{host}:{port}/", None)
        assert got == ["closed", 1006], f"a page without a token got in: {got}"
    # Chromium's page load and WebSockets went over our own TLS record layer (docs/TLS-RECORD.md).
    handed = sum_counters(proc.log, "tls_own_record_layer_total", "core_stopped")
    assert handed.get("tls_own_record_layer_total", 0) >= 2, f"not on our record layer: {handed}"


def main(argv):
    if len(argv) != 3:
        print("usage: chat_test.py WSEDGE_BINARY ARTIFACT_DIR", file=sys.stderr)
        return 2
    binary, artifacts = argv[1], argv[2]
    os.makedirs(artifacts, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        with start_server(binary, "--cores", "2", app="bridge", tls=make_cert(tmp, "localhost")) as (ws_url, _):
            host, port = host_port(ws_url)
            url = f"https://{host}:{port}/"
            page_a = browser(os.path.join(tmp, "profile-a"))
            page_b = None
            try:
                page_b = browser(os.path.join(tmp, "profile-b"))
                chat(page_a, page_b, url)
                print("ok: B got A's message, and not A's after A moved to another room")
                token_in_browser(page_a, binary, tmp)
                print("ok: a page's token in Sec-WebSocket-Protocol let it in, and no token did not")
                return 0
            except AssertionError as e:
                print(f"FAIL: {e}", file=sys.stderr)
                for name, page in (("A", page_a), ("B", page_b)):
                    try:
                        print(f"--- page {name} #messages:\n{messages(page)}", file=sys.stderr)
                    except (AttributeError, WebDriverException) as why:  # no page, or no list
                        print(f"--- page {name}: {why}", file=sys.stderr)
                return 1
            finally:
                if page_b is not None:
                    page_b.save_screenshot(os.path.join(artifacts, "chat.png"))
                    page_b.quit()
                page_a.quit()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
