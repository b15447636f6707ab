"""The one crash-safe results store: a directory whose files archscale owns, appended chunk by chunk.

Files (used by the sweeps; the NAS study and a Ray executor go through the same class)::

    results.jsonl    line 1, the header: {"format": "archscale-results", "version": 1, "kind": ...,
                     "columns": [...]}. Then, per finished chunk, one line per row
                     {"chunk": ID, <row>} and a completion marker
                     {"chunk_done": ID, "n": N, "sha256": H, "time": T}, where H is the first 16 hex
                     digits of the SHA-256 of the chunk's row lines (their exact bytes). A chunk is
                     written in one call, flushed and fsync'd.
    spec.yaml        the settings of the last run (the "meta"): a first line
                     "# archscale-meta format=1 kind=..." and then YAML; replaced atomically.
    .archscale.lock  an exclusive flock held while writing; archscale never writes into it.

The rules: a results or meta file without archscale's header is not ours, and the directory is
refused (:class:`StoreError`) before anything is touched. Bytes in ``results.jsonl`` are never
rewritten or truncated; rows count only when their chunk's marker matches them, and every other
line is reported (:class:`Damage`, with its line number) so its chunk is trained again. An
append after a torn last line (a write cut off by a kill) starts on a new line. A writer that
fails before its first chunk undoes what it created (directories, lock, files, the meta).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..core.errors import StoreError
from ..core.schema import SWEEP, RowSchema

__all__ = ["FORMAT", "LOCK_FILE", "META_FILE", "RESULTS_FILE", "VERSION", "Damage", "ResultStore", "Scan",
           "StoreWriter", "chunk_checksum", "chunk_id"]

FORMAT = "archscale-results"
VERSION = 1
RESULTS_FILE = "results.jsonl"
META_FILE = "spec.yaml"
LOCK_FILE = ".archscale.lock"
_META_PREFIX = "# archscale-meta format="
_LEAVE = "archscale leaves it untouched (use another directory)"
_CHUNK_PREFIX = re.compile(rb'^\{"chunk(?:_done)?": "([^"\\]+)"')  # how our lines begin


def _chunk_of(raw: bytes) -> str | None:
    """The chunk id a damaged line of ours begins with, when enough of it survived."""
    m = _CHUNK_PREFIX.match(raw)
    return m.group(1).decode() if m else None


def chunk_id(keys: Sequence[tuple]) -> str:
    """A chunk's id: 16 hex digits of the SHA-1 of its sorted row keys (JSON)."""
    return hashlib.sha1(json.dumps(sorted(keys)).encode()).hexdigest()[:16]


def chunk_checksum(row_lines: bytes) -> str:
    """The checksum a completion marker carries: 16 hex digits of SHA-256 over the row lines' bytes."""
    return hashlib.sha256(row_lines).hexdigest()[:16]


@dataclass(frozen=True)
class Damage:
    """A line of ``results.jsonl`` set aside: its 1-based number, why, and its chunk when known."""

    line: int
    reason: str
    chunk: str | None = None


@dataclass
class Scan:
    """What a results file holds: the rows of verified chunks and every line set aside.

    ``rows`` are decoded rows, the first of each key; ``chunks`` the verified chunk ids;
    ``torn_tail`` says the last line has no newline (a write cut off).
    """

    rows: list[dict] = field(default_factory=list)
    keys: set = field(default_factory=set)
    chunks: set = field(default_factory=set)
    damaged: list[Damage] = field(default_factory=list)
    torn_tail: bool = False

    def unrecovered(self) -> list[Damage]:
        """Damage whose chunk has not been written again intact (unknown chunks count as not)."""
        return [d for d in self.damaged if d.chunk is None or d.chunk not in self.chunks]

    def describe(self, path: str | os.PathLike, limit: int = 4) -> str:
        """One line naming the lines set aside and why (the first ``limit`` groups), or ''."""
        if not self.damaged:
            return ""
        groups: list[list] = []  # [first, last, reason] of consecutive lines with one reason
        for d in self.damaged:
            if groups and groups[-1][2] == d.reason and groups[-1][1] + 1 == d.line:
                groups[-1][1] = d.line
            else:
                groups.append([d.line, d.line, d.reason])
        shown = "; ".join((f"line {a}" if a == b else f"lines {a}-{b}") + f": {why}"
                          for a, b, why in groups[:limit])
        more = f"; and {len(groups) - limit} more" if len(groups) > limit else ""
        n = len(self.damaged)
        intact = "; every chunk among them was written again intact" if not self.unrecovered() else ""
        return f"{path}: {n} line{'s' if n > 1 else ''} set aside ({shown}{more}){intact}"


