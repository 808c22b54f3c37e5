"""Pictures drawn from the daemon's live data (matplotlib): one module per picture."""
