package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// companionProc is a pgkube client process (agent, scheduler) the test
// runs besides those of pgkube up.
type companionProc struct {
	cmd  *exec.Cmd
	out  *strings.Builder
	done chan struct{}
}

// startCompanion runs `pgkube ARGS...` until the test ends (or kill).
func startCompanion(t *testing.T, args ...string) *companionProc {
	t.Helper()
	a := &companionProc{out: &strings.Builder{}, done: make(chan struct{})}
	a.cmd = exec.Command(pgkubeBinary(t), args...)
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.cmd.Wait(); close(a.done) }() //nolint:errcheck
	t.Cleanup(func() {
		a.cmd.Process.Signal(os.Interrupt) //nolint:errcheck
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			a.cmd.Process.Kill() //nolint:errcheck
			<-a.done
		}
		if t.Failed() {
			t.Logf("pgkube %s output:\n%s", args[0], a.out.String())
		}
	})
	return a
}

// kill ends the process at once, as a crash would.
func (a *companionProc) kill() {
	a.cmd.Process.Kill() //nolint:errcheck
	<-a.done
}

// startAgent runs `pgkube agent --kubeconfig K ARGS...` until the test
// ends.
func startAgent(t *testing.T, kubeconfig string, args ...string) *companionProc {
	t.Helper()
	return startCompanion(t, append([]string{"agent", "--kubeconfig", kubeconfig}, args...)...)
}

// agWait polls f until it returns nil, failing the test after d.
func agWait(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// agEvents are "Reason Message" of the Events about an object.
func agEvents(cs kubernetes.Interface, ns, name string) []string {
	l, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return nil
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].FirstTimestamp.Before(&l.Items[j].FirstTimestamp) })
	var out []string
	for _, e := range l.Items {
		out = append(out, e.Reason+" "+e.Message)
	}
	return out
}

func agHasEvent(cs kubernetes.Interface, ns, name, want string) error {
	evs := agEvents(cs, ns, name)
	for _, e := range evs {
		if strings.HasPrefix(e, want) {
			return nil
		}
	}
	return fmt.Errorf("no event %q among %q", want, evs)
}

func agCondition(p *corev1.Pod, ct corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == ct {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// agHostNode is the node pgkube up's agent registers: the host's name.
func agHostNode(t *testing.T) string {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range strings.ToLower(host) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteRune('-')
		}
	}
	return strings.Trim(b.String(), "-.")
}

