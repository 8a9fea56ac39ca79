"""upload_directory and download_directory: whole folders, many objects at once, one Callback,
a report of what failed, and keys that cannot escape the local folder."""

from __future__ import annotations

import asyncio
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from helpers import MIB, Callbacks, run_script, write_random

import s3turbo
from faultproxy import Fault, FaultProxy
from s3turbo import _directory
from servers import ACCESS_KEY, SECRET_KEY

# A folder with nesting, an empty folder, spaces and non-ASCII names, and several extensions.
TREE = {
    "top.txt": b"top level",
    "data/table.csv": b"a,b\n1,2\n",
    "data/deeper/still deeper/notes with spaces.json": b'{"k": 1}',
    "données/ünïcode — 名前.bin": os.urandom(70_000),
    "data/no-extension": b"\x00\x01",
}


def make_tree(root: Path, tree: dict[str, bytes] = TREE) -> Path:
    for relative, content in tree.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "empty folder").mkdir()
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


def test_upload_directory(server, bucket, tmp_path):
    source = make_tree(tmp_path / "source")
    callbacks = Callbacks()
    uploaded = server.s3turbo_client().upload_directory(
        source, bucket, "backup", Callback=callbacks
    )
    assert uploaded == {f"backup/{name}": str(source / name) for name in TREE}
    boto = server.boto3_client()
    listed = boto.list_objects_v2(Bucket=bucket)["Contents"]
    # The empty folder has no object to become.
    assert sorted(item["Key"] for item in listed) == sorted(f"backup/{name}" for name in TREE)
    for name, content in TREE.items():
        assert boto.get_object(Bucket=bucket, Key=f"backup/{name}")["Body"].read() == content
    # A name without a known extension gets no content type, as with boto3's upload_file.
    boto.upload_file(str(source / "data/no-extension"), bucket, "by-boto3")
    content_types = {
        name: boto.head_object(Bucket=bucket, Key=key).get("ContentType")
        for name, key in [
            ("top.txt", "backup/top.txt"),
            ("data/table.csv", "backup/data/table.csv"),
            ("data/no-extension", "backup/data/no-extension"),
            ("boto3", "by-boto3"),
        ]
    }
    assert content_types.pop("data/no-extension") == content_types.pop("boto3")
    assert content_types == {"top.txt": "text/plain", "data/table.csv": "text/csv"}
    assert callbacks.total == sum(len(content) for content in TREE.values())


def test_extra_args_apply_to_every_object(server, bucket, tmp_path):
    source = make_tree(tmp_path / "source")
    extra = {"ContentType": "application/x-mine", "Metadata": {"batch": "7"}}
    server.s3turbo_client().upload_directory(source, bucket, "", ExtraArgs=extra)
    boto = server.boto3_client()
    for name in TREE:
        head = boto.head_object(Bucket=bucket, Key=name)
        assert (head["ContentType"], head["Metadata"]) == ("application/x-mine", {"batch": "7"})


def test_download_directory_round_trip(server, bucket, tmp_path):
    make_tree(tmp_path / "source")
    client = server.s3turbo_client()
    client.upload_directory(tmp_path / "source", bucket, "set/")
    # A neighbour whose key starts with the same letters is not part of "set".
    client.put_object(Bucket=bucket, Key="settings.txt", Body=b"not in the set")
    callbacks = Callbacks()
    downloaded = client.download_directory(bucket, "set", tmp_path / "copy", Callback=callbacks)
    assert read_tree(tmp_path / "copy") == TREE
    assert sorted(downloaded) == sorted(f"set/{name}" for name in TREE)
    assert callbacks.total == sum(len(content) for content in TREE.values())
    assert not [p for p in (tmp_path / "copy").rglob("*.s3turbo-*")]


def test_folder_markers_become_folders(moto, tmp_path):
    """The zero-byte "folder/" objects consoles create (moto keeps them; s3s-fs has real
    folders instead) become empty folders."""
    bucket = moto.new_bucket()
    boto = moto.boto3_client()
    boto.put_object(Bucket=bucket, Key="p/empty folder/", Body=b"")
    boto.put_object(Bucket=bucket, Key="p/full/file.txt", Body=b"x")
    downloaded = moto.s3turbo_client().download_directory(bucket, "p/", tmp_path / "copy")
    assert list(downloaded) == ["p/full/file.txt"]
    assert (tmp_path / "copy" / "empty folder").is_dir()
    assert read_tree(tmp_path / "copy") == {"full/file.txt": b"x"}


