#!/usr/bin/env python3
"""Drives the braid REPL through a real pseudo-terminal (line editing, history,
multi-line input, printing). Usage: python3 spec/repl_test.py [build/braid]"""

import os
import pty
import re
import select
import signal
import sys
import tempfile
import termios
import time

EXE = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BRAID_EXE", "build/braid"))
STEP_TIMEOUT = 15.0   # seconds to wait for one expected output
TOTAL_TIMEOUT = 120   # the whole run never hangs longer than this

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]|\x07")

UP = "\x1b[A"
CTRL_A = "\x01"
CTRL_C = "\x03"
CTRL_D = "\x04"


class Repl:
    """A braid process on a pty; expect() matches regexes on the cleaned output."""

    def __init__(self, env, args=()):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execve(EXE, [EXE, *args], env)
            finally:
                os._exit(127)
        self.raw = b""
        self.pos = 0

    def text(self):
        return ANSI.sub(b"", self.raw).replace(b"\r", b"").decode("utf-8", "replace")

    def _read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 4096)
        except OSError:  # EIO: the child closed the pty
            data = b""
        if not data:
            return None
        self.raw += data
        return True

    def expect(self, pattern, timeout=STEP_TIMEOUT):
        rx = re.compile(pattern, re.S)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text(), self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for %r; output since last match:\n%r"
                                     % (pattern, self.text()[self.pos:]))
            if self._read(left) is None:
                m = rx.search(self.text(), self.pos)
                if m:
                    self.pos = m.end()
                    return m
                raise AssertionError("braid exited while waiting for %r; output:\n%r"
                                     % (pattern, self.text()[self.pos:]))

    def editing(self, timeout=STEP_TIMEOUT):
        """Waits until libedit has the terminal in raw mode (ICANON off), i.e. it
        is reading a line. Input typed while the terminal is still cooked is
        seen by the kernel's line discipline first (echoed twice, Ctrl-D turned
        into an end-of-file marker that libedit never sees)."""
        deadline = time.monotonic() + timeout
        while termios.tcgetattr(self.fd)[3] & termios.ICANON:
            if time.monotonic() > deadline:
                raise AssertionError("terminal never left canonical mode; output:\n%r"
                                     % self.text()[self.pos:])
            if self._read(0.01) is None:
                raise AssertionError("braid exited; output:\n%r" % self.text()[self.pos:])

    def running(self, timeout=STEP_TIMEOUT):
        """Waits until libedit has given the terminal back (ICANON on): the
        line was accepted and runs."""
        deadline = time.monotonic() + timeout
        while not termios.tcgetattr(self.fd)[3] & termios.ICANON:
            if time.monotonic() > deadline:
                raise AssertionError("terminal never went back to canonical mode")
            if self._read(0.01) is None:
                raise AssertionError("braid exited; output:\n%r" % self.text()[self.pos:])

    def send(self, s, wait_editing=True):
        if wait_editing:
            self.editing()
        os.write(self.fd, s.encode())

    def line(self, s):
        self.send(s + "\r")

    def quit(self):
        """Ctrl-D at a fresh prompt (a Ctrl-D typed ahead while the terminal is
        still in cooked mode is consumed by the line discipline); expects exit 0."""
        if not self.text().endswith("> "):
            self.expect(r"> $")
        self.send(CTRL_D)
        status = self.wait()
        assert status == 0, "exit status %r" % status

    def wait(self, timeout=STEP_TIMEOUT):
        """Drains output until the child exits; returns its exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while self._read(0.05):
                    pass
                self.close()
                return os.waitstatus_to_exitcode(status)
            self._read(0.05)
        raise AssertionError("braid did not exit; output:\n%r" % self.text()[self.pos:])

    def close(self):
        try:
            os.close(self.fd)
        except OSError:
            pass

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (OSError, ChildProcessError):
            pass
        self.close()


def read_history(path):
    """History file lines, with libedit's vis(3) escapes (\\040 ...) decoded."""
    with open(path, "rb") as f:
        data = f.read().decode("utf-8", "replace")
    return [re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), l) for l in data.splitlines()]


TMP = tempfile.mkdtemp(prefix="braid-repl-")
HIST = os.path.join(TMP, "history")
BASE_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": TMP,
    "TERM": "xterm",
    "LANG": "C.UTF-8",
    "BRAID_HISTORY": HIST,
}
for _name in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS",
              "LUA_PATH", "LUA_CPATH", "LUA_PATH_5_4", "LUA_CPATH_5_4"):
    if _name in os.environ:  # sanitizer builds report through these
        BASE_ENV[_name] = os.environ[_name]

live = []


def start(env=None, args=()):
    r = Repl(dict(BASE_ENV if env is None else env), args)
    live.append(r)
    return r


