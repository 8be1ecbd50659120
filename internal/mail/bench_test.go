package mail_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	tmail "github.com/tenantry/tenantry/internal/mail"
	"github.com/tenantry/tenantry/internal/mail/mailtest"
)

// BenchmarkOutboxDelivery: b.N queued messages delivered by two workers (as two nodes would)
// through a real SMTP server on loopback: claim in batches of 25, one SMTP connection per batch,
// one UPDATE per message. Reports messages per second.
//
//	go test -run '^$' -bench OutboxDelivery -benchtime 3000x ./internal/mail/
func BenchmarkOutboxDelivery(b *testing.B) {
	d := dbtest.Open(b)
	if err := d.App.Exec(`DELETE FROM tenantry.mail_outbox`).Error; err != nil {
		b.Fatal(err)
	}
	srv := mailtest.Start(b, "")
	err := d.App.Transaction(func(tx *gorm.DB) error {
		for i := 0; i < b.N; i++ {
			if _, err := tmail.Enqueue(tx, tmail.Message{Kind: "bench", To: fmt.Sprintf("u%d@example.com", i),
				Subject: fmt.Sprintf("Message %d", i), Text: "A plain-text body of a typical notification.",
				HTML: "<p>A plain-text body of a <b>typical</b> notification.</p>"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := tmail.ParseSMTPURL("smtp://"+srv.Addr+"?tls=none", "Bench <bench@example.com>")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := tmail.NewDeliverer(d.App, tmail.NewSMTPTransport(cfg), nil).RunOnce(context.Background()); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := len(srv.Received()); n != b.N {
		b.Fatalf("server received %d of %d", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}
