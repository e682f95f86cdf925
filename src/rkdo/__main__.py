"""``python -m rkdo ...`` (and ``torchrun -m rkdo train ...``): the ``rkdo`` command."""

import sys

from rkdo.cli import main

sys.exit(main())