@pytest.mark.parametrize("served_by", ["engine", "boto3"])
def test_a_folder_marker_with_content_is_reported(moto, tmp_path, monkeypatch, served_by):
    """A key ending with "/" that has content has no file to go to: it is reported as failed
    (as a download_file of it would fail), not made a folder and its bytes silently left."""
    if served_by == "boto3":
        monkeypatch.setenv("S3TURBO_DISABLE", "1")
    bucket = moto.new_bucket()
    boto = moto.boto3_client()
    boto.put_object(Bucket=bucket, Key="p/marker/", Body=b"content")
    boto.put_object(Bucket=bucket, Key="p/file.txt", Body=b"x")
    with pytest.raises(s3turbo.DirectoryTransferError) as raised:
        moto.s3turbo_client().download_directory(bucket, "p/", tmp_path / "copy")
    assert list(raised.value.failed) == ["p/marker/"]
    assert isinstance(raised.value.failed["p/marker/"], IsADirectoryError)
    assert raised.value.transferred == {"p/file.txt": str(tmp_path / "copy" / "file.txt")}
    assert read_tree(tmp_path / "copy") == {"file.txt": b"x"}


def test_keys_that_would_escape_are_refused_and_the_rest_downloaded(moto, tmp_path):
    """moto keeps any key, so it holds keys that would climb out of the folder: those are
    refused and reported, the others are downloaded all the same."""
    bucket = moto.new_bucket()
    boto = moto.boto3_client()
    escaping = ["p/../../outside.txt", "p/a/../../../outside2.txt", "p/.."]
    for key in [*escaping, "p/fine.txt", "p/sub/also fine.txt"]:
        boto.put_object(Bucket=bucket, Key=key, Body=key.encode())
    target = tmp_path / "nested" / "target"
    with pytest.raises(s3turbo.DirectoryTransferError) as raised:
        moto.s3turbo_client().download_directory(bucket, "p", target)
    report = raised.value
    assert sorted(report.failed) == sorted(escaping)
    assert all(isinstance(error, ValueError) for error in report.failed.values())
    assert sorted(report.transferred) == ["p/fine.txt", "p/sub/also fine.txt"]
    assert read_tree(target) == {
        "fine.txt": b"p/fine.txt",
        "sub/also fine.txt": b"p/sub/also fine.txt",
    }
    assert sorted(p.name for p in tmp_path.rglob("outside*")) == []


