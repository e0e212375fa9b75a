"""The st2 slack pack's sensor, backed by `slackctl sensor`.

slackctl does the Slack side (Socket Mode, RTM or the Events API, reconnects, dedupe,
enrichment) and prints one JSON object per message on stdout:
{"trigger": "slack.message", "payload": {...}}. This sensor runs it as a subprocess, reads
those lines and dispatches them. If slackctl exits, it is started again after a pause that
doubles up to a minute (reset once a run lasted a while).

Reading the child under eventlet. st2's sensor container monkey-patches the process with
eventlet before it loads this module, so a "thread" is a green thread and a plain blocking
read of a pipe stops every green thread at once. So there is exactly one reader, in run():
both pipes are made non-blocking and waited on together with select.select, which is
eventlet's cooperative select when the process is patched and the kernel's otherwise; a pipe
is only read once select says it has data, so no read ever blocks. Nothing else reads the
child, so it works the same with and without eventlet, and stderr can never fill up and stall
slackctl (which would stall its Socket Mode acknowledgements).

Stopping. slackctl gets a stdin pipe this process never writes to and `--stop-on-stdin-eof`:
when this process dies for any reason (SIGKILL included) the pipe reaches end of file and
slackctl stops the way it does on SIGTERM. st2's wrapper installs no SIGTERM handler (the
default one would kill this process at once, without cleanup), so setup() installs one when
the handler is still the default: it passes SIGTERM on to slackctl, run() dispatches what
slackctl still prints, then returns and the wrapper exits normally (its atexit calls
cleanup()). A second SIGTERM kills the process the default way. cleanup() on its own also
stops slackctl. Either way, a slackctl still running 10 seconds after the stop is killed.

The pack config reaches slackctl through environment variables, never the command line
(where other users could read tokens with `ps`):

    sensor.app_token          -> SLACK_APP_TOKEN (Socket Mode)
    sensor.token              -> SLACK_RTM_TOKEN (legacy RTM)
    action_token              -> SLACK_TOKEN (user and channel lookups)
    sensor.signing_secret     -> SLACK_SIGNING_SECRET (Events API)
    sensor.mode               -> SLACKCTL_SENSOR_MODE
    sensor.strip_formatting   -> SLACKCTL_STRIP_FORMATTING
    sensor.allow_bot_messages -> SLACKCTL_ALLOW_BOT_MESSAGES
    api_url                   -> SLACK_API_URL
    state_backend             -> SLACKCTL_STATE_BACKEND (unless the service's environment
                                 already sets it: slackctl's own precedence)

Non-secret options are flags: sensor.listen (--listen), sensor.subtypes (--subtypes), and
sensor.direct_messages: unless it is true, --no-direct-messages (the original pack's sensor
never dispatched direct messages, so rules written for it do not expect them).

The binary: $SLACKCTL_BIN if set (an explicit override), else `slackctl` in the running
interpreter's scripts directory (the pack's virtualenv, where the slackctl-bin wheel from
requirements.txt puts it), else on $PATH, else the pack config's `slackctl_path`.
"""

import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
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
# The shared dedupe record (Redis; may hold a password): from the pack config, so that sensors
# on several hosts share it, but a value in the sensor service's environment wins, as it does
# for slackctl itself.
SHARED_ENV = [
    (("state_backend",), "SLACKCTL_STATE_BACKEND"),
]
# Variables slackctl reads that must come from the pack config, not the st2 process.
OWNED = [name for _, name in SECRET_ENV + PLAIN_ENV] + ["SLACK_WEBHOOK_URL", "SLACKCTL_CONFIG"]

# Bytes asked for per read; a pipe holds 64 KiB.
READ_SIZE = 65536


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
    for path, name in SHARED_ENV:
        value = _lookup(config, path)
        if value and not env.get(name):
            env[name] = str(value)
    # slackctl would otherwise read /opt/stackstorm/configs/slack.yaml itself, whose
    # {{ st2kv... }} values only st2 can resolve; everything it needs is in the environment.
    env["SLACKCTL_CONFIG"] = empty_config_path
    return env


