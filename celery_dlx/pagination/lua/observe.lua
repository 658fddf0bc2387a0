-- Records a page's items, next cursor and content; answers which items it owns and which
-- pages first returned its cursor and its content.  Idempotent per page, so a page that runs
-- again gets the same answers.  '' stands for "none" (Lua tables cannot hold nil).
local page = ARGV[2]
local owned = {}
for i = 5, #ARGV do
  redis.call('HSETNX', KEYS[1], ARGV[i], page)
  if redis.call('HGET', KEYS[1], ARGV[i]) == page then owned[#owned + 1] = ARGV[i] end
end
local function first_page(key, value)
  if value == '' then return '' end
  redis.call('HSETNX', key, value, page)
  return redis.call('HGET', key, value)
end
local cursor_page = first_page(KEYS[2], ARGV[3])
local content_page = first_page(KEYS[3], ARGV[4])
redis.call('SADD', KEYS[4], page)
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
return {owned, cursor_page, content_page}
