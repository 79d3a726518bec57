package main

// The admission section: what defaulting, field management, admission and
// semantic validation cost the API server per create of a typical
// Deployment. A create goes decode → defaults → field management
// (managedFields) → mutating admission → semantic validation → validating
// admission → storage → response (server/write.go's createObject).
//
// Two estimates, both from rounds of concurrent creates in a namespace with
// a LimitRange and a PodSecurity "baseline" enforce label, so that the
// plugins have something to look up and check:
//
//   - the direct one: each round runs under a CPU profile of the API server
//     (/debug/pprof/profile), whose samples are sorted into the phases
//     above by the server's phase functions on their stacks; a phase's
//     share of the samples times the round's API server CPU per create
//     (from /proc, as the RBAC section's) is its CPU per create;
//   - the indirect one: API server CPU per Deployment create less that per
//     create of a ConfigMap of the same JSON size, which has no defaults, no
//     pod template to check and next to no validation. It is rough: it also
//     holds what a Deployment costs more to decode, store and answer, and
//     lacks what the ConfigMap's own field management and checks cost.
//
// Deployment and ConfigMap rounds alternate, and so does which goes first,
// so that other processes' load on a shared machine affects both alike.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/pprof/profile"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

const (
	// admissionNamespace keeps the section's objects apart from the other
	// sections'.
	admissionNamespace = "bench-admission"
	// admissionWarmup creates of each kind precede the rounds: they open
	// the workers' connections and fill the server's caches (namespace and
	// LimitRange lookups, field managers' type converters).
	admissionWarmup = 300
	// nameWidth pads object names so that the ConfigMap's and the
	// Deployment's JSON stay the same size whatever the index.
	nameWidth = 7
)

// The phases of a create, in the order the server runs them. chain marks
// the ones the target covers: what a create costs beyond decoding, storing
// and answering.
var admissionPhases = []struct {
	key, label string
	chain      bool
}{
	{"defaults", "defaults (registry defaulters, status reset)", true},
	{"fields", "field management (managedFields)", true},
	{"mutating", "mutating admission", true},
	{"validation", "semantic validation (metadata, the kind's rules)", true},
	{"validating", "validating admission", true},
	{"decode", "decode (JSON, unknown fields)", false},
	{"storage", "storage (encode, write, PostgreSQL round trip)", false},
	{"response", "response", false},
	{"create", "rest of the create handler", false},
	{"request", "rest of the request (TLS, HTTP, authn/authz, routing)", false},
	{"batches", "storage batches (PostgreSQL writes, another goroutine)", false},
	{"feed", "watch feed and notifier", false},
	{"gc", "garbage collection in the background", false},
	{"other", "other (scheduler, timers, …)", false},
}

// admissionPackages are the packages whose cumulative share of the samples
// is reported: every sample with a frame in the package, in any phase.
var admissionPackages = []struct{ prefix, label string }{
	{"github.com/pgkube/pgkube/admission", "pgkube/admission/..."},
	{"github.com/pgkube/pgkube/registry", "pgkube/registry"},
	{"github.com/pgkube/pgkube/schemas", "pgkube/schemas"},
	{"k8s.io/apimachinery/pkg/util/managedfields", "apimachinery/pkg/util/managedfields/..."},
	{"sigs.k8s.io/structured-merge-diff", "structured-merge-diff (under managedfields)"},
	{"k8s.io/pod-security-admission", "pod-security-admission"},
	{"k8s.io/apimachinery/pkg/api/validation", "apimachinery/pkg/api/validation (metadata)"},
}

type admissionResults struct {
	deployBytes, cmBytes int // JSON of one object as sent
	deploy, cm           []admissionRound
	// Of the Deployment rounds' profiles together, within the chain: CPU
	// seconds by the package where it was spent, and by spot (see spotOf).
	flatPkgs, spots map[string]float64
	chainCPU        float64 // the denominator of the two above
	profiles        []string
}

func (r admissionResults) failed() int {
	n := 0
	for _, rounds := range [][]admissionRound{r.deploy, r.cm} {
		for _, rd := range rounds {
			n += rd.ops.errs
		}
	}
	return n
}

