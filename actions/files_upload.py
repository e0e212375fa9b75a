"""st2 entry point: runs files.upload through slackctl.

By default the result keeps the original pack's shape, which workflows read: the uploaded
file's name, and `(False, <Slack's error code>)` when Slack refuses the upload. The
`full_result` parameter returns Slack's whole answer instead (`ok`, `files`, ...), as every
other action does.
"""

from lib.slackctl_action import SlackctlAction


def uploaded_name(answer):
    """The file's name from files.completeUploadExternal's answer (title or id if it has none)."""
    files = answer.get("files") or ([answer["file"]] if answer.get("file") else [])
    if not files:
        raise RuntimeError("files.upload: Slack's answer names no file: %r" % (answer,))
    first = files[0]
    return first.get("name") or first.get("title") or first.get("id")


class FilesUploadAction(SlackctlAction):
    ACTION = "files.upload"

    def run(self, full_result=False, **parameters):
        result = super(FilesUploadAction, self).run(**parameters)
        if full_result:
            return result
        if isinstance(result, tuple):
            status, answer = result
            error = answer.get("error") if isinstance(answer, dict) else answer
            return (status, error)
        return uploaded_name(result)
