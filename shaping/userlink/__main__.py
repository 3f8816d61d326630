"""``python -m shaping.userlink --spec FILE``: run one user-space link process."""

from shaping.userlink.process import main

raise SystemExit(main())
