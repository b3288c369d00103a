"""Gas: the price of each thing a transaction asks the chain to do.

One gas is about the same work whatever spends it: roughly one nanosecond of a validator's
time on the machine the schedule was calibrated on (docs/decisions.md "Gas is work" has the
table and how it was measured; `aichain-node bench vm` measures it again). The anchor is a
plain transfer: its 21,000 gas pay for checking, applying, rooting and committing it. Every
instruction has a base cost; what grows with sizes (values built, bytes compared or hashed,
storage, events) is charged on top, per 32-byte word or per item. Storage keys cost their
full price the first time a transaction touches them and the warm price after that.
"""

from __future__ import annotations

from vm.bytecode import Op

TX_BASE = 21_000
TX_DATA_BYTE = 16
DEPLOY_BYTE = 1_250  # per byte of deployed code: decoding, checking and storing it

# --- instructions: the base cost of each opcode ----------------------------------------------------
_FAST = 110  # the loop's own simple instructions: locals, constants, jumps
_FAST_OP = 290  # the loop's arithmetic, comparisons and indexing
_SLOW_OP = 1_450  # instructions dispatched out of the loop (`Interpreter._slow`)
INSTRUCTION_GAS: dict[int, int] = {int(op): _SLOW_OP for op in Op}
INSTRUCTION_GAS.update(
    {
        Op.LOAD: _FAST,
        Op.CONST: _FAST,
        Op.STORE: _FAST,
        Op.POP: _FAST,
        Op.JUMP: _FAST,
        Op.JUMP_IF_FALSE: _FAST,
        Op.JUMP_IF_TRUE: _FAST,
        Op.AND_JUMP: _FAST,
        Op.RETURN: _FAST_OP,
        Op.ADD: _FAST_OP,
        Op.SUB: _FAST_OP,
        Op.EQ: _FAST_OP,
        Op.NE: _FAST_OP,
        Op.LT: _FAST_OP,
        Op.GT: _FAST_OP,
        Op.GE: _FAST_OP,
        Op.INDEX: _FAST_OP,
        Op.ITER_NEXT: _FAST_OP,
        Op.INDEX_CONST: 500,
        Op.BUILD_LIST: 800,
        Op.NOP: 550,
        Op.DUP: 750,
        Op.OR_JUMP: 700,
        Op.BUILTIN: 650,
        Op.CALL: 1_700,
        Op.BUILD_DICT: 3_000,
        Op.STORE_INDEX: 1_200,
        Op.SLICE: 1_600,
        Op.METHOD: 1_600,
        Op.POW: 2_100,
        Op.SLOAD: 3_500,
        Op.MLOAD: 4_900,
        Op.MHAS: 4_100,
        Op.SSTORE: 3_100,
        Op.MSTORE: 3_700,
        Op.MDEL: 3_700,
    }
)
INSTRUCTION_GAS = {int(op): cost for op, cost in INSTRUCTION_GAS.items()}

# --- sizes ------------------------------------------------------------------------------------------
ALLOC_BASE = 0  # a value built at run time ...
ALLOC_WORD = 3  # ... per 32 bytes of it (4 bytes a character of a string)
ALLOC_ITEM = 5  # ... per item of a list or dict
COMPARE_WORD = 3  # `==`, `<` on bytes and strings, per 32 bytes compared
COMPARE_ITEM_FLAT = 14  # `==` and `in` on a list, per item Python compares (ints, bools, None)
COMPARE_ITEM = 1_000  # `==` and `in` walking lists and dicts, per item the VM walks
HASH_WORD = 25  # a bytes or str dict key, per 32 bytes hashed
SEARCH_PAIR = 12  # `in` on bytes or strings: per 32 bytes of haystack and needle, times needle bytes ...
SEARCH_NEEDLE_CAP = 128  # ... counting at most this many (longer needles search in linear time)
POW_BIT = 60  # `**`, per bit of the exponent
CONCAT = 550  # `+` joining bytes, strings or lists (beyond the ADD instruction, which prices two ints)
INDEX_SLOW = 450  # indexing a dict, bytes or str (beyond INDEX, which prices a list)

# --- storage: the first touch of a key in a transaction, a later one, and per 32 bytes moved -------
STORAGE_READ_COLD = 2_500
STORAGE_READ_WORD = 12
STORAGE_WRITE = 15_000  # a key's first write in a transaction: its leaf in the state tree, its commit
STORAGE_WRITE_WARM = 1_250
STORAGE_DELETE = 5_000  # a key's first delete in a transaction
STORAGE_WRITE_WORD = 500  # per 32 bytes of key and value written: the flat copy, the tree leaf, the disk

# --- builtins (beyond the BUILTIN instruction) ------------------------------------------------------
SHA256 = 1_200
SHA256_WORD = 25
VERIFY = 72_000  # an Ed25519 verification ...
VERIFY_WORD = 20  # ... per 32 bytes of the message
EVENT = 3_000
EVENT_FIELD = 600
EVENT_BYTE = 12
BALANCE = 2_500
TRANSFER = 21_000  # two accounts updated, rooted and committed
CALL_CONTRACT = 6_500  # a state branch, the callee's module, its interpreter
CALL_ARG = 100
ADDRESS_OF = 1_250
SMALL_BUILTIN = 650  # min, max, abs, str, to_bytes, from_bytes


def intrinsic_gas(data: bytes) -> int:
    """Gas every transaction pays before it does anything: a base plus its payload bytes."""
    return TX_BASE + TX_DATA_BYTE * len(data)
