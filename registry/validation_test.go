package registry

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// vcase is one validation case: mutate a valid object, expect exactly
// these errors (rendered as the API reports them), in order.
type vcase[T any] struct {
	name   string
	mutate func(T)
	want   []string
}

func runCases[T runtime.Object](t *testing.T, fresh func() T, validate func(obj, old runtime.Object) field.ErrorList, cases []vcase[T]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := fresh()
			if tc.mutate != nil {
				tc.mutate(obj)
			}
			expectErrs(t, validate(obj, nil), tc.want...)
		})
	}
}

func expectErrs(t *testing.T, got field.ErrorList, want ...string) {
	t.Helper()
	var g []string
	for _, e := range got {
		g = append(g, e.Error())
	}
	if strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n  got:  %q\n  want: %q", g, want)
	}
}

func q(s string) resource.Quantity { return resource.MustParse(s) }

func rl(pairs ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(pairs); i += 2 {
		l[corev1.ResourceName(pairs[i])] = q(pairs[i+1])
	}
	return l
}

// webContainer is a typical application container: ports, env, probes,
// resources and a mounted config volume.
func webContainer() corev1.Container {
	return corev1.Container{
		Name:            "web",
		Image:           "nginx:1.27",
		ImagePullPolicy: corev1.PullIfNotPresent,
		Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
			{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
		},
		Env: []corev1.EnvVar{
			{Name: "LOG_LEVEL", Value: "info"},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
			{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}},
		},
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-env"}}}},
		Resources: corev1.ResourceRequirements{
			Requests: rl("cpu", "100m", "memory", "128Mi"),
			Limits:   rl("cpu", "500m", "memory", "256Mi"),
		},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}},
			PeriodSeconds:    10,
			TimeoutSeconds:   1,
			SuccessThreshold: 1,
			FailureThreshold: 3,
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
			InitialDelaySeconds: 5, PeriodSeconds: 10, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3,
		},
		VolumeMounts:             []corev1.VolumeMount{{Name: "config", MountPath: "/etc/web", ReadOnly: true}},
		TerminationMessagePath:   "/dev/termination-log",
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		SecurityContext:          &corev1.SecurityContext{RunAsUser: ptr.To[int64](1000), AllowPrivilegeEscalation: ptr.To(false)},
	}
}

func webPodSpec() corev1.PodSpec {
	return corev1.PodSpec{
		Containers:                    []corev1.Container{webContainer()},
		InitContainers:                []corev1.Container{{Name: "migrate", Image: "migrate:1", Command: []string{"migrate", "up"}}},
		Volumes:                       []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}}}},
		RestartPolicy:                 corev1.RestartPolicyAlways,
		DNSPolicy:                     corev1.DNSClusterFirst,
		TerminationGracePeriodSeconds: ptr.To[int64](30),
		ServiceAccountName:            "web",
		NodeSelector:                  map[string]string{"kubernetes.io/os": "linux"},
		Tolerations:                   []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "web", Effect: corev1.TaintEffectNoSchedule}},
		SchedulerName:                 corev1.DefaultSchedulerName,
	}
}

func validPod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "default"}, Spec: webPodSpec()}
}

func validDeployment() *appsv1.Deployment {
	labels := map[string]string{"app": "web"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "frontend"}},
				Spec:       webPodSpec(),
			},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: ptr.To(intstr.FromString("25%")), MaxSurge: ptr.To(intstr.FromString("25%"))}},
			RevisionHistoryLimit:    ptr.To[int32](10),
			ProgressDeadlineSeconds: ptr.To[int32](600),
		},
	}
}

func TestValidatorsRegistered(t *testing.T) {
	reg, err := New()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, g := range reg.For("root").Groups() {
		for _, v := range g.Versions {
			for _, r := range reg.For("root").Resources(g.Name, v) {
				kinds[r.Kind] = true
			}
		}
	}
	for kind := range semanticValidators() {
		if !kinds[kind] {
			t.Errorf("validator for %s, which is not served", kind)
		}
	}
}

