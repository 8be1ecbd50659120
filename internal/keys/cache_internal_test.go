package keys

import (
	"testing"
	"time"
)

// White-box: the interleavings these guard against are too narrow to provoke through the
// database reliably.
func TestKeyCache(t *testing.T) {
	t.Parallel()
	now := time.Now()
	live := &tenantKeys{primary: 1, fresh: true}

	t.Run("a load that began before an invalidation is not kept", func(t *testing.T) {
		c := newKeyCache(time.Minute)
		gen := c.generation()
		c.invalidate(2) // any tenant: a Rotate or Destroy committed while the load ran
		c.store(1, live, gen, now)
		if _, ok := c.get(1, now); ok {
			t.Fatal("a load overtaken by an invalidation was cached")
		}
	})

	t.Run("entries expire after the TTL", func(t *testing.T) {
		c := newKeyCache(time.Minute)
		c.store(1, live, c.generation(), now)
		k, ok := c.get(1, now.Add(59*time.Second))
		if !ok || k.primary != 1 || k.fresh {
			t.Fatalf("within the TTL: %+v, %v; want the entry, not marked fresh", k, ok)
		}
		if _, ok := c.get(1, now.Add(time.Minute)); ok {
			t.Fatal("entry served after its TTL")
		}
	})

	t.Run("no TTL caches only destroyed keysets", func(t *testing.T) {
		c := newKeyCache(0)
		c.store(1, live, c.generation(), now)
		c.store(2, &tenantKeys{destroyed: true}, c.generation(), now)
		if _, ok := c.get(1, now); ok {
			t.Fatal("live keys cached with TTL 0")
		}
		if k, ok := c.get(2, now.Add(24*time.Hour)); !ok || !k.destroyed {
			t.Fatal("a destroyed keyset should stay known: it cannot come back")
		}
	})

	t.Run("invalidate forgets the tenant", func(t *testing.T) {
		c := newKeyCache(time.Minute)
		c.store(1, live, c.generation(), now)
		c.invalidate(1)
		if _, ok := c.get(1, now); ok {
			t.Fatal("entry served after invalidate")
		}
	})
}
