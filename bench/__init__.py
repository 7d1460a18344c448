"""Benchmarks: the broker beside Enterprise Gateway, Kernel Gateway and direct ZMQ."""
