"""``python -m netlab.agent --socket PATH [--checkpoint CKPT] ...``: the agent process."""

import sys

from netlab.agent.server import main

sys.exit(main())
