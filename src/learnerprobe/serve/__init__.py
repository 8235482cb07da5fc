"""The web app: a JSON API and a single page over one loaded Predictor."""

BODY_TIMEOUT_S = 15.0
"""Default seconds a client has to send a whole request body (a trickled body gets 408)."""
