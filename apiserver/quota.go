package apiserver

import (
	"context"
	"log/slog"
	"time"

	"github.com/pgkube/pgkube/admission"
	"github.com/pgkube/pgkube/storage"
)

// quotaRecalculator gives back quota a deletion frees: admission charges
// quotas as objects are created, and after deletions commit this
// recomputes the usage of the namespaces they were in, as upstream's quota
// controller does on its resync.
type quotaRecalculator struct {
	quota *admission.ResourceQuota
	log   *slog.Logger
	dirty chan nsRef
}

type nsRef struct {
	cluster, namespace string
	// again: this is the follow-up pass (see run).
	again bool
}

func newQuotaRecalculator(q *admission.ResourceQuota, log *slog.Logger) *quotaRecalculator {
	return &quotaRecalculator{quota: q, log: log, dirty: make(chan nsRef, 1024)}
}

// committed is a storage commit hook: it must not block, so a full queue
// drops work (the next deletion in that namespace catches up).
func (r *quotaRecalculator) committed(cluster string, objs []storage.Object) {
	for _, o := range objs {
		if o.Deleted && o.Namespace != "" && o.Resource != "/resourcequotas" && o.Resource != "/events" {
			select {
			case r.dirty <- nsRef{cluster: cluster, namespace: o.Namespace}:
			default:
			}
		}
	}
}

func (r *quotaRecalculator) run(ctx context.Context) {
	for {
		var first nsRef
		select {
		case <-ctx.Done():
			return
		case first = <-r.dirty:
		}
		// Gather a burst (a namespace's worth of deletions) into one pass
		// per namespace.
		batch := map[nsRef]bool{first: true}
		deadline := time.After(100 * time.Millisecond)
	gather:
		for {
			select {
			case n := <-r.dirty:
				batch[n] = true
			case <-deadline:
				break gather
			}
		}
		for n := range batch {
			if err := r.quota.Recalculate(ctx, n.cluster, n.namespace); err != nil && ctx.Err() == nil {
				r.log.Warn("quota recalculation", "namespace", n.namespace, "err", err)
			}
			if !n.again {
				// A recount still counts charges admitted moments ago and
				// perhaps not stored yet; once those are settled, count
				// again so a deletion right after a create is given back.
				n.again = true
				time.AfterFunc(admission.QuotaPendingTTL+time.Second, func() {
					select {
					case r.dirty <- n:
					default:
					}
				})
			}
		}
	}
}
