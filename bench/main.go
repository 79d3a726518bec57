// Command bench measures pgkube's API server against the foundation
// issue's targets: it starts a private PostgreSQL and the API server as a
// separate process (so that the server's memory can be measured on its own),
// drives it with client-go and prints throughput, latency and memory next to
// the targets and kube-apiserver's reference figures. An RBAC section (see
// rbac.go) follows: what authorization adds to a get for a user with many
// RoleBindings. Then a watch section (issue 3, see watch.go): what watchers
// cost writers, event latency and fan-out, and the memory of idle watchers.
// Last, an admission section (see admission.go): what defaulting, field
// management, admission and validation cost a Deployment create;
// -admission-only runs it alone. Then a tenants section (see tenants.go):
// many logical clusters in one database, what creating one takes, what an
// active and an idle one cost the server, and one tenant's latency while
// another floods; -tenants-only runs it alone.
//
// The server serves only HTTPS; bench makes its CA and certificates and
// talks to it as the admin (system:masters) unless a phase says otherwise.
//
// A missed target is reported, not treated as failure; bench exits non-zero
// only if it could not run or requests failed, because then its figures
// would not describe a working server.
//
// Usage (from the module root): go run ./bench [flags], or `make bench`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pgkube/pgkube/embedpg"
	"github.com/pgkube/pgkube/pki"
)

type config struct {
	objects   int
	workers   int
	dataBytes int
	listRuns  int
	pageSize  int64
	goTool    string // the go command that builds the server
	binary    string // a prebuilt pgkube binary, instead of building one
	perfOut   string // if set, a system-wide perf profile of the load
	keep      bool   // keep the temp dir (logs, data) for inspection

	// The RBAC section, after the load.
	rbac         bool
	rbacBindings int // RoleBindings of the RBAC user
	rbacGets     int // gets per round
	rbacRounds   int // rounds, each as the admin and as the RBAC user

	// The watch section (issue 3), after the load.
	watch         bool
	watchWrites   int // updates per write round, and objects updated
	watchRounds   int // write rounds, each without and with watchers
	writeWatchers int // watchers during the write rounds
	watchers      int // watchers of the memory, latency and fan-out phases
	latencyWrites int // sequential updates per latency phase
	fanoutWrites  int // concurrent updates of the fan-out phase

	// The admission section, last.
	admission        bool
	admissionOnly    bool // skip the load, RBAC and watch sections
	admissionRounds  int  // rounds, each of Deployment and of ConfigMap creates
	admissionSeconds int  // length of a round: one CPU profile

	// The tenants section, after the others.
	tenants            bool
	tenantsOnly        bool // skip every other section
	tenantCount        int
	tenantObjects      int           // ConfigMaps per tenant
	tenantWorkers      int           // tenants created and filled at a time
	tenantGets         int           // quiet tenant's gets per round
	tenantQuietQPS     int           // their pace
	tenantRounds       int           // rounds, each alone and flooded
	tenantFloodWorkers int           // the noisy tenant's workers
	tenantIdleWait     time.Duration // 0: no idle phase
	// The controllers section (bench/controllers.go).
	controllers, controllersOnly bool
	controllersReplicas          int
	controllersDeployments       int
	controllersPerDeployment     int
	controllersNodes             int
	// The scheduling section (bench/scheduling.go).
	scheduling, schedulingOnly bool
	schedulingNodes            int
	schedulingDeployments      int
	schedulingReplicas         int
}

