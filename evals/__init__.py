"""The eval suite: question sets (data/), pure metrics (metrics.py), runner, baselines and HTML report."""
