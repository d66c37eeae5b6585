"""Benchmarks of paper-assistant: each figure beside a baseline measured in the same run. Run `python -m benchmarks.run`."""
