"""Resumable, idempotent generation: prompts in shards, each shard written once and atomically.

A paper-scale run (17 languages x 1,000+ prompts x 25 samples) takes hours; a preempted node
must not start over, and a rerun must not append duplicates (the reference script opened its
output in append mode). So the prompts are cut into shards of ``shard_size`` prompts, in file
order, and each finished shard is written atomically to ``<output>.shards/shard-00012.jsonl``
next to a marker ``shard-00012.json`` that records what produced it: the run key (generation
config, backend, model label and a content hash of the model folder), the shard's prompts and a
hash of the shard file. A rerun skips every shard whose marker matches and regenerates the rest;
at the end the shards are concatenated, in order, atomically into the output, and the shard
folder is removed. Because every sample has its own seeded random stream and a shard always holds
the same prompts, an interrupted-then-resumed run writes the same bytes as an uninterrupted one.

What is deliberately *not* in the run key: ``batch_size`` and the device. They change only the
floating-point rounding of the forward pass (which very rarely flips a sampled token), not what
is being sampled; resuming an out-of-memory run with a smaller batch must not throw away hours of
finished shards. Byte-identity is promised for reruns with the same batch size and device.

A changed config or model invalidates every finished shard (they are discarded, with a log line
saying what changed). A changed prompt list invalidates only the shards whose prompts changed.

Two processes working on the same output take turns through a lock file inside the shard
folder (the second then finds no shards and does the task again: correct, if wasteful). Every
temporary file has a unique name (``mkstemp``), so even where the lock is unavailable (file
systems without ``flock``) no writer reads or clobbers another's half-written file; one of two
such simultaneous writers may then fail and need a rerun, but no file is ever corrupted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from tqdm.auto import tqdm

from xdetox.components.generate.prompt_file import Prompt
from xdetox.errors import ConfigError, DataError
from xdetox.files import atomic_path, write_json, write_jsonl

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DEFAULT_SHARD_SIZE = 64
MANIFEST = "manifest.json"
LOCK = ".lock"
_HASH_CHUNK = 8 << 20
SHARD_GLOBS = ("shard-[0-9]*.jsonl", "shard-[0-9]*.json")  # a shard's data and its marker

GenerateShard = Callable[[Sequence[Prompt]], list[dict[str, Any]]]
ShardHook = Callable[[int, int], None]


# GenerationConfig fields that change how fast samples come, not what they say: left out of the
# run key (see the module docstring). Names the lead may add to the config are listed too.
THROUGHPUT_FIELDS = frozenset(
    {"batch_size", "shard_size", "backend", "protocol", "tensor_parallel_size",
     "gpu_memory_utilization", "vllm"}
)  # fmt: skip


def run_identity(config: BaseModel, model_label: str, backend: Mapping[str, Any]) -> dict[str, Any]:
    """The run-key parts besides model and prompts: sampling settings, label, backend.

    Every config field not known to be a throughput knob is included, so a sampling option
    added to the config later invalidates old shards rather than being silently mixed.
    """
    return {
        "generation": config.model_dump(exclude=set(THROUGHPUT_FIELDS)),
        "model_label": model_label,
        **backend,
    }


def shard_dir_for(output_path: str | Path) -> Path:
    """Where the shards of ``output_path`` live while a run is unfinished."""
    output_path = Path(output_path)
    return output_path.with_name(output_path.name + ".shards")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_HASH_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _canonical_hash(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def model_fingerprint(
    model_dir: str | Path, cache: Mapping[str, Any] | None = None, *, progress: bool = True
) -> tuple[str, dict[str, list]]:
    """A content hash of a model folder, and the per-file hashes it was built from.

    Content, not modification times: a pod that re-downloads the same checkpoint after a
    preemption must recognise it. Hashing runs at disk speed (seconds per GB); ``cache`` maps a
    relative path to ``[size, mtime_ns, sha256]`` from an earlier call, so a resume on the same
    disk only stats the files. Hidden files and folders (``.cache/``, lock files) are skipped.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise DataError("model folder not found", model_dir)
    files = sorted(
        p
        for p in model_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(model_dir).parts)
    )
    if not files:
        raise DataError("model folder is empty", model_dir)
    cache = cache or {}
    table: dict[str, list] = {}
    to_hash = []
    for path in files:
        rel = path.relative_to(model_dir).as_posix()
        st = path.stat()
        known = cache.get(rel)
        if isinstance(known, list) and known[:2] == [st.st_size, st.st_mtime_ns]:
            table[rel] = list(known)
        else:
            to_hash.append((rel, path, st))
    total = sum(st.st_size for _, _, st in to_hash)
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc="hash model",
        disable=None if progress and total > (256 << 20) else True,
    ) as bar:
        for rel, path, st in to_hash:
            table[rel] = [st.st_size, st.st_mtime_ns, _sha256_file(path)]
            bar.update(st.st_size)
    digest = _canonical_hash(sorted((rel, entry[2]) for rel, entry in table.items()))
    return digest, table


