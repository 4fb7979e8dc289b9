"""``python -m devtools.workload --api-url … --scale … --out …``: the workload's child process."""

import sys

from devtools.workload._child import main

sys.exit(main())
