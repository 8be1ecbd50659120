package audit

import "context"

// Origin is where a change came from: the request that made it and the client's address. The
// web layer puts it in each request's context; Record and RecordTenant copy it into the event.
type Origin struct {
	RequestID  string
	SourceAddr string
}

type originKey struct{}

// WithOrigin returns ctx carrying o.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// originFrom returns the origin in ctx, if any.
func originFrom(ctx context.Context) Origin {
	o, _ := ctx.Value(originKey{}).(Origin)
	return o
}
