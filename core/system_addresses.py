"""The fixed addresses of the system contracts, installed at genesis (`vm.system` has their sources).

Clients name them in transactions and read-only calls without loading the VM.
"""

from __future__ import annotations

MODELS = bytes(19) + b"\xa1"  # models, datasets, lineage
LICENSING = bytes(19) + b"\xa2"  # offers, licences, royalties
PAYMENTS = bytes(19) + b"\xa3"  # exact splits, escrows
KEYS = bytes(19) + b"\xa4"  # X25519 keys, content-key envelopes
INFERENCE = bytes(19) + b"\xa5"  # inference receipts

__all__ = ["INFERENCE", "KEYS", "LICENSING", "MODELS", "PAYMENTS"]
