"""Every value the original StackStorm slack pack accepted is still accepted.

The original pack's parameter types come from st2-actions.json (the 194 actions of
stackstorm-slack 2.3.0). For each of its parameters a pool of candidate values is tried on two
paths, the way StackStorm handles them:

* API / workflow path: the value as a workflow passes it, cast by the declared type the way
  st2's `st2common.util.casts` does, then validated against the action's parameter schema as
  `get_schema_for_action_parameters` builds it (runner parameters merged, additionalProperties
  false, per-property `required`, defaults filled first).
* CLI path: the text of `st2 run <ref> key=value`, converted by the st2 client's rules for the
  declared type, then the same cast and validation.

A value counts when the original action accepts it; each such value must be accepted by our
action YAML too. Then a sample of the cast values is sent through `slackctl run <action>
--parameters -` (as the pack's entry points do) to the emulator: slackctl must never refuse
one (exit 2), and a few requests are checked for Slack's wire form.

Environment: SLACKCTL_BIN, EMU_API_URL, EMU_BASE_URL, EMU_BOT_TOKEN, ST2_ACTIONS (path of
st2-actions.json). Needs jsonschema and PyYAML; under CI=true a missing one is a failure.
"""

import ast
import copy
import json
import os
import subprocess
import sys
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACTIONS = os.path.join(ROOT, "actions")

try:
    import jsonschema
    import yaml
    from jsonschema.validators import Draft3Validator, Draft4Validator, create
except ImportError as e:  # pragma: no cover - environment check
    if os.environ.get("CI") == "true":
        print("FAIL: %s (.ci/run installs jsonschema and PyYAML)" % e)
        sys.exit(1)
    print("SKIP: %s" % e)
    sys.exit(0)

# The python-script runner's own parameters, merged into every action's schema by st2.
RUNNER_PARAMS = {
    "debug": {"type": "boolean", "default": False},
    "content_version": {"type": "string"},
    "env": {"type": "object"},
    "timeout": {"type": "integer", "default": 600},
    "log_level": {"type": "string", "default": "DEBUG"},
}

ANY_TYPE = {"anyOf": [{"type": t} for t in
                      ["array", "boolean", "integer", "number", "object", "string"]]}

# st2's validator: draft 4 keywords, except `properties`, which is draft 3's so that a
# property-level `required: true` is enforced.
_KEYWORDS = [
    "$ref", "additionalItems", "additionalProperties", "allOf", "anyOf", "dependencies",
    "enum", "format", "items", "maxItems", "maxLength", "maxProperties", "maximum",
    "minItems", "minLength", "minProperties", "minimum", "multipleOf", "not", "oneOf",
    "pattern", "patternProperties", "type", "uniqueItems",
]
St2Validator = create(
    meta_schema=Draft4Validator.META_SCHEMA,
    validators=dict(
        {k: Draft4Validator.VALIDATORS[k] for k in _KEYWORDS},
        properties=Draft3Validator.VALIDATORS["properties"],
    ),
    version="st2_custom",
    type_checker=Draft4Validator.TYPE_CHECKER,
)

# Keys st2's parameter meta-schema allows in one parameter (it has additionalProperties false).
PARAM_KEYS = {
    "type", "description", "required", "default", "immutable", "secret", "enum", "items",
    "position", "minimum", "maximum", "minLength", "maxLength", "pattern", "format",
    "properties", "additionalProperties", "minItems", "maxItems", "uniqueItems",
    "dependencies", "title", "id", "$schema", "$ref",
}
SIMPLE_TYPES = {"array", "boolean", "integer", "null", "number", "object", "string"}


# --- st2's casts (st2common/util/casts.py), reimplemented -----------------------------------

NONE_MAGIC = "%*****__%NONE%__*****%"


def _none(x):
    return None if isinstance(x, str) and x == NONE_MAGIC else x


def cast_object(x):
    x = _none(x)
    if isinstance(x, str):
        try:
            return json.loads(x)
        except Exception:
            return ast.literal_eval(x)
    return x


def cast_boolean(x):
    x = _none(x)
    if isinstance(x, str):
        return ast.literal_eval(x.capitalize())
    return x


def cast_integer(x):
    return int(_none(x))


