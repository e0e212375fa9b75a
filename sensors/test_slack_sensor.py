"""Tests for slack_sensor.py with a stub of st2reactor's Sensor base class.

Run with plain python3 (no st2 needed); SLACKCTL_BIN must name a slackctl binary. The
end-to-end test starts `slackctl emulator`, runs the sensor against it and checks the
dispatched trigger. `cargo test` runs this file when python3 is available.
"""

import json
import os
import stat
import sys
import tempfile
import threading
import time
import types
import unittest
import urllib.request
import subprocess

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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import slack_sensor  # noqa: E402


class Logger(object):
    def __init__(self):
        self.lines = []

    def _log(self, msg, *args):
        self.lines.append(msg % args if args else msg)

    debug = info = warning = error = exception = _log


class Service(object):
    def __init__(self):
        self.logger = Logger()
        self.dispatched = []
        self.event = threading.Event()

    def get_logger(self, name):
        return self.logger

    def dispatch(self, trigger, payload=None, trace_tag=None):
        self.dispatched.append((trigger, payload, trace_tag))
        self.event.set()


def wait_for(cond, timeout=8.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


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
        self.assertEqual(env["PATH"], "/bin")
        args = slack_sensor.build_args("/usr/bin/slackctl", self.CONFIG, "/tmp/state")
        self.assertEqual(args[:2], ["/usr/bin/slackctl", "sensor"])
        self.assertIn("--listen", args)
        for secret in ("xapp-secret-1", "xoxp-rtm-secret", "xoxb-secret-2", "signing-secret-1"):
            self.assertNotIn(secret, " ".join(args))

    def test_st2_process_variables_do_not_leak_in(self):
        env = slack_sensor.build_env({}, {"SLACK_TOKEN": "stray", "HOME": "/h"}, "/tmp/e")
        self.assertNotIn("SLACK_TOKEN", env)
        self.assertEqual(env["HOME"], "/h")

    def test_trace_tag_is_channel_and_ts(self):
        tag = slack_sensor.trace_tag({"channel": {"id": "C1"}, "timestamp_raw": "1.000100"})
        self.assertEqual(tag, "slack:C1:1.000100")

    def test_binary_from_env_or_path(self):
        self.assertEqual(slack_sensor.find_binary({"SLACKCTL_BIN": "/x/slackctl"}), "/x/slackctl")
        with self.assertRaises(RuntimeError):
            slack_sensor.find_binary({"PATH": "/nonexistent"})


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
        trigger, payload, tag = service.dispatched[0]
        self.assertEqual(trigger, "slack.message")
        self.assertEqual(payload["text"], "xapp-e2e-1")
        self.assertNotIn("xapp", payload["argv"])
        self.assertEqual(tag, "slack:C1:1.1")
        self.assertTrue(any("restarting" in l for l in service.logger.lines))
        self.assertTrue(any("not a trigger" in l for l in service.logger.lines))


class EndToEndTests(unittest.TestCase):
    def test_a_posted_message_is_dispatched(self):
        binary = os.environ.get("SLACKCTL_BIN")
        if not binary:
            self.skipTest("SLACKCTL_BIN not set")
        emu = subprocess.Popen(
            [binary, "emulator", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            ready = json.loads(emu.stdout.readline())
            service = Service()
            config = {
                "sensor": {"app_token": ready["tokens"]["app"]},
                "action_token": ready["tokens"]["bot"],
                "api_url": ready["api_url"],
            }
            sensor = slack_sensor.SlackSensor(service, config)
            sensor.setup()
            sensor._state_dir = tempfile.mkdtemp()
            runner = threading.Thread(target=sensor.run, daemon=True)
            runner.start()
            body = json.dumps({"channel": "general", "text": "hello st2"}).encode()
            req = urllib.request.Request(
                ready["base_url"] + "/_emulator/messages",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(req, timeout=5).read()
            self.assertTrue(service.event.wait(8), service.logger.lines)
            sensor.cleanup()
            runner.join(timeout=10)
            self.assertFalse(runner.is_alive())
            trigger, payload, tag = service.dispatched[0]
            self.assertEqual(trigger, "slack.message")
            self.assertEqual(payload["text"], "hello st2")
            self.assertEqual(payload["channel"]["name"], "general")
            self.assertEqual(payload["user"]["name"], "user01")
            self.assertEqual(tag, "slack:C0000001:" + payload["timestamp_raw"])
            self.assertEqual(len(service.dispatched), 1)
        finally:
            emu.terminate()
            emu.wait(timeout=5)
            emu.stdout.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
