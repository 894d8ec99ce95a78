"""Reads local image files under --allowed-local-media-path: no symlinks, no '..', regular files only, bounded.

The path is walked one component at a time from the allowed directory's descriptor with O_NOFOLLOW, so no
symlink (planted before or swapped in during the walk) can lead outside; the opened file is then checked on
its descriptor (fstat: a regular file, within the byte limit) and read with a bounded read. Blocking calls:
run it in a worker thread.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from server.inputs.media_errors import MediaError

MAX_PATH_CHARS = 4096
MAX_NAME_CHARS = 255
_OUTSIDE = "local path is outside the allowed media directory (symbolic links are not followed)"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused right after, as not a regular file.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True)
class LocalMediaRoot:
    configured: str  # the directory as the operator wrote it, made absolute
    resolved: str  # the same with symlinks resolved: what the walk starts from

    @classmethod
    def from_flag(cls, path: str) -> LocalMediaRoot:
        return cls(os.path.abspath(path), os.path.realpath(path))


def read_local_image(path: str, root: LocalMediaRoot | None, max_media_bytes: int) -> bytes:
    if root is None:
        raise MediaError("local image paths are disabled; start the server with --allowed-local-media-path DIR")
    components = _components_under(_strip_file_scheme(path), root)
    try:
        directory = os.open(root.resolved, _DIR_FLAGS)
    except OSError:
        raise MediaError("local path cannot be read") from None
    try:
        for name in components[:-1]:
            inner = os.open(name, _DIR_FLAGS, dir_fd=directory)
            os.close(directory)
            directory = inner
        fd = os.open(components[-1], _FILE_FLAGS, dir_fd=directory)
    except OSError as error:
        raise _open_error(error) from None
    finally:
        os.close(directory)
    try:
        return _read_regular_file(fd, max_media_bytes)
    finally:
        os.close(fd)


def _strip_file_scheme(path: str) -> str:
    if path[:7].lower() != "file://":
        return path
    rest = path[7:]
    if rest[:9].lower() == "localhost":
        rest = rest[9:]
    if not rest.startswith("/"):
        raise MediaError("file URL must have the form file:///absolute/path")
    return rest


def _components_under(path: str, root: LocalMediaRoot) -> list[str]:
    """The path's names below the allowed directory, judged lexically ('..' collapsed; no symlink is
    followed later, so the lexical answer is the real one)."""
    if len(path) > MAX_PATH_CHARS:
        raise MediaError(f"local path is longer than {MAX_PATH_CHARS} characters")
    if "\x00" in path:
        raise MediaError("local path contains a NUL character")
    absolute = os.path.normpath(path if os.path.isabs(path) else os.path.join(root.configured, path))
    for base in (root.configured, root.resolved):
        if absolute == base:
            raise MediaError("local path is a directory, not a regular file")
        prefix = base.rstrip("/") + "/"
        if absolute.startswith(prefix):
            components = absolute[len(prefix) :].split("/")
            if any(len(name) > MAX_NAME_CHARS for name in components):
                raise MediaError(f"local path has a name longer than {MAX_NAME_CHARS} characters")
            return components
    raise MediaError(_OUTSIDE)


def _open_error(error: OSError) -> MediaError:
    if error.errno == errno.ELOOP:
        return MediaError(_OUTSIDE)
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return MediaError("local path is not a file under the allowed media directory")
    if error.errno == errno.ENAMETOOLONG:
        return MediaError("local path is too long")
    return MediaError("local path cannot be read")


def _read_regular_file(fd: int, max_media_bytes: int) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise MediaError("local path is not a regular file")
    if info.st_size > max_media_bytes:
        raise MediaError(f"local file is larger than the limit of {max_media_bytes} bytes (--max-media-bytes)")
    # st_size can understate (files that grow, /proc-like files): the read itself is bounded too
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            chunk = os.read(fd, min(1 << 20, max_media_bytes + 1 - total))
        except OSError:
            raise MediaError("local path cannot be read") from None
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > max_media_bytes:
            raise MediaError(f"local file is larger than the limit of {max_media_bytes} bytes (--max-media-bytes)")