def cast_number(x):
    return float(_none(x))


def cast_string(x):
    if x is None:
        return x
    if not isinstance(x, str):
        raise ValueError("Value %r must either be a string or None" % (x,))
    return _none(x)


CASTS = {"array": cast_object, "boolean": cast_boolean, "integer": cast_integer,
         "number": cast_number, "object": cast_object, "string": cast_string}


# --- the st2 client's key=value conversion (st2client/commands/action.py) --------------------

def cli_object(value):
    if value.startswith("{"):
        return json.loads(value)
    result = {}
    for pair in value.split(","):
        split = pair.split("=", 1)
        if len(split) == 2:
            result[split[0]] = split[1]
    return result


def cli_array(value):
    try:
        value = str([int(value)])
    except ValueError:
        pass
    try:
        return json.loads(value)
    except ValueError:
        return [v.strip() for v in value.split(",")]


CLI = {"array": cli_array, "boolean": lambda x: ast.literal_eval(x.capitalize()),
       "integer": int, "number": float, "object": cli_object, "string": str}


# --- candidate values -----------------------------------------------------------------------

# What a workflow or rule might pass for a parameter of each original type; only those the
# original action accepts are counted.
API_POOL = {
    "string": ["hello world", "C1,C2", "public_channel,private_channel", '["C1", "C2"]',
               '[{"type": "divider"}]', '{"type": "modal"}', "1700000000.000240", "100",
               "0", "true", "false", "U012AB3CD"],
    "number": [0, 100, 1700000000.00024, 12.5, "1700000000.000240", "0", "12.5", "100"],
    "integer": [0, 1, 100, "100", "7"],
    "boolean": [True, False, "true", "false", "True", "FALSE"],
    "object": [{"a": "b"}, {}, '{"a": "b"}', '{"fields": [{"title": "t"}]}'],
    "array": [["a", "b"], '["a", "b"]'],
}
# What a user types after `st2 run <ref>`.
CLI_POOL = {
    "string": ["hello world", "C1,C2", '["C1","C2"]', '[{"type":"divider"}]',
               "1700000000.000240", "100", "true"],
    "number": ["0", "100", "1700000000.000240", "12.5"],
    "integer": ["0", "100", "7"],
    "boolean": ["true", "false", "True", "FALSE"],
    "object": ['{"a": "b"}', "a=b,c=d"],
    "array": ["a,b", '["a", "b"]', "5"],
}


def load_ours():
    ours = {}
    for f in sorted(os.listdir(ACTIONS)):
        if f.endswith(".yaml"):
            with open(os.path.join(ACTIONS, f)) as fh:
                doc = yaml.safe_load(fh)
            ours[doc["name"]] = doc
    return ours


def schema_for(params):
    """get_schema_for_action_parameters: runner parameters, then the action's, merged."""
    merged = copy.deepcopy(RUNNER_PARAMS)
    for name, p in params.items():
        merged.setdefault(name, {}).update(copy.deepcopy(p))
    return {"type": "object", "properties": {k: v or ANY_TYPE for k, v in merged.items()},
            "additionalProperties": False}


def st2_accepts(params, instance):
    """st2's request path: cast the given values, fill defaults, validate. Error or None."""
    try:
        cast = {}
        for k, v in instance.items():
            ty = (params.get(k) or {}).get("type")
            cast[k] = CASTS[ty](v) if (v is not None and ty in CASTS) else v
        schema = schema_for(params)
        full = dict(cast)
        for k, p in schema["properties"].items():
            if k not in full and "default" in p and p["default"] is not None:
                full[k] = p["default"]
        # st2 checks parameter metadata against its own meta-schema at registration; the
        # request path validates the instance only.
        St2Validator(schema).validate(full)
        return None, cast
    except Exception as e:  # any cast or validation failure is st2 refusing the call
        return "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:160]), None


def filler(ty):
    return {"string": "C0123", "number": 1, "integer": 1, "boolean": True,
            "object": {"a": "b"}, "array": ["C1"]}[ty]


def required_fillers(params, skip):
    return {n: filler(p["type"]) for n, p in params.items()
            if p.get("required") and "default" not in p and n != skip}


