"""`list.append(x)`, storage and internal calls run in the interpreter's loop: each refuses what the general
path refuses, in the same words, and leaves what it leaves."""

from __future__ import annotations

from core.contract_values import MAX_LIST
from tests.vm.test_faults import receipt_error
from vm.faults import Fault

APPEND = """
@public
def f(doublings: int, on_dict: bool) -> int:
    x = [0]
    i = 0
    while i < doublings:
        x = x + x
        i = i + 1
    if on_dict:
        d = {1: 2}
        d.append(3)
    x.append(doublings)
    return len(x)
"""


def test_append_to_a_full_list_is_refused_as_the_general_path_refuses_it() -> None:
    assert MAX_LIST == 1 << 12
    assert receipt_error(APPEND, "f", [12, False]) == Fault.LIST_TOO_LONG.value.format(limit=MAX_LIST)


def test_append_to_what_is_not_a_list_names_the_kind() -> None:
    assert receipt_error(APPEND, "f", [0, True]) == Fault.NO_METHOD.value.format(kind="a dict", method="append()")