class ResultStore:
    """A results directory of rows of one :class:`~archscale.core.schema.RowSchema` kind.

    Reading (:meth:`check`, :meth:`scan`, :meth:`read_meta`) never writes; :meth:`open` returns
    the one :class:`StoreWriter` allowed at a time.
    """

    def __init__(self, directory: str | os.PathLike, schema: RowSchema = SWEEP, *,
                 meta_name: str = META_FILE):
        if isinstance(directory, str) and not directory.strip():
            raise StoreError(f"the results directory is {directory!r} (empty); give a directory, "
                             f"e.g. runs/my_sweep")
        if not isinstance(directory, (str, os.PathLike)):
            raise StoreError(f"the results directory must be a path, got {directory!r}")
        if {"chunk", "chunk_done"} & set(schema.names):
            raise StoreError(f"schema {schema.kind!r} uses a column name the store reserves (chunk)")
        self.dir = Path(directory)
        self.schema = schema
        self.path = self.dir / RESULTS_FILE
        self.meta_path = self.dir / meta_name
        self.lock_path = self.dir / LOCK_FILE

    # ------------------------------------------------------------------------------ reading
    def header(self) -> dict:
        """The header line this store writes at the top of ``results.jsonl``."""
        return {"format": FORMAT, "version": VERSION, "kind": self.schema.kind, "columns": self.schema.names}

    def meta_header(self) -> str:
        """The first line of the meta file, which marks it as archscale's."""
        return f"{_META_PREFIX}{VERSION} kind={self.schema.kind} (archscale writes this file on every run)"

    def check(self) -> None:
        """Refuse a path that cannot be a results directory or files that are not archscale's."""
        self._check_path()
        if self.path.exists():
            self._check_results_header()
        if self.meta_path.exists():
            self._read_meta_text()

    def _check_path(self) -> None:
        d = self.dir
        if d.exists() and not d.is_dir():
            raise StoreError(f"{d} is a file, not a directory; give a directory for the results")
        for parent in d.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise StoreError(f"cannot create {d}: {parent} is a file, not a directory")
                break
        for p in (self.path, self.meta_path):
            if p.exists() and not p.is_file():
                raise StoreError(f"{p} is not a regular file; {_LEAVE}")

    def _check_results_header(self) -> None:
        try:
            with open(self.path, "rb") as f:
                first = f.readline()
        except OSError as err:
            raise StoreError(f"cannot read {self.path}: {err.strerror}") from None
        self._parse_header(first)

    def _parse_header(self, first: bytes) -> None:
        try:
            head = json.loads(first) if first.endswith(b"\n") else None
        except ValueError:
            head = None
        if not isinstance(head, dict) or head.get("format") != FORMAT:
            if isinstance(head, dict) and ("chunk" in head or "chunk_done" in head):
                raise StoreError(f"{self.path} was written by an archscale before format {VERSION} "
                                 f"(no header); {_LEAVE}")
            raise StoreError(f"{self.path} is not an archscale results file (no archscale header); {_LEAVE}")
        version = head.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise StoreError(f"{self.path} has format version {version!r}; this archscale reads "
                             f"version {VERSION} (a newer archscale wrote it)")
        if head.get("kind") != self.schema.kind:
            raise StoreError(f"{self.path} holds {head.get('kind')!r} rows, not {self.schema.kind!r} rows; "
                             f"{_LEAVE}")

    def _read_meta_text(self) -> str | None:
        if not self.meta_path.exists():
            return None
        try:
            text = self.meta_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            why = getattr(err, "strerror", None) or err
            raise StoreError(f"cannot read {self.meta_path}: {why}") from None
        first = text.split("\n", 1)[0]
        if not first.startswith(_META_PREFIX):
            raise StoreError(f"{self.meta_path} is not archscale's (its first line is not "
                             f"'{_META_PREFIX}...'); {_LEAVE}")
        version = first[len(_META_PREFIX):].split(" ", 1)[0]
        if not version.isdigit() or int(version) > VERSION:
            raise StoreError(f"{self.meta_path} has format {version!r}; this archscale reads format "
                             f"{VERSION} (a newer archscale wrote it)")
        if f" kind={self.schema.kind} " not in first + " ":
            raise StoreError(f"{self.meta_path} describes another kind of results than "
                             f"{self.schema.kind!r}; {_LEAVE}")
        return text

    def check_setup(self, setup: Mapping, what: str, option: str = "--out directory",
                    added: Mapping | None = None) -> None:
        """Refuse a directory whose stored setup differs from ``setup`` on a key both name (the
        one "this directory holds another setup" check: rows of two setups must never mix).

        ``added`` maps keys introduced after older stores were written to the value those stores
        had implicitly (e.g. ``optimizer: sgd``): a stored setup lacking one compares as that value.
        """
        old = self.read_meta()
        if old is None:
            return
        old = {**dict(added or {}), **old}
        diffs = [f"{k}: {old[k]!r} -> {v!r}" for k, v in setup.items() if k in old and old[k] != v]
        if diffs:
            raise StoreError(f"{self.dir} holds {what} of another setup ({'; '.join(diffs)}); use another "
                             f"{option} or delete the old one")

    def read_meta(self) -> dict | None:
        """The mapping the last writer stored (None when there is no meta file yet)."""
        text = self._read_meta_text()
        if text is None:
            return None
        try:
            meta = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise StoreError(f"{self.meta_path} is damaged (not valid YAML: "
                             f"{str(err).splitlines()[0]})") from None
        if not isinstance(meta, dict):
            raise StoreError(f"{self.meta_path} is damaged (not a mapping)")
        return meta

    def scan(self) -> Scan:
        """Read ``results.jsonl`` (an empty :class:`Scan` when it does not exist yet)."""
        self._check_path()
        if not self.path.exists():
            return Scan()
        try:
            with open(self.path, "rb") as f:
                lines = f.readlines()
        except OSError as err:
            raise StoreError(f"cannot read {self.path}: {err.strerror}") from None
        if not lines:
            self._parse_header(b"")
        self._parse_header(lines[0])
        return _scan_lines(lines, self.schema)

    # ------------------------------------------------------------------------------ writing
    def open(self) -> StoreWriter:
        """Lock the directory (creating it and its parents if needed) and open it for appending.

        Raises :class:`StoreError` for a path in the way, files that are not ours, a lock held by
        another process, or an OS error; then nothing it created is left behind.
        """
        self.check()
        created: list[Path] = []
        lock_fd = writer = None
        lock_created = False
        try:
            missing = [p for p in [self.dir, *self.dir.parents] if not p.exists()]
            for p in reversed(missing):
                p.mkdir()
                created.append(p)
            lock_fd, lock_created = _lock(self.lock_path)
            self.check()  # again, under the lock
            writer = StoreWriter(self, self.scan(), lock_fd, lock_created, created)
            writer._open_results()
            return writer
        except BaseException as err:
            if writer is not None:
                writer.close(failed=True)
            else:
                _undo(lock_fd, self.lock_path if lock_created else None, created)
            if isinstance(err, OSError):
                raise StoreError(_os_message(f"cannot write to {self.dir}", err)) from None
            raise


