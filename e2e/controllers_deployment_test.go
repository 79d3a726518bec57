package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// wlDeployYAML: name, namespace, replicas, strategy block, image, extra
// spec lines.
const wlDeployYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  replicas: %[3]d
  selector:
    matchLabels:
      app: %[1]s
  strategy:
%[4]s
  template:
    metadata:
      labels:
        app: %[1]s
    spec:
      containers:
      - name: main
        image: %[5]s
%[6]s`

func wlDeployment(name, ns string, replicas int, strategy, image, extra string) string {
	return fmt.Sprintf(wlDeployYAML, name, ns, replicas, strategy, image, extra)
}

const wlRollingNoUnavailable = `    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0`

func wlGetDeploy(t *testing.T, cs kubernetes.Interface, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// wlReplicaSets are the deployment's ReplicaSets by name.
func wlReplicaSets(t *testing.T, cs kubernetes.Interface, ns string, d *appsv1.Deployment) map[string]*appsv1.ReplicaSet {
	t.Helper()
	l, err := cs.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*appsv1.ReplicaSet{}
	for i := range l.Items {
		if metav1.IsControlledBy(&l.Items[i], d) {
			out[l.Items[i].Name] = &l.Items[i]
		}
	}
	return out
}

func wlCondition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == t {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

// wlRolledOut waits until the deployment is completely rolled out to
// want replicas of image.
func wlRolledOut(t *testing.T, cs kubernetes.Interface, ns, name string, want int32, image string) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	within(t, 60*time.Second, name+" rolled out", func() error {
		d = wlGetDeploy(t, cs, ns, name)
		st := d.Status
		if st.ObservedGeneration < d.Generation || st.Replicas != want || st.UpdatedReplicas != want ||
			st.ReadyReplicas != want || st.AvailableReplicas != want || st.UnavailableReplicas != 0 {
			return fmt.Errorf("generation %d status %+v", d.Generation, st)
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; img != image {
			return fmt.Errorf("image %s", img)
		}
		if c := wlCondition(d, appsv1.DeploymentProgressing); c == nil || c.Reason != "NewReplicaSetAvailable" {
			return fmt.Errorf("progressing %+v", c)
		}
		if c := wlCondition(d, appsv1.DeploymentAvailable); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "MinimumReplicasAvailable" {
			return fmt.Errorf("available %+v", c)
		}
		if n := len(wlPods(t, cs, ns, "app="+name)); n != int(want) {
			return fmt.Errorf("%d pods", n)
		}
		return nil
	})
	return d
}

// wlNewRS is the ReplicaSet of the deployment's current template.
func wlNewRS(t *testing.T, cs kubernetes.Interface, ns string, d *appsv1.Deployment) *appsv1.ReplicaSet {
	t.Helper()
	for _, rs := range wlReplicaSets(t, cs, ns, d) {
		if rs.Spec.Template.Spec.Containers[0].Image == d.Spec.Template.Spec.Containers[0].Image &&
			fmt.Sprint(rs.Spec.Template.Annotations) == fmt.Sprint(d.Spec.Template.Annotations) {
			return rs
		}
	}
	t.Fatalf("no ReplicaSet for the template of %s", d.Name)
	return nil
}

// TestControllersDeploymentRollout: create, scale 3→10→2, a rolling
// update with maxUnavailable=0 that never has fewer than the replicas
// available, rollout status/history/undo (to the previous and to a given
// revision), restart, revisionHistoryLimit, and the Events.
func TestControllersDeploymentRollout(t *testing.T) {
	const ns = "ctl-deploy"
	cs, k := wlSetup(t, ns, wlKubelet{node: "node-a", terminate: 200 * time.Millisecond})
	ctx := context.Background()
	manifest := wlDeployment("web", ns, 3, wlRollingNoUnavailable, "registry.example/web:1", "  revisionHistoryLimit: 1\n")
	k.okIn(manifest, "apply", "-f", "-")
	out := k.ok("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
	contains(t, out, `deployment "web" successfully rolled out`)
	d := wlRolledOut(t, cs, ns, "web", 3, "registry.example/web:1")

	rss := wlReplicaSets(t, cs, ns, d)
	if len(rss) != 1 {
		t.Fatalf("%d ReplicaSets", len(rss))
	}
	var first *appsv1.ReplicaSet
	for _, rs := range rss {
		first = rs
	}
	hash := first.Labels["pod-template-hash"]
	if hash == "" || first.Name != "web-"+hash || first.Spec.Selector.MatchLabels["pod-template-hash"] != hash ||
		first.Spec.Template.Labels["pod-template-hash"] != hash {
		t.Fatalf("ReplicaSet %s labels %v selector %v", first.Name, first.Labels, first.Spec.Selector)
	}
	if a := first.Annotations; a["deployment.kubernetes.io/revision"] != "1" || a["deployment.kubernetes.io/desired-replicas"] != "3" ||
		a["deployment.kubernetes.io/max-replicas"] != "4" {
		t.Fatalf("ReplicaSet annotations %v", a)
	}
	if d.Annotations["deployment.kubernetes.io/revision"] != "1" {
		t.Fatalf("deployment annotations %v", d.Annotations)
	}
	for _, p := range wlPods(t, cs, ns, "app=web") {
		if p.Labels["pod-template-hash"] != hash || metav1.GetControllerOf(&p).Name != first.Name {
			t.Fatalf("pod %s labels %v", p.Name, p.Labels)
		}
	}
	k.ok("get", "deployment", "web", "-n", ns)

	// Settled: the controllers write nothing more (no sync loop feeding
	// on its own writes).
	time.Sleep(500 * time.Millisecond)
	d, rsBefore := wlGetDeploy(t, cs, ns, "web"), wlReplicaSets(t, cs, ns, d)[first.Name]
	time.Sleep(2 * time.Second)
	if d2, rs2 := wlGetDeploy(t, cs, ns, "web"), wlReplicaSets(t, cs, ns, d)[first.Name]; d2.ResourceVersion != d.ResourceVersion || rs2.ResourceVersion != rsBefore.ResourceVersion {
		t.Fatalf("a settled deployment keeps being written: deployment %s → %s, ReplicaSet %s → %s\n%+v\n%+v",
			d.ResourceVersion, d2.ResourceVersion, rsBefore.ResourceVersion, rs2.ResourceVersion, d.Status, d2.Status)
	}

	// Scale 3 → 10 → 2.
	k.ok("scale", "deployment/web", "-n", ns, "--replicas=10")
	wlRolledOut(t, cs, ns, "web", 10, "registry.example/web:1")
	k.ok("scale", "deployment/web", "-n", ns, "--replicas=2")
	wlRolledOut(t, cs, ns, "web", 2, "registry.example/web:1")
	ev := wlEvents(t, cs, ns, "Deployment", "web")
	for _, want := range []string{
		"ScalingReplicaSet Scaled up replica set " + first.Name + " from 0 to 3",
		"ScalingReplicaSet Scaled up replica set " + first.Name + " from 3 to 10",
		"ScalingReplicaSet Scaled down replica set " + first.Name + " from 10 to 2",
	} {
		if !wlHasEvent(ev, want) {
			t.Fatalf("no event %q in %v", want, ev)
		}
	}
	k.ok("scale", "deployment/web", "-n", ns, "--replicas=3")
	wlRolledOut(t, cs, ns, "web", 3, "registry.example/web:1")

	// A rolling update with maxUnavailable=0 and maxSurge=1: at least 3
	// ready pods and at most 4 pods throughout.
	sel := labels.SelectorFromSet(labels.Set{"app": "web"})
	ready := wlSample(func() (int, bool) { return wlCountReady(cs, ns, sel) })
	total := wlSample(func() (int, bool) {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return 0, false
		}
		n := 0
		for _, p := range l.Items {
			if p.DeletionTimestamp == nil {
				n++
			}
		}
		return n, true
	})
	available := wlSample(func() (int, bool) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return 0, false
		}
		return int(d.Status.AvailableReplicas), true
	})
	k.ok("annotate", "deployment/web", "-n", ns, "kubernetes.io/change-cause=web 2")
	k.ok("set", "image", "deployment/web", "-n", ns, "main=registry.example/web:2")
	out = k.ok("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s")
	contains(t, out, `deployment "web" successfully rolled out`)
	d = wlRolledOut(t, cs, ns, "web", 3, "registry.example/web:2")
	lowReady, _, n1 := ready.finish()
	_, topTotal, n2 := total.finish()
	lowAvail, _, n3 := available.finish()
	if n1 < 10 || n2 < 10 || n3 < 10 {
		t.Fatalf("too few samples: %d %d %d", n1, n2, n3)
	}
	if lowReady < 3 || lowAvail < 3 {
		t.Fatalf("maxUnavailable=0 rollout went down to %d ready pods, %d available in status", lowReady, lowAvail)
	}
	if topTotal > 4 {
		t.Fatalf("maxSurge=1 rollout ran %d pods at once", topTotal)
	}
	second := wlNewRS(t, cs, ns, d)
	if second.Name == first.Name || second.Annotations["deployment.kubernetes.io/revision"] != "2" ||
		second.Annotations["kubernetes.io/change-cause"] != "web 2" || d.Annotations["deployment.kubernetes.io/revision"] != "2" {
		t.Fatalf("second ReplicaSet %s %v, deployment %v", second.Name, second.Annotations, d.Annotations)
	}
	within(t, 20*time.Second, "old ReplicaSet at 0", func() error {
		old, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, first.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *old.Spec.Replicas != 0 || old.Status.Replicas != 0 {
			return fmt.Errorf("old ReplicaSet %d/%d", *old.Spec.Replicas, old.Status.Replicas)
		}
		return nil
	})

	// History lists both revisions and the change cause.
	out = k.ok("rollout", "history", "deployment/web", "-n", ns)
	contains(t, out, "REVISION", "CHANGE-CAUSE", "web 2")
	if revs := wlRevisions(out); fmt.Sprint(revs) != "[1 2]" {
		t.Fatalf("history revisions %v:\n%s", revs, out)
	}
	out = k.ok("rollout", "history", "deployment/web", "-n", ns, "--revision=1")
	contains(t, out, "registry.example/web:1")

	// Undo: back to the first template, as revision 3, on the first
	// ReplicaSet again.
	out = k.ok("rollout", "undo", "deployment/web", "-n", ns)
	contains(t, out, "rolled back")
	k.ok("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s")
	d = wlRolledOut(t, cs, ns, "web", 3, "registry.example/web:1")
	within(t, 10*time.Second, "revision 3 on the first ReplicaSet", func() error {
		d = wlGetDeploy(t, cs, ns, "web")
		rs, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, first.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if rs.Annotations["deployment.kubernetes.io/revision"] != "3" || rs.Annotations["deployment.kubernetes.io/revision-history"] != "1" ||
			d.Annotations["deployment.kubernetes.io/revision"] != "3" || *rs.Spec.Replicas != 3 {
			return fmt.Errorf("ReplicaSet %v replicas %d, deployment %v", rs.Annotations, *rs.Spec.Replicas, d.Annotations)
		}
		return nil
	})
	if revs := wlRevisions(k.ok("rollout", "history", "deployment/web", "-n", ns)); fmt.Sprint(revs) != "[2 3]" {
		t.Fatalf("history after undo: %v", revs)
	}

	// Undo to a given revision.
	k.ok("rollout", "undo", "deployment/web", "-n", ns, "--to-revision=2")
	k.ok("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s")
	d = wlRolledOut(t, cs, ns, "web", 3, "registry.example/web:2")
	if got := wlNewRS(t, cs, ns, d).Name; got != second.Name {
		t.Fatalf("undo to revision 2 uses %s, not %s", got, second.Name)
	}

	// Restart: a template annotation, hence a third ReplicaSet; with
	// revisionHistoryLimit 1 the oldest revision's ReplicaSet goes.
	k.ok("rollout", "restart", "deployment/web", "-n", ns)
	k.ok("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s")
	d = wlRolledOut(t, cs, ns, "web", 3, "registry.example/web:2")
	if d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" {
		t.Fatalf("no restartedAt in %v", d.Spec.Template.Annotations)
	}
	within(t, 20*time.Second, "history cleaned up", func() error {
		rss := wlReplicaSets(t, cs, ns, d)
		if _, ok := rss[first.Name]; ok || len(rss) != 2 {
			return fmt.Errorf("ReplicaSets %v", keysOfRS(rss))
		}
		return nil
	})
	out = k.ok("rollout", "history", "deployment/web", "-n", ns)
	if revs := wlRevisions(out); fmt.Sprint(revs) != "[4 5]" {
		t.Fatalf("history after restart: %v\n%s", revs, out)
	}

	// describe tells the story.
	out = k.ok("describe", "deployment", "web", "-n", ns)
	contains(t, out, "ScalingReplicaSet", "NewReplicaSetAvailable", "MinimumReplicasAvailable", "0 max unavailable, 1 max surge")
}

func keysOfRS(m map[string]*appsv1.ReplicaSet) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// wlRevisions are the revision numbers of `kubectl rollout history`.
func wlRevisions(out string) []string {
	var revs []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] != "REVISION" && strings.Trim(f[0], "0123456789") == "" {
			revs = append(revs, f[0])
		}
	}
	return revs
}

// TestControllersDeploymentPauseResume: a paused deployment does not roll
// out a new template but still scales; pausing half-way keeps a canary,
// and scaling it then is proportional; resume finishes the rollout.
func TestControllersDeploymentPauseResume(t *testing.T) {
	const ns = "ctl-pause"
	cs, k := wlSetup(t, ns, wlKubelet{ready: wlImageReady})
	ctx := context.Background()
	strategy := `    type: RollingUpdate
    rollingUpdate:
      maxSurge: 3
      maxUnavailable: 2`
	k.okIn(wlDeployment("api", ns, 4, strategy, "registry.example/api:1", ""), "apply", "-f", "-")
	d := wlRolledOut(t, cs, ns, "api", 4, "registry.example/api:1")
	first := wlNewRS(t, cs, ns, d)

	// Paused: a new template starts nothing.
	k.ok("rollout", "pause", "deployment/api", "-n", ns)
	k.ok("set", "image", "deployment/api", "-n", ns, "main=registry.example/api:2")
	within(t, 15*time.Second, "paused condition", func() error {
		d = wlGetDeploy(t, cs, ns, "api")
		c := wlCondition(d, appsv1.DeploymentProgressing)
		if d.Status.ObservedGeneration != d.Generation || c == nil || c.Reason != "DeploymentPaused" || c.Status != corev1.ConditionUnknown {
			return fmt.Errorf("generation %d observed %d progressing %+v", d.Generation, d.Status.ObservedGeneration, c)
		}
		return nil
	})
	time.Sleep(time.Second)
	if rss := wlReplicaSets(t, cs, ns, d); len(rss) != 1 {
		t.Fatalf("a paused deployment made ReplicaSets: %v", keysOfRS(rss))
	}
	// ... but scales.
	k.ok("scale", "deployment/api", "-n", ns, "--replicas=6")
	within(t, 30*time.Second, "paused scale", func() error {
		rs, _ := cs.AppsV1().ReplicaSets(ns).Get(ctx, first.Name, metav1.GetOptions{})
		if *rs.Spec.Replicas != 6 || len(wlPods(t, cs, ns, "app=api")) != 6 {
			return fmt.Errorf("ReplicaSet at %d", *rs.Spec.Replicas)
		}
		return nil
	})
	// Resume: the rollout to api:2 completes.
	k.ok("rollout", "resume", "deployment/api", "-n", ns)
	k.ok("rollout", "status", "deployment/api", "-n", ns, "--timeout=90s")
	d = wlRolledOut(t, cs, ns, "api", 6, "registry.example/api:2")
	stable := wlNewRS(t, cs, ns, d)

	// A template whose pods never become ready, paused half-way: a
	// canary. 6 replicas, surge 3, unavailable 2: the new ReplicaSet gets
	// 5 (9 pods at most), the old keeps 4 (at least 4 available).
	k.ok("set", "image", "deployment/api", "-n", ns, "main=registry.example/api:never-ready")
	var canary *appsv1.ReplicaSet
	within(t, 30*time.Second, "rollout stuck half-way", func() error {
		d = wlGetDeploy(t, cs, ns, "api")
		rss := wlReplicaSets(t, cs, ns, d)
		old, ok := rss[stable.Name]
		if !ok || len(rss) != 3 {
			return fmt.Errorf("ReplicaSets %v", keysOfRS(rss))
		}
		for name, rs := range rss {
			if name != stable.Name && name != first.Name {
				canary = rs
			}
		}
		if *old.Spec.Replicas != 4 || *canary.Spec.Replicas != 5 {
			return fmt.Errorf("stable %d, canary %d", *old.Spec.Replicas, *canary.Spec.Replicas)
		}
		return nil
	})
	k.ok("rollout", "pause", "deployment/api", "-n", ns)
	// Scaling 6 → 12 while paused: max 9 → 15, spread by size: the
	// stable one 4*15/9 = 6.67 → 7, the canary 5*15/9 = 8.33 → 8.
	k.ok("scale", "deployment/api", "-n", ns, "--replicas=12")
	within(t, 30*time.Second, "proportional scaling", func() error {
		old, _ := cs.AppsV1().ReplicaSets(ns).Get(ctx, stable.Name, metav1.GetOptions{})
		c, _ := cs.AppsV1().ReplicaSets(ns).Get(ctx, canary.Name, metav1.GetOptions{})
		if *old.Spec.Replicas != 7 || *c.Spec.Replicas != 8 {
			return fmt.Errorf("stable %d, canary %d", *old.Spec.Replicas, *c.Spec.Replicas)
		}
		return nil
	})
	time.Sleep(time.Second)
	if rs, _ := cs.AppsV1().ReplicaSets(ns).Get(ctx, stable.Name, metav1.GetOptions{}); *rs.Spec.Replicas != 7 {
		t.Fatalf("a paused rollout moved on: stable at %d", *rs.Spec.Replicas)
	}
	// kubectl refuses to roll back a paused deployment.
	out := k.fails("rollout", "undo", "deployment/api", "-n", ns)
	contains(t, out, "paused")
	// Give up on the canary: resume and roll back.
	k.ok("rollout", "resume", "deployment/api", "-n", ns)
	k.ok("rollout", "undo", "deployment/api", "-n", ns)
	k.ok("rollout", "status", "deployment/api", "-n", ns, "--timeout=90s")
	wlRolledOut(t, cs, ns, "api", 12, "registry.example/api:2")
}

// TestControllersDeploymentProgressDeadline: pods that never become ready
// make the rollout fail with ProgressDeadlineExceeded, and kubectl rollout
// status says so.
func TestControllersDeploymentProgressDeadline(t *testing.T) {
	const ns = "ctl-deadline"
	cs, k := wlSetup(t, ns, wlKubelet{ready: wlImageReady})
	k.okIn(wlDeployment("stuck", ns, 2, wlRollingNoUnavailable, "registry.example/never-ready:1", "  progressDeadlineSeconds: 3\n"), "apply", "-f", "-")
	within(t, 30*time.Second, "ProgressDeadlineExceeded", func() error {
		d := wlGetDeploy(t, cs, ns, "stuck")
		c := wlCondition(d, appsv1.DeploymentProgressing)
		if c == nil || c.Status != corev1.ConditionFalse || c.Reason != "ProgressDeadlineExceeded" {
			return fmt.Errorf("progressing %+v", c)
		}
		if !strings.Contains(c.Message, "has timed out progressing") {
			return fmt.Errorf("message %q", c.Message)
		}
		if a := wlCondition(d, appsv1.DeploymentAvailable); a == nil || a.Status != corev1.ConditionFalse || a.Reason != "MinimumReplicasUnavailable" {
			return fmt.Errorf("available %+v", a)
		}
		if d.Status.UnavailableReplicas != 2 || d.Status.AvailableReplicas != 0 {
			return fmt.Errorf("status %+v", d.Status)
		}
		return nil
	})
	out := k.fails("rollout", "status", "deployment/stuck", "-n", ns, "--timeout=20s")
	contains(t, out, "exceeded its progress deadline")
}

// TestControllersDeploymentRecreate: old pods are all gone before new ones
// start.
func TestControllersDeploymentRecreate(t *testing.T) {
	const ns = "ctl-recreate"
	cs, k := wlSetup(t, ns, wlKubelet{node: "node-b", terminate: 500 * time.Millisecond})
	ctx := context.Background()
	k.okIn(wlDeployment("batch", ns, 2, "    type: Recreate", "registry.example/batch:1", ""), "apply", "-f", "-")
	wlRolledOut(t, cs, ns, "batch", 2, "registry.example/batch:1")
	mixed := wlSample(func() (int, bool) {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=batch"})
		if err != nil {
			return 0, false
		}
		images := map[string]bool{}
		for _, p := range l.Items { // terminating ones too: they still run
			images[p.Spec.Containers[0].Image] = true
		}
		return len(images), true
	})
	k.ok("set", "image", "deployment/batch", "-n", ns, "main=registry.example/batch:2")
	k.ok("rollout", "status", "deployment/batch", "-n", ns, "--timeout=60s")
	wlRolledOut(t, cs, ns, "batch", 2, "registry.example/batch:2")
	if _, top, _ := mixed.finish(); top > 1 {
		t.Fatal("old and new pods ran together under Recreate")
	}
}

// TestControllersDeploymentInTenant: one controller manager serves every
// logical cluster: the same namespace and deployment name in the root and
// in a tenant roll out separately, each with its own sizes, ReplicaSets
// and Events.
func TestControllersDeploymentInTenant(t *testing.T) {
	const ns = "ctl-tenant"
	srv := sharedServer(t)
	root, kRoot := wlSetupOn(t, srv, ns, wlKubelet{})
	kc := tenant(t, srv, "wl-tenant")
	ten := clientFor(t, kc)
	namespace(t, ten, ns)
	wlStartKubelet(t, wlKubelet{cs: ten, ns: ns})
	kTen := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: kc, cacheDir: t.TempDir()}

	kRoot.okIn(wlDeployment("same", ns, 2, wlRollingNoUnavailable, "registry.example/root:1", ""), "apply", "-f", "-")
	kTen.okIn(wlDeployment("same", ns, 3, wlRollingNoUnavailable, "registry.example/tenant:1", ""), "apply", "-f", "-")
	kTen.ok("rollout", "status", "deployment/same", "-n", ns, "--timeout=60s")
	dr := wlRolledOut(t, root, ns, "same", 2, "registry.example/root:1")
	dt := wlRolledOut(t, ten, ns, "same", 3, "registry.example/tenant:1")
	for _, c := range []struct {
		cs    kubernetes.Interface
		d     *appsv1.Deployment
		image string
	}{{root, dr, "registry.example/root:1"}, {ten, dt, "registry.example/tenant:1"}} {
		rs := wlNewRS(t, c.cs, ns, c.d)
		for _, p := range wlPods(t, c.cs, ns, "app=same") {
			if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != rs.UID || p.Spec.Containers[0].Image != c.image {
				t.Fatalf("pod %s: controller %+v image %s", p.Name, ref, p.Spec.Containers[0].Image)
			}
		}
		if ev := wlEvents(t, c.cs, ns, "Deployment", "same"); !wlHasEvent(ev, fmt.Sprintf("ScalingReplicaSet Scaled up replica set %s from 0 to %d", rs.Name, *c.d.Spec.Replicas)) {
			t.Fatalf("events of %s: %v", c.image, ev)
		}
	}
}
