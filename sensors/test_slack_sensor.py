"""Tests for slack_sensor.py with a stub of st2reactor's Sensor base class.

    python3 sensors/test_slack_sensor.py            # plain threads
    python3 sensors/test_slack_sensor.py --eventlet # patched first, exactly as st2 does it

With --eventlet the process is monkey-patched before anything else is imported, with the
arguments st2common's monkey_patch() uses and the select.poll workaround st2's sensor wrapper
applies, so threads are green threads as in st2's sensor container (eventlet must be
installed; st2 3.9 pins 0.40.3). SLACKCTL_BIN must name a slackctl binary: the end-to-end tests
start `slackctl emulator` and run the sensor against it, in this process and as a separate
process shaped like st2's sensor wrapper (for SIGTERM and SIGKILL). `cargo test` runs this file
in both modes (tests/integration/sensor.rs).
"""

import sys

EVENTLET = "--eventlet" in sys.argv
if EVENTLET:
    sys.argv.remove("--eventlet")
    import eventlet  # noqa: E402

    # st2common.util.monkey_patch.monkey_patch(), as sensor_wrapper.py calls it at import.
    eventlet.monkey_patch(os=True, select=True, socket=True, thread=True, time=True)
    # st2common.util.monkey_patch.use_select_poll_workaround(nose_only=False), which the
    # wrapper also calls: the blocking select.poll comes back.
    import select as _select  # noqa: E402
    import subprocess as _subprocess  # noqa: E402
    import selectors as _selectors  # noqa: E402

    _select.poll = eventlet.patcher.original("select").poll
    sys.modules["select"] = _select
    _subprocess.select = _select
    sys.modules["selectors"] = _selectors
    _selectors.select = sys.modules["select"]

import atexit  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import select  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
import unittest  # noqa: E402
import urllib.request  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# A stand-in for st2reactor.sensor.base, enough for the sensor to import and run.
st2reactor = types.ModuleType("st2reactor")
st2reactor.sensor = types.ModuleType("st2reactor.sensor")
base = types.ModuleType("st2reactor.sensor.base")


class Sensor(object):
    def __init__(self, sensor_service, config=None):
        self._sensor_service = sensor_service
        self._config = config or {}

    @property
    def sensor_service(self):
        return self._sensor_service

    @property
    def config(self):
        return self._config


base.Sensor = Sensor
sys.modules["st2reactor"] = st2reactor
sys.modules["st2reactor.sensor"] = st2reactor.sensor
sys.modules["st2reactor.sensor.base"] = base
sys.path.insert(0, HERE)

import slack_sensor  # noqa: E402


class Logger(object):
    def __init__(self, echo=None):
        self.lines = []
        self.echo = echo

    def _log(self, msg, *args):
        line = msg % args if args else msg
        self.lines.append(line)
        if self.echo is not None:
            self.echo.write(line + "\n")
            self.echo.flush()

    debug = info = warning = error = exception = _log


class Service(object):
    """Records dispatches. Like st2's (a publish to RabbitMQ over a green socket), dispatch
    yields to other green threads once, so a shim that blocks the process shows up here."""

    def __init__(self, out=None, log=None):
        self.logger = Logger(log)
        self.dispatched = []
        self.out = out

    def get_logger(self, name):
        return self.logger

    def dispatch(self, trigger, payload=None, trace_tag=None):
        self.dispatched.append((trigger, payload, trace_tag, time.monotonic()))
        if self.out is not None:
            self.out.write(json.dumps({"trigger": trigger, "payload": payload}) + "\n")
            self.out.flush()
        time.sleep(0)


