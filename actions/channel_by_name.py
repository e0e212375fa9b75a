"""st2 entry point: runs channel_by_name through slackctl."""

from lib.slackctl_action import SlackctlAction


class ChannelByNameAction(SlackctlAction):
    ACTION = "channel_by_name"
