package registry

import (
	"math/rand"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// TestValidateFastPathsAgreeWithUpstream: each quick acceptance test says
// yes only for values upstream's own check accepts, and says yes for the
// ordinary ones.
func TestValidateFastPathsAgreeWithUpstream(t *testing.T) {
	checks := []struct {
		name     string
		fast     func(string) bool
		upstream func(string) []string
	}{
		{"dns label", fastDNSLabel, validation.IsDNS1123Label},
		{"dns subdomain", fastDNSSubdomain, validation.IsDNS1123Subdomain},
		{"label key", fastLabelKey, validation.IsQualifiedName},
		{"label value", fastLabelValue, validation.IsValidLabelValue},
		{"port name", fastPortName, validation.IsValidPortName},
		{"config key", fastConfigKey, validation.IsConfigMapKey},
	}
	samples := []string{"", "a", "web", "web-1", "-web", "web-", "Web", "a.b", "a..b", ".a", "a.", "a-.b", "a.-b", "a_b", "A_b.C-d",
		"example.com/name", "example.com/", "/name", "a/b/c", "kubernetes.io/os", "http", "http-2", "h--p", "12345", "a1234567890123456",
		"..", ".", "..a", "key.name", "KEY_NAME", "x y", "ünï"}
	alphabet := "ab9-._/AZ"
	r := rand.New(rand.NewSource(1))
	for range 20000 {
		b := make([]byte, r.Intn(12))
		for i := range b {
			b[i] = alphabet[r.Intn(len(alphabet))]
		}
		samples = append(samples, string(b))
	}
	long := make([]byte, 70)
	for i := range long {
		long[i] = 'a'
	}
	samples = append(samples, string(long), "x."+string(long))
	for _, c := range checks {
		accepted := 0
		for _, s := range samples {
			if !c.fast(s) {
				continue
			}
			accepted++
			if msgs := c.upstream(s); len(msgs) > 0 {
				t.Errorf("%s: quick test accepts %q, upstream says %q", c.name, s, msgs)
			}
		}
		if accepted < 10 {
			t.Errorf("%s: quick test accepted only %d samples", c.name, accepted)
		}
	}
	for _, s := range []string{"web", "kube-system", "nginx-7d9c"} {
		if !fastDNSLabel(s) || !fastDNSSubdomain(s) || !fastLabelKey(s) || !fastLabelValue(s) || !fastConfigKey(s) {
			t.Errorf("%q should pass every quick test", s)
		}
	}
}
