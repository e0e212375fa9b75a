"""st2 entry point: runs users.admin.invite through slackctl."""

from lib.slackctl_action import SlackctlAction


class SendInviteAction(SlackctlAction):
    ACTION = "users.admin.invite"
