package admission

import (
	"context"
	"sync"
)

// Warnings collects the warnings admission raises for one request, for the
// REST layer to send as "Warning: 299 - ..." headers. Plugins never reject
// through it: it only tells the client what would be refused elsewhere.
type Warnings struct {
	mu   sync.Mutex
	list []string
}

type warningsKey struct{}

// WithWarnings gives a request's context a collector; the caller reads it
// with List once admission is done.
func WithWarnings(ctx context.Context) (context.Context, *Warnings) {
	w := &Warnings{}
	return context.WithValue(ctx, warningsKey{}, w), w
}

// AddWarning records msg for the request. Without a collector the warning
// is dropped: callers that cannot send warnings (controllers, internal
// writes) must not be made to care.
func AddWarning(ctx context.Context, msg string) {
	w, _ := ctx.Value(warningsKey{}).(*Warnings)
	if w == nil || msg == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// kube-apiserver sends each distinct warning once, however often raised.
	for _, m := range w.list {
		if m == msg {
			return
		}
	}
	w.list = append(w.list, msg)
}

// List returns the warnings recorded so far, in the order first raised.
func (w *Warnings) List() []string {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.list...)
}
