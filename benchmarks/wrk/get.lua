-- GET /ngsi-ld/v1/entities/{id}, cycling over the ids <prefix>0 .. <prefix>(n-1).
-- Arguments after "--": n prefix.
require("report")

local counter, n, prefix = 0, 1000, "urn:ngsi-ld:Vehicle:bench-"
local thread_no = 0

function setup(thread)
  thread:set("offset", thread_no * 7919)
  thread_no = thread_no + 1
end

function init(args)
  n = tonumber(args[1]) or n
  prefix = args[2] or prefix
  counter = (offset or 0) % n
end

function request()
  counter = counter + 1
  return wrk.format("GET", "/ngsi-ld/v1/entities/" .. prefix .. (counter % n))
end
