"""`python -m cti` is the `cti` command.

The command itself lives with the composition root (`desk.web.cli`); it is found through the
installed console script's entry point, so that `cti/` imports nothing above itself.
"""

import sys
from importlib.metadata import entry_points

(script,) = entry_points(group="console_scripts", name="cti")
sys.exit(script.load()())
