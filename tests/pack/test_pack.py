"""Runs the pack's Python entry points the way st2's python-script runner does, against the
slackctl emulator: a stub of st2common's Action base class, the entry point loaded by file path
with st2's class-selection rule, every declared parameter passed (unset ones as None, st2
defaults applied), and the pack config given to the constructor.

Environment (set by tests/integration/pack.rs): SLACKCTL_BIN, EMU_API_URL, EMU_WEBHOOK_URL,
EMU_BOT_TOKEN, EMU_BASE_URL. `PackTest` runs with any python3; `WheelInstallTest` runs with the
python of a fresh virtualenv into which pack.rs pip-installed requirements.txt from a locally
built wheel, with SLACKCTL_BIN unset and nothing on PATH.
"""

import importlib.util
import inspect
import json
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import types
import unittest
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACTIONS = os.path.join(ROOT, "actions")


def install_st2_stub():
    """A minimal st2common.runners.base_action.Action, as the wrapper constructs it."""

    class Action(object):
        def __init__(self, config=None, action_service=None):
            self.config = config or {}
            self.action_service = action_service
            self.logger = logging.getLogger("st2.action")

    for name in ["st2common", "st2common.runners", "st2common.runners.base_action"]:
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["st2common.runners.base_action"].Action = Action
    return Action


Action = install_st2_stub()
if ACTIONS not in sys.path:
    sys.path.append(ACTIONS)  # st2 adds the entry point's directory to sys.path

from lib import slackctl_action  # noqa: E402  (after the stub: it imports st2common)


def binary():
    return os.environ.get("SLACKCTL_BIN") or slackctl_action.find_binary({})


def load_action_class(entry_point):
    """st2's rule: the classes defined in the module itself that subclass Action."""
    path = os.path.join(ACTIONS, entry_point)
    module_name = os.path.splitext(entry_point)[0]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes = [
        k
        for _, k in inspect.getmembers(module, inspect.isclass)
        if k.__module__ == module.__name__ and issubclass(k, Action)
    ]
    assert len(classes) == 1, classes
    return classes[0]


