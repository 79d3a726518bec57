package printers

import (
	"reflect"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) metav1.Time     { return metav1.NewTime(now.Add(-d)) }
func agoPtr(d time.Duration) *metav1.Time { t := ago(d); return &t }
func ptr[T any](v T) *T                   { return &v }

// zeroObjects lists every resource the REST layer serves as a Table, with
// the Go type its Row expects.
var zeroObjects = []struct {
	group, resource string
	obj             runtime.Object
}{
	{"", "pods", &corev1.Pod{}},
	{"", "services", &corev1.Service{}},
	{"", "endpoints", &corev1.Endpoints{}},
	{"", "configmaps", &corev1.ConfigMap{}},
	{"", "secrets", &corev1.Secret{}},
	{"", "serviceaccounts", &corev1.ServiceAccount{}},
	{"", "events", &corev1.Event{}},
	{"", "nodes", &corev1.Node{}},
	{"", "namespaces", &corev1.Namespace{}},
	{"", "replicationcontrollers", &corev1.ReplicationController{}},
	{"", "persistentvolumes", &corev1.PersistentVolume{}},
	{"", "persistentvolumeclaims", &corev1.PersistentVolumeClaim{}},
	{"", "limitranges", &corev1.LimitRange{}},
	{"", "resourcequotas", &corev1.ResourceQuota{}},
	{"", "podtemplates", &corev1.PodTemplate{}},
	{"apps", "deployments", &appsv1.Deployment{}},
	{"apps", "replicasets", &appsv1.ReplicaSet{}},
	{"apps", "statefulsets", &appsv1.StatefulSet{}},
	{"apps", "daemonsets", &appsv1.DaemonSet{}},
	{"apps", "controllerrevisions", &appsv1.ControllerRevision{}},
	{"batch", "jobs", &batchv1.Job{}},
	{"batch", "cronjobs", &batchv1.CronJob{}},
	{"autoscaling", "horizontalpodautoscalers", &autoscalingv2.HorizontalPodAutoscaler{}},
	{"coordination.k8s.io", "leases", &coordinationv1.Lease{}},
	{"discovery.k8s.io", "endpointslices", &discoveryv1.EndpointSlice{}},
	{"events.k8s.io", "events", &eventsv1.Event{}},
	{"networking.k8s.io", "ingresses", &networkingv1.Ingress{}},
	{"networking.k8s.io", "ingressclasses", &networkingv1.IngressClass{}},
	{"networking.k8s.io", "networkpolicies", &networkingv1.NetworkPolicy{}},
	{"policy", "poddisruptionbudgets", &policyv1.PodDisruptionBudget{}},
	{"rbac.authorization.k8s.io", "roles", &rbacv1.Role{}},
	{"rbac.authorization.k8s.io", "rolebindings", &rbacv1.RoleBinding{}},
	{"rbac.authorization.k8s.io", "clusterroles", &rbacv1.ClusterRole{}},
	{"rbac.authorization.k8s.io", "clusterrolebindings", &rbacv1.ClusterRoleBinding{}},
	{"storage.k8s.io", "storageclasses", &storagev1.StorageClass{}},
	{"scheduling.k8s.io", "priorityclasses", &schedulingv1.PriorityClass{}},
	{"node.k8s.io", "runtimeclasses", &nodev1.RuntimeClass{}},
	{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", &admissionregistrationv1.MutatingWebhookConfiguration{}},
	{"admissionregistration.k8s.io", "validatingwebhookconfigurations", &admissionregistrationv1.ValidatingWebhookConfiguration{}},
	{"admissionregistration.k8s.io", "validatingadmissionpolicies", &admissionregistrationv1.ValidatingAdmissionPolicy{}},
	{"admissionregistration.k8s.io", "validatingadmissionpolicybindings", &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}},
}