func BenchmarkValidateDeployment(b *testing.B) {
	d := validDeployment()
	b.ReportAllocs()
	for b.Loop() {
		if errs := validateDeployment(d, nil); len(errs) != 0 {
			b.Fatal(errs)
		}
	}
}

func BenchmarkValidateDeploymentUpdate(b *testing.B) {
	old := validDeployment()
	d := validDeployment()
	d.Spec.Template.Spec.Containers[0].Image = "nginx:1.28"
	b.ReportAllocs()
	for b.Loop() {
		if errs := validateDeployment(d, old); len(errs) != 0 {
			b.Fatal(errs)
		}
	}
}

func BenchmarkValidatePodStatusUpdate(b *testing.B) {
	old := validPod()
	p := validPod()
	b.ReportAllocs()
	for b.Loop() {
		if errs := validatePodObject(p, old); len(errs) != 0 {
			b.Fatal(errs)
		}
	}
}

const (
	dnsLabelMsg    = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
	configKeyMsg   = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
	labelValueMsg  = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
	portRangeMsg   = "must be between 1 and 65535, inclusive"
	updatableMsgFn = "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
)

func TestValidatePod(t *testing.T) {
	runCases(t, validPod, validatePodObject, []vcase[*corev1.Pod]{
		{name: "valid", want: nil},
		{name: "service account token volume as admission adds it", mutate: func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "kube-api-access-x7k2p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				DefaultMode: ptr.To[int32](0644),
				Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr.To[int64](3607), Path: "token"}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
						Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
					{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
						FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
				}}}})
			c := &p.Spec.Containers[0]
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "kube-api-access-x7k2p", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true})
		}},
		{name: "nothing defaulted yet", mutate: func(p *corev1.Pod) {
			p.Spec = corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox",
				Ports: []corev1.ContainerPort{{ContainerPort: 80}}, LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}}},
				Volumes: []corev1.Volume{{Name: "scratch"}}}
		}},
		{name: "no containers", mutate: func(p *corev1.Pod) { p.Spec.Containers = nil },
			want: []string{"spec.containers: Required value"}},
		{name: "duplicate container name", mutate: func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "web", Image: "x"})
		}, want: []string{`spec.containers[1].name: Duplicate value: "web"`}},
		{name: "init container named like a container", mutate: func(p *corev1.Pod) { p.Spec.InitContainers[0].Name = "web" },
			want: []string{`spec.initContainers[0].name: Duplicate value: "web"`}},
		{name: "container name not a DNS label", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Name = "Web_1" },
			want: []string{`spec.containers[0].name: Invalid value: "Web_1": ` + dnsLabelMsg}},
		{name: "no image", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" },
			want: []string{"spec.containers[0].image: Required value"}},
		{name: "image with spaces", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Image = " nginx" },
			want: []string{`spec.containers[0].image: Invalid value: " nginx": must not have leading or trailing whitespace`}},
		{name: "container port out of range", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 70000 },
			want: []string{"spec.containers[0].ports[0].containerPort: Invalid value: 70000: " + portRangeMsg}},
		{name: "container port missing", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 0 },
			want: []string{"spec.containers[0].ports[0].containerPort: Required value"}},
		{name: "host port out of range", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].HostPort = -1 },
			want: []string{"spec.containers[0].ports[0].hostPort: Invalid value: -1: " + portRangeMsg}},
		{name: "duplicate port name", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Ports[1].Name = "http" },
			want: []string{`spec.containers[0].ports[1].name: Duplicate value: "http"`}},
		{name: "same port name in two containers", mutate: func(p *corev1.Pod) {
			c := webContainer()
			c.Name, c.Ports = "sidecar", []corev1.ContainerPort{{Name: "http", ContainerPort: 8081}}
			c.VolumeMounts = nil
			p.Spec.Containers = append(p.Spec.Containers, c)
		}},
		{name: "port name not an IANA name", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Name = "http_port" },
			want: []string{`spec.containers[0].ports[0].name: Invalid value: "http_port": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)`}},
		{name: "unknown protocol", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Protocol = "HTTP" },
			want: []string{`spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"`}},
		{name: "host port used twice", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports[0].HostPort = 80
			p.Spec.Containers[0].Ports[1].HostPort = 80
		}, want: []string{`spec.containers[0].ports[1].hostPort: Duplicate value: "TCP//80"`}},
		{name: "env name with =", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Env[0].Name = "A=B" },
			want: []string{`spec.containers[0].env[0].name: Invalid value: "A=B": a valid environment variable name must consist only of printable ASCII characters other than '='`}},
		{name: "env name relaxed", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Env[0].Name = "1-weird.name" }},
		{name: "env value and valueFrom", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Env[1].Value = "x" },
			want: []string{`spec.containers[0].env[1].valueFrom: Invalid value: "": may not be specified when ` + "`value`" + ` is not empty`}},
		{name: "env field path unsupported", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Env[1].ValueFrom.FieldRef.FieldPath = "metadata.labels" },
			want: []string{`spec.containers[0].env[1].valueFrom.fieldRef.fieldPath: Unsupported value: "metadata.labels": supported values: "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"`}},
		{name: "env secret key missing", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Env[2].ValueFrom.SecretKeyRef.Key = "" },
			want: []string{"spec.containers[0].env[2].valueFrom.secretKeyRef.key: Required value"}},
		{name: "requests above limits", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "2"), Limits: rl("cpu", "1")}
		}, want: []string{`spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1`}},
		{name: "negative quantity", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Resources.Limits["memory"] = q("-1") },
			want: []string{`spec.containers[0].resources.limits[memory]: Invalid value: "-1": must be greater than or equal to 0`,
				`spec.containers[0].resources.requests: Invalid value: "128Mi": must be less than or equal to memory limit of -1`}},
		{name: "unknown resource", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Resources.Limits["gpu"] = q("1") },
			want: []string{
				`spec.containers[0].resources.limits[gpu]: Invalid value: "gpu": must be a standard resource type or fully qualified`,
				`spec.containers[0].resources.limits[gpu]: Invalid value: "gpu": must be a standard resource for containers`,
			}},
		{name: "extended resource needs equal request and limit", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits["example.com/gpu"] = q("2")
			p.Spec.Containers[0].Resources.Requests["example.com/gpu"] = q("1")
		}, want: []string{`spec.containers[0].resources.requests: Invalid value: "1": must be equal to example.com/gpu limit of 2`}},
		{name: "fractional extended resource", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits["example.com/gpu"] = q("500m")
			p.Spec.Containers[0].Resources.Requests["example.com/gpu"] = q("500m")
		}, want: []string{
			`spec.containers[0].resources.limits[example.com/gpu]: Invalid value: "500m": must be an integer`,
			`spec.containers[0].resources.requests[example.com/gpu]: Invalid value: "500m": must be an integer`,
		}},
		{name: "restart policy", mutate: func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" },
			want: []string{`spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"`}},
		{name: "dns policy", mutate: func(p *corev1.Pod) { p.Spec.DNSPolicy = "Google" },
			want: []string{`spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"`}},
		{name: "dns policy None needs a config", mutate: func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSNone },
			want: []string{"spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"}},
		{name: "volume without name", mutate: func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		}, want: []string{"spec.volumes[1].name: Required value"}},
		{name: "duplicate volume", mutate: func(p *corev1.Pod) { p.Spec.Volumes = append(p.Spec.Volumes, p.Spec.Volumes[0]) },
			want: []string{`spec.volumes[1].name: Duplicate value: "config"`}},
		{name: "volume with two sources, and its mount", mutate: func(p *corev1.Pod) {
			p.Spec.Volumes[0].EmptyDir = &corev1.EmptyDirVolumeSource{}
		}, want: []string{"spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type",
			`spec.containers[0].volumeMounts[0].name: Not found: "config"`}},
		{name: "mount of a missing volume", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].Name = "nope" },
			want: []string{`spec.containers[0].volumeMounts[0].name: Not found: "nope"`}},
		{name: "mount path reused", mutate: func(p *corev1.Pod) {
			c := &p.Spec.Containers[0]
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "config", MountPath: "/etc/web"})
		}, want: []string{`spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/etc/web": must be unique`}},
		{name: "sub path escaping", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].SubPath = "../x" },
			want: []string{`spec.containers[0].volumeMounts.subPath: Invalid value: "../x": must not contain '..'`}},
		{name: "config map item path absolute", mutate: func(p *corev1.Pod) {
			p.Spec.Volumes[0].ConfigMap.Items = []corev1.KeyToPath{{Key: "k", Path: "/etc/k"}}
		}, want: []string{`spec.volumes[0].configMap.items[0].path: Invalid value: "/etc/k": must be a relative path`,
			`spec.containers[0].volumeMounts[0].name: Not found: "config"`}},
		{name: "probe with two handlers", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe.TCPSocket = &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}
		}, want: []string{"spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"}},
		{name: "probe without handler", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe.HTTPGet = nil },
			want: []string{"spec.containers[0].livenessProbe: Required value: must specify a handler type"}},
		{name: "liveness success threshold", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe.SuccessThreshold = 2 },
			want: []string{"spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"}},
		{name: "negative probe period", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].ReadinessProbe.PeriodSeconds = -1 },
			want: []string{"spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0"}},
		{name: "probe port name", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe.HTTPGet.Port = intstr.FromString("-http") },
			want: []string{`spec.containers[0].livenessProbe.httpGet.port: Invalid value: "-http": must not begin or end with a hyphen`}},
		{name: "probe on a plain init container", mutate: func(p *corev1.Pod) { p.Spec.InitContainers[0].ReadinessProbe = p.Spec.Containers[0].ReadinessProbe },
			want: []string{"spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always"}},
		{name: "sidecar may have probes", mutate: func(p *corev1.Pod) {
			p.Spec.InitContainers[0].RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
			p.Spec.InitContainers[0].ReadinessProbe = p.Spec.Containers[0].ReadinessProbe
		}},
		{name: "sleep longer than grace period", mutate: func(p *corev1.Pod) {
			p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 60}}}
		}, want: []string{"spec.containers[0].lifecycle.preStop.sleep: Invalid value: 60: must be non-negative and less than terminationGracePeriodSeconds (30)"}},
		{name: "node selector value", mutate: func(p *corev1.Pod) { p.Spec.NodeSelector["zone"] = "eu west" },
			want: []string{`spec.nodeSelector: Invalid value: "eu west": ` + labelValueMsg}},
		{name: "toleration Exists with a value", mutate: func(p *corev1.Pod) { p.Spec.Tolerations[0].Operator = corev1.TolerationOpExists },
			want: []string{`spec.tolerations[0].operator: Invalid value: "web": value must be empty when ` + "`operator`" + ` is 'Exists'`}},
		{name: "toleration without key", mutate: func(p *corev1.Pod) { p.Spec.Tolerations[0].Key = "" },
			want: []string{`spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when ` + "`key`" + ` is empty, which means "match all values and all keys"`}},
		{name: "toleration seconds need NoExecute", mutate: func(p *corev1.Pod) { p.Spec.Tolerations[0].TolerationSeconds = ptr.To[int64](5) },
			want: []string{`spec.tolerations[0].effect: Invalid value: "NoSchedule": effect must be 'NoExecute' when ` + "`tolerationSeconds`" + ` is set`}},
		{name: "negative grace period", mutate: func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](-1) },
			want: []string{"spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0"}},
		{name: "zero active deadline", mutate: func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](0) },
			want: []string{"spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"}},
		{name: "ephemeral containers on create", mutate: func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}}
		}, want: []string{"spec.ephemeralContainers: Forbidden: cannot be set on create"}},
		{name: "host network port mismatch", mutate: func(p *corev1.Pod) {
			p.Spec.HostNetwork = true
			p.Spec.Containers[0].Ports[0].HostPort = 80
		}, want: []string{"spec.containers[0].ports[0].hostPort: Invalid value: 80: must match `containerPort` when `hostNetwork` is true"}},
		{name: "service account name", mutate: func(p *corev1.Pod) { p.Spec.ServiceAccountName = "Web" },
			want: []string{`spec.serviceAccountName: Invalid value: "Web": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`}},
		{name: "node name with scheduling gates", mutate: func(p *corev1.Pod) {
			p.Spec.NodeName = "node-1"
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/wait"}}
		}, want: []string{"spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared"}},
	})
}