def action_meta(name):
    out = subprocess.run(
        [binary(), "action", "get", name, "--json"],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


def st2_parameters(name, given):
    """Every declared parameter: given values, else st2 defaults, else None."""
    meta = action_meta(name)
    params = {}
    for pname, p in meta["parameters"].items():
        params[pname] = given.get(pname, p.get("default"))
    return meta["entry_point"], params


def run_action(name, given, config):
    entry_point, params = st2_parameters(name, given)
    cls = load_action_class(entry_point)
    return cls(config=config).run(**params)


def base_config(**extra):
    cfg = {
        # What st2's config loader produces for this schema: defaults filled, objects created.
        "post_message_action": {"webhook_url": os.environ["EMU_WEBHOOK_URL"], "username": None},
        "sensor": {"token": "", "strip_formatting": False, "allow_bot_messages": False},
        "admin": {"admin_token": "", "set_active": True, "attempts": 1},
        "action_token": os.environ["EMU_BOT_TOKEN"],
        "api_url": os.environ["EMU_API_URL"],
    }
    cfg.update(extra)
    return cfg


def channel_id(name):
    res = run_action("conversations.list", {"limit": 1000}, base_config())
    return [c["id"] for c in res["channels"] if c["name"] == name][0]


class PackTest(unittest.TestCase):
    def test_generated_action_returns_slacks_json(self):
        ch = channel_id("general")
        result = run_action("chat.postMessage", {"channel": ch, "text": "from st2"}, base_config())
        # Workflows read result.result.ts / result.result.channel.
        self.assertTrue(result["ok"])
        self.assertIsInstance(result["ts"], str)
        self.assertEqual(result["channel"], ch)

    def test_post_message_uses_the_config_webhook(self):
        result = run_action("post_message", {"message": "webhook from st2"}, base_config())
        self.assertIs(result, True)
        with urllib.request.urlopen(os.environ["EMU_BASE_URL"] + "/_emulator/messages?channel=general") as r:
            texts = [m.get("text") for m in json.load(r)]
        self.assertIn("webhook from st2", texts)

    def test_users_filter_by_returns_a_list(self):
        result = run_action("users_filter_by", {"attributes": {"is_admin": True}}, base_config())
        self.assertIsInstance(result, list)
        self.assertTrue(result)
        self.assertTrue(all(u["is_admin"] for u in result))

    def test_slack_failure_fails_the_execution_with_slacks_error(self):
        status, result = run_action("chat.postMessage", {"channel": "C_MISSING", "text": "x"}, base_config())
        self.assertIs(status, False)
        self.assertEqual(result["error"], "channel_not_found")

    def test_validation_failure_raises_with_the_reason(self):
        with self.assertRaises(RuntimeError) as ctx:
            run_action("chat.postMessage", {"text": "no channel"}, base_config())
        self.assertIn("channel", str(ctx.exception))

    def test_token_parameter_beats_config_and_is_never_logged(self):
        cfg = base_config(action_token="xoxb-not-valid-at-all")
        result = run_action("auth.test", {"token": os.environ["EMU_BOT_TOKEN"]}, cfg)
        self.assertTrue(result["ok"])


    def test_files_upload_returns_the_file_name_like_the_original_pack(self):
        ch = channel_id("general")
        given = {"content": "hello", "filename": "notes.txt", "channels": [ch]}
        self.assertEqual(run_action("files.upload", given, base_config()), "notes.txt")
        full = run_action("files.upload", dict(given, full_result=True), base_config())
        self.assertTrue(full["ok"])
        self.assertEqual([f["name"] for f in full["files"]], ["notes.txt"])
        self.assertEqual(full["files"][0]["channels"], [ch])
        with urllib.request.urlopen(os.environ["EMU_BASE_URL"] + "/_emulator/messages?channel=general") as r:
            shared = [f["name"] for m in json.load(r) for f in m.get("files", [])]
        self.assertEqual(shared.count("notes.txt"), 2)

    def test_files_upload_failure_is_false_and_slacks_error(self):
        given = {"content": "x", "filename": "x.txt", "channels": ["C_MISSING"]}
        self.assertEqual(run_action("files.upload", given, base_config()), (False, "channel_not_found"))
        status, full = run_action("files.upload", dict(given, full_result=True), base_config())
        self.assertIs(status, False)
        self.assertEqual(full["error"], "channel_not_found")

    def test_binary_lookup_order(self):
        tmp = tempfile.mkdtemp()
        venv_bin, path_bin = os.path.join(tmp, "venv"), os.path.join(tmp, "path")
        configured = os.path.join(tmp, "configured-slackctl")
        for d in (venv_bin, path_bin):
            os.mkdir(d)
        for p in (os.path.join(venv_bin, "slackctl"), os.path.join(path_bin, "slackctl"), configured):
            with open(p, "w") as f:
                f.write("#!/bin/sh\n")
            os.chmod(p, 0o755)
        cfg = {"slackctl_path": configured}
        find = slackctl_action.find_binary
        self.assertEqual(find(cfg, {"SLACKCTL_BIN": "/x/slackctl", "PATH": path_bin}, [venv_bin]), "/x/slackctl")
        self.assertEqual(find(cfg, {"PATH": path_bin}, [venv_bin]), os.path.join(venv_bin, "slackctl"))
        self.assertEqual(find(cfg, {"PATH": path_bin}, [tmp]), os.path.join(path_bin, "slackctl"))
        self.assertEqual(find(cfg, {"PATH": "/nonexistent"}, [tmp]), configured)
        with self.assertRaises(RuntimeError) as ctx:
            find({}, {"PATH": "/nonexistent"}, [tmp])
        self.assertIn("slackctl-bin", str(ctx.exception))

    def test_pack_only_config_keys_are_accepted_by_slackctl(self):
        cfg = base_config(slackctl_path="/opt/slackctl/bin/slackctl")
        cfg["sensor"]["direct_messages"] = True
        self.assertTrue(run_action("auth.test", {}, cfg)["ok"])


class WheelInstallTest(unittest.TestCase):
    """Run with a fresh virtualenv's python after `pip install --no-index --find-links DIR -r
    requirements.txt` (what `st2 pack install` does, offline), SLACKCTL_BIN unset, PATH empty."""

    def test_the_entry_point_runs_the_wheels_binary(self):
        self.assertNotIn("SLACKCTL_BIN", os.environ)
        self.assertIsNone(shutil.which("slackctl"))
        found = slackctl_action.find_binary({})
        self.assertEqual(found, os.path.join(sysconfig.get_path("scripts"), "slackctl"))
        self.assertTrue(found.startswith(sys.prefix + os.sep), (found, sys.prefix))
        ch = channel_id("general")
        result = run_action("chat.postMessage", {"channel": ch, "text": "from the wheel"}, base_config())
        self.assertTrue(result["ok"])
        with urllib.request.urlopen(os.environ["EMU_BASE_URL"] + "/_emulator/messages?channel=general") as r:
            texts = [m.get("text") for m in json.load(r)]
        self.assertEqual(texts.count("from the wheel"), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