func TestEveryResourceFillsEveryColumn(t *testing.T) {
	covered := map[groupResource]bool{}
	for _, z := range zeroObjects {
		covered[groupResource{z.group, z.resource}] = true
		p, ok := For(z.group, z.resource)
		if !ok {
			t.Errorf("%s/%s: no printer", z.group, z.resource)
			continue
		}
		cells, err := p.Row(z.obj, now)
		if err != nil {
			t.Errorf("%s/%s: %v", z.group, z.resource, err)
			continue
		}
		if len(cells) != len(p.Columns) {
			t.Errorf("%s/%s: %d cells for %d columns", z.group, z.resource, len(cells), len(p.Columns))
		}
		names := 0
		for i, c := range p.Columns {
			if c.Format == "name" && c.Name == "Name" {
				names++
			}
			if c.Type == "" {
				t.Errorf("%s/%s: column %q has no type", z.group, z.resource, c.Name)
			}
			if i < len(cells) {
				checkCellType(t, z.resource, c, cells[i])
			}
		}
		if names != 1 {
			t.Errorf("%s/%s: want exactly one Name column with format name, got %d", z.group, z.resource, names)
		}
	}
	for k := range registry {
		if !covered[k] && k.group != "apiextensions.k8s.io" {
			t.Errorf("%s/%s is registered but not exercised by this test", k.group, k.resource)
		}
	}
}

// checkCellType guards against cells whose JSON type would surprise clients:
// kubectl renders any type, but integers must be int64 and never int32.
func checkCellType(t *testing.T, resource string, c metav1.TableColumnDefinition, cell any) {
	t.Helper()
	switch cell.(type) {
	case string, int64, bool:
	default:
		t.Errorf("%s: column %q has cell of type %T", resource, c.Name, cell)
	}
}

func TestWrongTypeIsAnError(t *testing.T) {
	p, _ := For("", "pods")
	if _, err := p.Row(&corev1.Service{}, now); err == nil {
		t.Fatal("expected an error printing a Service as a Pod")
	}
}

func TestUnknownResource(t *testing.T) {
	if _, ok := For("example.com", "widgets"); ok {
		t.Fatal("unexpected printer for a custom resource")
	}
	if _, ok := For("apps", "pods"); ok {
		t.Fatal("group must be part of the lookup")
	}
}

func TestForReturnsPrivateColumns(t *testing.T) {
	p, _ := For("", "pods")
	p.Columns[0].Name = "mutated"
	q, _ := For("", "pods")
	if q.Columns[0].Name != "Name" {
		t.Fatal("mutating returned columns leaked into the registry")
	}
}

func TestColumns(t *testing.T) {
	cases := []struct {
		group, resource string
		want            string // column names; wide ones are marked with *
	}{
		{"", "pods", "Name Ready Status Restarts Age *IP *Node *Nominated Node *Readiness Gates"},
		{"apps", "deployments", "Name Ready Up-to-date Available Age *Containers *Images *Selector"},
		{"apps", "statefulsets", "Name Ready Age *Containers *Images"},
		{"apps", "daemonsets", "Name Desired Current Ready Up-to-date Available Node Selector Age *Containers *Images *Selector"},
		{"", "services", "Name Type Cluster-IP External-IP Port(s) Age *Selector"},
		{"", "nodes", "Name Status Roles Age Version *Internal-IP *External-IP *OS-Image *Kernel-Version *Container-Runtime"},
		{"", "secrets", "Name Type Data Age"},
		{"", "configmaps", "Name Data Age"},
		{"", "serviceaccounts", "Name Secrets Age"},
		{"", "persistentvolumes", "Name Capacity Access Modes Reclaim Policy Status Claim StorageClass VolumeAttributesClass Reason Age *VolumeMode"},
		{"batch", "jobs", "Name Status Completions Duration Age *Containers *Images *Selector"},
		{"batch", "cronjobs", "Name Schedule Timezone Suspend Active Last Schedule Age *Containers *Images *Selector"},
		{"", "events", "Last Seen Type Reason Object *Subobject *Source Message *First Seen *Count *Name"},
		{"events.k8s.io", "events", "Last Seen Type Reason Object *Subobject *Source Message *First Seen *Count *Name"},
		{"networking.k8s.io", "ingresses", "Name Class Hosts Address Ports Age"},
		{"rbac.authorization.k8s.io", "rolebindings", "Name Role Age *Users *Groups *ServiceAccounts"},
		{"rbac.authorization.k8s.io", "roles", "Name Created At"},
		{"", "limitranges", "Name Created At"},
		{"apiextensions.k8s.io", "customresourcedefinitions", "Name Created At"},
	}
	for _, c := range cases {
		p, ok := For(c.group, c.resource)
		if !ok {
			t.Errorf("%s/%s: no printer", c.group, c.resource)
			continue
		}
		var got []string
		for _, col := range p.Columns {
			name := col.Name
			if col.Priority > 0 {
				name = "*" + name
			}
			got = append(got, name)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%s/%s columns:\n got %s\nwant %s", c.group, c.resource, strings.Join(got, " "), c.want)
		}
	}
	p, _ := For("", "pods")
	if p.Columns[0].Format != "name" || p.Columns[4].Description == "" {
		t.Errorf("pod Name/Age columns lost their format or description: %+v", p.Columns[:5])
	}
	cj, _ := For("batch", "cronjobs")
	if cj.Columns[3].Type != "boolean" || cj.Columns[4].Type != "integer" {
		t.Errorf("cronjob Suspend/Active types: %q %q", cj.Columns[3].Type, cj.Columns[4].Type)
	}
}

