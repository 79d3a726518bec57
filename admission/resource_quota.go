package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/pgkube/pgkube/storage"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const (
	// quotaAttempts bounds the read-check-write rounds of one request;
	// within one process requests to a namespace take turns, so only
	// writers in other processes can make a round fail.
	quotaAttempts = 32
	// pendingTTL is how long a charge is assumed to be on its way to
	// storage. A recount adds the charges younger than this whose objects
	// it does not see yet, so it never forgets a create that was admitted
	// but not yet written.
	pendingTTL = 3 * time.Second
)

// QuotaPendingTTL is how long a recount keeps counting a fresh charge it
// cannot see in storage yet.
const QuotaPendingTTL = pendingTTL

// QuotaStore reads ResourceQuotas and the objects they count, and writes
// the quotas' usage.
type QuotaStore interface {
	Lister
	Write(ctx context.Context, cluster string, w storage.Write) (storage.Object, error)
}

// ResourceQuota enforces a namespace's ResourceQuotas, as kube-apiserver's
// plugin of that name: a write that would take any covering quota's usage
// over its hard limit is refused, and otherwise the new usage is written to
// the quota, conditioned on the quota's resourceVersion, before the write
// proceeds. Concurrent writers thus serialise on the quota object and
// cannot together exceed it.
//
// Usage is never released here, as upstream (its quota controller does
// that): pgkube has no such controller, so Recalculate must be called when
// usage may have dropped (deletions, pods that finished). A quota whose
// status lacks usage for one of its limits is recounted on first use.
type ResourceQuota struct {
	store QuotaStore
	// quick answers whether a namespace has quotas at all, before any
	// lock is taken; it may lag (a ReadCache). Charging reads store.
	quick Lister
	now   func() time.Time
	locks namespaceLocks

	mu      sync.Mutex
	pending map[nsKey][]pendingCharge
}

// pendingCharge is one admitted write that may not be in storage yet.
type pendingCharge struct {
	gr   schema.GroupResource
	name string
	obj  runtime.Object
	at   time.Time
}

// NewResourceQuota returns the plugin. quick, if not nil, is a cheaper
// Lister (a ReadCache) for the first look at a namespace's quotas; writes
// to namespaces without a covering quota then cost no storage read. A
// quota it has not seen yet (created through another process within its
// TTL) is not enforced until it does.
func NewResourceQuota(store QuotaStore, quick Lister) *ResourceQuota {
	if quick == nil {
		quick = store
	}
	return &ResourceQuota{store: store, quick: quick, now: time.Now, pending: map[nsKey][]pendingCharge{}}
}

// quotaEntry is one stored quota with the storage facts its write needs.
type quotaEntry struct {
	quota  corev1.ResourceQuota
	stored storage.Object
}

func quotaID(q *corev1.ResourceQuota) string { return q.Name + "/" + string(q.UID) }

// Admit is a validating plugin; it runs last, after every other check, so
// that a write refused elsewhere is never charged.
func (q *ResourceQuota) Admit(ctx context.Context, a *Attributes) error {
	gr := schema.GroupResource{Group: a.Group, Resource: a.Resource}
	if a.Namespace == "" || quotaIgnored[gr] || !quotaHandles(a, gr) {
		return nil
	}
	quotas, err := q.readQuotas(ctx, q.quick, a.Cluster, a.Namespace)
	if err != nil || len(quotas) == 0 {
		return err
	}
	covered := false
	for i := range quotas {
		if ok, _ := quotaMatches(&quotas[i].quota, gr, a.Object); ok {
			covered = true
			break
		}
	}
	if !covered {
		return nil
	}
	defer q.locks.lock(nsKey{a.Cluster, a.Namespace})()
	return q.charge(ctx, a, gr)
}

