"""FFmpeg's error log while PyAV reads a file.

PyAV drops the FFmpeg libraries' log by default, and a demuxer or decoder that meets a damaged
packet logs an error and goes on; `ERRORS` collects those lines for whoever reads a file
(`rppgedit.video.probe`, `rppgedit.video.decode`), so a damaged file is refused instead of read
with frames missing.
"""

import threading

import av
import av.logging


class ErrorLog:
    """FFmpeg's error-level log lines while any PyAV reader (demuxer or decoder) is open.

    While a reader is open the level is raised to ERROR (when it was lower), FFmpeg's suppression
    of repeated lines is off (the same error in the next file counts), and the lines of every
    thread (the decoders' worker threads too) collect in one list; each reader reads the lines
    logged since it opened. The level and PyAV's routing are restored when the last reader
    finishes. Lines logged by another reader open at the same time are counted too: an edit's
    concurrent readers read the same file.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._capture = None
        self._lines: list = []
        self._level_before = None
        self._skip_before = True

    def open(self) -> int:
        with self._lock:
            if self._users == 0:
                self._level_before = av.logging.get_level()
                self._skip_before = av.logging.get_skip_repeated()
                if self._level_before is None or self._level_before < av.logging.ERROR:
                    av.logging.set_level(av.logging.ERROR)
                av.logging.set_skip_repeated(False)  # the same error in the next file counts
                self._capture = av.logging.Capture(local=False)
                self._lines = self._capture.__enter__()
            self._users += 1
            return len(self._lines)

    def first_since(self, start: int) -> str | None:
        """The first error logged since ``start`` (an `open` result), or None."""
        with self._lock:
            for level, _, message in self._lines[start:]:
                if level <= av.logging.ERROR and message.strip():
                    return message.strip()
            return None

    def close(self, start: int) -> str | None:
        """The first error logged since ``start`` (an `open` result), or None; ends that reader."""
        problem = self.first_since(start)
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._capture.__exit__(None, None, None)
                self._capture, self._lines = None, []
                av.logging.set_level(self._level_before)
                av.logging.set_skip_repeated(self._skip_before)
        return problem


ERRORS = ErrorLog()
