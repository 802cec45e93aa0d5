"""``python -m vat.launch``: the command line of `vat.launch.cli`."""

import sys

from vat.launch.cli import main

sys.exit(main())
