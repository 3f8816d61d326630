"""``python -m netlab.agent --socket PATH [--checkpoint CKPT] ...``: the agent process."""

import sys

from netlab.agent.command import main

sys.exit(main())
