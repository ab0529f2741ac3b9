-- Announce an ended job: a token on its `done` list (event streams block on it with a
-- non-consuming BLMOVE), and on `channel` its record and, when a results hash is passed
-- (one-item jobs), item 0's result: a waiting POST /v1/classify answers from the message
-- alone, without reading the job back.
local function announce_end(job, done_list, channel, status, expire_at, results)
  redis.call('RPUSH', done_list, status)
  redis.call('EXPIREAT', done_list, expire_at)
  local message = {record = redis.call('HGETALL', job)}
  if results then message.result = redis.call('HGET', results, '0') or nil end
  redis.call('PUBLISH', channel, cjson.encode(message))
end