def build_args(binary, config, state_dir):
    """The command line: the subcommand and non-secret options only (no `--state` when
    `state_dir` is None: a shared backend keeps the dedupe record)."""
    args = [binary, "sensor", "--stop-on-stdin-eof"]
    if state_dir:
        args += ["--state", state_dir]
    sensor = (config or {}).get("sensor") or {}
    listen = sensor.get("listen")
    if listen:
        args += ["--listen", str(listen)]
    subtypes = sensor.get("subtypes")
    if subtypes:
        if isinstance(subtypes, (list, tuple)):
            subtypes = ",".join(str(s) for s in subtypes)
        args += ["--subtypes", str(subtypes)]
    if sensor.get("direct_messages") is not True:
        args.append("--no-direct-messages")
    return args


def checked_state_dir(path):
    """`path` (created 0700 when missing) once it is known to be a directory of this user that
    nobody else can write. The default lives in the shared temporary directory, where another
    local user could otherwise create it first and plant a dedupe record that hides messages."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise RuntimeError(
            "sensor state directory %s is not a directory of this user that only it can write; "
            "remove it (it is created again) or fix its owner and mode" % path
        )
    return path


def _scripts_dirs():
    """Where pip put the wheel's binary for the interpreter running this code."""
    dirs = []
    for d in (sysconfig.get_path("scripts"), os.path.dirname(os.path.abspath(sys.executable))):
        if d and d not in dirs:
            dirs.append(d)
    return dirs


def _executable(path):
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def find_binary(config=None, env=None, scripts_dirs=None):
    """$SLACKCTL_BIN, else the interpreter's scripts dir, else PATH, else config slackctl_path."""
    env = os.environ if env is None else env
    explicit = env.get("SLACKCTL_BIN")
    if explicit:
        return explicit
    for d in _scripts_dirs() if scripts_dirs is None else scripts_dirs:
        candidate = os.path.join(d, "slackctl")
        if _executable(candidate):
            return candidate
    found = shutil.which("slackctl", path=env.get("PATH", os.defpath))
    if found:
        return found
    configured = (config or {}).get("slackctl_path")
    if configured:
        if _executable(configured):
            return configured
        raise RuntimeError("slackctl_path %r is not an executable file" % configured)
    raise RuntimeError(
        "slackctl not found: reinstall the pack so pip installs slackctl-bin from "
        "requirements.txt into its virtualenv, or put slackctl on PATH, or set slackctl_path "
        "in the pack config (or SLACKCTL_BIN in the sensor container's environment)"
    )


def trace_tag(payload):
    channel = (payload.get("channel") or {}).get("id", "")
    return "slack:%s:%s" % (channel, payload.get("timestamp_raw", ""))


