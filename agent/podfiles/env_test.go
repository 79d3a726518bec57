package podfiles

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "a", "B": "b"}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	for in, want := range map[string]string{
		"$(A)-$(B)":   "a-b",
		"$$(A)":       "$(A)",
		"$$$(A)":      "$a",
		"$(MISSING)":  "$(MISSING)",
		"$(A":         "$(A",
		"x$":          "x$",
		"$x":          "$x",
		"$()":         "$()",
		"no refs":     "no refs",
		"$(A)$(A)$$$": "aa$$",
	} {
		if got := expand(in, lookup); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func envMap(env []EnvVar) map[string]string {
	m := map[string]string{}
	for _, e := range env {
		m[e.Name] = e.Value
	}
	return m
}

func envFixture() *fake.Clientset {
	return fake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns"}, Data: map[string]string{"MODE": "prod", "LEVEL": "info", "bad=key": "x"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: "ns"}, Data: map[string][]byte{"PASSWORD": []byte("pw")}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"}, Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.1",
			Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "my-db", Namespace: "ns"}, Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.7",
			Ports: []corev1.ServicePort{{Name: "pg", Port: 5432}, {Name: "metrics", Port: 9187, Protocol: corev1.ProtocolUDP}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "headless", Namespace: "ns"}, Spec: corev1.ServiceSpec{ClusterIP: "None",
			Ports: []corev1.ServicePort{{Port: 80}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "elsewhere"}, Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.9",
			Ports: []corev1.ServicePort{{Port: 80}}}},
	)
}

func TestEnv(t *testing.T) {
	pod := testPod()
	pod.Status.PodIPs = []corev1.PodIP{{IP: "10.64.0.5"}, {IP: "fd00::5"}}
	c := &pod.Spec.Containers[0]
	c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}
	c.EnvFrom = []corev1.EnvFromSource{
		{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
		{Prefix: "S_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
		{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}},
	}
	field := func(p string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: p}}
	}
	res := func(r, div string) *corev1.EnvVarSource {
		s := &corev1.ResourceFieldSelector{Resource: r}
		if div != "" {
			s.Divisor = resource.MustParse(div)
		}
		return &corev1.EnvVarSource{ResourceFieldRef: s}
	}
	c.Env = []corev1.EnvVar{
		{Name: "LEVEL", Value: "debug"}, // overrides envFrom
		{Name: "URL", Value: "$(MODE)://$(MY_DB_SERVICE_HOST):$(MY_DB_SERVICE_PORT)/$(LATER)"},
		{Name: "LATER", Value: "x"},
		{Name: "AFTER", Value: "$(LATER)-$$(LATER)"},
		{Name: "EMPTY"},
		{Name: "KEY", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "MODE"}}},
		{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "PASSWORD"}}},
		{Name: "OPT", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "NOPE", Optional: ptr.To(true)}}},
		{Name: "OPTCM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Key: "k", Optional: ptr.To(true)}}},
		{Name: "POD_NAME", ValueFrom: field("metadata.name")},
		{Name: "POD_NS", ValueFrom: field("metadata.namespace")},
		{Name: "POD_UID", ValueFrom: field("metadata.uid")},
		{Name: "APP", ValueFrom: field("metadata.labels['app']")},
		{Name: "NOTE", ValueFrom: field("metadata.annotations['note']")},
		{Name: "NODE", ValueFrom: field("spec.nodeName")},
		{Name: "SA", ValueFrom: field("spec.serviceAccountName")},
		{Name: "HOST_IP", ValueFrom: field("status.hostIP")},
		{Name: "HOST_IPS", ValueFrom: field("status.hostIPs")},
		{Name: "POD_IP", ValueFrom: field("status.podIP")},
		{Name: "POD_IPS", ValueFrom: field("status.podIPs")},
		{Name: "MEM_MI", ValueFrom: res("limits.memory", "1Mi")},
		{Name: "CPU_LIMIT", ValueFrom: res("limits.cpu", "")},
		{Name: "CPU_REQ_M", ValueFrom: res("requests.cpu", "1m")},
		{Name: "EPH", ValueFrom: res("limits.ephemeral-storage", "1Gi")},
		{Name: "KUBERNETES_SERVICE_HOST", Value: "override"},
	}
	env, err := Env(context.Background(), envFixture(), pod, c, testNode)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(env); i++ {
		if env[i-1].Name >= env[i].Name {
			t.Fatalf("env not sorted/unique at %s, %s", env[i-1].Name, env[i].Name)
		}
	}
	got := envMap(env)
	want := map[string]string{
		"MODE": "prod", "LEVEL": "debug", "S_PASSWORD": "pw",
		"URL":   "prod://10.0.0.7:5432/$(LATER)", // LATER is defined after URL
		"LATER": "x", "AFTER": "x-$(LATER)", "EMPTY": "",
		"KEY": "prod", "PW": "pw",
		"POD_NAME": "web", "POD_NS": "ns", "POD_UID": "uid-web", "APP": "web", "NOTE": "a\nb",
		"NODE": "n1", "SA": "sa", "HOST_IP": "192.168.1.10", "HOST_IPS": "192.168.1.10",
		"POD_IP": "10.64.0.5", "POD_IPS": "10.64.0.5,fd00::5",
		"MEM_MI": "256", "CPU_LIMIT": "4", "CPU_REQ_M": "0", "EPH": "100",
		"KUBERNETES_SERVICE_HOST":       "override",
		"KUBERNETES_SERVICE_PORT":       "443",
		"KUBERNETES_SERVICE_PORT_HTTPS": "443",
		"KUBERNETES_PORT":               "tcp://10.0.0.1:443",
		"KUBERNETES_PORT_443_TCP":       "tcp://10.0.0.1:443",
		"KUBERNETES_PORT_443_TCP_PROTO": "tcp",
		"KUBERNETES_PORT_443_TCP_PORT":  "443",
		"KUBERNETES_PORT_443_TCP_ADDR":  "10.0.0.1",
		"MY_DB_SERVICE_HOST":            "10.0.0.7",
		"MY_DB_SERVICE_PORT":            "5432",
		"MY_DB_SERVICE_PORT_PG":         "5432",
		"MY_DB_SERVICE_PORT_METRICS":    "9187",
		"MY_DB_PORT":                    "tcp://10.0.0.7:5432",
		"MY_DB_PORT_5432_TCP":           "tcp://10.0.0.7:5432",
		"MY_DB_PORT_5432_TCP_PROTO":     "tcp",
		"MY_DB_PORT_5432_TCP_PORT":      "5432",
		"MY_DB_PORT_5432_TCP_ADDR":      "10.0.0.7",
		"MY_DB_PORT_9187_UDP":           "udp://10.0.0.7:9187",
		"MY_DB_PORT_9187_UDP_PROTO":     "udp",
		"MY_DB_PORT_9187_UDP_PORT":      "9187",
		"MY_DB_PORT_9187_UDP_ADDR":      "10.0.0.7",
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %q (set %v), want %q", k, g, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected variable %s=%q", k, got[k])
		}
	}
}

