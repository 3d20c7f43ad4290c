package redisstore

import "github.com/redis/go-redis/v9"

// The keys of one history, all under one hash tag ({prefix}) so that they
// sit in one Redis Cluster slot (a script over several slots fails with
// CROSSSLOT) and one script may touch them all:
//
//	{p}:epoch  string: the generation of the history (random)
//	{p}:last   integer: the last position assigned (0 in a new epoch)
//	{p}:first  integer: the first position retained (absent: 1)
//	{p}:log    stream: one entry per event, with the stream ID "<pos>-0"
//	           and the fields id (event ID), t (Unix microseconds, from
//	           the server's TIME) and r (the record, store/internal/record,
//	           whose own time is not used)
//	{p}:ids    hash: event ID -> position, for the retained events
//
// Every script takes the keys in this order.
type keys struct {
	epoch, last, first, log, ids string
}

func newKeys(prefix string) keys {
	p := "{" + prefix + "}:"
	return keys{epoch: p + "epoch", last: p + "last", first: p + "first", log: p + "log", ids: p + "ids"}
}

func (k keys) list() []string { return []string{k.epoch, k.last, k.first, k.log, k.ids} }

// The scripts' refusals, recognised by their prefix: the epoch is not the
// one given (followed by the history's epoch, empty if it has none), and
// an event ID is retained already or repeated (followed by the ID). A
// script that refuses changes nothing but, for a partial loss, the epoch.
const (
	errEpochPrefix = "HERALDEPOCH"
	errDupPrefix   = "HERALDDUP"
)

// renewScript returns the history's epoch, creating it (ARGV[1]) if it is
// missing. A missing epoch means that Redis lost the history (a restart
// without persistence, a FLUSHDB, an evicted key): whatever else is left
// of it is deleted with it, so that the new epoch starts empty, from
// position 1, with no stale ID in the index.
var renewScript = redis.NewScript(`
local e = redis.call('GET', KEYS[1])
if e then return e end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('SET', KEYS[2], '0')
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
`)

// appendScript appends batches of events, each all or nothing: the
// appends that arrived together, in one run (group commit).
//
// ARGV: epoch, maximum length, maximum age in microseconds (0: none),
// maximum entries trimmed by this call beyond the events' number, then for
// each batch its number of events followed by an event ID and a record per
// event. With no batch it only trims, as the reader has it do while no one
// appends.
//
// It refuses every batch when the epoch is not ARGV[1], before writing
// anything. A history that has its epoch but lost its counter (a partial
// loss, as bad as a whole one) loses its epoch too, so that every node
// starts a new one. A batch with an ID that is retained, repeated within
// it, or taken by an earlier batch of the call is skipped, the others
// appended. It returns the server time in microseconds (as a string: a Lua
// number would lose digits in the conversion), the first position retained
// once it trimmed, and for each batch the position of its first event, or
// "HERALDDUP <id>" for a batch it skipped.
//
// Trimming drops entries from the front while the stream is longer than
// the maximum length or its first entry older than the maximum age,
// reading at most the events' number plus ARGV[4] entries, so that one
// call does bounded work; the index loses the dropped IDs with them.
var appendScript = redis.NewScript(`
local e = redis.call('GET', KEYS[1])
if e ~= ARGV[1] then
  return redis.error_reply('HERALDEPOCH ' .. (e or ''))
end
local last = redis.call('GET', KEYS[2])
if not last then
  redis.call('DEL', KEYS[1])
  return redis.error_reply('HERALDEPOCH ')
end
last = tonumber(last)
local seen = {}
local results = {}
local accepted = {}
local n = 0
local i = 5
while i <= #ARGV do
  local k = tonumber(ARGV[i])
  i = i + 1
  local mine = {}
  local dup = nil
  for j = 0, k - 1 do
    local id = ARGV[i + 2 * j]
    if seen[id] or mine[id] or redis.call('HEXISTS', KEYS[5], id) == 1 then
      dup = id
      break
    end
    mine[id] = true
  end
  if dup then
    results[#results + 1] = 'HERALDDUP ' .. dup
  else
    for id in pairs(mine) do seen[id] = true end
    accepted[#accepted + 1] = {i, k, last + n + 1}
    results[#results + 1] = last + n + 1
    n = n + k
  end
  i = i + 2 * k
end
local tm = redis.call('TIME')
local now = tm[1] .. string.rep('0', 6 - #tm[2]) .. tm[2]
if n > 0 then last = redis.call('INCRBY', KEYS[2], n) end
for _, a in ipairs(accepted) do
  for j = 0, a[2] - 1 do
    local p = string.format('%d', a[3] + j)
    local id = ARGV[a[1] + 2 * j]
    redis.call('XADD', KEYS[4], p .. '-0', 'id', id, 't', now, 'r', ARGV[a[1] + 2 * j + 1])
    redis.call('HSET', KEYS[5], id, p)
  end
end
local maxlen = tonumber(ARGV[2])
local maxage = tonumber(ARGV[3])
local cutoff = tonumber(now) - maxage
local budget = n + tonumber(ARGV[4])
local first = tonumber(redis.call('GET', KEYS[3]) or '1')
local newfirst = first
while budget > 0 do
  local chunk = 0
  if last - newfirst + 1 > maxlen then chunk = last - newfirst + 1 - maxlen end
  if maxage > 0 then chunk = math.max(chunk, 16) end
  chunk = math.min(chunk, budget)
  if chunk <= 0 then break end
  local es = redis.call('XRANGE', KEYS[4], string.format('%d-0', newfirst), '+', 'COUNT', chunk)
  if #es == 0 then break end
  local stop = false
  for _, en in ipairs(es) do
    local p = tonumber(string.match(en[1], '^(%d+)'))
    local f = en[2]
    local old = maxage > 0 and tonumber(f[4]) < cutoff
    if last - p + 1 > maxlen or old then
      redis.call('HDEL', KEYS[5], f[2])
      newfirst = p + 1
      budget = budget - 1
    else
      stop = true
      break
    end
  end
  if stop then break end
end
if newfirst ~= first then
  redis.call('XTRIM', KEYS[4], 'MINID', string.format('%d-0', newfirst))
  redis.call('SET', KEYS[3], string.format('%d', newfirst))
end
local out = {now, newfirst}
for _, r in ipairs(results) do out[#out + 1] = r end
return out
`)
