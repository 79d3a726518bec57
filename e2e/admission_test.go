package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

func simplePod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
}

// TestQuotaUnderConcurrentCreates: 20 pods created at once against a quota
// of 5 pods: exactly 5 are admitted, every round.
func TestQuotaUnderConcurrentCreates(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(adminConfig(t, srv.url))
	for round := range 5 {
		ns := fmt.Sprintf("quota-%d", round)
		namespace(t, cs, ns)
		if _, err := cs.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q"},
			Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("5")}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var ok, refused atomic.Int32
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := cs.CoreV1().Pods(ns).Create(ctx, simplePod(fmt.Sprint("p", i)), metav1.CreateOptions{})
				switch {
				case err == nil:
					ok.Add(1)
				case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota: q"):
					refused.Add(1)
				default:
					t.Errorf("create: %v", err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 5 || refused.Load() != 15 {
			t.Fatalf("round %d: %d admitted, %d refused; want 5 and 15", round, ok.Load(), refused.Load())
		}
		q, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, "q", metav1.GetOptions{})
		if err != nil || q.Status.Used.Pods().Value() != 5 {
			t.Errorf("quota status: %v %v", err, q.Status.Used)
		}
	}
	// Deleting a pod gives its share back.
	if err := cs.CoreV1().Pods("quota-0").Delete(ctx, "p0", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	pods, _ := cs.CoreV1().Pods("quota-0").List(ctx, metav1.ListOptions{})
	if len(pods.Items) == 5 {
		_ = cs.CoreV1().Pods("quota-0").Delete(ctx, pods.Items[0].Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
	}
	eventually(t, "quota released after a deletion", func() error {
		_, err := cs.CoreV1().Pods("quota-0").Create(ctx, simplePod("after-delete"), metav1.CreateOptions{})
		return err
	})
}

// TestLimitRangeAndPodSecurity: LimitRange defaults appear in created pods;
// PodSecurity restricted refuses a privileged pod with upstream's message.
func TestLimitRangeAndPodSecurity(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(adminConfig(t, srv.url))
	namespace(t, cs, "limits")
	if _, err := cs.CoreV1().LimitRanges("limits").Create(ctx, &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "lr"},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer,
			Default:        corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
			DefaultRequest: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			Max:            corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
		}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "LimitRange defaults applied", func() error {
		p, err := cs.CoreV1().Pods("limits").Create(ctx, simplePod(fmt.Sprint("lr-", len(t.Name()))), metav1.CreateOptions{})
		if err != nil {
			return err
		}
		r := p.Spec.Containers[0].Resources
		_ = cs.CoreV1().Pods("limits").Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
		if r.Limits.Cpu().String() != "500m" || r.Requests.Cpu().String() != "100m" || r.Limits.Memory().String() != "256Mi" ||
			r.Requests.Memory().String() != "64Mi" || p.Annotations["kubernetes.io/limit-ranger"] == "" {
			return fmt.Errorf("resources %+v, annotations %v", r, p.Annotations)
		}
		return nil
	})
	big := simplePod("too-big")
	big.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}
	_, err := cs.CoreV1().Pods("limits").Create(ctx, big, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "maximum cpu usage per Container is 1, but limit is 2") {
		t.Errorf("pod over the LimitRange max: %v", err)
	}

	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "restricted",
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	priv := simplePod("privileged")
	priv.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	_, err = cs.CoreV1().Pods("restricted").Create(ctx, priv, metav1.CreateOptions{})
	want := `pods "privileged" is forbidden: violates PodSecurity "restricted:latest": privileged (container "c" must not set securityContext.privileged=true), ` +
		`allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), ` +
		`unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), ` +
		`runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), ` +
		`seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("privileged pod in a restricted namespace:\n got %v\nwant %s", err, want)
	}
	ok := simplePod("compliant")
	ok.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	ok.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	if _, err := cs.CoreV1().Pods("restricted").Create(ctx, ok, metav1.CreateOptions{}); err != nil {
		t.Errorf("compliant pod: %v", err)
	}
}

// TestFieldValidation: an unknown field is refused under Strict with
// upstream's message, and accepted with a warning under Warn.
func TestFieldValidation(t *testing.T) {
	srv := sharedServer(t)
	k := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}
	k.ok("create", "ns", "fields")
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: unknown}\nspec:\n  containers: [{name: c, image: busybox, imagePolicy: x}]\n  bogus: 1\n"
	out, err := k.run(pod, "create", "-n", "fields", "--validate=strict", "-f", "-")
	if err == nil {
		t.Fatalf("strict create with unknown fields succeeded:\n%s", out)
	}
	contains(t, out, `Error from server (BadRequest): error when creating "STDIN": Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.bogus", unknown field "spec.containers[0].imagePolicy"`)
	out = k.okIn(pod, "create", "-n", "fields", "--validate=warn", "-f", "-")
	contains(t, out, `Warning: unknown field "spec.bogus"`, `Warning: unknown field "spec.containers[0].imagePolicy"`, "pod/unknown created")
}
