local v = redis.call('GET', KEYS[1])
if v == ARGV[3] then return {'done', 0} end
if v then return {'busy', redis.call('PTTL', KEYS[1])} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {'acquired', 0}