func objMeta(name string, created time.Duration) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: ago(created)}
}

func running(name string, restarts int32, lastExit time.Duration) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{
		Name: name, Ready: true, RestartCount: restarts,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
	}
	if lastExit > 0 {
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: ago(lastExit)}
	}
	return cs
}

func waiting(name, reason string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
}

func terminated(name, reason string, code int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code}}}
}

func containers(names ...string) []corev1.Container {
	var cs []corev1.Container
	for _, n := range names {
		cs = append(cs, corev1.Container{Name: n, Image: n + ":1"})
	}
	return cs
}

func pod(mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: objMeta("web", 90*time.Minute)}
	p.Spec.Containers = containers("app")
	p.Status.Phase = corev1.PodRunning
	mutate(p)
	return p
}

func TestRows(t *testing.T) {
	cases := []struct {
		name            string
		group, resource string
		obj             runtime.Object
		want            map[string]any // by column name; unlisted columns are not checked
	}{
		{"pod running with restarts", "", "pods", pod(func(p *corev1.Pod) {
			p.Spec.Containers = containers("app", "proxy")
			p.Spec.NodeName = "node-1"
			p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.5"}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{running("app", 3, 5*time.Minute), running("proxy", 1, 20*time.Minute)}
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}), map[string]any{
			"Name": "web", "Ready": "2/2", "Status": "Running", "Restarts": "4 (5m ago)", "Age": "90m",
			"IP": "10.0.0.5", "Node": "node-1", "Nominated Node": "<none>", "Readiness Gates": "<none>",
		}},
		{"pod pending unscheduled", "", "pods", pod(func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
		}), map[string]any{"Ready": "0/1", "Status": "Pending", "Restarts": "0", "IP": "<none>", "Node": "<none>"}},
		{"pod pending creating", "", "pods", pod(func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.ContainerStatuses = []corev1.ContainerStatus{waiting("app", "ContainerCreating")}
		}), map[string]any{"Ready": "0/1", "Status": "ContainerCreating"}},
		{"pod scheduling gated", "", "pods", pod(func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Reason: corev1.PodReasonSchedulingGated}}
		}), map[string]any{"Status": "SchedulingGated"}},
		{"pod crashloop", "", "pods", pod(func(p *corev1.Pod) {
			cs := waiting("app", "CrashLoopBackOff")
			cs.RestartCount = 5
			cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 2, FinishedAt: ago(30 * time.Second)}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		}), map[string]any{"Ready": "0/1", "Status": "CrashLoopBackOff", "Restarts": "5 (30s ago)"}},
		{"pod terminating", "", "pods", pod(func(p *corev1.Pod) {
			p.DeletionTimestamp = agoPtr(time.Second)
			p.Status.ContainerStatuses = []corev1.ContainerStatus{running("app", 0, 0)}
		}), map[string]any{"Ready": "1/1", "Status": "Terminating", "Restarts": "0"}},
		{"pod on lost node", "", "pods", pod(func(p *corev1.Pod) {
			p.DeletionTimestamp = agoPtr(time.Second)
			p.Status.Reason = "NodeLost"
		}), map[string]any{"Status": "Unknown"}},
		{"succeeded pod being deleted stays Completed", "", "pods", pod(func(p *corev1.Pod) {
			p.DeletionTimestamp = agoPtr(time.Second)
			p.Status.Phase = corev1.PodSucceeded
			p.Status.ContainerStatuses = []corev1.ContainerStatus{terminated("app", "Completed", 0)}
		}), map[string]any{"Ready": "0/1", "Status": "Completed"}},
		{"pod error without reason", "", "pods", pod(func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.ContainerStatuses = []corev1.ContainerStatus{terminated("app", "", 137)}
		}), map[string]any{"Status": "ExitCode:137"}},
		{"one container completed, other still serving", "", "pods", pod(func(p *corev1.Pod) {
			p.Spec.Containers = containers("app", "job")
			p.Status.ContainerStatuses = []corev1.ContainerStatus{running("app", 0, 0), terminated("job", "Completed", 0)}
		}), map[string]any{"Ready": "1/2", "Status": "NotReady"}},
		{"init containers in progress", "", "pods", pod(func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Spec.InitContainers = containers("migrate", "seed")
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{terminated("migrate", "Completed", 0), waiting("seed", "PodInitializing")}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{waiting("app", "PodInitializing")}
		}), map[string]any{"Ready": "0/1", "Status": "Init:1/2"}},
		{"init container crashlooping", "", "pods", pod(func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Spec.InitContainers = containers("migrate")
			cs := waiting("migrate", "CrashLoopBackOff")
			cs.RestartCount = 2
			cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: ago(time.Minute)}
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{cs}
		}), map[string]any{"Status": "Init:CrashLoopBackOff", "Restarts": "2 (60s ago)"}},
		{"init container failed", "", "pods", pod(func(p *corev1.Pod) {
			p.Spec.InitContainers = containers("migrate")
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{terminated("migrate", "Error", 1)}
		}), map[string]any{"Status": "Init:Error"}},
		{"sidecar counts towards ready and restarts", "", "pods", pod(func(p *corev1.Pod) {
			p.Spec.InitContainers = containers("mesh")
			p.Spec.InitContainers[0].RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
			mesh := running("mesh", 2, 10*time.Minute)
			mesh.Started = ptr(true)
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{mesh}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{running("app", 0, 0)}
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}}
		}), map[string]any{"Ready": "2/2", "Status": "Running", "Restarts": "2 (10m ago)"}},
		{"readiness gates", "", "pods", pod(func(p *corev1.Pod) {
			p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "a"}, {ConditionType: "b"}}
			p.Status.Conditions = []corev1.PodCondition{{Type: "a", Status: corev1.ConditionTrue}, {Type: "b", Status: corev1.ConditionFalse}}
		}), map[string]any{"Readiness Gates": "1/2"}},

		{"deployment", "apps", "deployments", &appsv1.Deployment{
			ObjectMeta: objMeta("web", 72*time.Hour),
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr[int32](3),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers("nginx", "sidecar")}},
			},
			Status: appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2},
		}, map[string]any{
			"Name": "web", "Ready": "2/3", "Up-to-date": int64(3), "Available": int64(2), "Age": "3d",
			"Containers": "nginx,sidecar", "Images": "nginx:1,sidecar:1", "Selector": "app=web",
		}},
		{"statefulset", "apps", "statefulsets", &appsv1.StatefulSet{
			ObjectMeta: objMeta("db", time.Hour),
			Spec:       appsv1.StatefulSetSpec{Replicas: ptr[int32](3)},
			Status:     appsv1.StatefulSetStatus{ReadyReplicas: 1},
		}, map[string]any{"Ready": "1/3", "Age": "60m"}},
		{"replicaset", "apps", "replicasets", &appsv1.ReplicaSet{
			ObjectMeta: objMeta("web-abc", time.Hour),
			Spec:       appsv1.ReplicaSetSpec{Replicas: ptr[int32](2)},
		}, map[string]any{"Desired": int64(2), "Current": int64(0), "Selector": "<none>"}},
		{"daemonset", "apps", "daemonsets", &appsv1.DaemonSet{
			ObjectMeta: objMeta("agent", time.Hour),
			Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
			}}},
			Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, NumberReady: 2},
		}, map[string]any{"Desired": int64(3), "Ready": int64(2), "Node Selector": "kubernetes.io/os=linux"}},
		{"controllerrevision", "apps", "controllerrevisions", &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Name: "db-7d9", OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Controller: ptr(true),
			}}},
			Revision: 4,
		}, map[string]any{"Controller": "statefulset.apps/db", "Revision": int64(4), "Age": "<unknown>"}},

		{"service clusterip", "", "services", &corev1.Service{
			ObjectMeta: objMeta("api", 10*time.Minute),
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
				Ports:    []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}, {Port: 53, Protocol: corev1.ProtocolUDP}},
				Selector: map[string]string{"app": "api"},
			},
		}, map[string]any{
			"Type": "ClusterIP", "Cluster-IP": "10.96.0.10", "External-IP": "<none>",
			"Port(s)": "80/TCP,53/UDP", "Age": "10m", "Selector": "app=api",
		}},
		{"service headless without ports", "", "services", &corev1.Service{
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "None"},
		}, map[string]any{"Cluster-IP": "None", "Port(s)": "<none>", "Selector": "<none>"}},
		{"service nodeport", "", "services", &corev1.Service{
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeNodePort, ClusterIPs: []string{"10.96.0.11"}, ExternalIPs: []string{"1.2.3.4"},
				Ports: []corev1.ServicePort{{Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP}},
			},
		}, map[string]any{"External-IP": "1.2.3.4", "Port(s)": "80:30080/TCP"}},
		{"service loadbalancer pending", "", "services", &corev1.Service{
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		}, map[string]any{"External-IP": "<pending>", "Cluster-IP": "<none>"}},
		{"service loadbalancer assigned", "", "services", &corev1.Service{
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalIPs: []string{"9.9.9.9"}},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
				{Hostname: "a-very-long-load-balancer.example.com"}, {IP: "5.6.7.8"},
			}}},
		}, map[string]any{"External-IP": "5.6.7.8,a-very-long-load-balancer.example.com,9.9.9.9"}},
		{"service with a blank external IP entry", "", "services", &corev1.Service{
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalIPs: []string{""}},
		}, map[string]any{"External-IP": ""}},
		{"service externalname", "", "services", &corev1.Service{
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"},
		}, map[string]any{"External-IP": "db.example.com", "Cluster-IP": "<none>"}},

		{"node ready cordoned", "", "nodes", &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "n1", CreationTimestamp: ago(50 * 24 * time.Hour), Labels: map[string]string{
				"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker", "node-role.kubernetes.io/": "",
			}},
			Spec: corev1.NodeSpec{Unschedulable: true},
			Status: corev1.NodeStatus{
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
				Addresses:  []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "n1"}, {Type: corev1.NodeInternalIP, Address: "192.168.1.10"}},
				NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.33.0", OSImage: "Ubuntu 24.04", KernelVersion: "6.8.0", Architecture: "amd64", ContainerRuntimeVersion: "containerd://1.7"},
			},
		}, map[string]any{
			"Status": "Ready,SchedulingDisabled", "Roles": "control-plane,worker", "Age": "50d", "Version": "v1.33.0",
			"Internal-IP": "192.168.1.10", "External-IP": "<none>", "OS-Image": "Ubuntu 24.04",
			"Kernel-Version": "6.8.0", "Container-Runtime": "containerd://1.7",
		}},
		{"node not ready", "", "nodes", &corev1.Node{
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}},
		}, map[string]any{"Status": "NotReady", "Roles": "<none>", "Kernel-Version": "<unknown>"}},
		{"node without conditions", "", "nodes", &corev1.Node{}, map[string]any{"Status": "Unknown"}},

		{"secret", "", "secrets", &corev1.Secret{
			ObjectMeta: objMeta("creds", 5*time.Second),
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{"user": nil, "pass": nil},
			StringData: map[string]string{"pass": "x", "token": "y"},
		}, map[string]any{"Name": "creds", "Type": "Opaque", "Data": int64(3), "Age": "5s"}},
		{"configmap", "", "configmaps", &corev1.ConfigMap{
			ObjectMeta: objMeta("cfg", 3*time.Hour+20*time.Minute),
			Data:       map[string]string{"a": "1", "b": "2"},
			BinaryData: map[string][]byte{"c": nil},
		}, map[string]any{"Data": int64(3), "Age": "3h20m"}},
		{"serviceaccount", "", "serviceaccounts", &corev1.ServiceAccount{
			ObjectMeta: objMeta("default", time.Hour),
		}, map[string]any{"Secrets": int64(0)}},
		{"endpoints", "", "endpoints", &corev1.Endpoints{Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}},
			Ports:     []corev1.EndpointPort{{Port: 80}, {Port: 443}},
		}}}, map[string]any{"Endpoints": "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."}},
		{"endpoints without subsets", "", "endpoints", &corev1.Endpoints{}, map[string]any{"Endpoints": "<none>"}},
		{"persistentvolume", "", "persistentvolumes", &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pv1", Annotations: map[string]string{"volume.beta.kubernetes.io/storage-class": "legacy"}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany, corev1.ReadWriteOnce, corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				ClaimRef:                      &corev1.ObjectReference{Namespace: "ns", Name: "data"},
				StorageClassName:              "fast",
			},
			Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeBound},
		}, map[string]any{
			"Capacity": "10Gi", "Access Modes": "RWO,RWX", "Reclaim Policy": "Retain", "Status": "Bound",
			"Claim": "ns/data", "StorageClass": "legacy", "VolumeAttributesClass": "<unset>", "VolumeMode": "<unset>",
		}},
		{"persistentvolumeclaim pending", "", "persistentvolumeclaims", &corev1.PersistentVolumeClaim{
			Spec:   corev1.PersistentVolumeClaimSpec{StorageClassName: ptr("fast")},
			Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
		}, map[string]any{"Status": "Pending", "Volume": "", "Capacity": "", "StorageClass": "fast"}},
		{"resourcequota", "", "resourcequotas", &corev1.ResourceQuota{Status: corev1.ResourceQuotaStatus{
			Hard: corev1.ResourceList{"pods": resource.MustParse("10"), "limits.cpu": resource.MustParse("4"), "requests.cpu": resource.MustParse("2")},
			Used: corev1.ResourceList{"pods": resource.MustParse("3"), "limits.cpu": resource.MustParse("500m")},
		}}, map[string]any{"Request": "pods: 3/10, requests.cpu: 0/2", "Limit": "limits.cpu: 500m/4"}},

		{"job complete", "batch", "jobs", &batchv1.Job{
			ObjectMeta: objMeta("backup", 10*time.Minute),
			Spec:       batchv1.JobSpec{Completions: ptr[int32](1)},
			Status: batchv1.JobStatus{
				Succeeded: 1, StartTime: agoPtr(9 * time.Minute), CompletionTime: agoPtr(7 * time.Minute),
				Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}},
			},
		}, map[string]any{"Status": "Complete", "Completions": "1/1", "Duration": "2m", "Age": "10m", "Selector": "<none>"}},
		{"job running work queue", "batch", "jobs", &batchv1.Job{
			Spec:   batchv1.JobSpec{Parallelism: ptr[int32](3)},
			Status: batchv1.JobStatus{StartTime: agoPtr(45 * time.Second)},
		}, map[string]any{"Status": "Running", "Completions": "0/1 of 3", "Duration": "45s"}},
		{"job suspended", "batch", "jobs", &batchv1.Job{
			Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobSuspended, Status: corev1.ConditionTrue}}},
		}, map[string]any{"Status": "Suspended", "Duration": ""}},
		{"cronjob", "batch", "cronjobs", &batchv1.CronJob{
			ObjectMeta: objMeta("nightly", 48*time.Hour),
			Spec:       batchv1.CronJobSpec{Schedule: "0 3 * * *", Suspend: ptr(false)},
			Status: batchv1.CronJobStatus{
				Active:           []corev1.ObjectReference{{Name: "nightly-1"}},
				LastScheduleTime: agoPtr(10 * time.Minute),
			},
		}, map[string]any{
			"Schedule": "0 3 * * *", "Timezone": "<none>", "Suspend": "False", "Active": int64(1),
			"Last Schedule": "10m", "Age": "2d",
		}},
		{"cronjob never scheduled", "batch", "cronjobs", &batchv1.CronJob{
			Spec: batchv1.CronJobSpec{TimeZone: ptr("Etc/UTC")},
		}, map[string]any{"Timezone": "Etc/UTC", "Suspend": "<unset>", "Last Schedule": "<none>"}},

		{"hpa", "autoscaling", "horizontalpodautoscalers", &autoscalingv2.HorizontalPodAutoscaler{
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "web"},
				MaxReplicas:    10,
				Metrics: []autoscalingv2.MetricSpec{{
					Type:     autoscalingv2.ResourceMetricSourceType,
					Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{AverageUtilization: ptr[int32](80)}},
				}},
			},
			Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 2, CurrentMetrics: []autoscalingv2.MetricStatus{{
				Type:     autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricStatus{Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr[int32](35)}},
			}}},
		}, map[string]any{"Reference": "Deployment/web", "Targets": "cpu: 35%/80%", "MinPods": "<unset>", "MaxPods": int64(10), "Replicas": int64(2)}},

		{"core event", "", "events", &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "web.17a"},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web", FieldPath: "spec.containers{app}"},
			Type:           corev1.EventTypeWarning, Reason: "BackOff", Message: "Back-off restarting failed container\n",
			Source:         corev1.EventSource{Component: "kubelet", Host: "node-1"},
			FirstTimestamp: ago(time.Hour), LastTimestamp: ago(2 * time.Minute), Count: 7,
		}, map[string]any{
			"Last Seen": "2m", "Type": "Warning", "Reason": "BackOff", "Object": "pod/web", "Subobject": "spec.containers{app}",
			"Source": "kubelet, node-1", "Message": "Back-off restarting failed container", "First Seen": "60m", "Count": int64(7), "Name": "web.17a",
		}},
		{"core event from new API", "", "events", &corev1.Event{
			InvolvedObject:      corev1.ObjectReference{Kind: "Node"},
			EventTime:           metav1.NewMicroTime(now.Add(-30 * time.Second)),
			ReportingController: "scheduler",
		}, map[string]any{"Last Seen": "30s", "First Seen": "30s", "Object": "node", "Source": "scheduler", "Count": int64(1)}},
		{"events.k8s.io event with series", "events.k8s.io", "events", &eventsv1.Event{
			ObjectMeta:          metav1.ObjectMeta{Name: "db.1"},
			EventTime:           metav1.NewMicroTime(now.Add(-time.Hour)),
			Series:              &eventsv1.EventSeries{Count: 4, LastObservedTime: metav1.NewMicroTime(now.Add(-3 * time.Minute))},
			ReportingController: "kubelet", ReportingInstance: "node-2",
			Regarding: corev1.ObjectReference{Kind: "Pod", Name: "db"},
			Type:      "Normal", Reason: "Pulled", Note: " pulled ",
		}, map[string]any{
			"Last Seen": "3m", "First Seen": "60m", "Count": int64(4), "Object": "pod/db",
			"Source": "kubelet, node-2", "Message": "pulled", "Name": "db.1",
		}},

		{"ingress", "networking.k8s.io", "ingresses", &networkingv1.Ingress{
			ObjectMeta: objMeta("site", time.Minute),
			Spec: networkingv1.IngressSpec{
				IngressClassName: ptr("nginx"),
				TLS:              []networkingv1.IngressTLS{{Hosts: []string{"a.example.com"}}},
				Rules:            []networkingv1.IngressRule{{Host: "a.example.com"}, {Host: "b.example.com"}},
			},
			Status: networkingv1.IngressStatus{LoadBalancer: networkingv1.IngressLoadBalancerStatus{
				Ingress: []networkingv1.IngressLoadBalancerIngress{{IP: "203.0.113.9"}},
			}},
		}, map[string]any{"Class": "nginx", "Hosts": "a.example.com,b.example.com", "Address": "203.0.113.9", "Ports": "80, 443", "Age": "60s"}},
		{"ingress catch-all with many rules", "networking.k8s.io", "ingresses", &networkingv1.Ingress{
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "a"}, {}, {Host: "b"}, {Host: "c"}, {Host: "d"}}},
		}, map[string]any{"Class": "<none>", "Hosts": "a,b,c + 2 more...", "Address": "", "Ports": "80"}},
		{"ingress without hosts", "networking.k8s.io", "ingresses", &networkingv1.Ingress{}, map[string]any{"Hosts": "*"}},
		{"ingressclass", "networking.k8s.io", "ingressclasses", &networkingv1.IngressClass{
			Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx", Parameters: &networkingv1.IngressClassParametersReference{
				APIGroup: ptr("k8s.example.com"), Kind: "IngressParameters", Name: "external-lb",
			}},
		}, map[string]any{"Controller": "k8s.io/ingress-nginx", "Parameters": "IngressParameters.k8s.example.com/external-lb"}},
		{"networkpolicy", "networking.k8s.io", "networkpolicies", &networkingv1.NetworkPolicy{}, map[string]any{"Pod-Selector": "<none>"}},
		{"endpointslice", "discovery.k8s.io", "endpointslices", &discoveryv1.EndpointSlice{
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Port: ptr[int32](80)}, {Name: ptr("metrics")}, {}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1", "10.0.0.2"}}, {Addresses: []string{"10.0.0.3", "10.0.0.4"}}},
		}, map[string]any{"AddressType": "IPv4", "Ports": "80,metrics,*", "Endpoints": "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."}},
		{"empty endpointslice", "discovery.k8s.io", "endpointslices", &discoveryv1.EndpointSlice{}, map[string]any{"Ports": "<unset>", "Endpoints": "<unset>"}},
		{"pdb", "policy", "poddisruptionbudgets", &policyv1.PodDisruptionBudget{
			Spec:   policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromString("50%"))},
			Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 1},
		}, map[string]any{"Min Available": "50%", "Max Unavailable": "N/A", "Allowed Disruptions": int64(1)}},
		{"rolebinding", "rbac.authorization.k8s.io", "rolebindings", &rbacv1.RoleBinding{
			RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"},
			Subjects: []rbacv1.Subject{
				{Kind: rbacv1.UserKind, Name: "alice"}, {Kind: rbacv1.UserKind, Name: "bob"},
				{Kind: rbacv1.GroupKind, Name: "devs"}, {Kind: rbacv1.ServiceAccountKind, Namespace: "ci", Name: "runner"},
			},
		}, map[string]any{"Role": "ClusterRole/view", "Users": "alice, bob", "Groups": "devs", "ServiceAccounts": "ci/runner"}},
		{"storageclass default", "storage.k8s.io", "storageclasses", &storagev1.StorageClass{
			ObjectMeta:  metav1.ObjectMeta{Name: "standard", Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
			Provisioner: "rancher.io/local-path",
		}, map[string]any{"Name": "standard (default)", "ReclaimPolicy": "Delete", "VolumeBindingMode": "Immediate", "AllowVolumeExpansion": false}},
		{"priorityclass", "scheduling.k8s.io", "priorityclasses", &schedulingv1.PriorityClass{
			Value: 2000001000, PreemptionPolicy: ptr(corev1.PreemptLowerPriority),
		}, map[string]any{"Value": int64(2000001000), "Global-Default": false, "PreemptionPolicy": "PreemptLowerPriority"}},
		{"lease", "coordination.k8s.io", "leases", &coordinationv1.Lease{
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr("node-1")},
		}, map[string]any{"Holder": "node-1"}},
		{"runtimeclass", "node.k8s.io", "runtimeclasses", &nodev1.RuntimeClass{Handler: "runc"}, map[string]any{"Handler": "runc"}},
		{"generic role", "rbac.authorization.k8s.io", "roles", &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "reader", CreationTimestamp: metav1.NewTime(time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600)))},
		}, map[string]any{"Name": "reader", "Created At": "2025-01-02T02:04:05Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, ok := For(c.group, c.resource)
			if !ok {
				t.Fatalf("no printer for %s/%s", c.group, c.resource)
			}
			cells, err := p.Row(c.obj, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(cells) != len(p.Columns) {
				t.Fatalf("%d cells for %d columns", len(cells), len(p.Columns))
			}
			byName := map[string]any{}
			for i, col := range p.Columns {
				byName[col.Name] = cells[i]
			}
			for col, want := range c.want {
				got, ok := byName[col]
				if !ok {
					t.Errorf("no column %q", col)
					continue
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", col, got, want)
				}
			}
		})
	}
}

