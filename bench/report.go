package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The foundation issue's targets.
const (
	targetCreates = 2500 // per second
	targetUpdates = 2000 // per second
	targetGetP99  = 10 * time.Millisecond
	targetList    = 100 * time.Millisecond // of 5000 ConfigMaps
	targetRSS     = 200 << 20
)

// The RBAC section's target: what RBAC adds to a get, for a user with 50
// RoleBindings.
const targetRBACOverhead = 0.10

// The admission section's target: the API server CPU a Deployment create
// spends in validation and admission (with defaulting and field management).
const targetAdmission = 300 * time.Microsecond

// The multi-tenancy targets: creating a tenant, and what another tenant's
// flood may add to a quiet tenant's get p99.
const (
	targetTenantCreate   = 200 * time.Millisecond
	targetTenantFairness = 0.20
)

// Issue 3's watch targets.
const (
	targetWatchSlowdown = 0.10 // of write throughput, with watchers
	targetLatency1      = 10 * time.Millisecond
	targetLatencyMany   = 100 * time.Millisecond
	targetIdleWatcher   = 20 << 10 // bytes of API server RSS
)

type machine struct {
	cpus     int
	model    string
	memBytes int64
	load     string // load average when bench started
}

func readMachine() machine {
	m := machine{cpus: runtime.NumCPU(), model: "unknown CPU", load: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.model = strings.TrimSpace(v)
				break
			}
		}
	}
	m.memBytes = fieldKB("/proc/meminfo", "MemTotal") * 1024
	return m
}

// loadAvg is the 1, 5 and 15 minute load average: on a shared machine it
// says how much the figures were disturbed.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func printReport(out io.Writer, c config, m machine, r results, idle, peak memSample, cpu cpuTimes) {
	fmt.Fprintf(out, "\npgkube API server benchmark: %d ConfigMaps of %d bytes, %d workers, client-go, JSON\n",
		c.objects, c.dataBytes, c.workers)
	fmt.Fprintf(out, "machine: %d CPUs, %s, %.1f GiB memory; load average %s at start, %s at end\n\n",
		m.cpus, m.model, float64(m.memBytes)/(1<<30), m.load, loadAvg())

	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "\tpgkube\ttarget\t\tkube-apiserver")
	row := func(what, got, target, verdict, ref string) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", what, got, target, verdict, ref)
	}
	row("creates", rate(r.create), "≥ 2,500/s", check(r.create.rate() >= targetCreates), "1,100/s")
	row("  latency p50 / p99", latency(r.create), "", "", "p99 35 ms")
	row("gets", rate(r.get), "", "", "2,400/s")
	row("  latency p50 / p99", latency(r.get), "p99 ≤ 10 ms", check(r.get.ok > 0 && r.get.pct(0.99) <= targetGetP99), "p99 20 ms")
	row("updates", rate(r.update), "≥ 2,000/s", check(r.update.rate() >= targetUpdates), "950/s")
	row("  latency p50 / p99", latency(r.update), "", "", "")
	row(fmt.Sprintf("list all %d (median of %d)", c.objects, len(r.list.runs)), listTime(r.list),
		"≤ 100 ms", check(len(r.list.runs) > 0 && r.list.median() <= targetList), "240 ms")
	row("  response only, not decoded (median)", listTime(r.listRaw), "", "", "")
	row("  in protobuf, decoded (median)", listTime(r.listProto), "", "", "")
	row(fmt.Sprintf("list, limit %d: %d pages (median of %d)", c.pageSize, r.paged.pages, len(r.paged.runs)),
		listTime(r.paged), "", "", "")
	row("API server peak RSS (idle after start)", fmt.Sprintf("%s (%s)", mib(peak.apiRSS), mib(idle.apiRSS)),
		"≤ 200 MiB", check(peak.apiRSS <= targetRSS), "460–600 MiB")
	row(fmt.Sprintf("PostgreSQL peak RSS, sum of %d processes", peak.pgProcs), mib(peak.pgRSS), "", "", "")
	row("PostgreSQL peak PSS (shared pages counted once)", mib(peak.pgPSS), "", "", "")
	w.Flush()

	if cpu.wall > 0 {
		avail := cpu.wall.Seconds() * float64(m.cpus)
		other := max(cpu.busy-cpu.api-cpu.postgres-cpu.client, 0)
		fmt.Fprintf(out, "\nCPU during the load (%.1f s × %d CPUs = %.1f CPU-s): API server %.1f s, PostgreSQL %.1f s, "+
			"bench client %.1f s, other processes %.1f s, idle %.1f s\n",
			cpu.wall.Seconds(), m.cpus, avail, cpu.api, cpu.postgres, cpu.client, other, cpu.idle)
	}
	for _, f := range []struct {
		phase    string
		errs     int
		firstErr error
	}{
		{"create", r.create.errs, r.create.firstErr},
		{"get", r.get.errs, r.get.firstErr},
		{"update", r.update.errs, r.update.firstErr},
		{"list", r.list.errs, r.list.firstErr},
		{"paginated list", r.paged.errs, r.paged.firstErr},
		{"undecoded list", r.listRaw.errs, r.listRaw.firstErr},
		{"protobuf list", r.listProto.errs, r.listProto.firstErr},
	} {
		if f.errs > 0 {
			fmt.Fprintf(out, "FAILED: %d %s requests; first: %v\n", f.errs, f.phase, f.firstErr)
		}
	}
}

