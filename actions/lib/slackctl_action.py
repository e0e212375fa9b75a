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
import tempfile

from st2common.runners.base_action import Action

DELIMITER = "%%%%%~=~=~=************=~=~=~%%%%"


def find_binary():
    """SLACKCTL_BIN, else slackctl on PATH, else a binary shipped in the pack's bin/."""
    explicit = os.environ.get("SLACKCTL_BIN")
    if explicit:
        return explicit
    found = shutil.which("slackctl")
    if found:
        return found
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    bundled = os.path.join(here, "bin", "slackctl")
    if os.path.exists(bundled):
        return bundled
    raise RuntimeError(
        "slackctl binary not found: install it on the st2 action runners (cargo install, or a "
        "release binary on PATH) or set SLACKCTL_BIN in the action runner's environment"
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
                [find_binary(), "--config", path, "run", name, "--parameters", "-", "--output", "st2"],
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
