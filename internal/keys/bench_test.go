package keys_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/keys"
)

// BenchmarkEncrypt and BenchmarkDecrypt measure a 1 KiB secret, with the keyset cached (the
// common case) and without a cache (a database read and an unwrap with the master key per call,
// the cost a cache miss adds).
func BenchmarkEncrypt(b *testing.B) {
	secret := bytes.Repeat([]byte("x"), 1024)
	ad := []byte("settings/1/secret")
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			svc, tenant := benchService(b, bc.opts...)
			b.SetBytes(int64(len(secret)))
			for b.Loop() {
				if _, err := svc.Encrypt(context.Background(), tenant, secret, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecrypt(b *testing.B) {
	secret := bytes.Repeat([]byte("x"), 1024)
	ad := []byte("settings/1/secret")
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			svc, tenant := benchService(b, bc.opts...)
			ct, err := svc.Encrypt(context.Background(), tenant, secret, ad)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(secret)))
			for b.Loop() {
				if _, err := svc.Decrypt(context.Background(), tenant, ct, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type benchCase struct {
	name string
	opts []keys.Option
}

func benchCases() []benchCase {
	return []benchCase{
		{"cached", nil},
		{"uncached", []keys.Option{keys.WithCacheTTL(0)}},
	}
}

func benchService(b *testing.B, opts ...keys.Option) (*keys.Service, int64) {
	d := dbtest.Open(b)
	svc := keys.NewService(d.App, newMaster(b), opts...)
	return svc, newKeyedTenant(b, svc, d)
}
