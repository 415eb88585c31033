"""Drives the trace HTML view in headless Chromium with real input events
(Chrome DevTools Protocol over --remote-debugging-pipe) and prints what the
page did, as JSON: the view after a wheel zoom and after a drag, and the
tooltip over a wait slice. Used by spec/trace_html_spec.lua.
    python3 spec/support/trace_cdp.py PAGE.html PROFILE_DIR
"""
import json
import os
import subprocess
import sys
import time

page, profile = sys.argv[1], sys.argv[2]
r3, w3 = os.pipe()  # chromium reads commands on its fd 3
r4, w4 = os.pipe()  # and answers on its fd 4


def child_fds():
    os.dup2(r3, 3)
    os.dup2(w4, 4)


proc = subprocess.Popen(
    ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
     "--disable-background-networking", "--disable-component-update", "--disable-sync",
     "--user-data-dir=" + profile, "--window-size=1200,800", "--remote-debugging-pipe", "about:blank"],
    pass_fds=(3, 4), preexec_fn=child_fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os.close(r3)
os.close(w4)
pending = b""
last_id = 0


def send(method, params=None, session=None):
    global last_id, pending
    last_id += 1
    msg = {"id": last_id, "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    os.write(w3, json.dumps(msg).encode() + b"\0")
    while True:
        while b"\0" not in pending:
            chunk = os.read(r4, 65536)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            pending += chunk
        line, pending = pending.split(b"\0", 1)
        m = json.loads(line)
        if m.get("id") == last_id:
            if "error" in m:
                raise RuntimeError(str(m["error"]))
            return m.get("result")


out = {}
try:
    target = send("Target.createTarget", {"url": "file://" + page})["targetId"]
    s = send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def js(expr):
        return send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, s)["result"].get("value")

    def settle(before):  # wait for the next frame's redraw
        for _ in range(100):
            v = js("document.body.dataset.view")
            if v != before:
                return v
            time.sleep(0.05)
        return js("document.body.dataset.view")

    def mouse(kind, x, y, **kw):
        send("Input.dispatchMouseEvent", dict(type=kind, x=x, y=y, **kw), s)

    for _ in range(200):
        if js("document.body && document.body.dataset.rendered") == "ok":
            break
        time.sleep(0.05)
    time.sleep(0.3)  # a redraw for the width the page settled on
    out["initial"] = js("document.body.dataset.view")
    out["plot"] = js("[190, document.getElementById('timeline-svg').getBoundingClientRect().left,"
                     " +document.body.dataset.plotW]")
    left = out["plot"][1]
    mouse("mouseWheel", left + 500, 200, deltaX=0, deltaY=-200)
    out["wheel"] = settle(out["initial"])
    mouse("mousePressed", left + 600, 200, button="left", clickCount=1)
    mouse("mouseMoved", left + 500, 200, button="left", buttons=1)
    mouse("mouseReleased", left + 500, 200, button="left", clickCount=1)
    out["drag"] = settle(out["wheel"])
    mouse("mousePressed", left + 600, 200, button="left", clickCount=2)
    mouse("mouseReleased", left + 600, 200, button="left", clickCount=2)
    out["reset"] = settle(out["drag"])
    at = js("(function () { var all = document.querySelectorAll('rect.s.c-wait');"
            " for (var i = 0; i < all.length; i++) { var b = all[i].getBoundingClientRect(),"
            " x = b.left + b.width / 2, y = b.top + b.height / 2;"
            " if (document.elementFromPoint(x, y) === all[i]) return [x, y]; } return null; })()")
    if at:
        mouse("mouseMoved", at[0], at[1])
        time.sleep(0.2)
        out["tooltip"] = js("document.getElementById('tooltip').style.display + '|' +"
                            " document.getElementById('tooltip').innerText")
    out["error"] = js("document.body.dataset.error || ''")
finally:
    proc.kill()
    proc.wait()
print(json.dumps(out))
