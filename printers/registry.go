package printers

import (
	appsv1beta1 "k8s.io/api/apps/v1beta1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	batchv1beta1 "k8s.io/api/batch/v1beta1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1beta1 "k8s.io/api/discovery/v1beta1"
	extensionsv1beta1 "k8s.io/api/extensions/v1beta1"
	rbacv1beta1 "k8s.io/api/rbac/v1beta1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// builtin is one row of the resource table: which group/resource it serves,
// the columns kube-apiserver 1.33 advertises for it, and how to fill them.
//
// Descriptions deliberately come from the same (sometimes beta) API types
// that upstream reads them from, so the Table JSON matches byte for byte
// wherever the vendored docs agree.
type builtin struct {
	group, resource string
	columns         []metav1.TableColumnDefinition
	row             rowFunc
}

// genericallyPrinted marks resources whose upstream storage uses the plain
// Name/Created At convertor rather than a dedicated printer.
func genericallyPrinted(group, resource string) builtin {
	return builtin{group, resource, defaultPrinter.Columns, defaultPrinter.Row}
}

var eventColumns = columns(
	stringColumn("Last Seen", doc(corev1.Event{}, "lastTimestamp")),
	stringColumn("Type", doc(corev1.Event{}, "type")),
	stringColumn("Reason", doc(corev1.Event{}, "reason")),
	stringColumn("Object", doc(corev1.Event{}, "involvedObject")),
	wide(stringColumn("Subobject", doc(corev1.ObjectReference{}, "fieldPath"))),
	wide(stringColumn("Source", doc(corev1.Event{}, "source"))),
	stringColumn("Message", doc(corev1.Event{}, "message")),
	wide(stringColumn("First Seen", doc(corev1.Event{}, "firstTimestamp"))),
	wide(stringColumn("Count", doc(corev1.Event{}, "count"))),
	// Events lead with time, so the name only shows in wide output.
	wide(nameColumn()),
)

func bindingColumns(kind, roleRefDoc string) []metav1.TableColumnDefinition {
	return columns(
		nameColumn(),
		stringColumn("Role", roleRefDoc),
		ageColumn(),
		wide(stringColumn("Users", "Users in the "+kind)),
		wide(stringColumn("Groups", "Groups in the "+kind)),
		wide(stringColumn("ServiceAccounts", "ServiceAccounts in the "+kind)),
	)
}

var builtins = []builtin{
	mutatingWebhookConfigurations, validatingWebhookConfigurations, validatingAdmissionPolicies, validatingAdmissionPolicyBindings,
	// core
	{"", "pods", columns(
		nameColumn(),
		stringColumn("Ready", "The aggregate readiness state of this pod for accepting traffic."),
		stringColumn("Status", "The aggregate status of the containers in this pod."),
		stringColumn("Restarts", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
		ageColumn(),
		wide(stringColumn("IP", doc(corev1.PodStatus{}, "podIP"))),
		wide(stringColumn("Node", doc(corev1.PodSpec{}, "nodeName"))),
		wide(stringColumn("Nominated Node", doc(corev1.PodStatus{}, "nominatedNodeName"))),
		wide(stringColumn("Readiness Gates", doc(corev1.PodSpec{}, "readinessGates"))),
	), typed(podRow)},
	{"", "podtemplates", columns(
		nameColumn(),
		stringColumn("Containers", "Names of each container in the template."),
		stringColumn("Images", "Images referenced by each container in the template."),
		stringColumn("Pod Labels", "The labels for the pod template."),
	), typed(podTemplateRow)},
	{"", "replicationcontrollers", withTemplate(columns(
		nameColumn(),
		integerColumn("Desired", doc(corev1.ReplicationControllerSpec{}, "replicas")),
		integerColumn("Current", doc(corev1.ReplicationControllerStatus{}, "replicas")),
		integerColumn("Ready", doc(corev1.ReplicationControllerStatus{}, "readyReplicas")),
		ageColumn(),
	), wide(stringColumn("Selector", doc(corev1.ReplicationControllerSpec{}, "selector")))), typed(replicationControllerRow)},
	{"", "services", columns(
		nameColumn(),
		stringColumn("Type", doc(corev1.ServiceSpec{}, "type")),
		stringColumn("Cluster-IP", doc(corev1.ServiceSpec{}, "clusterIP")),
		stringColumn("External-IP", doc(corev1.ServiceSpec{}, "externalIPs")),
		stringColumn("Port(s)", doc(corev1.ServiceSpec{}, "ports")),
		ageColumn(),
		wide(stringColumn("Selector", doc(corev1.ServiceSpec{}, "selector"))),
	), typed(serviceRow)},
	{"", "endpoints", columns(
		nameColumn(),
		stringColumn("Endpoints", doc(corev1.Endpoints{}, "subsets")),
		ageColumn(),
	), typed(endpointsRow)},
	{"", "nodes", columns(
		nameColumn(),
		stringColumn("Status", "The status of the node"),
		stringColumn("Roles", "The roles of the node"),
		ageColumn(),
		stringColumn("Version", doc(corev1.NodeSystemInfo{}, "kubeletVersion")),
		wide(stringColumn("Internal-IP", doc(corev1.NodeStatus{}, "addresses"))),
		wide(stringColumn("External-IP", doc(corev1.NodeStatus{}, "addresses"))),
		wide(stringColumn("OS-Image", doc(corev1.NodeSystemInfo{}, "osImage"))),
		wide(stringColumn("Kernel-Version", doc(corev1.NodeSystemInfo{}, "kernelVersion"))),
		wide(stringColumn("Container-Runtime", doc(corev1.NodeSystemInfo{}, "containerRuntimeVersion"))),
	), typed(nodeRow)},
	{"", "events", eventColumns, typed(coreEventRow)},
	{"", "namespaces", columns(
		nameColumn(),
		stringColumn("Status", "The status of the namespace"),
		ageColumn(),
	), typed(namespaceRow)},
	{"", "secrets", columns(
		nameColumn(),
		stringColumn("Type", doc(corev1.Secret{}, "type")),
		stringColumn("Data", doc(corev1.Secret{}, "data")),
		ageColumn(),
	), typed(secretRow)},
	{"", "serviceaccounts", columns(
		nameColumn(),
		stringColumn("Secrets", doc(corev1.ServiceAccount{}, "secrets")),
		ageColumn(),
	), typed(serviceAccountRow)},
	{"", "persistentvolumes", columns(
		nameColumn(),
		stringColumn("Capacity", doc(corev1.PersistentVolumeSpec{}, "capacity")),
		stringColumn("Access Modes", doc(corev1.PersistentVolumeSpec{}, "accessModes")),
		stringColumn("Reclaim Policy", doc(corev1.PersistentVolumeSpec{}, "persistentVolumeReclaimPolicy")),
		stringColumn("Status", doc(corev1.PersistentVolumeStatus{}, "phase")),
		stringColumn("Claim", doc(corev1.PersistentVolumeSpec{}, "claimRef")),
		stringColumn("StorageClass", "StorageClass of the pv"),
		stringColumn("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
		stringColumn("Reason", doc(corev1.PersistentVolumeStatus{}, "reason")),
		ageColumn(),
		wide(stringColumn("VolumeMode", doc(corev1.PersistentVolumeSpec{}, "volumeMode"))),
	), typed(persistentVolumeRow)},
	{"", "persistentvolumeclaims", columns(
		nameColumn(),
		stringColumn("Status", doc(corev1.PersistentVolumeClaimStatus{}, "phase")),
		stringColumn("Volume", doc(corev1.PersistentVolumeClaimSpec{}, "volumeName")),
		stringColumn("Capacity", doc(corev1.PersistentVolumeClaimStatus{}, "capacity")),
		stringColumn("Access Modes", doc(corev1.PersistentVolumeClaimStatus{}, "accessModes")),
		stringColumn("StorageClass", "StorageClass of the pvc"),
		stringColumn("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
		ageColumn(),
		wide(stringColumn("VolumeMode", doc(corev1.PersistentVolumeClaimSpec{}, "volumeMode"))),
	), typed(persistentVolumeClaimRow)},
	{"", "configmaps", columns(
		nameColumn(),
		stringColumn("Data", doc(corev1.ConfigMap{}, "data")),
		ageColumn(),
	), typed(configMapRow)},
	{"", "resourcequotas", columns(
		nameColumn(),
		stringColumn("Request", "Request represents a minimum amount of cpu/memory that a container may consume."),
		stringColumn("Limit", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
		ageColumn(),
	), typed(resourceQuotaRow)},
	genericallyPrinted("", "limitranges"),

	// apps
	{"apps", "deployments", withTemplate(columns(
		nameColumn(),
		stringColumn("Ready", "Number of the pod with ready state"),
		stringColumn("Up-to-date", doc(extensionsv1beta1.DeploymentStatus{}, "updatedReplicas")),
		stringColumn("Available", doc(extensionsv1beta1.DeploymentStatus{}, "availableReplicas")),
		ageColumn(),
	), wide(stringColumn("Selector", doc(extensionsv1beta1.DeploymentSpec{}, "selector")))), typed(deploymentRow)},
	{"apps", "replicasets", withTemplate(columns(
		nameColumn(),
		integerColumn("Desired", doc(extensionsv1beta1.ReplicaSetSpec{}, "replicas")),
		integerColumn("Current", doc(extensionsv1beta1.ReplicaSetStatus{}, "replicas")),
		integerColumn("Ready", doc(extensionsv1beta1.ReplicaSetStatus{}, "readyReplicas")),
		ageColumn(),
	), wide(stringColumn("Selector", doc(extensionsv1beta1.ReplicaSetSpec{}, "selector")))), typed(replicaSetRow)},
	{"apps", "statefulsets", withTemplate(columns(
		nameColumn(),
		stringColumn("Ready", "Number of the pod with ready state"),
		ageColumn(),
	)), typed(statefulSetRow)},
	{"apps", "daemonsets", withTemplate(columns(
		nameColumn(),
		integerColumn("Desired", doc(extensionsv1beta1.DaemonSetStatus{}, "desiredNumberScheduled")),
		integerColumn("Current", doc(extensionsv1beta1.DaemonSetStatus{}, "currentNumberScheduled")),
		integerColumn("Ready", doc(extensionsv1beta1.DaemonSetStatus{}, "numberReady")),
		integerColumn("Up-to-date", doc(extensionsv1beta1.DaemonSetStatus{}, "updatedNumberScheduled")),
		integerColumn("Available", doc(extensionsv1beta1.DaemonSetStatus{}, "numberAvailable")),
		stringColumn("Node Selector", doc(corev1.PodSpec{}, "nodeSelector")),
		ageColumn(),
	), wide(stringColumn("Selector", doc(extensionsv1beta1.DaemonSetSpec{}, "selector")))), typed(daemonSetRow)},
	{"apps", "controllerrevisions", columns(
		nameColumn(),
		stringColumn("Controller", "Controller of the object"),
		stringColumn("Revision", doc(appsv1beta1.ControllerRevision{}, "revision")),
		ageColumn(),
	), typedErr(controllerRevisionRow)},

	// batch
	{"batch", "jobs", withTemplate(columns(
		nameColumn(),
		stringColumn("Status", "Status of the job."),
		stringColumn("Completions", doc(batchv1.JobStatus{}, "succeeded")),
		stringColumn("Duration", "Time required to complete the job."),
		ageColumn(),
	), wide(stringColumn("Selector", doc(batchv1.JobSpec{}, "selector")))), typed(jobRow)},
	{"batch", "cronjobs", withTemplate(columns(
		nameColumn(),
		stringColumn("Schedule", doc(batchv1beta1.CronJobSpec{}, "schedule")),
		stringColumn("Timezone", doc(batchv1beta1.CronJobSpec{}, "timeZone")),
		booleanColumn("Suspend", doc(batchv1beta1.CronJobSpec{}, "suspend")),
		integerColumn("Active", doc(batchv1beta1.CronJobStatus{}, "active")),
		stringColumn("Last Schedule", doc(batchv1beta1.CronJobStatus{}, "lastScheduleTime")),
		ageColumn(),
	), wide(stringColumn("Selector", doc(batchv1.JobSpec{}, "selector")))), typed(cronJobRow)},

	// autoscaling
	{"autoscaling", "horizontalpodautoscalers", columns(
		nameColumn(),
		stringColumn("Reference", doc(autoscalingv2.HorizontalPodAutoscalerSpec{}, "scaleTargetRef")),
		stringColumn("Targets", doc(autoscalingv2.HorizontalPodAutoscalerSpec{}, "metrics")),
		stringColumn("MinPods", doc(autoscalingv2.HorizontalPodAutoscalerSpec{}, "minReplicas")),
		stringColumn("MaxPods", doc(autoscalingv2.HorizontalPodAutoscalerSpec{}, "maxReplicas")),
		stringColumn("Replicas", doc(autoscalingv2.HorizontalPodAutoscalerStatus{}, "currentReplicas")),
		ageColumn(),
	), typed(horizontalPodAutoscalerRow)},

	// coordination.k8s.io
	{"coordination.k8s.io", "leases", columns(
		nameColumn(),
		stringColumn("Holder", doc(coordinationv1.LeaseSpec{}, "holderIdentity")),
		ageColumn(),
	), typed(leaseRow)},

	// discovery.k8s.io
	{"discovery.k8s.io", "endpointslices", columns(
		nameColumn(),
		stringColumn("AddressType", doc(discoveryv1beta1.EndpointSlice{}, "addressType")),
		stringColumn("Ports", doc(discoveryv1beta1.EndpointSlice{}, "ports")),
		stringColumn("Endpoints", doc(discoveryv1beta1.EndpointSlice{}, "endpoints")),
		ageColumn(),
	), typed(endpointSliceRow)},

	// events.k8s.io shares storage, and therefore the table, with core events.
	{"events.k8s.io", "events", eventColumns, typed(eventsV1Row)},

	// networking.k8s.io
	{"networking.k8s.io", "ingresses", columns(
		nameColumn(),
		stringColumn("Class", "The name of the IngressClass resource that should be used for additional configuration"),
		stringColumn("Hosts", "Hosts that incoming requests are matched against before the ingress rule"),
		stringColumn("Address", "Address is a list containing ingress points for the load-balancer"),
		stringColumn("Ports", "Ports of TLS configurations that open"),
		ageColumn(),
	), typed(ingressRow)},
	{"networking.k8s.io", "ingressclasses", columns(
		nameColumn(),
		stringColumn("Controller", "Controller that is responsible for handling this class"),
		stringColumn("Parameters", "A reference to a resource with additional parameters"),
		ageColumn(),
	), typed(ingressClassRow)},
	{"networking.k8s.io", "networkpolicies", columns(
		nameColumn(),
		stringColumn("Pod-Selector", doc(extensionsv1beta1.NetworkPolicySpec{}, "podSelector")),
		ageColumn(),
	), typed(networkPolicyRow)},

	// policy
	{"policy", "poddisruptionbudgets", columns(
		nameColumn(),
		stringColumn("Min Available", "The minimum number of pods that must be available."),
		stringColumn("Max Unavailable", "The maximum number of pods that may be unavailable."),
		integerColumn("Allowed Disruptions", "Calculated number of pods that may be disrupted at this time."),
		ageColumn(),
	), typed(podDisruptionBudgetRow)},

	// rbac.authorization.k8s.io
	genericallyPrinted("rbac.authorization.k8s.io", "roles"),
	genericallyPrinted("rbac.authorization.k8s.io", "clusterroles"),
	{"rbac.authorization.k8s.io", "rolebindings",
		bindingColumns("roleBinding", doc(rbacv1beta1.RoleBinding{}, "roleRef")), typed(roleBindingRow)},
	{"rbac.authorization.k8s.io", "clusterrolebindings",
		bindingColumns("clusterRoleBinding", doc(rbacv1beta1.ClusterRoleBinding{}, "roleRef")), typed(clusterRoleBindingRow)},

	// storage.k8s.io
	{"storage.k8s.io", "storageclasses", columns(
		nameColumn(),
		stringColumn("Provisioner", doc(storagev1.StorageClass{}, "provisioner")),
		stringColumn("ReclaimPolicy", doc(storagev1.StorageClass{}, "reclaimPolicy")),
		stringColumn("VolumeBindingMode", doc(storagev1.StorageClass{}, "volumeBindingMode")),
		stringColumn("AllowVolumeExpansion", doc(storagev1.StorageClass{}, "allowVolumeExpansion")),
		ageColumn(),
	), typed(storageClassRow)},

	// scheduling.k8s.io
	{"scheduling.k8s.io", "priorityclasses", columns(
		nameColumn(),
		integerColumn("Value", doc(schedulingv1.PriorityClass{}, "value")),
		booleanColumn("Global-Default", doc(schedulingv1.PriorityClass{}, "globalDefault")),
		ageColumn(),
		stringColumn("PreemptionPolicy", doc(schedulingv1.PriorityClass{}, "preemptionPolicy")),
	), typed(priorityClassRow)},

	// node.k8s.io
	{"node.k8s.io", "runtimeclasses", columns(
		nameColumn(),
		// Upstream looks this description up on ObjectMeta, where it does
		// not exist, so the advertised description is empty.
		stringColumn("Handler", objectMetaDoc["handler"]),
		ageColumn(),
	), typed(runtimeClassRow)},

	// apiextensions.k8s.io types are not in k8s.io/api; kube-apiserver 1.33
	// prints CRDs with the generic convertor anyway.
	genericallyPrinted("apiextensions.k8s.io", "customresourcedefinitions"),
}
