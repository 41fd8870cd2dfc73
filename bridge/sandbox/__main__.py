"""`python -m bridge.sandbox`: run the fake Zoho in the foreground."""

import sys

from bridge.sandbox.server import main

sys.exit(main())