def interrupt(r):
    """Sends Ctrl-C to a running line until the REPL reports the interrupt
    (a SIGINT that lands before the line runs is harmless: resend)."""
    r.running()
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        r.send(CTRL_C, wait_editing=False)
        try:
            r.expect(r"interrupted!", timeout=1.0)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def test_banner_and_expression():
    r = start()
    r.expect(r"braid \S+ \(Lua 5\.4\)\n")
    r.expect(r"> $")
    r.line("1+1")
    r.expect(r"\n2\n")
    r.line("1, 'a', nil, true")
    r.expect(r"\n1\ta\tnil\ttrue\n")
    r.line("=2^10")
    r.expect(r"\n1024\.0\n")
    r.line("x = 40")
    r.line("x + 2")
    r.expect(r"\n42\n")
    r.quit()


def test_multiline_function():
    r = start()
    r.expect(r"> $")
    r.line("function sq(n)")
    r.expect(r">> $")
    r.line("  local m = n * n")
    r.expect(r">> $")
    r.line("  return m")
    r.expect(r">> $")
    r.line("end")
    r.expect(r"\n> $")
    r.line("sq(7)")
    r.expect(r"\n49\n")
    r.line("for i = 1, 3 do")
    r.expect(r">> $")
    r.line("print('i=' .. i) end")
    r.expect(r"i=1\ni=2\ni=3\n")
    r.quit()


def test_error_then_continue():
    r = start()
    r.expect(r"> $")
    r.line("error('oops')")
    r.expect(r"stdin:1: oops\nstack traceback:")
    r.line("local t = nil; return t.x")
    r.expect(r"attempt to index")
    r.line("return +")
    r.expect(r"unexpected symbol")
    r.line("6*7")
    r.expect(r"\n42\n")
    r.quit()


def test_print_output():
    r = start()
    r.expect(r"> $")
    r.line("print('hello', 3, nil)")
    r.expect(r"\nhello\t3\tnil\n")
    r.line("io.write('via io.write\\n') and nil")
    r.expect(r"\nvia io.write\nnil\n")
    r.quit()


def test_line_editing():
    r = start()
    r.expect(r"> $")
    r.send("2*3")
    r.send(CTRL_A)          # to start of line
    r.send("1+")            # now "1+2*3"
    r.send("\r")
    r.expect(r"\n7\n")
    r.quit()


def test_history_written_and_recalled():
    if os.path.exists(HIST):
        os.unlink(HIST)
    r = start()
    r.expect(r"> $")
    r.line("100+11")
    r.expect(r"\n111\n")
    r.line("function h()")
    r.expect(r">> $")
    r.line("end")
    r.expect(r"\n> $")
    r.quit()
    hist = read_history(HIST)
    assert any("100+11" in l for l in hist), hist
    assert any("function h()" in l for l in hist), hist
    # a new session loads it: Up recalls the last line... which is the function;
    # Up twice gives 100+11
    r = start()
    r.expect(r"> $")
    r.send(UP)
    r.send(UP)
    r.send("\r")
    r.expect(r"\n111\n")
    r.quit()


def test_default_history_path():
    env = dict(BASE_ENV)
    del env["BRAID_HISTORY"]
    home = tempfile.mkdtemp(prefix="home-", dir=TMP)
    env["HOME"] = home
    r = start(env)
    r.expect(r"> $")
    r.line("5+5")
    r.expect(r"\n10\n")
    r.quit()
    assert any("5+5" in l for l in read_history(os.path.join(home, ".braid_history")))


def test_os_exit_in_repl():
    r = start()
    r.expect(r"> $")
    r.line("os.exit(5)")
    assert r.wait() == 5


def test_interactive_after_script():
    script = os.path.join(TMP, "s.lua")
    with open(script, "w") as f:
        f.write("greeting = 'hi from ' .. arg[0]:match('[^/]*$')\n")
    r = start(args=("-i", script))
    r.expect(r"braid \S+ \(Lua 5\.4\)\n")
    r.expect(r"> $")
    r.line("greeting")
    r.expect(r"\nhi from s\.lua\n")
    r.quit()


def test_ctrl_c_interrupts_running_code():
    r = start()
    r.expect(r"> $")
    r.line("while true do end")
    interrupt(r)
    r.expect(r"> $")
    r.line("1+2")
    r.expect(r"\n3\n")
    r.quit()


def test_ctrl_c_at_prompt():
    r = start()
    r.expect(r"> $")
    r.send("1+")
    r.send(CTRL_C)              # discards the line, new prompt
    r.expect(r"\^C\n> $")
    r.line("2+2")
    r.expect(r"\n4\n")
    r.line("function f()")
    r.expect(r">> $")
    r.send(CTRL_C)              # abandons the unfinished chunk
    r.expect(r"\^C\n> $")
    r.line("f")
    r.expect(r"\nnil\n")
    r.quit()


