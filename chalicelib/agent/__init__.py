"""The agent side: the HTTP client of Baton's API and the runner that works a dispatched job."""
