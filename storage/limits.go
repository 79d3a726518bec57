package storage

import (
	"fmt"
)

// usage is what a cluster holds: live objects and their stored bytes.
type usage struct{ objects, bytes int64 }

// Limits bound what one logical cluster may hold, so that one tenant
// cannot fill the database the others share. Zero is no limit. The root
// cluster, the operators', is never limited.
type Limits struct {
	Objects int64
	Bytes   int64
}

// WithLimits sets every tenant's limits.
func WithLimits(l Limits) Option {
	return func(s *Store) { s.limits = l }
}

func (l Limits) of(cluster string) Limits {
	if cluster == rootCluster {
		return Limits{}
	}
	return l
}

// rootCluster is clusters.Root; storage does not import the request layer.
const rootCluster = "root"

// LimitError is a write refused because its cluster is full.
type LimitError struct {
	Cluster string
	What    string // "objects" or "bytes"
	Limit   int64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("logical cluster %q has reached its limit of %d stored %s", e.Cluster, e.Limit, e.What)
}

// check refuses a write that takes a cluster past a limit. A write that
// does not grow what is held (a delete, a shrinking update) always passes,
// so a full tenant can always make room.
func (l Limits) check(cluster string, before, after usage) error {
	if l.Objects > 0 && after.objects > l.Objects && after.objects > before.objects {
		return &LimitError{Cluster: cluster, What: "objects", Limit: l.Objects}
	}
	if l.Bytes > 0 && after.bytes > l.Bytes && after.bytes > before.bytes {
		return &LimitError{Cluster: cluster, What: "bytes", Limit: l.Bytes}
	}
	return nil
}
