"""``python -m sklearn_llm_multilabel``: the ``sklml`` command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
