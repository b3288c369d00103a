# The part of plyvel (1.5) this repository uses; see typings/README.md.
from collections.abc import Iterator
from types import TracebackType

class Error(Exception): ...
class IOError(Error): ...  # plyvel's own name, not the builtin
class CorruptionError(Error): ...

class WriteBatch:
    def put(self, key: bytes, value: bytes) -> None: ...
    def delete(self, key: bytes) -> None: ...
    def clear(self) -> None: ...
    def write(self) -> None: ...
    def __enter__(self) -> WriteBatch: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

class Snapshot:
    def get(self, key: bytes, default: bytes | None = None, *, fill_cache: bool = True) -> bytes | None: ...
    def close(self) -> None: ...

class DB:
    closed: bool
    def __init__(
        self,
        name: str,
        create_if_missing: bool = False,
        *,
        error_if_exists: bool = False,
        paranoid_checks: bool | None = None,
        write_buffer_size: int | None = None,
        max_open_files: int | None = None,
        lru_cache_size: int | None = None,
        block_size: int | None = None,
        block_restart_interval: int | None = None,
        max_file_size: int | None = None,
        compression: str | None = "snappy",
        bloom_filter_bits: int = 0,
    ) -> None: ...
    def get(
        self, key: bytes, default: bytes | None = None, *, verify_checksums: bool = False, fill_cache: bool = True
    ) -> bytes | None: ...
    def put(self, key: bytes, value: bytes, *, sync: bool = False) -> None: ...
    def delete(self, key: bytes, *, sync: bool = False) -> None: ...
    def write_batch(self, *, transaction: bool = False, sync: bool = False) -> WriteBatch: ...
    def snapshot(self) -> Snapshot: ...
    def iterator(
        self,
        *,
        reverse: bool = False,
        start: bytes | None = None,
        stop: bytes | None = None,
        include_start: bool = True,
        include_stop: bool = False,
        prefix: bytes | None = None,
        include_key: bool = True,
        include_value: bool = True,
        verify_checksums: bool = False,
        fill_cache: bool = True,
    ) -> Iterator[tuple[bytes, bytes]]: ...
    def close(self) -> None: ...