def test_one_failed_upload_does_not_lose_the_others(server, bucket, tmp_path):
    """A (sparse) file over S3's 5 TiB limit is refused before any request; the others are
    uploaded and reported."""
    source = make_tree(tmp_path / "source", {"a.txt": b"a", "z.txt": b"z"})
    with open(source / "huge.bin", "wb") as huge:
        huge.truncate(6 * 1024**4)
    with pytest.raises(s3turbo.DirectoryTransferError) as raised:
        server.s3turbo_client().upload_directory(source, bucket, "")
    report = raised.value
    assert list(report.transferred) == ["a.txt", "z.txt"]
    assert list(report.failed) == ["huge.bin"]
    assert isinstance(report.failed["huge.bin"], ValueError)
    assert "5 TiB" in str(report.failed["huge.bin"]) and "1 of 3 objects" in str(report)
    keys = [o["Key"] for o in server.boto3_client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["a.txt", "z.txt"]


def test_patched_boto3_clients_have_the_directory_methods(s3s_fs, tmp_path, monkeypatch):
    """After patch() plain boto3 clients have them too; S3TURBO_DISABLE makes boto3 upload one
    object after another, with the same result."""
    source = make_tree(tmp_path / "source")
    s3turbo.patch()
    try:
        client = boto3.client("s3", **s3s_fs.client_kwargs())
        bucket = s3s_fs.new_bucket()
        monkeypatch.setenv("S3TURBO_DISABLE", "1")
        client.upload_directory(source, bucket, "one-by-one")
        monkeypatch.delenv("S3TURBO_DISABLE")
        client.download_directory(bucket, "one-by-one", tmp_path / "copy")
    finally:
        s3turbo.unpatch()
    assert read_tree(tmp_path / "copy") == TREE


def test_not_a_directory(s3s_fs, tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    client = s3s_fs.s3turbo_client()
    with pytest.raises(NotADirectoryError):
        client.upload_directory(tmp_path / "file", "bucket", "")
    with pytest.raises(NotADirectoryError):
        client.upload_directory(tmp_path / "missing", "bucket", "")
    # As upload_directory, and as a download_file into it would.
    with pytest.raises(NotADirectoryError):
        client.download_directory(s3s_fs.new_bucket(), "", tmp_path / "file")


def test_an_empty_local_dir_is_no_folder(s3s_fs, tmp_path, monkeypatch):
    """`Path("")` is the working directory; an empty name (an unset setting) is refused as
    boto3's upload_file("") and os.listdir("") refuse it, before anything moves."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="p/k.txt", Body=b"x")
    monkeypatch.chdir(make_tree(tmp_path / "cwd", {"private.txt": b"not for the bucket"}))
    client = s3s_fs.s3turbo_client()
    with pytest.raises(FileNotFoundError) as boto3_raised:
        s3s_fs.boto3_client().upload_file("", bucket, "k")
    with pytest.raises(FileNotFoundError) as raised:
        client.upload_directory("", bucket, "q")
    assert raised.value.errno == boto3_raised.value.errno
    with pytest.raises(FileNotFoundError):
        client.download_directory(bucket, "p", "")
    assert sorted(os.listdir(".")) == ["empty folder", "private.txt"]
    listed = s3s_fs.boto3_client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["p/k.txt"]


@pytest.mark.parametrize(
    "kwargs, raises",
    [
        ({"Bucket": 123}, TypeError),
        ({"ExtraArgs": "ACL=private"}, ValueError),
        ({"ExtraArgs": 7}, TypeError),
        ({"ExtraArgs": {"Nope": 1}}, ValueError),
        ({"Config": object()}, TypeError),
        ({"Prefix": None}, ValueError),
    ],
)
def test_bad_arguments_are_refused_up_front(s3s_fs, tmp_path, kwargs, raises):
    """As the transfer methods refuse them, sync and async, before any request or any folder is
    made."""
    source = make_tree(tmp_path / "source")
    client = s3s_fs.s3turbo_client()
    bucket = s3s_fs.new_bucket()
    args = {"Bucket": bucket, "Prefix": "p", **kwargs}
    with pytest.raises(raises):
        client.upload_directory(source, **args)
    with pytest.raises(raises):
        client.download_directory(local_dir=tmp_path / "copy", **args)

    async def main():
        async with s3turbo.aio.client("s3", **s3s_fs.client_kwargs()) as s3:
            with pytest.raises(raises):
                await s3.upload_directory(source, **args)
            with pytest.raises(raises):
                await s3.download_directory(local_dir=tmp_path / "copy", **args)

    asyncio.run(main())
    assert not (tmp_path / "copy").exists()
    assert "Contents" not in s3s_fs.boto3_client().list_objects_v2(Bucket=bucket)


def test_listing_pages_as_boto3(server, bucket, tmp_path):
    """The engine lists the keys, over more than one page of them."""
    make_tree(tmp_path / "many", {f"f{i:04d}": b"" for i in range(1001)})
    client = server.s3turbo_client()
    client.upload_directory(tmp_path / "many", bucket, "p")
    pages = server.boto3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    listed = [item["Key"] for page in pages for item in page.get("Contents", [])]
    assert len(listed) == 1001
    assert sorted(client.download_directory(bucket, "p", tmp_path / "copy")) == sorted(listed)


def test_listed_keys_are_decoded_as_boto3_decodes_them(moto, tmp_path):
    """Keys holding what a listing must URL-encode (`+`, `%`, spaces, a control character).
    moto only: s3s-fs answers EncodingType=url without encoding, so boto3 and the engine both
    decode its `a+b` into `a b` there."""
    bucket = moto.new_bucket()
    odd = ["p/a+b %41.txt", "p/100%.txt", "p/tab\there.txt", "p/ünï/名前.txt"]
    for key in odd:
        moto.boto3_client().put_object(Bucket=bucket, Key=key, Body=key.encode())
    downloaded = moto.s3turbo_client().download_directory(bucket, "p", tmp_path / "copy")
    assert sorted(downloaded) == sorted(odd)
    copy = read_tree(tmp_path / "copy")
    assert {key: copy[key[2:]] for key in odd} == {key: key.encode() for key in odd}


def test_listing_a_missing_bucket_raises_as_boto3(server, tmp_path):
    with pytest.raises(Exception) as ours:
        server.s3turbo_client().download_directory("no-such-bucket-here", "", tmp_path / "a")
    paginator = server.boto3_client().get_paginator("list_objects_v2")
    with pytest.raises(Exception) as theirs:
        list(paginator.paginate(Bucket="no-such-bucket-here"))
    assert type(ours.value) is type(theirs.value)
    assert ours.value.response["Error"]["Code"] == theirs.value.response["Error"]["Code"]


# The asyncio API: the same methods as coroutines.


def test_async_directory_round_trip_matches_the_sync_api(server, bucket, tmp_path):
    source = make_tree(tmp_path / "source")
    up_callbacks, down_callbacks = Callbacks(), Callbacks()

    async def main():
        async with s3turbo.aio.client("s3", **server.client_kwargs()) as s3:
            uploaded = await s3.upload_directory(source, bucket, "async", Callback=up_callbacks)
            downloaded = await s3.download_directory(
                bucket, "async", tmp_path / "copy", Callback=down_callbacks
            )
        return uploaded, downloaded, threading.get_ident()

    uploaded, downloaded, loop_thread = asyncio.run(main())
    client = server.s3turbo_client()
    assert uploaded == client.upload_directory(source, bucket, "async")
    downloaded_by_sync = client.download_directory(bucket, "async", tmp_path / "sync copy")
    assert downloaded == {
        key: path.replace("sync copy", "copy") for key, path in downloaded_by_sync.items()
    }
    assert read_tree(tmp_path / "copy") == read_tree(tmp_path / "sync copy") == TREE
    size = sum(len(content) for content in TREE.values())
    assert up_callbacks.total == down_callbacks.total == size
    assert up_callbacks.threads == down_callbacks.threads == {loop_thread}
    head = server.boto3_client().head_object(Bucket=bucket, Key="async/data/table.csv")
    assert head["ContentType"] == "text/csv"


def test_async_directory_failures_are_the_sync_apis(moto, tmp_path):
    bucket = moto.new_bucket()
    boto = moto.boto3_client()
    for key in ["p/../outside.txt", "p/fine.txt"]:
        boto.put_object(Bucket=bucket, Key=key, Body=b"x")

    async def main():
        async with s3turbo.aio.client("s3", **moto.client_kwargs()) as s3:
            with pytest.raises(s3turbo.DirectoryTransferError) as raised:
                await s3.download_directory(bucket, "p", tmp_path / "copy")
            with pytest.raises(s3.exceptions.NoSuchBucket):
                await s3.download_directory("no-such-bucket-here", "", tmp_path / "none")
            with pytest.raises(NotADirectoryError):
                await s3.upload_directory(tmp_path / "missing", bucket, "")
            with pytest.raises(ValueError, match="Invalid extra_args key"):
                await s3.download_directory(bucket, "p", tmp_path / "x", ExtraArgs={"Nope": 1})
        return raised.value

    report = asyncio.run(main())
    assert list(report.failed) == ["p/../outside.txt"]
    assert isinstance(report.failed["p/../outside.txt"], ValueError)
    assert report.transferred == {"p/fine.txt": str(tmp_path / "copy" / "fine.txt")}
    assert sorted(p.name for p in tmp_path.rglob("outside*")) == []
    assert not (tmp_path / "x").exists()  # bad ExtraArgs are refused before anything is made


class Stop(Exception):
    pass


def test_async_directory_callback_exception_stops_it_cleanly(moto, tmp_path):
    """A Callback raising stops the whole directory upload; the multipart upload in flight is
    aborted and the exception reaches the caller unchanged."""
    bucket = moto.new_bucket()
    source = tmp_path / "source"
    source.mkdir()
    write_random(source / "big.bin", 24 * MIB)
    raised = Stop("enough")

    def callback(increment):
        raise raised

    async def main():
        async with s3turbo.aio.client("s3", **moto.client_kwargs()) as s3:
            with pytest.raises(Stop) as caught:
                config = s3turbo.TransferConfig(
                    multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB
                )
                await s3.upload_directory(source, bucket, "", Callback=callback, Config=config)
            return caught.value

    assert asyncio.run(main()) is raised
    boto = moto.boto3_client()
    assert boto.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert boto.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_cancelled_async_download_directory_leaves_no_partial_file(server, bucket, tmp_path):
    """Cancelling the task mid-way: the objects in flight leave no temporary file, and what is
    on disk is complete objects only."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("a.bin", "b.bin", "c.bin"):
        write_random(source / name, 6 * MIB)
    server.s3turbo_client().upload_directory(source, bucket, "p")
    target = tmp_path / "copy"

    async def main():
        with FaultProxy(server.endpoint_url) as slow:
            slow.bytes_per_second = 4 * MIB
            s3 = s3turbo.aio.client("s3", **server.client_kwargs(endpoint_url=slow.endpoint_url))
            started = asyncio.Event()
            task = asyncio.create_task(
                s3.download_directory(bucket, "p", target, Callback=lambda n: started.set())
            )
            await asyncio.wait_for(started.wait(), timeout=30)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    left = {path.name: path.read_bytes() for path in target.iterdir()}
    assert set(left) < {"a.bin", "b.bin", "c.bin"}  # no temporary file, not all done
    assert all(content == (source / name).read_bytes() for name, content in left.items())


def test_async_directory_through_boto3(s3s_fs, tmp_path, monkeypatch):
    """With S3TURBO_DISABLE boto3 transfers the objects one by one, in a worker thread."""
    source = make_tree(tmp_path / "source")
    bucket = s3s_fs.new_bucket()
    monkeypatch.setenv("S3TURBO_DISABLE", "1")

    async def main():
        async with s3turbo.aio.client("s3", **s3s_fs.client_kwargs()) as s3:
            await s3.upload_directory(source, bucket, "p")
            return await s3.download_directory(bucket, "p", tmp_path / "copy")

    assert sorted(asyncio.run(main())) == sorted(f"p/{name}" for name in TREE)
    assert read_tree(tmp_path / "copy") == TREE


# Trees and listings a careful user may have: links, unreadable folders, names S3 cannot
# take, keys that land on one file, the prefix's own folder marker.


def test_links_are_followed_and_what_cannot_be_uploaded_is_reported(moto, tmp_path):
    """Links to files and to folders are followed, as the AWS CLI follows them; a link that
    leads nowhere, a link back up the tree and a name that is not UTF-8 (S3 keys are) are
    reported, and everything else is uploaded."""
    bucket = moto.new_bucket()
    shared = make_tree(tmp_path / "shared", {"logo.png": b"png"})
    source = make_tree(tmp_path / "source", {"index.html": b"<html>"})
    (source / "assets").symlink_to(shared, target_is_directory=True)
    (source / "home.html").symlink_to(source / "index.html")
    (source / "gone.txt").symlink_to(tmp_path / "nothing here")
    (source / "loop").symlink_to(source, target_is_directory=True)
    (source / os.fsdecode(b"latin-1 caf\xe9.txt")).write_bytes(b"x")
    with pytest.raises(s3turbo.DirectoryTransferError) as raised:
        moto.s3turbo_client().upload_directory(source, bucket, "www")
    report = raised.value
    assert sorted(report.transferred) == ["www/assets/logo.png", "www/home.html", "www/index.html"]
    failed = report.failed
    assert sorted(failed) == sorted(
        ["www/gone.txt", "www/loop/", os.fsdecode(b"www/latin-1 caf\xe9.txt")]
    )
    assert isinstance(failed["www/gone.txt"], FileNotFoundError)
    assert isinstance(failed["www/loop/"], OSError)
    listed = moto.boto3_client().list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(report.transferred)


@pytest.mark.parametrize(
    "mode, failed",
    [
        (0, "{'locked/': 'PermissionError'}"),
        # Listed, but its files cannot be looked at: each is a failure of its own.
        (0o644, "{'locked/b.txt': 'PermissionError'}"),
    ],
)
def test_an_unreadable_folder_is_reported(moto, tmp_path, mode, failed):
    """A folder that cannot be listed, or whose files cannot be looked at, is a failure of its
    own, not a subtree left out in silence nor the end of the whole call. (Run without root's
    right to read anything, in a process of its own.)"""
    bucket = moto.new_bucket()
    source = make_tree(tmp_path / "source", {"a.txt": b"a", "locked/b.txt": b"b"})
    (source / "locked").chmod(mode)
    script = """if True:
        import sys, s3turbo
        client = s3turbo.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                                aws_access_key_id="k", aws_secret_access_key="s")
        try:
            client.upload_directory(sys.argv[2], sys.argv[3], "")
        except s3turbo.DirectoryTransferError as error:
            failed = {key: type(e).__name__ for key, e in error.failed.items()}
            print(sorted(error.transferred), failed)
    """
    command = [sys.executable, "-c", script, moto.endpoint_url, str(source), bucket]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root reads any folder, and setpriv is missing")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        (source / "locked").chmod(0o755)
    assert result.stdout.strip() == f"['a.txt'] {failed}", result.stderr


def test_keys_that_land_on_one_file_are_refused(moto, tmp_path):
    """Keys that differ only in empty or "." segments name the same file: the first listed is
    downloaded, the other refused (both used to be reported downloaded, one lost). The prefix's
    own folder marker is local_dir itself."""
    bucket = moto.new_bucket()
    boto = moto.boto3_client()
    for key in ["p/", "p/a//b", "p/a/b", "p/./x", "p/x"]:
        boto.put_object(Bucket=bucket, Key=key, Body=b"" if key == "p/" else key.encode())
    with pytest.raises(s3turbo.DirectoryTransferError) as raised:
        moto.s3turbo_client().download_directory(bucket, "p", tmp_path / "copy")
    report = raised.value
    assert sorted(report.failed) == ["p/a/b", "p/x"]  # listed after "p/a//b" and "p/./x"
    assert all(isinstance(error, ValueError) for error in report.failed.values())
    assert read_tree(tmp_path / "copy") == {"a/b": b"p/a//b", "x": b"p/./x"}
    again = pickle.loads(pickle.dumps(report))  # a process pool's worker can raise it
    assert (str(again), list(again.failed), again.transferred) == (
        str(report),
        list(report.failed),
        report.transferred,
    )


def test_keys_that_land_on_one_file_through_a_link_are_refused(moto, tmp_path):
    """A link already in local_dir can make two keys name one file: the second is refused."""
    bucket = moto.new_bucket()
    boto = moto.boto3_client()
    for key in ["p/alias/f", "p/real/f"]:
        boto.put_object(Bucket=bucket, Key=key, Body=key.encode())
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    with pytest.raises(s3turbo.DirectoryTransferError) as raised:
        moto.s3turbo_client().download_directory(bucket, "p", tmp_path)
    assert list(raised.value.failed) == ["p/real/f"]
    assert raised.value.transferred == {"p/alias/f": str(tmp_path / "alias" / "f")}
    assert (tmp_path / "real" / "f").read_bytes() == b"p/alias/f"


@pytest.mark.parametrize("api", ["sync", "aio"])
@pytest.mark.parametrize("served_by", ["engine", "boto3"])
@pytest.mark.parametrize("folder", ["with files", "empty"])
def test_an_unknown_extra_args_name_is_refused_before_any_object(
    s3s_fs, tmp_path, monkeypatch, api, served_by, folder
):
    """An ExtraArgs name s3transfer does not allow is s3transfer's ValueError before any
    object, in both directions, whether the engine or boto3 (S3TURBO_DISABLE, mock_aws, ...)
    serves the call. Served by boto3, upload_directory reported every file as failed with it
    (and an empty folder as done), where the engine raised it."""
    if served_by == "boto3":
        monkeypatch.setenv("S3TURBO_DISABLE", "1")
    bucket = s3s_fs.new_bucket()
    source = make_tree(tmp_path / "source") if folder == "with files" else tmp_path / "source"
    source.mkdir(exist_ok=True)
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="p/a.txt", Body=b"data")
    bogus = {"Bogus": "1"}

    async def both_ways():
        async with s3turbo.aio.client("s3", **s3s_fs.client_kwargs()) as s3:
            with pytest.raises(ValueError, match="Invalid extra_args key 'Bogus'"):
                await s3.upload_directory(source, bucket, "up", ExtraArgs=bogus)
            with pytest.raises(ValueError, match="Invalid extra_args key 'Bogus'"):
                await s3.download_directory(bucket, "p", tmp_path / "copy", ExtraArgs=bogus)

    if api == "aio":
        asyncio.run(both_ways())
    else:
        client = s3s_fs.s3turbo_client()
        with pytest.raises(ValueError, match="Invalid extra_args key 'Bogus'"):
            client.upload_directory(source, bucket, "up", ExtraArgs=bogus)
        with pytest.raises(ValueError, match="Invalid extra_args key 'Bogus'"):
            client.download_directory(bucket, "p", tmp_path / "copy", ExtraArgs=bogus)
    listed = s3s_fs.boto3_client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == ["p/a.txt"]
    assert not (tmp_path / "copy").exists()


@pytest.mark.parametrize("raised", [Stop, KeyboardInterrupt])
@pytest.mark.parametrize("served_by", ["engine", "boto3"])
def test_a_callback_that_raises_stops_the_call(s3s_fs, tmp_path, monkeypatch, served_by, raised):
    """As on a single transfer, an exception of the Callback stops the whole call and goes on as
    it is, whether the engine or boto3 (S3TURBO_DISABLE, mock_aws, ...) serves it: boto3 used to
    go on with the next file and report each as failed. Folders made for the downloads are
    taken away again."""
    if served_by == "boto3":
        monkeypatch.setenv("S3TURBO_DISABLE", "1")
    bucket = s3s_fs.new_bucket()
    source = make_tree(tmp_path / "source")
    client = s3s_fs.s3turbo_client()

    def stop_download(_amount: int) -> None:
        raise raised()

    def stop_upload(_amount: int) -> None:
        raise Stop()

    # (boto3's upload_file goes on after a KeyboardInterrupt in its Callback's thread.)
    with pytest.raises(Stop):
        client.upload_directory(source, bucket, "p", Callback=stop_upload)
    listed = s3s_fs.boto3_client().list_objects_v2(Bucket=bucket).get("Contents", [])
    assert len(listed) <= 1  # the first file's upload may have been sent already
    client.upload_directory(source, bucket, "p")
    with pytest.raises(raised):
        client.download_directory(bucket, "p", tmp_path / "copy", Callback=stop_download)
    folders = [path for path in (tmp_path / "copy").rglob("*") if path.is_dir()]
    assert all(any(path.is_file() for path in folder.rglob("*")) for folder in folders)


def test_a_callback_slower_than_the_read_timeout_is_waited_for(s3s_fs, tmp_path):
    """A slow Callback slows the upload and fails no object, as boto3's does (it runs between
    two socket writes, which no timeout bounds). Each body holds its last bytes until the
    Callback has seen them, and that wait used to count as a stalled upload: every object
    failed with ReadTimeoutError."""
    sizes = {f"f{i}.bin": 300_000 for i in range(6)}
    source = make_tree(tmp_path / "source", {name: os.urandom(n) for name, n in sizes.items()})
    bucket = s3s_fs.new_bucket()
    config = Config(read_timeout=1, retries={"max_attempts": 1})
    seen = []

    def slow_callback(amount):
        seen.append(amount)
        time.sleep(2)

    client = s3s_fs.s3turbo_client(config=config)
    transferred = client.upload_directory(source, bucket, "p", Callback=slow_callback)
    assert sorted(transferred) == [f"p/{name}" for name in sorted(sizes)]
    assert sum(seen) == sum(sizes.values())


@pytest.mark.parametrize("served_by", ["engine", "boto3", "aio"])
def test_the_listing_sends_the_downloads_payer_and_owner(s3s_fs, tmp_path, monkeypatch, served_by):
    """A requester-pays bucket refuses its listing, as its objects, to others unless the request
    says who pays: the listing sends the RequestPayer and ExpectedBucketOwner of ExtraArgs, as
    each GET does (sync, asyncio, or boto3 serving the call)."""
    bucket = s3s_fs.new_bucket()
    s3s_fs.boto3_client().put_object(Bucket=bucket, Key="p/a.txt", Body=b"data")
    extra_args = {"RequestPayer": "requester", "ExpectedBucketOwner": "123456789012"}
    if served_by == "boto3":
        monkeypatch.setenv("S3TURBO_DISABLE", "1")
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        kwargs = s3s_fs.client_kwargs(endpoint_url=proxy.endpoint_url)
        if served_by == "aio":

            async def download():
                async with s3turbo.aio.client("s3", **kwargs) as s3:
                    return await s3.download_directory(bucket, "p", tmp_path, ExtraArgs=extra_args)

            copied = asyncio.run(download())
        else:
            client = s3turbo.client("s3", **kwargs)
            copied = client.download_directory(bucket, "p", tmp_path, ExtraArgs=extra_args)
        assert copied == {"p/a.txt": str(tmp_path / "a.txt")}
        sent = {
            "list" if "list-type=2" in r.target else r.method: (
                r.headers.get("x-amz-request-payer"),
                r.headers.get("x-amz-expected-bucket-owner"),
            )
            for r in proxy.requests
        }
    assert sent["list"] == ("requester", "123456789012")
    assert sent["GET"] == sent["list"]


def test_failed_downloads_leave_no_folders_behind(s3s_fs, tmp_path):
    """A listing that fails makes no folder, and folders made for objects whose downloads all
    failed are taken away again; local_dir and the other files stay."""
    with pytest.raises(ClientError):
        s3s_fs.s3turbo_client().download_directory("no-such-bucket-here", "", tmp_path / "a/b")
    assert not (tmp_path / "a").exists()
    bucket = s3s_fs.new_bucket()
    boto = s3s_fs.boto3_client()
    for key in ["p/kept.txt", "p/denied/deeper/x.txt", "p/denied/y.txt"]:
        boto.put_object(Bucket=bucket, Key=key, Body=b"data")
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        proxy.inject(
            Fault(target_contains="/p/denied/", answer_error=(403, "AccessDenied"), times=None)
        )
        client = s3s_fs.s3turbo_client(endpoint_url=proxy.endpoint_url)
        with pytest.raises(s3turbo.DirectoryTransferError):
            client.download_directory(bucket, "p", tmp_path / "copy")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "copy",
        "copy/kept.txt",
    ]


