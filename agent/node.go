package agent

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// KubeletVersion is the version the agent reports as its nodes' kubelet:
// the Kubernetes API it implements.
const KubeletVersion = "v1.37.2-pgkube"

// NodeLeaseNamespace holds the nodes' heartbeat Leases.
const NodeLeaseNamespace = "kube-node-lease"

// DefaultCapacity is what a node offers when not told otherwise.
func DefaultCapacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("8"),
		corev1.ResourceMemory:           resource.MustParse("32Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
}

// nodeSpec is one node the agent stands for.
type nodeSpec struct {
	Node
	index int
}

// nodeNames: one node is called name; several are name-0, name-1, ...
func nodeSpecs(name string, n int, ip string) []nodeSpec {
	if n <= 1 {
		if ip == "" {
			ip = hostIP()
		}
		return []nodeSpec{{Node: Node{Name: name, InternalIP: ip, PodCIDR: podCIDR(0)}}}
	}
	out := make([]nodeSpec, n)
	for i := range n {
		// 172.16.0.0/12 holds a million simulated nodes.
		v := uint32(172)<<24 | uint32(16)<<16 | uint32(i+1)
		nip := net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).String()
		out[i] = nodeSpec{Node: Node{Name: fmt.Sprintf("%s-%d", name, i), InternalIP: nip, PodCIDR: podCIDR(i)}, index: i}
	}
	return out
}

// podCIDR is node i's pod network: 10.(64+i/256).(i%256).0/24.
func podCIDR(i int) string { return fmt.Sprintf("10.%d.%d.0/24", 64+i/256, i%256) }

// hostIP is the machine's first non-loopback IPv4 address, else loopback.
func hostIP() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// nodeObject is the Node the agent registers.
func (a *Agent) nodeObject(ns nodeSpec) *corev1.Node {
	labels := map[string]string{
		corev1.LabelHostname:      ns.Name,
		corev1.LabelOSStable:      goruntime.GOOS,
		corev1.LabelArchStable:    goruntime.GOARCH,
		"beta.kubernetes.io/os":   goruntime.GOOS,
		"beta.kubernetes.io/arch": goruntime.GOARCH,
	}
	if a.opts.Zones > 0 {
		labels[corev1.LabelTopologyZone] = fmt.Sprintf("zone-%d", ns.index%a.opts.Zones)
	}
	if a.opts.Runtime.Name() == "simulated" {
		labels["type"] = "simulated"
	}
	for k, v := range a.opts.Labels {
		labels[k] = v
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: labels, Annotations: map[string]string{
			"node.alpha.kubernetes.io/ttl":                           "0",
			"volumes.kubernetes.io/controller-managed-attach-detach": "true",
		}},
		Spec: corev1.NodeSpec{PodCIDR: ns.PodCIDR, PodCIDRs: []string{ns.PodCIDR}, Taints: append([]corev1.Taint(nil), a.opts.Taints...)},
	}
	n.Status = a.nodeStatus(ns, nil)
	return n
}

// nodeStatus is the node's status now; old (the stored one) keeps
// transition times.
func (a *Agent) nodeStatus(ns nodeSpec, old *corev1.NodeStatus) corev1.NodeStatus {
	capacity := a.opts.Capacity.DeepCopy()
	alloc := capacity.DeepCopy()
	for n, q := range a.opts.Reserved {
		if c, ok := alloc[n]; ok {
			c.Sub(q)
			if c.Sign() < 0 {
				c = resource.MustParse("0")
			}
			alloc[n] = c
		}
	}
	if q, ok := a.evictionReserve(capacity); ok {
		if c, ok := alloc[corev1.ResourceMemory]; ok {
			c.Sub(q)
			if c.Sign() < 0 {
				c = resource.MustParse("0")
			}
			alloc[corev1.ResourceMemory] = c
		}
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"}
	if err := a.runtimeErr(); err != nil {
		ready = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady",
			Message: "container runtime is down: " + err.Error()}
	}
	conds := []corev1.NodeCondition{
		a.memoryPressureCondition(ns.Name),
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		ready,
	}
	for i := range conds {
		conds[i].LastHeartbeatTime = now
		conds[i].LastTransitionTime = now
		if old != nil {
			for _, o := range old.Conditions {
				if o.Type == conds[i].Type && o.Status == conds[i].Status {
					conds[i].LastTransitionTime = o.LastTransitionTime
				}
			}
		}
	}
	return corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: alloc,
		Conditions:  conds,
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: ns.InternalIP},
			{Type: corev1.NodeHostName, Address: ns.Name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: a.port}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               idOf("machine", ns.Name),
			SystemUUID:              uuidOf(ns.Name),
			BootID:                  a.bootID,
			KernelVersion:           kernelVersion(),
			OSImage:                 osImage(),
			ContainerRuntimeVersion: a.opts.Runtime.Name() + "://" + cmp.Or(a.version(), "unknown"),
			KubeletVersion:          KubeletVersion,
			OperatingSystem:         goruntime.GOOS,
			Architecture:            goruntime.GOARCH,
		},
	}
}

func idOf(kind, name string) string {
	sum := sha256.Sum256([]byte(kind + "/" + name))
	return hex.EncodeToString(sum[:16])
}

func uuidOf(name string) string {
	h := idOf("uuid", name)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func kernelVersion() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func osImage() string {
	b, err := os.ReadFile("/etc/os-release")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				return strings.Trim(v, `"`)
			}
		}
	}
	return goruntime.GOOS
}

// leaseObject is a node's heartbeat Lease, owned by its Node.
func leaseObject(node *corev1.Node, duration time.Duration) *coordinationv1.Lease {
	now := metav1.NewMicroTime(time.Now())
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: node.Name, Namespace: NodeLeaseNamespace,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(node.Name),
			LeaseDurationSeconds: ptr.To(int32(duration / time.Second)),
			RenewTime:            &now,
		},
	}
}
