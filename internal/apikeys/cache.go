package apikeys

import (
	"crypto/sha256"
	"sync"
	"time"
)

// checkedKeys remembers keys whose secret this process has verified, so a repeated call skips the
// transaction in the tenant's schema. An entry is good only while the tenant's api_key_epoch is
// the one it was verified under: Revoke bumps the epoch in the same transaction, on any node.
// Expiry, the IP allowlist and the tenant's state are checked on every call, not remembered.
// Only digests of full keys are held, never a key.
type checkedKeys struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]checkedKey
}

type checkedKey struct {
	tenantID   int64
	epoch      int64
	id         int64
	name       string
	expiresAt  *time.Time
	lastUsedAt time.Time
}

// maxCheckedKeys bounds the memory; past it, an arbitrary entry makes room (the next call of
// that key does the full check again).
const maxCheckedKeys = 50_000

func newCheckedKeys() *checkedKeys {
	return &checkedKeys{entries: map[[sha256.Size]byte]checkedKey{}}
}

func keyDigest(full string) [sha256.Size]byte { return sha256.Sum256([]byte(full)) }

func (c *checkedKeys) get(d [sha256.Size]byte) (checkedKey, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[d]
	return e, ok
}

func (c *checkedKeys) put(d [sha256.Size]byte, e checkedKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[d]; !ok && len(c.entries) >= maxCheckedKeys {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[d] = e
}

func (c *checkedKeys) forget(d [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, d)
}
