"""s3turbo.patch(): S3 clients (and so Bucket and Object resources) that boto3 creates from then
on have their transfer methods and generate_presigned_url served by the engine.

boto3 adds upload_file and the rest to each S3 client class it creates, through a handler on
botocore's `creating-client-class.s3` event that it looks up by name
(`boto3.s3.inject.inject_s3_transfer_methods`) every time. patch() puts a handler in its place
that calls boto3's and then adds the engine's methods over them; unpatch() puts boto3's back.
Every session, the default one included, goes through that one name, so one swap covers them
all.

generate_presigned_url is added later, by botocore's own handler for every client class, which
looks up `botocore.signers.generate_presigned_url` by name the same way: patch() puts there a
function that serves S3 clients on the engine and the others with botocore's; unpatch() puts
botocore's back. There is nothing else to undo.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3.s3.inject
import botocore.signers

from ._client import Client, botocore_generate_presigned_url

_lock = threading.Lock()
_boto3_inject = None  # boto3's handler while patched


def _engine(client: Any) -> Client:
    """The engine's view of a patched boto3 client, made once per client."""
    engine = client.__dict__.get("_s3turbo")
    if engine is None:
        engine = client.__dict__["_s3turbo"] = Client(client)
    return engine


def upload_file(self, Filename, Bucket, Key, ExtraArgs=None, Callback=None, Config=None):
    return _engine(self).upload_file(Filename, Bucket, Key, ExtraArgs, Callback, Config)


def download_file(self, Bucket, Key, Filename, ExtraArgs=None, Callback=None, Config=None):
    return _engine(self).download_file(Bucket, Key, Filename, ExtraArgs, Callback, Config)


def upload_fileobj(self, Fileobj, Bucket, Key, ExtraArgs=None, Callback=None, Config=None):
    return _engine(self).upload_fileobj(Fileobj, Bucket, Key, ExtraArgs, Callback, Config)


def download_fileobj(self, Bucket, Key, Fileobj, ExtraArgs=None, Callback=None, Config=None):
    return _engine(self).download_fileobj(Bucket, Key, Fileobj, ExtraArgs, Callback, Config)


def generate_presigned_url(self, ClientMethod, Params=None, ExpiresIn=3600, HttpMethod=None):
    if self.meta.service_model.service_name != "s3":
        return botocore_generate_presigned_url(self, ClientMethod, Params, ExpiresIn, HttpMethod)
    return _engine(self).generate_presigned_url(ClientMethod, Params, ExpiresIn, HttpMethod)


def upload_directory(
    self, local_dir, Bucket, Prefix="", ExtraArgs=None, Callback=None, Config=None
):
    return _engine(self).upload_directory(local_dir, Bucket, Prefix, ExtraArgs, Callback, Config)


def download_directory(self, Bucket, Prefix, local_dir, ExtraArgs=None, Callback=None, Config=None):
    return _engine(self).download_directory(Bucket, Prefix, local_dir, ExtraArgs, Callback, Config)


_ENGINE_METHODS = {
    "upload_directory": upload_directory,
    "download_directory": download_directory,
    "upload_file": upload_file,
    "download_file": download_file,
    "upload_fileobj": upload_fileobj,
    "download_fileobj": download_fileobj,
}
for _name, _method in {**_ENGINE_METHODS, "generate_presigned_url": generate_presigned_url}.items():
    _method.__doc__ = getattr(Client, _name).__doc__


def _inject_engine_methods(class_attributes, **kwargs):
    _boto3_inject(class_attributes, **kwargs)
    class_attributes.update(_ENGINE_METHODS)


def patch() -> None:
    """From now on, S3 clients and resources that boto3 creates use the engine for
    upload_file, download_file, upload_fileobj, download_fileobj and generate_presigned_url,
    and have s3turbo's upload_directory and download_directory. Calling it again changes
    nothing."""
    global _boto3_inject
    with _lock:
        if _boto3_inject is None:
            _boto3_inject = boto3.s3.inject.inject_s3_transfer_methods
            boto3.s3.inject.inject_s3_transfer_methods = _inject_engine_methods
            botocore.signers.generate_presigned_url = generate_presigned_url


def unpatch() -> None:
    """Undoes patch(): clients created from now on are boto3's own again."""
    global _boto3_inject
    with _lock:
        if _boto3_inject is not None:
            boto3.s3.inject.inject_s3_transfer_methods = _boto3_inject
            botocore.signers.generate_presigned_url = botocore_generate_presigned_url
            _boto3_inject = None


def accelerate(client: Any) -> Client:
    """The engine for one existing boto3 S3 client, with that client's credentials and
    settings; every other method is the client's own."""
    return Client(client)
