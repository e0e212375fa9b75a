"""Runs a slackctl action on behalf of StackStorm's python-script runner.

Each entry point (run.py, post_message.py, ...) subclasses SlackctlAction. The parameters st2
passes (every declared one, unset ones as None) are handed to `slackctl run` as JSON on stdin,
the pack config is written to a private temporary file, and slackctl's st2-framed output is
turned back into the result, so workflows keep reading result.result.<field>.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from st2common.runners.base_action import Action

DELIMITER = "%%%%%~=~=~=************=~=~=~%%%%"


def _scripts_dirs():
    """Where pip put the slackctl-bin wheel's binary for the interpreter running this code:
    st2 runs pack actions with the pack virtualenv's python."""
    dirs = []
    for d in (sysconfig.get_path("scripts"), os.path.dirname(os.path.abspath(sys.executable))):
        if d and d not in dirs:
            dirs.append(d)
    return dirs


def _executable(path):
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def find_binary(config=None, env=None, scripts_dirs=None):
    """$SLACKCTL_BIN (an explicit override), else `slackctl` in the interpreter's scripts
    directory (the pack's virtualenv), else on PATH, else the pack config's slackctl_path."""
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
        "slackctl binary not found: reinstall the pack so pip installs slackctl-bin from "
        "requirements.txt into its virtualenv, or put slackctl on PATH, or set slackctl_path "
        "in the pack config (or SLACKCTL_BIN in the action runner's environment)"
    )


def drop_none(value):
    """Removes None values (st2 fills them in for unset keys) at every depth."""
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value if v is not None]
    return value


def parse_framed(stdout):
    """Returns the {"result", "status"} object between st2's delimiters, or None."""
    start = stdout.find(DELIMITER)
    if start < 0:
        return None
    end = stdout.find(DELIMITER, start + len(DELIMITER))
    if end < 0:
        return None
    return json.loads(stdout[start + len(DELIMITER):end])


class SlackctlAction(Action):
    # The slackctl action name; None means "the end_point parameter" (generated actions).
    ACTION = None
    TIMEOUT = 570  # seconds; below st2's default action timeout of 600

    def run(self, **parameters):
        name = self.ACTION or parameters.get("end_point")
        if not name:
            raise ValueError("no action name: the end_point parameter is missing")
        params = drop_none(dict(parameters))
        config = drop_none(dict(self.config or {}))
        fd, path = tempfile.mkstemp(prefix="slackctl-", suffix=".yaml")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(config, handle)  # JSON is valid YAML
            proc = subprocess.run(
                [find_binary(self.config), "--config", path, "run", name, "--parameters", "-", "--output", "st2"],
                input=json.dumps({"parameters": params}),
                capture_output=True,
                text=True,
                timeout=self.TIMEOUT,
            )
        finally:
            os.unlink(path)
        for line in proc.stderr.splitlines():
            if line.strip():
                self.logger.info(line)
        framed = parse_framed(proc.stdout)
        if proc.returncode == 0 and framed is not None:
            return framed["result"]
        if framed is not None:
            # Slack answered ok: false: fail the execution with Slack's answer as the result.
            return (False, framed["result"])
        raise RuntimeError(proc.stderr.strip() or "slackctl exited with status %d" % proc.returncode)
