"""st2 entry point: runs send_dm through slackctl."""

from lib.slackctl_action import SlackctlAction


class SendDmAction(SlackctlAction):
    ACTION = "send_dm"
