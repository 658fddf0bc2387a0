-- Adds task ids to a tree: KEYS[1] the tree's id set, KEYS[2] its child -> parent hash (both
-- tagged by the root id, so one slot).  ARGV[1]: TTL (s), ARGV[2]: the parent id ('' for
-- the root's own members), ARGV[3..]: the ids.  Idempotent.
for i = 3, #ARGV do
  redis.call('SADD', KEYS[1], ARGV[i])
  if ARGV[2] ~= '' then redis.call('HSET', KEYS[2], ARGV[i], ARGV[2]) end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
return #ARGV - 2
