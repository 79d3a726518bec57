package registry

import (
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestValidateConfigMapAndSecret(t *testing.T) {
	cm := func() *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "d"},
			Data: map[string]string{"app.properties": "a=b", "LOG_LEVEL": "info"}, BinaryData: map[string][]byte{"logo.png": {1, 2}}}
	}
	runCases(t, cm, validateConfigMap, []vcase[*corev1.ConfigMap]{
		{name: "valid"},
		{name: "bad key", mutate: func(c *corev1.ConfigMap) { c.Data["a b"] = "" },
			want: []string{`data[a b]: Invalid value: "a b": ` + configKeyMsg}},
		{name: "dot dot", mutate: func(c *corev1.ConfigMap) { c.Data[".."] = "" },
			want: []string{`data[..]: Invalid value: "..": must not be '..'`}},
		{name: "key in both", mutate: func(c *corev1.ConfigMap) { c.Data["logo.png"] = "" },
			want: []string{`data[logo.png]: Invalid value: "logo.png": duplicate of key present in binaryData`}},
		{name: "too big", mutate: func(c *corev1.ConfigMap) { c.Data["big"] = strings.Repeat("x", 1<<20) },
			want: []string{"[]: Too long: may not be more than 1048576 bytes"}},
	})
	sec := func() *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "d"}, Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"password": []byte("hunter2")}}
	}
	runCases(t, sec, validateSecret, []vcase[*corev1.Secret]{
		{name: "valid"},
		{name: "bad key", mutate: func(s *corev1.Secret) { s.Data["pass/word"] = nil },
			want: []string{`data[pass/word]: Invalid value: "pass/word": ` + configKeyMsg}},
		{name: "too big", mutate: func(s *corev1.Secret) { s.Data["big"] = make([]byte, 1<<20) },
			want: []string{"data: Too long: may not be more than 1048576 bytes"}},
		{name: "tls without its keys", mutate: func(s *corev1.Secret) { s.Type = corev1.SecretTypeTLS },
			want: []string{"data[tls.crt]: Required value", "data[tls.key]: Required value"}},
		{name: "tls", mutate: func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeTLS
			s.Data = map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")}
		}},
		{name: "docker config that is not JSON", mutate: func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeDockerConfigJson
			s.Data = map[string][]byte{".dockerconfigjson": []byte("{")}
		}, want: []string{`data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": unexpected end of JSON input`}},
		{name: "docker config missing", mutate: func(s *corev1.Secret) { s.Type = corev1.SecretTypeDockerConfigJson },
			want: []string{"data[.dockerconfigjson]: Required value"}},
		{name: "service account token without account", mutate: func(s *corev1.Secret) { s.Type = corev1.SecretTypeServiceAccountToken },
			want: []string{"metadata.annotations[kubernetes.io/service-account.name]: Required value"}},
		{name: "basic auth without either", mutate: func(s *corev1.Secret) { s.Type, s.Data = corev1.SecretTypeBasicAuth, nil },
			want: []string{"data[username]: Required value", "data[password]: Required value"}},
	})
}

