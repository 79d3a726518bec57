package main

// The scheduling section: as the scheduler and node agent issue asks, N
// simulated nodes (one pgkube agent process), the controller manager and
// the scheduler against the bench's API server; D Deployments of R
// replicas created at once:
//
//   - the time until every pod is Running (target: 3000 pods on 100 nodes
//     in 60 s);
//   - the scheduler's throughput (target 200/s): the scheduler stopped,
//     another D×R pods made to wait, then a new scheduler started: pods
//     bound per second from its start to the last binding;
//   - peak RSS of the API server, the scheduler, the agent and PostgreSQL.

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

const schedulingNamespace = "bench-scheduling"

type schedulingResults struct {
	nodes, pods                 int
	allCreated, allRunning      time.Duration
	firstBound, lastBound       time.Duration
	drainPods                   int
	drain                       time.Duration // a new scheduler's start → the last of drainPods bound
	drainFirst, drainLast       time.Duration // the first and last of drainPods bound, since the section's start
	drainStart                  time.Duration // the new scheduler's start, since the section's start
	bindLatency50, bindLatency9 time.Duration // pod created (seen) → bound (seen)
	apiRSS, schedRSS, agentRSS  int64         // peak, KiB
	pgRSS                       int64         // peak, bytes
	schedCPU, apiCPU            float64       // CPU-seconds during the section
	errs                        int
	firstErr                    error
}

func (r schedulingResults) failed() int { return r.errs }

// throughput is pods bound per second by a scheduler that starts with
// drainPods waiting, from its first binding to its last (as upstream's
// scheduler_perf counts: its start, informers' first lists included, is
// reported apart).
func (r schedulingResults) throughput() float64 {
	if d := r.drainLast - r.drainFirst; d > 0 {
		return float64(r.drainPods-1) / d.Seconds()
	}
	return 0
}

func runScheduling(ctx context.Context, c config, api *apiServer, bin, dir string, mem *sampler) (schedulingResults, error) {
	res := schedulingResults{nodes: c.schedulingNodes, pods: c.schedulingDeployments * c.schedulingReplicas}
	step(fmt.Sprintf("scheduling: the controller manager, the scheduler and %d simulated nodes", c.schedulingNodes))
	p, err := startCompanions(ctx, api, bin, dir, "scheduling", schedulingNamespace, c.schedulingNodes, "--events=false")
	if err != nil {
		return res, err
	}
	defer p.stop()
	cs, sched, agent, kc := p.cs, p.sched, p.agent, p.kubeconfig

	// Follow the pods with an informer on the namespace: when each
	// appears, is bound and runs.
	type podTimes struct{ seen, bound, running time.Duration }
	var mu sync.Mutex
	times := map[string]*podTimes{}
	start := time.Now()
	counts := func() (created, bound, running int, last time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		for _, t := range times {
			created++
			if t.bound > 0 {
				bound++
			}
			if t.running > 0 {
				running++
				last = max(last, t.running)
			}
		}
		return
	}
	observe := func(o any) {
		p, ok := o.(*corev1.Pod)
		if !ok {
			return
		}
		at := time.Since(start)
		mu.Lock()
		defer mu.Unlock()
		t := times[p.Name]
		if t == nil {
			t = &podTimes{seen: at}
			times[p.Name] = t
		}
		if t.bound == 0 && p.Spec.NodeName != "" {
			t.bound = at
		}
		if t.running == 0 && p.Status.Phase == corev1.PodRunning {
			t.running = at
		}
	}
	pods := cs.CoreV1().Pods(schedulingNamespace)
	_, inf := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: &cache.ListWatch{
			ListWithContextFunc:  func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return pods.List(ctx, o) },
			WatchFuncWithContext: pods.Watch,
		},
		ObjectType: &corev1.Pod{},
		Handler:    cache.ResourceEventHandlerFuncs{AddFunc: observe, UpdateFunc: func(_, o any) { observe(o) }},
	})
	infCtx, stopInf := context.WithCancel(ctx)
	defer stopInf()
	go inf.RunWithContext(infCtx)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return res, ctx.Err()
	}
	var peakMu sync.Mutex
	stopSampling := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			m := mem.now()
			peakMu.Lock()
			res.apiRSS = max(res.apiRSS, statusKB(api.pid(), "VmRSS"))
			res.schedRSS = max(res.schedRSS, statusKB(sched.pid(), "VmRSS"))
			res.agentRSS = max(res.agentRSS, statusKB(agent.pid(), "VmRSS"))
			res.pgRSS = max(res.pgRSS, m.pgRSS)
			peakMu.Unlock()
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	})
	schedBefore, apiBefore := procCPU(sched.pid(), false), procCPU(api.pid(), false)

	step(fmt.Sprintf("scheduling: %d Deployments of %d replicas", c.schedulingDeployments, c.schedulingReplicas))
	for i := range c.schedulingDeployments {
		if _, err := cs.AppsV1().Deployments(schedulingNamespace).Create(ctx, benchDeployment(fmt.Sprintf("sched-%03d", i), c.schedulingReplicas),
			metav1.CreateOptions{}); err != nil {
			res.errs++
			if res.firstErr == nil {
				res.firstErr = err
			}
		}
	}
	err = waitFor(ctx, 10*time.Minute, "every pod running", func() (bool, error) {
		created, _, running, _ := counts()
		if created >= res.pods && res.allCreated == 0 {
			res.allCreated = time.Since(start)
		}
		return running >= res.pods, nil
	})
	_, _, _, res.allRunning = counts()
	res.schedCPU = procCPU(sched.pid(), false) - schedBefore
	res.apiCPU = procCPU(api.pid(), false) - apiBefore
	if err != nil {
		close(stopSampling)
		wg.Wait()
		return res, err
	}

	// Throughput: with the scheduler stopped, as many pods again wait;
	// a new scheduler places them all.
	step(fmt.Sprintf("scheduling: the scheduler stopped, %d more pods waiting, a new scheduler", res.pods))
	sched.stop()
	res.drainPods = res.pods
	for i := range c.schedulingDeployments {
		if _, err := cs.AppsV1().Deployments(schedulingNamespace).Create(ctx, benchDeployment(fmt.Sprintf("drain-%03d", i), c.schedulingReplicas),
			metav1.CreateOptions{}); err != nil {
			res.errs++
			if res.firstErr == nil {
				res.firstErr = err
			}
		}
	}
	if err = waitFor(ctx, 10*time.Minute, "the waiting pods created", func() (bool, error) {
		created, _, _, _ := counts()
		return created >= 2*res.pods, nil
	}); err != nil {
		close(stopSampling)
		wg.Wait()
		return res, err
	}
	_, boundBefore, _, _ := counts()
	drainStart := time.Now()
	res.drainStart = drainStart.Sub(start)
	if sched, err = startChild(bin, filepath.Join(dir, "scheduling-scheduler2.log"), "scheduler", "--kubeconfig", kc, "--leader-elect=false"); err != nil {
		close(stopSampling)
		wg.Wait()
		return res, err
	}
	p.sched = sched // stopped with the others

	err = waitFor(ctx, 10*time.Minute, "the waiting pods bound", func() (bool, error) {
		_, bound, _, _ := counts()
		return bound >= boundBefore+res.drainPods, nil
	})
	res.drain = time.Since(drainStart)
	close(stopSampling)
	wg.Wait()
	mu.Lock()
	var lat []time.Duration
	res.firstBound, res.drainFirst = time.Hour, time.Hour
	for name, t := range times {
		if t.bound > 0 && strings.HasPrefix(name, "drain-") {
			res.drainFirst = min(res.drainFirst, t.bound)
			res.drainLast = max(res.drainLast, t.bound)
		}
		if t.bound == 0 || !strings.HasPrefix(name, "sched-") {
			continue
		}
		res.firstBound = min(res.firstBound, t.bound)
		res.lastBound = max(res.lastBound, t.bound)
		lat = append(lat, t.bound-t.seen)
	}
	mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		res.bindLatency50, res.bindLatency9 = lat[len(lat)/2], lat[len(lat)*9/10]
	}
	return res, err
}

