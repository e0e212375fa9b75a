"""st2 entry point: runs files.upload through slackctl."""

from lib.slackctl_action import SlackctlAction


class FilesUploadAction(SlackctlAction):
    ACTION = "files.upload"
