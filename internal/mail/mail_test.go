package mail_test

import (
	"errors"
	"os"
	"testing"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/mail"
	"github.com/tenantry/tenantry/internal/validation"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func TestEnqueueIsIdempotentByDedupKey(t *testing.T) {
	d := dbtest.Open(t)
	msg := mail.Message{Kind: "test", DedupKey: "test:dedup", To: "ops@example.com", Subject: "Hello", Text: "Body"}
	for i, want := range []bool{true, false} {
		var queued bool
		err := d.App.Transaction(func(tx *gorm.DB) error {
			var err error
			queued, err = mail.Enqueue(tx, msg)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if queued != want {
			t.Fatalf("call %d: queued = %v, want %v", i, queued, want)
		}
	}
	var n int64
	d.App.Model(&mail.Queued{}).Where("dedup_key = ?", "test:dedup").Count(&n)
	if n != 1 {
		t.Fatalf("%d rows with the key, want 1", n)
	}
}

func TestEnqueueRefusesBadMessages(t *testing.T) {
	d := dbtest.Open(t)
	for name, tc := range map[string]struct {
		msg   mail.Message
		field string
	}{
		"bad address":       {mail.Message{Kind: "k", To: "not-an-address", Subject: "s", Text: "t"}, "to"},
		"header injection":  {mail.Message{Kind: "k", To: "a@example.com", Subject: "s\r\nBcc: x@example.com", Text: "t"}, "subject"},
		"no body":           {mail.Message{Kind: "k", To: "a@example.com", Subject: "s"}, "text"},
		"named address too": {mail.Message{Kind: "k", To: "Ann <a@example.com>", Subject: "s", Text: "t"}, "to"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := mail.Enqueue(d.App, tc.msg)
			if !errors.Is(err, validation.ErrInvalid) || validation.Fields(err)[tc.field] == "" {
				t.Fatalf("err = %v, want a message at %q", err, tc.field)
			}
		})
	}
	var n int64
	d.App.Model(&mail.Queued{}).Where("kind = 'k'").Count(&n)
	if n != 0 {
		t.Fatalf("%d bad messages queued", n)
	}
}
