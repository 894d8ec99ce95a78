"""MediaError: an image could not be used; its message is safe to show the client."""


class MediaError(ValueError):
    """An image could not be loaded; the message says why in the client's terms (no server paths, no
    exception classes, nothing a fetched server answered); the caller names the item and answers 400."""
