"""The REST API: a Flask app factory, thin blueprints and one JSON error handler."""
