"""The one refusal of the attachment code: its message says why, for the person uploading."""


class UploadRefused(ValueError):
    """A file that is not stored (too large, not an allowed type, over a limit…)."""
