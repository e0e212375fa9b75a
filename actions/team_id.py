"""st2 entry point: runs team_id through slackctl."""

from lib.slackctl_action import SlackctlAction


class TeamIdAction(SlackctlAction):
    ACTION = "team_id"
