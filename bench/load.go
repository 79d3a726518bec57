package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const namespace = "bench"

// opStats describes one phase of concurrent single-object requests.
type opStats struct {
	ok       int
	wall     time.Duration
	lat      []time.Duration // of successful requests, sorted
	errs     int
	firstErr error
}

func (s opStats) rate() float64 {
	if s.wall <= 0 {
		return 0
	}
	return float64(s.ok) / s.wall.Seconds()
}

// pct is the nearest-rank percentile p (0 < p ≤ 1).
func (s opStats) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	i := int(float64(len(s.lat))*p+0.999999) - 1
	return s.lat[min(max(i, 0), len(s.lat)-1)]
}

// round is one round of concurrent requests: of the watch section, updates
// to every watch object; of the RBAC section, gets.
type round struct {
	ops    opStats
	apiCPU float64 // the API server's CPU seconds during the requests
}

// listStats describes repeated list requests, each run timed whole (all
// pages for a paginated list).
type listStats struct {
	runs     []time.Duration
	pages    int // per run
	errs     int
	firstErr error
}

func (l listStats) median() time.Duration {
	if len(l.runs) == 0 {
		return 0
	}
	s := slices.Clone(l.runs)
	slices.Sort(s)
	return s[len(s)/2]
}

type results struct {
	create, get, update opStats
	list, paged         listStats
	// listRaw times the same full list up to the last byte of the response,
	// without client-go decoding it: the server's share of a list.
	listRaw listStats
	// listProto is the full list in protobuf, as Kubernetes' own
	// components (controller manager, scheduler, kubelet) ask for it.
	listProto listStats
}

func (r results) failed() int {
	return r.create.errs + r.get.errs + r.update.errs + r.list.errs + r.listRaw.errs + r.paged.errs + r.listProto.errs
}