class SlackSensor(Sensor):
    # First pause before a restart, and the longest one (seconds).
    RESTART_DELAY = 1.0
    MAX_RESTART_DELAY = 60.0
    # A run this long resets the pause.
    STABLE_RUN = 60.0
    # How long slackctl may take to finish after a stop (cleanup() or SIGTERM) before it is
    # killed.
    STOP_TIMEOUT = 10.0

    def __init__(self, sensor_service, config=None):
        super(SlackSensor, self).__init__(sensor_service=sensor_service, config=config)
        self._logger = self.sensor_service.get_logger(name=self.__class__.__name__)
        # A plain flag, not a threading.Event: the SIGTERM handler sets it, and a handler
        # must not take (green) locks that the code it interrupted may hold.
        self._stopping = False
        self._stop_at = None  # when the stop was asked for (time.monotonic())
        self._proc = None
        self._binary = None
        self._empty_config = None
        self._state_dir = None
        self._sigterms = 0

    def setup(self):
        self._binary = find_binary(self.config)
        fd, self._empty_config = tempfile.mkstemp(prefix="slackctl-", suffix=".yaml")
        os.close(fd)
        # Per user: the temp dir is shared, and a name there can be taken by anyone first
        # (checked_state_dir refuses one that is not this user's before each start).
        self._state_dir = os.path.join(
            tempfile.gettempdir(), "slackctl-sensor-state-%d" % os.getuid()
        )
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:
            pass  # not the main thread: whoever runs us handles signals

    def _on_sigterm(self, signum, frame):
        self._sigterms += 1
        if self._sigterms > 1:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self._request_stop()

    def _request_stop(self):
        """Marks the stop and passes SIGTERM to slackctl. Safe in a signal handler."""
        if self._stop_at is None:
            self._stop_at = time.monotonic()
        self._stopping = True
        self._signal_child(signal.SIGTERM)

    def _signal_child(self, signum):
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:
                os.kill(proc.pid, signum)
            except OSError:
                pass

    def run(self):
        delay = self.RESTART_DELAY
        while not self._stopping:
            started = time.monotonic()
            code = self._run_once()
            if self._stopping:
                break
            if time.monotonic() - started >= self.STABLE_RUN:
                delay = self.RESTART_DELAY
            self._logger.warning(
                "slackctl sensor exited with %s; restarting in %.1fs", code, delay
            )
            self._pause(delay)
            delay = min(delay * 2, self.MAX_RESTART_DELAY)

    def _pause(self, seconds):
        """Sleeps in short steps so a stop request ends the pause (time.sleep is green under
        eventlet)."""
        deadline = time.monotonic() + seconds
        while not self._stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    def _run_once(self):
        env = build_env(self.config, os.environ, self._empty_config)
        state_dir = None
        if not env.get("SLACKCTL_STATE_BACKEND"):
            # A shared backend (Redis) holds the dedupe record instead of a local directory.
            try:
                state_dir = checked_state_dir(self._state_dir)
            except (OSError, RuntimeError) as e:
                self._logger.error("%s", e)
                return None
        args = build_args(self._binary, self.config, state_dir)
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,  # never written: its end of file tells slackctl we are gone
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError as e:
            self._logger.error("cannot start %s: %s", self._binary, e)
            return None
        self._proc = proc
        if self._stopping:  # a stop arrived while it was starting
            self._signal_child(signal.SIGTERM)
        self._logger.info("started slackctl sensor (pid %d)", proc.pid)
        try:
            self._pump(proc)
            code = proc.wait()
        finally:
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                try:
                    pipe.close()
                except OSError:
                    pass
            self._proc = None
        return code

    def _pump(self, proc):
        """Dispatches stdout lines and logs stderr lines until both pipes are closed."""
        out, err = proc.stdout.fileno(), proc.stderr.fileno()
        handlers = {out: self._dispatch_line, err: self._log_line}
        pending = {out: b"", err: b""}
        for fd in handlers:
            os.set_blocking(fd, False)
        open_fds = [out, err]
        while open_fds:
            # Cooperative under eventlet. The timeout only lets a stopping sensor notice a
            # slackctl that does not finish in time.
            ready, _, _ = select.select(open_fds, [], [], 1.0)
            if self._stop_at is not None and time.monotonic() - self._stop_at > self.STOP_TIMEOUT:
                self._logger.warning("slackctl sensor did not stop in time; killing it")
                self._signal_child(signal.SIGKILL)
                self._stop_at = float("inf")  # once
            for fd in ready:
                try:
                    chunk = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    continue
                if not chunk:  # end of file (eventlet may say so with "")
                    open_fds.remove(fd)
                    if pending[fd]:
                        handlers[fd](pending[fd])
                    pending[fd] = b""
                    continue
                lines = (pending[fd] + chunk).split(b"\n")
                pending[fd] = lines.pop()
                for line in lines:
                    handlers[fd](line)

    def _log_line(self, raw):
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
        try:
            self.sensor_service.dispatch(
                trigger=message.get("trigger", TRIGGER),
                payload=payload,
                trace_tag=trace_tag(payload),
            )
        except Exception as e:  # one bad dispatch must not stop the ones after it
            self._logger.error("dispatching a slack.message trigger failed: %s", e)

    def cleanup(self):
        proc = self._proc
        # SIGTERM: slackctl finishes what it read (run() still dispatches those lines), then
        # exits 0.
        self._request_stop()
        if proc is not None and proc.poll() is None:
            deadline = time.monotonic() + self.STOP_TIMEOUT
            while proc.poll() is None and proc.returncode is None:
                if time.monotonic() >= deadline:
                    self._logger.warning("slackctl sensor did not stop in time; killing it")
                    self._signal_child(signal.SIGKILL)
                    break
                time.sleep(0.05)
        if self._empty_config:
            try:
                os.unlink(self._empty_config)
            except OSError:
                pass
            self._empty_config = None

    def add_trigger(self, trigger):
        pass

    def update_trigger(self, trigger):
        pass

    def remove_trigger(self, trigger):
        pass
