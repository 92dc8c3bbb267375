"""Entry script for the benchmark harness, which lives in the package (lepton_graph/bench/):
the same as `lepton-graph bench`.

    python bench/run.py --models mlp_b1,resnet18_b1 --json out.json
"""

from __future__ import annotations

import sys

from lepton_graph.bench import main

if __name__ == "__main__":
    sys.exit(main())