func TestValidatePodUpdate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*corev1.Pod)
		want   []string // a trailing "..." matches any rest of the last error
	}{
		{name: "nothing", mutate: func(*corev1.Pod) {}},
		{name: "status only", mutate: func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }},
		{name: "metadata only", mutate: func(p *corev1.Pod) { p.Labels = map[string]string{"a": "b"} }},
		{name: "image", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.28" }},
		{name: "init image", mutate: func(p *corev1.Pod) { p.Spec.InitContainers[0].Image = "migrate:2" }},
		{name: "binding", mutate: func(p *corev1.Pod) { p.Spec.NodeName = "node-1" }},
		{name: "binding to a bad node name", mutate: func(p *corev1.Pod) { p.Spec.NodeName = "Node_1" },
			want: []string{`spec.nodeName: Invalid value: "Node_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`}},
		{name: "set a deadline", mutate: func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](60) }},
		{name: "add a toleration", mutate: func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](30)})
		}},
		{name: "remove a toleration", mutate: func(p *corev1.Pod) { p.Spec.Tolerations = nil },
			want: []string{"spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"}},
		{name: "add a scheduling gate", mutate: func(p *corev1.Pod) { p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/hold"}} },
			want: []string{"spec.schedulingGates[0].name: Forbidden: only deletion is allowed, but found new scheduling gate 'example.com/hold'"}},
		{name: "add a container", mutate: func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "x", Image: "x"})
		},
			want: []string{"spec.containers: Forbidden: pod updates may not add or remove containers"}},
		{name: "empty the image", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" },
			want: []string{"spec.containers[0].image: Required value", "spec.containers[0].image: Required value"}},
		{name: "change env", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Env[0].Value = "debug" },
			want: []string{updatableMsgFn + "..."}},
		{name: "move to another node", mutate: func(p *corev1.Pod) { p.Spec.NodeName = "node-2" },
			want: []string{updatableMsgFn + "..."}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := validPod()
			if tc.name == "move to another node" {
				old.Spec.NodeName = "node-1"
			}
			old.Spec.ActiveDeadlineSeconds = nil
			p := old.DeepCopy()
			tc.mutate(p)
			got := validatePodObject(p, old)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d errors %v, want %q", len(got), got, tc.want)
			}
			for i, w := range tc.want {
				g := got[i].Error()
				if prefix, ok := strings.CutSuffix(w, "..."); ok {
					if !strings.HasPrefix(g, prefix) {
						t.Errorf("error %d: %q does not start with %q", i, g, prefix)
					}
				} else if g != w {
					t.Errorf("error %d: %q, want %q", i, g, w)
				}
			}
		})
	}
	// Deadlines may only shrink.
	old := validPod()
	old.Spec.ActiveDeadlineSeconds = ptr.To[int64](30)
	p := old.DeepCopy()
	p.Spec.ActiveDeadlineSeconds = ptr.To[int64](60)
	expectErrs(t, validatePodObject(p, old), "spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value")
	p.Spec.ActiveDeadlineSeconds = ptr.To[int64](10)
	expectErrs(t, validatePodObject(p, old))
}
