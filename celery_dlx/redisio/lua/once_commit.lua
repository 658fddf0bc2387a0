if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for _, op in ipairs(cjson.decode(ARGV[3])) do redis.call(unpack(op)) end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[2])
return 1
