// Package nodeconn is what the API server and the node agents agree on for
// the connections the API server opens to agents (pod logs, exec, attach,
// port forwarding, node proxy): the identity the API server presents, the
// headers naming a pod's logical cluster and UID, and a small
// upgrade-aware proxy both sides use to pass streams on.
package nodeconn

// ClientCN is the common name of the client certificate the API server
// presents to agents, as kube-apiserver's --kubelet-client-certificate
// conventionally names it. Agents accept this name only: other holders of
// a certificate from the cluster CA (the admin kubeconfig) must go through
// the API server, which authorizes them.
const ClientCN = "kube-apiserver-kubelet-client"

// Headers the API server sets on every request it forwards to an agent (and
// removes from what clients send). An agent serves the pods of every
// logical cluster, so a pod's namespace and name alone are ambiguous.
const (
	// ClusterHeader names the logical cluster of the pod (or, through
	// nodes/proxy, of the caller).
	ClusterHeader = "X-Pgkube-Cluster"
	// PodUIDHeader is the pod's UID, so an agent never serves a pod of the
	// same name that replaced the one the API server looked at.
	PodUIDHeader = "X-Pgkube-Pod-Uid"
)
