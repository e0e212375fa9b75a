"""Runs the pack's Python entry points the way st2's python-script runner does, against the
slackctl emulator: a stub of st2common's Action base class, the entry point loaded by file path
with st2's class-selection rule, every declared parameter passed (unset ones as None, st2
defaults applied), and the pack config given to the constructor.

Environment (set by tests/integration/pack.rs): SLACKCTL_BIN, EMU_API_URL, EMU_WEBHOOK_URL,
EMU_BOT_TOKEN, EMU_BASE_URL.
"""

import importlib.util
import inspect
import json
import logging
import os
import subprocess
import sys
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
        [os.environ["SLACKCTL_BIN"], "action", "get", name, "--json"],
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
