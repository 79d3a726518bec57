package main

// The controllers section: the controller manager (pgkube controller-manager)
// against the bench's API server, with pgkube's scheduler and a simulated
// node agent so that pods become Running and Ready, as the controller
// manager issue asks:
//
//   - the time from creating a Deployment of N replicas until all its pods
//     exist (created by the ReplicaSet controller), and until all are
//     Ready;
//   - the controller manager's CPU and peak RSS while M Deployments roll
//     out a new template at once, and how long until all are complete.

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

const controllersNamespace = "bench-controllers"

type controllersResults struct {
	replicas                   int
	allCreated, allReady       time.Duration
	deployments, perDeployment int
	rollout                    time.Duration
	cmCPU                      float64 // CPU-seconds during the rollout
	cmRSSPeakKB, cmRSSIdleKB   int64
	apiCPU                     float64
	errs                       int
	firstErr                   error
}

func (r controllersResults) failed() int { return r.errs }

// child is a pgkube companion process (controller manager, scheduler,
// agent) the bench runs.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startChild(bin, logPath string, args ...string) (*child, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting pgkube %s: %w", args[0], err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait() //nolint:errcheck
		logFile.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	select {
	case <-c.done:
	case <-time.After(stopTimeout):
		c.cmd.Process.Kill() //nolint:errcheck
		<-c.done
	}
}

// writeAdminKubeconfig writes a kubeconfig for the companions.
func writeAdminKubeconfig(path, url string, admin credentials) error {
	enc := base64.StdEncoding.EncodeToString
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: admin
  user: {client-certificate-data: %s, client-key-data: %s}
contexts:
- name: bench
  context: {cluster: bench, user: admin}
current-context: bench
`, url, enc(admin.caPEM), enc(admin.certPEM), enc(admin.keyPEM))
	return os.WriteFile(path, []byte(cfg), 0o600)
}

// companions are the client processes a section runs next to the API
// server, and an admin client.
type companions struct {
	kubeconfig       string
	cm, sched, agent *child
	cs               *kubernetes.Clientset
	tr               *http.Transport
}

func (p *companions) stop() {
	p.tr.CloseIdleConnections()
	for _, c := range []*child{p.agent, p.sched, p.cm} {
		if c != nil {
			c.stop()
		}
	}
}

// startCompanions starts the controller manager, the scheduler and an agent
// simulating nodes (agentArgs: more flags), makes namespace, and waits for
// the nodes. Logs go to dir/PREFIX-*.log.
func startCompanions(ctx context.Context, api *apiServer, bin, dir, prefix, namespace string, nodes int, agentArgs ...string) (*companions, error) {
	p := &companions{kubeconfig: filepath.Join(dir, prefix+".kubeconfig")}
	if err := writeAdminKubeconfig(p.kubeconfig, api.url, api.admin); err != nil {
		return nil, err
	}
	start := func(name string, args ...string) (*child, error) {
		return startChild(bin, filepath.Join(dir, prefix+"-"+name+".log"), append(args, "--kubeconfig", p.kubeconfig)...)
	}
	var err error
	fail := func(err error) (*companions, error) {
		if p.tr != nil {
			p.stop()
		} else {
			for _, c := range []*child{p.agent, p.sched, p.cm} {
				if c != nil {
					c.stop()
				}
			}
		}
		return nil, err
	}
	if p.cm, err = start("controller-manager", "controller-manager", "--leader-elect=false"); err != nil {
		return fail(err)
	}
	if p.sched, err = start("scheduler", "scheduler", "--leader-elect=false"); err != nil {
		return fail(err)
	}
	agent := append([]string{"agent", "--runtime", "simulated", "--nodes", fmt.Sprint(nodes), "--node-name", prefix + "-node"}, agentArgs...)
	if p.agent, err = start("agent", agent...); err != nil {
		return fail(err)
	}
	if p.cs, p.tr, err = api.adminClientset(8); err != nil {
		return fail(err)
	}
	if _, err := p.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fail(err)
	}
	if err := waitFor(ctx, 2*time.Minute, "the simulated nodes", func() (bool, error) {
		l, err := p.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) >= nodes, err
	}); err != nil {
		return fail(err)
	}
	return p, nil
}

func runControllers(ctx context.Context, c config, api *apiServer, bin, dir string) (controllersResults, error) {
	res := controllersResults{replicas: c.controllersReplicas, deployments: c.controllersDeployments, perDeployment: c.controllersPerDeployment}
	step(fmt.Sprintf("controllers: starting the controller manager, the scheduler and %d simulated nodes", c.controllersNodes))
	p, err := startCompanions(ctx, api, bin, dir, "controllers", controllersNamespace, c.controllersNodes,
		"--capacity", "cpu=64,memory=256Gi,pods=500", "--events=false")
	if err != nil {
		return res, err
	}
	defer p.stop()
	cs, cm := p.cs, p.cm

	// One big Deployment.
	step(fmt.Sprintf("controllers: a Deployment of %d replicas", c.controllersReplicas))
	start := time.Now()
	if _, err := cs.AppsV1().Deployments(controllersNamespace).Create(ctx, benchDeployment("big", c.controllersReplicas), metav1.CreateOptions{}); err != nil {
		return res, err
	}
	created := false
	if err := waitFor(ctx, 10*time.Minute, "the big Deployment's pods", func() (bool, error) {
		pods, err := cs.CoreV1().Pods(controllersNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=big"})
		if err != nil {
			return false, err
		}
		if !created && len(pods.Items) >= c.controllersReplicas {
			created, res.allCreated = true, time.Since(start)
		}
		return created && readyPods(pods.Items) >= c.controllersReplicas, nil
	}); err != nil {
		return res, err
	}
	res.allReady = time.Since(start)
	bg := metav1.DeletePropagationBackground
	if err := cs.AppsV1().Deployments(controllersNamespace).Delete(ctx, "big", metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		return res, err
	}
	if err := waitFor(ctx, 10*time.Minute, "the big Deployment's pods gone", func() (bool, error) {
		pods, err := cs.CoreV1().Pods(controllersNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=big"})
		return err == nil && len(pods.Items) == 0, err
	}); err != nil {
		return res, err
	}

	// Many Deployments rolling at once.
	step(fmt.Sprintf("controllers: %d Deployments of %d replicas rolling out at once", c.controllersDeployments, c.controllersPerDeployment))
	for i := range c.controllersDeployments {
		if _, err := cs.AppsV1().Deployments(controllersNamespace).Create(ctx, benchDeployment(fmt.Sprintf("roll-%03d", i), c.controllersPerDeployment),
			metav1.CreateOptions{}); err != nil {
			return res, err
		}
	}
	if err := waitFor(ctx, 10*time.Minute, "the Deployments available", func() (bool, error) {
		return deploymentsDone(ctx, cs, c.controllersDeployments)
	}); err != nil {
		return res, err
	}
	res.cmRSSIdleKB = statusKB(cm.pid(), "VmRSS")
	cmBefore, apiBefore := procCPU(cm.pid(), false), procCPU(api.pid(), false)
	var peak int64
	stopSampling := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if kb := statusKB(cm.pid(), "VmRSS"); kb > peak {
				peak = kb
			}
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	})
	start = time.Now()
	patch := []byte(fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"bench/rollout":%q}}}}}`, start.Format(time.RFC3339Nano)))
	for i := range c.controllersDeployments {
		if _, err := cs.AppsV1().Deployments(controllersNamespace).Patch(ctx, fmt.Sprintf("roll-%03d", i), types.StrategicMergePatchType, patch,
			metav1.PatchOptions{}); err != nil {
			res.errs++
			if res.firstErr == nil {
				res.firstErr = err
			}
		}
	}
	err = waitFor(ctx, 10*time.Minute, "the rollouts complete", func() (bool, error) {
		return deploymentsDone(ctx, cs, c.controllersDeployments)
	})
	res.rollout = time.Since(start)
	close(stopSampling)
	wg.Wait()
	res.cmCPU = procCPU(cm.pid(), false) - cmBefore
	res.apiCPU = procCPU(api.pid(), false) - apiBefore
	res.cmRSSPeakKB = peak
	return res, err
}