// admissionRound is one round of creates under a CPU profile.
type admissionRound struct {
	round
	profCPU float64            // CPU seconds the profile sampled
	phases  map[string]float64 // CPU seconds by phase
	pkgs    map[string]float64 // CPU seconds with a frame in admissionPackages[i].prefix
}

// perCreate is the API server's CPU seconds per create; 0 if none succeeded.
func (r admissionRound) perCreate() float64 {
	if r.ops.ok == 0 {
		return 0
	}
	return r.apiCPU / float64(r.ops.ok)
}

// attributed is the CPU seconds per create spent in the given phases: their
// share of the profile times the round's CPU per create.
func (r admissionRound) attributed(keep func(phase string) bool) float64 {
	if r.profCPU <= 0 {
		return 0
	}
	var cpu float64
	for k, v := range r.phases {
		if keep(k) {
			cpu += v
		}
	}
	return cpu / r.profCPU * r.perCreate()
}

func chainPhase(k string) bool {
	for _, p := range admissionPhases {
		if p.key == k {
			return p.chain
		}
	}
	return false
}

type admissionBench struct {
	c       config
	api     *apiServer
	cs      *kubernetes.Clientset
	pprof   *http.Client
	dir     string // where profiles are saved
	seq     atomic.Int64
	res     *admissionResults
	cmBytes int // data bytes that make the ConfigMap as large as the Deployment
}

// runAdmission sets up the namespace and runs c.admissionRounds rounds of
// Deployment and of ConfigMap creates, each for one CPU profile of
// c.admissionSeconds. Failed creates are counted in the results; setting-up
// errors, profiling errors and cancellation are returned.
func runAdmission(ctx context.Context, c config, api *apiServer, dir string) (admissionResults, error) {
	res := admissionResults{flatPkgs: map[string]float64{}, spots: map[string]float64{}}
	cs, tr, err := api.adminClientset(c.workers)
	if err != nil {
		return res, err
	}
	defer tr.CloseIdleConnections()
	ptr, err := api.admin.transport(1)
	if err != nil {
		return res, fmt.Errorf("creating the profiles' client: %w", err)
	}
	defer ptr.CloseIdleConnections()
	b := &admissionBench{c: c, api: api, cs: cs, dir: dir, res: &res,
		pprof: &http.Client{Transport: ptr, Timeout: time.Duration(c.admissionSeconds)*time.Second + time.Minute}}

	res.deployBytes = jsonSize(typicalDeployment(0))
	empty := jsonSize(sizedConfigMap(0, 0))
	b.cmBytes = max(res.deployBytes-empty, 1)
	res.cmBytes = jsonSize(sizedConfigMap(0, b.cmBytes))

	step(fmt.Sprintf("admission: creating namespace %s with a LimitRange and PodSecurity enforce=baseline", admissionNamespace))
	if err := setUpAdmission(ctx, cs); err != nil {
		return res, err
	}
	kinds := []struct {
		name   string
		create func(ctx context.Context, i int) error
		rounds *[]admissionRound
	}{
		{"deployment", b.createDeployment, &res.deploy},
		{"configmap", b.createConfigMap, &res.cm},
	}
	for _, k := range kinds {
		s := parallel(ctx, c.workers, admissionWarmup, func(ctx context.Context, _ int) error {
			return k.create(ctx, int(b.seq.Add(1)))
		})
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if s.errs > 0 {
			return res, fmt.Errorf("warming up with %s creates: %w", k.name, s.firstErr)
		}
	}

	step(fmt.Sprintf("admission: %d rounds of %d s of Deployment and of ConfigMap creates, each under a CPU profile",
		c.admissionRounds, c.admissionSeconds))
	for r := range c.admissionRounds {
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			k := kinds[i]
			rd, err := b.round(ctx, fmt.Sprintf("%s-%d", k.name, r+1), k.create, k.rounds == &res.deploy)
			if err != nil {
				return res, err
			}
			*k.rounds = append(*k.rounds, rd)
		}
	}
	return res, nil
}