def check_meta_schema(ours):
    """Each parameter has exactly one simple `type` and only keys st2's meta-schema allows."""
    problems = []
    for name, doc in ours.items():
        for pname, p in (doc.get("parameters") or {}).items():
            if not isinstance(p.get("type"), str) or p["type"] not in SIMPLE_TYPES:
                problems.append("%s.%s: type %r" % (name, pname, p.get("type")))
            extra = set(p) - PARAM_KEYS
            if extra:
                problems.append("%s.%s: keys st2 refuses: %s" % (name, pname, sorted(extra)))
    return problems


def st2_side(original, ours):
    checked, rejections, samples = 0, [], []
    for name, act in sorted(original.items()):
        orig_params = act["parameters"]
        our_params = ours[name]["parameters"]
        for pname, op in sorted(orig_params.items()):
            if op.get("immutable"):
                continue
            oty = op["type"]
            candidates = [("api", v) for v in API_POOL[oty]]
            candidates += [("cli", t) for t in CLI_POOL[oty]]
            base = required_fillers(orig_params, pname)
            # Ours may require more where Slack does; those get a filler on our side only.
            our_base = dict(required_fillers(our_params, pname), **base)
            for path, raw in candidates:
                def given(params):
                    if path == "api":
                        return raw
                    return CLI[params[pname]["type"]](raw)
                try:
                    orig_value = given(orig_params)
                except Exception:
                    continue  # the original st2 client refuses this text too
                inst = dict(base, **{pname: orig_value})
                err, _ = st2_accepts(orig_params, inst)
                if err:
                    continue  # not valid for the original pack either
                checked += 1
                try:
                    our_value = given(our_params)
                except Exception as e:
                    rejections.append("%s %s=%r (%s): st2 client: %s" % (name, pname, raw, path, e))
                    continue
                err, cast = st2_accepts(our_params, dict(our_base, **{pname: our_value}))
                if err:
                    rejections.append("%s %s=%r (%s): %s" % (name, pname, raw, path, err))
                else:
                    samples.append((name, pname, raw, path, cast))
    return checked, rejections, samples


# --- slackctl side --------------------------------------------------------------------------

def emu_requests(method=None):
    with urllib.request.urlopen(os.environ["EMU_BASE_URL"] + "/_emulator/requests") as r:
        log = json.loads(r.read())
    if method:
        log = [e for e in log if e["path"] == "/api/" + method]
    return log


def emu_clear():
    req = urllib.request.Request(os.environ["EMU_BASE_URL"] + "/_emulator/requests",
                                 method="DELETE")
    urllib.request.urlopen(req).read()


def slackctl_run(action, params):
    env = dict(os.environ)
    env["SLACK_API_URL"] = os.environ["EMU_API_URL"]
    env["SLACK_TOKEN"] = os.environ["EMU_BOT_TOKEN"]
    # st2's runner sends the cast values as JSON; None means "not set".
    body = json.dumps({"parameters": params})
    p = subprocess.run(
        [os.environ["SLACKCTL_BIN"], "--no-rate-limit", "run", action, "--parameters", "-"],
        input=body, capture_output=True, text=True, env=env, timeout=30)
    return p.returncode, p.stderr


def group_fillers(doc, pname, params):
    """Satisfy slackctl's one-of groups without touching the parameter under test."""
    out = {}
    tags = {t["name"]: t["value"] for t in doc.get("tags") or []}
    for group in filter(None, tags.get("arg_groups", "").split(";")):
        kind, args = group.split(":", 1)
        args = args.split(",")
        if kind == "at_most_one" or pname in args or any(a in params for a in args):
            continue
        pick = next((a for a in ("content", "text", "channel") if a in args), args[0])
        out[pick] = filler(doc["parameters"][pick]["type"])
    return out


