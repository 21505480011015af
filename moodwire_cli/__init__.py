"""The ``moodwire`` command line and the demo: the top of the project, importing every package
below it (the core ``moodwire`` imports none of them)."""