// setUpAdmission creates the namespace, labelled for PodSecurity's baseline
// level (which warns about, and would refuse pods of, templates that break
// it), and a LimitRange with container defaults and bounds.
func setUpAdmission(ctx context.Context, cs kubernetes.Interface) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: admissionNamespace, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce":         "baseline",
		"pod-security.kubernetes.io/enforce-version": "latest",
	}}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", admissionNamespace, err)
	}
	q := resource.MustParse
	lr := &corev1.LimitRange{
		ObjectMeta: metav1.ObjectMeta{Name: "limits", Namespace: admissionNamespace},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type:           corev1.LimitTypeContainer,
			Default:        corev1.ResourceList{corev1.ResourceCPU: q("500m"), corev1.ResourceMemory: q("512Mi")},
			DefaultRequest: corev1.ResourceList{corev1.ResourceCPU: q("100m"), corev1.ResourceMemory: q("128Mi")},
			Max:            corev1.ResourceList{corev1.ResourceCPU: q("4"), corev1.ResourceMemory: q("8Gi")},
			Min:            corev1.ResourceList{corev1.ResourceCPU: q("10m"), corev1.ResourceMemory: q("16Mi")},
		}}},
	}
	if _, err := cs.CoreV1().LimitRanges(admissionNamespace).Create(ctx, lr, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating LimitRange %s/%s: %w", admissionNamespace, lr.Name, err)
	}
	return nil
}

func (b *admissionBench) createDeployment(ctx context.Context, i int) error {
	_, err := b.cs.AppsV1().Deployments(admissionNamespace).Create(ctx, typicalDeployment(i), metav1.CreateOptions{})
	return err
}

func (b *admissionBench) createConfigMap(ctx context.Context, i int) error {
	_, err := b.cs.CoreV1().ConfigMaps(admissionNamespace).Create(ctx, sizedConfigMap(i, b.cmBytes), metav1.CreateOptions{})
	return err
}

// round creates objects on c.workers workers for as long as a CPU profile
// of the API server runs, and sorts the profile's samples into phases.
func (b *admissionBench) round(ctx context.Context, name string, create func(context.Context, int) error, deploy bool) (admissionRound, error) {
	var rd admissionRound
	stop := make(chan struct{})
	cpu := procCPU(b.api.pid(), false)
	var ops opStats
	var wg sync.WaitGroup
	wg.Go(func() {
		ops = untilStopped(ctx, b.c.workers, stop, func(ctx context.Context) error {
			return create(ctx, int(b.seq.Add(1)))
		})
	})
	data, err := b.profile(ctx)
	close(stop)
	wg.Wait()
	rd.round = round{ops: ops, apiCPU: procCPU(b.api.pid(), false) - cpu}
	if err != nil {
		return rd, err
	}
	if err := ctx.Err(); err != nil {
		return rd, err
	}
	path := filepath.Join(b.dir, "admission-"+name+".pb.gz")
	if err := os.WriteFile(path, data, 0o644); err == nil {
		b.res.profiles = append(b.res.profiles, path)
	}
	p, err := profile.ParseData(data)
	if err != nil {
		return rd, fmt.Errorf("parsing the API server's CPU profile: %w", err)
	}
	var flatPkgs, spots map[string]float64
	if deploy {
		flatPkgs, spots = b.res.flatPkgs, b.res.spots
	}
	rd.profCPU, rd.phases, rd.pkgs = sortSamples(p, flatPkgs, spots)
	if deploy {
		for k, v := range rd.phases {
			if chainPhase(k) {
				b.res.chainCPU += v
			}
		}
	}
	return rd, nil
}

// profile takes a CPU profile of the API server, as the admin.
func (b *admissionBench) profile(ctx context.Context) ([]byte, error) {
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", b.api.url, b.c.admissionSeconds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("building the profile request: %w", err)
	}
	resp, err := b.pprof.Do(req)
	if err != nil {
		return nil, fmt.Errorf("profiling the API server: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's CPU profile: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("profiling the API server: %s: %.200s", resp.Status, data)
	}
	return data, nil
}

