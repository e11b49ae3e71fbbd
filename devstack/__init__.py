"""The local stack: everything that runs eventbatch offline. Never deployed (see .funcignore)."""