func printRBACReport(out io.Writer, c config, m machine, r rbacResults, cpu cpuTimes) {
	fmt.Fprintf(out, "\nRBAC: gets of one ConfigMap of %d bytes, %d workers (client-go), as admin (system:masters, "+
		"allowed before RBAC)\nand as %s (%d RoleBindings, only the last granting the get); both present client certificates\n\n",
		c.dataBytes, c.workers, rbacUser, r.bindings)

	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "\tpgkube\ttarget\t")
	row := func(what, got, target, verdict string) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", what, got, target, verdict)
	}
	rounds := fmt.Sprintf("median of %d × %d", len(r.admin), c.rbacGets)
	admin, user := medianRate(r.admin), medianRate(r.user)
	row(fmt.Sprintf("gets as admin, without RBAC (%s)", rounds), rateOf(admin), "", "")
	row("  latency p50 / p99", latency(pooled(r.admin)), "", "")
	row(fmt.Sprintf("gets as %s, RBAC (%s)", rbacUser, rounds), rateOf(user), "", "")
	row("  latency p50 / p99", latency(pooled(r.user)), "", "")
	// What RBAC adds to a get is the extra time per get, hence the ratio
	// of rates rather than the drop in rate.
	if admin > 0 && user > 0 {
		added := admin/user - 1
		row("  time RBAC adds to a get", fmt.Sprintf("%.1f%%", 100*added), "≤ 10%", check(added <= targetRBACOverhead))
	} else {
		row("  time RBAC adds to a get", failed, "≤ 10%", check(false))
	}
	row("  each round, admin / "+rbacUser, roundRates(r.admin)+" / "+roundRates(r.user), "", "")
	cpuAdmin, cpuUser := medianCPUPerOp(r.admin), medianCPUPerOp(r.user)
	cpuRow := micros(cpuAdmin) + " / " + micros(cpuUser)
	if cpuAdmin > 0 && cpuUser > 0 {
		cpuRow += fmt.Sprintf(" (%+.1f%%)", 100*(cpuUser/cpuAdmin-1))
	}
	row("  API server CPU per get (median), admin / "+rbacUser, cpuRow, "", "")
	w.Flush()
	fmt.Fprint(out, "\nRounds alternate between the users, and so does who goes first, so that other processes' load affects both\n"+
		"alike; it still blurs both figures when large (below). The rates also include bench's and PostgreSQL's CPU\n"+
		"where they share the CPUs with the API server, which dilutes RBAC's share of a get.\n")

	if cpu.wall > 0 {
		other := max(cpu.busy-cpu.api-cpu.postgres-cpu.client, 0)
		fmt.Fprintf(out, "\nCPU during the RBAC section (%.1f s × %d CPUs = %.1f CPU-s): API server %.1f s, PostgreSQL %.1f s, "+
			"bench client %.1f s, other processes %.1f s, idle %.1f s\n",
			cpu.wall.Seconds(), m.cpus, cpu.wall.Seconds()*float64(m.cpus), cpu.api, cpu.postgres, cpu.client, other, cpu.idle)
	}
	for _, f := range []struct {
		who    string
		rounds []round
	}{{"admin", r.admin}, {rbacUser, r.user}} {
		for i, rd := range f.rounds {
			if rd.ops.errs > 0 {
				fmt.Fprintf(out, "FAILED: %d gets as %s in round %d; first: %v\n", rd.ops.errs, f.who, i+1, rd.ops.firstErr)
			}
		}
	}
}

