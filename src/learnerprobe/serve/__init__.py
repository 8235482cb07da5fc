"""The web app: a JSON API and a single page over one loaded Predictor."""
