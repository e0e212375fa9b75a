"""st2 entry point: runs user_by_email through slackctl."""

from lib.slackctl_action import SlackctlAction


class UserByEmailAction(SlackctlAction):
    ACTION = "user_by_email"
