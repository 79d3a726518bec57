package main

// The tenants section: many logical clusters in one database. Its targets
// (the multi-tenancy issue's): with 2000 tenants of 50 objects each,
// creating a tenant takes ≤ 200 ms, an idle tenant costs the API server no
// goroutine and no memory beyond what it caches, and one tenant's get p99
// stays within 20% while another tenant floods the server.
//
// Tenants are LogicalCluster objects in the root cluster; the server
// provisions each (finalizer, counter row, credentials Secret, default
// namespaces and RBAC policy) and sets .status.phase to Ready. Its admin's
// certificate is in the root's Secret kube-system/tenant-NAME, and its API
// is at /clusters/NAME. A tenant's first request starts its in-memory state
// (RBAC, admission and CRD feeds); the server stops them after 5 minutes
// without requests, on a check that runs every minute.
//
// Phases:
//
//  1. creation: a few tenants one at a time on a server without tenants,
//     then the rest -tenant-workers at a time (the server provisions one
//     at a time, so these queue), each timed from the create call to a
//     watch of the LogicalClusters seeing it Ready;
//  2. filling: as each tenant's admin, a first request (timed: it starts
//     the tenant's feeds) and -tenant-objects ConfigMap creates;
//  3. cost: goroutines, RSS and Go heap of the API server before any
//     tenant and with every tenant active (each touched again just before),
//     once garbage collection has settled; then tenants created one at a
//     time into the full database;
//  4. fairness: a quiet tenant's gets, paced below its rate limit, alone
//     and while another tenant floods with -tenant-flood-workers closed-loop
//     workers of gets and creates, client-go's retries off (each 429 is
//     counted, not retried), rounds alternating;
//  5. idle (with -tenant-idle-wait): waits for the idle tenants' feeds to
//     stop and measures again.
//
// The API server runs with its default per-tenant limits (200 requests/s,
// burst 400, 50 in flight), which is what keeps a flood from the others.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kwatch "k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

var logicalClustersGVR = schema.GroupVersionResource{Group: "tenancy.pgkube.io", Version: "v1alpha1", Resource: "logicalclusters"}

const (
	// tenantNamespace is where each tenant's ConfigMaps go: one of the
	// namespaces provisioning makes.
	tenantNamespace = "default"
	// tenantsAlone tenants are created one at a time, before the others
	// (at most half of them) and again into the full database: enough for
	// a p99 that is not simply the slowest one.
	tenantsAlone = 100
	// tenantReadyTimeout bounds the wait for one tenant to be Ready; with
	// many created at once they queue behind each other.
	tenantReadyTimeout = 2 * time.Minute
	// The server's default per-tenant rate limit (cmd/pgkube: --tenant-qps),
	// which bench leaves in place: the quiet tenant must stay under it.
	serverTenantQPS = 200
	// idleAfter and its check every minute (apiserver/tenancy.go): a
	// tenant's feeds stop 5 to 6 minutes after its last request.
	serverIdleAfter = 5 * time.Minute
	serverIdleCheck = time.Minute
	// goroutineSlack is how far above the baseline the goroutine count may
	// be for the tenants to count as having released theirs: the runtime,
	// PostgreSQL pool and HTTP server move it by a few.
	goroutineSlack = 10
	quietWorkers   = 4
)

type tenantsResults struct {
	count, objects int
	// create → Ready: one at a time on a server without tenants, many at
	// a time (wall is the whole phase), and one at a time after filling.
	alone, concurrent, late opStats
	aloneCPU, concCPU       cpuTimes // of the server processes, for CPU per tenant
	// first is each tenant's first request, which starts its feeds; objs
	// the ConfigMap creates as the tenants' admins (wall: the phase).
	first, objs opStats
	touch       opStats // one get per tenant, to make every tenant active

	base, active, idle serverState
	idleWaited         time.Duration // 0 if the idle phase did not run
	idleReturned       bool          // goroutines came back to the baseline

	quiet, flooded []round
	floods         []floodStats
	logWarnings    []string // the server's WARN and ERROR lines during the section
	logWarningsN   int
	profiles       []string // saved in the temp dir
}

func (r tenantsResults) failed() int {
	n := r.alone.errs + r.concurrent.errs + r.late.errs + r.first.errs + r.objs.errs + r.touch.errs
	for _, rounds := range [][]round{r.quiet, r.flooded} {
		for _, rd := range rounds {
			n += rd.ops.errs
		}
	}
	for _, f := range r.floods {
		n += f.errs
	}
	return n
}

// serverState is the API server's footprint, once garbage collection has
// settled.
type serverState struct {
	goroutines int
	rss, goMem int64 // goMem: heap spans and goroutine stacks in use
	// CPU use, in CPUs, over stateQuiet without requests: the API
	// server's and PostgreSQL's.
	cpu, pgCPU float64
}