func printWatchReport(out io.Writer, c config, m machine, r watchResults, cpu cpuTimes) {
	fmt.Fprintf(out, "\nwatch: ConfigMaps of %d bytes in one namespace, %d writers (client-go), "+
		"watchers are raw HTTP/1.1 JSON streams, one connection each\n\n", c.dataBytes, c.workers)

	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "\tpgkube\ttarget\t")
	row := func(what, got, target, verdict string) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", what, got, target, verdict)
	}
	quiet, watched := medianRate(r.quiet), medianRate(r.watched)
	rounds := fmt.Sprintf("median of %d × %d", len(r.quiet), c.watchWrites)
	row(fmt.Sprintf("updates, no watchers (%s)", rounds), rateOf(quiet), "", "")
	row(fmt.Sprintf("updates, %d watchers (%s)", c.writeWatchers, rounds), rateOf(watched), "", "")
	if quiet > 0 && watched > 0 {
		slow := 1 - watched/quiet
		row("  slowdown by the watchers", fmt.Sprintf("%.1f%%", 100*slow), "≤ 10%", check(slow <= targetWatchSlowdown))
	} else {
		row("  slowdown by the watchers", failed, "≤ 10%", check(false))
	}
	row("  each round, no watchers / watchers", roundRates(r.quiet)+" / "+roundRates(r.watched), "", "")
	row("  API server CPU per update, without / with", micros(cpuPerOp(r.quiet))+" / "+micros(cpuPerOp(r.watched)), "", "")
	row("event latency, 1 watcher: p50 / p99 / max", spread(r.lat1),
		"p99 ≤ 10 ms", check(len(r.lat1.lat) > 0 && pctOf(r.lat1.lat, 0.99) <= targetLatency1))
	row(fmt.Sprintf("event latency, %d watchers: p50 / p99 / max", r.latN.watchers), spread(r.latN),
		"p99 ≤ 100 ms", check(len(r.latN.lat) > 0 && pctOf(r.latN.lat, 0.99) <= targetLatencyMany))
	f := r.fanout
	all := failed
	if f.complete {
		all = secs(f.all)
	}
	row(fmt.Sprintf("%d watchers see %d updates, %d writers", f.watchers, f.writes, c.workers), all, "", "")
	if f.complete {
		row("  the updates alone; events read per second", fmt.Sprintf("%s; %s/s", secs(f.writing),
			thousands(int64(float64(f.watchers*f.writes)/f.all.Seconds()+0.5))), "", "")
	}
	mem := r.mem
	if mem.watchers > 0 && mem.rssAfter > 0 {
		per := (mem.rssAfter - mem.rssBefore) / int64(mem.watchers)
		row(fmt.Sprintf("API server RSS per idle watcher (of %d)", mem.watchers), kib(per),
			"≤ 20 KiB", check(per <= targetIdleWatcher))
		row("  RSS without → with them", fmt.Sprintf("%s → %s", mib(mem.rssBefore), mib(mem.rssAfter)), "", "")
		row("  Go heap in use + stacks per idle watcher", kib((mem.goAfter-mem.goBefore)/int64(mem.watchers)), "", "")
	} else {
		row("API server RSS per idle watcher", failed, "≤ 20 KiB", check(false))
	}
	w.Flush()
	fmt.Fprintf(out, "\nEvery watcher counts its events; faults, if any, are listed below. Event latency: from a write's response\n"+
		"to a watcher reading its event, for every watcher and event, over %d updates of one object, each sent\n"+
		"once the previous one had reached every watcher. Fan-out: from the first update sent to the last event read.\n",
		c.latencyWrites)

	if cpu.wall > 0 {
		other := max(cpu.busy-cpu.api-cpu.postgres-cpu.client, 0)
		fmt.Fprintf(out, "\nCPU during the watch section (%.1f s × %d CPUs = %.1f CPU-s): API server %.1f s, PostgreSQL %.1f s, "+
			"bench client %.1f s, other processes %.1f s, idle %.1f s\n",
			cpu.wall.Seconds(), m.cpus, cpu.wall.Seconds()*float64(m.cpus), cpu.api, cpu.postgres, cpu.client, other, cpu.idle)
	}
	for _, msg := range r.faults.first {
		fmt.Fprintf(out, "FAILED: %s\n", msg)
	}
	if more := r.faults.n - len(r.faults.first); more > 0 {
		fmt.Fprintf(out, "FAILED: %d more watch faults\n", more)
	}
}

