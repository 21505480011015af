"""Component ids, defined once."""

URL = "url"
PAGE = "page"
TICK = "tick"
LIVE = "live"
RANGE = "range"
START = "range-start"
END = "range-end"
USER = "user"
OVERVIEW_TABLE = "overview-table"
HEATMAP = "heatmap"
TREND = "trend"
TOPIC_ALERTS = "topic-alerts"
HEADLINES = "headlines"
HEADLINES_NOTE = "headlines-note"
HEADLINES_CSV = "headlines-csv"
HEADLINES_DOWNLOAD = "headlines-download"
CLEAR_PICK = "clear-pick"
ALERT_LIST = "alert-list"
ALERT_PAGE = "alert-page"  # "alerts 1–25 of 87"
ALERT_ACTION = "alert-action"  # pattern-matching: {"type", "action": "ack"|"silence", "fingerprint", "starts"}
ACTION_NOTE = "action-note"
REVISION = "store-revision"
RETENTION_NOTE = "retention-note"  # the range reaches past what the store keeps
STORE_NOTE = "store-note"  # the store cannot be read (damaged, away)
RANGE_ERROR = "range-error"  # the custom range in the URL cannot be read
OVERVIEW_NOTE = "overview-note"  # an empty overview says so