func TestDefaultPrinter(t *testing.T) {
	p := Default()
	if len(p.Columns) != 2 || p.Columns[1].Name != "Created At" || p.Columns[1].Type != "date" || p.Columns[0].Format != "name" {
		t.Fatalf("unexpected default columns %+v", p.Columns)
	}
	cells, err := p.Row(&corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "limits"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := []any{"limits", "0001-01-01T00:00:00Z"}; !reflect.DeepEqual(cells, want) {
		t.Fatalf("got %#v, want %#v", cells, want)
	}
	if _, err := p.Row(&metav1.Status{}, now); err == nil {
		t.Fatal("expected an error for an object without metadata")
	}
}

func TestAge(t *testing.T) {
	for _, c := range []struct {
		created metav1.Time
		want    string
	}{
		{metav1.Time{}, "<unknown>"},
		{ago(0), "0s"},
		{ago(119 * time.Second), "119s"},
		{ago(7*time.Minute + 5*time.Second), "7m5s"},
		{ago(5 * time.Hour), "5h"},
		{ago(30 * time.Hour), "30h"},
		{ago(400 * 24 * time.Hour), "400d"},
		{metav1.NewTime(now.Add(time.Hour)), "<invalid>"},
	} {
		m := metav1.ObjectMeta{CreationTimestamp: c.created}
		if got := age(&m, now); got != c.want {
			t.Errorf("age(%v) = %q, want %q", c.created, got, c.want)
		}
	}
}
