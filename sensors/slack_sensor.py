"""The st2 slack pack's sensor, backed by `slackctl sensor`.

slackctl does the Slack side (Socket Mode, RTM or the Events API, reconnects, dedupe,
enrichment) and prints one JSON object per message on stdout:
{"trigger": "slack.message", "payload": {...}}. This sensor runs it as a subprocess, reads
those lines and dispatches them. If slackctl exits, it is started again after a pause that
doubles up to a minute (reset once a run lasted a while).

The pack config reaches slackctl through environment variables only, never the command line
(where other users could read tokens with `ps`):

    sensor.app_token          -> SLACK_APP_TOKEN (Socket Mode)
    sensor.token              -> SLACK_RTM_TOKEN (legacy RTM)
    action_token              -> SLACK_TOKEN (user and channel lookups)
    sensor.signing_secret     -> SLACK_SIGNING_SECRET (Events API)
    sensor.mode               -> SLACKCTL_SENSOR_MODE
    sensor.strip_formatting   -> SLACKCTL_STRIP_FORMATTING
    sensor.allow_bot_messages -> SLACKCTL_ALLOW_BOT_MESSAGES
    api_url                   -> SLACK_API_URL

slackctl is found through $SLACKCTL_BIN, else on $PATH.
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

from st2reactor.sensor.base import Sensor

TRIGGER = "slack.message"

# config key path -> environment variable
SECRET_ENV = [
    (("sensor", "app_token"), "SLACK_APP_TOKEN"),
    (("sensor", "token"), "SLACK_RTM_TOKEN"),
    (("action_token",), "SLACK_TOKEN"),
    (("sensor", "signing_secret"), "SLACK_SIGNING_SECRET"),
]
PLAIN_ENV = [
    (("sensor", "mode"), "SLACKCTL_SENSOR_MODE"),
    (("sensor", "strip_formatting"), "SLACKCTL_STRIP_FORMATTING"),
    (("sensor", "allow_bot_messages"), "SLACKCTL_ALLOW_BOT_MESSAGES"),
    (("api_url",), "SLACK_API_URL"),
]
# Variables slackctl reads that must come from the pack config, not the st2 process.
OWNED = [name for _, name in SECRET_ENV + PLAIN_ENV] + ["SLACK_WEBHOOK_URL", "SLACKCTL_CONFIG"]


def _lookup(config, path):
    value = config or {}
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def build_env(config, base_env, empty_config_path):
    """The subprocess environment: the st2 process's, minus Slack variables, plus the config."""
    env = {k: v for k, v in base_env.items() if k not in OWNED}
    for path, name in SECRET_ENV + PLAIN_ENV:
        value = _lookup(config, path)
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        env[name] = str(value)
    # slackctl would otherwise read /opt/stackstorm/configs/slack.yaml itself, whose
    # {{ st2kv... }} values only st2 can resolve; everything it needs is in the environment.
    env["SLACKCTL_CONFIG"] = empty_config_path
    return env


def build_args(binary, config, state_dir):
    """The command line: the subcommand and non-secret options only."""
    args = [binary, "sensor", "--state", state_dir]
    sensor = (config or {}).get("sensor") or {}
    listen = sensor.get("listen")
    if listen:
        args += ["--listen", str(listen)]
    subtypes = sensor.get("subtypes")
    if subtypes:
        if isinstance(subtypes, (list, tuple)):
            subtypes = ",".join(str(s) for s in subtypes)
        args += ["--subtypes", str(subtypes)]
    return args


def find_binary(env=None):
    env = os.environ if env is None else env
    binary = env.get("SLACKCTL_BIN") or shutil.which("slackctl", path=env.get("PATH"))
    if not binary:
        raise RuntimeError("slackctl not found: install it on PATH or set SLACKCTL_BIN")
    return binary


def trace_tag(payload):
    channel = (payload.get("channel") or {}).get("id", "")
    return "slack:%s:%s" % (channel, payload.get("timestamp_raw", ""))


class SlackSensor(Sensor):
    # First pause before a restart, and the longest one (seconds).
    RESTART_DELAY = 1.0
    MAX_RESTART_DELAY = 60.0
    # A run this long resets the pause.
    STABLE_RUN = 60.0

    def __init__(self, sensor_service, config=None):
        super(SlackSensor, self).__init__(sensor_service=sensor_service, config=config)
        self._logger = self.sensor_service.get_logger(name=self.__class__.__name__)
        self._stop = threading.Event()
        self._proc = None
        self._lock = threading.Lock()
        self._binary = None
        self._empty_config = None
        self._state_dir = None

    def setup(self):
        self._binary = find_binary()
        fd, self._empty_config = tempfile.mkstemp(prefix="slackctl-", suffix=".yaml")
        os.close(fd)
        self._state_dir = os.path.join(tempfile.gettempdir(), "slackctl-sensor-state")

    def run(self):
        delay = self.RESTART_DELAY
        while not self._stop.is_set():
            started = time.monotonic()
            code = self._run_once()
            if self._stop.is_set():
                break
            if time.monotonic() - started >= self.STABLE_RUN:
                delay = self.RESTART_DELAY
            self._logger.warning(
                "slackctl sensor exited with %s; restarting in %.1fs", code, delay
            )
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.MAX_RESTART_DELAY)

    def _run_once(self):
        env = build_env(self.config, os.environ, self._empty_config)
        args = build_args(self._binary, self.config, self._state_dir)
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError as e:
            self._logger.error("cannot start %s: %s", self._binary, e)
            return None
        with self._lock:
            self._proc = proc
        logger = threading.Thread(target=self._log_stderr, args=(proc,), daemon=True)
        logger.start()
        for raw in proc.stdout:
            self._dispatch_line(raw)
        code = proc.wait()
        logger.join(timeout=5)
        for pipe in (proc.stdout, proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass
        with self._lock:
            self._proc = None
        return code

    def _log_stderr(self, proc):
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._logger.info("%s", line)

    def _dispatch_line(self, raw):
        line = raw.decode("utf-8", "replace").strip() if isinstance(raw, bytes) else raw.strip()
        if not line:
            return
        try:
            message = json.loads(line)
            payload = message["payload"]
        except (ValueError, KeyError, TypeError):
            self._logger.warning("ignoring a line that is not a trigger: %r", line[:200])
            return
        self.sensor_service.dispatch(
            trigger=message.get("trigger", TRIGGER),
            payload=payload,
            trace_tag=trace_tag(payload),
        )

    def cleanup(self):
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            # SIGTERM: slackctl finishes what it read (lines reach us), then exits 0.
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._empty_config:
            try:
                os.unlink(self._empty_config)
            except OSError:
                pass

    def add_trigger(self, trigger):
        pass

    def update_trigger(self, trigger):
        pass

    def remove_trigger(self, trigger):
        pass