def prompts_digest(prompts: Sequence[Prompt]) -> str:
    """What a shard's samples depend on from its prompts: ids, languages and texts."""
    return _canonical_hash([[p.prompt_id, p.language, p.prompt] for p in prompts])


@dataclass(frozen=True)
class Shard:
    index: int
    prompts: Sequence[Prompt]

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"


def plan_shards(prompts: Sequence[Prompt], shard_size: int) -> list[Shard]:
    """Consecutive runs of ``shard_size`` prompts, in file order (the last may be shorter)."""
    if shard_size <= 0:
        raise ConfigError(f"generation.shard_size: must be > 0, got {shard_size}")
    return [
        Shard(i, prompts[start : start + shard_size])
        for i, start in enumerate(range(0, len(prompts), shard_size))
    ]


@contextlib.contextmanager
def _exclusive(shard_dir: Path) -> Iterator[bool]:
    """Hold ``shard_dir/.lock`` for the whole run; yields whether a lock is actually held.

    The holder removes the folder, lock file included, when it finishes. A process that was
    waiting then holds a lock on a file that no longer exists, so after acquiring we check that
    the path still names the file we locked, and start over if not.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: unique temp names still keep writers apart
        shard_dir.mkdir(parents=True, exist_ok=True)
        yield False
        return
    while True:
        shard_dir.mkdir(parents=True, exist_ok=True)
        lock_path = shard_dir / LOCK
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:  # the folder was removed between mkdir and open
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # e.g. a FUSE mount without locks
            os.close(fd)
            log.warning("cannot lock %s (%s); running without a lock", lock_path, exc)
            yield False
            return
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        try:
            yield True
        finally:
            os.close(fd)
        return


def _read_json(path: Path) -> dict | None:
    """A JSON object from ``path``, or None when missing or unreadable (a stale file)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _finished_shards(shard_dir: Path) -> list[Path]:
    return sorted(shard_dir.glob(SHARD_GLOBS[1]))


def _shard_files(shard_dir: Path) -> list[Path]:
    return [path for pattern in SHARD_GLOBS for path in shard_dir.glob(pattern)]


def _discard_shards(shard_dir: Path) -> None:
    for path in _shard_files(shard_dir):
        path.unlink(missing_ok=True)


def _remove_shard_dir(shard_dir: Path) -> None:
    """Remove what this module wrote in ``shard_dir``, then the folder if that left it empty.

    Only our own files: ``shard_dir`` may be a caller's folder (a persistent volume), and a
    mistyped path must not cost anyone their data.
    """
    for pattern in (*SHARD_GLOBS, MANIFEST, ".*.tmp", LOCK):
        for path in shard_dir.glob(pattern):
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        shard_dir.rmdir()


def _remove_stale_temps(shard_dir: Path, output_path: Path) -> None:
    """Temp files a killed writer left behind. Only called while holding the lock."""
    for path in shard_dir.glob(".*.tmp"):
        path.unlink(missing_ok=True)
    for path in output_path.parent.glob(f".{output_path.name}.*.tmp"):
        path.unlink(missing_ok=True)


