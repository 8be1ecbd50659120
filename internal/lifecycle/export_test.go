package lifecycle

import (
	"context"
)

// CaptureFactsForTest runs the first step of a purge alone, as a purge that crashed after it.
func CaptureFactsForTest(s *Service, ctx context.Context, tenantID int64, actor string) error {
	t, err := s.tenantByID(ctx, tenantID)
	if err != nil {
		return err
	}
	_, err = s.captureFacts(ctx, t, actor)
	return err
}