func TestValidateNamespaceQuotaLimits(t *testing.T) {
	ns := func() *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}}}
	}
	runCases(t, ns, validateNamespace, []vcase[*corev1.Namespace]{
		{name: "valid"},
		{name: "unqualified finalizer", mutate: func(n *corev1.Namespace) { n.Spec.Finalizers = append(n.Spec.Finalizers, "cleanup") },
			want: []string{`spec.finalizers: Invalid value: "cleanup": name is neither a standard finalizer name nor is it fully qualified`}},
	})
	quota := func() *corev1.ResourceQuota {
		return &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "d"},
			Spec: corev1.ResourceQuotaSpec{Hard: rl("pods", "10", "requests.cpu", "4", "limits.memory", "8Gi", "count/deployments.apps", "5")}}
	}
	runCases(t, quota, validateResourceQuota, []vcase[*corev1.ResourceQuota]{
		{name: "valid"},
		{name: "negative", mutate: func(r *corev1.ResourceQuota) { r.Spec.Hard["requests.cpu"] = q("-1") },
			want: []string{`spec.hard[requests.cpu]: Invalid value: "-1": must be greater than or equal to 0`}},
		{name: "fractional pods", mutate: func(r *corev1.ResourceQuota) { r.Spec.Hard["pods"] = q("1500m") },
			want: []string{`spec.hard[pods]: Invalid value: "1500m": must be an integer`}},
		{name: "unknown resource", mutate: func(r *corev1.ResourceQuota) { r.Spec.Hard["widgets"] = q("1") },
			want: []string{`spec.hard[widgets]: Invalid value: "widgets": must be a standard resource type or fully qualified`,
				`spec.hard[widgets]: Invalid value: "widgets": must be a standard resource for quota`}},
		{name: "scope for the wrong resource", mutate: func(r *corev1.ResourceQuota) {
			r.Spec.Hard = rl("pods", "1")
			r.Spec.Scopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeNotBestEffort}
		}, want: []string{`spec.scopes: Invalid value: ["BestEffort","NotBestEffort"]: conflicting scopes`}},
	})
	limits := func() *corev1.LimitRange {
		return &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "l", Namespace: "d"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type: corev1.LimitTypeContainer, Min: rl("cpu", "100m"), Max: rl("cpu", "2"), Default: rl("cpu", "500m"), DefaultRequest: rl("cpu", "200m"),
		}}}}
	}
	runCases(t, limits, validateLimitRange, []vcase[*corev1.LimitRange]{
		{name: "valid"},
		{name: "min above max", mutate: func(l *corev1.LimitRange) { l.Spec.Limits[0].Min = rl("cpu", "3") },
			want: []string{`spec.limits[0].min[cpu]: Invalid value: "3": min value 3 is greater than max value 2`,
				`spec.limits[0].defaultRequest[cpu]: Invalid value: "200m": min value 3 is greater than default request value 200m`,
				`spec.limits[0].default[cpu]: Invalid value: "3": min value 3 is greater than default value 500m`}},
		{name: "default above max", mutate: func(l *corev1.LimitRange) { l.Spec.Limits[0].Default = rl("cpu", "4") },
			want: []string{`spec.limits[0].default[cpu]: Invalid value: "2": default value 4 is greater than max value 2`}},
		{name: "request above default", mutate: func(l *corev1.LimitRange) { l.Spec.Limits[0].DefaultRequest = rl("cpu", "1") },
			want: []string{`spec.limits[0].defaultRequest[cpu]: Invalid value: "1": default request value 1 is greater than default limit value 500m`}},
		{name: "defaults on a pod limit", mutate: func(l *corev1.LimitRange) { l.Spec.Limits[0].Type = corev1.LimitTypePod },
			want: []string{"spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'",
				"spec.limits[0].defaultRequest: Forbidden: may not be specified when `type` is 'Pod'"}},
		{name: "unknown type", mutate: func(l *corev1.LimitRange) { l.Spec.Limits[0].Type = "Node" },
			want: []string{`spec.limits[0].type: Invalid value: "Node": must be a standard limit type or fully qualified`}},
	})
}