// quotaHandles selects the writes that can change usage: creates of
// anything; updates of pods that start or stop being terminating, of
// services and of claims; in-place pod resizes; claim status changes that
// move allocated storage or volume attributes classes.
func quotaHandles(a *Attributes, gr schema.GroupResource) bool {
	switch gr {
	case podsGR:
		switch a.Subresource {
		case "":
			if a.Operation == Update {
				pod, ok1 := a.Object.(*corev1.Pod)
				old, ok2 := a.OldObject.(*corev1.Pod)
				return ok1 && ok2 && podTerminating(pod) != podTerminating(old)
			}
			return a.Operation == Create
		case "resize":
			return a.Operation == Update
		}
		return false
	case servicesGR:
		return a.Subresource == "" && (a.Operation == Create || a.Operation == Update)
	case claimsGR:
		switch a.Subresource {
		case "":
			return a.Operation == Create || a.Operation == Update
		case "status":
			pvc, ok1 := a.Object.(*corev1.PersistentVolumeClaim)
			old, ok2 := a.OldObject.(*corev1.PersistentVolumeClaim)
			if !ok1 || !ok2 || a.Operation != Update {
				return false
			}
			n, o := pvc.Status.AllocatedResources[corev1.ResourceStorage], old.Status.AllocatedResources[corev1.ResourceStorage]
			return n.Cmp(o) != 0 || fmt.Sprint(claimAttributeClasses(pvc)) != fmt.Sprint(claimAttributeClasses(old))
		}
		return false
	}
	return a.Subresource == "" && a.Operation == Create
}

// charge runs read-check-write rounds until every covering quota carries
// the request, or one refuses it. Quotas charged in an earlier round are
// not charged again; if the request is refused in the end, they are given
// back.
func (q *ResourceQuota) charge(ctx context.Context, a *Attributes, gr schema.GroupResource) error {
	charged := map[string]corev1.ResourceList{}
	fail := func(err error) error {
		q.giveBack(ctx, a.Cluster, a.Namespace, charged)
		return err
	}
	for attempt := 0; ; attempt++ {
		// The first round may start from the quick read: a stale quota
		// only fails its conditioned write, and later rounds read storage.
		src := q.quick
		if attempt > 0 {
			src = q.store
		}
		quotas, err := q.readQuotas(ctx, src, a.Cluster, a.Namespace)
		if err != nil {
			return fail(err)
		}
		writes, err := q.plan(ctx, a, gr, quotas, charged)
		if err != nil {
			return fail(err)
		}
		if a.DryRun {
			return nil
		}
		retry := false
		for _, w := range writes {
			_, err := q.store.Write(ctx, a.Cluster, quotaWrite(w.entry, w.quota))
			if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
				retry = true // changed or deleted since read: judge it again
				continue
			}
			if err != nil {
				return fail(err)
			}
			charged[quotaID(w.quota)] = w.requested
		}
		if !retry {
			if len(charged) > 0 {
				q.remember(a, gr)
			}
			return nil
		}
		if attempt+1 >= quotaAttempts {
			return fail(apierrors.NewInternalError(errors.New("resource quota evaluation timed out")))
		}
		// Another process won the race for the quota: let it finish.
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(time.Duration(1+rand.IntN(5*(attempt+1))) * time.Millisecond):
		}
	}
}

type plannedWrite struct {
	entry     *quotaEntry
	quota     *corev1.ResourceQuota
	requested corev1.ResourceList
}

