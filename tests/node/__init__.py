"""Tests of the node floor (RPC)."""
