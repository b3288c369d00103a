"""Benchmarks that run the node's real code paths and report each figure beside a machine limit."""