func TestEnvServiceLinksDisabled(t *testing.T) {
	pod := testPod()
	pod.Spec.EnableServiceLinks = ptr.To(false)
	env, err := Env(context.Background(), envFixture(), pod, &pod.Spec.Containers[0], testNode)
	if err != nil {
		t.Fatal(err)
	}
	got := envMap(env)
	if got["KUBERNETES_SERVICE_HOST"] != "10.0.0.1" {
		t.Errorf("the kubernetes service must always be linked, got %v", got)
	}
	if _, ok := got["MY_DB_SERVICE_HOST"]; ok {
		t.Error("namespace services linked although enableServiceLinks is false")
	}
}

func TestEnvErrors(t *testing.T) {
	cmKey := func(name, key string, opt bool) corev1.EnvVar {
		return corev1.EnvVar{Name: "V", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: ptr.To(opt)}}}
	}
	secKey := func(name, key string) corev1.EnvVar {
		return corev1.EnvVar{Name: "V", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}}
	}
	for _, tc := range []struct {
		name    string
		env     []corev1.EnvVar
		envFrom []corev1.EnvFromSource
		want    string
	}{
		{name: "configmap missing", env: []corev1.EnvVar{cmKey("x", "k", false)}, want: `configmap "x" not found`},
		{name: "configmap key missing", env: []corev1.EnvVar{cmKey("cfg", "k", false)}, want: `couldn't find key k in ConfigMap ns/cfg`},
		{name: "configmap missing, key optional", env: []corev1.EnvVar{cmKey("x", "k", true)}},
		{name: "secret missing", env: []corev1.EnvVar{secKey("x", "k")}, want: `secret "x" not found`},
		{name: "secret key missing", env: []corev1.EnvVar{secKey("sec", "k")}, want: `couldn't find key k in Secret ns/sec`},
		{name: "envFrom configmap missing", envFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "x"}}}}, want: `configmap "x" not found`},
		{name: "envFrom secret missing", envFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "x"}}}}, want: `secret "x" not found`},
		{name: "envFrom secret optional", envFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "x"}, Optional: ptr.To(true)}}}},
		{name: "bad field", env: []corev1.EnvVar{{Name: "V", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.bogus"}}}},
			want: "field label not supported: spec.bogus"},
		{name: "bad resource", env: []corev1.EnvVar{{Name: "V", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.gpu"}}}},
			want: "unsupported container resource : limits.gpu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod()
			c := &pod.Spec.Containers[0]
			c.Env, c.EnvFrom = tc.env, tc.envFrom
			env, err := Env(context.Background(), envFixture(), pod, c, testNode)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := envMap(env)["V"]; ok {
					t.Error("optional missing reference produced a variable")
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Reason != ReasonCreateContainerConfigError || e.Message != tc.want {
				t.Errorf("err = %v, want CreateContainerConfigError %q", err, tc.want)
			}
		})
	}
}

func TestEnvFromSkipsUnrepresentableNames(t *testing.T) {
	pod := testPod()
	c := &pod.Spec.Containers[0]
	c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}
	env, err := Env(context.Background(), envFixture(), pod, c, testNode)
	if err != nil {
		t.Fatal(err)
	}
	got := envMap(env)
	if _, ok := got["bad=key"]; ok {
		t.Error("a key with '=' became a variable")
	}
	if got["MODE"] != "prod" {
		t.Errorf("MODE = %q", got["MODE"])
	}
}
