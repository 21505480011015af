"""Alert rules, pure evaluation over window aggregates, the alert state machine and delivery."""
