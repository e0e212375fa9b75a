"""st2 entry point: runs broadcast through slackctl."""

from lib.slackctl_action import SlackctlAction


class BroadcastAction(SlackctlAction):
    ACTION = "broadcast"
