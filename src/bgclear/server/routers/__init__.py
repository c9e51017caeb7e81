"""The server's routers: health, the removal API and the web page."""
