"""Temporary files and a debug server, both done the unsafe way."""

import tempfile


def scratch_file():
    # predictable temporary file name (race)
    return tempfile.mktemp()


def serve(app):
    # listens on every interface
    app.run(host="0.0.0.0", debug=True)
