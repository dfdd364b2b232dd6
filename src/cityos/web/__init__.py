"""The ASGI application that mounts every router."""