// TestAgentRunsPods: pgkube up's scheduler and simulated agent place and
// run pods as a kubelet would report them: node registration and Lease,
// pod status (phase, conditions, container statuses, IPs, QoS), Events,
// graceful deletion, a Job that completes, and a tenant's pod on the
// shared node.
func TestAgentRunsPods(t *testing.T) {
	certs, _ := testCerts(t)
	srv := startUp(t, tempDir(t), freePort(t), pgtest.NewDatabase(t), "--cert-dir", certs, "--agent=simulated")
	defer srv.stop() //nolint:errcheck
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	nodeName := agHostNode(t)

	// The node: registered, Ready, with its labels, addresses and info.
	var node *corev1.Node
	agWait(t, 30*time.Second, "node registered and ready", func() error {
		n, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				node = n
				return nil
			}
		}
		return fmt.Errorf("not ready: %+v", n.Status.Conditions)
	})
	if node.Labels[corev1.LabelHostname] != nodeName || node.Labels[corev1.LabelOSStable] != "linux" || node.Labels[corev1.LabelArchStable] == "" {
		t.Errorf("node labels %v", node.Labels)
	}
	var condTypes []string
	for _, c := range node.Status.Conditions {
		condTypes = append(condTypes, string(c.Type))
	}
	sort.Strings(condTypes)
	if strings.Join(condTypes, ",") != "DiskPressure,MemoryPressure,PIDPressure,Ready" {
		t.Errorf("node conditions %v", condTypes)
	}
	if len(node.Status.Addresses) == 0 || node.Status.NodeInfo.ContainerRuntimeVersion != "simulated://0.1.0" ||
		node.Status.NodeInfo.KubeletVersion == "" || node.Status.Allocatable.Cpu().IsZero() || node.Status.Allocatable.Pods().Value() != 110 {
		t.Errorf("node status: addresses %v info %+v allocatable %v", node.Status.Addresses, node.Status.NodeInfo, node.Status.Allocatable)
	}
	// Its Lease is renewed.
	var lease *coordinationv1.Lease
	agWait(t, 10*time.Second, "node lease", func() error {
		var err error
		lease, err = cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, nodeName, metav1.GetOptions{})
		return err
	})
	if *lease.Spec.HolderIdentity != nodeName || len(lease.OwnerReferences) != 1 || lease.OwnerReferences[0].UID != node.UID {
		t.Errorf("lease %+v", lease)
	}
	first := lease.Spec.RenewTime.Time
	agWait(t, 25*time.Second, "lease renewed", func() error {
		cur, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !cur.Spec.RenewTime.Time.After(first) {
			return fmt.Errorf("renewTime still %v", first)
		}
		return nil
	})

	namespace(t, cs, "agent")
	// A pod with an init container and requests: Running and Ready with
	// the status a kubelet reports.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "setup", Image: "busybox:1.36", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}}}},
		Containers: []corev1.Container{{Name: "app", Image: "busybox:1.36", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}}}},
	}}
	if _, err := cs.CoreV1().Pods("agent").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var p *corev1.Pod
	agWait(t, 30*time.Second, "pod running and ready", func() error {
		var err error
		p, err = cs.CoreV1().Pods("agent").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c := agCondition(p, corev1.PodReady); p.Status.Phase != corev1.PodRunning || c == nil || c.Status != corev1.ConditionTrue {
			return fmt.Errorf("phase %s conditions %+v", p.Status.Phase, p.Status.Conditions)
		}
		return nil
	})
	st := p.Status
	if p.Spec.NodeName != nodeName {
		t.Errorf("pod on %q, want %q", p.Spec.NodeName, nodeName)
	}
	var conds []string
	for _, c := range st.Conditions {
		conds = append(conds, string(c.Type)+"="+string(c.Status))
	}
	if strings.Join(conds, ",") != "PodReadyToStartContainers=True,Initialized=True,Ready=True,ContainersReady=True,PodScheduled=True" {
		t.Errorf("conditions %v", conds)
	}
	if st.PodIP == "" || len(st.PodIPs) != 1 || st.PodIPs[0].IP != st.PodIP || st.HostIP == "" || len(st.HostIPs) != 1 || st.StartTime == nil {
		t.Errorf("addresses: podIP %q podIPs %v hostIP %q hostIPs %v startTime %v", st.PodIP, st.PodIPs, st.HostIP, st.HostIPs, st.StartTime)
	}
	if st.QOSClass != corev1.PodQOSGuaranteed {
		t.Errorf("qosClass %s, want Guaranteed", st.QOSClass)
	}
	if len(st.InitContainerStatuses) != 1 || st.InitContainerStatuses[0].State.Terminated == nil ||
		st.InitContainerStatuses[0].State.Terminated.Reason != "Completed" || !st.InitContainerStatuses[0].Ready {
		t.Errorf("init container status %+v", st.InitContainerStatuses)
	}
	if len(st.ContainerStatuses) != 1 {
		t.Fatalf("container statuses %+v", st.ContainerStatuses)
	}
	c := st.ContainerStatuses[0]
	if c.Name != "app" || c.State.Running == nil || c.State.Running.StartedAt.IsZero() || !c.Ready || c.RestartCount != 0 ||
		c.Started == nil || !*c.Started || !strings.HasPrefix(c.ContainerID, "simulated://") || !strings.Contains(c.ImageID, "@sha256:") {
		t.Errorf("container status %+v", c)
	}
	agWait(t, 10*time.Second, "Scheduled event", func() error {
		return agHasEvent(cs, "agent", "web", fmt.Sprintf("Scheduled Successfully assigned agent/web to %s", nodeName))
	})
	agWait(t, 10*time.Second, "kubelet events", func() error {
		for _, want := range []string{"Pulled Container image \"busybox:1.36\" already present on machine", "Created Container created", "Started Container started"} {
			if err := agHasEvent(cs, "agent", "web", want); err != nil {
				return err
			}
		}
		return nil
	})

	// Deletion honours the time the containers take to stop, then the
	// agent removes the pod.
	slow := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "slow", Annotations: map[string]string{"pgkube.io/simulate-termination-delay": "2s"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if _, err := cs.CoreV1().Pods("agent").Create(ctx, slow, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	agWait(t, 30*time.Second, "slow pod running", func() error {
		p, err := cs.CoreV1().Pods("agent").Get(ctx, "slow", metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("%v %v", err, p.Status.Phase)
		}
		return nil
	})
	for _, name := range []string{"web", "slow"} {
		if err := cs.CoreV1().Pods("agent").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deleted := time.Now()
	agWait(t, 20*time.Second, "pods gone", func() error {
		for _, name := range []string{"web", "slow"} {
			if p, err := cs.CoreV1().Pods("agent").Get(ctx, name, metav1.GetOptions{}); err == nil {
				return fmt.Errorf("%s still there (deletionTimestamp %v)", name, p.DeletionTimestamp)
			} else if !apierrors.IsNotFound(err) {
				return err
			}
		}
		return nil
	})
	if took := time.Since(deleted); took < 1500*time.Millisecond {
		t.Errorf("the pod that takes 2s to stop was gone after %v", took)
	}
	agWait(t, 10*time.Second, "Killing event", func() error { return agHasEvent(cs, "agent", "slow", "Killing Stopping container c") })

	// A Job whose container exits 0 after a second completes; one that
	// exits 1 fails.
	job := func(name string, ann map[string]string) *batchv1.Job {
		return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To(int32(0)),
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: ann}, Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}}
	}
	if _, err := cs.BatchV1().Jobs("agent").Create(ctx, job("ok", map[string]string{"pgkube.io/simulate-exit-after": "1s"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.BatchV1().Jobs("agent").Create(ctx, job("bad", map[string]string{"pgkube.io/simulate-exit-code": "1"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	jobDone := func(name string, want batchv1.JobConditionType) func() error {
		return func() error {
			j, err := cs.BatchV1().Jobs("agent").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, c := range j.Status.Conditions {
				if c.Type == want && c.Status == corev1.ConditionTrue {
					return nil
				}
			}
			return fmt.Errorf("job %s: %+v", name, j.Status)
		}
	}
	agWait(t, 60*time.Second, "job ok completes", jobDone("ok", batchv1.JobComplete))
	agWait(t, 60*time.Second, "job bad fails", jobDone("bad", batchv1.JobFailed))
	pods, err := cs.CoreV1().Pods("agent").List(ctx, metav1.ListOptions{LabelSelector: "job-name=ok"})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Status.Phase != corev1.PodSucceeded ||
		pods.Items[0].Status.ContainerStatuses[0].State.Terminated == nil || pods.Items[0].Status.ContainerStatuses[0].State.Terminated.ExitCode != 0 {
		t.Errorf("job ok's pod: %v %+v", err, pods)
	}

	// A tenant's pod runs on the shared node; its status is written in the
	// tenant.
	kc := tenant(t, srv, "agent-tenant")
	tcfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	tcs := kubernetes.NewForConfigOrDie(tcfg)
	agWait(t, 30*time.Second, "tenant's default namespace", func() error {
		_, err := tcs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "t"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
		return err
	})
	agWait(t, 30*time.Second, "tenant pod running", func() error {
		p, err := tcs.CoreV1().Pods("default").Get(ctx, "t", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Spec.NodeName != nodeName || p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("node %q phase %s", p.Spec.NodeName, p.Status.Phase)
		}
		return nil
	})
	if _, err := cs.CoreV1().Pods("default").Get(ctx, "t", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the tenant's pod is visible in the root cluster: %v", err)
	}
}

// TestAgentSimulatesManyNodes: one agent process stands for several
// nodes, each with its own Lease, pod network and address.
func TestAgentSimulatesManyNodes(t *testing.T) {
	certs, _ := testCerts(t)
	srv := startUp(t, tempDir(t), freePort(t), pgtest.NewDatabase(t), "--cert-dir", certs, "--agent=none")
	defer srv.stop() //nolint:errcheck
	startAgent(t, srv.kubeconfig, "--node-name", "sim", "--nodes", "5", "--zones", "2", "--capacity", "cpu=2,memory=4Gi", "--events=false")
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	agWait(t, 30*time.Second, "5 nodes ready", func() error {
		l, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(l.Items) != 5 {
			return fmt.Errorf("%d nodes", len(l.Items))
		}
		for _, n := range l.Items {
			if n.Status.Allocatable.Cpu().String() != "2" || n.Labels[corev1.LabelTopologyZone] == "" || n.Spec.PodCIDR == "" {
				return fmt.Errorf("node %s: %v %v %q", n.Name, n.Status.Allocatable, n.Labels, n.Spec.PodCIDR)
			}
		}
		return nil
	})
	agWait(t, 10*time.Second, "5 leases", func() error {
		l, err := cs.CoordinationV1().Leases("kube-node-lease").List(ctx, metav1.ListOptions{})
		if err != nil || len(l.Items) != 5 {
			return fmt.Errorf("%v, %d leases", err, len(l.Items))
		}
		return nil
	})
	namespace(t, cs, "many")
	for i := range 10 {
		_, err := cs.CoreV1().Pods("many").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("p", i)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("900m")}}}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	agWait(t, 60*time.Second, "10 pods running on 5 nodes", func() error {
		pods, err := cs.CoreV1().Pods("many").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		perNode := map[string]int{}
		ips := map[string]bool{}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning {
				return fmt.Errorf("%s is %s", p.Name, p.Status.Phase)
			}
			perNode[p.Spec.NodeName]++
			if ips[p.Status.PodIP] {
				return fmt.Errorf("pod IP %s used twice", p.Status.PodIP)
			}
			ips[p.Status.PodIP] = true
		}
		// 900m each on 2-cpu nodes: exactly two per node.
		for n, c := range perNode {
			if c != 2 {
				return fmt.Errorf("node %s has %d pods: %v", n, c, perNode)
			}
		}
		return nil
	})
}
