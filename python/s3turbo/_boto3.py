"""boto3's own transfer functions, for the calls boto3 serves. They are boto3's module
functions, not the client's methods: after s3turbo.patch() those are the engine's.

boto3's upload_file and download_file run through its S3Transfer class, whose methods patch()
also serves on the engine; while one of these functions runs, S3Transfer's methods in its
thread are boto3's own again (`serving()`), or a call the engine left to boto3 would come
straight back to it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import boto3.s3.inject

_state = threading.local()


def serving() -> bool:
    """Whether this thread is inside one of boto3's transfer functions called from here."""
    return getattr(_state, "serving", False)


def _boto3s(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        outer = serving()
        _state.serving = True
        try:
            return function(*args, **kwargs)
        finally:
            _state.serving = outer

    return run


upload_file = _boto3s(boto3.s3.inject.upload_file)
download_file = _boto3s(boto3.s3.inject.download_file)
upload_fileobj = _boto3s(boto3.s3.inject.upload_fileobj)
download_fileobj = _boto3s(boto3.s3.inject.download_fileobj)
