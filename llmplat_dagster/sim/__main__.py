"""``python -m llmplat_dagster.sim serve ...`` (same as ``llmplat sim serve ...``)."""

import sys

from llmplat_dagster.sim.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