func TestValidateRBAC(t *testing.T) {
	role := func() *rbacv1.Role {
		return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "d"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		}}
	}
	runCases(t, role, validateRole, []vcase[*rbacv1.Role]{
		{name: "valid"},
		{name: "no verbs", mutate: func(r *rbacv1.Role) { r.Rules[0].Verbs = nil },
			want: []string{"rules[0].verbs: Required value: verbs must contain at least one value"}},
		{name: "no groups", mutate: func(r *rbacv1.Role) { r.Rules[0].APIGroups = nil },
			want: []string{"rules[0].apiGroups: Required value: resource rules must supply at least one api group"}},
		{name: "no resources", mutate: func(r *rbacv1.Role) { r.Rules[0].Resources = nil },
			want: []string{"rules[0].resources: Required value: resource rules must supply at least one resource"}},
		{name: "URLs in a namespace", mutate: func(r *rbacv1.Role) {
			r.Rules = []rbacv1.PolicyRule{{NonResourceURLs: []string{"/healthz"}, Verbs: []string{"get"}}}
		}, want: []string{`rules[0].nonResourceURLs: Invalid value: ["/healthz"]: namespaced rules cannot apply to non-resource URLs`}},
	})
	cr := func() *rbacv1.ClusterRole {
		return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Rules: []rbacv1.PolicyRule{
			{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"*"}},
		}}
	}
	runCases(t, cr, validateClusterRole, []vcase[*rbacv1.ClusterRole]{
		{name: "valid"},
		{name: "URLs and resources", mutate: func(r *rbacv1.ClusterRole) { r.Rules[0].Resources = []string{"pods"} },
			want: []string{`rules[0].nonResourceURLs: Invalid value: ["/metrics"]: rules cannot apply to both regular resources and non-resource URLs`}},
		{name: "aggregation without selectors", mutate: func(r *rbacv1.ClusterRole) { r.AggregationRule = &rbacv1.AggregationRule{} },
			want: []string{"aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"}},
	})
	rb := func() *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "d"},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "r"},
			Subjects: []rbacv1.Subject{
				{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "jane"},
				{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: "d"},
				{Kind: rbacv1.GroupKind, Name: "devs"},
			}}
	}
	runCases(t, rb, validateRoleBinding, []vcase[*rbacv1.RoleBinding]{
		{name: "valid"},
		{name: "role kind", mutate: func(b *rbacv1.RoleBinding) { b.RoleRef.Kind = "Group" },
			want: []string{`roleRef.kind: Unsupported value: "Group": supported values: "Role", "ClusterRole"`}},
		{name: "role group", mutate: func(b *rbacv1.RoleBinding) { b.RoleRef.APIGroup = "authorization.k8s.io" },
			want: []string{`roleRef.apiGroup: Unsupported value: "authorization.k8s.io": supported values: "rbac.authorization.k8s.io"`}},
		{name: "role name", mutate: func(b *rbacv1.RoleBinding) { b.RoleRef.Name = "" },
			want: []string{"roleRef.name: Required value"}},
		{name: "subject kind", mutate: func(b *rbacv1.RoleBinding) { b.Subjects[0].Kind = "Robot" },
			want: []string{`subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"`}},
		{name: "service account with a group", mutate: func(b *rbacv1.RoleBinding) { b.Subjects[1].APIGroup = rbacv1.GroupName },
			want: []string{`subjects[1].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported values: ""`}},
		{name: "user in another group", mutate: func(b *rbacv1.RoleBinding) { b.Subjects[0].APIGroup = "example.com" },
			want: []string{`subjects[0].apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io"`}},
		{name: "nameless subject", mutate: func(b *rbacv1.RoleBinding) { b.Subjects[2].Name = "" },
			want: []string{"subjects[2].name: Required value"}},
	})
	crb := func() *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "b"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: "d"}}}
	}
	runCases(t, crb, validateClusterRoleBinding, []vcase[*rbacv1.ClusterRoleBinding]{
		{name: "valid"},
		{name: "role kind", mutate: func(b *rbacv1.ClusterRoleBinding) { b.RoleRef.Kind = "Role" },
			want: []string{`roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"`}},
		{name: "service account without namespace", mutate: func(b *rbacv1.ClusterRoleBinding) { b.Subjects[0].Namespace = "" },
			want: []string{"subjects[0].namespace: Required value"}},
	})
}

