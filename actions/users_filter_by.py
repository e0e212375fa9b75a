"""st2 entry point: runs users_filter_by through slackctl."""

from lib.slackctl_action import SlackctlAction


class UsersFilterByAction(SlackctlAction):
    ACTION = "users_filter_by"
