"""The Plotly Dash app for analysts: trends per topic, alerts and the headlines behind them."""