LARGE_OBJECTS_UNDER_A_LOW_LIMIT = """if True:
    import os, resource, sys, tempfile
    import s3turbo
    from boto3.s3.transfer import TransferConfig
    endpoint, access_key, secret_key, bucket = sys.argv[1:5]
    source, copy = tempfile.mkdtemp(), tempfile.mkdtemp()
    for i in range(32):
        with open(os.path.join(source, f"f{i}"), "wb") as out:
            out.truncate(20 << 20)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (96, hard))
    client = s3turbo.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id=access_key, aws_secret_access_key=secret_key)
    config = TransferConfig(max_concurrency=16, multipart_threshold=5 << 20,
                            multipart_chunksize=5 << 20)
    uploaded = client.upload_directory(source, bucket, "p/", Config=config)
    downloaded = client.download_directory(bucket, "p/", copy, Config=config)
    same_names = sorted(os.listdir(copy)) == sorted(os.listdir(source))
    # VmHWM: ru_maxrss would count the RSS of the process that started this one.
    with open("/proc/self/status") as status:
        peak_kib = next(line.split()[1] for line in status if line.startswith("VmHWM"))
    print(len(uploaded), len(downloaded), same_names, int(peak_kib) >> 10)
"""


def test_large_objects_share_one_budget_of_parts_in_flight(s3s_fs, tmp_path):
    """The objects in flight share max_concurrency parts (of memory, and of connections), as
    much as one boto3 transfer of that TransferConfig holds: 32 objects of four 5 MiB parts go
    up and down under an open-file limit of 96 holding about 16 parts in memory. (Each object
    ran its own 16 parts before: 400 MiB here, 5 GiB for 64 files of 96 MiB, and "Too many
    open files" under ulimit -n 1024 for 34 objects of 160 MiB with max_concurrency=32.)"""
    bucket = s3s_fs.new_bucket()
    printed = run_script(LARGE_OBJECTS_UNDER_A_LOW_LIMIT, tmp_path, s3s_fs, bucket, timeout=180)
    uploaded, downloaded, same_names, peak_mib = printed.split()
    assert (uploaded, downloaded, same_names) == ("32", "32", "True")
    assert int(peak_mib) < 64 + 2 * 16 * 5