def test_braid_modules_are_globals():
    r = start()
    r.expect(r"> $")
    r.line("braid.version")
    r.expect(r"\n\d+\.\d+\.\d+\n")
    r.line("rawget(_G, 'queue')")       # not bound yet...
    r.expect(r"\nnil\n")
    r.line("queue.Queue ~= nil, rawget(_G, 'queue') == queue")  # ...bound on first use
    r.expect(r"\ntrue\ttrue\n")
    r.line("threading.current_thread().name")
    r.expect(r"\nMainThread\n")
    r.line("nosuchmodule")
    r.expect(r"\nnil\n")
    r.quit()


def test_thread_output_above_prompt():
    r = start()
    r.expect(r"> $")
    r.line("threading.Thread{target = function() braid.sleep(1.0) print('tick') end}:start()")
    r.expect(r"\n> $")
    r.send("12")                        # a line being edited when the thread prints
    r.expect(r"tick\n> 12$", timeout=STEP_TIMEOUT)  # printed above, line redrawn
    r.send("3\r")
    r.expect(r"\n123\n")
    r.quit()


def test_ctrl_c_interrupts_blocked_wait():
    r = start()
    r.expect(r"> $")
    r.line("queue.Queue():get()")
    r.running()                         # a Ctrl-C typed at the prompt would discard the line
    interrupt(r)
    r.expect(r"> $")
    r.line("2+3")
    r.expect(r"\n5\n")
    r.quit()


def test_tab_completion():
    r = start()
    r.expect(r"> $")
    r.send("collectg\t")
    r.send("('count') > 0\r")
    r.expect(r"collectgarbage\('count'\) > 0.*\ntrue\n")
    r.send("threading.current_t\t")    # a lazily bound module's fields
    r.send("().name\r")
    r.expect(r"threading\.current_thread\(\)\.name.*\nMainThread\n")
    r.line("q = queue.Queue()")
    r.send("q:put_n\t")                # methods through the metatable
    r.send("(1) or q:qsize()\r")
    r.expect(r"q:put_nowait\(1\) or q:qsize\(\).*\n1\n")
    r.quit()


def test_asyncio_hook():
    """The contract braid.asyncio implements for asyncio at the prompt: when
    it is loaded and has __repl_run, each line's chunk runs through it."""
    r = start()
    r.expect(r"> $")
    r.line("package.loaded['braid.asyncio'] = {__repl_run = function(chunk) return 'hooked', chunk() end}")
    r.expect(r"\n> $")
    r.line("20 + 22")
    r.expect(r"\nhooked\t42\n")
    r.line("error('inside')")            # errors still reach the REPL's report
    r.expect(r"stdin:1: inside")
    r.quit()


def test_asyncio_at_the_prompt():
    """Lines run as tasks on one loop that persists: a line may suspend, and a
    task started on one line keeps running while the next is typed."""
    r = start()
    r.expect(r"> $")
    r.line("asyncio.sleep(0.01, 'slept')")
    r.expect(r"\nslept\n")
    r.line("t = asyncio.create_task(function() for i = 1, 3 do asyncio.sleep(0.05) print('tick', i) end return 'ticked' end)")
    r.expect(r"tick\t3\n")                 # printed while the prompt waits for keys
    r.line("asyncio.await(t)")
    r.expect(r"\nticked\n")
    r.line("asyncio.run(function() return 6 * 7 end)")
    r.expect(r"\n42\n")
    r.line("asyncio.sleep(10)")
    interrupt(r)
    r.line("1 + 1")
    r.expect(r"\n2\n")
    r.quit()


def test_ctrl_d_waits_for_threads():
    r = start()
    r.expect(r"> $")
    r.line("threading.Thread{target = function() braid.sleep(1.0) print('worker done') end}:start()")
    r.expect(r"\n> $")
    r.send(CTRL_D)
    r.expect(r"waiting for 1 non-daemon thread to finish")
    r.expect(r"worker done\n")
    assert r.wait() == 0


def main():
    if not os.access(EXE, os.X_OK):
        print("not executable: %s" % EXE)
        return 1

    def on_alarm(signum, frame):
        raise TimeoutError("overall timeout of %ds exceeded" % TOTAL_TIMEOUT)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TOTAL_TIMEOUT)
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print("ok   %s" % name)
        except TimeoutError as e:
            failed += 1
            print("FAIL %s: %s" % (name, e))
            break
        except Exception as e:  # noqa: BLE001 - report every failure
            failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
        finally:
            while live:
                live.pop().kill()
    signal.alarm(0)
    print("%d passed, %d failed" % (passed, failed + (len(tests) - passed - failed)))
    return 0 if passed == len(tests) else 1


if __name__ == "__main__":
    sys.exit(main())
