package schemas

import (
	"encoding/json"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// deployment is a Deployment as a client sends it after the server has
// defaulted it: what the REST layer validates on create.
const deployment = `{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "creationTimestamp": null,
    "annotations": {"deployment.kubernetes.io/revision": "1"}},
  "spec": {
    "replicas": 3,
    "selector": {"matchLabels": {"app": "web"}},
    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
    "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
    "template": {
      "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
      "spec": {
        "containers": [{
          "name": "nginx", "image": "nginx:1.27",
          "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
          "env": [{"name": "MODE", "value": "prod"}, {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}],
          "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": 0.25, "memory": "64Mi"}},
          "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"}, "initialDelaySeconds": 5,
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
          "readinessProbe": {"tcpSocket": {"port": 80}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
          "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
          "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"
        }],
        "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}],
        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
        "securityContext": {}, "schedulerName": "default-scheduler",
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
      }
    }
  },
  "status": {}
}`

func TestValidateAccepts(t *testing.T) {
	s := newTestSet(t)
	for _, tc := range []struct {
		gvk schema.GroupVersionKind
		obj string
	}{
		{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, deployment},
		{schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, `{"apiVersion": "v1", "kind": "Pod",
			"metadata": {"name": "p", "creationTimestamp": "2024-05-01T10:00:00Z", "ownerReferences": null},
			"spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
				"resources": {"requests": {"cpu": 1, "memory": "1Gi", "nvidia.com/gpu": "1"}}}],
				"overhead": {"cpu": "10m"}, "nodeSelector": {"disk": "ssd"}},
			"status": {"phase": "Pending", "startTime": null}}`},
		{schema.GroupVersionKind{Version: "v1", Kind: "Service"}, `{"apiVersion": "v1", "kind": "Service",
			"metadata": {"name": "s"}, "spec": {"type": "ClusterIP", "selector": {"app": "web"},
			"ports": [{"port": 80, "targetPort": 8080}, {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]}}`},
		{schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, `{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": {"name": "c"}, "data": {"a": "b"}, "binaryData": {"bin": "AAEC"}}`},
		{schema.GroupVersionKind{Version: "v1", Kind: "ResourceQuota"}, `{"apiVersion": "v1", "kind": "ResourceQuota",
			"metadata": {"name": "q"}, "spec": {"hard": {"pods": 10, "requests.cpu": "4", "limits.memory": "8Gi"}}}`},
		{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}, `{"apiVersion": "apps/v1", "kind": "DaemonSet",
			"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
			"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}},
			"status": {}}`},
		{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ControllerRevision"}, `{"apiVersion": "apps/v1",
			"kind": "ControllerRevision", "metadata": {"name": "r"}, "revision": 1, "data": {"spec": {"anything": [1, "x"]}}}`},
	} {
		v := s.Validator(tc.gvk)
		if v == nil {
			t.Fatalf("no validator for %s", tc.gvk)
		}
		if errs := v.Validate(decode(t, tc.obj)); len(errs) != 0 {
			t.Errorf("%s: unexpected errors: %v", tc.gvk.Kind, errs)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	s := newTestSet(t)
	deploy := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	pod := schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	svc := schema.GroupVersionKind{Version: "v1", Kind: "Service"}
	for _, tc := range []struct {
		name string
		gvk  schema.GroupVersionKind
		obj  string
		want field.ErrorList
	}{
		{"replicas as a string", deploy, `{"metadata": {"name": "d"}, "spec": {"replicas": "three",
			"selector": {}, "template": {}}}`,
			field.ErrorList{field.TypeInvalid(field.NewPath("spec", "replicas"), "three", "must be of type integer")}},
		{"fractional replicas", deploy, `{"metadata": {"name": "d"}, "spec": {"replicas": 1.5, "selector": {}, "template": {}}}`,
			field.ErrorList{field.TypeInvalid(field.NewPath("spec", "replicas"), 1.5, "must be of type integer")}},
		{"container name missing and port a string", pod, `{"metadata": {"name": "p"}, "spec": {"containers": [
			{"name": "ok", "image": "x"}, {"image": "x", "ports": [{"containerPort": "80"}]}]}}`,
			field.ErrorList{
				field.Required(field.NewPath("spec", "containers").Index(1).Child("name"), ""),
				field.TypeInvalid(field.NewPath("spec", "containers").Index(1).Child("ports").Index(0).Child("containerPort"), "80", "must be of type integer"),
			}},
		{"unsupported restart policy", pod, `{"metadata": {"name": "p"}, "spec": {"restartPolicy": "Sometimes",
			"containers": [{"name": "c", "image": "x"}]}}`,
			field.ErrorList{field.NotSupported(field.NewPath("spec", "restartPolicy"), "Sometimes", []string{"Always", "Never", "OnFailure"})}},
		{"labels not a map", pod, `{"metadata": {"name": "p", "labels": ["a"]}, "spec": {"containers": [{"name": "c"}]}}`,
			field.ErrorList{field.TypeInvalid(field.NewPath("metadata", "labels"), []any{"a"}, "must be of type object")}},
		{"quantity of the wrong type", pod, `{"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
			"resources": {"limits": {"cpu": true}}}]}}`,
			field.ErrorList{field.TypeInvalid(field.NewPath("spec", "containers").Index(0).Child("resources", "limits").Key("cpu"), true, "must be of type number or string")}},
		{"targetPort an object", svc, `{"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "targetPort": {"x": 1}}]}}`,
			field.ErrorList{field.TypeInvalid(field.NewPath("spec", "ports").Index(0).Child("targetPort"), map[string]any{"x": 1.0}, "must be of type integer or string")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.Validator(tc.gvk).Validate(decode(t, tc.obj))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func BenchmarkValidateDeployment(b *testing.B) {
	s := newTestSet(b)
	v := s.Validator(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"})
	obj := decode(b, deployment)
	if errs := v.Validate(obj); len(errs) != 0 {
		b.Fatal(errs)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if errs := v.Validate(obj); errs != nil {
			b.Fatal(errs)
		}
	}
}

// TestValidateTyped checks objects as the REST layer holds them after a
// strict decode and defaulting: typed, converted back to unstructured, with
// every field the Go type always writes (zero values, nulls) present.
func TestValidateTyped(t *testing.T) {
	s := newTestSet(t)
	replicas := int32(2)
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "default", Labels: map[string]string{"app": "d"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "d"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "d"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "c", Image: "nginx",
					Ports: []corev1.ContainerPort{{ContainerPort: 80}},
					Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("1Gi")}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("http")}}},
				}}},
			},
		},
	}
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", CreationTimestamp: metav1.Now()},
		Spec:       d.Spec.Template.Spec,
		Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	for _, obj := range []runtime.Object{d, pod} {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			t.Fatal(err)
		}
		gvk := obj.GetObjectKind().GroupVersionKind()
		if errs := s.Validator(gvk).Validate(u); len(errs) != 0 {
			t.Errorf("%s: %v", gvk.Kind, errs)
		}
		if unknown := s.Validator(gvk).Unknown(u); len(unknown) != 0 {
			t.Errorf("%s: unknown fields %v", gvk.Kind, unknown)
		}
	}
}