def test_a_part_given_up_on_gives_its_budget_back(s3s_fs, tmp_path):
    """An UploadPart whose server stops reading its body is given up after the read timeout
    and sent again; the connection given up on may keep the part's bytes until it closes, but
    its share of the budget comes back with the answer: with max_concurrency=1 (a budget of one
    part) the other files do not wait for that connection."""
    bucket = s3s_fs.new_bucket()
    source = tmp_path / "source"
    source.mkdir()
    for name in ["a_slow", "b0", "b1"]:
        write_random(source / name, 11 * MIB)
    config = s3turbo.TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=1
    )
    outcome = []
    with FaultProxy(s3s_fs.endpoint_url) as proxy:
        stalled = proxy.inject(
            Fault(method="PUT", target_contains="partNumber=1&", stall_request_after=1000)
        )
        client = s3s_fs.s3turbo_client(
            endpoint_url=proxy.endpoint_url,
            config=Config(read_timeout=1, retries={"mode": "standard", "total_max_attempts": 3}),
        )
        upload = threading.Thread(
            target=lambda: outcome.append(
                client.upload_directory(source, bucket, "p", Config=config)
            )
        )
        upload.start()
        upload.join(timeout=60)  # before the proxy closes the stalled connection
        finished = not upload.is_alive()
    upload.join()
    assert stalled.hits == 1
    assert finished, "the directory upload waited for the connection given up on"
    assert sorted(outcome[0]) == ["p/a_slow", "p/b0", "p/b1"]