func TestValidateNetworkingAndPolicy(t *testing.T) {
	ing := func() *networkingv1.Ingress {
		return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "i", Namespace: "d"}, Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To("nginx"),
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{"*.example.com"}, SecretName: "tls"}},
			Rules: []networkingv1.IngressRule{{Host: "www.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix),
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Name: "http"}}}}}}}}},
		}}
	}
	runCases(t, ing, validateIngress, []vcase[*networkingv1.Ingress]{
		{name: "valid"},
		{name: "nothing to route", mutate: func(i *networkingv1.Ingress) { i.Spec.Rules = nil },
			want: []string{"spec: Invalid value: null: either `defaultBackend` or `rules` must be specified"}},
		{name: "host is an IP", mutate: func(i *networkingv1.Ingress) { i.Spec.Rules[0].Host = "10.0.0.1" },
			want: []string{`spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address`}},
		{name: "no path type", mutate: func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths[0].PathType = nil },
			want: []string{"spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"}},
		{name: "relative path", mutate: func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths[0].Path = "api" },
			want: []string{`spec.rules[0].http.paths[0].path: Invalid value: "api": must be an absolute path`}},
		{name: "port name and number", mutate: func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Number = 80 },
			want: []string{`spec.rules[0].http.paths[0].backend: Invalid value: "": cannot set both port name & port number`}},
		{name: "no backend", mutate: func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths[0].Backend = networkingv1.IngressBackend{} },
			want: []string{`spec.rules[0].http.paths[0].backend: Invalid value: "": resource or service backend is required`}},
	})
	np := func() *networkingv1.NetworkPolicy {
		tcp := corev1.ProtocolTCP
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "n", Namespace: "d"}, Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}, {IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(5432))}},
			}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		}}
	}
	runCases(t, np, validateNetworkPolicy, []vcase[*networkingv1.NetworkPolicy]{
		{name: "valid"},
		{name: "empty peer", mutate: func(n *networkingv1.NetworkPolicy) { n.Spec.Ingress[0].From[0].PodSelector = nil },
			want: []string{"spec.ingress[0].from[0]: Required value: must specify a peer"}},
		{name: "ip block and selector", mutate: func(n *networkingv1.NetworkPolicy) {
			n.Spec.Ingress[0].From[1].PodSelector = &metav1.LabelSelector{}
		}, want: []string{"spec.ingress[0].from[1]: Forbidden: may not specify both ipBlock and another peer"}},
		{name: "except outside", mutate: func(n *networkingv1.NetworkPolicy) {
			n.Spec.Ingress[0].From[1].IPBlock.Except = []string{"192.168.0.0/16"}
		},
			want: []string{`spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: "192.168.0.0/16": must be a strict subset of ` + "`cidr`"}},
		{name: "end port below port", mutate: func(n *networkingv1.NetworkPolicy) { n.Spec.Ingress[0].Ports[0].EndPort = ptr.To[int32](80) },
			want: []string{"spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`"}},
		{name: "policy type", mutate: func(n *networkingv1.NetworkPolicy) { n.Spec.PolicyTypes = []networkingv1.PolicyType{"Both"} },
			want: []string{`spec.policyTypes[0]: Unsupported value: "Both": supported values: "Ingress", "Egress"`}},
	})
	pdb := func() *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "d"}, Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromString("50%")), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	}
	runCases(t, pdb, validatePodDisruptionBudget, []vcase[*policyv1.PodDisruptionBudget]{
		{name: "valid"},
		{name: "both", mutate: func(p *policyv1.PodDisruptionBudget) { p.Spec.MaxUnavailable = ptr.To(intstr.FromInt32(1)) },
			want: []string{`spec: Invalid value: {"MinAvailable":"50%","Selector":{"matchLabels":{"app":"web"}},"MaxUnavailable":1,"UnhealthyPodEvictionPolicy":null}: minAvailable and maxUnavailable cannot be both set`}},
		{name: "over 100%", mutate: func(p *policyv1.PodDisruptionBudget) { p.Spec.MinAvailable = ptr.To(intstr.FromString("120%")) },
			want: []string{`spec.minAvailable: Invalid value: "120%": must not be greater than 100%`}},
		{name: "negative", mutate: func(p *policyv1.PodDisruptionBudget) { p.Spec.MinAvailable = ptr.To(intstr.FromInt32(-1)) },
			want: []string{"spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"}},
	})
}