// stateQuiet is how long state watches the server's CPU use without
// requests.
const stateQuiet = 10 * time.Second

// floodStats counts a noisy tenant's requests: served, refused with 429,
// and failed otherwise.
type floodStats struct {
	ok, throttled, errs int
	firstErr            error
	wall                time.Duration
}

type tenantsBench struct {
	c       config
	api     *apiServer
	mem     *sampler
	admin   *kubernetes.Clientset
	adminTr *http.Transport
	lcs     dynamic.ResourceInterface
	debug   *http.Client // pprof: goroutines, forced GC
	dir     string       // where profiles are saved
	creds   []credentials
	res     *tenantsResults
}

func tenantName(i int) string { return fmt.Sprintf("t-%05d", i) }

// runTenants runs the section's phases. Failed requests are counted in the
// results; setting-up errors and cancellation are returned.
func runTenants(ctx context.Context, c config, api *apiServer, mem *sampler, dir string) (tenantsResults, error) {
	res := tenantsResults{count: c.tenantCount, objects: c.tenantObjects}
	logStart := fileSize(api.logPath)
	defer func() { res.logWarnings, res.logWarningsN = warningsSince(api.logPath, logStart, maxFaults) }()

	admin, adminTr, err := api.adminClientset(c.tenantWorkers)
	if err != nil {
		return res, err
	}
	defer adminTr.CloseIdleConnections()
	// No client timeout: it would end the readiness watch.
	dyn, err := dynamic.NewForConfig(restConfig(api.url, adminTr, 0))
	if err != nil {
		return res, fmt.Errorf("creating dynamic client: %w", err)
	}
	debugTr, err := api.admin.transport(1)
	if err != nil {
		return res, fmt.Errorf("creating the profiles' client: %w", err)
	}
	defer debugTr.CloseIdleConnections()
	b := &tenantsBench{c: c, api: api, mem: mem, admin: admin, adminTr: adminTr, lcs: dyn.Resource(logicalClustersGVR),
		debug: &http.Client{Transport: debugTr, Timeout: time.Minute}, dir: dir, creds: make([]credentials, c.tenantCount), res: &res}

	step("tenants: API server footprint before any tenant")
	if res.base, err = b.state(ctx, "base"); err != nil {
		return res, err
	}

	rw, err := startReadyWatch(ctx, b.lcs)
	if err != nil {
		return res, err
	}
	alone := min(tenantsAlone, c.tenantCount/2)
	step(fmt.Sprintf("tenants: creating %d tenants one at a time", alone))
	before := readCPU(api.pid(), mem)
	res.alone = b.createTenants(ctx, rw, 1, 0, alone, tenantName)
	res.aloneCPU = readCPU(api.pid(), mem).sub(before)
	if err := ctx.Err(); err != nil {
		rw.stop()
		return res, err
	}
	step(fmt.Sprintf("tenants: creating %d tenants %d at a time", c.tenantCount-alone, c.tenantWorkers))
	before = readCPU(api.pid(), mem)
	res.concurrent = b.createTenants(ctx, rw, c.tenantWorkers, alone, c.tenantCount, tenantName)
	res.concCPU = readCPU(api.pid(), mem).sub(before)
	rw.stop()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if res.alone.errs+res.concurrent.errs > 0 {
		return res, fmt.Errorf("creating tenants: %d failed; first: %v", res.alone.errs+res.concurrent.errs,
			errors.Join(res.alone.firstErr, res.concurrent.firstErr))
	}

	step(fmt.Sprintf("tenants: creating %d ConfigMaps in each of %d tenants as its admin, %d tenants at a time",
		c.tenantObjects, c.tenantCount, c.tenantWorkers))
	if err := b.fill(ctx); err != nil {
		return res, err
	}

	step(fmt.Sprintf("tenants: touching all %d tenants, then the API server footprint with them active", c.tenantCount))
	res.touch = b.touchAll(ctx)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if res.active, err = b.state(ctx, "active"); err != nil {
		return res, err
	}

	step(fmt.Sprintf("tenants: creating %d more tenants one at a time, into %d tenants × %d objects",
		tenantsAlone, c.tenantCount, c.tenantObjects))
	if rw, err = startReadyWatch(ctx, b.lcs); err != nil {
		return res, err
	}
	res.late = b.createTenants(ctx, rw, 1, 0, tenantsAlone, func(i int) string { return fmt.Sprintf("late-%05d", i) })
	rw.stop()
	if err := ctx.Err(); err != nil {
		return res, err
	}

	if err := b.fairness(ctx); err != nil {
		return res, err
	}

	if c.tenantIdleWait > 0 {
		if err := b.awaitIdle(ctx); err != nil {
			return res, err
		}
	}
	return res, nil
}

