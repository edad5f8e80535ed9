"""GCS inputs and outputs against the real fake-gcs-server binary, through google-cloud-storage.

Test data is put into the server with the client library directly (not with our upload code),
so a download test does not trust the code it is checking.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from fakes.gcs_server import FakeGcsServer, refusing_gcs_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from xdetox.components.prepare_prompts.prompts import prepare_prompts
from xdetox.errors import DataError, XdetoxError
from xdetox.files import iter_jsonl
from xdetox.storage import (
    download_gcs_prefix,
    fetch_to_local,
    list_gcs,
    local_copy,
    split_gcs,
    upload_gcs_prefix,
)

# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def client(gcs_server: FakeGcsServer) -> storage.Client:
    return storage.Client(project="xdetox-test", credentials=AnonymousCredentials())


@pytest.fixture
def bucket(client: storage.Client) -> storage.Bucket:
    """A fresh bucket per test, so tests do not see each other's objects."""
    return client.create_bucket(f"xdetox-{uuid.uuid4().hex[:12]}")


def put(bucket: storage.Bucket, name: str, data: bytes) -> None:
    bucket.blob(name).upload_from_string(data)


def files_under(root: Path) -> dict[str, bytes]:
    """Relative path → content of every file below ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


NESTED = {
    "config.json": b'{"a": 1}\n',
    "sub/weights.bin": bytes(range(256)) * 41,  # every byte value, not a multiple of 4 KiB
    "sub/deeper/notes.txt": "naïve – 毒性\n".encode(),
    "sub/deeper/empty.txt": b"",
}


# ---------------------------------------------------------------------------------- the server


def test_server_listens_on_loopback_only(gcs_server: FakeGcsServer) -> None:
    # /proc/net/tcp lists listening sockets (state 0A) as hex "address:port"; 0100007F is
    # 127.0.0.1 in little-endian. Every socket on the server's port must be on loopback.
    port_hex = f"{gcs_server.port:04X}"
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, port = local.split(":")
            if port == port_hex and state == "0A":
                listening.append(address)
    assert listening == ["0100007F"]


# ------------------------------------------------------------------------------------ download


def test_download_folder_with_nested_files_is_byte_identical(
    bucket: storage.Bucket, tmp_path: Path
) -> None:
    for rel, data in NESTED.items():
        put(bucket, f"data/set/{rel}", data)
    # Neighbours that share the prefix string but are not inside the folder.
    put(bucket, "data/set2/other.txt", b"not mine")
    put(bucket, "data/settings.json", b"not mine either")
    put(bucket, "data/set/placeholder/", b"")  # a console "folder" object: skipped

    dest = tmp_path / "out"
    returned = download_gcs_prefix(f"gs://{bucket.name}/data/set", dest, max_workers=3)

    assert returned == dest
    assert files_under(dest) == NESTED
    assert not (dest / "placeholder").exists()


def test_download_with_trailing_slash_and_bucket_root(
    bucket: storage.Bucket, tmp_path: Path
) -> None:
    put(bucket, "a/x.txt", b"x")
    put(bucket, "a/b/y.txt", b"y")
    put(bucket, "top.txt", b"t")

    download_gcs_prefix(f"gs://{bucket.name}/a/", tmp_path / "slash")
    download_gcs_prefix(f"gs://{bucket.name}", tmp_path / "root")

    assert files_under(tmp_path / "slash") == {"x.txt": b"x", "b/y.txt": b"y"}
    assert files_under(tmp_path / "root") == {"a/x.txt": b"x", "a/b/y.txt": b"y", "top.txt": b"t"}


def test_download_single_object(bucket: storage.Bucket, tmp_path: Path) -> None:
    for rel, data in NESTED.items():
        put(bucket, f"data/set/{rel}", data)

    dest = tmp_path / "one"
    download_gcs_prefix(f"gs://{bucket.name}/data/set/sub/weights.bin", dest)

    assert files_under(dest) == {"weights.bin": NESTED["sub/weights.bin"]}


def test_download_missing_prefix_names_the_uri(bucket: storage.Bucket, tmp_path: Path) -> None:
    put(bucket, "data/present.txt", b"p")
    uri = f"gs://{bucket.name}/data/absent"

    with pytest.raises(DataError) as info:
        download_gcs_prefix(uri, tmp_path / "out")

    assert str(info.value) == f"{uri}: no object or folder with this name"
    assert info.value.path == uri
    assert not (tmp_path / "out").exists()


def test_download_missing_bucket_names_the_uri_and_bucket(
    gcs_server: FakeGcsServer, tmp_path: Path
) -> None:
    uri = "gs://xdetox-no-such-bucket/models/tiny"

    with pytest.raises(DataError, match=r"^gs://xdetox-no-such-bucket/models/tiny: bucket "):
        download_gcs_prefix(uri, tmp_path / "out")

    assert not (tmp_path / "out").exists()


def test_empty_bucket_is_an_error(bucket: storage.Bucket, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="bucket is empty"):
        download_gcs_prefix(f"gs://{bucket.name}", tmp_path / "out")


def test_object_name_that_escapes_the_folder_is_refused(
    bucket: storage.Bucket, tmp_path: Path
) -> None:
    put(bucket, "evil/ok.txt", b"fine")
    put(bucket, "evil/../../escaped.txt", b"gotcha")
    uri = f"gs://{bucket.name}/evil"

    with pytest.raises(DataError, match=r"escaped\.txt' cannot be used as a local path") as info:
        download_gcs_prefix(uri, tmp_path / "a" / "b")

    assert str(info.value).startswith(f"{uri}: ")
    assert not list(tmp_path.rglob("escaped.txt"))


def test_permission_denied_names_the_uri(
    gcs_server: FakeGcsServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # 403 is what GCS answers an authenticated account that lacks the role. (A 401 makes
    # google-auth refresh the credentials first, which anonymous credentials cannot do.)
    status = 403
    uri = "gs://xdetox-private/models/tiny"
    with refusing_gcs_server(status) as url:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        with pytest.raises(DataError) as info:
            download_gcs_prefix(uri, tmp_path / "out")
        with pytest.raises(DataError, match=rf"permission denied \(HTTP {status}"):
            upload_gcs_prefix(_write(tmp_path / "f.txt", b"x"), uri)

    message = str(info.value)
    assert message.startswith(f"{uri}: permission denied (HTTP {status}: anonymous caller")
    assert "\n" not in message
    assert not (tmp_path / "out").exists()


def test_missing_credentials_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # No emulator and a credentials file that does not exist: google-auth fails at once, offline.
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-key.json"))
    uri = "gs://xdetox-anything/data"

    with pytest.raises(XdetoxError, match=r"^gs://xdetox-anything/data: no usable Google Cloud"):
        download_gcs_prefix(uri, tmp_path / "out")


@pytest.mark.parametrize(
    "uri",
    ["s3://bucket/x", "gs://", "gs:///x", "/local/path"],
)
def test_malformed_uris_are_data_errors(uri: str) -> None:
    with pytest.raises(DataError, match=r"not a gs://bucket/path URI"):
        split_gcs(uri)


def test_split_gcs() -> None:
    assert split_gcs("gs://b/a/b/") == ("b", "a/b")
    assert split_gcs("gs://b") == ("b", "")


# -------------------------------------------------------------------------------------- upload


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_upload_then_download_round_trip(
    bucket: storage.Bucket, client: storage.Client, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    for rel, data in NESTED.items():
        _write(src / rel, data)
    uri = f"gs://{bucket.name}/runs/r1/model"

    assert upload_gcs_prefix(src, uri, max_workers=2) == len(NESTED)

    names = sorted(b.name for b in client.list_blobs(bucket.name))
    assert names == sorted(f"runs/r1/model/{rel}" for rel in NESTED)
    download_gcs_prefix(uri, tmp_path / "back")
    assert files_under(tmp_path / "back") == NESTED


def test_upload_single_file_goes_under_the_prefix(
    bucket: storage.Bucket, client: storage.Client, tmp_path: Path
) -> None:
    path = _write(tmp_path / "metrics.csv", b"language,emt\nen,0.5\n")

    assert upload_gcs_prefix(path, f"gs://{bucket.name}/reports/") == 1

    blob = bucket.get_blob("reports/metrics.csv")
    assert blob is not None
    assert blob.download_as_bytes() == path.read_bytes()


def test_upload_large_file_uses_resumable_upload(bucket: storage.Bucket, tmp_path: Path) -> None:
    # Over 8 MiB the client switches from one multipart request to a resumable session, which
    # follows the server's Location header: the path real model shards take.
    data = os.urandom(9 * 1024 * 1024 + 7)
    path = _write(tmp_path / "big" / "model-00001-of-00002.safetensors", data)
    uri = f"gs://{bucket.name}/big"

    upload_gcs_prefix(path.parent, uri)
    download_gcs_prefix(uri, tmp_path / "back")

    assert (tmp_path / "back" / path.name).read_bytes() == data
    assert list_gcs(uri).total_bytes == len(data)


def test_upload_errors_name_the_path_or_uri(gcs_server: FakeGcsServer, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"^{tmp_path / 'missing'}: nothing to upload"):
        upload_gcs_prefix(tmp_path / "missing", "gs://xdetox-whatever/x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: nothing to upload: folder has no files"):
        upload_gcs_prefix(tmp_path / "empty", "gs://xdetox-whatever/x")
    file = _write(tmp_path / "f.txt", b"x")
    with pytest.raises(DataError, match=r"^gs://xdetox-no-such-bucket/x: bucket .* not found"):
        upload_gcs_prefix(file, "gs://xdetox-no-such-bucket/x")


# ------------------------------------------------------------------------------------- prompts

PROMPTS = [
    {"prompt_id": "en-1", "language": "en", "prompt": "The weather today"},
    {"prompt_id": "de-1", "language": "de", "prompt": "Das Wetter heute"},
    {"prompt_id": "en-2", "language": "en", "prompt": "My neighbour said"},
]


def _jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def test_fetch_to_local_jsonl_file(bucket: storage.Bucket, tmp_path: Path) -> None:
    put(bucket, "prompts/v1/prompts.jsonl", _jsonl(PROMPTS))

    path = fetch_to_local(f"gs://{bucket.name}/prompts/v1/prompts.jsonl", tmp_path / "tmp")

    assert path.name == "prompts.jsonl"  # the name is kept: readers may depend on it
    assert path.is_relative_to(tmp_path / "tmp")
    assert [record for _, record in iter_jsonl(path)] == PROMPTS


def test_fetch_to_local_folder_keeps_its_name_and_separates_sources(
    bucket: storage.Bucket, tmp_path: Path
) -> None:
    put(bucket, "rtp/RTP_LX_EN.json", b'{"Index": 1}\n')
    put(bucket, "rtp/RTP_LX_DE.json", b'{"Index": 2}\n')
    put(bucket, "other/rtp/RTP_LX_FR.json", b'{"Index": 3}\n')

    first = fetch_to_local(f"gs://{bucket.name}/rtp", tmp_path)
    second = fetch_to_local(f"gs://{bucket.name}/other/rtp", tmp_path)

    assert first.name == second.name == "rtp"
    assert first != second
    assert sorted(p.name for p in first.iterdir()) == ["RTP_LX_DE.json", "RTP_LX_EN.json"]
    assert [p.name for p in second.iterdir()] == ["RTP_LX_FR.json"]


def test_fetch_to_local_leaves_local_paths_alone(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.jsonl", _jsonl(PROMPTS))
    assert fetch_to_local(path, tmp_path / "unused") == path
    assert fetch_to_local(str(path), tmp_path / "unused") == path
    assert not (tmp_path / "unused").exists()
    with pytest.raises(DataError, match=r"missing\.jsonl: no such file or folder"):
        fetch_to_local(tmp_path / "missing.jsonl", tmp_path / "unused")


def test_fetch_to_local_missing_object_names_the_uri(
    bucket: storage.Bucket, tmp_path: Path
) -> None:
    uri = f"gs://{bucket.name}/prompts/nope.jsonl"
    with pytest.raises(DataError, match=rf"^{uri}: no object or folder"):
        fetch_to_local(uri, tmp_path / "tmp")
    assert not (tmp_path / "tmp").exists() or list((tmp_path / "tmp").rglob("*")) == []


def test_local_copy_feeds_prepare_prompts_and_cleans_up(
    bucket: storage.Bucket, tmp_path: Path
) -> None:
    put(bucket, "prompts/prompts.jsonl", _jsonl(PROMPTS))
    out = tmp_path / "prepared.jsonl"

    with local_copy(f"gs://{bucket.name}/prompts/prompts.jsonl") as path:
        downloaded = path
        counts = prepare_prompts(path, out, languages=["en"], max_per_language=None, seed=0)

    assert counts == {"en": 2}
    assert [r["prompt_id"] for _, r in iter_jsonl(out)] == ["en-1", "en-2"]
    assert not downloaded.exists()


def test_stages_read_rtp_lx_and_pairs_straight_from_gcs(
    bucket: storage.Bucket, tmp_path: Path
) -> None:
    """The prepare stages take gs:// sources as the cluster recipes name them."""
    from xdetox.components.prepare_data.preference_data import prepare_pairs
    from xdetox.config import DataConfig

    put(bucket, "RTP-LX/RTP_LX_EN.json", _jsonl([{"Index": 1, "Prompt": "Hello there"}]))
    put(bucket, "RTP-LX/RTP_LX_ZH-Hans.json", _jsonl([{"Index": 7, "Prompt": "你好"}]))
    out = tmp_path / "prompts.jsonl"
    counts = prepare_prompts(
        f"gs://{bucket.name}/RTP-LX", out, languages=None, max_per_language=None, seed=0
    )
    assert counts == {"en": 1, "zh-hans": 1}
    assert {r["prompt_id"] for _, r in iter_jsonl(out)} == {"en-1", "zh-hans-7"}

    pair = {"prompt_text": "The cat", "unpert_gen_text": " sat.", "pert_gen_text": " bit."}
    put(bucket, "pairs/split_0.jsonl", _jsonl([pair, pair]))
    config = DataConfig(length_filter={"unit": "chars", "max_length": 256}, eval_fraction=0.0)
    stats = prepare_pairs(f"gs://{bucket.name}/pairs", tmp_path / "pairs", config, progress=False)
    assert stats["source"] == f"gs://{bucket.name}/pairs"
    assert stats["n_train"] == 2
    assert (tmp_path / "pairs" / "train.jsonl").is_file()