// plan checks the request against every quota that covers it and returns
// the quotas with their new usage.
func (q *ResourceQuota) plan(ctx context.Context, a *Attributes, gr schema.GroupResource, quotas []quotaEntry, charged map[string]corev1.ResourceList) ([]plannedWrite, error) {
	var covering []*quotaEntry
	for i := range quotas {
		e := &quotas[i]
		ok, err := quotaMatches(&e.quota, gr, a.Object)
		if err != nil {
			return nil, fmt.Errorf("error matching scopes of quota %s, err: %v", e.quota.Name, err)
		}
		if !ok {
			continue
		}
		if pod, isPod := a.Object.(*corev1.Pod); isPod {
			limited := quotaNamesFor(gr, sortedNames(e.quota.Spec.Hard))
			if err := podQuotaConstraints(pod, limited); err != nil {
				return nil, forbidden(a, fmt.Errorf("failed quota: %s: %v", e.quota.Name, err))
			}
		}
		covering = append(covering, e)
	}
	if len(covering) == 0 {
		return nil, nil
	}
	now := q.now()
	usage := quotaUsage(gr, a.Object, now)
	if neg := negativeUsage(usage); len(neg) > 0 {
		return nil, forbidden(a, fmt.Errorf("quota usage is negative for resource(s): %s", joinNames(neg)))
	}
	// An update is charged what it adds, for the quotas that already
	// counted the old version.
	var prev corev1.ResourceList
	if a.Operation == Update && a.OldObject != nil {
		if m, err := meta.Accessor(a.OldObject); err == nil && m.GetResourceVersion() != "" {
			prev = quotaUsage(gr, a.OldObject, now)
		}
	}
	var writes []plannedWrite
	for _, e := range covering {
		if _, done := charged[quotaID(&e.quota)]; done {
			continue
		}
		delta := usage
		if prev != nil {
			if ok, _ := inScopes(quotaScopes(&e.quota), a.OldObject); ok {
				delta = subtractFloor(usage, prev)
			}
		}
		hard := e.quota.Spec.Hard
		hardNames := sortedNames(hard)
		requested := withoutZeros(maskUsage(delta, hardNames))
		if len(requested) == 0 {
			continue
		}
		used := e.quota.Status.Used
		if !hasUsageFor(&e.quota, quotaNamesFor(gr, hardNames)) {
			var err error
			if used, err = q.recount(ctx, a.Cluster, a.Namespace, &e.quota); err != nil {
				return nil, err
			}
		}
		newUsed := addUsage(used, requested)
		// Status writes (a claim's allocation) record what already
		// happened: they are charged, never refused.
		if a.Subresource != "status" {
			if over := exceeding(maskUsage(newUsed, sortedNames(requested)), hard); len(over) > 0 {
				return nil, forbidden(a, fmt.Errorf("exceeded quota: %s, requested: %s, used: %s, limited: %s",
					e.quota.Name, prettyUsage(maskUsage(requested, over)), prettyUsage(maskUsage(used, over)),
					prettyUsage(maskUsage(hard, over))))
			}
		}
		nq := e.quota.DeepCopy()
		nq.Status.Hard = hard.DeepCopy()
		nq.Status.Used = newUsed
		writes = append(writes, plannedWrite{entry: e, quota: nq, requested: requested})
	}
	return writes, nil
}

// hasUsageFor tells whether the quota's status has usage for each of its
// limits among names.
func hasUsageFor(q *corev1.ResourceQuota, names []corev1.ResourceName) bool {
	for _, n := range names {
		if _, ok := q.Status.Used[n]; !ok {
			return false
		}
	}
	return true
}

// giveBack removes a refused request's charges from the quotas it was
// already written to. Best effort: a failure leaves the quota over-counted
// until the next Recalculate, which is the safe side.
func (q *ResourceQuota) giveBack(ctx context.Context, cluster, namespace string, charged map[string]corev1.ResourceList) {
	for attempt := 0; len(charged) > 0 && attempt < quotaAttempts; attempt++ {
		quotas, err := q.quotas(ctx, cluster, namespace)
		if err != nil {
			return
		}
		for i := range quotas {
			e := &quotas[i]
			amount, ok := charged[quotaID(&e.quota)]
			if !ok {
				continue
			}
			nq := e.quota.DeepCopy()
			nq.Status.Used = subtractFloor(e.quota.Status.Used, amount)
			if _, err := q.store.Write(ctx, cluster, quotaWrite(e, nq)); err == nil || errors.Is(err, storage.ErrNotFound) {
				delete(charged, quotaID(&e.quota))
			}
		}
	}
}