def _os_message(what: str, err: OSError) -> str:
    return f"{what}: {err.strerror or err}" + (f" ({err.filename})" if err.filename else "")


def _lock(path: Path) -> tuple[int, bool]:
    """An exclusive non-blocking flock on ``path`` (created when missing, never truncated)."""
    import fcntl

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        created = True
    except FileExistsError:
        fd = os.open(path, os.O_RDONLY)
        created = False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:  # removed and re-created meanwhile
            raise BlockingIOError
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        raise StoreError(f"another archscale process is writing to {path.parent}; wait for it or use "
                         f"another directory") from None
    return fd, created


def _undo(lock_fd: int | None, lock_path: Path | None, created: list[Path]) -> None:
    """Release the lock and remove what a failed start created (the lock file, empty directories)."""
    if lock_path is not None:
        with contextlib.suppress(OSError):
            lock_path.unlink()
    if lock_fd is not None:
        os.close(lock_fd)
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            break


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_new(path: Path, data: bytes) -> Path:
    """Write ``data`` to a fresh temporary file next to ``path`` (never an existing one, fsync'd)."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    with open(tmp, "xb") as f:  # "x": a file of that name that is not ours stays as it is
        try:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            tmp.unlink()
            raise
    return tmp


class StoreWriter:
    """The lock holder of a :class:`ResultStore`: appends chunks and replaces the meta file.

    Use it as a context manager. ``scan`` is the file as found under the lock. When the block
    fails before the first :meth:`append`, everything the writer created is removed and the
    meta file restored, so a failed start leaves the directory as it was.
    """

    def __init__(self, store: ResultStore, scan: Scan, lock_fd: int, lock_created: bool, created: list[Path]):
        self.store = store
        self.scan = scan
        self._lock_fd: int | None = lock_fd
        self._lock_created = lock_created
        self._created_dirs = created
        self._created_results = False
        self._old_meta: bytes | None = None
        self._meta_written = False
        self._appended = False
        self._fd: int | None = None
        self._needs_newline = False

    def _open_results(self) -> None:
        path = self.store.path
        if not path.exists():
            header = (json.dumps(self.store.header()) + "\n").encode()
            tmp = _write_new(path, header)
            try:
                os.link(tmp, path)  # complete at once, and never over a file that appeared meanwhile
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    os.write(fd, header)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            finally:
                tmp.unlink()
            self._created_results = True
            _fsync_dir(path.parent)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        size = os.fstat(self._fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                self._needs_newline = f.read(1) != b"\n"

    def write_meta(self, meta: Mapping) -> None:
        """Replace the meta file (atomically) with ``meta`` as YAML under archscale's header line."""
        store = self.store
        text = store.meta_header() + "\n" + yaml.safe_dump(dict(meta), sort_keys=False)
        old = store.meta_path.read_bytes() if store.meta_path.exists() else None
        if old == text.encode():
            return
        try:
            tmp = _write_new(store.meta_path, text.encode())
            try:
                os.replace(tmp, store.meta_path)
            except OSError:
                tmp.unlink()
                raise
        except OSError as err:
            raise StoreError(_os_message(f"cannot write {store.meta_path}", err)) from None
        _fsync_dir(store.dir)
        if not self._meta_written:
            self._old_meta, self._meta_written = old, True

    def append(self, chunk: str, rows: Sequence[Mapping]) -> None:
        """Append one finished chunk (its rows, then its marker) in one write, flushed and fsync'd."""
        if self._fd is None:
            raise StoreError("this store writer is closed")
        body = "".join(json.dumps({"chunk": chunk, **self.store.schema.encode(r)}, allow_nan=False) + "\n"
                       for r in rows).encode()
        marker = {"chunk_done": chunk, "n": len(rows), "sha256": chunk_checksum(body),
                  "time": round(time.time(), 3)}
        block = (b"\n" if self._needs_newline else b"") + body + (json.dumps(marker) + "\n").encode()
        view = memoryview(block)
        self._needs_newline = True  # until the whole block is down
        try:
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as err:
            raise StoreError(_os_message(f"cannot append to {self.store.path}", err)) from None
        self._needs_newline = False
        self._appended = True

    def close(self, failed: bool = False) -> None:
        """Release the lock; after a failure before any append, undo what this writer created."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is None:
            return
        lock_fd, self._lock_fd = self._lock_fd, None
        if not (failed and not self._appended):
            os.close(lock_fd)
            return
        store = self.store
        try:
            if self._meta_written:
                if self._old_meta is None:
                    store.meta_path.unlink()
                else:
                    os.replace(_write_new(store.meta_path, self._old_meta), store.meta_path)
            if self._created_results:
                store.path.unlink()
        except OSError:
            pass  # best effort: the failure being reported matters more
        _undo(lock_fd, store.lock_path if self._lock_created else None, self._created_dirs)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)


def _scan_lines(lines: list[bytes], schema: RowSchema) -> Scan:
    """Verify every chunk of a results file (``lines[0]`` is the header) and report the rest."""
    out = Scan(torn_tail=bool(lines) and not lines[-1].endswith(b"\n"))
    run: list[tuple[int, bytes, dict]] = []  # consecutive row lines of one chunk
    run_chunk: str | None = None

    def orphan(reason: str) -> None:
        for number, _, _ in run:
            out.damaged.append(Damage(number, reason, run_chunk))
        run.clear()

    for number, raw in enumerate(lines[1:], start=2):
        if not raw.endswith(b"\n"):
            orphan(f"row of chunk {run_chunk} without its completion marker")
            out.damaged.append(Damage(number, "incomplete last line (a write cut off, e.g. by a kill)",
                                      _chunk_of(raw)))
            break
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            orphan(f"row of chunk {run_chunk} without its completion marker")
            out.damaged.append(Damage(number, "not valid JSON" if obj is None else "not an archscale line",
                                      _chunk_of(raw)))
            continue
        if isinstance(obj.get("chunk"), str):
            if run and run_chunk != obj["chunk"]:
                orphan(f"row of chunk {run_chunk} without its completion marker")
            run_chunk = obj["chunk"]
            run.append((number, raw, obj))
        elif isinstance(obj.get("chunk_done"), str):
            _close_chunk(out, run, run_chunk, number, obj, schema)
            run.clear()
        else:
            orphan(f"row of chunk {run_chunk} without its completion marker")
            out.damaged.append(Damage(number, "not an archscale row or chunk marker"))
    orphan(f"row of chunk {run_chunk} without its completion marker")
    out.damaged.sort(key=lambda d: d.line)
    return out


def _close_chunk(out: Scan, run: list, run_chunk: str | None, number: int, marker: dict,
                 schema: RowSchema) -> None:
    """Check a completion marker against the row lines before it; keep the rows if they match."""
    cid, n = marker["chunk_done"], marker.get("n")
    if run and run_chunk != cid:
        out.damaged += [Damage(ln, f"row of chunk {run_chunk} without its completion marker", run_chunk)
                        for ln, _, _ in run]
        run = []
    reason: str | None
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= len(run):
        reason = f"chunk {cid}: its marker counts {n!r} rows but {len(run)} precede it"
        out.damaged += [Damage(ln, reason, cid) for ln, _, _ in run] + [Damage(number, reason, cid)]
        return
    out.damaged += [Damage(ln, f"row of chunk {cid} without its completion marker", cid)
                    for ln, _, _ in run[:-n]]
    mine = run[-n:]
    reason = None
    if marker.get("sha256") != chunk_checksum(b"".join(raw for _, raw, _ in mine)):
        reason = f"chunk {cid}: checksum mismatch (a row was changed)"
    else:
        try:
            rows = [schema.decode(obj) for _, _, obj in mine]
        except ValueError as err:
            reason = f"chunk {cid}: {err}"
    if reason is not None:
        out.damaged += [Damage(ln, reason, cid) for ln, _, _ in mine] + [Damage(number, reason, cid)]
        return
    out.chunks.add(cid)
    for row in rows:
        key = schema.key_of(row)
        if key not in out.keys:
            out.keys.add(key)
            out.rows.append(row)