// untilStopped runs op on the given number of workers until stop is closed
// and times each call.
func untilStopped(ctx context.Context, workers int, stop <-chan struct{}, op func(ctx context.Context) error) opStats {
	per := make([]opStats, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			ws := &per[w]
			for ctx.Err() == nil {
				select {
				case <-stop:
					return
				default:
				}
				t := time.Now()
				if err := op(ctx); err != nil {
					ws.errs++
					if ws.firstErr == nil {
						ws.firstErr = err
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

// sortSamples returns a CPU profile's CPU seconds in all, by phase of a
// create and by package of admissionPackages. Of the samples in the chain's
// phases it adds the CPU seconds to flatPkgs (if not nil) by the package
// where they were spent, and to spots by spotOf.
func sortSamples(p *profile.Profile, flatPkgs, spots map[string]float64) (total float64, phases, pkgs map[string]float64) {
	phases, pkgs = map[string]float64{}, map[string]float64{}
	vi := len(p.SampleType) - 1 // cpu/nanoseconds, after samples/count
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			vi = i
		}
	}
	var frames []string
	for _, s := range p.Sample {
		if vi >= len(s.Value) {
			continue
		}
		v := float64(s.Value[vi]) / 1e9
		total += v
		// Root first; a location's lines are its inlined calls, innermost
		// first.
		frames = frames[:0]
		for i := len(s.Location) - 1; i >= 0; i-- {
			lines := s.Location[i].Line
			for j := len(lines) - 1; j >= 0; j-- {
				if f := lines[j].Function; f != nil {
					frames = append(frames, f.Name)
				}
			}
		}
		phase := createPhase(frames)
		phases[phase] += v
		for _, pk := range admissionPackages {
			for _, f := range frames {
				if strings.HasPrefix(f, pk.prefix) {
					pkgs[pk.prefix] += v
					break
				}
			}
		}
		if chainPhase(phase) && len(frames) > 0 && flatPkgs != nil {
			leaf := frames[len(frames)-1]
			flatPkgs[packageOf(leaf)] += v
			spots[spotOf(phase, frames)] += v
		}
	}
	return total, phases, pkgs
}

// createPhase names the phase of a create that a sample's stack (root
// first) is in, by the server's functions for each phase.
//
// Go's CPU profiler keeps only the 64 innermost frames of a stack, which
// structured-merge-diff's recursive walk of a Deployment's managedFields
// often exceeds: such a stack has lost the server's frames. Field
// management is the only user of structured-merge-diff in a create, so a
// stack without a phase but with a frame of it or of managedfields is
// charged to field management.
func createPhase(frames []string) string {
	const srv = "github.com/pgkube/pgkube/server.(*Server)."
	inRequest, inCreate, inObject, smd := false, false, false, false
	for _, f := range frames {
		switch {
		case f == "runtime.gcBgMarkWorker" || f == "runtime.bgsweep" || f == "runtime.bgscavenge":
			return "gc"
		case strings.HasPrefix(f, "github.com/pgkube/pgkube/storage.(*batchers)."):
			return "batches"
		case strings.HasPrefix(f, "github.com/pgkube/pgkube/watch."):
			return "feed"
		case strings.HasPrefix(f, "sigs.k8s.io/structured-merge-diff/") ||
			strings.HasPrefix(f, "k8s.io/apimachinery/pkg/util/managedfields"):
			smd = true
		}
		switch {
		case inObject:
			// The first call of createObject's on the stack decides.
			switch f {
			case srv + "emptyObject", srv + "trackUpdate":
				return "fields"
			case srv + "mutate":
				return "mutating"
			case srv + "validate":
				return "validation"
			case srv + "admit":
				return "validating"
			case srv + "store":
				return "storage"
			case srv + "respondStored", srv + "respond":
				return "response"
			}
			if packageOf(f) == "github.com/pgkube/pgkube/registry" {
				return "defaults"
			}
			if !smd {
				return "create"
			}
		case strings.HasPrefix(f, "net/http.") || strings.HasPrefix(f, "github.com/pgkube/pgkube/server."):
			inRequest = true
			switch {
			case !inCreate && f == srv+"create":
				inCreate = true
			case inCreate && f == srv+"decodeBody":
				return "decode"
			case inCreate && f == srv+"createObject":
				inObject = true
			}
		}
	}
	switch {
	case smd:
		return "fields"
	case inCreate:
		return "create"
	case inRequest:
		return "request"
	}
	return "other"
}

// spotOf names what a sample of a phase of the chain is doing, for the
// report's list of hot spots: for field management, which of its steps;
// otherwise the innermost function of pgkube's own (outside the server
// package), else of Kubernetes' libraries, else the phase alone.
func spotOf(phase string, frames []string) string {
	label := phase
	for _, p := range admissionPhases {
		if p.key == phase {
			label, _, _ = strings.Cut(p.label, " (")
		}
	}
	if phase == "fields" {
		for _, m := range []struct{ marker, step string }{
			{"sigs.k8s.io/structured-merge-diff/v6/typed.(*compareWalker)", "comparing with the live object (empty on a create)"},
			{"sigs.k8s.io/structured-merge-diff/v6/typed.(*validatingObjectWalker)", "converting to typed values, validated"},
			{"sigs.k8s.io/structured-merge-diff/v6/fieldpath.(*Set).ToJSON", "encoding managedFields"},
			{"sigs.k8s.io/structured-merge-diff/v6/fieldpath.(*Set).emitContents", "encoding managedFields"},
			{"managedfields/internal.encodeManagedFields", "encoding managedFields"},
			{"managedfields/internal.decodeManagedFields", "decoding managedFields"},
		} {
			for _, f := range frames {
				if strings.Contains(f, m.marker) {
					return label + ": " + m.step
				}
			}
		}
		return label + ": the rest"
	}
	var ours, theirs string
	for _, f := range frames {
		switch {
		case strings.HasPrefix(f, "github.com/pgkube/pgkube/") && !strings.HasPrefix(f, "github.com/pgkube/pgkube/server."):
			ours = strings.TrimPrefix(f, "github.com/pgkube/pgkube/")
		case strings.HasPrefix(f, "k8s.io/") || strings.HasPrefix(f, "sigs.k8s.io/"):
			theirs = f
		}
	}
	switch {
	case ours != "":
		return label + ": " + shortGeneric(ours)
	case theirs != "":
		return label + ": " + shortGeneric(theirs)
	}
	return label
}

// packageOf is the import path of a function's package, from its name as
// profiles give it: "k8s.io/x/y.(*T).M", "runtime.mallocgc",
// "pkg.F[...].func1"; the runtime's assembly (aeshashbody) has no package.
func packageOf(fn string) string {
	fn = shortGeneric(fn)
	slash := strings.LastIndexByte(fn, '/')
	if dot := strings.IndexByte(fn[slash+1:], '.'); dot >= 0 {
		return fn[:slash+1+dot]
	}
	return "runtime"
}

// shortGeneric drops a generic function's type arguments, which profiles
// spell out in full: "pkg.F[go.shape.struct { … }].func1" → "pkg.F[…].func1".
func shortGeneric(fn string) string {
	i := strings.IndexByte(fn, '[')
	if i < 0 {
		return fn
	}
	depth := 0
	for j := i; j < len(fn); j++ {
		switch fn[j] {
		case '[':
			depth++
		case ']':
			if depth--; depth == 0 {
				return fn[:i] + "[…]" + shortGeneric(fn[j+1:])
			}
		}
	}
	return fn[:i] + "[…]"
}

func jsonSize(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the bench's own objects always encode
	}
	return len(b)
}

func objectName(prefix string, i int) string { return fmt.Sprintf("%s-%0*d", prefix, nameWidth, i) }

// sizedConfigMap is ConfigMap i with size bytes of data; with the same
// prefix length in its name as the Deployment's, its JSON is as large.
func sizedConfigMap(i, size int) *corev1.ConfigMap {
	cm := newConfigMap(i, size)
	if size == 0 {
		cm.Data = map[string]string{"data": ""}
	}
	cm.Name, cm.Namespace = objectName("cfg", i), admissionNamespace
	return cm
}

// typicalDeployment is Deployment i as an application's manifest would
// have it: a web server with a proxy sidecar, both with resources, probes,
// environment and ports, labels as the recommended ones, a shared
// emptyDir, and nothing PodSecurity's baseline level forbids.
func typicalDeployment(i int) *appsv1.Deployment {
	q := resource.MustParse
	labels := map[string]string{
		"app.kubernetes.io/name":       "storefront",
		"app.kubernetes.io/instance":   "storefront-prod",
		"app.kubernetes.io/component":  "web",
		"app.kubernetes.io/part-of":    "shop",
		"app.kubernetes.io/version":    "2.14.1",
		"app.kubernetes.io/managed-by": "pgkube-bench",
	}
	selector := map[string]string{"app.kubernetes.io/name": "storefront", "app.kubernetes.io/instance": "storefront-prod"}
	replicas := int32(3)
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	httpProbe := func(path string, period int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			PeriodSeconds:    period,
			TimeoutSeconds:   2,
			FailureThreshold: 3,
		}
	}
	tcpProbe := func(port int, initialDelay int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(port)}},
			InitialDelaySeconds: initialDelay,
			PeriodSeconds:       10,
		}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: objectName("web", i), Namespace: admissionNamespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:  "web",
						Image: "registry.example.com/shop/storefront:2.14.1",
						Args:  []string{"--listen=:8080", "--metrics=:9090"},
						Ports: []corev1.ContainerPort{
							{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
							{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
						},
						Env: []corev1.EnvVar{
							{Name: "LOG_LEVEL", Value: "info"},
							{Name: "CACHE_DIR", Value: "/var/cache/storefront"},
							{Name: "DATABASE_URL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: "storefront-db"}, Key: "url"}}},
							fieldEnv("POD_NAME", "metadata.name"),
							fieldEnv("POD_IP", "status.podIP"),
						},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: q("250m"), corev1.ResourceMemory: q("256Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceCPU: q("1"), corev1.ResourceMemory: q("512Mi")},
						},
						LivenessProbe:  httpProbe("/healthz", 10),
						ReadinessProbe: httpProbe("/ready", 5),
						VolumeMounts:   []corev1.VolumeMount{{Name: "cache", MountPath: "/var/cache/storefront"}},
					}, {
						Name:  "proxy",
						Image: "docker.io/envoyproxy/envoy:v1.31.2",
						Args:  []string{"--config-path", "/etc/envoy/envoy.yaml", "--log-level", "warn"},
						Ports: []corev1.ContainerPort{{Name: "https", ContainerPort: 8443, Protocol: corev1.ProtocolTCP}},
						Env:   []corev1.EnvVar{{Name: "ENVOY_UID", Value: "101"}, fieldEnv("NODE_NAME", "spec.nodeName")},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: q("100m"), corev1.ResourceMemory: q("64Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceCPU: q("500m"), corev1.ResourceMemory: q("128Mi")},
						},
						LivenessProbe:  tcpProbe(8443, 5),
						ReadinessProbe: tcpProbe(8443, 0),
					}},
					Volumes: []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				},
			},
		},
	}
}