func benchDeployment(name string, replicas int) *appsv1.Deployment {
	n := int32(replicas)
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{}}}}}}}}
}

func readyPods(pods []corev1.Pod) int {
	n := 0
	for _, p := range pods {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n
}

// deploymentsDone: every Deployment has observed its spec and has all its
// replicas updated and available, and no old ones left.
func deploymentsDone(ctx context.Context, cs *kubernetes.Clientset, want int) (bool, error) {
	l, err := cs.AppsV1().Deployments(controllersNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err
	}
	done := 0
	for _, d := range l.Items {
		r := *d.Spec.Replicas
		if d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == r && d.Status.AvailableReplicas == r && d.Status.Replicas == r {
			done++
		}
	}
	return done >= want, nil
}

// waitFor polls cond every 200 ms until it holds, fails, or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: timed out after %v (last error: %v)", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func printControllersReport(w io.Writer, c config, m machine, r controllersResults) {
	fmt.Fprintf(w, "\n== controllers: controller manager, scheduler and %d simulated nodes ==\n", c.controllersNodes)
	fmt.Fprintf(w, "machine: %d CPUs, %s; load average %s at start, %s at end\n\n", m.cpus, m.model, m.load, loadAvg())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Deployment of %d replicas: all pods created / all Ready\t%.1f s / %.1f s\n", r.replicas,
		r.allCreated.Seconds(), r.allReady.Seconds())
	fmt.Fprintf(tw, "%d Deployments × %d replicas rolling at once: until all complete\t%.1f s\n", r.deployments, r.perDeployment, r.rollout.Seconds())
	fmt.Fprintf(tw, "  controller manager CPU during the rollout\t%.1f CPU-s (%.2f CPUs)\n", r.cmCPU, r.cmCPU/r.rollout.Seconds())
	fmt.Fprintf(tw, "  controller manager RSS before / peak\t%d MiB / %d MiB\n", r.cmRSSIdleKB/1024, r.cmRSSPeakKB/1024)
	fmt.Fprintf(tw, "  API server CPU during the rollout\t%.1f CPU-s\n", r.apiCPU)
	tw.Flush()
	if r.errs > 0 {
		fmt.Fprintf(w, "%d patches failed, the first: %v\n", r.errs, r.firstErr)
	}
}
