"""st2 entry point: runs join_channel through slackctl."""

from lib.slackctl_action import SlackctlAction


class JoinChannelAction(SlackctlAction):
    ACTION = "join_channel"
