-- KEYS[1]: the record; KEYS[2..]: the key of each staged operation, in order (the first
-- argument of each operation, declared so Redis Cluster can check they share the record's slot).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i, op in ipairs(cjson.decode(ARGV[3])) do
  op[2] = KEYS[i + 1]
  redis.call(unpack(op))
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[2])
return 1
