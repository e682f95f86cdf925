"""``python -m rkdo ...`` (and ``torchrun -m rkdo train ...``): the ``rkdo`` command."""

import sys

from rkdo.cli.main import main

sys.exit(main())