func main() {
	if order := os.Getenv(floodEnv); order != "" {
		runFloodProcess(order)
		return
	}
	var c config
	flag.IntVar(&c.objects, "objects", 5000, "number of ConfigMaps")
	flag.IntVar(&c.workers, "workers", 16, "concurrent client workers")
	flag.IntVar(&c.dataBytes, "data-bytes", 1024, "bytes of data per ConfigMap")
	flag.IntVar(&c.listRuns, "list-runs", 5, "runs of each list measurement (the median is reported)")
	flag.Int64Var(&c.pageSize, "page-size", 500, "limit of the paginated list")
	flag.StringVar(&c.goTool, "go", "go", "go command used to build the API server")
	flag.StringVar(&c.binary, "pgkube", "", "prebuilt pgkube binary to run instead of building ./cmd/pgkube")
	flag.StringVar(&c.perfOut, "perf", "", "record a system-wide `perf` profile of the load phases to this file")
	flag.BoolVar(&c.keep, "keep", false, "keep the temp directory (logs, PostgreSQL data) and print its path")
	flag.BoolVar(&c.rbac, "rbac", true, "run the RBAC section after the load")
	flag.IntVar(&c.rbacBindings, "rbac-bindings", 50, "RoleBindings of the RBAC section's user; only the last grants its get")
	// RBAC adds microseconds to a get: rounds of a second or so swung the
	// difference between the users by ±15% on the shared 2-CPU machine,
	// rounds of a few seconds kept it within a few percent.
	flag.IntVar(&c.rbacGets, "rbac-gets", 10000, "gets per round of the RBAC section")
	flag.IntVar(&c.rbacRounds, "rbac-rounds", 5, "rounds of the RBAC section, each as the admin and as the bound user (the medians are reported)")
	flag.BoolVar(&c.watch, "watch", true, "run the watch section after the load")
	flag.IntVar(&c.watchWrites, "watch-writes", 3000, "updates per write round of the watch section")
	flag.IntVar(&c.watchRounds, "watch-rounds", 3, "write rounds, each without and with watchers (the medians are reported)")
	flag.IntVar(&c.writeWatchers, "write-watchers", 100, "watchers during the write rounds")
	flag.IntVar(&c.watchers, "watchers", 1000, "watchers of the memory, latency and fan-out phases")
	flag.IntVar(&c.latencyWrites, "latency-writes", 300, "sequential updates per latency phase")
	flag.IntVar(&c.fanoutWrites, "fanout-writes", 500, "concurrent updates of the fan-out phase (at most -watch-writes)")
	flag.BoolVar(&c.admission, "admission", true, "run the admission section after the others")
	flag.BoolVar(&c.admissionOnly, "admission-only", false, "run only the admission section (no load, RBAC or watch section)")
	flag.IntVar(&c.admissionRounds, "admission-rounds", 3, "rounds of the admission section, each of Deployment and of ConfigMap creates (the medians are reported)")
	flag.IntVar(&c.admissionSeconds, "admission-seconds", 10, "length of an admission round, which runs under one CPU profile of the API server")
	flag.BoolVar(&c.tenants, "tenants", true, "run the tenants section after the others")
	flag.BoolVar(&c.tenantsOnly, "tenants-only", false, "run only the tenants section (no load, RBAC, watch or admission section)")
	flag.IntVar(&c.tenantCount, "tenant-count", 2000, "logical clusters of the tenants section (at least 2)")
	flag.IntVar(&c.tenantObjects, "tenant-objects", 50, "ConfigMaps per tenant")
	flag.IntVar(&c.tenantWorkers, "tenant-workers", 8, "tenants created, and filled, at a time")
	flag.IntVar(&c.tenantGets, "tenant-gets", 3000, "the quiet tenant's gets per round of the fairness phase")
	flag.IntVar(&c.tenantQuietQPS, "tenant-quiet-qps", 150, "the quiet tenant's gets per second (the server limits a tenant to 200)")
	flag.IntVar(&c.tenantRounds, "tenant-rounds", 3, "rounds of the fairness phase, each alone and while another tenant floods (the medians are reported)")
	flag.IntVar(&c.tenantFloodWorkers, "tenant-flood-workers", 16, "closed-loop workers of the flooding tenant")
	flag.DurationVar(&c.tenantIdleWait, "tenant-idle-wait", 0, "if set, wait up to this long for idle tenants' feeds to stop "+
		"(5 min after their last request, checked every minute: 7m is enough) and measure the server again")
	flag.BoolVar(&c.controllers, "controllers", true, "run the controllers section after the others")
	flag.BoolVar(&c.controllersOnly, "controllers-only", false, "run only the controllers section")
	flag.IntVar(&c.controllersReplicas, "controllers-replicas", 1000, "replicas of the controllers section's big Deployment")
	flag.IntVar(&c.controllersDeployments, "controllers-deployments", 100, "Deployments rolling out at once in the controllers section")
	flag.IntVar(&c.controllersPerDeployment, "controllers-deployment-replicas", 5, "replicas of each rolling Deployment")
	flag.IntVar(&c.controllersNodes, "controllers-nodes", 20, "simulated nodes of the controllers section")
	flag.BoolVar(&c.scheduling, "scheduling", true, "run the scheduling section (scheduler and simulated nodes) last")
	flag.BoolVar(&c.schedulingOnly, "scheduling-only", false, "run only the scheduling section")
	flag.IntVar(&c.schedulingNodes, "scheduling-nodes", 100, "simulated nodes of the scheduling section")
	flag.IntVar(&c.schedulingDeployments, "scheduling-deployments", 30, "Deployments created at once in the scheduling section")
	flag.IntVar(&c.schedulingReplicas, "scheduling-replicas", 100, "replicas of each of those Deployments")
	flag.Parse()
	if c.admissionOnly {
		c.admission, c.rbac, c.watch, c.tenants, c.controllers = true, false, false, false, false
	}
	if c.tenantsOnly {
		c.tenants, c.rbac, c.watch, c.admission, c.controllers = true, false, false, false, false
	}
	if c.controllersOnly {
		c.controllers, c.tenants, c.rbac, c.watch, c.admission = true, false, false, false, false
	}
	if c.admissionOnly || c.tenantsOnly || c.controllersOnly {
		c.scheduling = false
	}
	if c.schedulingOnly {
		c.scheduling, c.controllers, c.tenants, c.rbac, c.watch, c.admission = true, false, false, false, false, false
	}
	if c.scheduling && (c.schedulingNodes < 1 || c.schedulingDeployments < 1 || c.schedulingReplicas < 1) {
		fmt.Fprintln(os.Stderr, "bench: the scheduling flags must be positive")
		os.Exit(2)
	}
	if c.controllers && (c.controllersReplicas < 1 || c.controllersDeployments < 1 || c.controllersPerDeployment < 1 || c.controllersNodes < 1) {
		fmt.Fprintln(os.Stderr, "bench: the controllers flags must be positive")
		os.Exit(2)
	}
	if c.objects < 1 || c.workers < 1 || c.listRuns < 1 || c.pageSize < 1 {
		fmt.Fprintln(os.Stderr, "bench: -objects, -workers, -list-runs and -page-size must be positive")
		os.Exit(2)
	}
	if c.rbac && (c.rbacBindings < 1 || c.rbacGets < 1 || c.rbacRounds < 1) {
		fmt.Fprintln(os.Stderr, "bench: the rbac flags must be positive")
		os.Exit(2)
	}
	if c.watch && (c.watchWrites < 1 || c.watchRounds < 1 || c.writeWatchers < 1 || c.watchers < 1 ||
		c.latencyWrites < 1 || c.fanoutWrites < 1 || c.fanoutWrites > c.watchWrites) {
		fmt.Fprintln(os.Stderr, "bench: the watch flags must be positive, and -fanout-writes at most -watch-writes")
		os.Exit(2)
	}
	if c.admission && (c.admissionRounds < 1 || c.admissionSeconds < 1) {
		fmt.Fprintln(os.Stderr, "bench: the admission flags must be positive")
		os.Exit(2)
	}

	if c.tenants && (c.tenantCount < 2 || c.tenantObjects < 1 || c.tenantWorkers < 1 || c.tenantGets < 1 ||
		c.tenantQuietQPS < 1 || c.tenantRounds < 1 || c.tenantFloodWorkers < 1 || c.tenantIdleWait < 0) {
		fmt.Fprintln(os.Stderr, "bench: the tenant flags must be positive, and -tenant-count at least 2")
		os.Exit(2)
	}

	// Ctrl-C cancels ctx; run then returns through its deferred cleanups,
	// which is why main must not exit before run has returned.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, c)
	stop()
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "bench: interrupted")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) (err error) {
	machine := readMachine()

	tmp, err := os.MkdirTemp("", "pgkube-bench-")
	if err != nil {
		return fmt.Errorf("creating temp dir: %w", err)
	}
	defer func() {
		if c.keep {
			fmt.Fprintf(os.Stderr, "bench: kept %s\n", tmp)
			return
		}
		if rmErr := os.RemoveAll(tmp); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("removing temp dir: %w", rmErr))
		}
	}()
	// MkdirTemp makes it 0700; as root, embedpg runs PostgreSQL as an
	// unprivileged user, which must be able to reach its data directory.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("making temp dir traversable: %w", err)
	}

	bin := c.binary
	if bin == "" {
		bin = filepath.Join(tmp, "pgkube")
		step("building pgkube")
		if err := buildServer(ctx, c.goTool, bin); err != nil {
			return err
		}
	}

	step("starting PostgreSQL")
	pgLog, err := os.Create(filepath.Join(tmp, "postgres.log"))
	if err != nil {
		return fmt.Errorf("creating PostgreSQL log: %w", err)
	}
	defer pgLog.Close()
	dataDir := filepath.Join(tmp, "data")
	pg, err := embedpg.Start(ctx, embedpg.Options{DataDir: dataDir, Log: pgLog})
	if err != nil {
		return fmt.Errorf("starting PostgreSQL: %w", err)
	}
	defer func() {
		if stopErr := pg.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stopping PostgreSQL: %w", stopErr))
		}
	}()

	// The server loads the CA and keys made here, so bench can issue
	// client certificates the server trusts.
	certDir := filepath.Join(tmp, "pki")
	ca, err := pki.Ensure(certDir, pki.Options{})
	if err != nil {
		return fmt.Errorf("creating the cluster's certificates: %w", err)
	}
	admin := credentials{caPEM: ca.CAPEM, certPEM: ca.AdminCertPEM, keyPEM: ca.AdminKeyPEM}

	step("starting the API server")
	api, err := startAPIServer(ctx, bin, pg.URL("pgkube"), certDir, admin, filepath.Join(tmp, "apiserver.log"))
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := api.stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()

	// Sampling starts before the load so that the peaks include start-up.
	mem := startSampler(api.pid(), filepath.Join(dataDir, "postgres", "postmaster.pid"))
	defer mem.stop()
	idle := mem.now()

	var prof *perfRecorder
	if c.perfOut != "" {
		if prof, err = startPerf(c.perfOut); err != nil {
			return err
		}
		defer func() {
			if stopErr := prof.stop(); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}()
	}

	var res results
	if !c.admissionOnly && !c.tenantsOnly && !c.controllersOnly && !c.schedulingOnly {
		cpuBefore := readCPU(api.pid(), mem)
		var loadErr error
		res, loadErr = runLoad(ctx, c, api)
		cpuAfter := readCPU(api.pid(), mem)
		if loadErr != nil {
			return loadErr
		}
		if prof != nil {
			if err := prof.stop(); err != nil {
				return err
			}
		}
		// The peaks are the load's; the watch section measures its own memory.
		peaks := mem.stop()
		// Printed before the watch section runs, so that its failure to run
		// leaves these figures standing.
		printReport(os.Stdout, c, machine, res, idle, peaks, cpuAfter.sub(cpuBefore))
	}

	var rres rbacResults
	if c.rbac {
		before := readCPU(api.pid(), mem)
		var rbacErr error
		rres, rbacErr = runRBAC(ctx, c, api, ca)
		if rbacErr != nil {
			return fmt.Errorf("RBAC section: %w", rbacErr)
		}
		printRBACReport(os.Stdout, c, machine, rres, readCPU(api.pid(), mem).sub(before))
	}

	var wres watchResults
	if c.watch {
		before := readCPU(api.pid(), mem)
		var watchErr error
		wres, watchErr = runWatch(ctx, c, api)
		if watchErr != nil {
			return fmt.Errorf("watch section: %w", watchErr)
		}
		printWatchReport(os.Stdout, c, machine, wres, readCPU(api.pid(), mem).sub(before))
	}

	var ares admissionResults
	if c.admission {
		// Its report gives the load average from the section's start.
		at := machine
		at.load = loadAvg()
		before := readCPU(api.pid(), mem)
		var admissionErr error
		ares, admissionErr = runAdmission(ctx, c, api, tmp)
		if admissionErr != nil {
			return fmt.Errorf("admission section: %w", admissionErr)
		}
		printAdmissionReport(os.Stdout, c, at, ares, readCPU(api.pid(), mem).sub(before))
	}
	var tres tenantsResults
	if c.tenants {
		at := machine
		at.load = loadAvg()
		before := readCPU(api.pid(), mem)
		var tenantsErr error
		tres, tenantsErr = runTenants(ctx, c, api, mem, tmp)
		if tenantsErr != nil {
			return fmt.Errorf("tenants section: %w", tenantsErr)
		}
		printTenantsReport(os.Stdout, c, at, tres, readCPU(api.pid(), mem).sub(before))
	}
	var cres controllersResults
	if c.controllers {
		at := machine
		at.load = loadAvg()
		var controllersErr error
		cres, controllersErr = runControllers(ctx, c, api, bin, tmp)
		if controllersErr != nil {
			return fmt.Errorf("controllers section: %w", controllersErr)
		}
		printControllersReport(os.Stdout, c, at, cres)
	}
	var sres schedulingResults
	if c.scheduling {
		at := machine
		at.load = loadAvg()
		var schedulingErr error
		sres, schedulingErr = runScheduling(ctx, c, api, bin, tmp, mem)
		if schedulingErr != nil {
			return fmt.Errorf("scheduling section: %w", schedulingErr)
		}
		printSchedulingReport(os.Stdout, c, at, sres)
	}
	if prof != nil {
		fmt.Printf("\nperf profile: %s (e.g. perf report -i %s --no-children --comms pgkube,postgres --sort comm,dso,sym)\n",
			c.perfOut, c.perfOut)
	}
	if n := res.failed(); n > 0 {
		return fmt.Errorf("%d requests failed; the figures above do not describe a working server", n)
	}
	if n := rres.failed(); n > 0 {
		return fmt.Errorf("%d RBAC section gets failed; the RBAC figures above do not describe a working server", n)
	}
	if n := wres.failed(); n > 0 {
		return fmt.Errorf("%d watch faults; the watch figures above do not describe a working server", n)
	}
	if n := ares.failed(); n > 0 {
		return fmt.Errorf("%d admission section creates failed; the admission figures above do not describe a working server", n)
	}
	if n := cres.failed(); n > 0 {
		return fmt.Errorf("%d controllers section patches failed; the controller figures above do not describe a working cluster", n)
	}
	if n := sres.failed(); n > 0 {
		return fmt.Errorf("%d scheduling section creates failed; the scheduling figures above do not describe a working cluster", n)
	}
	if n := tres.failed(); n > 0 {
		return fmt.Errorf("%d tenants section requests failed; the tenant figures above do not describe a working server", n)
	}
	return nil
}

func step(msg string) { fmt.Fprintf(os.Stderr, "bench: %s\n", msg) }

// buildServer builds cmd/pgkube by import path, which works from any
// directory inside the module.
func buildServer(ctx context.Context, goTool, out string) error {
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", out, "github.com/pgkube/pgkube/cmd/pgkube")
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building pgkube (run bench from within the pgkube module): %w", err)
	}
	return nil
}

// tailOf returns the end of a log file, for error messages.
func tailOf(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return ""
		}
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
