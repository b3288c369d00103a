"""StateView: a write overlay on top of committed state, used to execute one block.

Reads fall through to the committed state; writes stay in the overlay until the caller
takes `changes()` and commits them (together with the block) in one batch. A view that is
thrown away leaves no trace.
"""

from __future__ import annotations

from typing import Protocol

from vm.account import ACCOUNT_PREFIX, Account


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


class StateView:
    def __init__(self, reader: StateReader, parent: StateView | None = None) -> None:
        self._reader = reader
        self._parent = parent
        self._accounts: dict[bytes, Account] = {}
        self._dirty: set[bytes] = set()
        self._raw: dict[bytes, bytes | None] = {}  # other state keys (validator set, governance)
        self._reads: dict[bytes, bytes | None] = {}  # committed values read (root view only)

    def account(self, address: bytes) -> Account:
        """The working copy of `address`'s account (the empty account if it has none)."""
        account = self._accounts.get(address)
        if account is None:
            if self._parent is not None:
                # Copy from the nearest view that has it, not through every level: a call nested
                # three deep made three copies of each account it paid. The levels in between
                # make their own copy if they come to need one (`merge` asks for it).
                view = self._parent
                while (found := view._accounts.get(address)) is None and view._parent is not None:
                    view = view._parent
                account = (found if found is not None else view.account(address)).copy()
            else:
                raw = self._reader.get(ACCOUNT_PREFIX + address)  # account_key, inline: once per account
                account = Account() if raw is None else Account.decode(raw)
            self._accounts[address] = account
        return account

    def code_hash(self, address: bytes) -> bytes:
        """`account(address).code_hash`, without making a working copy of the account in this view."""
        view = self
        while (account := view._accounts.get(address)) is None and view._parent is not None:
            view = view._parent
        return (account or view.account(address)).code_hash

    def branch(self) -> StateView:
        """An overlay on this view: `merge` its changes into this one, or drop it to revert them."""
        return StateView(self, parent=self)

    def merge(self) -> None:
        """Apply this branch's changes to the view it was branched from."""
        parent = self._parent
        assert parent is not None, "merge() is for branches"
        for address in self._dirty:  # in place: callers may hold the parent's working copies
            account, target = self._accounts[address], parent.account(address)
            target.balance, target.nonce, target.code_hash = account.balance, account.nonce, account.code_hash
        parent._dirty |= self._dirty
        parent._raw.update(self._raw)

    def touch(self, address: bytes) -> None:
        """Record that `address`'s account changed."""
        self._dirty.add(address)

    def get(self, key: bytes) -> bytes | None:
        """A non-account state value (accounts go through `account`)."""
        if key in self._raw:
            return self._raw[key]
        if self._parent is not None:
            return self._parent.get(key)
        # The committed state does not change under a view, and contracts read the same keys
        # (code, offers, owners) over and over within a block: keep what was read.
        try:
            return self._reads[key]
        except KeyError:
            value = self._reads[key] = self._reader.get(key)
            return value

    def set(self, key: bytes, value: bytes | None) -> None:
        """Set (or with None, delete) a non-account state value."""
        self._raw[key] = value

    def changes(self) -> dict[bytes, bytes | None]:
        """State key -> new value (None = delete) for everything this view changed."""
        out: dict[bytes, bytes | None] = dict(self._raw)
        accounts = self._accounts
        for address in self._dirty:
            account = accounts[address]
            out[ACCOUNT_PREFIX + address] = None if account.is_empty() else account.encode()
        return out
