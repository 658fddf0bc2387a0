-- The stored state as last written, the failure log and the time: {now, m, o, p, n, i, k, t, c, b, d, failures}.
local now = clock(ARGV[1])
local s = load()
return {int(now), s.m, int(s.o), int(s.p), int(s.n), int(s.i), int(s.k), int(s.t), int(s.c), int(s.b), int(s.d),
    redis.call('LRANGE', KEYS[2], 0, -1)}