@pytest.mark.parametrize("max_concurrency, same_as", [(2.5, 3), (float("inf"), 2**64)])
def test_a_max_concurrency_of_any_number_serves_both_directions(
    s3s_fs, tmp_path, max_concurrency, same_as
):
    """A fractional or infinite max_concurrency is taken as single transfers take it (2.5 as
    3, infinity as no limit): the directory API raised OverflowError for infinity."""
    config = TransferConfig(max_concurrency=max_concurrency)
    in_flight = _directory.objects_in_flight
    assert in_flight(config) == in_flight(TransferConfig(max_concurrency=same_as))
    bucket = s3s_fs.new_bucket()
    source = make_tree(tmp_path / "source")
    client = s3s_fs.s3turbo_client()
    client.upload_directory(source, bucket, "p", Config=config)
    client.download_directory(bucket, "p", tmp_path / "copy", Config=config)
    assert read_tree(tmp_path / "copy") == TREE


def test_objects_in_flight_follow_use_threads_and_the_open_file_limit(s3s_fs, tmp_path):
    """use_threads=False is one object at a time, as in s3transfer; and the objects in flight
    stay within the process's open-file limit (each takes a file and a connection): under a
    limit of 64, 300 files go up (most used to fail with "Too many open files")."""
    assert _directory.objects_in_flight(TransferConfig(use_threads=False)) == 1
    bucket = s3s_fs.new_bucket()
    source = make_tree(tmp_path / "source", {f"f{i:03}.txt": b"x" * i for i in range(300)})
    script = """if True:
        import resource, sys, s3turbo
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        client = s3turbo.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                                aws_access_key_id=sys.argv[4], aws_secret_access_key=sys.argv[5])
        print(len(client.upload_directory(sys.argv[2], sys.argv[3], "")))
    """
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            s3s_fs.endpoint_url,
            str(source),
            bucket,
            ACCESS_KEY,
            SECRET_KEY,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip() == "300", result.stderr[-2000:]
