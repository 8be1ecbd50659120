package apikeys

import "time"

// SetClock makes s read the time from now (tests move time forward without waiting).
func SetClock(s *Service, now func() time.Time) { s.now = now }
