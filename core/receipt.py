"""Receipts and events: what executing a transaction did."""

from __future__ import annotations

from dataclasses import dataclass, field

from core import codec
from core.errors import DecodeError
from core.keys import ADDRESS_SIZE

RECEIPT_TAG = 3
EVENT_TAG = 4

STATUS_FAILED = 0
STATUS_SUCCESS = 1


EventValue = int | bytes | str | bool


@dataclass(frozen=True, slots=True)
class Event:
    """A named record emitted by a contract (or the protocol), with named fields in a fixed order."""

    emitter: bytes
    name: str
    fields: tuple[tuple[str, EventValue], ...] = ()

    def to_wire(self) -> list[codec.Value]:
        return [EVENT_TAG, self.emitter, self.name, [[k, v] for k, v in self.fields]]

    @classmethod
    def from_wire(cls, value: object) -> Event:
        items = codec.expect_list(value, EVENT_TAG, 4, "event")
        emitter = codec.expect_bytes(items[1], "event emitter", ADDRESS_SIZE)
        name = codec.expect_str(items[2], "event name")
        if not isinstance(items[3], list):
            raise DecodeError("event fields: expected an array")
        fields: list[tuple[str, EventValue]] = []
        for pair in items[3]:
            if not isinstance(pair, list) or len(pair) != 2 or type(pair[0]) is not str:
                raise DecodeError("event field: expected [name, value]")
            if type(pair[1]) not in (int, bytes, str, bool):
                raise DecodeError("event field value: expected an int, bytes, str or bool")
            fields.append((pair[0], pair[1]))
        return cls(emitter, name, tuple(fields))


@dataclass(frozen=True, slots=True)
class Receipt:
    """The outcome of one transaction: status, gas used, events, and why it failed if it did."""

    tx_hash: bytes
    status: int
    gas_used: int
    events: tuple[Event, ...] = ()
    error: str = ""
    # The encoding, made once on first use: the receipts root and the block store both need it.
    _encoded: bytes | None = field(default=None, init=False, compare=False, repr=False)

    @classmethod
    def plain(cls, tx_hash: bytes, status: int, gas_used: int) -> Receipt:
        """`Receipt(tx_hash, status, gas_used)`: no events, no error (a transfer's). A block of transfers
        makes one per transaction, and the frozen dataclass's `__init__` costs a call per field; this
        sets the slots directly (every field, as `__init__` would)."""
        receipt = _new(cls)
        _SET_TX_HASH(receipt, tx_hash)
        _SET_STATUS(receipt, status)
        _SET_GAS_USED(receipt, gas_used)
        _SET_EVENTS(receipt, ())
        _SET_ERROR(receipt, "")
        _SET_ENCODED(receipt, None)
        return receipt

    @property
    def succeeded(self) -> bool:
        return self.status == STATUS_SUCCESS

    def to_wire(self) -> list[codec.Value]:
        events: list[codec.Value] = [e.to_wire() for e in self.events] if self.events else []  # most: none
        return [RECEIPT_TAG, self.tx_hash, self.status, self.gas_used, events, self.error]

    def encode(self) -> bytes:
        """The canonical encoding of `to_wire()` (computed once: a receipt never changes)."""
        encoded = self._encoded
        if encoded is None:
            encoded = codec.encode(self.to_wire())
            object.__setattr__(self, "_encoded", encoded)
        return encoded

    @classmethod
    def from_wire(cls, value: object) -> Receipt:
        items = codec.expect_list(value, RECEIPT_TAG, 6, "receipt")
        if not isinstance(items[4], list):
            raise DecodeError("receipt events: expected an array")
        return cls(
            codec.expect_bytes(items[1], "receipt tx_hash", 32),
            _status(items[2]),
            codec.expect_uint(items[3], "receipt gas_used"),
            tuple(Event.from_wire(e) for e in items[4]),
            codec.expect_str(items[5], "receipt error", max_len=4096),
        )

    @classmethod
    def decode(cls, raw: bytes) -> Receipt:
        return cls.from_wire(codec.decode(raw))


_new = object.__new__
# The slots' own setters (a frozen dataclass refuses `setattr`; its `__init__` goes around it too).
_SET_TX_HASH, _SET_STATUS, _SET_GAS_USED, _SET_EVENTS, _SET_ERROR, _SET_ENCODED = (
    Receipt.__dict__[name].__set__ for name in ("tx_hash", "status", "gas_used", "events", "error", "_encoded")
)


def _status(value: object) -> int:
    if value not in (STATUS_FAILED, STATUS_SUCCESS) or type(value) is not int:
        raise DecodeError(f"receipt status: expected 0 (failed) or 1 (success), got {value!r}")
    return value
