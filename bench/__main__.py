"""`.venv/bin/python -m bench`: run every benchmark and write bench/RESULTS.md."""

import sys

from bench.run import main

sys.exit(main())
