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
botocore's back.

boto3's S3Transfer class (`S3Transfer(client, config).upload_file(...)`, what the client's
upload_file and download_file run on) gets methods that serve an S3Transfer made from a client
on the engine, as that client's upload_file and download_file would with that config; one made
with its own `osutil` or `manager` stays boto3's. unpatch() puts boto3's methods back. There is
nothing else to undo.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3.s3.inject
import botocore.signers
from boto3.s3.transfer import S3Transfer

from . import _boto3
from ._client import Client, Kept, botocore_generate_presigned_url

_lock = threading.Lock()
_boto3_inject = None  # boto3's handler while patched


def _engine(client: Any) -> Client:
    """The engine's view of a patched boto3 client, made for each call, with what the client's
    calls keep (see Kept). The client keeps no view: a view refers to its client, and a client
    in a reference cycle would outlive its last reference, with its connections, until the
    cyclic garbage collector runs (which some servers turn off or freeze)."""
    kept = client.__dict__.get("_s3turbo")
    if kept is None:
        kept = client.__dict__["_s3turbo"] = Kept()
    return Client(client, kept)


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


def close(self):
    return _engine(self).close()


def upload_directory(
    self, local_dir, Bucket, Prefix="", ExtraArgs=None, Callback=None, Config=None
):
    return _engine(self).upload_directory(local_dir, Bucket, Prefix, ExtraArgs, Callback, Config)


def download_directory(self, Bucket, Prefix, local_dir, ExtraArgs=None, Callback=None, Config=None):
    return _engine(self).download_directory(Bucket, Prefix, local_dir, ExtraArgs, Callback, Config)


_ENGINE_METHODS = {
    "close": close,
    "upload_directory": upload_directory,
    "download_directory": download_directory,
    "upload_file": upload_file,
    "download_file": download_file,
    "upload_fileobj": upload_fileobj,
    "download_fileobj": download_fileobj,
}
for _name, _method in {**_ENGINE_METHODS, "generate_presigned_url": generate_presigned_url}.items():
    _method.__doc__ = getattr(Client, _name).__doc__


def _s3transfer_init(self, client=None, config=None, osutil=None, manager=None):
    _BOTO3_S3TRANSFER["__init__"](self, client, config, osutil, manager)
    if client is not None and osutil is None and manager is None:
        self._s3turbo = (client, config)


def _s3transfer_engine(transfer: S3Transfer) -> tuple[Client, Any] | None:
    """The engine and the TransferConfig an S3Transfer's call runs with, or None for boto3's
    own: an S3Transfer made before patch() or with its own osutil or manager, and the calls of
    boto3's functions that serve what the engine leaves to boto3."""
    made_from = transfer.__dict__.get("_s3turbo")
    if made_from is None or _boto3.serving():
        return None
    client, config = made_from
    return (client if isinstance(client, Client) else _engine(client)), config


def _s3transfer_upload_file(self, filename, bucket, key, callback=None, extra_args=None):
    served = _s3transfer_engine(self)
    if served is None:
        return _BOTO3_S3TRANSFER["upload_file"](self, filename, bucket, key, callback, extra_args)
    engine, config = served
    return engine.upload_file(filename, bucket, key, extra_args, callback, config)


def _s3transfer_download_file(self, bucket, key, filename, extra_args=None, callback=None):
    served = _s3transfer_engine(self)
    if served is None:
        return _BOTO3_S3TRANSFER["download_file"](self, bucket, key, filename, extra_args, callback)
    engine, config = served
    return engine.download_file(bucket, key, filename, extra_args, callback, config)


# boto3's, kept before patch() puts the engine's in their place.
_BOTO3_S3TRANSFER = {
    "__init__": S3Transfer.__init__,
    "upload_file": S3Transfer.upload_file,
    "download_file": S3Transfer.download_file,
}
_ENGINE_S3TRANSFER = {
    "__init__": _s3transfer_init,
    "upload_file": _s3transfer_upload_file,
    "download_file": _s3transfer_download_file,
}
for _name, _method in _ENGINE_S3TRANSFER.items():
    _method.__name__ = _name
    _method.__qualname__ = f"S3Transfer.{_name}"
    _method.__doc__ = _BOTO3_S3TRANSFER[_name].__doc__


def _inject_engine_methods(class_attributes, **kwargs):
    boto3_inject = _boto3_inject
    if boto3_inject is None:
        # unpatch() ran in another thread after boto3 looked this handler up: the client gets
        # boto3's methods, as one made after unpatch() does.
        boto3.s3.inject.inject_s3_transfer_methods(class_attributes, **kwargs)
        return
    boto3_inject(class_attributes, **kwargs)
    class_attributes.update(_ENGINE_METHODS)


def patch() -> None:
    """From now on, S3 clients and resources that boto3 creates use the engine for
    upload_file, download_file, upload_fileobj, download_fileobj and generate_presigned_url,
    and have s3turbo's upload_directory and download_directory; so do boto3 S3Transfers made
    from a client. Calling it again changes nothing."""
    global _boto3_inject
    with _lock:
        if _boto3_inject is None:
            _boto3_inject = boto3.s3.inject.inject_s3_transfer_methods
            boto3.s3.inject.inject_s3_transfer_methods = _inject_engine_methods
            botocore.signers.generate_presigned_url = generate_presigned_url
            for name, method in _ENGINE_S3TRANSFER.items():
                setattr(S3Transfer, name, method)


def unpatch() -> None:
    """Undoes patch(): clients created from now on, and every S3Transfer, are boto3's own
    again."""
    global _boto3_inject
    with _lock:
        if _boto3_inject is not None:
            boto3.s3.inject.inject_s3_transfer_methods = _boto3_inject
            botocore.signers.generate_presigned_url = botocore_generate_presigned_url
            for name, method in _BOTO3_S3TRANSFER.items():
                setattr(S3Transfer, name, method)
            _boto3_inject = None


def accelerate(client: Any) -> Client:
    """The engine for one existing boto3 S3 client, with that client's credentials and
    settings; every other method is the client's own. An accelerated client is returned as
    it is."""
    return client if isinstance(client, Client) else Client(client)
