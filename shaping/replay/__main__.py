"""``python -m shaping.replay --spec FILE``: run one replayer (started by ``start_replayer``)."""

import sys

from shaping.replay.child import main

sys.exit(main())
