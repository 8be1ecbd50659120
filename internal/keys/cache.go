package keys

import (
	"sync"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
)

// tenantKeys is a tenant's unwrapped keyset, ready to use.
type tenantKeys struct {
	aead      tink.AEAD
	primary   uint32
	keyIDs    map[uint32]bool
	destroyed bool
	// fresh is true when the keys were read from the database for this call, not from the cache.
	fresh bool
}

type cacheEntry struct {
	keys    *tenantKeys
	expires time.Time // zero: never (a destroyed keyset stays destroyed)
}

// keyCache holds unwrapped keysets for a short time so that every Encrypt and Decrypt does not
// read the database and call the master key (a KMS round trip in production).
//
// A load that started before an invalidation must not store what it read: it may have read the
// row just before a Rotate or Destroy committed. Every invalidation bumps gen, and store keeps
// an entry only when gen is unchanged since the load began.
type keyCache struct {
	ttl time.Duration

	mu      sync.Mutex
	gen     uint64
	entries map[int64]cacheEntry
}

// sweepAbove is the entry count above which store drops expired entries.
const sweepAbove = 1024

func newKeyCache(ttl time.Duration) *keyCache {
	return &keyCache{ttl: ttl, entries: map[int64]cacheEntry{}}
}

// get returns the cached keys for tenant, if any and not expired.
func (c *keyCache) get(tenantID int64, now time.Time) (*tenantKeys, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[tenantID]
	if !ok {
		return nil, false
	}
	if !e.expires.IsZero() && !now.Before(e.expires) {
		delete(c.entries, tenantID)
		return nil, false
	}
	return e.keys, true
}

// generation returns the value to pass to store after loading.
func (c *keyCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// store caches keys loaded since generation gen, unless something was invalidated meanwhile.
func (c *keyCache) store(tenantID int64, k *tenantKeys, gen uint64, now time.Time) {
	if c.ttl <= 0 && !k.destroyed {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.entries) > sweepAbove {
		for id, e := range c.entries {
			if !e.expires.IsZero() && !now.Before(e.expires) {
				delete(c.entries, id)
			}
		}
	}
	cached := *k
	cached.fresh = false
	e := cacheEntry{keys: &cached}
	if !k.destroyed {
		e.expires = now.Add(c.ttl)
	}
	c.entries[tenantID] = e
}

// invalidate forgets tenant's keys and fences off loads in flight.
func (c *keyCache) invalidate(tenantID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.entries, tenantID)
}
