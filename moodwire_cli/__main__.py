"""``python -m moodwire_cli``: the ``moodwire`` command."""

from moodwire_cli.main import main

main()