def slackctl_side(ours, samples):
    """Each changed or timestamp parameter of a generic action, two values each."""
    refused, sent = [], 0
    seen = {}
    for name, pname, raw, path, cast in samples:
        doc = ours[name]
        tags = {t["name"]: t["value"] for t in doc.get("tags") or []}
        if doc["entry_point"] != "run.py":
            continue
        wire = dict(w.split(":", 1) for w in filter(None, tags.get("wire_types", "").split(",")))
        if pname not in wire:
            continue
        key = (name, pname)
        if seen.get(key, 0) >= 2:
            continue
        seen[key] = seen.get(key, 0) + 1
        params = required_fillers(doc["parameters"], pname)
        params.update({k: v for k, v in cast.items() if k != pname})
        params[pname] = cast[pname]
        params.update(group_fillers(doc, pname, params))
        code, err = slackctl_run(name, params)
        sent += 1
        if code not in (0, 1) or "panicked" in err:
            refused.append("%s %s=%r (%s): exit %d: %s" % (name, pname, cast[pname], path,
                                                           code, err.strip()[:300]))
    return sent, refused


def wire_checks(original, ours):
    """Values the issue names, st2-cast as st2 would, and the form Slack receives."""
    def cast(action, pname, raw):
        ty = ours[action]["parameters"][pname]["type"]
        return CASTS[ty](raw)

    cases = [
        ("conversations.list", {"types": cast("conversations.list", "types",
                                              "public_channel,private_channel")},
         "types", "public_channel,private_channel"),
        ("conversations.history", {"channel": "C0123",
                                   "oldest": cast("conversations.history", "oldest", 0)},
         "oldest", "0.000000"),
        ("conversations.history", {"channel": "C0123", "limit": 100}, "limit", "100"),
        ("chat.delete", {"channel": "C0123",
                         "ts": cast("chat.delete", "ts", "1700000000.000240")},
         "ts", "1700000000.000240"),
        ("chat.scheduleMessage", {"channel": "C0123", "text": "x", "post_at": "1900000000",
                                  "thread_ts": cast("chat.scheduleMessage", "thread_ts",
                                                    1700000000.00024)},
         "thread_ts", "1700000000.000240"),
        ("apps.permissions.users.list", {"limit": cast("apps.permissions.users.list",
                                                       "limit", "100")},
         "limit", "100"),
        ("admin.users.invite", {"team_id": "T1", "email": "a@example.com",
                                "channel_ids": cast("admin.users.invite", "channel_ids",
                                                    "C1,C2")},
         "channel_ids", "C1,C2"),
    ]
    problems = []
    for action, params, field, want in cases:
        emu_clear()
        code, err = slackctl_run(action, params)
        if code not in (0, 1):
            problems.append("%s %r: exit %d: %s" % (action, params, code, err.strip()[:300]))
            continue
        reqs = emu_requests(action)
        if len(reqs) != 1:
            problems.append("%s: %d requests reached the emulator" % (action, len(reqs)))
            continue
        got = reqs[0]["args"].get(field)
        if str(got) != want:
            problems.append("%s: %s arrived as %r, want %r" % (action, field, got, want))
    # files.upload (hand-written): a comma string for channels passes validation.
    emu_clear()
    code, err = slackctl_run("files.upload", {"content": "hi", "filename": "a.txt",
                                              "channels": cast("files.upload", "channels",
                                                               "C1,C2")})
    if code == 2 or "panicked" in err:
        problems.append("files.upload channels='C1,C2': exit %d: %s" % (code, err[:300]))
    return problems


def main():
    with open(os.environ["ST2_ACTIONS"]) as fh:
        original = json.load(fh)
    ours = load_ours()
    missing = sorted(set(original) - set(ours))
    assert not missing, "actions missing: %s" % missing

    meta = check_meta_schema(ours)
    for m in meta:
        print("meta-schema: " + m)

    checked, rejections, samples = st2_side(original, ours)
    for r in rejections[:40]:
        print("st2 rejects: " + r)
    print("%d values checked, %d rejections" % (checked, len(rejections)))

    failures = len(meta) + len(rejections)
    if "SLACKCTL_BIN" in os.environ:
        sent, refused = slackctl_side(ours, samples)
        for r in refused[:40]:
            print("slackctl refuses: " + r)
        print("slackctl: %d st2-cast values sent, %d refused" % (sent, len(refused)))
        wire = wire_checks(original, ours)
        for w in wire:
            print("wire form: " + w)
        print("wire form: %d problems" % len(wire))
        failures += len(refused) + len(wire)
        if sent < 100:
            print("too few values sent (%d): the sample is broken" % sent)
            failures += 1
    if checked < 1000:
        print("too few values checked (%d): the generator is broken" % checked)
        failures += 1
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