// medianRate is the median request rate of rounds; 0 if none succeeded.
func medianRate(rounds []round) float64 {
	var rates []float64
	for _, r := range rounds {
		if r.ops.ok > 0 {
			rates = append(rates, r.ops.rate())
		}
	}
	if len(rates) == 0 {
		return 0
	}
	slices.Sort(rates)
	return rates[len(rates)/2]
}

func rateOf(perSecond float64) string {
	if perSecond <= 0 {
		return failed
	}
	return thousands(int64(perSecond+0.5)) + "/s"
}

func roundRates(rounds []round) string {
	s := make([]string, len(rounds))
	for i, r := range rounds {
		s[i] = failed
		if r.ops.ok > 0 {
			s[i] = thousands(int64(r.ops.rate() + 0.5))
		}
	}
	return strings.Join(s, " ")
}

// cpuPerOp is the API server's CPU seconds per successful request over
// rounds, 0 if none succeeded: unlike rates, it hardly depends on what
// else the machine runs.
func cpuPerOp(rounds []round) float64 {
	var cpu float64
	var ok int
	for _, r := range rounds {
		cpu += r.apiCPU
		ok += r.ops.ok
	}
	if ok == 0 {
		return 0
	}
	return cpu / float64(ok)
}

// medianCPUPerOp is the median over rounds of the API server's CPU seconds
// per successful request, 0 if none succeeded: a round that another
// process disturbed moves it less than it moves cpuPerOp.
func medianCPUPerOp(rounds []round) float64 {
	var per []float64
	for _, r := range rounds {
		if r.ops.ok > 0 {
			per = append(per, r.apiCPU/float64(r.ops.ok))
		}
	}
	if len(per) == 0 {
		return 0
	}
	slices.Sort(per)
	return per[len(per)/2]
}

func micros(seconds float64) string {
	if seconds <= 0 {
		return failed
	}
	return fmt.Sprintf("%.0f µs", seconds*1e6)
}

// pooled merges the rounds' requests for their latency percentiles.
func pooled(rounds []round) opStats {
	var s opStats
	for _, r := range rounds {
		s.lat = append(s.lat, r.ops.lat...)
	}
	s.ok = len(s.lat)
	slices.Sort(s.lat)
	return s
}

// pctOf is the nearest-rank percentile p (0 < p ≤ 1) of sorted durations.
func pctOf(sorted []time.Duration, p float64) time.Duration {
	return opStats{lat: sorted}.pct(p)
}

func spread(l latencyStats) string {
	if len(l.lat) == 0 {
		return failed
	}
	return fmt.Sprintf("%s / %s / %s", strings.TrimSuffix(ms(pctOf(l.lat, 0.5)), " ms"),
		strings.TrimSuffix(ms(pctOf(l.lat, 0.99)), " ms"), ms(l.lat[len(l.lat)-1]))
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func kib(b int64) string { return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10)) }

func check(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}

// A phase or list without a single success shows "failed", not a
// flattering zero.
const failed = "failed"

func rate(s opStats) string {
	if s.ok == 0 {
		return failed
	}
	return thousands(int64(s.rate()+0.5)) + "/s"
}

func latency(s opStats) string {
	if s.ok == 0 {
		return failed
	}
	return fmt.Sprintf("%s / %s", strings.TrimSuffix(ms(s.pct(0.5)), " ms"), ms(s.pct(0.99)))
}

func listTime(l listStats) string {
	if len(l.runs) == 0 {
		return failed
	}
	return ms(l.median())
}

func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v < 10 {
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