def _changed_parts(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


def _shard_is_done(
    shard_dir: Path, shard: Shard, key: str, digest: str, expected_records: int
) -> bool:
    marker = _read_json(shard_dir / f"{shard.name}.json")
    data = shard_dir / f"{shard.name}.jsonl"
    if marker is None or not data.is_file():
        return False
    return (
        marker.get("key") == key
        and marker.get("prompts_sha256") == digest
        and marker.get("prompt_ids") == [p.prompt_id for p in shard.prompts]
        and marker.get("records") == expected_records
        and marker.get("sha256") == _sha256_file(data)
    )


def generate_sharded(
    prompts: Sequence[Prompt],
    output_path: str | Path,
    generate: GenerateShard,
    *,
    model_dir: str | Path,
    identity: Mapping[str, Any],
    samples_per_prompt: int,
    shard_size: int = DEFAULT_SHARD_SIZE,
    shard_dir: str | Path | None = None,
    progress: bool = True,
    desc: str = "generate",
    on_shard: ShardHook | None = None,
) -> int:
    """Run ``generate`` shard by shard, skipping finished shards, and write ``output_path``.

    ``generate(prompts)`` returns the records of those prompts in order (prompt, then sample
    index), ``samples_per_prompt`` per prompt. ``identity`` holds everything besides the model
    and the prompts that changes the samples (generation config, backend, model label); with
    the model folder's content hash it forms the run key that finished shards must match.
    ``on_shard(index, total)`` is called after each newly written shard (tests interrupt a run
    with it). Returns the number of lines written.
    """
    output_path = Path(output_path)
    shard_dir = Path(shard_dir) if shard_dir is not None else shard_dir_for(output_path)
    shards = plan_shards(prompts, shard_size)
    if not shards:
        raise DataError("no prompts to generate from", output_path)
    # Before anything is created: a missing model must not leave an empty shard folder behind.
    if not Path(model_dir).is_dir():
        raise DataError("model folder not found", model_dir)

    with _exclusive(shard_dir) as locked:
        try:
            if locked:
                _remove_stale_temps(shard_dir, output_path)
            count = _run_locked(
                shards,
                output_path,
                shard_dir,
                generate,
                model_dir=Path(model_dir),
                identity=identity,
                samples_per_prompt=samples_per_prompt,
                shard_size=shard_size,
                progress=progress,
                desc=desc,
                on_shard=on_shard,
            )
        except BaseException:
            # Keep finished shards for the rerun; leave no empty folder when nothing finished.
            if not _finished_shards(shard_dir):
                _remove_shard_dir(shard_dir)
            raise
        _remove_shard_dir(shard_dir)
    return count


def _run_locked(
    shards: list[Shard],
    output_path: Path,
    shard_dir: Path,
    generate: GenerateShard,
    *,
    model_dir: Path,
    identity: Mapping[str, Any],
    samples_per_prompt: int,
    shard_size: int,
    progress: bool,
    desc: str,
    on_shard: ShardHook | None,
) -> int:
    old = _read_json(shard_dir / MANIFEST)
    cache = old.get("model_files") if old and isinstance(old.get("model_files"), dict) else None
    fingerprint, files = model_fingerprint(model_dir, cache, progress=progress)
    parts = {
        "format": FORMAT_VERSION,
        **identity,
        "model_sha256": fingerprint,
        "shard_size": shard_size,
        "samples_per_prompt": samples_per_prompt,
    }
    key = _canonical_hash(parts)
    finished = _finished_shards(shard_dir)
    if old is None and finished:
        log.warning(
            "discarding %d finished shard(s) in %s: their manifest is missing or unreadable",
            len(finished),
            shard_dir,
        )
        _discard_shards(shard_dir)
    elif old is not None and old.get("key") != key:
        changed = _changed_parts(old.get("parts") or {}, parts) or ["run key"]
        if finished:
            log.warning(
                "discarding %d finished shard(s) in %s: %s changed since they were written",
                len(finished),
                shard_dir,
                ", ".join(changed),
            )
        _discard_shards(shard_dir)
    write_json(
        shard_dir / MANIFEST,
        {"key": key, "parts": parts, "n_shards": len(shards), "model_files": files},
    )
    # Shards past the end (the prompt list got shorter) would otherwise linger until the end.
    for path in _shard_files(shard_dir):
        stem = path.name.split(".")[0]
        if stem[len("shard-") :].isdigit() and int(stem[len("shard-") :]) >= len(shards):
            path.unlink(missing_ok=True)

    total_prompts = sum(len(s.prompts) for s in shards)
    reused = 0
    bar = tqdm(total=total_prompts, desc=desc, unit="prompt", disable=None if progress else True)
    with bar:
        for shard in shards:
            expected = len(shard.prompts) * samples_per_prompt
            digest = prompts_digest(shard.prompts)
            if _shard_is_done(shard_dir, shard, key, digest, expected):
                reused += 1
                bar.update(len(shard.prompts))
                continue
            records = generate(shard.prompts)
            if len(records) != expected:
                raise RuntimeError(  # a backend bug, not a user error
                    f"{shard.name}: the backend returned {len(records)} samples, "
                    f"expected {expected}"
                )
            data = shard_dir / f"{shard.name}.jsonl"
            write_jsonl(data, records)
            write_json(
                shard_dir / f"{shard.name}.json",
                {
                    "key": key,
                    "prompt_ids": [p.prompt_id for p in shard.prompts],
                    "prompts_sha256": digest,
                    "records": expected,
                    "sha256": _sha256_file(data),
                },
            )
            bar.update(len(shard.prompts))
            if on_shard is not None:
                on_shard(shard.index, len(shards))
    if reused:
        log.info("reused %d of %d finished shard(s) from %s", reused, len(shards), shard_dir)

    count = 0
    with atomic_path(output_path) as tmp, tmp.open("wb") as out:
        for shard in shards:
            with (shard_dir / f"{shard.name}.jsonl").open("rb") as src:
                for line in src:
                    out.write(line)
                    count += 1
    return count