// runLoad runs the phases in order: create, get, update, full list,
// paginated list. Request errors are counted, not fatal, so that one bad
// request does not hide every other figure; cancellation is fatal.
func runLoad(ctx context.Context, c config, api *apiServer) (results, error) {
	var res results
	cs, err := newClientset(api.url, api.admin, c.workers)
	if err != nil {
		return res, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return res, fmt.Errorf("creating namespace %s: %w", namespace, err)
	}
	// One request per worker first, so that connection set-up is not
	// charged to the first creates; newClientset keeps an idle connection
	// for every worker.
	warm := parallel(ctx, c.workers, c.workers, func(ctx context.Context, _ int) error {
		_, err := cs.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
		return err
	})
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if warm.errs > 0 {
		return res, fmt.Errorf("warming up: %w", warm.firstErr)
	}

	cms := cs.CoreV1().ConfigMaps(namespace)
	step(fmt.Sprintf("creating %d ConfigMaps", c.objects))
	res.create = parallel(ctx, c.workers, c.objects, func(ctx context.Context, i int) error {
		_, err := cms.Create(ctx, newConfigMap(i, c.dataBytes), metav1.CreateOptions{})
		return err
	})
	if err := ctx.Err(); err != nil {
		return res, err
	}

	// parallel gives index i to the same worker in every phase, so each
	// worker updates exactly the objects it read, as a controller would.
	read := make([]*corev1.ConfigMap, c.objects)
	step("getting them")
	res.get = parallel(ctx, c.workers, c.objects, func(ctx context.Context, i int) error {
		cm, err := cms.Get(ctx, name(i), metav1.GetOptions{})
		read[i] = cm
		return err
	})
	if err := ctx.Err(); err != nil {
		return res, err
	}

	step("updating them")
	res.update = parallel(ctx, c.workers, c.objects, func(ctx context.Context, i int) error {
		cm := read[i]
		if cm == nil {
			return fmt.Errorf("%s was not read", name(i))
		}
		// A real change: a server may skip writing an unchanged object.
		d := []byte(cm.Data["data"])
		d[0] = 'U'
		cm.Data["data"] = string(d)
		_, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err := ctx.Err(); err != nil {
		return res, err
	}

	step(fmt.Sprintf("listing them (%d runs)", c.listRuns))
	for range c.listRuns {
		t := time.Now()
		l, err := cms.List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) != c.objects {
			err = fmt.Errorf("list returned %d of %d ConfigMaps", len(l.Items), c.objects)
		}
		res.list.record(time.Since(t), 1, err)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	step(fmt.Sprintf("listing them in protobuf (%d runs)", c.listRuns))
	pcs, err := newProtobufClientset(api.url, api.admin)
	if err != nil {
		return res, err
	}
	for range c.listRuns {
		t := time.Now()
		l, err := pcs.CoreV1().ConfigMaps(namespace).List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) != c.objects {
			err = fmt.Errorf("protobuf list returned %d of %d ConfigMaps", len(l.Items), c.objects)
		}
		res.listProto.record(time.Since(t), 1, err)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	step(fmt.Sprintf("listing them without decoding (%d runs)", c.listRuns))
	for range c.listRuns {
		t := time.Now()
		body, err := cs.CoreV1().RESTClient().Get().Namespace(namespace).Resource("configmaps").DoRaw(ctx)
		if err == nil && len(body) < c.objects*c.dataBytes {
			err = fmt.Errorf("raw list returned only %d bytes", len(body))
		}
		res.listRaw.record(time.Since(t), 1, err)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	step(fmt.Sprintf("listing them %d at a time (%d runs)", c.pageSize, c.listRuns))
	for range c.listRuns {
		t := time.Now()
		pages, n, err := listPaged(ctx, cs, c.pageSize)
		if err == nil && n != c.objects {
			err = fmt.Errorf("paginated list returned %d of %d ConfigMaps", n, c.objects)
		}
		res.paged.record(time.Since(t), pages, err)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

func (l *listStats) record(d time.Duration, pages int, err error) {
	if err != nil {
		l.errs++
		if l.firstErr == nil {
			l.firstErr = err
		}
		return
	}
	l.runs = append(l.runs, d)
	l.pages = pages
}

// listPaged lists all ConfigMaps following continue tokens, the way
// informers' initial lists and kubectl do.
func listPaged(ctx context.Context, cs kubernetes.Interface, limit int64) (pages, items int, err error) {
	opts := metav1.ListOptions{Limit: limit}
	for {
		l, err := cs.CoreV1().ConfigMaps(namespace).List(ctx, opts)
		if err != nil {
			return pages, items, fmt.Errorf("page %d: %w", pages+1, err)
		}
		pages++
		items += len(l.Items)
		if l.Continue == "" {
			return pages, items, nil
		}
		opts.Continue = l.Continue
	}
}

// parallel runs op for i in [0, n) on the given number of workers and
// times each call. Worker w takes i = w, w+workers, …: a static split,
// so that phases can hand objects from one to the next without locks.
func parallel(ctx context.Context, workers, n int, op func(ctx context.Context, i int) error) opStats {
	per := make([]opStats, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			ws := &per[w]
			ws.lat = make([]time.Duration, 0, n/workers+1)
			for i := w; i < n && ctx.Err() == nil; i += workers {
				t := time.Now()
				if err := op(ctx, i); err != nil {
					ws.errs++
					if ws.firstErr == nil {
						ws.firstErr = fmt.Errorf("item %d: %w", i, err)
					}
					continue
				}
				ws.lat = append(ws.lat, time.Since(t))
			}
		})
	}
	wg.Wait()
	return merged(per, time.Since(start))
}

// merged combines the workers' statistics of one phase.
func merged(per []opStats, wall time.Duration) opStats {
	s := opStats{wall: wall}
	for _, ws := range per {
		s.lat = append(s.lat, ws.lat...)
		s.errs += ws.errs
		if s.firstErr == nil {
			s.firstErr = ws.firstErr
		}
	}
	s.ok = len(s.lat)
	slices.Sort(s.lat)
	return s
}

func name(i int) string { return fmt.Sprintf("cm-%05d", i) }

// newConfigMap makes ConfigMap i with size bytes of data. The letters are
// pseudo-random so that the stored size is not flattered by compression.
func newConfigMap(i, size int) *corev1.ConfigMap {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	r := rand.New(rand.NewPCG(uint64(i), 0x9e3779b97f4a7c15))
	d := make([]byte, max(size, 1))
	for j := range d {
		d[j] = letters[r.IntN(len(letters))]
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name(i), Namespace: namespace, Labels: map[string]string{"app": "pgkube-bench"}},
		Data:       map[string]string{"data": string(d)},
	}
}