// Recalculate recounts the usage of every quota in the namespace from the
// objects stored there, as upstream's quota controller does, and writes it
// where it changed. Call it after deletions and when pods finish, since
// admission only ever adds usage. Writes this process admitted moments ago
// and has not stored yet are counted too; a create admitted by another
// process in that instant can be missed until the next recount.
func (q *ResourceQuota) Recalculate(ctx context.Context, cluster, namespace string) error {
	defer q.locks.lock(nsKey{cluster, namespace})()
	for attempt := 0; ; attempt++ {
		quotas, err := q.quotas(ctx, cluster, namespace)
		if err != nil {
			return err
		}
		retry := false
		for i := range quotas {
			e := &quotas[i]
			used, err := q.recount(ctx, cluster, namespace, &e.quota)
			if err != nil {
				return err
			}
			if usageEqual(used, e.quota.Status.Used) && usageEqual(e.quota.Spec.Hard, e.quota.Status.Hard) {
				continue
			}
			nq := e.quota.DeepCopy()
			nq.Status.Hard = e.quota.Spec.Hard.DeepCopy()
			nq.Status.Used = used
			_, err = q.store.Write(ctx, cluster, quotaWrite(e, nq))
			if errors.Is(err, storage.ErrConflict) {
				retry = true
				continue
			}
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
		}
		if !retry {
			return nil
		}
		if attempt+1 >= quotaAttempts {
			return errors.New("recalculate quota usage: too many conflicting writes")
		}
	}
}

// recount computes a quota's usage from the stored objects, plus the
// pending charges storage does not show yet.
func (q *ResourceQuota) recount(ctx context.Context, cluster, namespace string, rq *corev1.ResourceQuota) (corev1.ResourceList, error) {
	used := corev1.ResourceList{}
	byResource := map[schema.GroupResource][]corev1.ResourceName{}
	for _, n := range sortedNames(rq.Spec.Hard) {
		used[n] = resource.Quantity{Format: resource.DecimalSI}
		switch {
		case quotaNameConcerns(podsGR, n):
			byResource[podsGR] = append(byResource[podsGR], n)
		case quotaNameConcerns(servicesGR, n):
			byResource[servicesGR] = append(byResource[servicesGR], n)
		case quotaNameConcerns(claimsGR, n):
			byResource[claimsGR] = append(byResource[claimsGR], n)
		default:
			if gr, ok := countedResource(n); ok && !quotaIgnored[gr] {
				byResource[gr] = append(byResource[gr], n)
			}
		}
	}
	scopes := quotaScopes(rq)
	now := q.now()
	pending := q.pendingIn(cluster, namespace, now)
	for gr, names := range byResource {
		res, err := q.store.List(ctx, cluster, storage.ListOptions{Resource: gr.Group + "/" + gr.Resource, Namespace: namespace})
		if err != nil {
			return nil, fmt.Errorf("count %s for quota %s: %w", gr, rq.Name, err)
		}
		perObject := make(map[string]corev1.ResourceList, len(res.Items))
		usageOf := func(obj runtime.Object) corev1.ResourceList {
			if ok, _ := inScopes(scopes, obj); !ok {
				return corev1.ResourceList{}
			}
			return maskUsage(quotaUsage(gr, obj, now), names)
		}
		for _, o := range res.Items {
			obj, err := decodeCounted(gr, o.Data)
			if err != nil {
				return nil, fmt.Errorf("count %s for quota %s: %w", o.Key, rq.Name, err)
			}
			perObject[o.Name] = usageOf(obj)
		}
		for _, p := range pending {
			if p.gr != gr {
				continue
			}
			u := usageOf(p.obj)
			if cur, ok := perObject[p.name]; ok {
				maxResources(u, cur)
			}
			perObject[p.name] = u
		}
		for _, u := range perObject {
			addResources(used, u)
		}
	}
	return used, nil
}

// decodeCounted decodes what a recount needs to know of a stored object:
// everything for the kinds measured by content, nothing for the rest.
func decodeCounted(gr schema.GroupResource, data []byte) (runtime.Object, error) {
	var obj runtime.Object
	switch gr {
	case podsGR:
		obj = &corev1.Pod{}
	case servicesGR:
		obj = &corev1.Service{}
	case claimsGR:
		obj = &corev1.PersistentVolumeClaim{}
	default:
		return &corev1.List{}, nil // counted, never read
	}
	return obj, json.Unmarshal(data, obj)
}

// remember notes an admitted charge until it has surely reached storage.
func (q *ResourceQuota) remember(a *Attributes, gr schema.GroupResource) {
	name := a.Name
	if m, err := meta.Accessor(a.Object); err == nil && m.GetName() != "" {
		name = m.GetName()
	}
	now := q.now()
	k := nsKey{a.Cluster, a.Namespace}
	// Copied now: the REST layer goes on using the object once admitted.
	c := pendingCharge{gr: gr, name: name, obj: a.Object.DeepCopyObject(), at: now}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending[k] = append(prunePending(q.pending[k], now), c)
}

