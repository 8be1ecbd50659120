// Package validation is the one way domain code reports bad input: a set of messages keyed by
// form field, returned as an error that wraps ErrInvalid. Handlers show each message at its field.
package validation

import (
	"errors"
	"sort"
	"strings"
)

// ErrInvalid is wrapped by every *Errors, so callers can test with errors.Is.
var ErrInvalid = errors.New("invalid input")

// Errors maps a field name to the first problem found with it.
type Errors map[string]string

// Add records msg for field unless the field already has a message.
func (e Errors) Add(field, msg string) {
	if _, ok := e[field]; !ok {
		e[field] = msg
	}
}

// Err returns e as an error, or nil when there is nothing to report.
func (e Errors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// Error lists the problems in field order.
func (e Errors) Error() string {
	fields := make([]string, 0, len(e))
	for f := range e {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f + ": " + e[f]
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e Errors) Is(target error) bool { return target == ErrInvalid }

// Fields extracts the field messages from err, or nil when err carries none.
func Fields(err error) Errors {
	var e Errors
	if errors.As(err, &e) {
		return e
	}
	return nil
}
