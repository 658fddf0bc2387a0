-- Marks a page finished, only if it was turned (observed) first.
if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
