"""``python -m bot`` is the ``dcv`` command."""

from bot.cli import main

raise SystemExit(main())
