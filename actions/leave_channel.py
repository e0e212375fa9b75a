"""st2 entry point: runs leave_channel through slackctl."""

from lib.slackctl_action import SlackctlAction


class LeaveChannelAction(SlackctlAction):
    ACTION = "leave_channel"
