"""Test-session settings shared by every test file.

OpenMP threads that spin while waiting make 2-thread steps 3-15x slower when another process
holds a core (seen on the 2-core CI machines); passive waiting avoids it. It must be set before
torch is first imported, which is why it lives here.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
