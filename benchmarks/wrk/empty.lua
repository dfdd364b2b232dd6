-- GET /health: the empty-endpoint baseline (the HTTP stack with no hub work).
require("report")
wrk.method = "GET"
wrk.path = "/health"
