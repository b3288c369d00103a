"""What the interpreter's helpers (`vm.builtins`, `vm.operations`) see of it, and what a running
contract asks of the chain: narrow ports, so that the helpers need not import the interpreter
that imports them.
"""

from __future__ import annotations

from typing import Any, Protocol


class Host(Protocol):
    """What a running contract can ask of the chain (implemented over a state overlay)."""

    caller: bytes
    origin: bytes
    value: int
    address: bytes
    block_height: int
    block_time_ms: int
    chain_id: int
    read_only: bool

    # Storage: each also says whether the key is touched for the first time in the transaction (it
    # then costs the full price) and how many bytes of key and value it moved (gas by size).
    def storage_get(self, var: int, kind: int, key: Any, zero: Any) -> tuple[Any, bool, int]: ...
    def storage_set(self, var: int, kind: int, key: Any, value: Any) -> tuple[bool, int]: ...
    def storage_has(self, var: int, key: Any) -> tuple[bool, bool, int]: ...
    def storage_delete(self, var: int, key: Any) -> tuple[bool, int]: ...
    def balance(self, address: bytes) -> int: ...
    def transfer(self, to: bytes, amount: int) -> None: ...
    def emit(self, name: str, fields: list[tuple[str, Any]]) -> None: ...
    def call_contract(
        self, address: bytes, function: str, args: list[Any], value: int, gas: int, depth: int
    ) -> tuple[Any, int]:
        """(result, gas used) of a call into another contract sending it `value` units, or raise `VMError`."""
        ...


class Machine(Protocol):
    """A running interpreter as its helpers use it: the host, gas and the memory bound."""

    host: Host

    @property
    def remaining(self) -> int:
        """Gas left (negative once it ran out)."""
        ...

    def _charge(self, gas: int) -> None: ...

    def _alloc(self, size: int) -> None:
        """Meter a value of `size` bytes built at run time: gas and the memory bound."""
        ...

    def _alloc_items(self, items: int) -> None:
        """Meter a list or dict of `items` entries built at run time."""
        ...
