package admission

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testChain is the chain in the order kube-apiserver runs these plugins;
// reads come from r (the store or a ReadCache), quota charges go to s.
func testChain(t testing.TB, s QuotaStore, r Reader) *Chain {
	t.Helper()
	sa, pr, lr := NewServiceAccount(r), NewPriority(r), NewLimitRanger(r)
	ps, err := NewPodSecurity(r)
	if err != nil {
		t.Fatal(err)
	}
	return &Chain{
		Mutating: []Plugin{lr, sa, pr, NewDefaultTolerationSeconds()},
		Validating: []Plugin{NewNamespaceLifecycle(r), ValidatingHalf(lr), ValidatingHalf(sa), ps, ValidatingHalf(pr),
			NewResourceQuota(s, r)},
	}
}

// admitAll runs both phases, as the REST layer does around its own checks.
func admitAll(ctx context.Context, c *Chain, a *Attributes) error {
	if err := c.Mutate(ctx, a); err != nil {
		return err
	}
	return c.Validate(ctx, a)
}

func TestChainPodCreate(t *testing.T) {
	t.Parallel()
	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprint("cached=", cached), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, cache, heard := newCachedStore(t)
			var r Reader = s
			if cached {
				r = cache
			}
			chain := testChain(t, s, r)
			put(t, s, namespace("ns", map[string]string{"pod-security.kubernetes.io/enforce": "baseline"}))

			// Reads made before the LimitRange and quota exist must not hide
			// them afterwards.
			mustNil(t, admitAll(ctx, chain, podCreate(testPod("ns", "p0", "c"))))
			put(t, s, limitRange("ns", "l", corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Default: resources("cpu=200m")}))
			heard(put(t, s, quota("ns", "q", "requests.cpu=500m")))

			pod := testPod("ns", "p", "c")
			mustNil(t, admitAll(ctx, chain, podCreate(pod)))
			if pod.Spec.ServiceAccountName != "default" || *pod.Spec.Priority != 0 || len(pod.Spec.Tolerations) != 2 ||
				pod.Spec.Containers[0].Resources.Requests.Cpu().String() != "200m" {
				t.Errorf("pod spec = %+v", pod.Spec)
			}
			mustNil(t, admitAll(ctx, chain, podCreate(testPod("ns", "p2", "c"))))
			wantStatus(t, admitAll(ctx, chain, podCreate(testPod("ns", "p3", "c"))), metav1.StatusReasonForbidden,
				`pods "p3" is forbidden: exceeded quota: q, requested: requests.cpu=200m, used: requests.cpu=400m, limited: requests.cpu=500m`)
			wantStatus(t, admitAll(ctx, chain, podCreate(privilegedPod("ns", "priv"))), metav1.StatusReasonForbidden,
				`pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)`)
		})
	}
}

// BenchmarkChainPodCreate measures admission of a pod create: in a
// namespace with no LimitRanges, quotas or policy labels (the reads every
// pod create pays), with and without a ReadCache; and in one with a
// quota on pods, which each create charges.
func BenchmarkChainPodCreate(b *testing.B) {
	for _, tc := range []struct {
		name          string
		cached, quota bool
	}{{"plain", false, false}, {"cached", true, false}, {"cached+quota", true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			s, cache, _ := newCachedStore(b)
			var r Reader = s
			if tc.cached {
				r = cache
			}
			chain := testChain(b, s, r)
			put(b, s, namespace("ns", nil))
			if tc.quota {
				put(b, s, quota("ns", "q", "pods=1000000"))
			}
			i := 0
			start := time.Now()
			for b.Loop() {
				i++
				if err := admitAll(ctx, chain, podCreate(testPod("ns", fmt.Sprint("p", i), "c"))); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/float64(i), "µs/create")
		})
	}
}