// restConfig is clientsetFor's configuration; timeout 0 is none.
func restConfig(url string, tr http.RoundTripper, timeout time.Duration) *rest.Config {
	return &rest.Config{
		Host: url, UserAgent: "pgkube-bench", Transport: tr,
		QPS: 100000, Burst: 100000, Timeout: timeout,
		ContentConfig: rest.ContentConfig{ContentType: "application/json", AcceptContentTypes: "application/json"},
	}
}

// createTenants creates the tenants named by name(i) for i in [from, to)
// on the given number of workers and times each from its create call to
// the watch seeing it Ready.
func (b *tenantsBench) createTenants(ctx context.Context, rw *readyWatch, workers, from, to int, name func(int) string) opStats {
	n := to - from
	if n <= 0 {
		return opStats{}
	}
	var done atomic.Int64
	stopProgress := progress(fmt.Sprintf("tenants: %%d of %d created", n), &done)
	defer stopProgress()
	return parallel(ctx, workers, n, func(ctx context.Context, i int) error {
		nm := name(from + i)
		ready := rw.expect(nm)
		lc := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "tenancy.pgkube.io/v1alpha1", "kind": "LogicalCluster",
			"metadata": map[string]any{"name": nm}}}
		if _, err := b.lcs.Create(ctx, lc, metav1.CreateOptions{}); err != nil {
			rw.forget(nm)
			return err
		}
		timer := time.NewTimer(tenantReadyTimeout)
		defer timer.Stop()
		select {
		case <-ready:
			done.Add(1)
			return nil
		case <-timer.C:
			rw.forget(nm)
			return fmt.Errorf("tenant %s not Ready %v after its creation", nm, tenantReadyTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// fill reads each tenant's credentials and, as its admin, makes a first
// request and creates its ConfigMaps, on c.tenantWorkers workers, a tenant
// at a time each.
func (b *tenantsBench) fill(ctx context.Context) error {
	c := b.c
	firsts := make([]opStats, c.tenantWorkers)
	objs := make([]opStats, c.tenantWorkers)
	setUp := make([]error, c.tenantWorkers)
	var done atomic.Int64
	stopProgress := progress(fmt.Sprintf("tenants: %%d of %d filled", c.tenantCount), &done)
	defer stopProgress()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range c.tenantWorkers {
		wg.Go(func() {
			for i := w; i < c.tenantCount && ctx.Err() == nil; i += c.tenantWorkers {
				if err := b.fillOne(ctx, i, &firsts[w], &objs[w]); err != nil {
					if setUp[w] == nil {
						setUp[w] = err
					}
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	b.res.first, b.res.objs = merged(firsts, wall), merged(objs, wall)
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := errors.Join(setUp...); err != nil {
		return fmt.Errorf("setting up tenants' clients: %w", err)
	}
	return nil
}

func (b *tenantsBench) fillOne(ctx context.Context, i int, first, objs *opStats) error {
	name := tenantName(i)
	sec, err := b.admin.CoreV1().Secrets("kube-system").Get(ctx, "tenant-"+name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading %s's credentials: %w", name, err)
	}
	if len(sec.Data["admin.crt"]) == 0 || len(sec.Data["admin.key"]) == 0 {
		return fmt.Errorf("secret kube-system/tenant-%s lacks admin.crt or admin.key", name)
	}
	b.creds[i] = credentials{caPEM: b.api.admin.caPEM, certPEM: sec.Data["admin.crt"], keyPEM: sec.Data["admin.key"]}
	cs, tr, err := b.tenantClient(ctx, i, 1)
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	record := func(s *opStats, d time.Duration, err error) {
		if err != nil {
			s.errs++
			if s.firstErr == nil {
				s.firstErr = fmt.Errorf("tenant %s: %w", name, err)
			}
			return
		}
		s.lat = append(s.lat, d)
	}
	t := time.Now()
	_, err = cs.CoreV1().Namespaces().Get(ctx, tenantNamespace, metav1.GetOptions{})
	record(first, time.Since(t), err)
	cms := cs.CoreV1().ConfigMaps(tenantNamespace)
	for j := range b.c.tenantObjects {
		cm := newConfigMap(j, b.c.dataBytes)
		cm.Namespace = tenantNamespace
		t := time.Now()
		_, err := cms.Create(ctx, cm, metav1.CreateOptions{})
		record(objs, time.Since(t), err)
	}
	return nil
}

// tenantClient returns a client of tenant i as its admin, its connection
// already open: the TLS handshake, against the root's /healthz, is then
// not charged to the first request.
func (b *tenantsBench) tenantClient(ctx context.Context, i, conns int) (*kubernetes.Clientset, *http.Transport, error) {
	tr, err := b.creds[i].transport(conns)
	if err != nil {
		return nil, nil, fmt.Errorf("tenant %s's client: %w", tenantName(i), err)
	}
	cs, err := clientsetFor(b.api.url+"/clusters/"+tenantName(i), tr)
	if err != nil {
		return nil, nil, err
	}
	// The answer does not matter (the tenant's certificate is not the
	// root's), only the connection.
	if req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.api.url+"/healthz", nil); err == nil {
		if resp, err := (&http.Client{Transport: tr, Timeout: time.Minute}).Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	return cs, tr, nil
}

// touchAll gets one ConfigMap of every tenant, so that all are active.
func (b *tenantsBench) touchAll(ctx context.Context) opStats {
	return parallel(ctx, b.c.tenantWorkers, b.c.tenantCount, func(ctx context.Context, i int) error {
		cs, tr, err := b.tenantClient(ctx, i, 1)
		if err != nil {
			return err
		}
		defer tr.CloseIdleConnections()
		_, err = cs.CoreV1().ConfigMaps(tenantNamespace).Get(ctx, name(0), metav1.GetOptions{})
		return err
	})
}

// fairness times the quiet tenant's paced gets alone and while the noisy
// tenant floods, in alternating rounds.
func (b *tenantsBench) fairness(ctx context.Context) error {
	c := b.c
	const quietIdx, noisyIdx = 0, 1
	quiet, quietTr, err := b.tenantClient(ctx, quietIdx, quietWorkers)
	if err != nil {
		return err
	}
	defer quietTr.CloseIdleConnections()
	// A connection per quiet worker.
	warm := b.quietRound(ctx, quiet, quietWorkers*4)
	if err := ctx.Err(); err != nil {
		return err
	}
	if warm.errs > 0 {
		return fmt.Errorf("warming up the quiet tenant's client: %w", warm.firstErr)
	}

	step(fmt.Sprintf("tenants: %d rounds of %d gets by %s (%d workers, %d/s) alone and while %s floods (%d workers)",
		c.tenantRounds, c.tenantGets, tenantName(quietIdx), quietWorkers, c.tenantQuietQPS, tenantName(noisyIdx), c.tenantFloodWorkers))
	var seq int64
	for r := range c.tenantRounds {
		order := []bool{false, true}
		if r%2 == 1 {
			order = []bool{true, false}
		}
		for _, flood := range order {
			var fs floodStats
			var fp *floodProcess
			if flood {
				var err error
				fp, err = startFlood(floodOrder{URL: b.api.url + "/clusters/" + tenantName(noisyIdx), Creds: b.creds[noisyIdx],
					Workers: c.tenantFloodWorkers, Objects: c.tenantObjects, DataBytes: c.dataBytes, SeqStart: seq})
				if err != nil {
					return err
				}
				// The flood gets going before the quiet tenant's gets.
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			cpu := procCPU(b.api.pid(), false)
			q := b.quietRound(ctx, quiet, c.tenantGets)
			rd := round{ops: q, apiCPU: procCPU(b.api.pid(), false) - cpu}
			if fp != nil {
				var err error
				if fs, seq, err = fp.stop(); err != nil {
					return err
				}
			}
			if flood {
				b.res.flooded = append(b.res.flooded, rd)
				b.res.floods = append(b.res.floods, fs)
			} else {
				b.res.quiet = append(b.res.quiet, rd)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// quietRound gets one ConfigMap n times on quietWorkers workers, paced
// together at c.tenantQuietQPS (open loop: a late get does not delay the
// schedule), without retries, so that a 429 would be counted as a failure.
func (b *tenantsBench) quietRound(ctx context.Context, cs *kubernetes.Clientset, n int) opStats {
	interval := time.Second / time.Duration(b.c.tenantQuietQPS)
	per := make([]opStats, quietWorkers)
	start := time.Now().Add(5 * time.Millisecond)
	var wg sync.WaitGroup
	for w := range quietWorkers {
		wg.Go(func() {
			ws := &per[w]
			ws.lat = make([]time.Duration, 0, n/quietWorkers+1)
			for i := w; i < n && ctx.Err() == nil; i += quietWorkers {
				if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d)
				}
				t := time.Now()
				var cm corev1.ConfigMap
				err := cs.CoreV1().RESTClient().Get().Namespace(tenantNamespace).Resource("configmaps").Name(name(0)).
					MaxRetries(0).Do(ctx).Into(&cm)
				if err != nil {
					ws.errs++
					if ws.firstErr == nil {
						ws.firstErr = fmt.Errorf("get %d: %w", i, err)
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

// flood runs closed-loop gets and creates, alternating, on
// c.tenantFloodWorkers workers until stop is closed; a 429 is counted and
// the worker goes straight on, as a misbehaving client would.
func flood(ctx context.Context, cs *kubernetes.Clientset, workers, objects, dataBytes int, seq *atomic.Int64, stop <-chan struct{}) floodStats {
	per := make([]floodStats, workers)
	rc := cs.CoreV1().RESTClient()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			fs := &per[w]
			for ctx.Err() == nil {
				select {
				case <-stop:
					return
				default:
				}
				i := int(seq.Add(1))
				var err error
				if i%2 == 0 {
					err = rc.Get().Namespace(tenantNamespace).Resource("configmaps").Name(name(i % objects)).
						MaxRetries(0).Do(ctx).Error()
				} else {
					cm := newConfigMap(i, dataBytes)
					cm.Namespace, cm.Name = tenantNamespace, fmt.Sprintf("flood-%07d", i)
					err = rc.Post().Namespace(tenantNamespace).Resource("configmaps").Body(cm).MaxRetries(0).Do(ctx).Error()
				}
				switch {
				case err == nil:
					fs.ok++
				case apierrors.IsTooManyRequests(err):
					fs.throttled++
				case ctx.Err() != nil:
				default:
					fs.errs++
					if fs.firstErr == nil {
						fs.firstErr = err
					}
				}
			}
		})
	}
	wg.Wait()
	s := floodStats{wall: time.Since(start)}
	for _, fs := range per {
		s.ok += fs.ok
		s.throttled += fs.throttled
		s.errs += fs.errs
		if s.firstErr == nil {
			s.firstErr = fs.firstErr
		}
	}
	return s
}

// awaitIdle waits, up to c.tenantIdleWait, for the goroutine count to come
// back to the baseline, and measures the footprint then.
func (b *tenantsBench) awaitIdle(ctx context.Context) error {
	step(fmt.Sprintf("tenants: waiting up to %v for idle tenants' feeds to stop (after %v without requests, checked every %v)",
		b.c.tenantIdleWait, serverIdleAfter, serverIdleCheck))
	b.adminTr.CloseIdleConnections()
	start := time.Now()
	deadline := start.Add(b.c.tenantIdleWait)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(15 * time.Second):
		}
		n, err := b.goroutines(ctx)
		if err != nil {
			return err
		}
		if n <= b.res.base.goroutines+goroutineSlack || time.Now().After(deadline) {
			b.res.idleReturned = n <= b.res.base.goroutines+goroutineSlack
			break
		}
	}
	b.res.idleWaited = time.Since(start)
	var err error
	b.res.idle, err = b.state(ctx, "idle")
	return err
}

// state measures the API server's footprint once its garbage collection has
// settled, without bench's connections (each holds a server goroutine), and
// its CPU use without requests. It saves the server's heap and goroutine
// profiles as tenants-heap-LABEL.pb.gz and tenants-goroutines-LABEL.txt.
func (b *tenantsBench) state(ctx context.Context, label string) (serverState, error) {
	var s serverState
	b.adminTr.CloseIdleConnections()
	before := readCPU(b.api.pid(), b.mem)
	select {
	case <-ctx.Done():
		return s, ctx.Err()
	case <-time.After(stateQuiet):
	}
	quiet := readCPU(b.api.pid(), b.mem).sub(before)
	s.cpu, s.pgCPU = quiet.api/quiet.wall.Seconds(), quiet.postgres/quiet.wall.Seconds()
	var err error
	wb := &watchBench{api: b.api, streams: b.debug}
	if s.rss, s.goMem, err = wb.settledMemory(ctx); err != nil {
		return s, err
	}
	if s.goroutines, err = b.goroutines(ctx); err != nil {
		return s, err
	}
	b.saveProfile(ctx, "/debug/pprof/heap", "tenants-heap-"+label+".pb.gz")
	b.saveProfile(ctx, "/debug/pprof/goroutine?debug=1", "tenants-goroutines-"+label+".txt")
	return s, nil
}

// saveProfile saves one of the server's profiles for inspection (-keep);
// failing to is not worth stopping the section for.
func (b *tenantsBench) saveProfile(ctx context.Context, path, file string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.api.url+path, nil)
	if err != nil {
		return
	}
	resp, err := b.debug.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return
	}
	if err := os.WriteFile(filepath.Join(b.dir, file), data, 0o644); err == nil {
		b.res.profiles = append(b.res.profiles, file)
	}
}

// goroutines reads the API server's goroutine count from its profile's
// first line, "goroutine profile: total N".
func (b *tenantsBench) goroutines(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.api.url+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0, fmt.Errorf("building goroutine profile request: %w", err)
	}
	resp, err := b.debug.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reading the API server's goroutine profile: %w", err)
	}
	defer resp.Body.Close()
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("reading the API server's goroutine profile: %s", resp.Status)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(first), "goroutine profile: total ")
	n, convErr := strconv.Atoi(v)
	if !ok || convErr != nil {
		return 0, fmt.Errorf("goroutine profile starts %q (%v)", first, err)
	}
	return n, nil
}

// progress prints format (with the count) every 15 s until stopped.
func progress(format string, n *atomic.Int64) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				step(fmt.Sprintf(format, n.Load()) + fmt.Sprintf(" after %.0f s", time.Since(start).Seconds()))
			}
		}
	}()
	return func() { close(quit); <-done }
}

// readyWatch follows the root's LogicalClusters and tells waiters when
// theirs is first seen Ready.
type readyWatch struct {
	mu      sync.Mutex
	waiters map[string]chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

func startReadyWatch(ctx context.Context, lcs dynamic.ResourceInterface) (*readyWatch, error) {
	ctx, cancel := context.WithCancel(ctx)
	rw := &readyWatch{waiters: map[string]chan struct{}{}, cancel: cancel, done: make(chan struct{})}
	rv, err := rw.list(ctx, lcs)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("listing LogicalClusters: %w", err)
	}
	go rw.run(ctx, lcs, rv)
	return rw, nil
}

// expect registers a waiter for name, before its create call.
func (rw *readyWatch) expect(name string) <-chan struct{} {
	ch := make(chan struct{})
	rw.mu.Lock()
	rw.waiters[name] = ch
	rw.mu.Unlock()
	return ch
}

func (rw *readyWatch) forget(name string) {
	rw.mu.Lock()
	delete(rw.waiters, name)
	rw.mu.Unlock()
}

func (rw *readyWatch) saw(u *unstructured.Unstructured) {
	if phase, _, _ := unstructured.NestedString(u.Object, "status", "phase"); phase != "Ready" {
		return
	}
	rw.mu.Lock()
	if ch, ok := rw.waiters[u.GetName()]; ok {
		close(ch)
		delete(rw.waiters, u.GetName())
	}
	rw.mu.Unlock()
}

func (rw *readyWatch) list(ctx context.Context, lcs dynamic.ResourceInterface) (string, error) {
	l, err := lcs.List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	for i := range l.Items {
		rw.saw(&l.Items[i])
	}
	return l.GetResourceVersion(), nil
}

// run watches from rv; when a stream ends it lists again, which catches
// what happened in between.
func (rw *readyWatch) run(ctx context.Context, lcs dynamic.ResourceInterface, rv string) {
	defer close(rw.done)
	for ctx.Err() == nil {
		w, err := lcs.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
		if err == nil {
			for ev := range w.ResultChan() {
				if ev.Type == kwatch.Error {
					break
				}
				if u, ok := ev.Object.(*unstructured.Unstructured); ok {
					rv = u.GetResourceVersion()
					if ev.Type != kwatch.Bookmark {
						rw.saw(u)
					}
				}
			}
			w.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		if next, err := rw.list(ctx, lcs); err == nil {
			rv = next
		}
	}
}

func (rw *readyWatch) stop() {
	rw.cancel()
	<-rw.done
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// warningsSince returns the first max WARN and ERROR lines of the server's
// log from offset on, and how many there were.
func warningsSince(path string, offset int64, max int) ([]string, int) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, 0
	}
	var first []string
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			n++
			if len(first) < max {
				first = append(first, line)
			}
		}
	}
	return first, n
}

func printTenantsReport(out io.Writer, c config, m machine, r tenantsResults, cpu cpuTimes) {
	fmt.Fprintf(out, "\ntenants: %d logical clusters with %d ConfigMaps of %d bytes each, in one database; tenants created and filled\n"+
		"%d at a time, each as its own admin (client certificate, client-go); the server's default per-tenant limits\n"+
		"(%d requests/s, burst 400, 50 in flight)\n", r.count, r.objects, c.dataBytes, c.tenantWorkers, serverTenantQPS)
	fmt.Fprintf(out, "machine: %d CPUs, %s; load average %s at start, %s at end\n\n", m.cpus, m.model, m.load, loadAvg())

	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "\tpgkube\ttarget\t")
	row := func(what, got, target, verdict string) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", what, got, target, verdict)
	}
	dist := func(s opStats) string {
		if s.ok == 0 {
			return failed
		}
		return fmt.Sprintf("%s / %s / %s", strings.TrimSuffix(ms(s.pct(0.5)), " ms"), strings.TrimSuffix(ms(s.pct(0.99)), " ms"),
			ms(s.lat[len(s.lat)-1]))
	}
	createOK := func(s opStats) string { return check(s.ok > 0 && s.errs == 0 && s.pct(0.99) <= targetTenantCreate) }
	row(fmt.Sprintf("tenant create → Ready, one at a time, first %d: p50 / p99 / max", r.alone.ok+r.alone.errs),
		dist(r.alone), "p99 ≤ 200 ms", createOK(r.alone))
	row(fmt.Sprintf("  one at a time into %d tenants × %d objects (%d more)", r.count, r.objects, r.late.ok+r.late.errs),
		dist(r.late), "p99 ≤ 200 ms", createOK(r.late))
	row(fmt.Sprintf("  %d at a time, the other %d: p50 / p99 / max", c.tenantWorkers, r.concurrent.ok+r.concurrent.errs),
		dist(r.concurrent), "", "")
	if r.concurrent.ok > 0 {
		row("    tenants per second", fmt.Sprintf("%.1f/s", r.concurrent.rate()), "", "")
		n := float64(r.concurrent.ok)
		row("    CPU per tenant: API server / PostgreSQL", fmt.Sprintf("%s / %s", ms(secDur(r.concCPU.api/n)),
			ms(secDur(r.concCPU.postgres/n))), "", "")
	}
	row("first request to a tenant (starts its feeds): p50 / p99 / max", dist(r.first), "", "")
	row(fmt.Sprintf("ConfigMap creates as the tenants' admins (%s)", thousands(int64(r.objs.ok))), rate(r.objs), "", "")
	row("  latency p50 / p99", latency(r.objs), "", "")
	row("  whole fill phase", secs(r.objs.wall), "", "")

	if r.base.goroutines > 0 && r.active.goroutines > 0 {
		n := int64(r.count)
		row(fmt.Sprintf("API server goroutines: no tenant → %d active", r.count),
			fmt.Sprintf("%d → %d", r.base.goroutines, r.active.goroutines), "", "")
		row("  per active tenant", fmt.Sprintf("%.1f", float64(r.active.goroutines-r.base.goroutines)/float64(r.count)), "", "")
		row("API server RSS: no tenant → all active", fmt.Sprintf("%s → %s", mib(r.base.rss), mib(r.active.rss)), "", "")
		row("  RSS per active tenant", kib((r.active.rss-r.base.rss)/n), "", "")
		row("  Go heap in use + stacks per active tenant", kib((r.active.goMem-r.base.goMem)/n), "", "")
		row(fmt.Sprintf("CPU without requests (%v), API server: no tenant → all active", stateQuiet),
			fmt.Sprintf("%.1f%% → %.1f%% of a CPU", 100*r.base.cpu, 100*r.active.cpu), "", "")
		row("  PostgreSQL", fmt.Sprintf("%.1f%% → %.1f%% of a CPU", 100*r.base.pgCPU, 100*r.active.pgCPU), "", "")
	}
	if r.idleWaited > 0 && r.idle.goroutines > 0 {
		n := int64(r.count)
		row(fmt.Sprintf("after %.0f s without requests: goroutines", r.idleWaited.Seconds()),
			fmt.Sprintf("%d (baseline %d)", r.idle.goroutines, r.base.goroutines), "", "")
		per := float64(r.idle.goroutines-r.base.goroutines) / float64(r.count)
		row("  goroutines per idle tenant", fmt.Sprintf("%.2f", per), "0", check(r.idleReturned))
		row("  RSS per idle tenant", kib((r.idle.rss-r.base.rss)/n), "", "")
		row("  Go heap in use + stacks per idle tenant", kib((r.idle.goMem-r.base.goMem)/n), "", "")
		row("  CPU without requests: API server / PostgreSQL", fmt.Sprintf("%.1f%% / %.1f%% of a CPU", 100*r.idle.cpu, 100*r.idle.pgCPU), "", "")
	} else {
		row("idle tenants", fmt.Sprintf("not measured (-tenant-idle-wait ≥ %v)", serverIdleAfter+serverIdleCheck+time.Minute), "0 goroutines", "")
	}

	qp99, fp99 := medianP99(r.quiet), medianP99(r.flooded)
	rounds := fmt.Sprintf("median of %d × %d", len(r.quiet), c.tenantGets)
	row(fmt.Sprintf("quiet tenant's gets, %d/s, alone: p50 / p99 (%s)", c.tenantQuietQPS, rounds),
		fmt.Sprintf("%s / %s", strings.TrimSuffix(ms(medianP(r.quiet, 0.5)), " ms"), ms(qp99)), "", "")
	row(fmt.Sprintf("  while another tenant floods (%d workers)", c.tenantFloodWorkers),
		fmt.Sprintf("%s / %s", strings.TrimSuffix(ms(medianP(r.flooded, 0.5)), " ms"), ms(fp99)), "", "")
	if qp99 > 0 && fp99 > 0 {
		change := float64(fp99)/float64(qp99) - 1
		row("  p99 change under the flood", fmt.Sprintf("%+.1f%%", 100*change), "≤ +20%", check(change <= targetTenantFairness))
	} else {
		row("  p99 change under the flood", failed, "≤ +20%", check(false))
	}
	row("  each round's p99 (ms), alone / flooded", roundP99s(r.quiet)+" / "+roundP99s(r.flooded), "", "")
	row("  API server CPU use, alone / flooded", fmt.Sprintf("%.2f / %.2f CPUs", medianCPUUse(r.quiet), medianCPUUse(r.flooded)), "", "")
	var fl floodStats
	for _, f := range r.floods {
		fl.ok += f.ok
		fl.throttled += f.throttled
		fl.errs += f.errs
		fl.wall += f.wall
	}
	if fl.wall > 0 {
		row("  flood: served / refused with 429, per second", fmt.Sprintf("%s / %s", thousands(int64(float64(fl.ok)/fl.wall.Seconds()+0.5)),
			thousands(int64(float64(fl.throttled)/fl.wall.Seconds()+0.5))), "", "")
		row("  flood: share refused with 429", fmt.Sprintf("%.1f%% of %s", 100*float64(fl.throttled)/float64(max(fl.ok+fl.throttled+fl.errs, 1)),
			thousands(int64(fl.ok+fl.throttled+fl.errs))), "", "")
	}
	w.Flush()

	fmt.Fprintf(out, "\nCreation is timed from the create call to a watch of the LogicalClusters seeing .status.phase Ready; the\n"+
		"server provisions tenants one at a time, so those created %d at a time queue behind each other. Footprints are\n"+
		"read once the API server's garbage collection has settled, without bench's connections; every tenant was\n"+
		"touched just before the active one. They include the server's cache of recently written objects (up to\n"+
		"16 MiB), which weighs on the per-tenant figures when there are few tenants. A tenant's feeds stop %v\n"+
		"after its last request, on a check every %v: the idle footprint needs -tenant-idle-wait of about 7m. The\n"+
		"quiet tenant's gets are paced (open loop) below its %d/s limit, on %d workers, without retries; the flood's\n"+
		"workers are closed loops that go straight on after a 429, in a process of their own at nice 10 (a flood\n"+
		"comes from other machines; here its client work would otherwise take the quiet client's CPU), on the same\n"+
		"CPUs as the server.\n",
		c.tenantWorkers, serverIdleAfter, serverIdleCheck, serverTenantQPS, quietWorkers)

	if c.keep && len(r.profiles) > 0 {
		fmt.Fprintf(out, "Profiles of the API server before any tenant, with all active (and idle): %s in the kept temp dir\n"+
			"(go tool pprof -top -diff_base tenants-heap-base.pb.gz tenants-heap-active.pb.gz)\n", strings.Join(r.profiles, ", "))
	}

	if cpu.wall > 0 {
		other := max(cpu.busy-cpu.api-cpu.postgres-cpu.client, 0)
		fmt.Fprintf(out, "\nCPU during the tenants section (%.1f s × %d CPUs = %.1f CPU-s): API server %.1f s, PostgreSQL %.1f s, "+
			"bench client %.1f s, other processes %.1f s, idle %.1f s\n",
			cpu.wall.Seconds(), m.cpus, cpu.wall.Seconds()*float64(m.cpus), cpu.api, cpu.postgres, cpu.client, other, cpu.idle)
	}
	if r.logWarningsN > 0 {
		fmt.Fprintf(out, "\nThe API server logged %d warnings or errors during the section; the first:\n", r.logWarningsN)
		for _, l := range r.logWarnings {
			fmt.Fprintf(out, "  %.300s\n", l)
		}
	}
	for _, f := range []struct {
		phase string
		s     opStats
	}{{"tenant creates (one at a time)", r.alone}, {"tenant creates (concurrent)", r.concurrent}, {"tenant creates (late)", r.late},
		{"first requests", r.first}, {"ConfigMap creates", r.objs}, {"touch gets", r.touch}} {
		if f.s.errs > 0 {
			fmt.Fprintf(out, "FAILED: %d %s; first: %v\n", f.s.errs, f.phase, f.s.firstErr)
		}
	}
	for _, f := range []struct {
		who    string
		rounds []round
	}{{"alone", r.quiet}, {"flooded", r.flooded}} {
		for i, rd := range f.rounds {
			if rd.ops.errs > 0 {
				fmt.Fprintf(out, "FAILED: %d quiet tenant gets, %s, round %d; first: %v\n", rd.ops.errs, f.who, i+1, rd.ops.firstErr)
			}
		}
	}
	if fl.errs > 0 {
		for _, f := range r.floods {
			if f.firstErr != nil {
				fmt.Fprintf(out, "FAILED: %d flood requests other than 429s; first: %v\n", fl.errs, f.firstErr)
				break
			}
		}
	}
}

// medianCPUUse is the median over rounds of the API server's CPU use, in
// CPUs: with a flood, most of it is the flood's.
func medianCPUUse(rounds []round) float64 {
	var v []float64
	for _, r := range rounds {
		if r.ops.wall > 0 {
			v = append(v, r.apiCPU/r.ops.wall.Seconds())
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func secDur(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// medianP is the median over rounds of each round's percentile p.
func medianP(rounds []round, p float64) time.Duration {
	var v []time.Duration
	for _, r := range rounds {
		if r.ops.ok > 0 {
			v = append(v, r.ops.pct(p))
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func medianP99(rounds []round) time.Duration { return medianP(rounds, 0.99) }

func roundP99s(rounds []round) string {
	s := make([]string, len(rounds))
	for i, r := range rounds {
		s[i] = failed
		if r.ops.ok > 0 {
			s[i] = strings.TrimSuffix(ms(r.ops.pct(0.99)), " ms")
		}
	}
	return strings.Join(s, " ")
}
