"""Gas: the price of each thing a transaction asks the chain to do."""

from __future__ import annotations

from vm.bytecode import GAS

TX_BASE = 21_000
TX_DATA_BYTE = 16

# --- contract execution (charged by vm/interpreter.py and vm/builtins.py) ---------------------------
INSTRUCTION_GAS: dict[int, int] = {int(op): cost for op, cost in GAS.items()}  # base cost of each opcode
ALLOC_BASE = 1  # a value built at run time ...
ALLOC_WORD = 1  # ... per 32 bytes of it (a list or dict item counts 8 bytes)
ALLOC_ITEM_BYTES = 8
COMPARE_WORD = 0  # `==`, `<`, `in` on bytes and strings, per 32 bytes compared
COMPARE_ITEM = 0  # `==` and `in` on lists and dicts, per item compared
POW_BIT = 5  # `**`, per bit of the exponent
STORAGE_READ_WORD = 3
STORAGE_READ_ITEM = 3
STORAGE_WRITE_BYTE = 16
SHA256 = 6
SHA256_WORD = 6
VERIFY = 2_000
VERIFY_WORD = 1
EVENT = 100
EVENT_FIELD = 0
EVENT_BYTE = 8
BALANCE = 0
TRANSFER = 2_500
CALL_CONTRACT = 700
CALL_ARG = 0
ADDRESS_OF = 0


def intrinsic_gas(data: bytes) -> int:
    """Gas every transaction pays before it does anything: a base plus its payload bytes."""
    return TX_BASE + TX_DATA_BYTE * len(data)
