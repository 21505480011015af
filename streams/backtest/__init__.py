"""``moodwire backtest``: recorded news → the model → the window fold → the alert rules, in one
process with no broker and no store, writing what the live pipeline would have sent.

- ``news``: reading the file (the formats ``moodwire replay`` reads) and classifying it, with a
  cache of the classified items in the output folder;
- ``fold``: the live aggregate worker's window fold (``streams.aggregate.fold.Aggregator``) and the
  alert agent's rule fold (``alerts.fold``) over in-memory state;
- ``report``: the self-contained HTML report; ``expect``: rule-test files.
"""
