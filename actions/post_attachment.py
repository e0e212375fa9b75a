"""st2 entry point: runs post_attachment through slackctl."""

from lib.slackctl_action import SlackctlAction


class PostAttachmentAction(SlackctlAction):
    ACTION = "post_attachment"