def wait_for(cond, timeout=8.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def binary():
    b = os.environ.get("SLACKCTL_BIN")
    if not b:
        raise unittest.SkipTest("SLACKCTL_BIN not set")
    return b


class Emulator(object):
    def __init__(self):
        self.proc = subprocess.Popen(
            [binary(), "emulator", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.ready = json.loads(self.proc.stdout.readline())
        self.base = self.ready["base_url"]

    def config(self, **sensor):
        cfg = {"app_token": self.ready["tokens"]["app"]}
        cfg.update(sensor)
        return {
            "sensor": cfg,
            "action_token": self.ready["tokens"]["bot"],
            "api_url": self.ready["api_url"],
        }

    def request(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base + path, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def post(self, channel, text):
        answer = self.request("/_emulator/messages", {"channel": channel, "text": text})
        assert answer["ok"], answer
        return answer

    def sockets(self):
        return self.request("/_emulator/sockets")

    def socket_connected(self):
        return any(c["state"] == "open" for c in self.sockets()["connections"])

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=5)
        self.proc.stdout.close()


def gone(pid):
    """True once pid has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def child_pid(lines):
    for line in lines:
        if line.startswith("started slackctl sensor (pid "):
            return int(line.split("(pid ")[1].rstrip(")"))
    return None


class ConfigTests(unittest.TestCase):
    CONFIG = {
        "sensor": {
            "app_token": "xapp-secret-1",
            "token": "xoxp-rtm-secret",
            "signing_secret": "signing-secret-1",
            "strip_formatting": True,
            "allow_bot_messages": False,
            "mode": "auto",
            "listen": "127.0.0.1:3000",
        },
        "action_token": "xoxb-secret-2",
        "state_backend": "redis://:redis-secret-3@redis.internal:6379/2",
    }

    def test_config_goes_to_the_environment_never_the_command_line(self):
        env = slack_sensor.build_env(
            self.CONFIG, {"PATH": "/bin", "SLACK_TOKEN": "from-st2-process"}, "/tmp/empty.yaml"
        )
        self.assertEqual(env["SLACK_APP_TOKEN"], "xapp-secret-1")
        self.assertEqual(env["SLACK_RTM_TOKEN"], "xoxp-rtm-secret")
        self.assertEqual(env["SLACK_TOKEN"], "xoxb-secret-2")
        self.assertEqual(env["SLACK_SIGNING_SECRET"], "signing-secret-1")
        self.assertEqual(env["SLACKCTL_STRIP_FORMATTING"], "true")
        self.assertEqual(env["SLACKCTL_ALLOW_BOT_MESSAGES"], "false")
        self.assertEqual(env["SLACKCTL_CONFIG"], "/tmp/empty.yaml")
        self.assertEqual(env["SLACKCTL_STATE_BACKEND"],
                         "redis://:redis-secret-3@redis.internal:6379/2")
        self.assertEqual(env["PATH"], "/bin")
        args = slack_sensor.build_args("/usr/bin/slackctl", self.CONFIG, "/tmp/state")
        self.assertEqual(args[:2], ["/usr/bin/slackctl", "sensor"])
        self.assertIn("--listen", args)
        self.assertIn("--stop-on-stdin-eof", args)
        self.assertEqual(args[args.index("--state") + 1], "/tmp/state")
        # With a shared backend the shim passes no local directory.
        self.assertNotIn("--state", slack_sensor.build_args("slackctl", self.CONFIG, None))
        for secret in ("xapp-secret-1", "xoxp-rtm-secret", "xoxb-secret-2", "signing-secret-1",
                       "redis-secret-3"):
            self.assertNotIn(secret, " ".join(args))

    def test_direct_messages_are_off_unless_the_config_turns_them_on(self):
        for sensor, dropped in [({}, True), ({"direct_messages": False}, True),
                                ({"direct_messages": True}, False)]:
            args = slack_sensor.build_args("slackctl", {"sensor": sensor}, "/tmp/s")
            self.assertEqual("--no-direct-messages" in args, dropped, sensor)

    def test_the_services_state_backend_beats_the_pack_configs(self):
        service = {"SLACKCTL_STATE_BACKEND": "redis://service-host:6379/0"}
        env = slack_sensor.build_env(self.CONFIG, service, "/tmp/e")
        self.assertEqual(env["SLACKCTL_STATE_BACKEND"], "redis://service-host:6379/0")
        env = slack_sensor.build_env({}, {}, "/tmp/e")
        self.assertNotIn("SLACKCTL_STATE_BACKEND", env)

    def test_st2_process_variables_do_not_leak_in(self):
        env = slack_sensor.build_env({}, {"SLACK_TOKEN": "stray", "HOME": "/h"}, "/tmp/e")
        self.assertNotIn("SLACK_TOKEN", env)
        self.assertEqual(env["HOME"], "/h")

    def test_state_dir_must_be_this_users_and_not_writable_by_others(self):
        base = tempfile.mkdtemp()
        fresh = os.path.join(base, "state")
        self.assertEqual(slack_sensor.checked_state_dir(fresh), fresh)
        self.assertEqual(os.stat(fresh).st_mode & 0o777, 0o700)
        self.assertEqual(slack_sensor.checked_state_dir(fresh), fresh, "an existing one is kept")
        os.chmod(fresh, 0o777)
        with self.assertRaises(RuntimeError):
            slack_sensor.checked_state_dir(fresh)
        link = os.path.join(base, "link")
        os.symlink(base, link)
        with self.assertRaises(RuntimeError):
            slack_sensor.checked_state_dir(link)
        shutil.rmtree(base)

    def test_trace_tag_is_channel_and_ts(self):
        tag = slack_sensor.trace_tag({"channel": {"id": "C1"}, "timestamp_raw": "1.000100"})
        self.assertEqual(tag, "slack:C1:1.000100")

    def test_binary_lookup_order(self):
        tmp = tempfile.mkdtemp()
        venv_bin, path_bin = os.path.join(tmp, "venv"), os.path.join(tmp, "path")
        configured = os.path.join(tmp, "configured-slackctl")
        for d in (venv_bin, path_bin):
            os.mkdir(d)
        for p in (os.path.join(venv_bin, "slackctl"), os.path.join(path_bin, "slackctl"),
                  configured):
            with open(p, "w") as f:
                f.write("#!/bin/sh\n")
            os.chmod(p, 0o755)
        cfg = {"slackctl_path": configured}
        find = slack_sensor.find_binary
        self.assertEqual(find(cfg, {"SLACKCTL_BIN": "/x/slackctl", "PATH": path_bin},
                              [venv_bin]), "/x/slackctl")
        self.assertEqual(find(cfg, {"PATH": path_bin}, [venv_bin]),
                         os.path.join(venv_bin, "slackctl"))
        self.assertEqual(find(cfg, {"PATH": path_bin}, [tmp]), os.path.join(path_bin, "slackctl"))
        self.assertEqual(find(cfg, {"PATH": "/nonexistent"}, [tmp]), configured)
        with self.assertRaises(RuntimeError) as ctx:
            find({}, {"PATH": "/nonexistent"}, [tmp])
        self.assertIn("slackctl-bin", str(ctx.exception))
        with self.assertRaises(RuntimeError):
            find({"slackctl_path": os.path.join(tmp, "missing")}, {"PATH": "/nonexistent"}, [tmp])


class RestartTests(unittest.TestCase):
    def test_restarts_a_dead_subprocess_and_dispatches_its_lines(self):
        tmp = tempfile.mkdtemp()
        script = os.path.join(tmp, "fake-slackctl")
        with open(script, "w") as f:
            f.write(
                "#!/bin/sh\n"
                'printf \'{"trigger": "slack.message", "payload": {"text": "%s", "argv": "%s", '
                '"channel": {"id": "C1"}, "timestamp_raw": "1.1"}}\\n\' "$SLACK_APP_TOKEN" "$*"\n'
                "echo 'not json'\n"
                "echo 'to stderr' >&2\n"
                "exit 3\n"
            )
        os.chmod(script, os.stat(script).st_mode | stat.S_IXUSR)
        old = os.environ.get("SLACKCTL_BIN")
        os.environ["SLACKCTL_BIN"] = script
        try:
            service = Service()
            sensor = slack_sensor.SlackSensor(service, {"sensor": {"app_token": "xapp-e2e-1"}})
            sensor.RESTART_DELAY = 0.05
            sensor.setup()
            runner = threading.Thread(target=sensor.run, daemon=True)
            runner.start()
            self.assertTrue(wait_for(lambda: len(service.dispatched) >= 2), service.logger.lines)
            sensor.cleanup()
            runner.join(timeout=5)
            self.assertFalse(runner.is_alive())
        finally:
            if old is None:
                os.environ.pop("SLACKCTL_BIN", None)
            else:
                os.environ["SLACKCTL_BIN"] = old
        trigger, payload, tag, _ = service.dispatched[0]
        self.assertEqual(trigger, "slack.message")
        self.assertEqual(payload["text"], "xapp-e2e-1")
        self.assertNotIn("xapp", payload["argv"])
        self.assertEqual(tag, "slack:C1:1.1")
        self.assertTrue(any("restarting" in l for l in service.logger.lines))
        self.assertTrue(any("not a trigger" in l for l in service.logger.lines))
        self.assertTrue(any(l == "to stderr" for l in service.logger.lines))


    def test_a_child_that_ignores_sigterm_is_killed_after_the_stop_timeout(self):
        tmp = tempfile.mkdtemp()
        script = os.path.join(tmp, "stubborn-slackctl")
        with open(script, "w") as f:
            f.write("#!/bin/sh\ntrap '' TERM\necho 'ignoring SIGTERM' >&2\n"
                    "while :; do sleep 0.05; done\n")
        os.chmod(script, 0o755)
        old = os.environ.get("SLACKCTL_BIN")
        os.environ["SLACKCTL_BIN"] = script
        try:
            service = Service()
            sensor = slack_sensor.SlackSensor(service, {})
            sensor.STOP_TIMEOUT = 0.5
            sensor.setup()
            runner = threading.Thread(target=sensor.run, daemon=True)
            runner.start()
            self.assertTrue(wait_for(lambda: "ignoring SIGTERM" in service.logger.lines))
            pid = child_pid(service.logger.lines)
            started = time.monotonic()
            sensor.cleanup()
            runner.join(timeout=5)
            self.assertFalse(runner.is_alive())
            self.assertLess(time.monotonic() - started, 3.0)
            self.assertTrue(wait_for(lambda: gone(pid), 2.0))
            self.assertTrue(any("did not stop in time" in l for l in service.logger.lines))
        finally:
            if old is None:
                os.environ.pop("SLACKCTL_BIN", None)
            else:
                os.environ["SLACKCTL_BIN"] = old


class EndToEndTests(unittest.TestCase):
    """The sensor in this process (run() in a thread, green under --eventlet) against the
    emulator over Socket Mode."""

    def setUp(self):
        self.emu = Emulator()
        self.addCleanup(self.emu.close)
        self.runner = None

    def start(self, **sensor_config):
        service = Service()
        sensor = slack_sensor.SlackSensor(service, self.emu.config(**sensor_config))
        sensor.setup()
        sensor._state_dir = tempfile.mkdtemp()
        self.runner = threading.Thread(target=sensor.run, daemon=True)
        self.runner.start()
        self.assertTrue(wait_for(self.emu.socket_connected), service.logger.lines)
        return sensor, service

    def stop(self, sensor, service):
        pid = child_pid(service.logger.lines)
        started = time.monotonic()
        sensor.cleanup()
        self.runner.join(timeout=10)
        self.assertFalse(self.runner.is_alive())
        self.assertLess(time.monotonic() - started, 5.0)
        self.assertIsNotNone(pid, service.logger.lines)
        self.assertTrue(wait_for(lambda: gone(pid), 5.0), "slackctl %d still running" % pid)

    def texts(self, service):
        return [p["text"] for _, p, _, _ in service.dispatched]

    def test_each_message_is_dispatched_within_a_second(self):
        sensor, service = self.start()
        for i in range(4):
            if i:
                # An idle gap: a shim stuck reading stderr shows up as a message that waits.
                time.sleep(0.7)
            sent = time.monotonic()
            self.emu.post("general", "hello st2 %d" % i)
            self.assertTrue(
                wait_for(lambda: len(service.dispatched) > i, 1.0),
                "message %d not dispatched within 1 s: %r" % (i, service.logger.lines),
            )
            self.assertLess(service.dispatched[i][3] - sent, 1.0)
        self.stop(sensor, service)
        self.assertEqual(self.texts(service), ["hello st2 %d" % i for i in range(4)])
        trigger, payload, tag, _ = service.dispatched[0]
        self.assertEqual(trigger, "slack.message")
        self.assertEqual(payload["channel"]["name"], "general")
        self.assertEqual(payload["user"]["name"], "user01")
        self.assertEqual(tag, "slack:C0000001:" + payload["timestamp_raw"])

    def test_a_flood_is_acknowledged_and_dispatched_exactly_once(self):
        n = 2000
        # Slack waits 3 s for an ack; a little more here so a busy CI machine stays
        # deterministic. A stalled reader never acks at all, whatever the timeout.
        self.emu.request("/_emulator/sockets/config", {"ack_timeout_ms": 5000})
        sensor, service = self.start()
        answer = self.emu.request("/_emulator/sockets/flood", {"count": n, "channel": "C0000001"})
        self.assertEqual(answer["affected"], n)
        self.assertTrue(wait_for(lambda: len(service.dispatched) >= n, 60.0),
                        "%d of %d dispatched" % (len(service.dispatched), n))
        self.assertTrue(wait_for(lambda: self.emu.sockets()["acked"] >= n, 10.0))
        status = self.emu.sockets()
        self.stop(sensor, service)
        texts = self.texts(service)
        self.assertEqual(len(texts), n)
        self.assertEqual(sorted(texts), sorted("flood %d" % i for i in range(n)))
        self.assertEqual(status["unacked"], 0, status)
        self.assertEqual(status["redelivered"], 0, status)
        self.assertEqual(status["given_up"], 0, status)
        self.assertEqual(status["acked"], n, status)

    def test_direct_messages_are_dropped_by_default(self):
        sensor, service = self.start()
        self.emu.post("D0000001", "a dm")
        self.emu.post("G0000002", "a group dm")
        self.emu.post("general", "in a channel")
        self.assertTrue(wait_for(lambda: len(service.dispatched) >= 1))
        self.stop(sensor, service)
        # Slack delivers in order: had the DMs passed, they would have come first.
        self.assertEqual(self.texts(service), ["in a channel"])

    def test_direct_messages_on_request(self):
        sensor, service = self.start(direct_messages=True)
        self.emu.post("D0000001", "a dm")
        self.emu.post("general", "in a channel")
        self.assertTrue(wait_for(lambda: len(service.dispatched) >= 2))
        self.stop(sensor, service)
        self.assertEqual(self.texts(service), ["a dm", "in a channel"])
        self.assertEqual(service.dispatched[0][1]["channel_type"], "im")


class LineReader(object):
    """Lines from a pipe with a deadline, without a blocking read (this process may be green)."""

    def __init__(self, pipe):
        self.fd = pipe.fileno()
        os.set_blocking(self.fd, False)
        self.buf = b""
        self.eof = False

    def line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf and not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except BlockingIOError:
                    continue
                self.eof = not chunk
                self.buf += chunk or b""
        if b"\n" not in self.buf:
            return None
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


class WrapperTests(unittest.TestCase):
    """The sensor in its own process shaped like st2's sensor_wrapper.py (patched first under
    --eventlet, atexit -> cleanup, setup(), run() on the main thread, no SIGTERM handler of
    its own), which is what st2 stops with SIGTERM or loses to SIGKILL."""

    def setUp(self):
        self.emu = Emulator()
        self.addCleanup(self.emu.close)
        self.log = tempfile.NamedTemporaryFile(prefix="wrapper-", suffix=".log", delete=False)
        self.addCleanup(os.unlink, self.log.name)
        cmd = [sys.executable, os.path.abspath(__file__), "--wrapper",
               json.dumps(self.emu.config())]
        if EVENTLET:
            cmd.append("--eventlet")
        self.wrapper = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log)
        self.addCleanup(self.wrapper.stdout.close)
        self.addCleanup(lambda: self.wrapper.poll() is None and self.wrapper.kill())
        self.out = LineReader(self.wrapper.stdout)
        self.assertTrue(wait_for(lambda: self.child() is not None, 10.0), self.logs())
        self.assertTrue(wait_for(self.emu.socket_connected, 10.0), self.logs())

    def logs(self):
        with open(self.log.name) as f:
            return f.read()

    def child(self):
        return child_pid(self.logs().splitlines())

    def dispatched_once(self, text):
        self.emu.post("general", text)
        line = self.out.line(5.0)
        self.assertIsNotNone(line, self.logs())
        self.assertEqual(line["payload"]["text"], text)

    def test_sigterm_ends_the_wrapper_and_slackctl(self):
        self.dispatched_once("before sigterm")
        pid = self.child()
        started = time.monotonic()
        self.wrapper.send_signal(signal.SIGTERM)
        self.assertTrue(wait_for(lambda: self.wrapper.poll() is not None, 5.0), self.logs())
        self.assertEqual(self.wrapper.returncode, 0, self.logs())
        self.assertTrue(wait_for(lambda: gone(pid), 5.0), "slackctl %d still running" % pid)
        self.assertLess(time.monotonic() - started, 5.0)
        self.assertIn("sensor stopping: finishing what was already received", self.logs())
        self.assertIsNone(self.out.line(1.0))  # nothing more was dispatched

    def test_sigterm_in_a_flood_dispatches_everything_that_was_acknowledged(self):
        self.dispatched_once("before the flood")
        self.emu.request("/_emulator/sockets/config", {"ack_timeout_ms": 30000})
        n = 5000
        self.emu.request("/_emulator/sockets/flood", {"count": n, "channel": "C0000001"})
        first = self.out.line(5.0)
        self.assertIsNotNone(first, self.logs())
        self.wrapper.send_signal(signal.SIGTERM)
        texts = [first["payload"]["text"]]
        while True:
            line = self.out.line(10.0)
            if line is None:
                break
            texts.append(line["payload"]["text"])
        self.assertTrue(self.out.eof, "the wrapper's stdout is still open")
        self.assertEqual(self.wrapper.wait(timeout=5), 0, self.logs())
        acked = self.emu.sockets()["acked"] - 1  # the message before the flood
        self.assertEqual(len(texts), len(set(texts)))
        # Acknowledged means written to the shim first, so every acked event was dispatched.
        self.assertGreaterEqual(len(texts), acked)
        self.assertLessEqual(len(texts), n)
        self.assertTrue(all(t.startswith("flood ") for t in texts))

    def test_sigkill_of_the_wrapper_ends_slackctl(self):
        self.dispatched_once("before sigkill")
        pid = self.child()
        self.wrapper.kill()
        self.wrapper.wait(timeout=5)
        self.assertTrue(wait_for(lambda: gone(pid), 5.0), "slackctl %d outlived its parent" % pid)
        # And its Socket Mode connection is closed: nobody would dispatch what Slack sends.
        self.assertTrue(wait_for(lambda: not self.emu.socket_connected(), 5.0))


def wrapper_main(config):
    """What st2's sensor_wrapper.py does with a sensor, with dispatches printed on stdout."""
    service = Service(out=sys.stdout, log=sys.stderr)
    sensor = slack_sensor.SlackSensor(service, config)
    atexit.register(sensor.cleanup)
    sensor.setup()
    sensor._state_dir = tempfile.mkdtemp()
    sensor.run()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--wrapper":
        wrapper_main(json.loads(sys.argv[2]))
    else:
        unittest.main(verbosity=2)