func TestValidateClusterKinds(t *testing.T) {
	hpa := func() *autoscalingv2.HorizontalPodAutoscaler {
		return &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "h", Namespace: "d"}, Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    ptr.To[int32](2), MaxReplicas: 10,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](70)}}}},
		}}
	}
	runCases(t, hpa, validateHPA, []vcase[*autoscalingv2.HorizontalPodAutoscaler]{
		{name: "valid"},
		{name: "no max", mutate: func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MaxReplicas = 0 },
			want: []string{"spec.maxReplicas: Required value: must be set and greater than 0",
				"spec.maxReplicas: Invalid value: 0: must be greater than or equal to `minReplicas`"}},
		{name: "max below min", mutate: func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MaxReplicas = 1 },
			want: []string{"spec.maxReplicas: Invalid value: 1: must be greater than or equal to `minReplicas`"}},
		{name: "core group target", mutate: func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.ScaleTargetRef.APIVersion = "v1" },
			want: []string{`spec.scaleTargetRef.apiVersion: Invalid value: "v1": apiVersion must specify API group`}},
		{name: "scale to zero needs object metrics", mutate: func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MinReplicas = ptr.To[int32](0) },
			want: []string{"spec.metrics: Forbidden: must specify at least one Object or External metric to support scaling to zero replicas"}},
		{name: "metric source missing", mutate: func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.Metrics[0].Resource = nil },
			want: []string{"spec.metrics[0].resource: Required value: must populate information for the given metric source"}},
	})
	pc := func() *schedulingv1.PriorityClass {
		return &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000}
	}
	runCases(t, pc, validatePriorityClass, []vcase[*schedulingv1.PriorityClass]{
		{name: "valid"},
		{name: "system class", mutate: func(p *schedulingv1.PriorityClass) { p.Name, p.Value = "system-node-critical", 2000001000 }},
		{name: "reserved prefix", mutate: func(p *schedulingv1.PriorityClass) { p.Name = "system-mine" },
			want: []string{"metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"}},
		{name: "too high", mutate: func(p *schedulingv1.PriorityClass) { p.Value = 2000000000 },
			want: []string{"value: Forbidden: maximum allowed value of a user defined priority is 1000000000"}},
	})
	sc := func() *storagev1.StorageClass {
		return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Provisioner: "rancher.io/local-path",
			ReclaimPolicy: ptr.To(corev1.PersistentVolumeReclaimDelete), VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)}
	}
	runCases(t, sc, validateStorageClass, []vcase[*storagev1.StorageClass]{
		{name: "valid"},
		{name: "no provisioner", mutate: func(s *storagev1.StorageClass) { s.Provisioner = "" },
			want: []string{"provisioner: Required value"}},
		{name: "reclaim policy", mutate: func(s *storagev1.StorageClass) { s.ReclaimPolicy = ptr.To(corev1.PersistentVolumeReclaimRecycle) },
			want: []string{`reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"`}},
	})
	lease := func() *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "l", Namespace: "d"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("a"), LeaseDurationSeconds: ptr.To[int32](15)}}
	}
	runCases(t, lease, validateLease, []vcase[*coordinationv1.Lease]{
		{name: "valid"},
		{name: "zero duration", mutate: func(l *coordinationv1.Lease) { l.Spec.LeaseDurationSeconds = ptr.To[int32](0) },
			want: []string{"spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"}},
	})
}

// TestValidateAfterDefaults: what clients typically send, once the
// registry's defaults are applied, is accepted.
func TestValidateAfterDefaults(t *testing.T) {
	web := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx",
			Ports:         []corev1.ContainerPort{{ContainerPort: 80}},
			LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80)}}},
			Resources:     corev1.ResourceRequirements{Limits: rl("cpu", "1", "memory", "1Gi")}}}}}
	job := web.DeepCopy()
	job.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	objs := []runtime.Object{
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "d"}, Spec: web.Spec},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "d"}, Spec: appsv1.DeploymentSpec{Selector: sel, Template: web}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "d"}, Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: web}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "d"}, Spec: appsv1.StatefulSetSpec{Selector: sel, Template: web, ServiceName: "web"}},
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "d"}, Spec: appsv1.DaemonSetSpec{Selector: sel, Template: web}},
		&corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "d"}, Spec: corev1.ReplicationControllerSpec{Template: web.DeepCopy()}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "d"}, Spec: batchv1.JobSpec{Template: *job}},
		&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "d"}, Spec: batchv1.CronJobSpec{Schedule: "*/5 * * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: *job}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "d"}, Spec: corev1.ServiceSpec{Selector: sel.MatchLabels, Ports: []corev1.ServicePort{{Port: 80}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "d"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 443}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "d"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "d"}, Spec: corev1.ServiceSpec{ClusterIP: "None", Selector: sel.MatchLabels}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "d"}, StringData: map[string]string{"a": "b"}},
		&corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "l", Namespace: "d"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type: corev1.LimitTypeContainer, Max: rl("cpu", "2"), Min: rl("cpu", "100m")}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "d"}, RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"},
			Subjects: []rbacv1.Subject{{Kind: "User", Name: "jane"}, {Kind: "Group", Name: "devs"}}},
		&autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "h", Namespace: "d"}, Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}, MaxReplicas: 5}},
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "n", Namespace: "d"}, Spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(80))}}}}}},
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "sc"}, Provisioner: "example.com/disk"},
		&schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "pc"}, Value: 10},
	}
	defaults, validators := defaulters(), semanticValidators()
	for _, obj := range objs {
		kind := reflect.TypeOf(obj).Elem().Name()
		if d := defaults[kind]; d != nil {
			d(obj)
		}
		if kind == "Secret" {
			prepareSecret(obj, nil, "")
		}
		if errs := validators[kind](obj, nil); len(errs) != 0 {
			t.Errorf("%s: %v", kind, errs)
		}
	}
}
