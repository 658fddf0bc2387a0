-- How calls went, for adaptive limits (storage.MemoryStorage.feedback, adaptive.AdaptiveRate).
-- KEYS: adaptive states (hash p: peak, n: successes, d: decreased at, u: updated at).
-- ARGV: clock, limited ('1' or '0'), admitted (when the call was admitted), then seven per
--       key: the rate the call was admitted under, initial, floor, ceiling, decrease, recover,
--       forget.
local now = clock(ARGV[1])
local limited = ARGV[2] == '1'
local admitted = tonumber(ARGV[3])
for i = 1, #KEYS do
    local a = 3 + (i - 1) * 7
    local admitted_rate, initial = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local decrease, recover, forget = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])
    local peak, successes, decreased = adaptive_state(KEYS[i], now, initial, decrease, recover, forget)
    if not limited then
        successes = successes + 1
    elseif admitted > decreased then
        peak, successes, decreased = admitted_rate, 0, now
    end
    redis.call('HSET', KEYS[i], 'p', string.format('%.17g', peak), 'n', successes, 'd', decreased, 'u', now)
    redis.call('PEXPIRE', KEYS[i], math.ceil(forget / 1000))
end
return 1