func printSchedulingReport(w io.Writer, c config, m machine, r schedulingResults) {
	fmt.Fprintf(w, "\n== scheduling: %d Deployments × %d replicas on %d simulated nodes ==\n", c.schedulingDeployments, c.schedulingReplicas, r.nodes)
	fmt.Fprintf(w, "machine: %d CPUs, %s; load average %s at start, %s at end\n\n", m.cpus, m.model, m.load, loadAvg())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%d pods: all created / all Running\t%.1f s / %.1f s\t(target ≤ 60 s for 3000 on 100 nodes)\t%s\n",
		r.pods, r.allCreated.Seconds(), r.allRunning.Seconds(), check(r.allRunning <= 60*time.Second))
	fmt.Fprintf(tw, "pod seen → bound while Deployments fill, as a watcher sees it: p50 / p90\t%s / %s\n", ms(r.bindLatency50), ms(r.bindLatency9))
	fmt.Fprintf(tw, "%d waiting pods, a new scheduler: its start → first / last binding\t%.1f s / %.1f s\n",
		r.drainPods, (r.drainFirst - r.drainStart).Seconds(), r.drain.Seconds())
	fmt.Fprintf(tw, "scheduler throughput: pods bound per second, first → last binding\t%.0f pods/s\t(target ≥ 200/s)\t%s\n",
		r.throughput(), check(r.throughput() >= 200))
	fmt.Fprintf(tw, "scheduler CPU / API server CPU until all Running\t%.1f CPU-s / %.1f CPU-s\n", r.schedCPU, r.apiCPU)
	fmt.Fprintf(tw, "peak RSS: API server / scheduler / agent / PostgreSQL\t%d / %d / %d / %s MiB\n",
		r.apiRSS/1024, r.schedRSS/1024, r.agentRSS/1024, fmt.Sprint(r.pgRSS>>20))
	tw.Flush()
	if r.errs > 0 {
		fmt.Fprintf(w, "%d Deployment creates failed, the first: %v\n", r.errs, r.firstErr)
	}
}