func (q *ResourceQuota) pendingIn(cluster, namespace string, now time.Time) []pendingCharge {
	k := nsKey{cluster, namespace}
	q.mu.Lock()
	defer q.mu.Unlock()
	list := prunePending(q.pending[k], now)
	if len(list) == 0 {
		delete(q.pending, k)
		return nil
	}
	q.pending[k] = list
	return append([]pendingCharge(nil), list...)
}

func prunePending(list []pendingCharge, now time.Time) []pendingCharge {
	i := 0
	for i < len(list) && now.Sub(list[i].at) > pendingTTL {
		i++
	}
	return list[i:]
}

// quotas reads the namespace's quotas from storage.
func (q *ResourceQuota) quotas(ctx context.Context, cluster, namespace string) ([]quotaEntry, error) {
	return q.readQuotas(ctx, q.store, cluster, namespace)
}

func (q *ResourceQuota) readQuotas(ctx context.Context, l Lister, cluster, namespace string) ([]quotaEntry, error) {
	res, err := l.List(ctx, cluster, storage.ListOptions{Resource: resourceQuotasKey, Namespace: namespace})
	if err != nil {
		return nil, err
	}
	out := make([]quotaEntry, len(res.Items))
	for i, o := range res.Items {
		if err := json.Unmarshal(o.Data, &out[i].quota); err != nil {
			return nil, fmt.Errorf("decode %s: %w", o.Key, err)
		}
		out[i].stored = o
	}
	return out, nil
}

// quotaWrite is the storage write of a quota's new status, conditioned on
// the version it was computed from.
func quotaWrite(e *quotaEntry, nq *corev1.ResourceQuota) storage.Write {
	return storage.Write{
		Op: storage.Update, Key: e.stored.Key, ExpectRV: e.stored.RV,
		Labels: e.stored.Labels, Fields: e.stored.Fields,
		Encode: encodeWithRV(nq),
	}
}

// encodeWithRV returns an Encode function storing the quota in the form
// the REST layer stores it: typed JSON whose metadata.resourceVersion is
// the version being written. The JSON is built before the storage batch
// runs; the batch only splices the number in.
func encodeWithRV(nq *corev1.ResourceQuota) func(int64) ([]byte, error) {
	const marker = "$rv$"
	obj := nq.DeepCopy()
	obj.APIVersion, obj.Kind = "v1", "ResourceQuota"
	obj.ResourceVersion = marker
	data, err := json.Marshal(obj)
	field := []byte(`"resourceVersion":"` + marker + `"`)
	at := bytes.Index(data, field)
	if err == nil && at < 0 {
		err = errors.New("encode ResourceQuota: no resourceVersion field")
	}
	return func(rv int64) ([]byte, error) {
		if err != nil {
			return nil, err
		}
		prefix := at + len(`"resourceVersion":"`)
		out := make([]byte, 0, len(data)+20)
		out = append(out, data[:prefix]...)
		out = strconv.AppendInt(out, rv, 10)
		return append(out, data[prefix+len(marker):]...), nil
	}
}

// namespaceLocks makes this process's quota rounds in one namespace take
// turns: without it, concurrent creates would mostly fail their
// conditioned writes and retry. Entries live only while in use.
type namespaceLocks struct {
	mu sync.Mutex
	m  map[nsKey]*namespaceLock
}

type namespaceLock struct {
	sync.Mutex
	users int
}

func (l *namespaceLocks) lock(k nsKey) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[nsKey]*namespaceLock{}
	}
	nl := l.m[k]
	if nl == nil {
		nl = &namespaceLock{}
		l.m[k] = nl
	}
	nl.users++
	l.mu.Unlock()
	nl.Lock()
	return func() {
		nl.Unlock()
		l.mu.Lock()
		if nl.users--; nl.users == 0 {
			delete(l.m, k)
		}
		l.mu.Unlock()
	}
}