func printAdmissionReport(out io.Writer, c config, m machine, r admissionResults, cpu cpuTimes) {
	fmt.Fprintf(out, "\nadmission: creates of a typical Deployment (2 containers with resources, probes, env, ports; %d bytes of JSON)\n"+
		"and of a ConfigMap of %d bytes of JSON, in a namespace with a LimitRange and PodSecurity enforce=baseline;\n"+
		"%d workers (client-go), rounds of %d s each under a CPU profile of the API server\n",
		r.deployBytes, r.cmBytes, c.workers, c.admissionSeconds)
	fmt.Fprintf(out, "machine: %d CPUs, %s; load average %s at start, %s at end\n\n", m.cpus, m.model, m.load, loadAvg())

	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "\tDeployment\tConfigMap\ttarget\t")
	row := func(what, deploy, cm, target, verdict string) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", what, deploy, cm, target, verdict)
	}
	rounds := fmt.Sprintf("median of %d", len(r.deploy))
	// Medians of the rounds, of each phase on its own: they need not add up.
	chainD := medianOf(r.deploy, func(rd admissionRound) float64 { return rd.attributed(chainPhase) })
	chainC := medianOf(r.cm, func(rd admissionRound) float64 { return rd.attributed(chainPhase) })
	row(fmt.Sprintf("validation+admission+defaults+managedFields CPU per create (profile, %s)", rounds),
		micros(chainD), micros(chainC), "≤ 300 µs", check(chainD > 0 && chainD <= targetAdmission.Seconds()))
	for _, ph := range admissionPhases {
		if !ph.chain {
			continue
		}
		f := func(rd admissionRound) float64 { return rd.attributed(func(k string) bool { return k == ph.key }) }
		row("  "+ph.label, microsOrZero(medianOf(r.deploy, f)), microsOrZero(medianOf(r.cm, f)), "", "")
	}
	noFields := func(rd admissionRound) float64 {
		return rd.attributed(func(k string) bool { return chainPhase(k) && k != "fields" })
	}
	row("  without field management", micros(medianOf(r.deploy, noFields)), micros(medianOf(r.cm, noFields)), "", "")
	// A share hardly depends on how busy the machine is; CPU per create does.
	share := func(rd admissionRound) float64 {
		if rd.profCPU <= 0 {
			return 0
		}
		var cpu float64
		for k, v := range rd.phases {
			if chainPhase(k) {
				cpu += v
			}
		}
		return cpu / rd.profCPU
	}
	row("  share of the API server's CPU per create", percent(medianOf(r.deploy, share)), percent(medianOf(r.cm, share)), "", "")
	each := func(rounds []admissionRound) string {
		s := make([]string, len(rounds))
		for i, rd := range rounds {
			s[i] = strings.TrimSuffix(micros(rd.attributed(chainPhase)), " µs")
		}
		return strings.Join(s, " ")
	}
	row("  each round (µs)", each(r.deploy), each(r.cm), "", "")

	perD := medianOf(r.deploy, admissionRound.perCreate)
	perC := medianOf(r.cm, admissionRound.perCreate)
	row(fmt.Sprintf("API server CPU per create (%s)", rounds), micros(perD), micros(perC), "", "")
	if perD > 0 && perC > 0 {
		row("  Deployment less ConfigMap", fmt.Sprintf("%.0f µs", (perD-perC)*1e6), "", "", "")
	}
	row("  each round (µs)", eachPerCreate(r.deploy), eachPerCreate(r.cm), "", "")
	row("creates per second (median)", rateOf(medianOf(r.deploy, func(rd admissionRound) float64 { return rd.ops.rate() })),
		rateOf(medianOf(r.cm, func(rd admissionRound) float64 { return rd.ops.rate() })), "", "")
	row("  latency p50 / p99", latency(pooledRounds(r.deploy)), latency(pooledRounds(r.cm)), "", "")
	coverage := func(rounds []admissionRound) string {
		var prof, api float64
		for _, rd := range rounds {
			prof += rd.profCPU
			api += rd.apiCPU
		}
		if api <= 0 {
			return failed
		}
		return fmt.Sprintf("%.0f%%", 100*prof/api)
	}
	row("  CPU the profiles sampled / API server CPU", coverage(r.deploy), coverage(r.cm), "", "")

	row("whole create by phase (profile, median per create)", "", "", "", "")
	for _, ph := range admissionPhases {
		if ph.chain {
			continue
		}
		f := func(rd admissionRound) float64 { return rd.attributed(func(k string) bool { return k == ph.key }) }
		row("  "+ph.label, microsOrZero(medianOf(r.deploy, f)), microsOrZero(medianOf(r.cm, f)), "", "")
	}
	row("samples with a frame in a package, any phase (median per create)", "", "", "", "")
	for _, pk := range admissionPackages {
		f := func(rd admissionRound) float64 {
			if rd.profCPU <= 0 {
				return 0
			}
			return rd.pkgs[pk.prefix] / rd.profCPU * rd.perCreate()
		}
		row("  "+pk.label, microsOrZero(medianOf(r.deploy, f)), microsOrZero(medianOf(r.cm, f)), "", "")
	}
	w.Flush()

	if r.chainCPU > 0 {
		fmt.Fprintf(out, "\nWhere the Deployment's validation+admission+defaults+managedFields time is spent (all rounds' profiles, %.1f CPU-s):\n",
			r.chainCPU)
		w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		top := func(title string, m map[string]float64, n int) {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			slices.SortFunc(keys, func(a, b string) int {
				if m[a] != m[b] {
					if m[a] > m[b] {
						return -1
					}
					return 1
				}
				return strings.Compare(a, b)
			})
			fmt.Fprintf(w, "%s\t\t\n", title)
			for _, k := range keys[:min(n, len(keys))] {
				fmt.Fprintf(w, "  %s\t%.1f%%\t%s\n", k, 100*m[k]/r.chainCPU, microsOrZero(m[k]/r.chainCPU*chainD))
			}
		}
		top("by package, flat", r.flatPkgs, 10)
		top("by hot spot (field management's steps; elsewhere the innermost function of pgkube's, else of k8s.io's)", r.spots, 15)
		w.Flush()
	}
	fmt.Fprint(out, "\nThe profile sorts a create's samples into phases by the server's functions on the stack (createObject's\n"+
		"calls); a phase's share of the samples times the round's API server CPU per create (from /proc) is its CPU per\n"+
		"create. Stacks deeper than the 64 frames Go's CPU profiler keeps are charged to field management when in\n"+
		"structured-merge-diff or managedfields, its only users in a create. GC in the background is not charged to\n"+
		"the phases whose garbage it collects. The difference of the kinds' CPU per create is a rough estimate: it\n"+
		"also holds the Deployment's larger decode, storage and response, and lacks the ConfigMap's own checks.\n")
	if c.keep && len(r.profiles) > 0 {
		fmt.Fprintf(out, "Profiles: %s … (go tool pprof -top FILE)\n", filepath.Dir(r.profiles[0]))
	}

	if cpu.wall > 0 {
		other := max(cpu.busy-cpu.api-cpu.postgres-cpu.client, 0)
		fmt.Fprintf(out, "\nCPU during the admission section (%.1f s × %d CPUs = %.1f CPU-s): API server %.1f s, PostgreSQL %.1f s, "+
			"bench client %.1f s, other processes %.1f s, idle %.1f s\n",
			cpu.wall.Seconds(), m.cpus, cpu.wall.Seconds()*float64(m.cpus), cpu.api, cpu.postgres, cpu.client, other, cpu.idle)
	}
	for _, f := range []struct {
		kind   string
		rounds []admissionRound
	}{{"Deployment", r.deploy}, {"ConfigMap", r.cm}} {
		for i, rd := range f.rounds {
			if rd.ops.errs > 0 {
				fmt.Fprintf(out, "FAILED: %d %s creates in round %d; first: %v\n", rd.ops.errs, f.kind, i+1, rd.ops.firstErr)
			}
		}
	}
}

// medianOf is the median of f over rounds that had a successful create; 0
// if none.
func medianOf(rounds []admissionRound, f func(admissionRound) float64) float64 {
	var v []float64
	for _, rd := range rounds {
		if rd.ops.ok > 0 {
			v = append(v, f(rd))
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func eachPerCreate(rounds []admissionRound) string {
	s := make([]string, len(rounds))
	for i, rd := range rounds {
		s[i] = strings.TrimSuffix(micros(rd.perCreate()), " µs")
	}
	return strings.Join(s, " ")
}

func pooledRounds(rounds []admissionRound) opStats {
	rs := make([]round, len(rounds))
	for i, rd := range rounds {
		rs[i] = rd.round
	}
	return pooled(rs)
}

func percent(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) }

// microsOrZero is micros for figures that may well be zero, such as a
// phase a kind does not have.
func microsOrZero(seconds float64) string {
	if seconds <= 0 {
		return "0 µs"
	}
	if seconds < 10e-6 {
		return fmt.Sprintf("%.1f µs", seconds*1e6)
	}
	return micros(seconds)
}
