"""st2 entry point: runs post_message through slackctl."""

from lib.slackctl_action import SlackctlAction


class PostMessageAction(SlackctlAction):
    ACTION = "post_message"
