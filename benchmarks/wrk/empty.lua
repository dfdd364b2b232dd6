-- GET /version: the empty-endpoint baseline (the HTTP stack with no hub work). Not /health:
-- that one asks every registered service for its health, which is work of its own.
require("report")
wrk.method = "GET"
wrk.path = "/version"
