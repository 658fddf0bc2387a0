-- Learn a budget from response headers (storage.MemoryStorage.observe, budget.Budget.merge).
-- KEYS[1]: the budget (hash r: remaining, t: reset).
-- ARGV: clock, remaining, reset, relative ('1': reset is from now), same-window tolerance.
local now = clock(ARGV[1])
local remaining = tonumber(ARGV[2])
local reset = tonumber(ARGV[3])
if ARGV[4] == '1' then
    reset = now + reset
end
if reset <= now then
    return 0
end
local old = redis.call('HMGET', KEYS[1], 'r', 't')
if old[1] and tonumber(old[2]) > now and reset <= tonumber(old[2]) + tonumber(ARGV[5]) then
    remaining = math.min(remaining, tonumber(old[1]))
    reset = math.max(reset, tonumber(old[2]))
end
redis.call('HSET', KEYS[1], 'r', remaining, 't', reset)
redis.call('PEXPIRE', KEYS[1], math.ceil((reset - now) / 1000))
return 1
