"""st2 entry point: runs Web API method named by the end_point parameter through slackctl."""

from lib.slackctl_action import SlackctlAction


class RunAction(SlackctlAction):
    ACTION = None
