"""What the tests and the benchmarks both use: real servers on loopback ports, the load driver,
the caches they share (the joined model, the seed index), question picks and a timing embedder.

Neither tests/ nor benchmarks/ imports the other; both import this. Not shipped in the wheel.
"""
