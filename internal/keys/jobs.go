package keys

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// RotateArgs asks for a tenant's data to be re-encrypted under the primary key that rotation
// RotationID introduced. Service.Rotate enqueues it.
type RotateArgs struct {
	TenantID   int64 `json:"tenant_id"`
	RotationID int64 `json:"rotation_id"`
}

// Kind names the job in River.
func (RotateArgs) Kind() string { return "keys.rotate" }

// RotateTimeout bounds one attempt at re-encrypting a tenant's data. An attempt that times out
// is retried from the start, and items already under the new key cost a decryption only.
const RotateTimeout = time.Hour

// RotateWorker re-encrypts a tenant's data after a rotation, through the Reencrypters registered
// with its Service, recording progress in key_rotations.
type RotateWorker struct {
	river.WorkerDefaults[RotateArgs]
	service *Service
}

// NewRotateWorker returns the worker for RotateArgs jobs, using s.
func NewRotateWorker(s *Service) *RotateWorker { return &RotateWorker{service: s} }

// Timeout allows for tenants with much data; see RotateTimeout.
func (w *RotateWorker) Timeout(*river.Job[RotateArgs]) time.Duration { return RotateTimeout }

// Work walks the registered Reencrypters. A rotation already finished is left alone; one whose
// keyset was destroyed meanwhile is cancelled.
func (w *RotateWorker) Work(ctx context.Context, job *river.Job[RotateArgs]) error {
	return w.service.reencrypt(ctx, job.Args)
}
