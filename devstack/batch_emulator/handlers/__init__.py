"""The Batch REST operations, one module per resource, and routes.py, the URL table that names them."""
